"""The ZRTP engine (RFC 6189) against itself on CPython: every algorithm combination, commit contention,
Preshared and Multistream modes, cache mismatch, tampering, packet loss, GoClear/Ping/Error/SASrelay."""
import itertools
import struct

import pytest

from _zrtp_pair import pair, assert_agree, Drbg, Link
from microwitch.compat import aes_ecb
from microwitch.crypto.crc32c import crc32c
from microwitch.crypto.modes import cfb_encrypt
from microwitch.zrtp import packet, messages as M, engine as EN
from microwitch.zrtp.cache import ZidCache, MemoryBackend
from microwitch.zrtp.engine import ZrtpSession

KAS = ["X255", "E255", "DH3k", "DH2k", "EC25"]


def _cfg(ka, h="S256", c="AES1", a="HS32", s="B32", **extra):
    d = {"ka": [ka], "hash": [h], "cipher": [c], "auth": [a], "sas": [s]}
    d.update(extra)
    return d


def _type(pkt):
    return packet.parse(pkt)[2][4:12]


def _caches(clock=lambda: 5000):
    return (ZidCache(MemoryBackend(), rand=Drbg("zid-a"), clock=clock),
            ZidCache(MemoryBackend(), rand=Drbg("zid-b"), clock=clock))


@pytest.mark.parametrize("ka,h,c,a,s", list(itertools.product(KAS, ["S256", "S384"], ["AES1", "AES3"],
                                                              ["HS32", "HS80"], ["B32", "B256"])))
def test_every_algorithm_combination_agrees(ka, h, c, a, s):
    cfg = _cfg(ka, h, c, a, s)
    link = pair(cfg, cfg, "initiator", "responder", seed=ka + h + c + a + s).run()
    ia, ib = assert_agree(link)
    assert (ia["ka"], ia["hash"], ia["cipher"], ia["auth"], ia["sas_type"]) == (ka, h, c, a, s)
    assert len(ia["self_key"]) == (16 if c == "AES1" else 32)
    if s == "B256":
        even, odd = ia["sas"].split(":")
        assert even and odd
    else:
        assert len(ia["sas"]) == 4
    dh1 = [p for p in link.sent["b"] if _type(p) == M.DHPART1][0]
    assert len(M.decode(packet.parse(dh1)[2])["pv"]) == M.PV_LEN[ka.encode()]


def test_default_offer_prefers_x255_and_always_has_dh3k():
    s = ZrtpSession("auto", {}, Drbg(1), None, 0)
    hello = M.decode(packet.parse(s.tick(0)[0][1])[2])
    assert hello["ka"][0] == b"X255" and b"DH3k" in hello["ka"] and b"Mult" in hello["ka"]
    s = ZrtpSession("auto", {"ka": ["EC25"], "sas": ["B256"]}, Drbg(1), None, 0)
    hello = M.decode(packet.parse(s.tick(0)[0][1])[2])
    assert hello["ka"] == [b"EC25", b"DH3k", b"Mult"] and hello["sas"] == [b"B256", b"B32 "]
    ia, _ = assert_agree(pair(role_a="initiator", role_b="responder").run())
    assert ia["ka"] == "X255"


def test_differing_first_choices_take_the_faster():
    # 4.1.2: a prefers DH3k, b prefers DH2k -> both pick DH2k (faster), whoever commits
    for ra, rb in (("initiator", "responder"), ("responder", "initiator"), ("auto", "auto")):
        ia, _ = assert_agree(pair({"ka": ["DH3k", "DH2k"]}, {"ka": ["DH2k", "DH3k"]}, ra, rb, seed=ra).run())
        assert ia["ka"] == "DH2k"
    # a GNU-ZRTP-like peer that offers E255 but not X255 meets us on E255
    ia, _ = assert_agree(pair({}, {"ka": ["EC25", "E255", "DH3k"]}, "initiator", "responder").run())
    assert ia["ka"] == "E255"


def test_commit_contention_the_higher_hvi_leads():
    for seed in range(6):
        link = pair({"ka": ["X255"]}, {"ka": ["X255"]}, "auto", "auto", seed=seed).run()
        ia, ib = assert_agree(link)
        commits = {w: [M.decode(packet.parse(p)[2]) for p in link.sent[w] if _type(p) == M.COMMIT]
                   for w in "ab"}
        assert commits["a"] and commits["b"], "both sides committed"
        hvi = {w: int.from_bytes(commits[w][0]["hvi"], "big") for w in "ab"}
        winner = "a" if hvi["a"] > hvi["b"] else "b"
        assert (ia if winner == "a" else ib)["role"] == "initiator"


