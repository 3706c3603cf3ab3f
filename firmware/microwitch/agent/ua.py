"""The user agent core (RFC 3261 §8, §10, §12-15), sans-I/O, on top of sip/transaction.

    ua = UserAgent(aor, password, proxy, local, rand)
    acts = ua.register(now)              # REGISTER with digest (SHA-256 or MD5, RFC 7616/8760), then refresh
    call, acts = ua.invite("sip:bob@example.com", sdp_offer, now)
    acts = ua.answer(call, sdp_answer, now) / ua.reject(call, 486, "Busy Here", now) / ua.hangup(call, now)
    acts = ua.receive(data, source, now) / ua.tick(now); ua.next_timer() -> ms or None

Every call returns a list: ("send", bytes, (proto, host, port)) for the transport and events for the
application: ("registered", expires_s), ("register_failed", reason), ("incoming", call), ("ringing", call),
("early_media", call) (ignored: no media runs before the 200), ("answered", call) (outgoing, 2xx received,
remote SDP in call.remote_sdp), ("confirmed", call) (incoming, ACK received), ("reoffer", call) (a re-INVITE
offers call.offer_sdp: the application answers with ua.answer_reoffer(call, sdp, now) or refuses it with
ua.reject_reoffer(call, 488, "Not Acceptable Here", now), and the dialog keeps its old session, RFC 3261 §14.2;
a re-INVITE without a body has offer_sdp None: the application's answer_reoffer() SDP is then our offer, §14.2),
("ack_answer", call) (the ACK for such a 2xx carries the peer's answer, in call.remote_sdp), ("ended", call,
reason).

A 2xx from a second fork of our INVITE (another To tag, §13.2.2.4) is ACKed and that dialog is ended at once
with a BYE; the call stays with the first 2xx.

Out-of-dialog requests go to the outbound proxy; in-dialog ones follow the route set (§12.2.1.1: loose
routing, and the strict-routing rewrite when the first route has no ;lr). The UA keeps the registration flow
alive with CRLF keep-alives (RFC 5626 §4.4.1) and registers with +sip.instance and reg-id, saying
`Supported: outbound` (RFC 5626 §4.2.1).
"""
from binascii import hexlify

from microwitch.compat import const
from microwitch.sip.headers import ParseError, parse_name_addr, parse_cseq, parse_via
from microwitch.sip.message import Message, parse, make_response
from microwitch.sip.transaction import TransactionLayer, new_branch
from microwitch.sip.uri import parse_uri
from microwitch.sip.digest import ha1_hex
from microwitch.sip.digest_client import pick_challenge, authorization

MAX_CALLS = const(8)              # dialogs (and pending INVITEs) at once; more incoming INVITEs get 486
KEEPALIVE_MS = const(25000)       # CRLF keep-alive interval on the registration flow (RFC 5626 §4.4.1)
_AUTH_TRIES = const(2)            # a second non-stale challenge after our credentials means a wrong password
_RETRY_REGISTER_MS = const(30000) # after a failed refresh
_MIN_REFRESH_S = const(5)
_MAX_FORKS = const(4)            # other forks' 2xx remembered per call (their ACK is resent on retransmission)
_T1 = const(500)
_T2 = const(4000)
ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS"

# call states
CALLING = "calling"          # outgoing INVITE sent, no provisional yet
EARLY = "early"              # outgoing: 1xx received; incoming: ringing, not answered
ANSWERING = "answering"      # incoming: 2xx sent, waiting for ACK
CONFIRMED = "confirmed"
TERMINATED = "terminated"


def _hex(b):
    return hexlify(b).decode()


def _uri_addr(uri, default_proto="udp"):
    """(proto, host, port) a request for `uri` goes to (RFC 3263 without DNS: host and port as written)."""
    u = parse_uri(uri)
    proto = (u.params.get("transport") or default_proto).lower()
    host = u.params.get("maddr") or u.host
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return (proto, host, u.port or 5060)


