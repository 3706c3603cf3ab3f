"""The forwarding proxy through the node core, sans-I/O (portable): forks, best response, CANCEL, Record-Route
with flow tokens, in-dialog routing, auth and relay rules, loops and hop limits. Bodies must pass byte for byte.
"""
from microwitch import config
from microwitch.log import Logger
from microwitch.node.core import Node
from microwitch.sip.message import parse
from microwitch.sip.digest import ha1_hex, response_hex
from microwitch.store.memory import MemoryBackend
from microwitch.store.users import Users
from microwitch.store.bindings import Bindings, Binding

ME = ("udp", "127.0.0.1", 5060)
CALLER = ("udp", "198.51.100.9", 5070)
BOB1 = ("udp", "203.0.113.1", 40001)
BOB2 = ("udp", "203.0.113.2", 40002)
SDP = b"v=0\r\no=- 1 1 IN IP4 10.0.0.9\r\ns=-\r\nc=IN IP4 10.0.0.9\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n" \
      b"a=zrtp-hash:1.10 00ff\r\n"
WALL = 100000


def _rand(n):
    return b"\x5a" * n


def _node(contacts=(BOB1, BOB2), extra="", alice_at=None):
    """A node serving localhost with alice and bob; bob bound at `contacts`, alice at `alice_at` if given;
    `extra` adds config keys."""
    cfg = config.load('{"domain": "localhost", "listen": ["udp:127.0.0.1:5060"]%s}' % extra)
    be = MemoryBackend()
    users = Users(be)
    users.load()
    users.add("alice@localhost", "wonderland")
    users.add("bob@localhost", "builder")
    bindings = Bindings(be)
    bl = []
    for i, src in enumerate(contacts):
        bl.append(Binding("sip:bob@10.1.0.%d:5060" % (i + 1), WALL + 3600, 3600, "reg%d" % i, 1, src))
    if bl:
        bindings.update("sip:bob@localhost", bl, WALL)
    if alice_at is not None:
        bindings.update("sip:alice@localhost", [Binding("sip:alice@10.2.0.1:5060", WALL + 3600, 3600, "ra", 1,
                                                        alice_at)], WALL)
    lines = []
    node = Node(cfg, users, bindings, _rand, Logger("debug", lines.append), b"s" * 32, ["127.0.0.1"])
    node.set_listen([ME])
    return node


def _invite(frm="sip:carol@remote.example", to="sip:bob@localhost", branch="inv1", extra="", mf=70, via=None):
    via = via or "SIP/2.0/UDP 198.51.100.9:5070;branch=z9hG4bK%s;rport" % branch
    head = ("INVITE %s SIP/2.0\r\nVia: %s\r\nMax-Forwards: %d\r\nFrom: <%s>;tag=c1\r\nTo: <%s>\r\n"
            "Call-ID: call-x\r\nCSeq: 1 INVITE\r\nContact: <sip:carol@198.51.100.9:5070>\r\n%s"
            "Content-Type: application/sdp\r\nContent-Length: %d\r\n\r\n" % (to, via, mf, frm, to, extra, len(SDP)))
    return head.encode() + SDP


def _sends(actions):
    return [(parse(a[1]), a[2]) for a in actions if a[0] == "send"]


def _to(sends, addr):
    return [m for m, a in sends if a == addr]


def _answer(req, status, reason, tag="b1", body=b""):
    """A UAS response to a forwarded request (copies Via list, adds a To tag and a Contact)."""
    lines = ["SIP/2.0 %d %s" % (status, reason)]
    for v in req.get_all("Via"):
        lines.append("Via: " + v)
    for rr in req.get_all("Record-Route"):
        lines.append("Record-Route: " + rr)
    lines.append("From: " + req.get("From"))
    lines.append("To: " + req.get("To") + (";tag=" + tag if status > 100 else ""))
    lines.append("Call-ID: " + req.get("Call-ID"))
    lines.append("CSeq: " + req.get("CSeq"))
    lines.append("Contact: <" + req.uri + ">")
    lines.append("Content-Length: %d" % len(body))
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def test_fork_to_all_contacts_with_untouched_body_and_record_route():
    node = _node()
    sends = _sends(node.receive(_invite(), CALLER, 0, WALL))
    assert _to(sends, CALLER)[0].status == 100
    b1 = _to(sends, BOB1)[0]
    b2 = _to(sends, BOB2)[0]
    for req, n in ((b1, 1), (b2, 2)):
        assert req.method == "INVITE"
        assert req.uri == "sip:bob@10.1.0.%d:5060" % n
        assert req.body == SDP  # never touches media
        assert req.get("Max-Forwards") == "69"
        assert req.get("Record-Route").endswith("@127.0.0.1:5060;lr>")
        assert req.get_all("Via")[0].startswith("SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKmw")
        assert "received=198.51.100.9" in req.get_all("Via")[1]
    assert b1.get_all("Via")[0] != b2.get_all("Via")[0]


