"""Two instances of the ZRTP engine agree (RFC 6189): every algorithm combination, commit contention,
Preshared and Multistream modes, key continuity and cache mismatch, a=zrtp-hash binding, packet loss and the
T1/T2 timers. Runs under MicroPython too (pure-Python back-ends there: a DH3k handshake is ~0.2 s under wasm).
Hostile input and the Error/GoClear/Ping/SASrelay paths are in test_zrtp_engine_hostile.py."""
from _zrtp_pair import pair, assert_agree, Drbg, Link
from microwitch.zrtp import packet, messages as M, engine as EN
from microwitch.zrtp.cache import ZidCache, MemoryBackend
from microwitch.zrtp.engine import ZrtpSession

_CFG = {"ka": ["X255"], "hash": ["S256"], "cipher": ["AES1"], "auth": ["HS32"], "sas": ["B32"]}


def _types(pkts):
    return [M.decode(packet.parse(p)[2])["type"] for p in pkts]


def test_x255_handshake_initiator_responder():
    link = pair(_CFG, _CFG, "initiator", "responder", seed="x255").run()
    ia, ib = assert_agree(link)
    assert ia["role"] == "initiator" and ib["role"] == "responder"
    assert (ia["ka"], ia["hash"], ia["cipher"], ia["auth"], ia["sas_type"]) == ("X255", "S256", "AES1", "HS32", "B32")
    assert len(ia["sas"]) == 4 and len(ia["self_key"]) == 16 and len(ia["self_salt"]) == 14
    assert ia["cache"] == "new" and not ia["verified"]
    # the initiator's Commit stood in for its HelloACK; the whole exchange is the RFC 6189 4.1 sequence
    assert _types(link.sent["a"]) == [M.HELLO, M.COMMIT, M.DHPART2, M.CONFIRM2]
    assert _types(link.sent["b"]) == [M.HELLO, M.HELLOACK, M.DHPART1, M.CONFIRM1, M.CONF2ACK]
    # sequence numbers increase by one per packet sent
    seqs = [packet.parse(p)[0] for p in link.sent["a"]]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    assert link.a.retained_secret() == link.b.retained_secret() is not None


def test_cache_continuity_second_call_matches():
    ca = ZidCache(MemoryBackend(), rand=Drbg("za"), clock=lambda: 1000)
    cb = ZidCache(MemoryBackend(), rand=Drbg("zb"), clock=lambda: 1000)
    first = pair(_CFG, _CFG, "initiator", "responder", ca, cb, seed="c1").run()
    ia, ib = assert_agree(first)
    assert ia["cache"] == "new" and ib["cache"] == "new"
    rs1 = first.a.retained_secret()
    assert ca.lookup(cb.zid())["rs1"] == rs1 == cb.lookup(ca.zid())["rs1"]
    # roles swapped the second time: rs1 still matches on both sides and rotates into rs2
    second = pair(_CFG, _CFG, "responder", "initiator", ca, cb, seed="c2").run()
    ia, ib = assert_agree(second)
    assert ia["cache"] == "match" and ib["cache"] == "match"
    assert ia["sas"] != first.final("a")[1]["sas"] or ia["self_key"] != first.final("a")[1]["self_key"]
    e = ca.lookup(cb.zid())
    assert e["rs2"] == rs1 and e["rs1"] == second.a.retained_secret() != rs1
    assert cb.lookup(ca.zid())["rs1"] == e["rs1"]


def test_hello_retransmission_timer_t1():
    s = ZrtpSession("auto", _CFG, Drbg("t1"), None, 0)
    sent = []
    for now in range(0, 6000, 5):
        for act in s.tick(now):
            if act[0] == "send":
                sent.append((now, packet.parse(act[1])[0]))
    times = [t for t, _ in sent]
    # 50 ms doubling to a 200 ms cap (RFC 6189 6), first send plus 20 retransmissions
    assert times[:5] == [0, 50, 150, 350, 550]
    assert len(sent) == 21
    assert [q for _, q in sent] == list(range(sent[0][1], sent[0][1] + 21))
    assert s.state == "failed" and "Hello" in s.failure


