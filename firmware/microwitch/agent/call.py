"""The media session of one call: ZRTP (RFC 6189) + SRTP (RFC 3711) + RTP (RFC 3550) on one port, sans-I/O.

    m = MediaSession(policy, rand, cache, now, source=None, sink=None)
    m.hello_hash()                          # for a=zrtp-hash in our SDP (None with policy "off")
    acts = m.start(remote, now)             # remote: the dict sdp.answer()/answer_result() returns
    acts = m.receive(data, source, now)     # one datagram from the media socket
    acts = m.tick(now)                      # sends a 20 ms frame when one is due, RTCP, ZRTP timers
    acts = m.update(remote, now)            # a re-INVITE's new offer/answer: direction, address, codec
    acts = m.stop(now)                      # end of the call: the RTCP BYE

Actions: ("send", bytes, (host, port)); events ("secure", info), ("insecure", reason),
("cache_mismatch", info), ("cache_error", reason), ("zrtp_failed", reason), ("dtmf", digit).

ZRTP and RTP share the port and are told apart by the ZRTP magic cookie (RFC 6189 §5); RTCP by its packet
type (RFC 5761 §4). Symmetric RTP (RFC 4961): we send to where the peer's authentic packets come from.
Policy: "mandatory" never sends a clear RTP packet and drops clear ones received; "optional" sends and
accepts clear RTP until ZRTP succeeds (and says the call is not secure); "off" runs no ZRTP at all.
RTCP (RFC 3550 6, media/rtcp.Reporter) follows the same policy: SRTCP with the call's keys once secure, clear
only where clear RTP is allowed, nothing on a mandatory call before it is secure. It leaves from the media
port (we announce a=rtcp with it) towards the peer's RTP port with rtcp-mux, else its a=rtcp port or port + 1,
and then where the peer's authentic RTCP comes from.
`source()` returns the next 20 ms frame as 16-bit little-endian PCM (320 bytes) or None for silence;
`sink(pcm)` gets the decoded frames in sequence order (a small reorder buffer; lost frames become silence).
"""
from microwitch.compat import const
from microwitch.zrtp.engine import ZrtpSession
from microwitch.media import srtp, g711, demux, dtmf, rtcp
from microwitch.media.rtp import RtpSender, RtpReceiver, RtpError
from microwitch.media.jitter import JitterBuffer

FRAME_MS = const(20)
FRAME_SAMPLES = const(160)
_MAX_CATCHUP = const(5)       # frames sent in one tick after a stall; older ones are skipped
_REORDER = const(4)           # frames the recording waits for a late packet before calling it lost
_MAX_EARLY = const(16)        # SRTP packets kept while our side finishes Confirm (they may beat Conf2ACK)
_SILENCE = bytes(2 * FRAME_SAMPLES)
POLICIES = ("mandatory", "optional", "off")


def _codec(name):
    if name == "PCMU":
        return g711.ulaw_encode, g711.ulaw_decode
    if name == "PCMA":
        return g711.alaw_encode, g711.alaw_decode
    raise ValueError("unsupported codec " + str(name))


