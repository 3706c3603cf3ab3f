"""Acceptance: malformed input over UDP and TCP leaves the real node answering OPTIONS and REGISTER normally.

Hundreds of bad datagrams and TCP streams (binary junk, truncated messages, oversized and flooded headers,
bad Content-Length, never-ending header blocks, idle connections); then OPTIONS over UDP and TCP gets 200 and
sipp registers with digest over UDP and TCP. A request parsed far enough to answer gets a 400 with a reason
(RFC 3261 §21.4.1); TCP double-CRLF keep-alive gets a single CRLF (RFC 5626 §4.4.1); a UDP CRLF gets nothing.
Idle TCP connections are closed after tcp_idle_s and one source cannot hold more than max_tcp_per_source.
All junk is generated from a fixed seed; every loop is bounded by a count or a deadline.
"""
import os
import random
import socket
import sys
import time

import pytest

import nodeproc

SEED = 3261
UDP_JUNK = 300          # datagrams of each generated family
TCP_JUNK = 120          # TCP connections carrying junk
IDLE_CONNS = 6          # connections opened and left silent (from other loopback sources)
FLOOD_LIMIT = 400000    # bytes of never-ending header block we are willing to send
MAX_MESSAGE = 65535
IDLE_S = 5              # the node's tcp_idle_s in this module (the smallest it accepts)
PER_SOURCE = 8          # the node's max_tcp_per_source in this module


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    work = str(tmp_path_factory.mktemp("robust"))
    n = nodeproc.Node(work, config=nodeproc.sipp_node_config(tcp_idle_s=IDLE_S, max_tcp_per_source=PER_SOURCE),
                      users=nodeproc.make_users(4, "z"))
    n.start()
    yield n
    n.stop()


def _req(method="OPTIONS", branch="z9hG4bKrob1", call_id="rob-1", transport="UDP", extra=(), body=b"",
         local=("127.0.0.1", 5999), content_length=None):
    data = nodeproc.sip_request(method, "sip:%s" % nodeproc.DOMAIN, branch, call_id, 1, local, extra=extra,
                                body=body, transport=transport)
    if content_length is not None:
        data = data.replace(b"Content-Length: %d\r\n" % len(body), b"Content-Length: " + content_length + b"\r\n")
    return data


def _udp_socket(timeout=0.5):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((nodeproc.HOST, 0))
    s.settimeout(timeout)
    return s


def _udp_ask(node, data, timeout=2.0):
    """Send one datagram, return the first final response (bytes) or None within timeout."""
    s = _udp_socket(timeout)
    try:
        s.sendto(data, node.udp)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                r = s.recv(65535)
            except socket.timeout:
                return None
            st = nodeproc.status_of(r)
            if st is not None and st >= 200:
                return r
        return None
    finally:
        s.close()


