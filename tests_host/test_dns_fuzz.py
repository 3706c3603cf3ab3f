"""Property tests for the DNS decoder and the resolver: whatever bytes arrive, decode() returns a Message or
raises DnsError (never anything else), accepted messages re-encode to something that decodes the same, and the
resolver survives any reply without raising."""
import os
import sys

from hypothesis import HealthCheck, given, settings, strategies as st

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "portable"))

from microwitch.dns import message as dm  # noqa: E402
from microwitch.dns.message import Message, Record, DnsError  # noqa: E402
from microwitch.dns.resolver import Resolver  # noqa: E402
from _lcg import Lcg  # noqa: E402

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_label = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=12)
_name = st.lists(_label, min_size=1, max_size=4).map(".".join)
_u16 = st.integers(0, 65535)
_rdata = st.one_of(
    st.tuples(st.just(dm.A), st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: "%d.%d.%d.%d" % t)),
    st.tuples(st.just(dm.AAAA), st.binary(min_size=16, max_size=16).map(dm.ip6_text)),
    st.tuples(st.just(dm.SRV), st.tuples(_u16, _u16, _u16, _name)),
    st.tuples(st.just(dm.NAPTR), st.tuples(_u16, _u16, st.sampled_from(["s", "a", "u", ""]),
                                           st.sampled_from(["SIP+D2U", "SIP+D2T", "E2U+SIP"]),
                                           st.text(alphabet="!^.*$sip:@", max_size=20), _name)),
    st.tuples(st.just(dm.CNAME), _name),
    st.tuples(st.just(dm.SOA), st.tuples(_name, _name, *[st.integers(0, 2 ** 32 - 1)] * 5)),
)
_record = st.builds(lambda n, t, rd: Record(n, rd[0], t, rd[1]), _name, st.integers(0, 2 ** 31 - 1), _rdata)
_message = st.builds(lambda i, f, q, an, ns: Message(i, f, [(q, dm.A, dm.IN)], an, ns),
                     _u16, st.integers(0, 65535).map(lambda f: f & ~0x0200), _name,
                     st.lists(_record, max_size=5), st.lists(_record, max_size=3))


def _decode(data, udp=True):
    try:
        return dm.decode(data, udp)
    except DnsError as e:
        assert isinstance(e.reason, str) and e.reason
        return None


def _same(a, b):
    assert a.id == b.id and a.flags == b.flags and a.questions == b.questions
    for x, y in ((a.answers, b.answers), (a.authority, b.authority)):
        assert [(r.name, r.type, r.ttl, r.data) for r in x] == [(r.name, r.type, r.ttl, r.data) for r in y]


@FUZZ
@given(st.binary(max_size=600))
def test_random_bytes_only_dns_error(data):
    _decode(data)
    _decode(data, False)


@FUZZ
@given(_message)
def test_valid_messages_round_trip(m):
    for compress in (True, False):
        wire = dm.encode(m, compress)
        d = _decode(wire, False)
        assert d is not None
        _same(d, m)
        _same(dm.decode(dm.encode(d), False), m)


@FUZZ
@given(_message, st.lists(st.tuples(st.integers(0, 10 ** 6), st.integers(0, 255)), min_size=1, max_size=8))
def test_mutated_messages_only_dns_error(m, edits):
    wire = bytearray(dm.encode(m))
    for pos, val in edits:
        wire[pos % len(wire)] = val
    _decode(bytes(wire))
    _decode(bytes(wire), False)


@FUZZ
@given(_message, st.integers(0, 10 ** 6))
def test_truncated_messages_only_dns_error(m, cut):
    wire = dm.encode(m)
    _decode(wire[:cut % (len(wire) + 1)], False)


@FUZZ
@given(st.lists(st.binary(max_size=80), max_size=6), st.binary(max_size=300))
def test_resolver_never_raises(chunks, datagram):
    r = Resolver([("10.0.0.1", 53)], Lcg(1))
    acts = r.query("b.test", dm.SRV, 0)
    qid = dm.decode(acts[0][1]).id
    # a reply with our ID in front of the random tail reaches the deeper checks
    r.on_udp(bytes([qid >> 8, qid & 0xFF]) + datagram, ("10.0.0.1", 53), 1)
    r.on_udp(datagram, ("10.0.0.1", 53), 1)
    r.query("c.test", dm.A, 2)
    for c in chunks:
        r.on_tcp(c, ("10.0.0.1", 53), 3)
    r.tick(10 ** 6)