class MediaSession:
    def __init__(self, policy, rand, cache, now, source=None, sink=None, zrtp_config=None):
        if policy not in POLICIES:
            raise ValueError("zrtp policy must be mandatory, optional or off")
        self.policy = policy
        self.rand = rand
        self.source = source
        self.sink = sink
        self.ssrc = int.from_bytes(rand(4), "big")
        self.tx = None                # RtpSender once the payload type is known
        self.rx = RtpReceiver()
        self.jb = JitterBuffer(_REORDER)
        self.dtmf = dtmf.DtmfReceiver()
        self.zrtp = None
        if policy != "off":
            cfg = dict(zrtp_config or {})
            cfg["ssrc"] = self.ssrc
            self.zrtp = ZrtpSession("auto", cfg, rand, cache, now)
        self.remote = None
        self.peer = None              # where media goes (symmetric RTP: latched on authentic packets)
        self.latched = False
        self.started = False
        self.stopped = False
        self.secure = False
        self.info = None
        self.zrtp_failed = None
        self.srtp_out = None
        self.srtp_in = None
        self.next_frame = None
        self.encode = None
        self.early = []               # packets that arrived just before we went secure (RFC 6189 §4.6)
        self.rtcp = None              # rtcp.Reporter once started
        self.mux = False              # RTCP on the RTP port (rtcp-mux, RFC 5761)
        self.rtcp_peer = None         # where RTCP goes without rtcp-mux
        self.rtcp_latched = False
        # counters (reported when the call ends)
        self.sent = 0                 # RTP packets sent (clear or SRTP)
        self.sent_srtp = 0
        self.received = 0             # RTP packets accepted (clear or SRTP)
        self.received_srtp = 0
        self.withheld = 0             # frames not sent because media would have been in clear
        self.dropped_clear = 0        # clear RTP refused (mandatory, or after ZRTP went secure)
        self.dropped_auth = 0         # SRTP that failed authentication or replay checks
        self.zrtp_packets = 0
        self.rtcp_withheld = 0        # reports not sent because they would have been in clear
        self.rtcp_dropped_clear = 0   # clear RTCP refused (mandatory)
        self.rtcp_dropped_auth = 0    # SRTCP that failed authentication or replay checks
        self.rtcp_dropped_bad = 0     # RTCP that does not parse or does not start with SR/RR (RFC 3550 A.2)

    def hello_hash(self):
        return self.zrtp.hello_hash() if self.zrtp is not None else None

    def counts(self):
        return {"rtp_sent": self.sent, "srtp_sent": self.sent_srtp, "rtp_received": self.received,
                "srtp_received": self.received_srtp, "withheld": self.withheld,
                "dropped_clear": self.dropped_clear, "dropped_auth": self.dropped_auth,
                "zrtp_packets": self.zrtp_packets, "rtcp": self.rtcp_stats()}

    def rtcp_stats(self):
        """RTCP figures for the end-of-call report: Reporter.stats() plus what we refused."""
        if self.rtcp is None:
            return None
        d = self.rtcp.stats()
        d["withheld"] = self.rtcp_withheld
        d["dropped"] = self.rtcp_dropped_clear + self.rtcp_dropped_auth + self.rtcp_dropped_bad
        d["dropped_auth"] = self.rtcp_dropped_auth
        d["mux"] = self.mux
        return d

    def start(self, remote, now):
        """Begin with the negotiated stream `remote` (addr, port, pt, codec, zrtp_hash, ...)."""
        out = []
        self.remote = remote
        self.peer = (remote["addr"], remote["port"])
        self.tx = RtpSender(self.ssrc, remote["pt"], self.rand)
        self.rtcp = rtcp.Reporter(self.tx, self.rx, self.rand, now)
        self.mux = bool(remote.get("rtcp_mux"))
        if not self.mux:
            self.rtcp_peer = (remote.get("rtcp_addr") or remote["addr"], remote.get("rtcp_port") or remote["port"] + 1)
        self.encode = _codec(remote["codec"])[0]
        self.started = True
        self.next_frame = now
        if self.zrtp is not None:
            if remote.get("zrtp_hash"):
                try:
                    out += self._zrtp_actions(self.zrtp.set_peer_hello_hash(remote["zrtp_hash"]), now)
                except ValueError:
                    pass      # an unreadable hash only loses the Hello binding; the SAS still protects
            out += self._zrtp_actions(self.zrtp.tick(now), now)
        if self.policy == "optional":
            out.append(("insecure", "ZRTP not negotiated yet: media is sent in clear until it is"))
        elif self.policy == "off":
            out.append(("insecure", "ZRTP is off (--zrtp off): media is sent in clear"))
        return out

    def update(self, remote, now):
        """The session a re-INVITE negotiated (RFC 3264 §8): its direction (hold and resume, §8.4), address
        and codec replace the old ones. SSRC, sequence numbers, ZRTP and the SRTP keys carry on: a re-INVITE
        never restarts them. A new address drops the symmetric-RTP latch until the peer's packets come
        from there."""
        if not self.started or self.stopped:
            return []
        old = self.remote
        self.remote = remote
        if (remote["addr"], remote["port"]) != (old["addr"], old["port"]):
            self.peer = (remote["addr"], remote["port"])
            self.latched = False
            self.rtcp_latched = False
        self.mux = bool(remote.get("rtcp_mux"))
        if not self.mux and not self.rtcp_latched:
            self.rtcp_peer = (remote.get("rtcp_addr") or remote["addr"], remote.get("rtcp_port") or remote["port"] + 1)
        if remote["pt"] != self.tx.payload_type:
            self.encode = _codec(remote["codec"])[0]
            self.tx.payload_type = remote["pt"]
        return []

    def stop(self, now=None):
        """End of the call: a last report with an RTCP BYE (RFC 3550 6.6) when `now` is given and RTCP may be
        sent; the frames still held for reordering go to the sink."""
        out = []
        if self.started and not self.stopped and now is not None:
            out = self._send_rtcp(now, "")
        self.stopped = True
        for _ in range(len(self.jb) + _REORDER + 1):
            if not len(self.jb):
                break
            self._play(self.jb.pop())
        return out

    def next_timer(self):
        if not self.started or self.stopped:
            return None
        return min(self.next_frame, self.rtcp.next_time())

    # -- ZRTP -------------------------------------------------------------------------------------------------
    def _zrtp_actions(self, acts, now):
        out = []
        for a in acts:
            k = a[0]
            if k == "send":
                self.zrtp_packets += 1
                if self.peer is not None:
                    out.append(("send", a[1], self.peer))
            elif k == "secure":
                out += self._go_secure(a[1])
            elif k == "failed":
                if not self.secure and self.zrtp_failed is None:
                    self.zrtp_failed = a[1]
                    out.append(("zrtp_failed", a[1]))
            elif k == "cache_mismatch":
                out.append(("cache_mismatch", a[1]))
            elif k == "cache_error":
                out.append(("cache_error", a[1]))
            elif k == "clear":
                # we never allow GoClear (allow_clear is not set), so this cannot happen; stay safe anyway
                self.secure = False
                self.srtp_out = self.srtp_in = None
                out.append(("insecure", "the peer switched ZRTP to clear"))
        return out

    def _go_secure(self, info):
        if self.secure:
            return []
        self.srtp_out, self.srtp_in = srtp.from_zrtp(info)
        self.secure = True
        self.info = info
        out = [("secure", info)]
        early = self.early
        self.early = []
        for data, source, t in early:
            if demux.classify(data) == demux.RTCP:
                out += self._rtcp_in(data, source, t)
            else:
                out += self._rtp(data, source, t)
        return out

    # -- receive ------------------------------------------------------------------------------------------------
    def receive(self, data, source, now):
        if not self.started or self.stopped:
            return []
        kind = demux.classify(data)
        if kind == demux.ZRTP:
            if self.zrtp is None:
                return []
            if not self.latched and source[0] == self.remote["addr"]:
                self.peer = source
            return self._zrtp_actions(self.zrtp.receive(data, now), now)
        if kind is None:
            return []                 # STUN, junk
        if not self.secure and self.zrtp is not None and self.zrtp.state in ("confirm1-sent", "confirm2-sent"):
            # the peer is already secure and its first SRTP packets overtook the last ZRTP message
            if len(self.early) < _MAX_EARLY:
                self.early.append((bytes(data), source, now))
                return []
        if kind == demux.RTCP:
            return self._rtcp_in(data, source, now)
        return self._rtp(data, source, now)

    def _rtcp_in(self, data, source, now):
        """The peer's (S)RTCP (RFC 3711 3.4): authenticated and decrypted once secure, refused in clear on a
        mandatory call; then its reports go to the Reporter. Every refusal is counted, none raises."""
        if self.secure:
            try:
                pkt = self.srtp_in.unprotect_rtcp(data)
            except srtp.SrtpError:
                self.rtcp_dropped_auth += 1
                return []
        elif self.policy == "mandatory":
            self.rtcp_dropped_clear += 1
            return []
        else:
            pkt = data
        try:
            self.rtcp.receive(pkt, now)
        except rtcp.RtcpError:
            self.rtcp_dropped_bad += 1
            return []
        if not self.mux:
            self.rtcp_peer = source   # symmetric RTCP (RFC 4961): reply where authentic reports come from
            self.rtcp_latched = True
        return []

    def _rtp(self, data, source, now):
        if self.secure:
            try:
                pkt = self.srtp_in.unprotect(data)
            except srtp.SrtpError:
                self.dropped_auth += 1
                return []
        elif self.policy == "mandatory":
            self.dropped_clear += 1
            return []
        else:
            pkt = data
        try:
            h = self.rx.feed(pkt, source, now)
        except RtpError:
            return []
        if h is None:
            return []
        self.received += 1
        if self.secure:
            self.received_srtp += 1
        # symmetric RTP (RFC 4961): answer where authentic packets come from
        self.peer = self.rx.source
        self.latched = True
        pt = h.payload_type
        if pt == self.remote.get("dtmf_pt"):
            try:
                digit = self.dtmf.feed(h.timestamp, h.payload)
            except dtmf.DtmfError:
                return []
            return [("dtmf", digit)] if digit is not None else []
        if pt != 0 and pt != 8:
            return []
        if self.sink is not None:
            self.jb.push(h.seq, (pt, h.payload))
            while len(self.jb) >= _REORDER:
                self._play(self.jb.pop())
        return []

    def _play(self, frame):
        if frame is None:
            self.sink(_SILENCE)       # lost: concealed with silence so the recording keeps its timing
            return
        pt, payload = frame
        self.sink(g711.ulaw_decode(payload) if pt == 0 else g711.alaw_decode(payload))

    # -- send -----------------------------------------------------------------------------------------------------
    def tick(self, now):
        out = []
        if not self.started or self.stopped:
            return out
        if self.zrtp is not None:
            out += self._zrtp_actions(self.zrtp.tick(now), now)
        n = 0
        while now >= self.next_frame:
            n += 1
            if n > _MAX_CATCHUP:
                # a stall: skip the frames we are late for rather than bursting them
                skipped = (now - self.next_frame) // FRAME_MS + 1
                self.next_frame += skipped * FRAME_MS
                self.tx.skip(skipped * FRAME_SAMPLES)
                break
            self.next_frame += FRAME_MS
            p = self._frame()
            if p is not None:
                out.append(("send", p, self.peer))
        if self.rtcp.due(now):
            out += self._send_rtcp(now, None)
        return out

    def _send_rtcp(self, now, leaving):
        """A report now (with BYE when `leaving` is not None): SRTCP once secure, clear only where clear RTP
        is allowed; a mandatory call that is not secure yet sends nothing and tries again later."""
        r = self.rtcp
        if not self.secure and self.policy == "mandatory":
            self.rtcp_withheld += 1
            r.skip(now)
            return []
        # the SR's RTP timestamp on our sampling clock: tx.timestamp belongs to the frame due at next_frame
        ts = (self.tx.timestamp - (self.next_frame - now) * self.tx.clock_rate // 1000) & 0xFFFFFFFF
        data = r.compound(now, leaving, ts)
        if self.secure:
            try:
                data = self.srtp_out.protect_rtcp(data)
            except srtp.SrtpError:
                r.skip(now)           # the SRTCP index ran out (2^31 reports): nothing more can be sent
                return []
        r.sent(now, len(data))
        dest = self.peer if self.mux else self.rtcp_peer
        return [("send", data, dest)]

    def _frame(self):
        if self.remote.get("direction") in ("sendonly", "inactive"):
            self.tx.skip()
            return None
        if not self.secure and self.policy == "mandatory":
            # no clear media, ever: the frame is not taken from the source, so audio starts when secure
            self.withheld += 1
            self.tx.skip()
            return None
        pcm = self.source() if self.source is not None else None
        if pcm is None or len(pcm) != 2 * FRAME_SAMPLES:
            pcm = _SILENCE if pcm is None else (bytes(pcm) + _SILENCE)[:2 * FRAME_SAMPLES]
        pkt = self.tx.packet(self.encode(pcm), self.sent == 0)
        self.sent += 1
        if self.secure:
            self.sent_srtp += 1
            return self.srtp_out.protect(pkt)
        return pkt
