"""Hostile input for the ZRTP engine: random and mutated packets (hypothesis) never raise out of
receive(), never trip an internal error, never make a session secure on their own, and a session's
memory stays bounded however much garbage it is fed."""
import struct
import sys

from hypothesis import given, settings, strategies as st, HealthCheck

from _zrtp_pair import pair, Drbg
from microwitch.crypto.crc32c import crc32c
from microwitch.zrtp import packet, messages as M
from microwitch.zrtp.engine import ZrtpSession

TYPES = [M.HELLO, M.HELLOACK, M.COMMIT, M.DHPART1, M.DHPART2, M.CONFIRM1, M.CONFIRM2, M.CONF2ACK, M.ERROR,
         M.ERRORACK, M.GOCLEAR, M.CLEARACK, M.SASRELAY, M.RELAYACK, M.PING, M.PINGACK]


def _record(seed="fz"):
    """The deliveries of one clean handshake: [(to, packet)]."""
    link = pair({}, {}, "initiator", "responder", seed=seed)
    log = []
    orig = link._handle

    def handle(who, actions):
        for act in actions:
            if act[0] == "send":
                log.append(("b" if who == "a" else "a", act[1]))
        orig(who, actions)
    link._handle = handle
    link.run()
    assert link.a.state == link.b.state == "secure"
    return log


_LOG = _record()


def _replay(k, seed="fz"):
    """Fresh sessions (same seed, so the same packets) after the first k deliveries."""
    link = pair({}, {}, "initiator", "responder", seed=seed)
    link.a.tick(0)
    link.b.tick(0)
    for to, pkt in _LOG[:k]:
        (link.a if to == "a" else link.b).receive(pkt, 10)
    return link


def _reseal(b):
    b = bytes(b)
    return b[:-4] + struct.pack("<I", crc32c(b[:-4]))


def _check(s, pkt):
    out = s.receive(pkt, 20)
    assert isinstance(out, list)
    assert s.last_internal_error is None, repr(s.last_internal_error)
    for act in out:
        assert act[0] in ("send", "failed", "secure", "cache_mismatch", "cache_error", "clear", "sas_relay")
        if act[0] == "send":
            packet.parse(act[1])        # whatever we send is a valid packet
    return out


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=0, max_size=600))
def test_random_bytes(data):
    s = ZrtpSession("auto", {}, Drbg("r"), None, 0)
    s.tick(0)
    assert _check(s, data) == []


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(TYPES), st.binary(max_size=520), st.integers(0, 0xFFFF), st.integers(0, len(_LOG)))
def test_well_framed_random_messages(mtype, body, seq, k):
    body = body[:len(body) & ~3]
    msg = struct.pack(">HH", 0x505A, (12 + len(body)) >> 2) + mtype + body
    link = _replay(k)
    for s in (link.a, link.b):
        before = s.state
        out = _check(s, packet.build(seq, 0x11223344, msg))
        if before == "secure":
            # RFC 6189 5.9, 10: nothing forged ends (or re-keys) an established session
            assert s.state == "secure" and [a for a in out if a[0] != "send"] == [], out


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, len(_LOG) - 1), st.integers(0, len(_LOG)), st.lists(
    st.tuples(st.integers(0, 2000), st.integers(0, 255)), min_size=1, max_size=6), st.booleans())
def test_mutated_real_packets(j, k, edits, truncate):
    to, pkt = _LOG[j]
    b = bytearray(pkt)
    for pos, val in edits:
        b[12 + pos % (len(b) - 16)] ^= val or 1
    if truncate and len(b) > 32:
        b = b[:len(b) - 8]
        b[14:16] = struct.pack(">H", (len(b) - 16) >> 2)
    link = _replay(k)
    s = link.a if to == "a" else link.b
    before = s.state
    out = _check(s, _reseal(b))
    if before != "secure":
        # forged input alone never completes a handshake that was not complete
        assert not any(a[0] == "secure" for a in out) or bytes(_reseal(b)) == pkt
    else:
        assert s.state == "secure" and [a for a in out if a[0] != "send"] == [], out


def _deep_size(obj, seen=None):
    seen = seen if seen is not None else set()
    if id(obj) in seen:
        return 0
    seen.add(id(obj))
    n = sys.getsizeof(obj)
    if isinstance(obj, dict):
        n += sum(_deep_size(k, seen) + _deep_size(v, seen) for k, v in obj.items())
    elif isinstance(obj, (list, tuple, set)):
        n += sum(_deep_size(x, seen) for x in obj)
    elif hasattr(obj, "__dict__") and not callable(obj):
        n += _deep_size(vars(obj), seen)
    return n


def test_memory_per_session_is_bounded():
    rng = Drbg("mem")
    for k in (0, 4, len(_LOG)):
        link = _replay(k)
        s = link.b
        sizes = []
        for i in range(3000):
            to, pkt = _LOG[i % len(_LOG)]
            b = bytearray(pkt)
            r = rng(3)
            b[12 + r[0] % (len(b) - 16)] ^= r[1] or 1
            s.receive(_reseal(b), 30 + i)
            s.receive(rng(r[2] + 20), 30 + i)
            s.tick(30 + i)
            if i in (500, 2999):
                sizes.append(_deep_size({k2: v for k2, v in vars(s).items() if k2 not in ("_rand", "_cache")}))
        assert s.last_internal_error is None
        assert sizes[1] <= sizes[0] + 4096, sizes      # no growth with input
        assert sizes[1] < 64 * 1024, sizes