def test_first_2xx_wins_others_cancelled_and_dialog_routes_through_flows():
    node = _node()
    sends = _sends(node.receive(_invite(), CALLER, 0, WALL))
    b1 = _to(sends, BOB1)[0]
    b2 = _to(sends, BOB2)[0]
    ring = _sends(node.receive(_answer(b2, 180, "Ringing", "t2"), BOB2, 10, WALL))
    up = _to(ring, CALLER)[0]
    assert up.status == 180 and len(up.get_all("Via")) == 1  # our Via removed
    ok_body = b"v=0\r\nanswer-sdp\r\n"
    sends = _sends(node.receive(_answer(b1, 200, "OK", "t1", ok_body), BOB1, 20, WALL))
    up = _to(sends, CALLER)[0]
    assert up.status == 200 and up.body == ok_body
    cancels = _to(sends, BOB2)
    assert len(cancels) == 1 and cancels[0].method == "CANCEL"
    assert cancels[0].get("Via") == b2.get_all("Via")[0]  # §9.1: same branch as the INVITE it cancels
    # the cancelled branch answers 487: ACKed hop by hop, nothing more upstream
    sends = _sends(node.receive(_answer(b2, 487, "Request Terminated", "t2"), BOB2, 30, WALL))
    assert [m.method for m in _to(sends, BOB2)] == ["ACK"]
    assert _to(sends, CALLER) == []
    # ACK and BYE from the caller carry the Record-Route as Route and reach bob's flow (NAT source)
    rr = up.get("Record-Route")
    ack = ("ACK sip:bob@10.1.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 198.51.100.9:5070;branch=z9hG4bKack1\r\n"
           "Route: %s\r\nMax-Forwards: 70\r\nFrom: <sip:carol@remote.example>;tag=c1\r\n"
           "To: <sip:bob@localhost>;tag=t1\r\nCall-ID: call-x\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n" % rr)
    sends = _sends(node.receive(ack.encode(), CALLER, 40, WALL))
    assert [m.method for m in _to(sends, BOB1)] == ["ACK"]
    assert _to(sends, BOB1)[0].get("Route") is None
    bye = ("BYE sip:carol@198.51.100.9:5070 SIP/2.0\r\nVia: SIP/2.0/UDP 10.1.0.1:5060;branch=z9hG4bKbye1;rport\r\n"
           "Route: %s\r\nMax-Forwards: 70\r\nFrom: <sip:bob@localhost>;tag=t1\r\n"
           "To: <sip:carol@remote.example>;tag=c1\r\nCall-ID: call-x\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n"
           % rr)
    sends = _sends(node.receive(bye.encode(), BOB1, 50, WALL))
    fwd = _to(sends, CALLER)
    assert [m.method for m in fwd] == ["BYE"]
    sends = _sends(node.receive(_answer(fwd[0], 200, "OK", "c1"), CALLER, 60, WALL))
    assert [m.status for m in _to(sends, BOB1)] == [200]


def test_best_response_when_all_branches_fail():
    node = _node()
    sends = _sends(node.receive(_invite(), CALLER, 0, WALL))
    b1 = _to(sends, BOB1)[0]
    b2 = _to(sends, BOB2)[0]
    sends = _sends(node.receive(_answer(b1, 486, "Busy Here", "t1"), BOB1, 10, WALL))
    assert _to(sends, CALLER) == []  # waits for the other branch
    sends = _sends(node.receive(_answer(b2, 404, "Not Found", "t2"), BOB2, 20, WALL))
    assert [m.status for m in _to(sends, CALLER)] == [404]  # 4xx: lowest class wins, then lowest code


def test_6xx_ends_the_fork():
    node = _node()
    sends = _sends(node.receive(_invite(), CALLER, 0, WALL))
    b1 = _to(sends, BOB1)[0]
    b2 = _to(sends, BOB2)[0]
    node.receive(_answer(b2, 180, "Ringing", "t2"), BOB2, 5, WALL)
    sends = _sends(node.receive(_answer(b1, 603, "Decline", "t1"), BOB1, 10, WALL))
    assert [m.method for m in _to(sends, BOB2)] == ["CANCEL"]
    sends = _sends(node.receive(_answer(b2, 487, "Request Terminated", "t2"), BOB2, 20, WALL))
    assert [m.status for m in _to(sends, CALLER)] == [603]


def test_cancel_from_caller_propagates_and_487():
    node = _node()
    sends = _sends(node.receive(_invite(), CALLER, 0, WALL))
    b1 = _to(sends, BOB1)[0]
    b2 = _to(sends, BOB2)[0]
    node.receive(_answer(b1, 180, "Ringing", "t1"), BOB1, 5, WALL)
    sends = _sends(node.receive(_cancel_of(_invite()), CALLER, 10, WALL))
    assert [m.status for m in _to(sends, CALLER)] == [200]
    assert [m.method for m in _to(sends, BOB1)] == ["CANCEL"]
    assert _to(sends, BOB2) == []  # §9.1: no provisional yet, its CANCEL waits
    sends = _sends(node.receive(_answer(b2, 180, "Ringing", "t2"), BOB2, 15, WALL))
    assert [m.method for m in _to(sends, BOB2)] == ["CANCEL"]
    node.receive(_answer(b1, 487, "Request Terminated", "t1"), BOB1, 20, WALL)
    sends = _sends(node.receive(_answer(b2, 487, "Request Terminated", "t2"), BOB2, 25, WALL))
    assert [m.status for m in _to(sends, CALLER)] == [487]


