"""The agent's I/O adapter: a SIP socket and a media socket (UDP) driven by select.poll around an Endpoint.

Same shape as adapter/poll_loop.py: only `socket` and `select.poll`, which CPython and MicroPython share, so a
board runs this very loop. `now` handed to the endpoint is a never-wrapping millisecond count accumulated from
ticks_diff; `ticks` and `net` (one object with socket's getaddrinfo/SOCK_DGRAM and select's poll/POLLIN) can be
injected, so a test drives this very loop over an in-memory network (tests_host/portable/test_agent_loop.py).
Reports go to `report(dict)`; the loop ends on the endpoint's ("exit", code) or after `max_ms`. run_agent() below
is the agent as a device role (rounds of register/answer or call, a tone or WAV as the microphone).
"""
from microwitch.compat import const, ticks_ms, ticks_diff, sockaddr, print_exception

_RECV = const(4096)            # a SIP datagram or an RTP packet; bigger ones are truncated and then refused
_POLL_MAX_MS = const(20)       # one RTP frame: the loop never sleeps longer
_BURST = const(32)             # datagrams read per socket per round
_ADDR_CACHE = const(32)


def bind_udp(socket_mod, host, port):
    """A UDP socket bound to host:port (board glue uses it for the SIP and media sockets)."""
    ai = socket_mod.getaddrinfo(host, port, 0, socket_mod.SOCK_DGRAM)[0]
    s = socket_mod.socket(ai[0], socket_mod.SOCK_DGRAM)
    s.bind(ai[-1])
    return s


class AgentLoop:
    def __init__(self, endpoint, sip_sock, media_sock, report, log=None, ticks=None, net=None):
        if net is None:
            import socket
            import select
        else:   # an injected network: socket's getaddrinfo/SOCK_DGRAM and select's poll/POLLIN on one object
            socket = select = net
        self._socket = socket
        self.ep = endpoint
        self.sip = sip_sock
        self.media = media_sock
        self.report = report
        self.log = log
        self._ticks = ticks or ticks_ms
        self._t0 = self._ticks()
        self._last = self._t0
        self._now = 0
        self._addrs = {}
        self._poll = select.poll()
        self._poll.register(sip_sock, select.POLLIN)
        self._poll.register(media_sock, select.POLLIN)
        self._stop_code = None
        f = getattr(sip_sock, "fileno", None)
        self._sip_fd = f() if f is not None else None

    def now(self):
        t = self._ticks()
        self._now += ticks_diff(t, self._last)
        self._last = t
        return self._now

    def _resolve(self, host, port):
        key = (host, port)
        a = self._addrs.get(key)
        if a is None:
            if len(self._addrs) >= _ADDR_CACHE:
                self._addrs = {}
            a = self._socket.getaddrinfo(host, port, 0, self._socket.SOCK_DGRAM)[0][-1]
            self._addrs[key] = a
        return a

    def _do(self, actions):
        for a in actions:
            k = a[0]
            try:
                if k == "sip":
                    dest = a[2]
                    if dest[0] != "udp":
                        if self.log:
                            self.log("only UDP is supported towards %s" % (dest,))
                        continue
                    self.sip.sendto(a[1], self._resolve(dest[1], dest[2]))
                elif k == "media":
                    if a[2] is not None:
                        self.media.sendto(a[1], self._resolve(a[2][0], a[2][1]))
                elif k == "report":
                    self.report(a[1])
                elif k == "exit":
                    self._stop_code = a[1]
            except OSError as e:
                if self.log:
                    self.log("send failed: %s" % e)

    def _drain(self, sock, media):
        for _ in range(_BURST):
            try:
                data, addr = sock.recvfrom(_RECV)
            except OSError:
                return            # nothing more (or ICMP unreachable from an earlier send)
            src = sockaddr(addr)
            now = self.now()
            try:
                if media:
                    self._do(self.ep.receive_media(data, src, now))
                else:
                    self._do(self.ep.receive_sip(data, ("udp", src[0], src[1]), now))
            except Exception as e:   # a bug must not end the call; keep going and say so
                if self.log:
                    self.log("internal error on a received packet")
                print_exception(e)

    def stop(self):
        """Ask the endpoint to hang up and leave (what Ctrl-C does)."""
        self._do(self.ep.interrupt(self.now()))

    def run(self, max_ms):
        """Run until the endpoint exits or `max_ms` passed; returns the exit code."""
        self.sip.setblocking(False)
        self.media.setblocking(False)
        self._do(self.ep.start(self.now()))
        interrupted = timed_out = False
        while self._stop_code is None:
            now = self.now()
            if now >= max_ms:
                if interrupted:
                    return 6
                interrupted = timed_out = True
                max_ms = now + 3000          # give the hangup a few seconds, then leave anyway
                self.report({"event": "error", "reason": "overall time limit reached"})
                self.stop()
                continue
            self._do(self.ep.tick(now))
            if self._stop_code is not None:
                break
            nt = self.ep.next_timer()
            wait = _POLL_MAX_MS if nt is None else max(0, min(_POLL_MAX_MS, nt - self.now()))
            try:
                evs = self._poll.poll(wait)
            except KeyboardInterrupt:
                if interrupted:
                    return 130
                interrupted = True
                max_ms = self.now() + 3000
                self.stop()
                continue
            for ev in evs:
                s = ev[0]
                if s is self.sip or s == self._sip_fd:   # CPython's poll gives fds, MicroPython's the socket
                    self._drain(self.sip, False)
                else:
                    self._drain(self.media, True)
        return 6 if timed_out else self._stop_code  # the limit ended it, however the hangup went


