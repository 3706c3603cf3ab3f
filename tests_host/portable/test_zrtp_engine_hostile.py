"""The ZRTP engine (RFC 6189) under hostile or broken input: what ends a handshake and what is only
dropped (5.9, 10), forged packets against a secure session, tampering, lost CRCs, Error/GoClear/Ping/SASrelay,
Hello checks, timeouts and a ZID cache that cannot be written. Runs under MicroPython too."""
import struct

from _zrtp_pair import pair, assert_agree, Drbg, Link
from microwitch.compat import aes_ecb, crc32c
from microwitch.crypto.modes import cfb_encrypt
from microwitch.zrtp import packet, messages as M
from microwitch.zrtp.cache import ZidCache, MemoryBackend
from microwitch.zrtp.engine import ZrtpSession


def _type(pkt):
    return packet.parse(pkt)[2][4:12]


def _codes(pkts):
    return [M.decode(packet.parse(p)[2])["code"] for p in pkts if _type(p) == M.ERROR]


def _reseal(pkt):
    return pkt[:-4] + struct.pack("<I", crc32c(pkt[:-4]))


def _raw_message(mtype, body):
    """A message with any type and body, correctly framed (length field right) but not otherwise valid."""
    return struct.pack(">HH", 0x505A, (12 + len(body)) >> 2) + mtype + body


def _mutate_type(who, ztype, fn):
    def m(w, pkt):
        if w == who and _type(pkt) == ztype:
            return fn(pkt)
        return pkt
    return m


def _flip(offset_from_msg):
    def f(pkt):
        b = bytearray(pkt)
        b[12 + offset_from_msg] ^= 0x01
        return _reseal(bytes(b))
    return f


def _secure_pair(seed, **cfg):
    link = pair(cfg, {}, "initiator", "responder", seed=seed).run()
    assert_agree(link)
    return link


def _forgeries():
    """Packets anyone on the path could send: a valid CRC, nothing authentic."""
    return [
        packet.build(5, 77, M.error(0x70)),                                 # a forged Error
        packet.build(6, 77, _raw_message(M.COMMIT, b"\x00" * 8)),           # a 20-byte "Commit"
        packet.build(7, 77, _raw_message(b"Garbage!", b"\x11" * 40)),       # unknown type, valid CRC
        packet.build(8, 77, _raw_message(M.CONFIRM1, b"\x22" * 8)),         # a truncated Confirm1
        packet.build(9, 77, _raw_message(M.DHPART2, b"\x33" * 120)),        # an unexpected DHPart2
        packet.build(10, 77, _raw_message(M.HELLO, b"\x44" * 100)),         # a Hello with bad counts
        packet.build(11, 77, M.goclear(b"\x00" * 8)),                       # GoClear with a bad MAC
        packet.build(12, 77, _raw_message(M.SASRELAY, b"\x55" * 64)),       # SASrelay with a bad MAC
        packet.build(13, 77, M.simple(M.CONF2ACK)),
        packet.build(14, 77, M.simple(M.HELLOACK)),
    ]


def test_a_secure_session_survives_forged_packets():
    link = _secure_pair("forged")
    for victim in (link.a, link.b):
        info = victim.info()
        dropped = victim.dropped
        forged = _forgeries()
        for i, pkt in enumerate(forged):
            out = victim.receive(pkt, link.now + 1 + i)
            # never a state change, never an Error or an event: ignored and counted
            assert [a for a in out if a[0] != "send"] == [], out
            assert _codes([a[1] for a in out if a[0] == "send"]) == []
            assert victim.state == "secure" and victim.secure and victim.info() is info
        assert victim.dropped == dropped + len(forged)
        assert victim.last_internal_error is None
        assert victim.tick(link.now + 100) == []
    # the real peer still gets its answers: a retransmitted Confirm2 is acknowledged
    conf2 = [p for p in link.sent["a"] if _type(p) == M.CONFIRM2][0]
    assert [_type(x[1]) for x in link.b.receive(conf2, link.now + 200)] == [M.CONF2ACK]


def test_malformed_and_unexpected_packets_are_dropped_during_the_handshake():
    seen = {"n": 0}

    def inject(w, pkt):
        # before each of a's packets, b receives the forgeries first; the handshake still completes
        if w == "a" and seen["n"] < 3:
            seen["n"] += 1
            for f in _forgeries()[1:-2]:
                link.b.receive(f, link.now)
        return pkt
    link = pair({}, {}, "initiator", "responder", seed="hs-drop", mutate=inject)
    link.run()
    assert_agree(link)
    assert link.b.dropped >= 3 * (len(_forgeries()) - 3)
    assert _codes(link.sent["b"]) == []


def test_a_forged_error_during_the_handshake_ends_it():
    # 5.9: an Error ends an exchange in progress (answered with ErrorACK)
    a = ZrtpSession("initiator", {}, Drbg("fe-a"), None, 0)
    b = ZrtpSession("responder", {}, Drbg("fe-b"), None, 0)
    a.tick(0)
    a.receive(b.tick(0)[0][1], 0)
    out = a.receive(packet.build(3, 9, M.error(0x20)), 1)
    assert _type(out[0][1]) == M.ERRORACK and out[1][0] == "failed" and "0x20" in out[1][1]
    assert a.state == "failed"
    # an Error while failed is still acknowledged, nothing else happens
    out = a.receive(packet.build(4, 9, M.error(0x20)), 2)
    assert [_type(x[1]) for x in out] == [M.ERRORACK]