def _ticks(node, t0, t1):
    """(time, message, destination) of everything the node sends while its clock runs from t0 to t1."""
    got = []
    t = t0
    while t < t1:
        t += 500
        got.extend((t, m, a) for m, a in _sends(node.tick(t, WALL)))
    return got


def _cancel_of(invite):
    c = invite.split(b"\r\n\r\n")[0].replace(b"INVITE sip", b"CANCEL sip").replace(b"1 INVITE", b"1 CANCEL")
    return c.replace(b"Content-Length: %d" % len(SDP), b"Content-Length: 0") + b"\r\n\r\n"


def test_timer_c_cancels_a_ringing_branch_then_gives_up_with_408():
    node = _node(contacts=(BOB1,))
    b1 = _to(_sends(node.receive(_invite(), CALLER, 0, WALL)), BOB1)[0]
    node.receive(_answer(b1, 180, "Ringing", "t1"), BOB1, 10, WALL)
    got = _ticks(node, 10, 250000)  # bob rings and never answers, not even the CANCEL's 487
    cancels = [t for t, m, a in got if a == BOB1 and m.method == "CANCEL"]
    assert cancels and 181000 <= cancels[0] <= 182000  # §16.8: Timer C, reset by the 180 at 10 ms
    up = [(t, m.status) for t, m, a in got if a == CALLER]
    assert up and up[0][1] == 408 and up[0][0] - cancels[0] <= 32500, up  # §9.1: given up 64·T1 later
    assert len(node.proxy._by_server) == 0 and node.proxy._by_client == {}  # nothing left behind
    node.receive(_answer(b1, 487, "Request Terminated", "t1"), BOB1, 250500, WALL)  # a late final: no crash
    assert [m.status for m, a in _sends(node.tick(251000, WALL)) if a == CALLER] in ([], [408])


def test_cancelled_branch_that_never_answers_still_ends_the_call_with_487():
    node = _node(contacts=(BOB1,))
    b1 = _to(_sends(node.receive(_invite(), CALLER, 0, WALL)), BOB1)[0]
    node.receive(_answer(b1, 180, "Ringing", "t1"), BOB1, 10, WALL)
    sends = _sends(node.receive(_cancel_of(_invite()), CALLER, 20, WALL))
    assert [m.status for m in _to(sends, CALLER)] == [200] and [m.method for m in _to(sends, BOB1)] == ["CANCEL"]
    node.receive(_answer(b1, 180, "Ringing", "t1"), BOB1, 1000, WALL)  # a late 1xx does not restart Timer C
    got = _ticks(node, 20, 60000)
    up = [(t, m.status) for t, m, a in got if a == CALLER]
    assert up and up[0][1] == 487 and 32000 <= up[0][0] <= 33000, up
    assert len(node.proxy._by_server) == 0


def test_unanswered_branches_time_out_to_408():
    node = _node(contacts=(BOB1,))
    node.receive(_invite(), CALLER, 0, WALL)
    got = []
    t = 0
    while t < 40000:
        t += 500
        got.extend(_sends(node.tick(t, WALL)))
    up = [m.status for m, a in got if a == CALLER]
    assert up[0] == 408 and set(up) == set([408])  # Timer B -> 408, retransmitted until the caller ACKs


def test_local_caller_must_authenticate_and_match_from():
    node = _node()
    resp = _to(_sends(node.receive(_invite(frm="sip:alice@localhost"), CALLER, 0, WALL)), CALLER)[0]
    assert resp.status == 407
    chal = [v for v in resp.get_all("Proxy-Authenticate") if "MD5" in v][0]
    nonce = chal.split('nonce="')[1].split('"')[0]

    def creds(user, pw, nc):
        ha1 = ha1_hex("MD5", user, "localhost", pw)
        r = response_hex("MD5", ha1, nonce, nc, "cn", "auth", "INVITE", "sip:bob@localhost")
        return ('Proxy-Authorization: Digest username="%s", realm="localhost", nonce="%s", '
                'uri="sip:bob@localhost", response="%s", algorithm=MD5, qop=auth, nc=%s, cnonce="cn"\r\n'
                % (user, nonce, r, nc))
    # bob's valid credentials but From alice: refused
    sends = _sends(node.receive(_invite(frm="sip:alice@localhost", branch="i2", extra=creds("bob", "builder",
                                                                                       "00000001")),
                                CALLER, 10, WALL))
    assert _to(sends, CALLER)[0].status == 403
    sends = _sends(node.receive(_invite(frm="sip:alice@localhost", branch="i3",
                                        extra=creds("alice", "wonderland", "00000002")), CALLER, 20, WALL))
    fwd = _to(sends, BOB1)[0]
    assert fwd.get("Proxy-Authorization") is None  # our credentials do not travel on
    # the same nonce count again is a replay
    sends = _sends(node.receive(_invite(frm="sip:alice@localhost", branch="i4",
                                        extra=creds("alice", "wonderland", "00000002")), CALLER, 30, WALL))
    assert _to(sends, CALLER)[0].status == 407


def test_never_an_open_relay():
    node = _node()
    sends = _sends(node.receive(_invite(to="sip:someone@198.51.100.200"), CALLER, 0, WALL))
    assert [m.status for m in _to(sends, CALLER)] == [403]
    assert len(sends) == 1