class Call:
    """One INVITE dialog (RFC 3261 §12) and what the media layer needs from it."""

    def __init__(self, ua, call_id, outgoing):
        self.ua = ua
        self.call_id = call_id
        self.outgoing = outgoing
        self.state = CALLING if outgoing else EARLY
        self.local_tag = _hex(ua.rand(6))
        self.remote_tag = None
        self.local_uri = ua.aor
        self.remote_uri = None
        self.remote_target = None
        self.route_set = []
        self.local_cseq = 0
        self.remote_cseq = None
        self.invite = None          # outgoing: the INVITE as last sent; incoming: the INVITE received
        self.invite_txn = None      # client or server transaction of the initial INVITE
        self.auth_tries = 0
        self.local_sdp = b""
        self.remote_sdp = None
        self.early_sdp = None
        self.cancel_pending = False
        self.cancelled = False
        self.ok = None              # incoming: the 2xx being retransmitted until the ACK (§13.3.1.4)
        self.ok_next = 0
        self.ok_interval = _T1
        self.ok_until = 0
        self.ack = None             # outgoing: our ACK for the 2xx, sent again on 2xx retransmissions
        self.reason = None
        self.peer_display = None
        self.offer_sdp = None       # a re-INVITE's offer waiting for answer_reoffer() / reject_reoffer()
        self.reoffer = None         # that re-INVITE and its server transaction
        self.reoffer_txn = None
        self.offer_in_ok = False    # our last re-INVITE 2xx carried an offer: its ACK carries the answer
        self.forks = {}             # To tag of another fork's 2xx -> (its ACK, where it goes), _MAX_FORKS at most

    def __repr__(self):
        return "<Call " + self.call_id + " " + self.state + ">"


