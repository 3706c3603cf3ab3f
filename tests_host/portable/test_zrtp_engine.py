"""Two instances of the ZRTP engine agree (RFC 6189), portable subset: X255/S256/AES1/HS32/B32 and one
key-continuity run with in-memory ZID caches; Hello timers. Runs under MicroPython too."""
from _zrtp_pair import pair, assert_agree, Drbg
from microwitch.zrtp import packet, messages as M
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