KAS = ["X255", "E255", "DH3k", "DH2k", "EC25"]


def _cfg(ka, h="S256", c="AES1", a="HS32", s="B32"):
    return {"ka": [ka], "hash": [h], "cipher": [c], "auth": [a], "sas": [s]}


def _type(pkt):
    return packet.parse(pkt)[2][4:12]


def _caches(clock=lambda: 5000):
    return (ZidCache(MemoryBackend(), rand=Drbg("zid-a"), clock=clock),
            ZidCache(MemoryBackend(), rand=Drbg("zid-b"), clock=clock))


def _matrix(ka, ciphers=("AES1", "AES3")):
    """Every hash x cipher x auth x SAS combination with key agreement ka."""
    n = 0
    for h in ("S256", "S384"):
        for c in ciphers:
            for a in ("HS32", "HS80"):
                for s in ("B32", "B256"):
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
                    n += 1
    assert n == 8 * len(ciphers)


def test_every_combination_x255():
    _matrix("X255")


def test_every_combination_e255():
    _matrix("E255")


def test_every_combination_ec25():
    _matrix("EC25")


# the modular DH ones are split by cipher: AES3 doubles the secret exponent (5.1.5), and so the time under wasm
def test_every_combination_dh2k_aes1():
    _matrix("DH2k", ("AES1",))


def test_every_combination_dh2k_aes3():
    _matrix("DH2k", ("AES3",))


def test_every_combination_dh3k_aes1():
    _matrix("DH3k", ("AES1",))


def test_every_combination_dh3k_aes3():
    _matrix("DH3k", ("AES3",))


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
        commits = {}
        for w in "ab":
            commits[w] = [M.decode(packet.parse(p)[2]) for p in link.sent[w] if _type(p) == M.COMMIT]
        assert commits["a"] and commits["b"], "both sides committed"
        hvi_a = int.from_bytes(commits["a"][0]["hvi"], "big")
        hvi_b = int.from_bytes(commits["b"][0]["hvi"], "big")
        assert (ia if hvi_a > hvi_b else ib)["role"] == "initiator"


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
    # a third stream gets keys of its own (a fresh nonce)
    third = pair({"multistream": pa, "zid": first.a.zid}, {"multistream": pb, "zid": first.b.zid},
                 "initiator", "responder", seed="m2b").run()
    ta, _ = assert_agree(third)
    assert ta["self_key"] not in (ma["self_key"], ia["self_key"]) and ta["sas"] == ia["sas"]


def test_multistream_commit_without_first_stream_is_refused():
    first = pair({}, {}, "initiator", "responder", seed="m3").run()
    link = pair({"multistream": first.a.multistream_params(), "zid": first.a.zid}, {"zid": first.b.zid},
                "initiator", "responder", seed="m4")
    link.run(limit_ms=3000)
    assert link.b.state == "failed" and "Multistream" in link.b.failure
    errs = [M.decode(packet.parse(p)[2]) for p in link.sent["b"] if _type(p) == M.ERROR]
    assert errs and errs[0]["code"] == 0x53
    assert link.a.state == "failed"


