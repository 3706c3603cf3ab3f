"""The I/O adapter: UDP and TCP sockets driven by select.poll, feeding a sans-I/O core.

The core is any object with `receive(data, source, now, wall) -> actions`, `tick(now, wall) -> actions` and
`next_timer() -> ms | None`; actions are `("send", bytes, (proto, host, port))`. This module is the only one
(with store/ for files) that does I/O. It uses only `socket` and `select.poll`, which CPython and MicroPython
share, so the host runs the same loop a device does.

TCP (RFC 3261 §18.3): the stream is framed by Content-Length; a double-CRLF keep-alive is answered with a single
CRLF (RFC 5626 §4.4.1); responses go back over the connection the request came on.
"""
import errno
import socket
import select
from microwitch.compat import const, ticks_ms, ticks_diff, wall_s, print_exception
from microwitch.sip.message import frame, ParseError, MAX_MESSAGE

_UDP_RECV = const(65535)
_MAX_OUT = const(262144)   # bytes queued for one TCP peer before it is dropped as too slow
_TICK_MAX_MS = const(1000)  # the core's tick runs at least this often (user-store refresh, idle sweep)
_IN = select.POLLIN
_OUT = select.POLLOUT
_ERR = select.POLLERR | select.POLLHUP


class _Conn:
    __slots__ = ("sock", "peer", "inbuf", "outbuf", "last")

    def __init__(self, sock, peer, now):
        self.sock = sock
        self.peer = peer
        self.inbuf = bytearray()
        self.outbuf = bytearray()
        self.last = now