# -- the agent as a device role (board/esp32/main.py: /device.json "role": "agent") ----------------------------
# A board runs the agent as rounds: register, then answer a call (or place one), hang up, start over. It has
# no microphone or speaker: what it sends is a tone (or a WAV file from flash), what it receives is checked
# (SRTP) and counted, then dropped, unless "record" names a WAV file (bounded) to decode it into.

_WAIT_MS = const(86400000)       # an answering board waits this long for a call, then registers anew
_ROUND_MAX_MS = const(172800000)  # one round's overall limit (a stuck call ends after two days)
_RETRY_MS = const(30000)         # pause after a failed registration (or any error) before the next round
_TONE_LEVEL = const(8000)        # peak of the tone's 16-bit samples (about -12 dBFS)
_FRAME_SAMPLES = const(160)      # 20 ms at 8 kHz, what MediaSession asks its source for
_MAX_RECORD_S = const(600)       # the most a board records of one call (flash is small)

AGENT_DEFAULTS = {"proxy": None, "call": None, "answer": None, "duration_s": None, "redial_s": 0,
                  "play": "tone", "tone_hz": 400, "record": None, "record_s": 30, "zrtp": "mandatory",
                  "cache": "/zid.cache", "sip_port": 5060, "media_port": 4000, "expires": 600}
_REQUIRED = ("user", "password")


class AgentConfigError(ValueError):
    pass


