"""The user agent core (microwitch.agent.ua), sans-I/O with a fake clock: REGISTER with digest and refresh,
keep-alive, outgoing/incoming INVITE, CANCEL, BYE, re-INVITE, route sets and 2xx retransmission."""
from microwitch.agent.ua import UserAgent, KEEPALIVE_MS
from microwitch.sip.message import parse, make_response
from microwitch.sip.headers import parse_name_addr, parse_via
from microwitch.sip.digest import DigestAuth, ha1_hex
from _lcg import Lcg

PROXY = ("udp", "192.0.2.10", 5060)
LOCAL = ("192.0.2.20", 5070)
PEER = ("udp", "192.0.2.30", 5080)
OFFER = b"v=0\r\no=- 1 1 IN IP4 192.0.2.20\r\ns=-\r\nc=IN IP4 192.0.2.20\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"


def _ua(password="pw-alice", **kw):
    return UserAgent("sip:alice@example.com", password, PROXY, LOCAL, Lcg(), **kw)


def _sent(acts):
    return [(parse(a[1]), a[2]) for a in acts if a[0] == "send" and a[1].strip()]


def _events(acts):
    return [a for a in acts if a[0] != "send"]


def _kinds(acts):
    return [a[0] for a in _events(acts)]


def _reply(req, status, reason, tag=None, headers=(), body=b""):
    r = make_response(req, status, reason, tag)
    for n, v in headers:
        r.add(n, v)
    if body:
        r.add("Content-Type", "application/sdp")
        r.body = body
    return r.to_bytes()


def _auth():
    # the node's default order: MD5 first, then SHA-256 (the UA must prefer SHA-256, RFC 8760 §2.4)
    return DigestAuth("example.com", b"node-secret", Lcg(), algorithms=("MD5", "SHA-256"))


def _ha1(user, alg):
    return ha1_hex(alg, user, "example.com", "pw-" + user)


def _register(ua, auth, now=0):
    (req, dest), = _sent(ua.register(now))
    acts = ua.receive(_reply(req, 401, "Unauthorized", headers=[("WWW-Authenticate", v) for v in
                                                                  auth.challenges(now)]), PROXY, now)
    (req2, _), = _sent(acts)
    return req, req2


def test_register_with_sha256_digest_then_refresh_and_keepalive():
    ua = _ua()
    auth = _auth()
    req, req2 = _register(ua, auth)
    assert req.method == "REGISTER" and req.uri == "sip:example.com"
    ct = parse_name_addr(req.get("Contact"))
    assert ct.uri == "sip:alice@192.0.2.20:5070;transport=udp"
    assert ct.params["+sip.instance"].startswith('"<urn:uuid:') and ct.params["reg-id"] == "1"
    assert req.get("Expires") == "600"
    assert parse_via(req.get("Via")).params.get("rport", 1) is None
    # second REGISTER: same Call-ID, next CSeq, SHA-256 credentials that the server accepts
    assert req2.get("Call-ID") == req.get("Call-ID") and req2.get("CSeq") == "2 REGISTER"
    creds = auth.pick(req2.get_all("Authorization"))
    assert creds["algorithm"] == "SHA-256"
    assert auth.check("REGISTER", req2.uri, creds, _ha1, 0).ok
    acts = ua.receive(_reply(req2, 200, "OK", headers=[("Contact", req2.get("Contact") + ";expires=120")]), PROXY, 10)
    assert _events(acts) == [("registered", 120)]
    # keep-alive CRLF on the registration flow
    acts = ua.tick(10 + KEEPALIVE_MS)
    assert ("send", b"\r\n\r\n", PROXY) in acts
    # refresh before expiry (not after 120 s): a new REGISTER with a new CSeq
    assert ua.next_timer() <= 10 + 120000
    acts = ua.tick(10 + 95000)
    refresh = [m for m, d in _sent(acts) if m.method == "REGISTER"]
    assert len(refresh) == 1 and refresh[0].get("CSeq") == "3 REGISTER"


def test_register_md5_only_challenge():
    ua = _ua()
    auth = DigestAuth("example.com", b"s", Lcg(), algorithms=("MD5",))
    _, req2 = _register(ua, auth)
    creds = auth.pick(req2.get_all("Authorization"))
    assert creds["algorithm"] == "MD5" and auth.check("REGISTER", req2.uri, creds, _ha1, 0).ok


