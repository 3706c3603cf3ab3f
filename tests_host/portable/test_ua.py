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
    # re-INVITE: its offer goes to the application, which answers it (RFC 3264 §8)
    acts = ua.receive(_incoming_invite(cseq=2, tag=tag, body=b"v=0\r\nnew"), PROXY, 11000)
    assert _sent(acts) == [] and _kinds(acts) == ["reoffer"] and call.offer_sdp == b"v=0\r\nnew"
    (ok2, _), = _sent(ua.answer_reoffer(call, b"v=0\r\nanswer2", 11000))
    assert ok2.status == 200 and ok2.body == b"v=0\r\nanswer2" and ok2.get("CSeq") == "2 INVITE"
    assert call.remote_sdp == b"v=0\r\nnew" and call.local_sdp == b"v=0\r\nanswer2"
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


def test_register_with_reg_id_says_supported_outbound():
    # RFC 5626 §4.2.1: a REGISTER whose Contact has +sip.instance and reg-id carries Supported: outbound
    ua = _ua()
    req, req2 = _register(ua, _auth())
    for r in (req, req2):
        ct = parse_name_addr(r.get("Contact"))
        assert "reg-id" in ct.params and "+sip.instance" in ct.params
        assert "outbound" in [t.strip() for t in ",".join(r.get_all("Supported")).split(",")]
    (un, _), = _sent(ua.unregister(10))
    assert un.get("Supported") == "outbound" and un.get("Expires") == "0"


def _confirmed_incoming(ua):
    (ev,) = _events(ua.receive(_incoming_invite(), PROXY, 0))
    call = ev[1]
    ua.answer(call, b"v=0\r\nanswer", 10)
    ua.receive(_in_dialog("ACK", 1, call.local_tag, "ack1"), PROXY, 20)
    assert call.state == "confirmed"
    return call


def test_reoffer_refused_with_488_keeps_the_old_session():
    ua = _ua()
    call = _confirmed_incoming(ua)
    acts = ua.receive(_incoming_invite(cseq=2, tag=call.local_tag, body=b"v=0\r\nopus only"), PROXY, 100)
    assert _kinds(acts) == ["reoffer"]
    # a second re-INVITE before we answered the first: 500 with Retry-After (RFC 3261 §14.2)
    (r, _), = _sent(ua.receive(_incoming_invite(cseq=3, tag=call.local_tag, body=b"v=0\r\nx"), PROXY, 110))
    assert r.status == 500 and r.get("Retry-After") is not None
    (r, _), = _sent(ua.reject_reoffer(call, 488, "Not Acceptable Here", 120))
    assert r.status == 488 and r.get("CSeq") == "2 INVITE" and parse_name_addr(r.get("To")).tag == call.local_tag
    assert call.state == "confirmed" and call.remote_sdp == OFFER and call.local_sdp == b"v=0\r\nanswer"
    assert call.offer_sdp is None and ua.answer_reoffer(call, b"v=0\r\nlate", 130) == []
    # the transaction retransmits the 488 until its ACK; nothing reaches the application
    assert sorted(m.status for m, d in _sent(ua.tick(700))) == [488, 500]
    ack = _incoming_invite(cseq=2, tag=call.local_tag, body=b"").replace(b"INVITE sip", b"ACK sip") \
        .replace(b"2 INVITE", b"2 ACK")
    assert _events(ua.receive(ack, PROXY, 800)) == []
    # the dialog goes on: a later re-INVITE is offered and answered
    acts = ua.receive(_incoming_invite(cseq=4, tag=call.local_tag, body=b"v=0\r\nhold"), PROXY, 900)
    assert _kinds(acts) == ["reoffer"]
    (ok, _), = _sent(ua.answer_reoffer(call, b"v=0\r\nheld", 900))
    assert ok.status == 200 and ok.body == b"v=0\r\nheld" and call.remote_sdp == b"v=0\r\nhold"


def _ack_with_body(cseq, tag, body):
    head = "Content-Type: application/sdp\r\nContent-Length: %d\r\n\r\n" % len(body)
    return _in_dialog("ACK", cseq, tag, "ackb%d" % cseq).replace(b"Content-Length: 0\r\n\r\n", head.encode()) + body


