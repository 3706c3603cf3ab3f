"""The node core end to end without sockets: bytes in, actions out (portable).

Covers the one packet path: parse errors answered with 400 or dropped, OPTIONS, a full digest REGISTER,
retransmissions absorbed by the transaction layer, and stray methods answered honestly.
"""
from microwitch import config
from microwitch.log import Logger
from microwitch.node.core import Node
from microwitch.sip.message import parse
from microwitch.sip.digest import ha1_hex, response_hex
from microwitch.store.memory import MemoryBackend
from microwitch.store.users import Users
from microwitch.store.bindings import Bindings

SRC = ("udp", "192.0.2.7", 5062)


def _rand(n):
    return bytes(range(n))


def _node():
    cfg = config.load('{"domain": "localhost", "listen": ["udp:127.0.0.1:5060"]}')
    be = MemoryBackend()
    users = Users(be)
    users.load()
    users.add("alice@localhost", "wonderland")
    bindings = Bindings(be)
    lines = []
    node = Node(cfg, users, bindings, _rand, Logger("info", lines.append), b"k" * 32, ["127.0.0.1"])
    return node, bindings, lines


def _req(method, branch, cseq, extra="", ruri="sip:localhost"):
    return ("%s %s SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.7:5062;branch=z9hG4bK%s;rport\r\n"
            "From: <sip:alice@localhost>;tag=a1\r\nTo: <sip:alice@localhost>\r\nCall-ID: call-1\r\n"
            "CSeq: %d %s\r\nMax-Forwards: 70\r\n%sContent-Length: 0\r\n\r\n"
            % (method, ruri, branch, cseq, method, extra)).encode()


def _one(actions):
    assert len(actions) == 1, actions
    kind, data, addr = actions[0]
    assert kind == "send"
    return parse(data), addr


def test_options_answered_with_rport():
    node, _, lines = _node()
    resp, addr = _one(node.receive(_req("OPTIONS", "o1", 1), SRC, 0, 1000))
    assert resp.status == 200
    assert addr == SRC
    assert "rport=5062" in resp.get("Via")
    assert "OPTIONS" in lines[-1] and "200" in lines[-1]


def test_register_with_digest():
    node, bindings, lines = _node()
    contact = "Contact: <sip:alice@192.0.2.7:5062>\r\n"
    resp, _ = _one(node.receive(_req("REGISTER", "r1", 1, contact), SRC, 0, 1000))
    assert resp.status == 401
    chal = [v for v in resp.get_all("WWW-Authenticate") if "MD5" in v][0]
    nonce = chal.split('nonce="')[1].split('"')[0]
    ha1 = ha1_hex("MD5", "alice", "localhost", "wonderland")
    r = response_hex("MD5", ha1, nonce, "00000001", "c0ffee", "auth", "REGISTER", "sip:localhost")
    auth = ('Authorization: Digest username="alice", realm="localhost", nonce="%s", uri="sip:localhost", '
            'response="%s", algorithm=MD5, qop=auth, nc=00000001, cnonce="c0ffee"\r\n' % (nonce, r))
    req = _req("REGISTER", "r2", 2, contact + auth)
    resp, _ = _one(node.receive(req, SRC, 10, 1000))
    assert resp.status == 200, resp.reason
    assert "sip:alice@192.0.2.7:5062" in resp.get("Contact")
    assert len(bindings.lookup("sip:alice@localhost", 1000)) == 1
    # a retransmission is answered from the transaction, not re-authenticated (the nc would be a replay)
    again, _ = _one(node.receive(req, SRC, 20, 1000))
    assert again.status == 200
    assert "password" not in " ".join(lines) and "wonderland" not in " ".join(lines)


def test_wrong_password_never_200():
    node, bindings, _ = _node()
    resp, _ = _one(node.receive(_req("REGISTER", "w1", 1, "Contact: <sip:alice@192.0.2.7>\r\n"), SRC, 0, 1000))
    nonce = [v for v in resp.get_all("WWW-Authenticate") if "MD5" in v][0].split('nonce="')[1].split('"')[0]
    ha1 = ha1_hex("MD5", "alice", "localhost", "guess")
    r = response_hex("MD5", ha1, nonce, "00000001", "c", "auth", "REGISTER", "sip:localhost")
    auth = ('Authorization: Digest username="alice", realm="localhost", nonce="%s", uri="sip:localhost", '
            'response="%s", algorithm=MD5, qop=auth, nc=00000001, cnonce="c"\r\n' % (nonce, r))
    resp, _ = _one(node.receive(_req("REGISTER", "w2", 2, "Contact: <sip:alice@192.0.2.7>\r\n" + auth),
                                SRC, 5, 1000))
    assert resp.status == 401
    assert bindings.lookup("sip:alice@localhost", 1000) == []


def test_bad_content_length_gets_400_with_reason():
    node, _, _ = _node()
    data = _req("OPTIONS", "b1", 1).replace(b"Content-Length: 0", b"Content-Length: 50")
    resp, addr = _one(node.receive(data, SRC, 0, 1000))
    assert resp.status == 400
    assert resp.get("Warning").startswith("399 localhost")
    assert addr == SRC


def test_junk_is_dropped_silently():
    node, _, lines = _node()
    for junk in (b"\x00\xff" * 40, b"HELLO\r\n\r\n", b"SIP/2.0 200\r\n", b"INVITE sip:x SIP/2.0\r\n"):
        assert node.receive(junk, SRC, 0, 1000) == []
    assert lines and lines[-1].startswith("INFO DROP")


def test_udp_keepalive_ignored():
    node, _, _ = _node()
    assert node.receive(b"\r\n\r\n", SRC, 0, 1000) == []
    assert node.receive(b"\r\n", SRC, 0, 1000) == []


def test_request_for_unknown_local_user_is_404():
    node, _, _ = _node()
    req = _req("MESSAGE", "m1", 1, ruri="sip:nobody@localhost").replace(b"sip:alice@localhost>;tag=a1",
                                                                       b"sip:carol@remote.example>;tag=a1")
    resp, _ = _one(node.receive(req, SRC, 0, 1000))
    assert resp.status == 404