def test_wrong_password_fails_after_bounded_retries():
    ua = _ua(password="wrong")
    auth = _auth()
    (req, _), = _sent(ua.register(0))
    seen = 0
    for i in range(10):
        acts = ua.receive(_reply(req, 401, "Unauthorized", headers=[("WWW-Authenticate", v) for v in
                                                                      auth.challenges(0)]), PROXY, i)
        if "register_failed" in _kinds(acts):
            break
        (req, _), = _sent(acts)
        seen += 1
        assert not auth.check("REGISTER", req.uri, auth.pick(req.get_all("Authorization")), _ha1, 0).ok
    assert "register_failed" in _kinds(acts)
    assert seen == 1      # one answer; a second non-stale challenge means the password is wrong


def test_register_timeout_is_reported():
    ua = _ua()
    ua.register(0)
    got = []
    t = 0
    while t < 40000 and not got:
        t += 500
        got = [e for e in _events(ua.tick(t)) if e[0] == "register_failed"]
    assert got and "no answer" in got[0][1]


def _outgoing_to_200(ua, rr=True):
    call, acts = ua.invite("sip:bob@example.com", OFFER, 0)
    (inv, dest), = _sent(acts)
    assert dest == PROXY and inv.uri == "sip:bob@example.com" and inv.body == OFFER
    auth = _auth()
    acts = ua.receive(_reply(inv, 407, "Proxy Authentication Required", "t407",
                             [("Proxy-Authenticate", v) for v in auth.challenges(0)]), PROXY, 5)
    msgs = _sent(acts)
    assert [m.method for m, d in msgs] == ["ACK", "INVITE"]
    inv2 = msgs[1][0]
    assert inv2.get("CSeq") == "2 INVITE" and inv2.get("Call-ID") == inv.get("Call-ID")
    creds = auth.pick(inv2.get_all("Proxy-Authorization"))
    assert creds["algorithm"] == "SHA-256" and auth.check("INVITE", inv2.uri, creds, _ha1, 5).ok
    acts = ua.receive(_reply(inv2, 180, "Ringing", "bobtag"), PROXY, 10)
    assert _kinds(acts) == ["ringing"]
    hs = [("Contact", "<sip:bob@192.0.2.30:5080>")]
    if rr:
        hs = [("Record-Route", "<sip:192.0.2.10:5060;lr;ftag=x>"), ("Record-Route", "<sip:192.0.2.11;lr>")] + hs
    ok = _reply(inv2, 200, "OK", "bobtag", hs, b"v=0\r\n")
    return call, inv2, ok


def test_outgoing_call_with_proxy_auth_route_set_ack_and_bye():
    ua = _ua()
    call, inv2, ok = _outgoing_to_200(ua)
    acts = ua.receive(ok, PROXY, 20)
    assert _kinds(acts) == ["answered"] and call.remote_sdp == b"v=0\r\n"
    (ack, dest), = _sent(acts)
    # §12.2.1.1: reversed Record-Route becomes the route set; loose routing keeps the remote target as R-URI
    assert ack.method == "ACK" and ack.uri == "sip:bob@192.0.2.30:5080"
    assert ack.get_all("Route") == ["<sip:192.0.2.11;lr>", "<sip:192.0.2.10:5060;lr;ftag=x>"]
    assert dest == ("udp", "192.0.2.11", 5060)
    assert ack.get("CSeq") == "2 ACK" and parse_name_addr(ack.get("To")).tag == "bobtag"
    assert ack.get("Proxy-Authorization") == inv2.get("Proxy-Authorization")
    # a 2xx retransmission is ACKed again, and reported once
    acts = ua.receive(ok, PROXY, 600)
    assert [m.method for m, d in _sent(acts)] == ["ACK"] and _events(acts) == []
    acts = ua.hangup(call, 1000)
    (bye, dest), = _sent(acts)
    assert bye.method == "BYE" and bye.get("CSeq") == "3 BYE" and dest == ("udp", "192.0.2.11", 5060)
    assert bye.get_all("Route") == ack.get_all("Route")
    assert _kinds(acts) == ["ended"]


def test_outgoing_call_without_route_set_goes_to_contact():
    ua = _ua()
    call, inv2, ok = _outgoing_to_200(ua, rr=False)
    (ack, dest), = _sent(ua.receive(ok, PROXY, 20))
    assert dest == ("udp", "192.0.2.30", 5080) and ack.get("Route") is None