def test_hop_limit_and_loop():
    node = _node()
    sends = _sends(node.receive(_invite(mf=0), CALLER, 0, WALL))
    assert [m.status for m in _to(sends, CALLER)] == [483]
    # a request that already went through us with the same loop hash comes back: 482
    first = _to(_sends(node.receive(_invite(branch="l1"), CALLER, 10, WALL)), BOB1)[0]
    looped = first.to_bytes().replace(b"sip:bob@10.1.0.1:5060", b"sip:bob@localhost", 1)
    sends = _sends(node.receive(looped, BOB1, 20, WALL))
    assert 482 in [m.status for m in _to(sends, BOB1)]


def test_user_without_contacts_gets_480():
    node = _node(contacts=())
    sends = _sends(node.receive(_invite(), CALLER, 0, WALL))
    assert [m.status for m in _to(sends, CALLER)] == [480]


def test_listen_address_on_another_port_is_a_phone_not_the_node():
    """Regression: a Request-URI with the node's IP but another port (a phone on the same box) was taken as a
    local user name and answered 404 (or sent to that user's contacts). It is another host to the node: a
    request for it outside a dialog of ours falls under the relay rule (403 unauthenticated), never the
    local user table."""
    node = _node()
    bye = ("BYE sip:carol@127.0.0.1:5099 SIP/2.0\r\nVia: SIP/2.0/UDP 203.0.113.1:40001;branch=z9hG4bKbyeX\r\n"
           "Max-Forwards: 70\r\nFrom: <sip:bob@localhost>;tag=t1\r\nTo: <sip:carol@remote.example>;tag=c1\r\n"
           "Call-ID: call-y\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n")
    sends = _sends(node.receive(bye.encode(), BOB1, 0, WALL))
    assert [m.status for m in _to(sends, BOB1)] == [403]
    # the node's own address and port still mean the node's users
    sends = _sends(node.receive(_invite(to="sip:bob@127.0.0.1:5060", branch="own"), CALLER, 10, WALL))
    assert [m.method for m in _to(sends, BOB1)] == ["INVITE"]


def test_double_record_route_faces_each_side():
    """Regression (RFC 5658, RFC 3261 §12.1): a TCP caller and a UDP callee. The callee's route set is the
    Record-Route list in order, the caller's is its reverse, so the top entry must be the node's UDP address
    and the bottom one its TCP address. They were the other way round: a UDP-only callee hanging up would
    have had to open TCP to the node, and the caller would have sent its ACK/BYE over UDP."""
    node = _node(contacts=(BOB1,))
    node.set_listen([("tcp", "127.0.0.1", 5062)])
    tcp_caller = ("tcp", "198.51.100.9", 50123)
    inv = _invite(via="SIP/2.0/TCP 198.51.100.9:5070;branch=z9hG4bKtcp1;rport")
    sends = _sends(node.receive(inv, tcp_caller, 0, WALL))
    fwd = _to(sends, BOB1)[0]
    rr = fwd.get_all("Record-Route")
    assert len(rr) == 2
    assert rr[0].endswith("@127.0.0.1:5060;lr>"), rr                  # faces the callee (UDP)
    assert rr[1].endswith("@127.0.0.1:5062;transport=tcp;lr>"), rr    # faces the caller (TCP)
    ok = _sends(node.receive(_answer(fwd, 200, "OK", "t1"), BOB1, 10, WALL))
    up = _to(ok, tcp_caller)[0]
    assert up.get_all("Record-Route") == rr                           # passed upstream untouched
    # the callee hangs up along its route set (first entry: our UDP side): the BYE reaches the TCP caller
    bye = ("BYE sip:carol@198.51.100.9:5070;transport=tcp SIP/2.0\r\n"
           "Via: SIP/2.0/UDP 10.1.0.1:5060;branch=z9hG4bKbyeT;rport\r\nRoute: %s\r\nRoute: %s\r\n"
           "Max-Forwards: 70\r\nFrom: <sip:bob@localhost>;tag=t1\r\nTo: <sip:carol@remote.example>;tag=c1\r\n"
           "Call-ID: call-x\r\nCSeq: 5 BYE\r\nContent-Length: 0\r\n\r\n" % (rr[0], rr[1]))
    sends = _sends(node.receive(bye.encode(), BOB1, 20, WALL))
    out = _to(sends, tcp_caller)
    assert [m.method for m in out] == ["BYE"] and out[0].get("Route") is None


def test_forked_message_2xx_cancels_nothing():
    """Regression (RFC 3261 §9.1, §16.7 step 10): a MESSAGE forked to two contacts, one says 100 and the other
    200. The 200 goes upstream and no CANCEL is sent (CANCEL is for INVITE only); it used to CANCEL the MESSAGE."""
    node = _node()
    msg = _invite().replace(b"INVITE sip:", b"MESSAGE sip:").replace(b"1 INVITE", b"1 MESSAGE")
    sends = _sends(node.receive(msg, CALLER, 0, WALL))
    assert _to(sends, CALLER) == []   # no 100 Trying for non-INVITE
    b1 = _to(sends, BOB1)[0]
    b2 = _to(sends, BOB2)[0]
    assert b1.method == "MESSAGE" and b1.body == SDP
    node.receive(_answer(b2, 100, "Trying", "t2"), BOB2, 5, WALL)
    sends = _sends(node.receive(_answer(b1, 200, "OK", "t1"), BOB1, 10, WALL))
    assert [m.status for m in _to(sends, CALLER)] == [200]
    assert _to(sends, BOB2) == []