class PollLoop:
    """PollLoop(core, listen, log, max_conns, max_per_source, idle_s); `bound` lists the real bound addresses."""

    def __init__(self, core, listen, log, max_conns=1024, max_per_source=64, idle_s=600):
        self.core = core
        self.log = log
        self.max_conns = max_conns
        self.max_per_source = max_per_source
        self.idle_ms = idle_s * 1000
        self.poll = select.poll()
        self.udp = {}        # fileno -> (sock, (host, port) bound)
        self.listeners = {}  # fileno -> sock
        self.conns = {}      # fileno -> _Conn
        self.by_peer = {}    # (host, port) -> _Conn
        self.udp_by_bind = {}
        self.bound = []
        self.running = True
        self._ticks = ticks_ms()
        self._now = 0
        self._swept = 0
        for proto, host, port in listen:
            self._bind(proto, host, port)

    def _bind(self, proto, host, port):
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        ai = socket.getaddrinfo(host, port, fam)[0][-1]
        if proto == "udp":
            s = socket.socket(fam, socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)  # absorb REGISTER bursts
            except OSError:
                pass
            s.bind(ai)
            s.setblocking(False)
            self.udp[s.fileno()] = s
            self.udp_by_bind.setdefault(fam, s)
        else:
            s = socket.socket(fam, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(ai)
            s.listen(128)
            s.setblocking(False)
            self.listeners[s.fileno()] = s
        self.poll.register(s, _IN)
        real = s.getsockname()
        self.bound.append((proto, real[0], real[1]))

    # -- actions -----------------------------------------------------------------------------------
    def _do(self, actions):
        for act in actions:
            if act[0] != "send":
                continue
            data, addr = act[1], act[2]
            if addr[0] == "udp":
                s = self.udp_by_bind.get(socket.AF_INET6 if ":" in addr[1] else socket.AF_INET)
                if s is None:
                    continue
                try:
                    s.sendto(data, (addr[1], addr[2]))
                except OSError as e:
                    self.log.debug("udp send to %s:%d failed: %s" % (addr[1], addr[2], e))
            else:
                c = self.by_peer.get((addr[1], addr[2]))
                if c is None:
                    c = self._connect(addr)
                    if c is None:
                        continue
                self._send_tcp(c, data)

    def _connect(self, addr):
        """An outgoing TCP connection (requests to a phone whose flow is gone, or to another server)."""
        if len(self.conns) >= self.max_conns:
            self._fail(addr)
            return None
        try:
            fam = socket.AF_INET6 if ":" in addr[1] else socket.AF_INET
            s = socket.socket(fam, socket.SOCK_STREAM)
            s.setblocking(False)
            try:
                s.connect(socket.getaddrinfo(addr[1], addr[2], fam)[0][-1])
            except OSError as e:
                if e.args[0] not in (errno.EINPROGRESS, errno.EAGAIN):
                    s.close()
                    raise
        except OSError as e:
            self.log.info("tcp connect to %s:%d failed: %s" % (addr[1], addr[2], e))
            self._fail(addr)
            return None
        c = _Conn(s, (addr[1], addr[2]), self._now)
        self.conns[s.fileno()] = c
        self.by_peer[c.peer] = c
        self.poll.register(s, _IN | _OUT)
        return c

    def _fail(self, addr):
        self._do(self.core.transport_error(addr, self._now, wall_s()))

    def _send_tcp(self, c, data):
        if len(c.outbuf) + len(data) > _MAX_OUT:
            self.log.warning("tcp %s:%d too slow to read; closed" % c.peer)
            self._close(c)
            return
        c.outbuf += data
        self._flush(c)

    def _flush(self, c):
        try:
            n = c.sock.send(c.outbuf)
        except OSError:
            n = 0
        if n:
            del c.outbuf[:n]
        self.poll.modify(c.sock, _IN | _OUT if c.outbuf else _IN)

    # -- TCP -------------------------------------------------------------------------------------------
    def _accept(self, ls, now):
        try:
            s, peer = ls.accept()
        except OSError:
            return
        peer = (peer[0], peer[1])
        same = 0
        for c in self.conns.values():
            if c.peer[0] == peer[0]:
                same += 1
        if len(self.conns) >= self.max_conns or same >= self.max_per_source:
            self.log.warning("tcp from %s:%d refused: connection limit" % peer)
            s.close()
            return
        s.setblocking(False)
        c = _Conn(s, peer, now)
        self.conns[s.fileno()] = c
        self.by_peer[peer] = c
        self.poll.register(s, _IN)

    def _close(self, c):
        fd = c.sock.fileno()
        try:
            self.poll.unregister(c.sock)
        except (OSError, KeyError, ValueError):
            pass
        c.sock.close()
        self.conns.pop(fd, None)
        if self.by_peer.get(c.peer) is c:
            del self.by_peer[c.peer]

    def _read_tcp(self, c, now):
        try:
            data = c.sock.recv(16384)
        except OSError:
            data = b""
        if not data:
            self._close(c)
            return
        c.last = now
        c.inbuf += data
        buf = c.inbuf
        while buf:
            # RFC 5626 §4.4.1: CRLFCRLF is a ping answered by CRLF; a lone CRLF between messages is skipped
            if buf[0] in (13, 10):
                if buf[:4] == b"\r\n\r\n":
                    del buf[:4]
                    self._send_tcp(c, b"\r\n")
                    continue
                if len(buf) < 4 and b"\r\n\r\n".startswith(bytes(buf)):
                    return
                del buf[:1]
                continue
            try:
                n = frame(buf)
            except ParseError as e:
                self.log.info("tcp %s:%d unframeable stream (%s); closed" % (c.peer[0], c.peer[1], e.reason))
                self._close(c)
                return
            if n == 0:
                if len(buf) > MAX_MESSAGE:
                    self._close(c)
                return
            msg = bytes(buf[:n])
            del buf[:n]
            self._do(self.core.receive(msg, ("tcp", c.peer[0], c.peer[1]), now, wall_s()))
            if c.sock.fileno() not in self.conns:
                return

    def _clock(self):
        """Milliseconds since start, never wrapping (ticks_ms wraps on MicroPython)."""
        t = ticks_ms()
        self._now += ticks_diff(t, self._ticks)
        self._ticks = t
        return self._now

    # -- the loop ----------------------------------------------------------------------------------------
    def step(self, max_wait_ms=_TICK_MAX_MS):
        """One poll round: wait for I/O or the next timer, dispatch, run due timers."""
        now = self._clock()
        nxt = self.core.next_timer()
        wait = max_wait_ms if nxt is None else max(0, min(max_wait_ms, nxt - now))
        for ev in self.poll.poll(wait):
            obj, flags = ev[0], ev[1]
            fd = obj if isinstance(obj, int) else obj.fileno()
            now = self._clock()
            try:
                if fd in self.udp:
                    self._read_udp(self.udp[fd], now)
                elif fd in self.listeners:
                    self._accept(self.listeners[fd], now)
                elif fd in self.conns:
                    c = self.conns[fd]
                    if flags & _ERR and not flags & _IN:
                        self._close(c)
                        if c.outbuf:  # a connect that failed, or a peer gone with data queued
                            self._fail(("tcp", c.peer[0], c.peer[1]))
                        continue
                    if flags & _OUT:
                        self._flush(c)
                    if flags & _IN:
                        self._read_tcp(c, now)
            except Exception as e:  # a bug must not take the node down; say where it happened
                self.log.error("internal error while handling fd %d: %r" % (fd, e))
                print_exception(e)
        now = self._clock()
        self._do(self.core.tick(now, wall_s()))
        self._sweep(now)

    def _read_udp(self, s, now):
        for _ in range(64):  # drain a burst, bounded so TCP and timers still get turns
            try:
                data, peer = s.recvfrom(_UDP_RECV)
            except OSError:
                return
            self._do(self.core.receive(data, ("udp", peer[0], peer[1]), now, wall_s()))

    def _sweep(self, now):
        if not self.conns or now - self._swept < _TICK_MAX_MS:
            return
        self._swept = now
        for c in list(self.conns.values()):
            if now - c.last > self.idle_ms:
                self.log.debug("tcp %s:%d idle; closed" % c.peer)
                self._close(c)

    def run(self):
        while self.running:
            self.step()

    def close(self):
        for c in list(self.conns.values()):
            self._close(c)
        for s in list(self.udp.values()) + list(self.listeners.values()):
            s.close()