class UserAgent:
    def __init__(self, aor, password, proxy, local, rand, instance=None, expires=600, username=None,
                 user_agent="microwitch-agent/0.1", keepalive_ms=KEEPALIVE_MS, t1=_T1, t2=_T2):
        """aor: "sip:alice@domain"; proxy: (proto, host, port) of the outbound proxy / registrar; local:
        (host, port) our SIP socket is bound to (Via, Contact); rand(n) -> n random bytes."""
        u = parse_uri(aor)
        if u.scheme not in ("sip", "sips") or not u.user or not u.host:
            raise ValueError("the user must be a sip: URI with a user part, e.g. sip:alice@example.com")
        self.aor = "sip:" + u.user + "@" + u.host
        self.user = u.user
        self.domain = u.host
        self.username = username or u.user
        self.password = password
        self.proxy = proxy
        self.local = local
        self.rand = rand
        self.expires = expires
        self.user_agent = user_agent
        self.keepalive_ms = keepalive_ms
        self.t1 = t1
        self.t2 = t2
        self.instance = instance or self._uuid()
        self.tl = TransactionLayer(t1=t1, t2=t2)
        self.calls = {}
        self.contact_uri = "sip:%s@%s:%d;transport=udp" % (self.user, self._host(local[0]), local[1])
        self.reg_call_id = _hex(rand(10)) + "@" + self._host(local[0])
        self.reg_tag = _hex(rand(6))
        self.reg_cseq = 0
        self.reg_txn = None
        self.reg_auth_tries = 0
        self.reg_state = "none"     # none, registering, registered, failed, unregistered
        self.reg_expires = 0
        self.reg_refresh_at = None
        self.reg_unregister = False
        self.keepalive_at = None
        self.chal = {}              # realm -> (challenge dict, header name); reused for later requests
        self.nc = {}

    # -- helpers -------------------------------------------------------------------------------------------
    def _uuid(self):
        b = bytearray(self.rand(16))
        b[6] = (b[6] & 0x0F) | 0x40
        b[8] = (b[8] & 0x3F) | 0x80
        h = _hex(bytes(b))
        return "urn:uuid:%s-%s-%s-%s-%s" % (h[:8], h[8:12], h[12:16], h[16:20], h[20:])

    @staticmethod
    def _host(h):
        return "[" + h + "]" if ":" in h and not h.startswith("[") else h

    def _via(self):
        return "SIP/2.0/UDP %s:%d;branch=%s;rport" % (self._host(self.local[0]), self.local[1], new_branch(self.rand))

    def _contact(self):
        return "<%s>" % self.contact_uri

    def _common(self, msg):
        msg.add("Max-Forwards", "70")
        msg.add("User-Agent", self.user_agent)

    def _send_request(self, msg, dest, now):
        txn, act = self.tl.send_request(msg, dest, now)
        return txn, act

    def _credentials(self, msg, resp, tries):
        """Add (Proxy-)Authorization for the challenge in `resp`; False when we should give up."""
        name = "WWW-Authenticate" if resp.status == 401 else "Proxy-Authenticate"
        chal = pick_challenge(resp.get_all(name))
        if chal is None:
            return False
        stale = (chal.get("stale") or "").lower() == "true"
        if tries >= 2 * _AUTH_TRIES or (tries >= _AUTH_TRIES and not stale):
            return False
        alg = chal.get("algorithm", "MD5").upper()
        ha1 = ha1_hex(alg, self.username, chal["realm"], self.password)
        key = chal["nonce"]
        nc = self.nc.get(key, 0) + 1
        self.nc = {key: nc}                 # one nonce remembered: bounded
        hname = "Authorization" if resp.status == 401 else "Proxy-Authorization"
        msg.remove(hname)
        msg.add(hname, authorization(chal, self.username, ha1, msg.method, msg.uri, self.rand(8), nc))
        return True

    # -- registration (RFC 3261 §10.2) ------------------------------------------------------------------------
    def register(self, now):
        """Send a REGISTER (first one or a refresh)."""
        self.reg_unregister = False
        self.reg_auth_tries = 0
        return self._register(now, self.expires)

    def unregister(self, now):
        """Remove our binding (Expires: 0)."""
        self.reg_unregister = True
        self.reg_auth_tries = 0
        self.reg_refresh_at = None
        self.keepalive_at = None
        return self._register(now, 0)

    def _register(self, now, expires, auth_from=None):
        self.reg_cseq += 1
        h = [["Via", self._via()], ["From", "<%s>;tag=%s" % (self.aor, self.reg_tag)], ["To", "<%s>" % self.aor],
             ["Call-ID", self.reg_call_id], ["CSeq", "%d REGISTER" % self.reg_cseq]]
        msg = Message.request("REGISTER", "sip:" + self.domain, h)
        self._common(msg)
        msg.add("Contact", '%s;+sip.instance="<%s>";reg-id=1' % (self._contact(), self.instance))
        msg.add("Supported", "outbound")    # RFC 5626 §4.2.1: with reg-id the UA says it supports outbound
        msg.add("Expires", str(expires))
        msg.add("Allow", ALLOW)
        if auth_from is not None and not self._credentials(msg, auth_from, self.reg_auth_tries):
            self.reg_state = "failed"
            return [("register_failed", "%d %s (credentials refused)" % (auth_from.status, auth_from.reason))]
        self.reg_state = "registering"
        self.reg_txn, act = self._send_request(msg, self.proxy, now)
        return act

    def _on_register_response(self, msg, now):
        out = []
        if msg.status < 200:
            return out
        self.reg_txn = None
        if msg.status in (401, 407):
            self.reg_auth_tries += 1
            return self._register(now, 0 if self.reg_unregister else self.expires, msg)
        if msg.status == 423 and not self.reg_unregister:
            mn = msg.get("Min-Expires")
            try:
                self.expires = max(self.expires, int(mn))
            except (TypeError, ValueError):
                pass
            else:
                return self._register(now, self.expires)
        if msg.status >= 300:
            self.reg_state = "failed"
            self.reg_refresh_at = now + _RETRY_REGISTER_MS
            out.append(("register_failed", "%d %s" % (msg.status, msg.reason)))
            return out
        if self.reg_unregister:
            self.reg_state = "unregistered"
            out.append(("unregistered", 0))
            return out
        expires = self._granted(msg)
        self.reg_state = "registered"
        self.reg_expires = expires
        refresh = max(_MIN_REFRESH_S, expires - max(expires // 4, 5)) if expires > 0 else None
        self.reg_refresh_at = now + refresh * 1000 if refresh else None
        if self.keepalive_at is None and self.keepalive_ms:
            self.keepalive_at = now + self.keepalive_ms
        out.append(("registered", expires))
        return out

    def _granted(self, msg):
        """The expiry the registrar gave our contact (its Contact expires param, else Expires, §10.2.4)."""
        for c in msg.get_all("Contact"):
            try:
                na = parse_name_addr(c)
            except ParseError:
                continue
            inst = (na.params.get("+sip.instance") or "").strip('"')
            if inst == "<" + self.instance + ">" or na.uri == self.contact_uri:
                e = na.params.get("expires")
                if e is not None and e.isdigit():
                    return int(e)
        e = msg.get("Expires")
        if e is not None and e.isdigit():
            return int(e)
        return self.expires

    # -- outgoing calls (RFC 3261 §13.2) ----------------------------------------------------------------------
    def invite(self, target, sdp, now):
        """Call `target` (a sip: URI) with SDP offer `sdp` (bytes). Returns (call, actions)."""
        u = parse_uri(target)
        if u.scheme not in ("sip", "sips") or not u.host:
            raise ValueError("the callee must be a sip: URI, e.g. sip:bob@example.com")
        if len(self.calls) >= MAX_CALLS:
            raise ValueError("too many calls")
        call = Call(self, _hex(self.rand(10)) + "@" + self._host(self.local[0]), True)
        call.remote_uri = target
        call.remote_target = target
        call.local_sdp = sdp
        self.calls[call.call_id] = call
        return call, self._send_invite(call, now)

    def _send_invite(self, call, now, auth_from=None):
        call.local_cseq += 1
        h = [["Via", self._via()], ["From", "<%s>;tag=%s" % (call.local_uri, call.local_tag)],
             ["To", "<%s>" % call.remote_uri], ["Call-ID", call.call_id], ["CSeq", "%d INVITE" % call.local_cseq]]
        msg = Message.request("INVITE", call.remote_target, h, call.local_sdp)
        self._common(msg)
        msg.add("Contact", self._contact())
        msg.add("Allow", ALLOW)
        msg.add("Content-Type", "application/sdp")
        if auth_from is not None:
            prev = call.invite
            for name in ("Authorization", "Proxy-Authorization"):
                for v in prev.get_all(name):
                    msg.add(name, v)
            if not self._credentials(msg, auth_from, call.auth_tries):
                return self._end(call, "%d %s (credentials refused)" % (auth_from.status, auth_from.reason))
        call.invite = msg
        call.invite_txn, act = self._send_request(msg, self.proxy, now)
        if call.invite_txn is None:
            return self._end(call, "no transaction slot")
        return act

    def _on_invite_response(self, call, txn, msg, now):
        out = []
        st = msg.status
        if st < 200:
            if st == 100 or call.state not in (CALLING, EARLY):
                return out
            first = call.state == CALLING
            call.state = EARLY
            if call.cancel_pending:
                out += self._send_cancel(call, now)
            if first:
                out.append(("ringing", call))
            if msg.body and call.early_sdp is None:
                call.early_sdp = msg.body      # early media is not played: ZRTP and media start on the 2xx
                out.append(("early_media", call))
            return out
        if st < 300:
            return self._on_invite_2xx(call, msg, now)
        if st in (401, 407) and call.state in (CALLING, EARLY) and not call.cancelled and not call.cancel_pending:
            call.auth_tries += 1
            call.state = CALLING
            return self._send_invite(call, now, msg)
        if call.state == TERMINATED:
            return out
        if call.cancelled or call.cancel_pending:
            return self._end(call, "cancelled")
        return self._end(call, "%d %s" % (st, msg.reason))

    def _on_invite_2xx(self, call, msg, now):
        out = []
        if call.ack is not None:
            tag = _tag_of(msg.get("To"))
            if tag == call.remote_tag:        # a 2xx retransmission: ACK it again
                out.append(("send", call.ack.to_bytes(), self._dialog_dest(call)))
                return out
            return self._other_fork(call, msg, tag, now)
        if call.state == TERMINATED:
            return out
        call.remote_sdp = msg.body
        call.ack = self._confirm(call, call, msg)
        out.append(("send", call.ack.to_bytes(), self._dialog_dest(call)))
        if call.cancel_pending or call.cancelled:
            # the callee answered while we were cancelling: confirm and end (§9.1)
            call.state = CONFIRMED
            return out + self._send_bye(call, now)
        call.state = CONFIRMED
        out.append(("answered", call))
        return out

    def _confirm(self, d, call, msg):
        """Dialog `d` takes its state from `call`'s INVITE's 2xx `msg` (§12.1.2: remote tag, route set, target);
        returns the ACK for that 2xx, with the INVITE's credentials (§17.1.1.3)."""
        d.remote_tag = _tag_of(msg.get("To"))
        d.route_set = list(reversed(msg.get_all("Record-Route")))
        d.remote_target = _contact_target(msg, d.remote_target)
        ack = self._in_dialog_request(d, "ACK", cseq=parse_cseq(msg.get("CSeq"))[0])
        for name in ("Authorization", "Proxy-Authorization"):
            for v in call.invite.get_all(name):
                ack.add(name, v)
        return ack

    def _other_fork(self, call, msg, tag, now):
        """A 2xx from another fork (§13.2.2.4): ACK it, then BYE that dialog so its callee stops ringing
        back; the call keeps the first dialog. A retransmission of that 2xx only gets the ACK again."""
        known = call.forks.get(tag)
        if known is not None:
            return [("send", known[0].to_bytes(), known[1])]
        d = Call(self, call.call_id, True)   # the other dialog, never entered in self.calls
        d.local_tag = call.local_tag
        d.local_uri = call.local_uri
        d.remote_uri = call.remote_uri
        d.remote_target = call.invite.uri
        d.local_cseq = parse_cseq(msg.get("CSeq"))[0]
        ack = self._confirm(d, call, msg)
        dest = self._dialog_dest(d)
        if len(call.forks) < _MAX_FORKS:
            call.forks[tag] = (ack, dest)
        out = [("send", ack.to_bytes(), dest)]
        txn, act = self._send_request(self._in_dialog_request(d, "BYE"), dest, now)
        return out + act

    def _send_cancel(self, call, now):
        """CANCEL the pending INVITE (§9.1): same Request-URI, Call-ID, From, To, CSeq number and top Via."""
        inv = call.invite
        call.cancel_pending = False
        call.cancelled = True
        h = [["Via", inv.get("Via")]]
        for r in inv.get_all("Route"):
            h.append(["Route", r])
        h += [["From", inv.get("From")], ["To", inv.get("To")], ["Call-ID", call.call_id],
              ["CSeq", "%d CANCEL" % parse_cseq(inv.get("CSeq"))[0]]]
        msg = Message.request("CANCEL", inv.uri, h)
        self._common(msg)
        txn, act = self._send_request(msg, self.proxy, now)
        return act

    # -- in-dialog requests (§12.2.1.1) -------------------------------------------------------------------------
    def _in_dialog_request(self, call, method, cseq=None):
        if cseq is None:
            call.local_cseq += 1
            cseq = call.local_cseq
        to = "<%s>" % call.remote_uri
        if call.remote_tag:
            to += ";tag=" + call.remote_tag
        h = [["Via", self._via()], ["From", "<%s>;tag=%s" % (call.local_uri, call.local_tag)], ["To", to],
             ["Call-ID", call.call_id], ["CSeq", "%d %s" % (cseq, method)]]
        uri = call.remote_target
        routes = list(call.route_set)
        if routes:
            try:
                first = parse_name_addr(routes[0])
                lr = "lr" in parse_uri(first.uri).params
            except ParseError:
                lr = True
            if not lr:   # strict router: it becomes the Request-URI, the remote target the last Route
                uri = first.uri
                routes = routes[1:] + ["<%s>" % call.remote_target]
        for r in routes:
            h.append(["Route", r])
        msg = Message.request(method, uri, h)
        self._common(msg)
        return msg

    def _dialog_dest(self, call):
        if call.route_set:
            try:
                return _uri_addr(parse_name_addr(call.route_set[0]).uri)
            except ParseError:
                pass
        try:
            return _uri_addr(call.remote_target)
        except ParseError:
            return self.proxy

    def _send_bye(self, call, now):
        out = self._drop_reoffer(call, now)
        msg = self._in_dialog_request(call, "BYE")
        txn, act = self._send_request(msg, self._dialog_dest(call), now)
        return out + act + self._end(call, call.reason or "local hangup")

    def _drop_reoffer(self, call, now):
        """A re-INVITE still unanswered when the dialog ends gets 487 (§15.1.2)."""
        if call.reoffer_txn is None:
            return []
        return self.reject_reoffer(call, 487, "Request Terminated", now)

    # -- incoming calls (§13.3) ---------------------------------------------------------------------------------
    def answer(self, call, sdp, now):
        """Accept an incoming call with SDP answer `sdp`; the 2xx is retransmitted until the ACK."""
        if call.state != EARLY or call.outgoing:
            return []
        call.local_sdp = sdp
        resp = self._response(call, call.invite, 200, "OK", sdp)
        call.ok = resp
        call.ok_interval = self.t1
        call.ok_next = now + self.t1
        call.ok_until = now + 64 * self.t1
        call.state = ANSWERING
        return self.tl.respond(call.invite_txn, resp, now)

    def reject(self, call, status, reason, now):
        if call.state != EARLY or call.outgoing:
            return []
        act = self.tl.respond(call.invite_txn, self._response(call, call.invite, status, reason), now)
        return act + self._end(call, "rejected %d %s" % (status, reason))

    def _response(self, call, req, status, reason, body=b""):
        resp = make_response(req, status, reason, call.local_tag if call is not None else None)
        if call is not None and req.method == "INVITE" and status < 300:
            for rr in req.get_all("Record-Route"):
                resp.add("Record-Route", rr)
            resp.add("Contact", self._contact())
            resp.add("Allow", ALLOW)
        resp.add("User-Agent", self.user_agent)
        if body:
            resp.add("Content-Type", "application/sdp")
            resp.body = body
        return resp

    def _on_invite(self, msg, txn, source, now):
        to_tag = _tag_of(msg.get("To"))
        if to_tag:
            call = self.calls.get(msg.get("Call-ID"))
            if call is None or call.local_tag != to_tag or call.state not in (CONFIRMED, ANSWERING):
                return self.tl.respond(txn, make_response(msg, 481, "Call/Transaction Does Not Exist"), now)
            return self._on_reinvite(call, msg, txn, now)
        if msg.get("Call-ID") in self.calls:
            return self.tl.respond(txn, make_response(msg, 482, "Loop Detected"), now)
        if len(self.calls) >= MAX_CALLS:
            return self.tl.respond(txn, make_response(msg, 486, "Busy Here"), now)
        call = Call(self, msg.get("Call-ID"), False)
        try:
            fr = parse_name_addr(msg.get("From"))
            call.remote_uri = fr.uri
            call.remote_tag = fr.tag
            call.peer_display = fr.display
            call.remote_target = parse_name_addr(msg.get("Contact")).uri
            call.remote_cseq = parse_cseq(msg.get("CSeq"))[0]
            call.local_uri = parse_name_addr(msg.get("To")).uri
        except (ParseError, TypeError, AttributeError):
            return self.tl.respond(txn, make_response(msg, 400, "Bad From, To or Contact"), now)
        call.route_set = list(msg.get_all("Record-Route"))
        call.invite = msg
        call.invite_txn = txn
        call.remote_sdp = msg.body
        self.calls[call.call_id] = call
        act = self.tl.respond(txn, self._response(call, msg, 180, "Ringing"), now)
        act.append(("incoming", call))
        return act

    def _on_reinvite(self, call, msg, txn, now):
        """A re-INVITE (§14.2). With an offer, the application answers it (answer_reoffer) or refuses it
        (reject_reoffer: the old session stays); without one, the SDP given to answer_reoffer is our offer."""
        n = parse_cseq(msg.get("CSeq"))[0]
        if call.remote_cseq is not None and n <= call.remote_cseq:
            return self.tl.respond(txn, make_response(msg, 500, "CSeq out of order", call.local_tag), now)
        call.remote_cseq = n
        if call.state == ANSWERING:
            r = make_response(msg, 491, "Request Pending", call.local_tag)
            r.add("Retry-After", "1")
            return self.tl.respond(txn, r, now)
        if call.reoffer_txn is not None:
            # §14.2: a second INVITE before the final response to the first gets 500 with Retry-After
            r = make_response(msg, 500, "Previous INVITE Pending", call.local_tag)
            r.add("Retry-After", "1")
            return self.tl.respond(txn, r, now)
        call.offer_sdp = msg.body or None
        call.reoffer = msg
        call.reoffer_txn = txn
        return [("reoffer", call)]

    def answer_reoffer(self, call, sdp, now):
        """Accept the pending re-INVITE's offer (call.offer_sdp) with SDP answer `sdp` (RFC 3264 §8); for a
        re-INVITE without an offer, `sdp` is our offer and the ACK brings the answer ("ack_answer")."""
        msg, txn = call.reoffer, call.reoffer_txn
        if txn is None or call.state == TERMINATED:
            return []
        call.reoffer = call.reoffer_txn = None
        call.offer_in_ok = call.offer_sdp is None
        if call.offer_sdp is not None:
            call.remote_sdp = call.offer_sdp
        call.offer_sdp = None
        call.local_sdp = sdp
        return self._accept_reinvite(call, msg, txn, sdp, now)

    def reject_reoffer(self, call, status, reason, now):
        """Refuse the pending re-INVITE (e.g. 488 Not Acceptable Here): the dialog and its session stay as they
        were (§14.2)."""
        msg, txn = call.reoffer, call.reoffer_txn
        if txn is None:
            return []
        call.reoffer = call.reoffer_txn = None
        call.offer_sdp = None
        r = make_response(msg, status, reason, call.local_tag)
        r.add("User-Agent", self.user_agent)
        return self.tl.respond(txn, r, now)

    def _accept_reinvite(self, call, msg, txn, body, now):
        """The 2xx for a re-INVITE, retransmitted until its ACK; the remote target follows its Contact (§12.2.2,
        on success only as RFC 6141 §3.4 has it)."""
        call.remote_target = _contact_target(msg, call.remote_target)
        resp = self._response(call, msg, 200, "OK", body)
        out = self.tl.respond(txn, resp, now)
        call.ok = resp
        call.ok_interval = self.t1
        call.ok_next = now + self.t1
        call.ok_until = now + 64 * self.t1
        return out

    def _on_ack(self, msg, now):
        call = self.calls.get(msg.get("Call-ID"))
        if call is None or call.ok is None:
            return []
        try:
            n = parse_cseq(msg.get("CSeq"))[0]
        except ParseError:
            return []
        if n != parse_cseq(call.ok.get("CSeq"))[0]:
            return []
        call.ok = None
        if call.state == ANSWERING:
            call.state = CONFIRMED
            return [("confirmed", call)]
        if call.offer_in_ok:
            call.offer_in_ok = False
            if msg.body:
                call.remote_sdp = msg.body
                return [("ack_answer", call)]
        return []

    def _on_cancel(self, msg, txn, now):
        inv = self.tl.invite_for_cancel(msg)
        call = self.calls.get(msg.get("Call-ID"))
        if inv is None or call is None or call.invite_txn is not inv:
            return self.tl.respond(txn, make_response(msg, 481, "Call/Transaction Does Not Exist"), now)
        act = self.tl.respond(txn, make_response(msg, 200, "OK", call.local_tag), now)
        if call.state == EARLY:
            act += self.tl.respond(inv, self._response(call, call.invite, 487, "Request Terminated"), now)
            act += self._end(call, "cancelled by caller")
        return act

    def _on_bye(self, msg, txn, now):
        call = self.calls.get(msg.get("Call-ID"))
        if call is None or call.local_tag != _tag_of(msg.get("To")):
            return self.tl.respond(txn, make_response(msg, 481, "Call/Transaction Does Not Exist"), now)
        act = self.tl.respond(txn, make_response(msg, 200, "OK"), now)
        return act + self._drop_reoffer(call, now) + self._end(call, "remote hangup")

    # -- hangup -----------------------------------------------------------------------------------------------
    def hangup(self, call, now, reason=None):
        """End `call` whatever its state: CANCEL (outgoing, early), 603 (incoming, ringing) or BYE."""
        if reason:
            call.reason = reason
        if call.state == TERMINATED:
            return []
        if call.outgoing and call.state == CALLING:
            call.cancel_pending = True    # §9.1: CANCEL only after a provisional response
            return []
        if call.outgoing and call.state == EARLY:
            return self._send_cancel(call, now)
        if not call.outgoing and call.state == EARLY:
            return self.reject(call, 603, "Decline", now)
        return self._send_bye(call, now)

    def _end(self, call, reason):
        if call.state == TERMINATED:
            return []
        call.state = TERMINATED
        call.ok = None
        call.reoffer = call.reoffer_txn = call.offer_sdp = None
        self.calls.pop(call.call_id, None)
        return [("ended", call, reason)]

    # -- transport in ----------------------------------------------------------------------------------------
    def receive(self, data, source, now):
        """One datagram from `source` (proto, host, port)."""
        if not data.strip(b"\r\n"):
            return []                      # keep-alive CRLF (RFC 5626 §4.4.1)
        try:
            msg = parse(data)
        except ParseError as e:
            m = e.message
            if m is not None and m.is_request and m.method != "ACK":
                return self.tl.stateless_response(make_response(m, e.status, e.reason), source)
            return []
        if msg.is_request:
            ev, act = self.tl.on_request(msg, source, now)
        else:
            ev, act = self.tl.on_response(msg, source, now)
        return act + self._events(ev, now)

    def _events(self, ev, now):
        out = []
        for e in ev:
            kind = e[0]
            if kind == "request":
                out += self._on_request(e[1], e[2], e[3], now)
            elif kind == "response":
                out += self._on_response(e[1], e[2], now)
            elif kind == "timeout" or kind == "transport_error":
                out += self._on_timeout(e[1], now)
            elif kind == "overload":
                out += self.tl.stateless_response(make_response(e[1], 503, "Service Unavailable"), e[2])
            elif kind == "malformed":
                if e[1].method != "ACK":
                    out += self.tl.stateless_response(make_response(e[1], 400, e[3]), e[2])
        return out

    def _on_request(self, txn, msg, source, now):
        m = msg.method
        if m == "ACK":
            return self._on_ack(msg, now)
        if txn is None:
            return []
        if m == "INVITE":
            return self._on_invite(msg, txn, source, now)
        if m == "CANCEL":
            return self._on_cancel(msg, txn, now)
        if m == "BYE":
            return self._on_bye(msg, txn, now)
        if m == "OPTIONS":
            r = make_response(msg, 200, "OK")
            r.add("Allow", ALLOW)
            r.add("Accept", "application/sdp")
            return self.tl.respond(txn, r, now)
        r = make_response(msg, 405, "Method Not Allowed")
        r.add("Allow", ALLOW)
        return self.tl.respond(txn, r, now)

    def _call_of(self, msg):
        call = self.calls.get(msg.get("Call-ID"))
        if call is None:
            return None
        try:
            if _tag_of(msg.get("From")) != call.local_tag:
                return None
        except ParseError:
            return None
        return call

    def _on_response(self, txn, msg, now):
        try:
            method = parse_cseq(msg.get("CSeq"))[1]
        except (ParseError, AttributeError):
            return []
        if method == "REGISTER":
            if txn is not None and txn is self.reg_txn:
                return self._on_register_response(msg, now)
            return []
        call = self._call_of(msg)
        if method == "INVITE":
            if call is None:
                return []   # a late 2xx for a call we already ended: Timer M of its transaction absorbs it
            if txn is not None and txn is not call.invite_txn:
                return []                  # a response to an INVITE we sent before a digest retry
            if txn is None and not (200 <= msg.status < 300):
                return []
            return self._on_invite_response(call, txn, msg, now)
        return []                          # BYE/CANCEL/OPTIONS answers change nothing here

    def _on_timeout(self, txn, now):
        if txn is None:
            return []
        if txn is self.reg_txn:
            self.reg_txn = None
            self.reg_state = "failed"
            self.reg_refresh_at = now + _RETRY_REGISTER_MS
            return [("register_failed", "no answer from " + "%s:%d" % (self.proxy[1], self.proxy[2]))]
        for call in list(self.calls.values()):
            if call.invite_txn is txn:
                if txn.is_server:
                    return self._send_bye(call, now) if call.state == CONFIRMED else self._end(call, "no ACK")
                return self._end(call, "no answer (timeout)")
        return []

    # -- timers ----------------------------------------------------------------------------------------------
    def next_timer(self):
        ts = [self.tl.next_timer(), self.reg_refresh_at, self.keepalive_at]
        for c in self.calls.values():
            if c.ok is not None:
                ts.append(min(c.ok_next, c.ok_until))
        best = None
        for t in ts:
            if t is not None and (best is None or t < best):
                best = t
        return best

    def tick(self, now):
        ev, out = self.tl.tick(now)
        out = out + self._events(ev, now)
        if self.reg_refresh_at is not None and now >= self.reg_refresh_at and self.reg_txn is None \
                and not self.reg_unregister:
            self.reg_refresh_at = None
            self.reg_auth_tries = 0
            out += self._register(now, self.expires)
        if self.keepalive_at is not None and now >= self.keepalive_at:
            self.keepalive_at = now + self.keepalive_ms
            if self.reg_state == "registered":
                out.append(("send", b"\r\n\r\n", self.proxy))
        for call in list(self.calls.values()):
            if call.ok is not None and (now >= call.ok_next or now >= call.ok_until):
                if now >= call.ok_until:
                    # §13.3.1.4: no ACK within 64*T1: confirm and end the session with BYE
                    call.ok = None
                    call.reason = "no ACK"
                    if call.state == ANSWERING:
                        call.state = CONFIRMED
                    out += self._send_bye(call, now)
                    continue
                out.append(("send", call.ok.to_bytes(), _response_dest(call)))
                call.ok_interval = min(call.ok_interval * 2, self.t2)
                call.ok_next = now + call.ok_interval
        return out


def _response_dest(call):
    """Where 2xx retransmissions go: the address the INVITE's response went to (§18.2.2)."""
    t = call.invite_txn
    if t is not None:
        return t.addr
    v = parse_via(call.invite.get("Via"))
    return ("udp", v.params.get("received") or v.host, int(v.params.get("rport") or v.port or 5060))


def _tag_of(value):
    if value is None:
        return None
    return parse_name_addr(value).tag


def _contact_target(msg, current):
    """The remote target `msg`'s Contact sets (§12.1.2, §12.2.2), or `current` when it has no usable one."""
    ct = msg.get("Contact")
    if ct is not None:
        try:
            return parse_name_addr(ct).uri
        except ParseError:
            pass
    return current