def test_to_tag_or_preloaded_route_without_our_token_is_not_a_dialog():
    """Open-relay regression: only our flow token, from one end of its dialog, makes a request in-dialog."""
    node = _node()
    fake = _invite(to="sip:victim@198.51.100.200", branch="fk1").replace(
        b"To: <sip:victim@198.51.100.200>", b"To: <sip:victim@198.51.100.200>;tag=fake")
    sends = _sends(node.receive(fake, CALLER, 0, WALL))
    assert [m.status for m, a in sends if a == CALLER and m.status >= 200] == [403]
    assert [a for m, a in sends if a != CALLER] == []
    pre = _invite(to="sip:victim@198.51.100.200", branch="fk2",
                  extra="Route: <sip:198.51.100.200;lr>\r\n")
    sends = _sends(node.receive(pre, CALLER, 10, WALL))
    assert [m.status for m, a in sends if a == CALLER and m.status >= 200] == [403]
    assert [a for m, a in sends if a != CALLER] == []
    # a real token replayed from a third address is no dialog either
    first = _sends(node.receive(_invite(branch="rt1"), CALLER, 20, WALL))
    rr = _to(first, BOB1)[0].get("Record-Route")
    bye = ("BYE sip:victim@198.51.100.200 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.99:5060;branch=z9hG4bKx9;rport\r\n"
           "Route: %s\r\nMax-Forwards: 70\r\nFrom: <sip:m@evil.example>;tag=a\r\nTo: <sip:v@x>;tag=b\r\n"
           "Call-ID: x\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n" % rr)
    sends = _sends(node.receive(bye.encode(), ("udp", "192.0.2.99", 5060), 30, WALL))
    assert [m.status for m, a in sends] == [403]


# -- issue #5 review gaps: strict routers, 2xx retransmissions, in-dialog methods, short dialling ------------
def _request(method, uri, via, frm, to, cseq, routes=(), extra="", body=b"", call_id="call-x"):
    """A request as a UA sends it: `via` is the sender's Via value, `routes` its route set in order."""
    lines = ["%s %s SIP/2.0" % (method, uri), "Via: " + via]
    for r in routes:
        lines.append("Route: " + r)
    lines += ["Max-Forwards: 70", "From: " + frm, "To: " + to, "Call-ID: " + call_id,
              "CSeq: %d %s" % (cseq, method)]
    if extra:
        lines.append(extra)
    lines.append("Content-Length: %d" % len(body))
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _call(node):
    """carol (CALLER, foreign) calls bob (one contact, BOB1) and bob answers: (INVITE bob got, 200 carol got)."""
    b1 = _to(_sends(node.receive(_invite(), CALLER, 0, WALL)), BOB1)[0]
    up = _to(_sends(node.receive(_answer(b1, 200, "OK", "t1"), BOB1, 10, WALL)), CALLER)[0]
    return b1, up


_CAROL = "<sip:carol@remote.example>;tag=c1"
_BOB = "<sip:bob@localhost>;tag=t1"
_CAROL_URI = "sip:carol@198.51.100.9:5070"   # carol's Contact (remote target for bob)
_BOB_URI = "sip:bob@10.1.0.1:5060"           # bob's Contact (remote target for carol)


def _uri_of(name_addr):
    return name_addr.split("<", 1)[1].split(">", 1)[0]


def test_strict_router_before_us_the_last_route_becomes_the_request_uri():
    """RFC 3261 §16.4: a strict router before us puts our Record-Route URI in the Request-URI and the remote
    target at the end of the Route set. We must restore the Request-URI from that last Route and drop it."""
    node = _node(contacts=(BOB1,))
    b1, up = _call(node)
    ours = _uri_of(up.get("Record-Route"))
    assert ours.startswith("sip:mw") and ours.endswith(";lr")
    bye = _request("BYE", ours, "SIP/2.0/UDP 198.51.100.9:5070;branch=z9hG4bKsr1;rport", _CAROL,
                   "<sip:bob@localhost>;tag=t1", 2, routes=("<%s>" % _BOB_URI,))
    out = _to(_sends(node.receive(bye, CALLER, 20, WALL)), BOB1)
    assert [m.method for m in out] == ["BYE"]
    assert out[0].uri == _BOB_URI
    assert out[0].get_all("Route") == []
    # a Route set longer than the remote target: the entries before it travel on, in order
    nxt = "<sip:p2.example;lr>"
    bye = _request("BYE", ours, "SIP/2.0/UDP 198.51.100.9:5070;branch=z9hG4bKsr2;rport", _CAROL,
                   "<sip:bob@localhost>;tag=t1", 3, routes=(nxt, "<%s>" % _BOB_URI))
    out = _to(_sends(node.receive(bye, CALLER, 30, WALL)), BOB1)
    assert [m.method for m in out] == ["BYE"]
    assert out[0].uri == _BOB_URI and out[0].get_all("Route") == [nxt]
    # and the answer comes back to carol
    ok = _to(_sends(node.receive(_answer(out[0], 200, "OK", "t1"), BOB1, 40, WALL)), CALLER)
    assert [m.status for m in ok] == [200] and ok[0].get("CSeq") == "3 BYE"