def test_multistream_nonce_reuse_is_refused():
    first = pair({}, {}, "initiator", "responder", seed="m5").run()
    assert_agree(first)
    pa, pb = first.a.multistream_params(), first.b.multistream_params()
    link = pair({"multistream": pa, "zid": first.a.zid}, {"multistream": pb, "zid": first.b.zid},
                "initiator", "responder", seed="m6").run()
    assert_agree(link)
    # a peer that reuses the nonce of a stream already keyed under this ZRTPSess (4.4.3) gets Error 0x80
    replay = pair({"multistream": pa, "zid": first.a.zid}, {"multistream": pb, "zid": first.b.zid},
                  "initiator", "responder", seed="m6")
    pa["nonces"].pop()      # a's side forgets, so it commits with the same nonce again
    replay.run(limit_ms=3000)
    assert replay.b.state == "failed" and "nonce" in replay.b.failure
    errs = [M.decode(packet.parse(p)[2]) for p in replay.sent["b"] if _type(p) == M.ERROR]
    assert errs and errs[0]["code"] == 0x80
    assert not any(e[0] == "secure" for e in replay.events["a"] + replay.events["b"])


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
        kinds = [e[0] for e in link.events[w]]
        ev = [e for e in link.events[w] if e[0] == "cache_mismatch"]
        assert ev and ev[0][1]["sas"] == ia["sas"]
        assert kinds.index("cache_mismatch") < kinds.index("secure")
    # never silently accepted: the old secret stays and the verified flag is cleared until the SAS is checked
    assert ca.lookup(cb.zid())["rs1"] == old and not ca.lookup(cb.zid())["verified"]
    link.a.set_sas_verified(True)
    link.b.set_sas_verified(True)
    assert ca.lookup(cb.zid())["rs1"] == link.a.retained_secret() and ca.lookup(cb.zid())["verified"]
    ia, ib = assert_agree(pair({}, {}, "responder", "initiator", ca, cb, seed="c4").run())
    assert ia["cache"] == ib["cache"] == "match" and ia["verified"]


def test_zrtp_hash_binding():
    a = ZrtpSession("initiator", {}, Drbg("za"), None, 0)
    b = ZrtpSession("responder", {"peer_hello_hash": a.hello_hash()}, Drbg("zb"), None, 0)
    assert a.hello_hash().startswith("1.10 ") and len(a.hello_hash()) == 69
    assert_agree(Link(a, b).run())
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
    try:
        b.set_peer_hello_hash("1.10 zz")
        raise AssertionError("a malformed zrtp-hash was accepted")
    except ValueError:
        pass


def _loss(ka):
    for seed in range(8):
        link = pair({"ka": [ka]}, {"ka": [ka]}, "initiator", "responder", seed="loss%d" % seed, loss=0.2)
        link.run(limit_ms=30000)
        assert_agree(link)
        # T1/T2 (RFC 6189 6) bring it home long before the retransmission caps run out
        assert link.now < 12000, link.now


def test_twenty_percent_loss_converges_x255():
    _loss("X255")


def test_twenty_percent_loss_converges_dh3k():
    _loss("DH3k")


def test_t2_schedule_and_cap():
    a = ZrtpSession("initiator", {}, Drbg("t2a"), None, 0)
    b = ZrtpSession("responder", {}, Drbg("t2b"), None, 0)
    hello_b = b.tick(0)[0][1]
    a.tick(0)
    out = a.receive(hello_b, 0)
    assert [_type(p[1]) for p in out] == [M.COMMIT]
    # b got a's Hello (HelloACK), so only the Commit is left to retransmit
    ack = [x[1] for x in b.receive(packet.build(1, a.ssrc, a._hello), 0) if x[0] == "send"]
    a.receive(ack[0], 0)
    assert a._t1 is None
    times = []
    errors = []
    for now in range(0, 20000, 5):
        for act in a.tick(now):
            if act[0] == "send" and _type(act[1]) == M.COMMIT:
                times.append(now)
            elif act[0] == "send" and _type(act[1]) == M.ERROR:
                errors.append(M.decode(packet.parse(act[1])[2])["code"])
    assert times[:5] == [150, 450, 1050, 2250, 3450]
    assert len(times) == EN.T2_MAX
    assert a.state == "failed" and "Commit" in a.failure
    # 5.9: the peer spoke ZRTP, so it is told: Error 0xB0 (timeout), itself retransmitted on T2 and capped
    assert errors and set(errors) == {0xB0} and len(errors) <= EN.T2_MAX + 1
