"""The agent's I/O adapter: a SIP socket and a media socket (UDP) driven by select.poll around an Endpoint.

Same shape as adapter/poll_loop.py: only `socket` and `select.poll`, which CPython and MicroPython share, so a
board runs this very loop. `now` handed to the endpoint is a never-wrapping millisecond count accumulated from
ticks_diff. Reports go to `report(dict)`; the loop ends on the endpoint's ("exit", code) or after `max_ms`.
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
    def __init__(self, endpoint, sip_sock, media_sock, report, log=None, ticks=None):
        import socket
        import select
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
        interrupted = False
        while self._stop_code is None:
            now = self.now()
            if now >= max_ms:
                if interrupted:
                    return 6
                interrupted = True
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
        return self._stop_code