def test_reinvite_without_offer_our_offer_in_the_2xx_answer_in_the_ack_and_bye_ends_a_pending_reoffer():
    ua = _ua()
    call = _confirmed_incoming(ua)
    # §14.2: no offer in the re-INVITE; the application's SDP goes in the 2xx as our offer
    acts = ua.receive(_incoming_invite(cseq=2, tag=call.local_tag, body=b""), PROXY, 100)
    assert _sent(acts) == [] and _kinds(acts) == ["reoffer"] and call.offer_sdp is None
    (ok, _), = _sent(ua.answer_reoffer(call, b"v=0\r\nour offer", 100))
    assert ok.status == 200 and ok.body == b"v=0\r\nour offer" and call.remote_sdp == OFFER
    # the ACK brings the peer's answer
    acts = ua.receive(_ack_with_body(2, call.local_tag, b"v=0\r\ntheir answer"), PROXY, 150)
    assert _events(acts) == [("ack_answer", call)] and call.remote_sdp == b"v=0\r\ntheir answer"
    # an ACK for an ordinary re-INVITE answer brings no SDP event, even with a body
    ua.receive(_incoming_invite(cseq=5, tag=call.local_tag, body=b"v=0\r\nx"), PROXY, 160)
    ua.answer_reoffer(call, b"v=0\r\ny", 160)
    assert _events(ua.receive(_ack_with_body(5, call.local_tag, b"v=0\r\nz"), PROXY, 170)) == []
    assert call.remote_sdp == b"v=0\r\nx"
    assert _kinds(ua.receive(_incoming_invite(cseq=6, tag=call.local_tag, body=b"v=0\r\no"), PROXY, 200)) == \
        ["reoffer"]
    # §15.1.2: the BYE is answered 200 and the re-INVITE still pending gets 487
    acts = ua.receive(_in_dialog("BYE", 7, call.local_tag, "bye7"), PROXY, 300)
    assert sorted(m.status for m, d in _sent(acts)) == [200, 487]
    assert _events(acts) == [("ended", call, "remote hangup")]


def test_second_fork_2xx_is_acked_and_sent_bye_the_call_stays_with_the_first():
    ua = _ua()
    call, acts = ua.invite("sip:bob@example.com", OFFER, 0)
    (inv, _), = _sent(acts)
    ua.receive(_reply(inv, 180, "Ringing", "fork1"), PROXY, 5)
    ok1 = _reply(inv, 200, "OK", "fork1", [("Record-Route", "<sip:192.0.2.10:5060;lr>"),
                                           ("Contact", "<sip:bob@192.0.2.30:5080>")], b"v=0\r\nfirst")
    ok2 = _reply(inv, 200, "OK", "fork2", [("Record-Route", "<sip:192.0.2.10:5060;lr>"),
                                           ("Contact", "<sip:bob@192.0.2.31:5090>")], b"v=0\r\nsecond")
    acts = ua.receive(ok1, PROXY, 10)
    assert _kinds(acts) == ["answered"]
    acts = ua.receive(ok2, PROXY, 20)
    assert _events(acts) == []                          # the application sees nothing of the second fork
    msgs = _sent(acts)
    assert [m.method for m, d in msgs] == ["ACK", "BYE"]
    ack, bye = msgs[0][0], msgs[1][0]
    for m in (ack, bye):
        assert parse_name_addr(m.get("To")).tag == "fork2" and m.uri == "sip:bob@192.0.2.31:5090"
        assert parse_name_addr(m.get("From")).tag == call.local_tag and m.get("Call-ID") == call.call_id
        assert m.get_all("Route") == ["<sip:192.0.2.10:5060;lr>"] and msgs[0][1] == ("udp", "192.0.2.10", 5060)
    assert ack.get("CSeq") == "1 ACK" and bye.get("CSeq") == "2 BYE"
    # the call is still the first dialog
    assert call.state == "confirmed" and call.remote_tag == "fork1" and call.remote_sdp == b"v=0\r\nfirst"
    assert call.remote_target == "sip:bob@192.0.2.30:5080" and ua.calls == {call.call_id: call}
    # the second fork retransmits its 2xx before our ACK arrives: ACK again, no second BYE
    assert [m.method for m, d in _sent(ua.receive(ok2, PROXY, 520))] == ["ACK"]
    # its 200 for our BYE changes nothing; our own hangup still goes to the first fork with our next CSeq
    assert _events(ua.receive(_reply(bye, 200, "OK", "fork2"), PROXY, 530)) == []
    (b1, _), = _sent(ua.hangup(call, 1000))
    assert b1.method == "BYE" and parse_name_addr(b1.get("To")).tag == "fork1"
    assert b1.uri == "sip:bob@192.0.2.30:5080"