def _junk_datagrams(rng):
    good = _req()
    out = []
    for i in range(UDP_JUNK // 3):                     # binary junk of every size class
        n = rng.choice((1, 2, 7, 64, 512, 1400, 8000, 60000))
        out.append(bytes(rng.getrandbits(8) for _ in range(min(n, 2048))) * (n // 2048 + 1))
    for i in range(UDP_JUNK // 3):                     # truncated valid requests
        out.append(good[:rng.randrange(1, len(good) - 4)])
    for i in range(UDP_JUNK // 3):                     # one mutated byte / line
        b = bytearray(good)
        for _ in range(rng.randrange(1, 6)):
            b[rng.randrange(len(b))] = rng.getrandbits(8)
        out.append(bytes(b))
    out += [
        b"", b"\r\n", b"SIP/2.0 200 OK\r\n\r\n", b"INVITE\r\n\r\n", b"\x00" * 1000,
        good.replace(b"SIP/2.0\r\n", b"SIP/9.9\r\n", 1),
        _req(extra=["X-Long: " + "a" * 60000]),                          # one oversized header line
        _req(extra=["X-H%d: v" % i for i in range(3000)]),               # header flood
        _req(extra=["Via: SIP/2.0/UDP 10.0.0.%d;branch=z9hG4bKv%d" % (i % 250, i) for i in range(1200)]),
        _req(content_length=b"-5"), _req(content_length=b"99999999999999999999"),
        _req(body=b"x" * 40, content_length=b"4000"),
        b"REGISTER sip:localhost SIP/2.0\r\n" + b"Contact: <" * 5000 + b"\r\n\r\n",
        _req(extra=["Authorization: Digest " + "a=b," * 10000]),
        _req(method="REGISTER", extra=["Contact: <sip:%d@h>" % i for i in range(500)]),
        _req(method="REGISTER", extra=["Expires: -1", "Contact: *"]),
        _req(method="REGISTER", extra=["Authorization: Digest username=\"z00000\", nonce=\"AAAA\", "
                                       "response=\"0\", uri=\"sip:localhost\", realm=\"localhost\""]),
    ]
    return out


def _tcp_connect(node, source=nodeproc.HOST, timeout=2.0):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.bind((source, 0))
    s.connect(node.tcp)
    return s


def _tcp_junk_streams(rng):
    good = _req(transport="TCP")
    out = []
    for i in range(TCP_JUNK // 3):
        out.append(bytes(rng.getrandbits(8) for _ in range(rng.choice((1, 16, 300, 3000)))))
    for i in range(TCP_JUNK // 3):
        out.append(good[:rng.randrange(1, len(good) - 4)])
    for i in range(TCP_JUNK // 3):
        b = bytearray(good * rng.randrange(1, 4))
        for _ in range(rng.randrange(1, 6)):
            b[rng.randrange(len(b))] = rng.getrandbits(8)
        out.append(bytes(b))
    out += [
        _req(transport="TCP", content_length=b"abc"), _req(transport="TCP", content_length=b"-1"),
        _req(transport="TCP", content_length=b"70000", body=b"x" * 10),
        good.replace(b"Content-Length: 0\r\n", b""),                       # no Content-Length on a stream
        b"\r\n\r\n" * 50 + good, good + b"\x00\xff" * 100,
        _req(transport="TCP", extra=["X-H%d: v" % i for i in range(3000)]),
    ]
    return out


def _drain_closed(s, deadline):
    """True if the peer closes (EOF or reset) before the deadline; reads and discards what arrives."""
    while time.monotonic() < deadline:
        try:
            d = s.recv(65535)
        except socket.timeout:
            continue
        except OSError:
            return True
        if not d:
            return True
    return False


def _assert_healthy(node, work, tag):
    assert node.alive(), "node died:\n" + node.output()[-3000:]
    out = node.output()
    assert "Traceback" not in out, "an exception escaped to the loop:\n" + out[out.find("Traceback") - 500:][:3000]
    assert nodeproc.options_ping(("udp",) + node.udp, timeout=3) == 200
    assert nodeproc.options_ping(("tcp",) + node.tcp, timeout=3) == 200
    users = nodeproc.make_users(2, "z")
    for transport, target in (("udp", node.udp), ("tcp", node.tcp)):
        res = nodeproc.run_sipp(target, "register_auth.xml", work, users=users, count=2, transport=transport,
                                timeout_s=20, tag="%s_%s" % (tag, transport))
        assert res.rc == 0 and res.successful == 2, "%s after %s junk: %r\n%s" % (
            transport, tag, res, node.output()[-2000:])


def test_udp_junk_leaves_node_serving(node, tmp_path):
    rng = random.Random(SEED)
    s = _udp_socket(0.0)
    try:
        for d in _junk_datagrams(rng):
            try:
                s.sendto(d, node.udp)
            except OSError:
                pass   # e.g. a datagram above the IPv4 limit: nothing to test
            time.sleep(0.001)   # keep within the socket buffer; the node is not meant to be flooded here
    finally:
        s.close()
    _assert_healthy(node, str(tmp_path), "udp")


def test_tcp_junk_and_idle_connections_leave_node_serving(node, tmp_path):
    rng = random.Random(SEED + 1)
    idle = []
    try:
        for i in range(IDLE_CONNS):   # silent connections (one with half a request) from other sources
            c = _tcp_connect(node, source="127.0.0.%d" % (10 + i))
            if i == 0:
                c.sendall(_req(transport="TCP")[:40])
            idle.append(c)
        for d in _tcp_junk_streams(rng):
            c = _tcp_connect(node)
            try:
                c.sendall(d)
            except OSError:
                pass
            c.close()
        _assert_healthy(node, str(tmp_path), "tcp")
        for c in idle:   # still accepted and open (not our business to close them early), and harmless
            c.close()
    finally:
        for c in idle:
            c.close()


def test_tcp_never_ending_header_block_is_cut(node):
    """A header block that never ends is refused once it passes the message size bound: connection closed."""
    c = _tcp_connect(node)
    try:
        c.sendall(b"REGISTER sip:localhost SIP/2.0\r\n")
        sent, closed = 0, False
        line = b"X-Pad: " + b"p" * 1000 + b"\r\n"
        while sent < FLOOD_LIMIT:
            try:
                c.sendall(line)
            except OSError:
                closed = True
                break
            sent += len(line)
        if not closed:
            closed = _drain_closed(c, time.monotonic() + 5)
        assert closed, "node kept a %d-byte header block open" % sent
        assert sent <= 2 * MAX_MESSAGE + 4 * 1024 * 1024  # closed while bounded (kernel buffers may hold some)
    finally:
        c.close()
    assert nodeproc.options_ping(("tcp",) + node.tcp, timeout=3) == 200


def test_bad_content_length_gets_400_with_reason(node):
    """RFC 3261 §18.3: a UDP body shorter than Content-Length is a 400; so is a Content-Length that is not a
    number. Enough of the request parsed to answer, so the node answers with a reason."""
    for i, (body, cl) in enumerate(((b"short", b"50"), (b"", b"abc"))):
        r = _udp_ask(node, _req(branch="z9hG4bKcl%d" % i, call_id="cl-%d" % i, body=body, content_length=cl))
        assert r is not None, "no answer to a bad Content-Length (%r)" % cl
        head = r.split(b"\r\n\r\n", 1)[0].decode("latin-1")
        status_line = head.split("\r\n", 1)[0]
        assert status_line.startswith("SIP/2.0 400 "), status_line
        reason = status_line[len("SIP/2.0 400 "):].strip()
        warning = [h for h in head.split("\r\n") if h.lower().startswith("warning:")]
        assert (reason and reason.lower() != "bad request") or warning, head
        assert "call-id: cl-%d" % i in head.lower(), head   # answered in the request's own dialog coordinates


def test_tcp_keepalive_ping_gets_pong(node):
    """RFC 5626 §4.4.1: CRLFCRLF on a stream is answered with CRLF; the connection stays usable."""
    c = _tcp_connect(node)
    try:
        c.sendall(b"\r\n\r\n")
        got = b""
        deadline = time.monotonic() + 3
        while len(got) < 2 and time.monotonic() < deadline:
            try:
                d = c.recv(16)
            except socket.timeout:
                continue
            if not d:
                break
            got += d
        assert got == b"\r\n", got
        c.sendall(_req(transport="TCP", branch="z9hG4bKafterpong", call_id="after-pong",
                       local=c.getsockname()))
        buf = b""
        while b"\r\n\r\n" not in buf and time.monotonic() < deadline + 3:
            try:
                d = c.recv(65535)
            except socket.timeout:
                continue
            if not d:
                break
            buf += d
        assert nodeproc.status_of(buf) == 200, buf[:200]
    finally:
        c.close()


def test_udp_crlf_keepalive_is_ignored(node):
    s = _udp_socket(0.7)
    try:
        s.sendto(b"\r\n\r\n", node.udp)
        s.sendto(b"\r\n", node.udp)
        try:
            got = s.recv(65535)
        except socket.timeout:
            got = None
        assert got is None, got
        s.settimeout(3)
        s.sendto(_req(branch="z9hG4bKudpka", call_id="udp-ka", local=s.getsockname()), node.udp)
        assert nodeproc.status_of(s.recv(65535)) == 200
    finally:
        s.close()


def _tcp_options(c, tag):
    """OPTIONS over an open connection; the status code, or None if the node closed it / did not answer."""
    try:
        c.sendall(_req(transport="TCP", branch="z9hG4bK" + tag, call_id=tag, local=c.getsockname()))
    except OSError:
        return None
    buf = b""
    deadline = time.monotonic() + 3
    while b"\r\n\r\n" not in buf and time.monotonic() < deadline:
        try:
            d = c.recv(65535)
        except socket.timeout:
            continue
        except OSError:
            return None
        if not d:
            return None
        buf += d
    return nodeproc.status_of(buf)


def test_tcp_connections_per_source_are_bounded(node):
    conns = []
    try:
        for i in range(PER_SOURCE):
            c = _tcp_connect(node, source="127.0.0.20")
            conns.append(c)
            assert _tcp_options(c, "ps%d" % i) == 200
        extra = _tcp_connect(node, source="127.0.0.20")   # the kernel completes the handshake; the node drops it
        conns.append(extra)
        assert _tcp_options(extra, "ps-extra") is None
        other = _tcp_connect(node, source="127.0.0.21")   # another source is not affected
        conns.append(other)
        assert _tcp_options(other, "ps-other") == 200
        assert _tcp_options(conns[0], "ps-again") == 200  # nor are the connections already open
    finally:
        for c in conns:
            c.close()


def test_idle_tcp_connections_are_closed(node):
    """A connection that stays silent (or sends half a request) is closed after tcp_idle_s."""
    quiet = _tcp_connect(node, source="127.0.0.30")
    half = _tcp_connect(node, source="127.0.0.31")
    try:
        half.sendall(_req(transport="TCP")[:60])
        t0 = time.monotonic()
        deadline = t0 + IDLE_S + 6
        assert _drain_closed(quiet, deadline), "silent connection still open after %ds" % (IDLE_S + 6)
        assert _drain_closed(half, deadline), "half-request connection still open after %ds" % (IDLE_S + 6)
        assert time.monotonic() - t0 >= IDLE_S - 1.5, "closed long before tcp_idle_s"
    finally:
        quiet.close()
        half.close()
