"""The softphone as one sans-I/O object: registration, one call (placed or answered), its media session and
the reports a user sees. The adapter (adapter/agent_loop.py) owns the two sockets and the clock.

    ep = Endpoint(opts, rand, cache, now, source=None, sink=None)
    acts = ep.start(now) / ep.receive_sip(data, src, now) / ep.receive_media(data, src, now) / ep.tick(now)

opts: user, password, proxy (proto, host, port), sip_local (host, port), media_local (host, port), call (URI or
None), answer (bool), duration_ms, zrtp ("mandatory" | "optional" | "off"), register_timeout_ms,
call_timeout_ms. Actions: ("sip", bytes, (proto, host, port)), ("media", bytes, (host, port)),
("report", dict) and finally ("exit", code). Report events: registered, incoming, ringing, answered,
waiting (zrtp=mandatory: no media until ZRTP succeeds), secure, insecure, cache_mismatch, cache_error, media (a re-INVITE changed direction, address or codec),
reoffer_refused (a re-INVITE we answered 488: the call goes on as before), ended, error.
"""
from microwitch.compat import const
from microwitch.agent import sdp
from microwitch.agent.ua import UserAgent
from microwitch.agent.call import MediaSession

_LINGER_MS = const(1500)          # after the call: time for BYE/ACK retransmissions and the unregister
_REGISTER_TIMEOUT_MS = const(10000)
_ANSWER_WAIT_MS = const(120000)   # --answer waits this long for a call unless told otherwise
_CALL_SETUP_MS = const(60000)     # an outgoing call not answered by then is cancelled