def test_strict_router_after_us_gets_the_request_uri_pushed_onto_the_route_set():
    """RFC 3261 §16.6 step 6: the next hop is a strict router (its Route has no `lr`): it receives its own URI
    as the Request-URI and the original Request-URI as the last Route value."""
    node = _node(contacts=(BOB1,))
    b1, up = _call(node)
    rr = up.get("Record-Route")
    strict = "<sip:sr@203.0.113.1:40001>"  # bob's side of the dialog is a strict router (at BOB1)
    bye = _request("BYE", _BOB_URI, "SIP/2.0/UDP 198.51.100.9:5070;branch=z9hG4bKsr3;rport", _CAROL,
                   "<sip:bob@localhost>;tag=t1", 2, routes=(rr, strict, "<sip:p3.example;lr>"))
    out = _to(_sends(node.receive(bye, CALLER, 20, WALL)), BOB1)
    assert [m.method for m in out] == ["BYE"]
    assert out[0].uri == "sip:sr@203.0.113.1:40001"
    assert out[0].get_all("Route") == ["<sip:p3.example;lr>", "<%s>" % _BOB_URI]
    ack = _request("ACK", _BOB_URI, "SIP/2.0/UDP 198.51.100.9:5070;branch=z9hG4bKsr4", _CAROL,
                   "<sip:bob@localhost>;tag=t1", 1, routes=(rr, strict))  # the stateless ACK path too
    out = _to(_sends(node.receive(ack, CALLER, 25, WALL)), BOB1)
    assert [m.method for m in out] == ["ACK"]
    assert out[0].uri == "sip:sr@203.0.113.1:40001" and out[0].get_all("Route") == ["<%s>" % _BOB_URI]
    # a preloaded strict Route from an authenticated local caller: the same rewrite, sent to the router
    node = _node(contacts=(BOB1,))
    resp = _to(_sends(node.receive(_invite(frm="sip:alice@localhost", branch="pl0"), CALLER, 0, WALL)), CALLER)[0]
    nonce = [v for v in resp.get_all("Proxy-Authenticate") if "MD5" in v][0].split('nonce="')[1].split('"')[0]
    ha1 = ha1_hex("MD5", "alice", "localhost", "wonderland")
    r = response_hex("MD5", ha1, nonce, "00000001", "cn", "auth", "INVITE", "sip:bob@localhost")
    creds = ('Proxy-Authorization: Digest username="alice", realm="localhost", nonce="%s", '
             'uri="sip:bob@localhost", response="%s", algorithm=MD5, qop=auth, nc=00000001, cnonce="cn"\r\n'
             'Route: <sip:gw@192.0.2.7:5080>\r\n' % (nonce, r))
    sends = _sends(node.receive(_invite(frm="sip:alice@localhost", branch="pl1", extra=creds), CALLER, 10, WALL))
    out = _to(sends, ("udp", "192.0.2.7", 5080))
    assert [m.method for m in out] == ["INVITE"]
    assert out[0].uri == "sip:gw@192.0.2.7:5080"
    assert out[0].get_all("Route") == ["<sip:bob@localhost>"]
    # a loose router (`lr`) is left alone: Request-URI and Route travel as they came
    r = response_hex("MD5", ha1, nonce, "00000002", "cn", "auth", "INVITE", "sip:bob@localhost")
    creds = creds.replace("nc=00000001", "nc=00000002").replace(creds.split('response="')[1].split('"')[0], r)
    creds = creds.replace("5080>", "5080;lr>")
    sends = _sends(node.receive(_invite(frm="sip:alice@localhost", branch="pl2", extra=creds), CALLER, 20, WALL))
    out = _to(sends, ("udp", "192.0.2.7", 5080))
    assert [m.method for m in out] == ["INVITE"]
    assert out[0].uri == "sip:bob@localhost" and out[0].get_all("Route") == ["<sip:gw@192.0.2.7:5080;lr>"]


def test_every_2xx_retransmission_reaches_the_caller():
    """RFC 6026 §7.2/§8.4: the callee retransmits its 2xx until the ACK comes; each copy goes upstream, while
    the client transaction is Accepted and after it is gone (stateless, by the Via)."""
    node = _node(contacts=(BOB1,))
    b1, up = _call(node)
    ok = _answer(b1, 200, "OK", "t1")
    for t in (510, 1510, 3510):
        out = _to(_sends(node.receive(ok, BOB1, t, WALL)), CALLER)
        assert [m.status for m in out] == [200], t
        assert len(out[0].get_all("Via")) == 1 and out[0].get("To").endswith(";tag=t1")
    _ticks(node, 3510, 40000)  # Timer M (64·T1) ends the client transaction
    out = _to(_sends(node.receive(ok, BOB1, 40500, WALL)), CALLER)
    assert [m.status for m in out] == [200]
    assert out[0].get_all("Via") == [b1.get_all("Via")[1]]


