"""Property tests for the SIP parser: whatever bytes come in, parse() and frame() return a Message /
an int or raise ParseError, never anything else; valid messages round-trip through to_bytes()."""
import os
import sys

from hypothesis import HealthCheck, given, settings, strategies as st

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "portable"))

from microwitch.sip.message import Message, ParseError, parse, frame, parse_via, parse_name_addr, parse_cseq  # noqa: E402
from microwitch.sip.uri import parse_uri, aor_key  # noqa: E402
import rfc4475  # noqa: E402

SEEDS = [data for _, data, _ in rfc4475.VALID] + [data for _, data, _ in rfc4475.INVALID]
VALID = [data for _, data, _ in rfc4475.VALID]
NASTY = [b"\r", b"\n", b"\r\n", b"\x00", b":", b";", b",", b"\"", b"<", b">", b"\\", b" ", b"\t", b"%",
         b"@", b"[", b"]", b"=", b"?", b"\xff", b"\xc3", b"0", b"-", b"\r\n ", b"\r\n\r\n"]
FUZZ = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _check_parse(data, stream=False):
    try:
        m = parse(data, stream)
    except ParseError as e:
        assert isinstance(e.reason, str) and e.reason
        assert not hasattr(e, "internal"), (e.internal, data)
        assert e.message is None or isinstance(e.message, Message)
        if e.message is not None:
            assert e.message.get("Via") is not None
            parse_via(e.message.get("Via"))
        return None
    assert isinstance(m, Message)
    assert isinstance(m.body, bytes)
    # anything accepted serializes and re-parses to the same fields
    again = parse(m.to_bytes(), stream)
    assert again == m
    return m


def _check_frame(data):
    try:
        n = frame(data)
    except ParseError as e:
        assert not hasattr(e, "internal"), (e.internal, data)
        return
    assert isinstance(n, int) and 0 <= n <= len(data)


def _check_helpers(text):
    for f in (parse_via, parse_name_addr, parse_cseq, parse_uri, aor_key):
        try:
            f(text)
        except ParseError:
            pass


@FUZZ
@given(st.binary(max_size=600))
def test_random_bytes(data):
    _check_parse(data)
    _check_parse(data, True)
    _check_frame(data)


@FUZZ
@given(st.sampled_from(SEEDS), st.lists(st.tuples(st.integers(0, 10000), st.integers(0, 255)), max_size=6))
def test_byte_flips(seed, flips):
    b = bytearray(seed)
    for pos, val in flips:
        if b:
            b[pos % len(b)] = val
    data = bytes(b)
    _check_parse(data)
    _check_frame(data)


@FUZZ
@given(st.sampled_from(SEEDS), st.lists(st.tuples(st.integers(0, 10000), st.sampled_from(NASTY)), min_size=1, max_size=4))
def test_insertions(seed, inserts):
    data = seed
    for pos, ins in inserts:
        p = pos % (len(data) + 1)
        data = data[:p] + ins + data[p:]
    _check_parse(data)
    _check_parse(data, True)
    _check_frame(data)


def test_truncations_at_every_offset():
    framed = 0
    for seed in VALID:
        try:
            full = frame(seed)
        except ParseError:
            full = None  # no Content-Length: not a stream message
        for i in range(len(seed) + 1):
            _check_parse(seed[:i])
            _check_frame(seed[:i])
            if full:
                # a stream prefix is incomplete until the whole first message is there, then stable
                assert frame(seed[:i]) == (0 if i < full else full)
        if full:
            framed += 1
            assert parse(seed[:full], True) == parse(seed)
    assert framed >= 10


@FUZZ
@given(st.sampled_from(VALID), st.randoms(use_true_random=False))
def test_header_order_permutations(seed, rnd):
    m = parse(seed)
    headers = list(m.headers)
    rnd.shuffle(headers)
    m.headers = headers
    again = _check_parse(m.to_bytes())
    assert again is not None
    # single-valued headers survive any order; list entries keep their relative order
    for name in ("From", "To", "Call-ID", "CSeq"):
        assert again.get(name) == m.get(name)
    assert again.get_all("Via") == m.get_all("Via")


_TOKEN = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~", min_size=1, max_size=12)
_USER = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!*_+'~", min_size=1, max_size=12)
_TEXT = st.text(max_size=40).filter(lambda s: "\r" not in s and "\n" not in s and "\x00" not in s)


@FUZZ
@given(_USER, _TOKEN, st.integers(0, 2 ** 31 - 1), _TEXT, st.binary(max_size=200),
       st.lists(st.tuples(_TOKEN, _TEXT), max_size=5), st.booleans())
def test_constructed_messages_roundtrip(user, host, cseq, display, body, extra, response):
    host = host.strip(".-").replace("..", ".").replace("%", "").replace("!", "") or "h"
    headers = [("Via", "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK" + user),
               ("From", parse_name_addr("<sip:x@example.com>").to_str() + ";tag=" + user),
               ("To", "\"" + display.replace("\\", "\\\\").replace("\"", "\\\"") + "\" <sip:y@example.com>"),
               ("Call-ID", user + "@" + host), ("CSeq", "%d MESSAGE" % cseq)]
    for n, v in extra:
        if n.lower() in ("via", "from", "to", "call-id", "cseq", "content-length", "l", "v", "f", "t", "i",
                         "max-forwards", "expires", "contact", "m", "route", "record-route") or len(n) == 1:
            continue
        headers.append(("X-" + n, v.strip()))
    if response:
        m = Message.response(200, display.strip(), headers, body)
    else:
        m = Message.request("MESSAGE", "sip:" + user + "@example.com", headers, body)
    data = m.to_bytes()
    p = _check_parse(data)
    assert p is not None
    assert p.body == body
    assert parse_name_addr(p.get("To")).display == display
    assert frame(data) == len(data)


@FUZZ
@given(st.text(max_size=80))
def test_helpers_never_crash(text):
    _check_helpers(text)


@FUZZ
@given(st.lists(st.sampled_from(["0", "1", "ab", "ffff", "12345", "", ":", "::", ".", "1.2.3.4", "255", "256", "g"]),
                max_size=12))
def test_ipv6_check_agrees_with_ipaddress(parts):
    import ipaddress
    text = ":".join(parts)
    try:
        ipaddress.IPv6Address(text)
        ok = "%" not in text
    except ValueError:
        ok = False
    try:
        u = parse_uri("sip:a@[" + text + "]")
        got = True
        assert u.host == "[" + text.lower() + "]"
    except ParseError:
        got = False
    assert got == ok, text


@FUZZ
@given(st.lists(st.sampled_from(["0", "1", "255", "256", "01", "a", "b-c", "-x", "x-", "example", "com", "", "9z", "z9"]),
                min_size=1, max_size=6), st.booleans())
def test_hostnames(labels, dot):
    host = ".".join(labels) + ("." if dot else "")
    try:
        h = parse_uri("sip:" + host).host
    except ParseError:
        return
    assert h == host.lower()
    parts = (host[:-1] if host.endswith(".") else host).split(".")
    assert all(parts) and all(p[0] != "-" and p[-1] != "-" for p in parts)
    if parts[-1].isdigit():
        assert len(parts) == 4 and all(int(p) <= 255 for p in parts)