def _num(d, key, lo, hi, origin, whole=True):
    v = d[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or (whole and not isinstance(v, int)) \
            or not lo <= v <= hi:
        raise AgentConfigError("%s: field 'agent.%s': must be a%s number from %s to %s, got %r"
                               % (origin, key, " whole" if whole else "", lo, hi, v))
    return v


def _text(d, key, origin):
    v = d[key]
    if not isinstance(v, str) or not v:
        raise AgentConfigError("%s: field 'agent.%s': must be a non-empty string, got %r" % (origin, key, v))
    return v


def _hostport(v, key, origin):
    host, port = v, 5060
    if v.count(":") == 1:
        host, p = v.split(":")
        if not p.isdigit() or not 0 < int(p) < 65536:
            raise AgentConfigError("%s: field 'agent.%s': bad port in %r (HOST or HOST:PORT)" % (origin, key, v))
        port = int(p)
    if not host or " " in host:
        raise AgentConfigError("%s: field 'agent.%s': bad host in %r (HOST or HOST:PORT)" % (origin, key, v))
    return host, port


def _sip_uri(v, key, origin):
    u = v if v[:4] == "sip:" else "sip:" + v
    at = u.find("@")
    if at < 5 or at == len(u) - 1 or " " in u:
        raise AgentConfigError("%s: field 'agent.%s': must look like alice@DOMAIN or sip:alice@DOMAIN, got %r"
                               % (origin, key, v))
    return u


def agent_settings(d, origin="/device.json"):
    """The validated "agent" object of a device's JSON config: a new dict with every field (defaults filled
    in, user/call as sip: URIs, proxy as (host, port)); AgentConfigError naming the field otherwise."""
    if not isinstance(d, dict):
        raise AgentConfigError("%s: field 'agent': must be an object with user, password, proxy, ..." % origin)
    for k in d:
        if k not in AGENT_DEFAULTS and k not in _REQUIRED:
            raise AgentConfigError("%s: field 'agent.%s': unknown field" % (origin, k))
    for k in _REQUIRED:
        if k not in d:
            raise AgentConfigError("%s: field 'agent.%s': missing" % (origin, k))
    s = dict(AGENT_DEFAULTS)
    s.update(d)
    s["user"] = _sip_uri(_text(s, "user", origin), "user", origin)
    _text(s, "password", origin)
    if s["proxy"] is None:   # the node serving the user's domain (an IP address, or a name the board resolves)
        s["proxy"] = s["user"][s["user"].find("@") + 1:]
    s["proxy"] = _hostport(_text(s, "proxy", origin), "proxy", origin)
    if s["call"] is not None:
        s["call"] = _sip_uri(_text(s, "call", origin), "call", origin)
        if s["answer"]:
            raise AgentConfigError("%s: field 'agent.answer': a board either calls (agent.call) or answers, "
                                   "not both" % origin)
        s["answer"] = False
    else:
        if s["answer"] is None:
            s["answer"] = True
        if s["answer"] is not True:
            raise AgentConfigError("%s: field 'agent.answer': must be true without agent.call (a board with "
                                   "neither has nothing to do), got %r" % (origin, s["answer"]))
        if s["redial_s"]:
            raise AgentConfigError("%s: field 'agent.redial_s': only for a board that calls (agent.call)" % origin)
    if s["duration_s"] is not None:
        _num(s, "duration_s", 1, 86400, origin, False)
    _num(s, "redial_s", 0, 86400, origin)
    play = _text(s, "play", origin)
    if play not in ("tone", "silence") and play[:1] != "/":
        raise AgentConfigError("%s: field 'agent.play': must be \"tone\", \"silence\" or the absolute path of a "
                               "WAV file on the board, got %r" % (origin, play))
    hz = _num(s, "tone_hz", 50, 3950, origin)
    if hz % 50:
        raise AgentConfigError("%s: field 'agent.tone_hz': must be a multiple of 50 (whole cycles in a 20 ms "
                               "frame), got %d" % (origin, hz))
    if s["record"] is not None and (not isinstance(s["record"], str) or s["record"][:1] != "/"):
        raise AgentConfigError("%s: field 'agent.record': must be an absolute file path, got %r"
                               % (origin, s["record"]))
    _num(s, "record_s", 1, _MAX_RECORD_S, origin)
    if s["zrtp"] not in ("mandatory", "optional", "off"):
        raise AgentConfigError("%s: field 'agent.zrtp': must be mandatory, optional or off, got %r"
                               % (origin, s["zrtp"]))
    if not isinstance(s["cache"], str) or (s["cache"] and s["cache"][:1] != "/"):
        raise AgentConfigError("%s: field 'agent.cache': must be an absolute file path, or \"\" for none, got %r"
                               % (origin, s["cache"]))
    _num(s, "sip_port", 1, 65535, origin)
    _num(s, "media_port", 1, 65535, origin)
    if s["media_port"] == s["sip_port"]:
        raise AgentConfigError("%s: field 'agent.media_port': must differ from agent.sip_port" % origin)
    _num(s, "expires", 60, 86400, origin)
    if play[:1] == "/":
        check_wav(play, "%s: field 'agent.play'" % origin)
    return s


def check_wav(path, what):
    """Raise AgentConfigError (prefixed by `what`) unless `path` is an 8 kHz mono 16-bit WAV file."""
    from microwitch.media.wav import WavReader, WavError
    try:
        with open(path, "rb") as f:
            WavReader(f)
    except OSError as e:
        raise AgentConfigError("%s: %s: cannot read (%s)" % (what, path, e))
    except WavError as e:
        raise AgentConfigError("%s: %s: %s" % (what, path, e.reason))


class Tone:
    """A steady sine tone as 20 ms PCM frames: `hz` is a multiple of 50, so one frame holds whole cycles and
    the same preallocated frame is handed out every time (no allocation per packet)."""

    def __init__(self, hz, level=_TONE_LEVEL):
        from math import sin, pi
        f = bytearray(2 * _FRAME_SAMPLES)
        for i in range(_FRAME_SAMPLES):
            v = int(level * sin(2 * pi * hz * i / 8000)) & 0xFFFF
            f[2 * i] = v & 0xFF
            f[2 * i + 1] = v >> 8
        self.frame = bytes(f)

    def __call__(self):
        return self.frame


class WavLoop:
    """The frames of a WAV file on flash, read 20 ms at a time and started again at its end; `close()`
    releases the file (the next frame opens it again)."""

    def __init__(self, path, opener=open):
        self.path = path
        self.opener = opener
        self.f = None
        self.r = None

    def __call__(self):
        from microwitch.media.wav import WavReader
        for _ in range(2):          # the end of the file: open it again once, then give silence
            if self.r is None:
                self.f = self.opener(self.path, "rb")
                self.r = WavReader(self.f)
            b = self.r.read(_FRAME_SAMPLES)
            if b:
                return b
            self.close()
        return None

    def close(self):
        if self.f is not None:
            self.f.close()
        self.f = self.r = None


class WavRecord:
    """Received audio into a WAV file, at most `max_s` seconds of it (the rest is dropped); opened on the first
    frame, `close()` finishes the file."""

    def __init__(self, path, max_s, opener=open):
        self.path = path
        self.limit = max_s * 8000
        self.opener = opener
        self.f = None
        self.w = None

    def __call__(self, pcm):
        from microwitch.media.wav import WavWriter
        if self.w is None:
            self.f = self.opener(self.path, "wb")
            self.w = WavWriter(self.f)
        if self.w.samples < self.limit:
            self.w.write(pcm)

    def close(self):
        if self.w is not None:
            self.w.close()
            self.f.close()
        self.f = self.w = None


def console_line(ev):
    """One line for a serial console from an endpoint report (the board's display of state and SAS)."""
    e = ev["event"]
    if e == "registered":
        return "registered as %s (expires %d s)" % (ev["aor"], ev["expires"])
    if e == "incoming":
        return "incoming call from %s%s" % (ev["from"], " (busy: rejected)" if ev.get("rejected") else "")
    if e == "answered":
        return "call answered (%s)" % ev.get("codec")
    if e == "secure":
        return "SECURE, SAS %s (%s, %s): read it to your peer" % (ev["sas"], ev["cipher"], ev["ka"])
    if e == "cache_mismatch":
        return "WARNING: ZRTP cache mismatch, SAS %s: %s" % (ev["sas"], ev["reason"])
    if e == "insecure":
        return "NOT SECURE: %s" % ev["reason"]
    if e == "ended":
        return "call ended: %s (%s; RTP sent %d received %d, SRTP sent %d received %d)" % (
            ev["reason"], "secure" if ev.get("secure") else "NOT secure", ev.get("rtp_sent", 0),
            ev.get("rtp_received", 0), ev.get("srtp_sent", 0), ev.get("srtp_received", 0))
    if e == "error":
        return "error: %s" % ev["reason"]
    if e == "dtmf":
        return "DTMF %s" % ev["digit"]
    return e


def run_agent(s, ip, rand, write=print, net=None, ticks=None, rounds=None, pause=None, started=None):
    """Run the agent role of a device with settings `s` (agent_settings()) on address `ip` until `rounds`
    rounds ran (None: for ever) or a calling board with no redial is done; returns the last exit code.

    Each round is one Endpoint on the same two sockets: register, then answer the first call (waiting up to a
    day, then registering anew) or place agent.call; the call is hung up after duration_s if set. After a
    failed round (registration refused, no answer) it pauses _RETRY_MS, after a placed call redial_s, with
    `pause(ms)` (the board's sleep). `started()` runs once the sockets are bound."""
    from microwitch.agent.endpoint import Endpoint
    from microwitch.compat import sock_name
    if net is None:
        import socket
        sockets = socket
    else:
        sockets = net
    cache = None
    if s["cache"]:
        from microwitch.zrtp.cache import ZidCache
        from microwitch.zrtp.cachefile import FileBackend
        cache = ZidCache(FileBackend(s["cache"]), rand=rand)
    sip = bind_udp(sockets, ip, s["sip_port"])
    media = bind_udp(sockets, ip, s["media_port"])
    opts = {"user": s["user"], "password": s["password"], "proxy": ("udp", s["proxy"][0], s["proxy"][1]),
            "sip_local": sock_name(sip, ip, s["sip_port"]), "media_local": sock_name(media, ip, s["media_port"]),
            "call": s["call"], "answer": s["answer"], "zrtp": s["zrtp"], "expires": s["expires"],
            "duration_ms": int(s["duration_s"] * 1000) if s["duration_s"] else None}
    if s["answer"]:
        opts["call_timeout_ms"] = _WAIT_MS
    write("microwitch agent: %s via %s:%d, %s, plays %s, ZRTP %s" % (
        s["user"], s["proxy"][0], s["proxy"][1], "calls " + s["call"] if s["call"] else "answers calls",
        ("a %d Hz tone" % s["tone_hz"]) if s["play"] == "tone" else s["play"], s["zrtp"]))

    def report(ev):
        write("microwitch agent: " + console_line(ev))

    def log(m):
        write("microwitch agent: " + m)
    if started is not None:
        started()
    n = 0
    code = 0
    try:
        while rounds is None or n < rounds:
            n += 1
            source = None
            if s["play"] == "tone":
                source = Tone(s["tone_hz"])
            elif s["play"] != "silence":
                source = WavLoop(s["play"])
            sink = WavRecord(s["record"], s["record_s"]) if s["record"] else None
            ep = Endpoint(opts, rand, cache, 0, source, sink)
            try:
                code = AgentLoop(ep, sip, media, report, log, ticks, net).run(_ROUND_MAX_MS)
            finally:
                if isinstance(source, WavLoop):
                    source.close()
                if sink is not None:
                    sink.close()
            if code == 130:
                break
            wait = 0
            if code not in (0, 5):     # 5: no call came in a day: register again at once
                wait = _RETRY_MS
            if s["call"]:
                if not s["redial_s"]:
                    break
                wait = max(wait, s["redial_s"] * 1000)
            if wait and pause is not None and (rounds is None or n < rounds):
                write("microwitch agent: next round in %d s" % (wait // 1000))
                pause(wait)
    finally:
        sip.close()
        media.close()
    return code