def test_a_2xx_after_the_callers_cancel_still_reaches_the_caller():
    """RFC 3261 §16.7 step 5, §9.1: CANCEL and the callee's 200 cross. The 200 goes to the caller (who then ACKs
    and hangs up); the other branch is cancelled and no 487 follows the 200."""
    node = _node()
    sends = _sends(node.receive(_invite(), CALLER, 0, WALL))
    b1 = _to(sends, BOB1)[0]
    b2 = _to(sends, BOB2)[0]
    node.receive(_answer(b1, 180, "Ringing", "t1"), BOB1, 5, WALL)
    node.receive(_answer(b2, 180, "Ringing", "t2"), BOB2, 6, WALL)
    sends = _sends(node.receive(_cancel_of(_invite()), CALLER, 10, WALL))
    assert [m.status for m in _to(sends, CALLER)] == [200]
    assert [m.method for m in _to(sends, BOB1)] == ["CANCEL"] and [m.method for m in _to(sends, BOB2)] == ["CANCEL"]
    sends = _sends(node.receive(_answer(b1, 200, "OK", "t1"), BOB1, 20, WALL))  # too late to cancel
    up = _to(sends, CALLER)
    assert [m.status for m in up] == [200] and up[0].get("CSeq") == "1 INVITE"
    assert up[0].get("Record-Route") is not None
    later = _sends(node.receive(_answer(b2, 487, "Request Terminated", "t2"), BOB2, 30, WALL))
    later += [(m, a) for t, m, a in _ticks(node, 30, 40000)]
    assert [m.status for m in _to(later, CALLER)] == []  # no 487 after the 200
    # the retransmitted 200 still goes up, and the ACK reaches bob
    assert [m.status for m in _to(_sends(node.receive(_answer(b1, 200, "OK", "t1"), BOB1, 40500, WALL)),
                                  CALLER)] == [200]
    ack = _request("ACK", _BOB_URI, "SIP/2.0/UDP 198.51.100.9:5070;branch=z9hG4bKack9", _CAROL,
                   "<sip:bob@localhost>;tag=t1", 1, routes=(up[0].get("Record-Route"),))
    assert [m.method for m in _to(_sends(node.receive(ack, CALLER, 40600, WALL)), BOB1)] == ["ACK"]


def _indialog(node, rr, method, from_caller, cseq, body=b"", extra=""):
    """Send one in-dialog request along the dialog's route set; return (what the far end got, its source)."""
    if from_caller:
        req = _request(method, _BOB_URI, "SIP/2.0/UDP 198.51.100.9:5070;branch=z9hG4bKc%d;rport" % cseq, _CAROL,
                       "<sip:bob@localhost>;tag=t1", cseq, routes=(rr,), extra=extra, body=body)
        src, dst = CALLER, BOB1
    else:
        req = _request(method, _CAROL_URI, "SIP/2.0/UDP 10.1.0.1:5060;branch=z9hG4bKb%d;rport" % cseq, _BOB,
                       "<sip:carol@remote.example>;tag=c1", cseq, routes=(rr,), extra=extra, body=body)
        src, dst = BOB1, CALLER
    sends = _sends(node.receive(req, src, 100 + cseq, WALL))
    assert [a for m, a in sends] == [dst], (method, [(m.method or m.status, a) for m, a in sends])
    return sends[0][0], src, dst


def test_in_dialog_methods_follow_the_flow_token_both_ways():
    """UPDATE, PRACK, INFO, REFER, SUBSCRIBE, NOTIFY and an unknown method inside a record-routed dialog reach
    the other party by the flow token, with Request-URI, body and method untouched, and their answer returns."""
    node = _node(contacts=(BOB1,))
    b1, up = _call(node)
    rr = up.get("Record-Route")
    cases = (("PRACK", True, b"", "RAck: 1 1 INVITE"),
             ("UPDATE", False, b"v=0\r\nupdate\r\n", "Content-Type: application/sdp"),
             ("INFO", True, b"Signal=5\r\nDuration=160\r\n", "Content-Type: application/dtmf-relay"),
             ("REFER", True, b"", "Refer-To: <sip:dave@remote.example>"),
             ("NOTIFY", False, b"SIP/2.0 100 Trying\r\n", "Event: refer\r\nSubscription-State: active"),
             ("SUBSCRIBE", False, b"", "Event: dialog"),
             ("FOOBAR", True, b"opaque", "Content-Type: application/x-foo"),
             ("FOOBAR", False, b"", ""))
    cseq = 1
    for method, from_caller, body, extra in cases:
        cseq += 1
        got, src, dst = _indialog(node, rr, method, from_caller, cseq, body, extra)
        assert got.method == method and got.body == body
        assert got.uri == (_BOB_URI if from_caller else _CAROL_URI)
        assert got.get("Route") is None and got.get("Record-Route") is None  # no new Record-Route in dialog
        assert len(got.get_all("Via")) == 2 and got.get_all("Via")[0].startswith("SIP/2.0/UDP 127.0.0.1:5060;")
        assert got.get("Max-Forwards") == "69"
        first = extra.split("\r\n")[0]
        if first:
            assert got.get(first.split(":")[0]) == first.split(": ", 1)[1]
        back = _sends(node.receive(_answer(got, 200, "OK", "x"), dst, 200 + cseq, WALL))
        assert [(m.status, a) for m, a in back] == [(200, src)], method
        assert back[0][0].get("CSeq") == "%d %s" % (cseq, method)


