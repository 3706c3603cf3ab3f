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


def _node(contacts=(BOB1, BOB2)):
    cfg = config.load('{"domain": "localhost", "listen": ["udp:127.0.0.1:5060"]}')
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