def test_early_media_is_ignored_safely():
    ua = _ua()
    call, acts = ua.invite("sip:bob@example.com", OFFER, 0)
    (inv, _), = _sent(acts)
    acts = ua.receive(_reply(inv, 183, "Session Progress", "b1", body=b"v=0\r\nbroken"), PROXY, 1)
    assert _kinds(acts) == ["ringing", "early_media"]
    acts = ua.receive(_reply(inv, 183, "Session Progress", "b1", body=b"v=0\r\n"), PROXY, 2)
    assert _events(acts) == []
    acts = ua.receive(_reply(inv, 200, "OK", "b1", [("Contact", "<sip:bob@192.0.2.30>")], b"v=0\r\nans"), PROXY, 3)
    assert _kinds(acts) == ["answered"] and call.remote_sdp == b"v=0\r\nans"


def test_cancel_before_and_after_provisional():
    ua = _ua()
    call, acts = ua.invite("sip:bob@example.com", OFFER, 0)
    (inv, _), = _sent(acts)
    assert ua.hangup(call, 10) == []        # §9.1: no CANCEL before a provisional response
    acts = ua.receive(_reply(inv, 180, "Ringing", "b1"), PROXY, 20)
    (cancel, dest), = _sent(acts)
    assert cancel.method == "CANCEL" and cancel.uri == inv.uri and dest == PROXY
    assert cancel.get("Via") == inv.get("Via") and cancel.get("CSeq") == "1 CANCEL"
    assert parse_name_addr(cancel.get("To")).tag is None
    ua.receive(_reply(cancel, 200, "OK", "b1"), PROXY, 30)
    acts = ua.receive(_reply(inv, 487, "Request Terminated", "b1"), PROXY, 40)
    assert _events(acts) == [("ended", call, "cancelled")]
    assert [m.method for m, d in _sent(acts)] == ["ACK"]
    assert ua.calls == {}


def test_200_after_cancel_is_acked_and_ended_with_bye():
    ua = _ua()
    call, acts = ua.invite("sip:bob@example.com", OFFER, 0)
    (inv, _), = _sent(acts)
    ua.receive(_reply(inv, 180, "Ringing", "b1"), PROXY, 1)
    ua.hangup(call, 2)
    acts = ua.receive(_reply(inv, 200, "OK", "b1", [("Contact", "<sip:bob@192.0.2.30>")]), PROXY, 3)
    assert [m.method for m, d in _sent(acts)] == ["ACK", "BYE"]
    assert _kinds(acts) == ["ended"]


def test_rejected_call_reports_status():
    ua = _ua()
    call, acts = ua.invite("sip:bob@example.com", OFFER, 0)
    (inv, _), = _sent(acts)
    acts = ua.receive(_reply(inv, 486, "Busy Here", "b1"), PROXY, 1)
    assert _events(acts) == [("ended", call, "486 Busy Here")]


def _incoming_invite(cseq=1, tag=None, body=OFFER, callid="c1@bob"):
    to = "<sip:alice@example.com>" + (";tag=" + tag if tag else "")
    return ("INVITE sip:alice@192.0.2.20:5070;transport=udp SIP/2.0\r\n"
            "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKp%d\r\n"
            "Via: SIP/2.0/UDP 192.0.2.30:5080;branch=z9hG4bKb%d;rport=5080\r\n"
            "Record-Route: <sip:192.0.2.10:5060;lr>\r\n"
            "From: \"Bob\" <sip:bob@example.com>;tag=bobtag\r\nTo: %s\r\nCall-ID: %s\r\nCSeq: %d INVITE\r\n"
            "Contact: <sip:bob@192.0.2.30:5080>\r\nMax-Forwards: 69\r\nContent-Type: application/sdp\r\n"
            "Content-Length: %d\r\n\r\n" % (cseq, cseq, to, callid, cseq, len(body))).encode() + body


def _in_dialog(method, cseq, tag, branch, callid="c1@bob"):
    return ("%s sip:alice@192.0.2.20:5070 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK%s\r\n"
            "From: <sip:bob@example.com>;tag=bobtag\r\nTo: <sip:alice@example.com>;tag=%s\r\nCall-ID: %s\r\n"
            "CSeq: %d %s\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
            % (method, branch, tag, callid, cseq, method)).encode()


