"""ZID cache (RFC 6189 4.6, 4.9): rotation, expiry, verified flag, crash-safe log replay, compaction and
its bound. Portable: runs under MicroPython too."""
from _zrtp_pair import Drbg
from microwitch.zrtp import cache as C
from microwitch.zrtp.cache import ZidCache, MemoryBackend

P1 = b"\x01" * 12
P2 = b"\x02" * 12


class Clock:
    def __init__(self):
        self.t = 1000

    def __call__(self):
        return self.t


def test_zid_is_created_once_and_persisted():
    be = MemoryBackend()
    c = ZidCache(be, rand=Drbg("zid"))
    z = c.zid()
    assert len(z) == 12 and c.zid() == z
    assert ZidCache(be).zid() == z          # reloaded without an RNG


def test_rotation_expiry_and_verified_flag():
    be, clk = MemoryBackend(), Clock()
    c = ZidCache(be, rand=Drbg("r"), clock=clk)
    assert c.lookup(P1) is None
    c.store(P1, b"a" * 32, 0xFFFFFFFF)
    c.store(P1, b"b" * 32, 100)
    e = c.lookup(P1)
    assert e["rs1"] == b"b" * 32 and e["rs2"] == b"a" * 32 and not e["verified"]
    c.set_verified(P1, True)
    assert c.lookup(P1)["verified"]
    clk.t += 101                             # rs1 expired, rs2 never expires
    e = ZidCache(be, clock=clk).lookup(P1)
    assert e["rs1"] is None and e["rs2"] == b"a" * 32 and e["verified"]
    c.store(P2, b"c" * 32, 0)                # interval 0: the secret is not kept (5.7)
    assert c.lookup(P2)["rs1"] is None


def test_torn_last_record_is_skipped():
    be, clk = MemoryBackend(), Clock()
    c = ZidCache(be, rand=Drbg("t"), clock=clk)
    c.zid()
    c.store(P1, b"a" * 32, 0xFFFFFFFF)
    good = be.data
    c.store(P1, b"b" * 32, 0xFFFFFFFF)
    torn = be.data[:len(good) + 20]          # a crash in the middle of the second append
    r = ZidCache(MemoryBackend(torn), clock=clk)
    assert r.lookup(P1)["rs1"] == b"a" * 32 and r.skipped == 1 and r.zid() == c.zid()
    flipped = bytearray(be.data)
    flipped[len(good) + 30] ^= 0x01          # damaged record: checksum fails, older state survives
    r = ZidCache(MemoryBackend(bytes(flipped)), clock=clk)
    assert r.lookup(P1)["rs1"] == b"a" * 32 and r.skipped == 1


def test_log_is_compacted_and_peers_are_bounded():
    be, clk = MemoryBackend(), Clock()
    c = ZidCache(be, rand=Drbg("b"), clock=clk)
    c.zid()
    for i in range(300):
        c.store(P1, bytes([i & 255]) * 32, 0xFFFFFFFF)
    lines = be.data.count(b"\n")
    assert lines <= 2 + 64 + 1               # compaction keeps superseded records under the slack
    assert ZidCache(be, clock=clk).lookup(P1)["rs1"] == bytes([299 & 255]) * 32
    for i in range(C.MAX_PEERS + 5):
        c.store(i.to_bytes(12, "big"), b"x" * 32, 0xFFFFFFFF)
    assert len(c) == C.MAX_PEERS
    assert c.lookup((0).to_bytes(12, "big")) is None     # least recently used went first
    r = ZidCache(be, clock=clk)
    assert len(r) == C.MAX_PEERS and r.lookup((C.MAX_PEERS + 4).to_bytes(12, "big"))["rs1"] == b"x" * 32


def test_set_zid_keeps_identity_across_a_lost_cache():
    from microwitch.zrtp.cache import ZidCache, MemoryBackend as _MB
    zid = b"\x01" * 12
    c = ZidCache(_MB(), rand=lambda n: b"\x02" * n)
    c.set_zid(zid)
    assert c.zid() == zid
    fresh = ZidCache(_MB(), rand=lambda n: b"\x03" * n)  # the cache file was deleted
    fresh.set_zid(zid)
    assert fresh.zid() == zid and fresh.lookup(b"\x09" * 12) is None
