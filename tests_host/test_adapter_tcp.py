"""The poll-loop adapter over real loopback sockets: TCP framing, keep-alive pong, limits (CPython)."""
import socket
import threading
import time

import pytest

from microwitch import config
from microwitch.log import Logger
from microwitch.node.core import Node
from microwitch.adapter.poll_loop import PollLoop
from microwitch.store.memory import MemoryBackend
from microwitch.store.users import Users
from microwitch.store.bindings import Bindings
from microwitch.sip.message import parse


@pytest.fixture
def node_loop():
    cfg = config.load('{"listen": ["udp:127.0.0.1:0", "tcp:127.0.0.1:0"]}')
    be = MemoryBackend()
    users = Users(be)
    users.load()
    node = Node(cfg, users, Bindings(be), lambda n: b"\x01" * n, Logger("error", lambda s: None), b"k" * 32)
    loop = PollLoop(node, config.listen_addrs(cfg), node.log, max_conns=8, max_per_source=3, idle_s=600)
    t = threading.Thread(target=loop.run, daemon=True)
    t.start()
    yield loop
    loop.running = False
    t.join(3)
    loop.close()


def _port(loop, proto):
    return [b[2] for b in loop.bound if b[0] == proto][0]


def _options(branch, proto="TCP", port=5060):
    return ("OPTIONS sip:localhost SIP/2.0\r\nVia: SIP/2.0/%s 127.0.0.1:%d;branch=z9hG4bK%s\r\n"
            "From: <sip:a@localhost>;tag=1\r\nTo: <sip:localhost>\r\nCall-ID: %s\r\nCSeq: 1 OPTIONS\r\n"
            "Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n" % (proto, port, branch, branch)).encode()


def _read_responses(sock, n, timeout=3.0):
    sock.settimeout(timeout)
    buf = b""
    out = []
    deadline = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        chunk = sock.recv(65536)
        if not chunk:
            break
        buf += chunk
        while b"\r\n\r\n" in buf:
            head, _, buf = buf.partition(b"\r\n\r\n")
            out.append(parse(head + b"\r\n\r\n", stream=True))
    return out


def test_tcp_split_and_pipelined_messages(node_loop):
    c = socket.create_connection(("127.0.0.1", _port(node_loop, "tcp")), 3)
    data = _options("s1") + _options("s2")
    for i in range(0, len(data), 7):  # byte dribble across many segments
        c.sendall(data[i:i + 7])
        time.sleep(0.001)
    got = _read_responses(c, 2)
    assert [r.status for r in got] == [200, 200]
    assert [r.get("Call-ID") for r in got] == ["s1", "s2"]
    c.close()


def test_tcp_keepalive_pong(node_loop):
    c = socket.create_connection(("127.0.0.1", _port(node_loop, "tcp")), 3)
    c.sendall(b"\r\n\r\n")
    c.settimeout(3)
    assert c.recv(16) == b"\r\n"
    c.sendall(_options("k1"))  # the connection still carries SIP afterwards
    assert _read_responses(c, 1)[0].status == 200
    c.close()


def test_udp_keepalive_gets_no_answer(node_loop):
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.settimeout(0.3)
    u.sendto(b"\r\n\r\n", ("127.0.0.1", _port(node_loop, "udp")))
    with pytest.raises(socket.timeout):
        u.recv(100)
    u.sendto(_options("u1", "UDP", u.getsockname()[1]), ("127.0.0.1", _port(node_loop, "udp")))
    u.settimeout(3)
    assert parse(u.recv(65535)).status == 200


def test_per_source_connection_limit(node_loop):
    port = _port(node_loop, "tcp")
    keep = [socket.create_connection(("127.0.0.1", port), 3) for _ in range(3)]
    time.sleep(0.2)
    extra = socket.create_connection(("127.0.0.1", port), 3)
    extra.settimeout(3)
    assert extra.recv(10) == b""  # closed by the node: over max_per_source
    for k in keep:  # the first three still work
        k.sendall(_options("l%d" % keep.index(k)))
        assert _read_responses(k, 1)[0].status == 200
        k.close()


def test_unframeable_stream_closed_node_keeps_serving(node_loop):
    port = _port(node_loop, "tcp")
    bad = socket.create_connection(("127.0.0.1", port), 3)
    bad.sendall(b"OPTIONS sip:x SIP/2.0\r\nContent-Length: banana\r\n\r\n")
    bad.settimeout(3)
    assert bad.recv(100) == b""
    flood = socket.create_connection(("127.0.0.1", port), 3)
    try:
        flood.sendall(b"X" * 70000)  # a header block that never ends, over MAX_MESSAGE
        flood.settimeout(3)
        assert flood.recv(100) == b""
    except (ConnectionResetError, BrokenPipeError):
        pass
    good = socket.create_connection(("127.0.0.1", port), 3)
    good.sendall(_options("g1"))
    assert _read_responses(good, 1)[0].status == 200
    good.close()