def test_tampered_confirm_mac_ends_without_secure():
    for who, ztype in (("b", M.CONFIRM1), ("a", M.CONFIRM2)):
        link = pair({}, {}, "initiator", "responder", seed="t" + who,
                    mutate=_mutate_type(who, ztype, _flip(12))).run(limit_ms=20000)
        victim = link.a if who == "b" else link.b
        assert victim.state == "failed" and "confirm_mac" in victim.failure
        assert _codes(link.sent["a" if who == "b" else "b"])[:1] == [0x70]
        assert not any(e[0] == "secure" for e in link.events["a"] + link.events["b"])


def test_tampered_encrypted_h0_is_caught_by_the_mac():
    link = pair({}, {}, "initiator", "responder", seed="h0",
                mutate=_mutate_type("b", M.CONFIRM1, _flip(40))).run(limit_ms=20000)
    assert link.a.state == "failed" and "confirm_mac" in link.a.failure


def test_tampered_commit_hash_chain_is_dropped_and_retransmission_recovers():
    seen = {"n": 0}

    def once(w, pkt):
        if w == "a" and _type(pkt) == M.COMMIT and seen["n"] == 0:
            seen["n"] += 1
            return _flip(20)(pkt)       # H2 altered: it no longer hashes to the Hello's H3
        return pkt
    link = pair({}, {}, "initiator", "responder", seed="chain", mutate=once).run()
    assert_agree(link)
    assert link.b.dropped >= 1 and "Hello" in link.b.last_dropped


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
    # neither heard the other, so neither sends an Error to what may not be a ZRTP peer at all
    assert _codes(link.sent["a"]) == [] and _codes(link.sent["b"]) == []


def test_ping_goclear_sasrelay_and_error_after_secure():
    link = _secure_pair("misc", allow_clear=True)
    a, b = link.a, link.b
    out = a.receive(packet.build(7, 0x1234, M.ping(b"\x01" * 8)), 1)
    pa = M.decode(packet.parse(out[0][1])[2])
    assert pa["type"] == M.PINGACK and pa["peer_hash"] == b"\x01" * 8 and pa["ssrc"] == 0x1234
    # GoClear from b: a allows it; b does not allow it from a
    gc = b.go_clear(2)
    out = a.receive(gc[0][1], 2)
    assert [_type(x[1]) for x in out if x[0] == "send"] == [M.CLEARACK] and ("clear", {"by": "peer"}) in out
    assert b.receive(out[0][1], 3) == [("clear", {"by": "self"})] and b.state == "clear"
    # clear is as final as secure: a forged Error changes nothing
    assert a.receive(packet.build(8, 9, M.error(0x20)), 4) == [] and a.state == "clear"
    link2 = _secure_pair("misc2")
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
    # an Error after the exchange completed never ends the session (5.9)
    assert b.receive(packet.build(11, 9, M.error(0xA0)), 5) == [] and b.state == "secure"
    assert b.dropped == 2


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
    link = _secure_pair("rt")
    b = link.b
    conf2 = [p for p in link.sent["a"] if _type(p) == M.CONFIRM2][0]
    out = b.receive(conf2, link.now + 1)
    assert [_type(x[1]) for x in out] == [M.CONF2ACK]
    commit = [p for p in link.sent["a"] if _type(p) == M.COMMIT][0]
    assert b.receive(commit, link.now + 2) == []       # secure: an old Commit changes nothing
    assert b.state == "secure"


def test_a_peer_going_quiet_gets_error_timeout():
    # the responder has sent DHPart1 and waits with no timer of its own (the initiator drives, 6)
    a = ZrtpSession("initiator", {}, Drbg("q-a"), None, 0)
    b = ZrtpSession("responder", {"idle_ms": 2000}, Drbg("q-b"), None, 0)
    link = Link(a, b, mutate=lambda w, p: None if w == "a" and _type(p) == M.DHPART2 else p)
    link.run(limit_ms=200)
    assert b.state == "dhpart1-sent"
    sent = []
    for now in range(200, 6000, 50):
        for act in b.tick(now):
            if act[0] == "send":
                sent.append(act[1])
            else:
                assert act == ("failed", "timeout: peer went quiet")
    assert b.state == "failed" and _codes(sent)[:1] == [0xB0]


class _BrokenBackend(MemoryBackend):
    """A cache whose storage fails once the ZID is written (a full or read-only disk)."""

    def __init__(self):
        MemoryBackend.__init__(self)
        self.broken = False

    def append(self, b):
        if self.broken:
            raise OSError(28, "No space left on device")
        MemoryBackend.append(self, b)


def test_a_cache_write_error_does_not_swallow_secure():
    back = _BrokenBackend()
    ca = ZidCache(back, rand=Drbg("ce-a"), clock=lambda: 10)
    ca.zid()
    back.broken = True
    link = pair({}, {}, "initiator", "responder", ca, None, seed="ce").run()
    ia, ib = assert_agree(link)
    kinds = [e[0] for e in link.events["a"]]
    assert kinds == ["secure", "cache_error"], kinds
    err = link.events["a"][1][1]
    assert "cache" in err and "space" in err
    assert link.a.secure and link.a.last_internal_error is None
    assert ia["self_key"] == ib["peer_key"]