def test_preshared_second_call():
    ca, cb = _caches()
    assert_agree(pair({}, {}, "initiator", "responder", ca, cb, seed="p1").run())
    link = pair({"preshared": True}, {}, "initiator", "responder", ca, cb, seed="p2").run()
    ia, ib = assert_agree(link)
    assert ia["ka"] == "Prsh" and ia["cache"] == "match" and ib["cache"] == "match"
    assert [_type(p) for p in link.sent["a"]] == [M.HELLO, M.COMMIT, M.CONFIRM2]
    assert [_type(p) for p in link.sent["b"]] == [M.HELLO, M.HELLOACK, M.CONFIRM1, M.CONF2ACK]
    # the retained secret still rotates, so a third call (DH) matches too
    ia, ib = assert_agree(pair({}, {}, "initiator", "responder", ca, cb, seed="p3").run())
    assert ia["cache"] == "match" and ib["cache"] == "match"


def test_preshared_without_matching_secret_falls_back_to_dh():
    ca, cb = _caches()
    assert_agree(pair({}, {}, "initiator", "responder", ca, cb, seed="f1").run())
    cb.forget(ca.zid())
    link = pair({"preshared": True}, {}, "initiator", "responder", ca, cb, seed="f2").run()
    ia, ib = assert_agree(link)
    # b answered the Prsh Commit with a DH Commit, which wins the contention (4.2)
    assert ia["ka"] == "X255" and ib["role"] == "initiator"
    assert ia["cache"] == "mismatch" and ib["cache"] == "new"


def test_multistream_second_stream():
    first = pair({}, {}, "initiator", "responder", seed="m1").run()
    ia, ib = assert_agree(first)
    pa, pb = first.a.multistream_params(), first.b.multistream_params()
    # the second stream of the same call: same ZIDs (from the cache in real use), new hash chains
    link = pair({"multistream": pa, "zid": first.a.zid}, {"multistream": pb, "zid": first.b.zid},
                "initiator", "responder", seed="m2")
    link.run()
    ma, mb = assert_agree(link)
    assert ma["ka"] == "Mult" and ma["sas"] == ia["sas"]
    assert ma["self_key"] != ia["self_key"]
    assert [_type(p) for p in link.sent["a"]] == [M.HELLO, M.COMMIT, M.CONFIRM2]
    assert link.a.retained_secret() is None


def test_multistream_commit_without_first_stream_is_refused():
    first = pair({}, {}, "initiator", "responder", seed="m3").run()
    link = pair({"multistream": first.a.multistream_params(), "zid": first.a.zid}, {"zid": first.b.zid},
                "initiator", "responder", seed="m4")
    link.run(limit_ms=3000)
    assert link.b.state == "failed" and "Multistream" in link.b.failure
    errs = [M.decode(packet.parse(p)[2]) for p in link.sent["b"] if _type(p) == M.ERROR]
    assert errs and errs[0]["code"] == 0x53
    assert link.a.state == "failed"


def test_cache_mismatch_event_and_deferred_update():
    ca, cb = _caches()
    assert_agree(pair({}, {}, "initiator", "responder", ca, cb, seed="c1").run())
    ca.set_verified(cb.zid(), True)
    cb.set_verified(ca.zid(), True)
    ia, ib = assert_agree(pair({}, {}, "initiator", "responder", ca, cb, seed="c2").run())
    assert ia["cache"] == "match" and ia["verified"] and ib["verified"]
    old = ca.lookup(cb.zid())["rs1"]
    # b's cache loses its secrets but keeps its ZID
    cb.store(ca.zid(), b"\x55" * 32, 0xFFFFFFFF)
    cb.store(ca.zid(), b"\x66" * 32, 0xFFFFFFFF)
    link = pair({}, {}, "initiator", "responder", ca, cb, seed="c3").run()
    ia, ib = assert_agree(link)
    assert ia["cache"] == ib["cache"] == "mismatch" and not ia["verified"]
    for w in "ab":
        ev = [e for e in link.events[w] if e[0] == "cache_mismatch"]
        assert ev and ev[0][1]["sas"] == ia["sas"]
        assert [e[0] for e in link.events[w]].index("cache_mismatch") < [e[0] for e in link.events[w]].index("secure")
    # never silently accepted: the old secret stays and the verified flag is cleared until the SAS is checked
    assert ca.lookup(cb.zid())["rs1"] == old and not ca.lookup(cb.zid())["verified"]
    link.a.set_sas_verified(True)
    link.b.set_sas_verified(True)
    assert ca.lookup(cb.zid())["rs1"] == link.a.retained_secret() and ca.lookup(cb.zid())["verified"]
    ia, ib = assert_agree(pair({}, {}, "responder", "initiator", ca, cb, seed="c4").run())
    assert ia["cache"] == ib["cache"] == "match" and ia["verified"]