def test_incoming_call_answer_retransmit_until_ack_reinvite_and_bye():
    ua = _ua()
    acts = ua.receive(_incoming_invite(), PROXY, 0)
    (ring, dest), = _sent(acts)
    assert ring.status == 180 and dest == ("udp", "192.0.2.10", 5060)
    (ev,) = _events(acts)
    assert ev[0] == "incoming"
    call = ev[1]
    assert call.remote_uri == "sip:bob@example.com" and call.peer_display == "Bob" and call.remote_sdp == OFFER
    tag = parse_name_addr(ring.get("To")).tag
    assert tag == call.local_tag
    acts = ua.answer(call, b"v=0\r\nanswer", 100)
    (ok, _), = _sent(acts)
    assert ok.status == 200 and ok.body == b"v=0\r\nanswer" and ok.get("Record-Route") == "<sip:192.0.2.10:5060;lr>"
    assert parse_name_addr(ok.get("Contact")).uri == ua.contact_uri
    # §13.3.1.4: retransmitted at T1, 2*T1, ... until the ACK
    assert [m.status for m, d in _sent(ua.tick(600))] == [200]
    assert _sent(ua.tick(1000)) == []
    assert [m.status for m, d in _sent(ua.tick(1600))] == [200]
    acts = ua.receive(_in_dialog("ACK", 1, tag, "ack1"), PROXY, 1700)
    assert _kinds(acts) == ["confirmed"]
    assert _sent(ua.tick(10000)) == []
    # re-INVITE: new SDP reported, answered with ours
    acts = ua.receive(_incoming_invite(cseq=2, tag=tag, body=b"v=0\r\nnew"), PROXY, 11000)
    (ok2, _), = _sent(acts)
    assert ok2.status == 200 and ok2.body == b"v=0\r\nanswer" and _kinds(acts) == ["remote_sdp"]
    assert call.remote_sdp == b"v=0\r\nnew"
    ua.receive(_in_dialog("ACK", 2, tag, "ack2"), PROXY, 11100)
    # our BYE would follow the route set; the peer's BYE ends the call
    acts = ua.receive(_in_dialog("BYE", 3, tag, "bye3"), PROXY, 12000)
    (r, _), = _sent(acts)
    assert r.status == 200 and _events(acts) == [("ended", call, "remote hangup")]
    # anything later in that dialog: 481
    (r, _), = _sent(ua.receive(_in_dialog("BYE", 4, tag, "bye4"), PROXY, 12100))
    assert r.status == 481


def test_no_ack_ends_call_with_bye():
    ua = _ua()
    (ev,) = _events(ua.receive(_incoming_invite(), PROXY, 0))
    call = ev[1]
    ua.answer(call, b"v=0\r\n", 0)
    seen = []
    t = 0
    while t < 40000:
        t += 250
        acts = ua.tick(t)
        seen += [m.method or m.status for m, d in _sent(acts)]
        if _events(acts):
            break
    assert seen[-1] == "BYE" and seen.count(200) >= 5
    assert _events(acts) == [("ended", call, "no ACK")]
    assert t <= 64 * 500 + 250


def test_incoming_cancel():
    ua = _ua()
    (ev,) = _events(ua.receive(_incoming_invite(), PROXY, 0))
    call = ev[1]
    cancel = _incoming_invite().replace(b"INVITE sip", b"CANCEL sip").replace(b"1 INVITE", b"1 CANCEL")
    acts = ua.receive(cancel, PROXY, 10)
    assert sorted(m.status for m, d in _sent(acts)) == [200, 487]
    assert _events(acts) == [("ended", call, "cancelled by caller")]


def test_reject_busy_and_options_and_unknown_method():
    ua = _ua()
    (ev,) = _events(ua.receive(_incoming_invite(), PROXY, 0))
    acts = ua.reject(ev[1], 486, "Busy Here", 5)
    assert [m.status for m, d in _sent(acts)] == [486] and _kinds(acts) == ["ended"]
    opt = _in_dialog("OPTIONS", 1, "x", "o1").replace(b";tag=x", b"")
    (r, _), = _sent(ua.receive(opt, PROXY, 10))
    assert r.status == 200 and "INVITE" in r.get("Allow")
    msg = _in_dialog("MESSAGE", 1, "x", "m1").replace(b";tag=x", b"")
    (r, _), = _sent(ua.receive(msg, PROXY, 10))
    assert r.status == 405


def test_malformed_and_keepalive_input_never_crash():
    ua = _ua()
    assert ua.receive(b"\r\n\r\n", PROXY, 0) == []
    assert ua.receive(b"garbage", PROXY, 0) == []
    bad = _incoming_invite().replace(b"CSeq: 1 INVITE", b"CSeq: x INVITE")
    acts = ua.receive(bad, PROXY, 0)
    assert len(acts) == 1 and acts[0][0] == "send" and acts[0][1].startswith(b"SIP/2.0 400 ")