def test_subscribe_is_record_routed_and_its_notify_comes_back_through_the_node():
    """RFC 6665: SUBSCRIBE creates a dialog, so the node record-routes it; the notifier's NOTIFY, sent along
    that route set, reaches the subscriber."""
    node = _node(contacts=(BOB1,))
    sub = _request("SUBSCRIBE", "sip:bob@localhost", "SIP/2.0/UDP 198.51.100.9:5070;branch=z9hG4bKsub1;rport",
                   _CAROL, "<sip:bob@localhost>", 1, extra="Event: presence\r\nExpires: 600\r\n"
                   "Contact: <sip:carol@198.51.100.9:5070>", call_id="sub-1")
    sends = _sends(node.receive(sub, CALLER, 0, WALL))
    got = _to(sends, BOB1)
    assert [m.method for m in got] == ["SUBSCRIBE"] and got[0].uri == _BOB_URI
    rr = got[0].get("Record-Route")
    assert rr is not None and _uri_of(rr).startswith("sip:mw")
    back = _to(_sends(node.receive(_answer(got[0], 200, "OK", "t1"), BOB1, 10, WALL)), CALLER)
    assert [m.status for m in back] == [200] and back[0].get("Record-Route") == rr
    notify = _request("NOTIFY", _CAROL_URI, "SIP/2.0/UDP 10.1.0.1:5060;branch=z9hG4bKntf1;rport", _BOB,
                      "<sip:carol@remote.example>;tag=c1", 1, routes=(rr,),
                      extra="Event: presence\r\nSubscription-State: active;expires=600", call_id="sub-1",
                      body=b"<presence/>")
    out = _to(_sends(node.receive(notify, BOB1, 20, WALL)), CALLER)
    assert [m.method for m in out] == ["NOTIFY"] and out[0].uri == _CAROL_URI and out[0].body == b"<presence/>"


def test_unknown_method_outside_a_dialog_is_forwarded_not_refused():
    """RFC 3261 §16.1: a proxy forwards methods it does not know; only the UAS may answer 405/501."""
    node = _node()
    foo = _request("FOOBAR", "sip:bob@localhost", "SIP/2.0/UDP 198.51.100.9:5070;branch=z9hG4bKfoo1;rport",
                   _CAROL, "<sip:bob@localhost>", 1, body=b"x")
    sends = _sends(node.receive(foo, CALLER, 0, WALL))
    assert [m.method for m in _to(sends, BOB1)] == ["FOOBAR"] and [m.method for m in _to(sends, BOB2)] == ["FOOBAR"]
    assert _to(sends, CALLER) == []
    b1 = _to(sends, BOB1)[0]
    assert b1.get("Record-Route") is None  # not a dialog-creating method
    back = _sends(node.receive(_answer(b1, 501, "Not Implemented", "t1"), BOB1, 10, WALL))
    assert _to(back, CALLER) == []  # waits for bob's other contact
    back = _sends(node.receive(_answer(_to(sends, BOB2)[0], 501, "Not Implemented", "t2"), BOB2, 20, WALL))
    assert [m.status for m in _to(back, CALLER)] == [501]


def _bob_invite(node, to, branch, nc):
    """An INVITE from local user bob to `to`, answered with his credentials for the node's challenge."""
    first = _invite(frm="sip:bob@localhost", to=to, branch=branch + "a")
    resp = _to(_sends(node.receive(first, CALLER, 0, WALL)), CALLER)[0]
    assert resp.status == 407
    nonce = [v for v in resp.get_all("Proxy-Authenticate") if "MD5" in v][0].split('nonce="')[1].split('"')[0]
    ha1 = ha1_hex("MD5", "bob", "localhost", "builder")
    r = response_hex("MD5", ha1, nonce, nc, "cn", "auth", "INVITE", to)
    creds = ('Proxy-Authorization: Digest username="bob", realm="localhost", nonce="%s", uri="%s", '
             'response="%s", algorithm=MD5, qop=auth, nc=%s, cnonce="cn"\r\n' % (nonce, to, r, nc))
    return _sends(node.receive(_invite(frm="sip:bob@localhost", to=to, branch=branch, extra=creds), CALLER, 10,
                               WALL))


def test_short_dial_number_rings_the_mapped_user():
    """Config short_dial {"100": "alice"}: bob dials sip:100@localhost and alice's contact rings, with her
    contact as Request-URI (To keeps what bob dialled); a number mapped to no user is 404."""
    node = _node(contacts=(), extra=', "short_dial": {"100": "alice", "200": "nobody"}', alice_at=BOB2)
    sends = _bob_invite(node, "sip:100@localhost", "sd1", "00000001")
    out = _to(sends, BOB2)
    assert [m.method for m in out] == ["INVITE"]
    assert out[0].uri == "sip:alice@10.2.0.1:5060"
    assert out[0].get("To") == "<sip:100@localhost>" and out[0].body == SDP
    assert [m.status for m in _to(sends, CALLER)] == [100]
    sends = _bob_invite(node, "sip:200@localhost", "sd2", "00000001")
    assert [m.status for m in _to(sends, CALLER)] == [404] and _to(sends, BOB2) == []
    sends = _bob_invite(node, "sip:300@localhost", "sd3", "00000001")
    assert [m.status for m in _to(sends, CALLER)] == [404]