def _mutate_type(who, ztype, fn):
    def m(w, pkt):
        if w == who and _type(pkt) == ztype:
            return fn(pkt)
        return pkt
    return m


def _reseal(pkt):
    return pkt[:-4] + struct.pack("<I", crc32c(pkt[:-4]))


def _flip(offset_from_msg):
    def f(pkt):
        b = bytearray(pkt)
        b[12 + offset_from_msg] ^= 0x01
        return _reseal(bytes(b))
    return f


@pytest.mark.parametrize("who,ztype", [("b", M.CONFIRM1), ("a", M.CONFIRM2)])
def test_tampered_confirm_mac_ends_without_secure(who, ztype):
    link = pair({}, {}, "initiator", "responder", seed="t" + who,
                mutate=_mutate_type(who, ztype, _flip(12))).run(limit_ms=20000)
    victim = link.a if who == "b" else link.b
    assert victim.state == "failed" and "confirm_mac" in victim.failure
    errs = [M.decode(packet.parse(p)[2]) for p in link.sent["a" if who == "b" else "b"] if _type(p) == M.ERROR]
    assert errs and errs[0]["code"] == 0x70
    assert not any(e[0] == "secure" for e in link.events["a"] + link.events["b"])


def test_tampered_encrypted_h0_is_caught_by_the_mac():
    link = pair({}, {}, "initiator", "responder", seed="h0",
                mutate=_mutate_type("b", M.CONFIRM1, _flip(40))).run(limit_ms=20000)
    assert link.a.state == "failed" and "confirm_mac" in link.a.failure


def test_flipped_crc_is_dropped_and_retransmission_recovers():
    seen = {"n": 0}

    def once(w, pkt):
        if w == "a" and _type(pkt) == M.COMMIT and seen["n"] == 0:
            seen["n"] += 1
            b = bytearray(pkt)
            b[-1] ^= 0x80
            return bytes(b)
        return pkt
    link = pair({}, {}, "initiator", "responder", seed="crc", mutate=once).run()
    assert_agree(link)
    assert link.b.dropped >= 1
    assert sum(1 for p in link.sent["a"] if _type(p) == M.COMMIT) >= 2


def test_every_crc_flipped_never_secure():
    def all_bad(w, pkt):
        b = bytearray(pkt)
        b[-2] ^= 0x04
        return bytes(b)
    link = pair({}, {}, "initiator", "responder", seed="crc2", mutate=all_bad).run(limit_ms=40000)
    assert link.a.state == "failed" and link.b.state == "failed"
    assert not any(e[0] == "secure" for e in link.events["a"] + link.events["b"])
    assert link.a._peer_hello is None and link.b._peer_hello is None


def test_zrtp_hash_binding():
    a = ZrtpSession("initiator", {}, Drbg("za"), None, 0)
    b = ZrtpSession("responder", {"peer_hello_hash": a.hello_hash()}, Drbg("zb"), None, 0)
    assert a.hello_hash().startswith("1.10 ") and len(a.hello_hash()) == 69
    ia, _ = assert_agree(Link(a, b).run())
    # a wrong hash: the Hello is refused and no secure state is reached
    a = ZrtpSession("initiator", {}, Drbg("za2"), None, 0)
    h = a.hello_hash()
    wrong = h[:-1] + ("0" if h[-1] != "0" else "1")
    b = ZrtpSession("responder", {}, Drbg("zb2"), None, 0)
    assert b.set_peer_hello_hash(wrong) == []
    link = Link(a, b).run(limit_ms=40000)
    assert b.state == "failed" and "zrtp-hash" in b.failure
    assert a.state == "failed"
    assert not any(e[0] == "secure" for e in link.events["a"] + link.events["b"])
    # set after the Hello arrived: checked at once
    a = ZrtpSession("auto", {}, Drbg("za3"), None, 0)
    b = ZrtpSession("responder", {}, Drbg("zb3"), None, 0)
    b.receive(a.tick(0)[0][1], 0)
    assert b.set_peer_hello_hash(wrong) == [("failed", "zrtp-hash mismatch")]
    with pytest.raises(ValueError):
        b.set_peer_hello_hash("1.10 zz")


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("ka", ["X255", "DH3k"])
def test_twenty_percent_loss_converges_with_rfc_timers(seed, ka):
    link = pair({"ka": [ka]}, {"ka": [ka]}, "initiator", "responder", seed="loss%d" % seed, loss=0.2)
    link.run(limit_ms=30000)
    assert_agree(link)
    # T1/T2 (RFC 6189 6) bring it home long before the retransmission caps run out
    assert link.now < 12000, link.now