class Endpoint:
    def __init__(self, opts, rand, cache, now, source=None, sink=None):
        self.o = opts
        self.rand = rand
        self.cache = cache
        self.source = source
        self.sink = sink
        self.policy = opts.get("zrtp", "mandatory")
        self.ua = UserAgent(opts["user"], opts["password"], opts["proxy"], opts["sip_local"], rand,
                            expires=opts.get("expires", 600))
        self.call = None
        self.media = None
        self.sess_id = int.from_bytes(rand(4), "big") & 0x7FFFFFFF
        self.sess_ver = 1             # o= version: +1 whenever our SDP changes (RFC 3264 §8)
        self.state = "start"
        self.deadline = now + opts.get("register_timeout_ms", _REGISTER_TIMEOUT_MS)
        self.hangup_at = None
        self.exit_at = None
        self.exit_code = 0
        self.end_reason = None
        self.done = False

    # -- helpers ----------------------------------------------------------------------------------------------
    def _report(self, event, **kw):
        d = {"event": event}
        d.update(kw)
        return ("report", d)

    def _sip(self, acts, now):
        """Turn UA output into endpoint actions, handling its events."""
        out = []
        for a in acts:
            if a[0] == "send":
                out.append(("sip", a[1], a[2]))
            else:
                out += self._on_ua_event(a, now)
        return out

    def _media_acts(self, acts, now):
        out = []
        for a in acts:
            k = a[0]
            if k == "send":
                out.append(("media", a[1], a[2]))
            elif k == "secure":
                i = a[1]
                out.append(self._report("secure", sas=i["sas"], cipher=i["cipher"], auth=i["auth"], ka=i["ka"],
                                        hash=i["hash"], cache=i["cache"], verified=i["verified"]))
            elif k == "insecure":
                out.append(self._report("insecure", reason=a[1]))
            elif k == "cache_mismatch":
                out.append(self._report("cache_mismatch", sas=a[1]["sas"], peer_zid=a[1]["peer_zid"],
                                        reason="the peer's ZID cache does not match ours: compare the SAS aloud, "
                                               "this may be a man-in-the-middle"))
            elif k == "cache_error":  # the call is secure, but the next one cannot prove continuity
                out.append(self._report("cache_error", reason="the ZID cache could not be saved (%s): the "
                                                              "retained secret is lost after this call" % a[1]))
            elif k == "zrtp_failed":
                if self.policy == "mandatory":
                    out.append(self._report("insecure", reason="ZRTP failed (%s); zrtp=mandatory: no media was "
                                                               "sent in clear, hanging up" % a[1]))
                    out += self._hangup(now, "ZRTP failed: " + a[1])
                else:
                    out.append(self._report("insecure", reason="ZRTP failed (%s): the call stays in clear" % a[1]))
            elif k == "dtmf":
                out.append(self._report("dtmf", digit=a[1]))
        return out

    def _new_media(self, now):
        return MediaSession(self.policy, self.rand, self.cache, now, self.source, self.sink)

    def _local_sdp(self):
        """(our a=zrtp-hash or None, (media host, port)) for the SDP."""
        return self.media.hello_hash(), self.o["media_local"]

    def _finish(self, now, code):
        if self.exit_at is None:
            self.exit_code = code
            self.exit_at = now + _LINGER_MS
            if self.ua.reg_state == "registered":
                return self._sip(self.ua.unregister(now), now)
        return []

    def _hangup(self, now, reason):
        if self.call is None:
            return []
        return self._sip(self.ua.hangup(self.call, now, reason), now)

    # -- UA events --------------------------------------------------------------------------------------------
    def _on_ua_event(self, a, now):
        k = a[0]
        out = []
        if k == "registered":
            if self.state == "start":
                out.append(self._report("registered", aor=self.ua.aor, expires=a[1], contact=self.ua.contact_uri))
                out += self._after_register(now)
        elif k == "register_failed":
            if self.state in ("start", "registering"):
                out.append(self._report("error", reason="registration failed: " + a[1]))
                self.state = "failed"
                out += self._finish(now, 3)
        elif k == "incoming":
            out += self._on_incoming(a[1], now)
        elif k == "ringing":
            out.append(self._report("ringing"))
        elif k == "early_media":
            pass          # ignored: nothing is played or sent before the 200 (and ZRTP runs on the dialog)
        elif k == "answered":
            out += self._on_answered(a[1], now)
        elif k == "confirmed":
            pass
        elif k == "reoffer":
            out += self._on_reoffer(a[1], now)
        elif k == "ack_answer":
            out += self._on_ack_answer(a[1], now)
        elif k == "ended":
            if a[1] is self.call:
                out += self._on_ended(a[2], now)
        return out

    def _after_register(self, now):
        if self.o.get("call"):
            self.state = "calling"
            self.media = self._new_media(now)
            h, ml = self._local_sdp()
            offer = sdp.offer(ml[0], ml[1], self.sess_id, 1, h)
            try:
                self.call, acts = self.ua.invite(self.o["call"], offer, now)
            except ValueError as e:
                return [self._report("error", reason=str(e))] + self._finish(now, 2)
            self.deadline = now + self.o.get("call_timeout_ms", _CALL_SETUP_MS)
            return self._sip(acts, now)
        self.state = "waiting"
        self.deadline = now + self.o.get("call_timeout_ms", _ANSWER_WAIT_MS)
        return []

    def _on_incoming(self, call, now):
        who = call.remote_uri
        if not self.o.get("answer") or self.call is not None:
            return [self._report("incoming", **{"from": who, "rejected": True})] + \
                self._sip(self.ua.reject(call, 486, "Busy Here", now), now)
        out = [self._report("incoming", **{"from": who})]
        self.call = call
        self.media = self._new_media(now)
        h, ml = self._local_sdp()
        try:
            offer = sdp.parse(call.remote_sdp or b"")
            body, remote = sdp.answer(offer, ml[0], ml[1], self.sess_id, 1, h)
        except sdp.SdpError as e:
            self.call = None
            return out + [self._report("error", reason="cannot answer: " + e.reason)] + \
                self._sip(self.ua.reject(call, 488, "Not Acceptable Here", now), now)
        out += self._sip(self.ua.answer(call, body, now), now)
        out.append(self._report("answered", **{"from": who, "codec": remote["codec"]}))
        out += self._start_media(remote, now)
        return out

    def _on_answered(self, call, now):
        if call is not self.call:
            return []
        try:
            remote = sdp.answer_result(sdp.parse(call.remote_sdp or b""))
        except sdp.SdpError as e:
            return [self._report("error", reason="unusable SDP answer: " + e.reason)] + \
                self._hangup(now, "unusable SDP answer")
        out = [self._report("answered", to=call.remote_uri, codec=remote["codec"])]
        return out + self._start_media(remote, now)

    def _start_media(self, remote, now):
        self.state = "in_call"
        d = self.o.get("duration_ms")
        self.hangup_at = now + d if d else None
        self.deadline = None
        out = []
        if self.policy == "mandatory":  # the user should know why nothing is heard yet
            out.append(self._report("waiting", reason="zrtp=mandatory: no media is sent until ZRTP succeeds"))
        return out + self._media_acts(self.media.start(remote, now), now)

    def _on_reoffer(self, call, now):
        """A re-INVITE's offer, answered like the first one (sdp.answer, RFC 3264 §8): hold (sendonly ->
        recvonly, we stop sending), inactive, resume, a new address or codec. ZRTP and SRTP carry on. An offer
        we cannot take gets 488 and the call keeps its old session (RFC 3261 §14.2)."""
        if call is not self.call or self.media is None or not self.media.started:
            return self._sip(self.ua.reject_reoffer(call, 488, "Not Acceptable Here", now), now)
        h, ml = self._local_sdp()
        if call.offer_sdp is None:
            return self._offer_in_ok(call, h, ml, now)
        try:
            offer = sdp.parse(call.offer_sdp)
            body, remote = sdp.answer(offer, ml[0], ml[1], self.sess_id, self.sess_ver, h)
            if body != call.local_sdp:
                self.sess_ver += 1
                body, remote = sdp.answer(offer, ml[0], ml[1], self.sess_id, self.sess_ver, h)
        except sdp.SdpError as e:
            return [self._report("reoffer_refused", reason=e.reason)] + \
                self._sip(self.ua.reject_reoffer(call, 488, "Not Acceptable Here", now), now)
        out = self._sip(self.ua.answer_reoffer(call, body, now), now)
        return out + self._update_media(remote, now)

    def _offer_in_ok(self, call, h, ml, now):
        """A re-INVITE without SDP (RFC 3261 §14.2): our new offer goes in the 2xx, the answer comes in the ACK."""
        try:
            prev = sdp.parse(call.remote_sdp or b"")
            body = sdp.reoffer(prev, ml[0], ml[1], self.sess_id, self.sess_ver, h)
            if body != call.local_sdp:
                self.sess_ver += 1
                body = sdp.reoffer(prev, ml[0], ml[1], self.sess_id, self.sess_ver, h)
        except sdp.SdpError as e:
            return [self._report("reoffer_refused", reason=e.reason)] + \
                self._sip(self.ua.reject_reoffer(call, 488, "Not Acceptable Here", now), now)
        return self._sip(self.ua.answer_reoffer(call, body, now), now)

    def _on_ack_answer(self, call, now):
        """The answer to the offer in our re-INVITE 2xx (RFC 3264 §8); an unusable one ends the call."""
        if call is not self.call or self.media is None:
            return []
        try:
            remote = sdp.answer_result(sdp.parse(call.remote_sdp or b""))
        except sdp.SdpError as e:
            return [self._report("error", reason="unusable SDP answer in the ACK: " + e.reason)] + \
                self._hangup(now, "unusable SDP answer")
        return self._update_media(remote, now)

    def _update_media(self, remote, now):
        out = self._media_acts(self.media.update(remote, now), now)
        d = remote["direction"]
        out.append(self._report("media", codec=remote["codec"], addr=remote["addr"], port=remote["port"],
                                sending=d in ("sendrecv", "recvonly"), receiving=d in ("sendrecv", "sendonly")))
        return out

    def _on_ended(self, reason, now):
        out = []
        if self.media is not None:
            out += self._media_acts(self.media.stop(now), now)     # the last report, with an RTCP BYE
        counts = self.media.counts() if self.media is not None else {}
        r = self.end_reason or reason
        out.append(self._report("ended", reason=r, secure=bool(self.media is not None and self.media.secure),
                                **counts))
        self.state = "ended"
        code = 0
        if self.media is None or (self.policy == "mandatory" and not self.media.secure):
            code = 4
        out += self._finish(now, code)
        return out

    # -- inputs ------------------------------------------------------------------------------------------------
    def start(self, now):
        return self._sip(self.ua.register(now), now)

    def receive_sip(self, data, source, now):
        return self._sip(self.ua.receive(data, source, now), now)

    def receive_media(self, data, source, now):
        if self.media is None:
            return []
        return self._media_acts(self.media.receive(data, source, now), now)

    def next_timer(self):
        ts = [self.ua.next_timer(), self.deadline, self.hangup_at, self.exit_at]
        if self.media is not None:
            ts.append(self.media.next_timer())
        best = None
        for t in ts:
            if t is not None and (best is None or t < best):
                best = t
        return best

    def interrupt(self, now):
        """The user asked to stop (Ctrl-C): hang up, unregister, exit."""
        if self.call is not None and self.state in ("calling", "in_call"):
            self.end_reason = "local hangup (interrupted)"
            return self._hangup(now, "interrupted")
        return self._finish(now, 130)

    def tick(self, now):
        out = self._sip(self.ua.tick(now), now)
        if self.media is not None:
            out += self._media_acts(self.media.tick(now), now)
        if self.deadline is not None and now >= self.deadline:
            self.deadline = None
            if self.state == "start":
                out.append(self._report("error", reason="no answer to REGISTER from the proxy"))
                out += self._finish(now, 3)
            elif self.state == "calling":
                self.end_reason = "not answered in time"
                out += self._hangup(now, "not answered in time")
            elif self.state == "waiting":
                out.append(self._report("error", reason="no incoming call"))
                out += self._finish(now, 5)
        if self.hangup_at is not None and now >= self.hangup_at:
            self.hangup_at = None
            if self.state == "in_call":
                self.end_reason = "local hangup (duration reached)"
                out += self._hangup(now, "duration reached")
        if self.exit_at is not None and now >= self.exit_at and not self.done:
            self.done = True
            out.append(("exit", self.exit_code))
        return out