def test_t2_schedule_and_cap():
    a = ZrtpSession("initiator", {}, Drbg("t2a"), None, 0)
    b = ZrtpSession("responder", {}, Drbg("t2b"), None, 0)
    hello_b = b.tick(0)[0][1]
    a.tick(0)
    out = a.receive(hello_b, 0)
    assert [_type(p[1]) for p in out] == [M.COMMIT]
    # b got a's Hello (HelloACK), so only the Commit is left to retransmit
    ack = [x[1] for x in b.receive(a._t1 and packet.build(1, a.ssrc, a._hello), 0) if x[0] == "send"]
    a.receive(ack[0], 0)
    assert a._t1 is None
    times = []
    for now in range(0, 20000, 5):
        for act in a.tick(now):
            if act[0] == "send" and _type(act[1]) == M.COMMIT:
                times.append(now)
    assert times[:5] == [150, 450, 1050, 2250, 3450]
    assert len(times) == EN.T2_MAX
    assert a.state == "failed" and "Commit" in a.failure


def test_ping_error_goclear_sasrelay():
    link = pair({"allow_clear": True}, {}, "initiator", "responder", seed="misc").run()
    assert_agree(link)
    a, b = link.a, link.b
    out = a.receive(packet.build(7, 0x1234, M.ping(b"\x01" * 8)), 1)
    pa = M.decode(packet.parse(out[0][1])[2])
    assert pa["type"] == M.PINGACK and pa["peer_hash"] == b"\x01" * 8 and pa["ssrc"] == 0x1234
    # GoClear from b: a allows it; b does not allow it from a
    gc = b.go_clear(2)
    out = a.receive(gc[0][1], 2)
    assert [_type(x[1]) for x in out if x[0] == "send"] == [M.CLEARACK] and ("clear", {"by": "peer"}) in out
    assert b.receive(out[0][1], 3) == [("clear", {"by": "self"})] and b.state == "clear"
    link2 = pair({}, {}, "initiator", "responder", seed="misc2").run()
    a, b = link2.a, link2.b
    out = b.receive(a.go_clear(1)[0][1], 1)
    assert M.decode(packet.parse(out[0][1])[2])["code"] == 0x100 and b.state == "secure"
    bogus = M.goclear(b"\x00" * 8)
    assert b.receive(packet.build(1, 1, bogus), 2) == [] and b.dropped == 1
    # an untrusted SASrelay from the peer is acknowledged but never replaces our SAS
    k = a._keys
    plain = bytes(4) + b"B256" + bytes(32)
    iv = b"\x07" * 16
    enc = cfb_encrypt(aes_ecb(k["zrtpkeyi"]), iv, plain)
    relay = M.sasrelay(a._hsh.mac(k["mackeyi"], enc)[:8], iv, enc)
    out = b.receive(packet.build(9, 9, relay), 3)
    assert _type(out[0][1]) == M.RELAYACK and out[1] == ("sas_relay", {"trusted": False, "scheme": "B256"})
    # Error ends the session, answered with ErrorACK
    out = b.receive(packet.build(10, 9, M.error(0xA0)), 4)
    assert _type(out[0][1]) == M.ERRORACK and out[1][0] == "failed" and "0xa0" in out[1][1]


def test_hello_checks_version_and_zid():
    a = ZrtpSession("auto", {}, Drbg("v1"), None, 0)
    b = ZrtpSession("auto", {"zid": a.zid}, Drbg("v2"), None, 0)
    out = b.receive(a.tick(0)[0][1], 0)
    assert out[-1][0] == "failed" and M.decode(packet.parse(out[0][1])[2])["code"] == 0x90
    c = ZrtpSession("auto", {}, Drbg("v3"), None, 0)
    other = ZrtpSession("auto", {}, Drbg("v4"), None, 0)
    raw = bytearray(packet.parse(other.tick(0)[0][1])[2])
    raw[12:16] = b"2.00"
    out = c.receive(packet.build(1, 1, bytes(raw)), 0)
    assert M.decode(packet.parse(out[0][1])[2])["code"] == 0x30


def test_responder_answers_retransmissions_from_stored_messages():
    link = pair({}, {}, "initiator", "responder", seed="rt").run()
    assert_agree(link)
    b = link.b
    conf2 = [p for p in link.sent["a"] if _type(p) == M.CONFIRM2][0]
    out = b.receive(conf2, link.now + 1)
    assert [_type(x[1]) for x in out] == [M.CONF2ACK]
    commit = [p for p in link.sent["a"] if _type(p) == M.COMMIT][0]
    assert b.receive(commit, link.now + 2) == []       # secure: an old Commit changes nothing
    assert b.state == "secure"
