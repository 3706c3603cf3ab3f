"""The I/O adapter: UDP and TCP sockets driven by select.poll, feeding a sans-I/O core.

The core is any object with `receive(data, source, now, wall) -> actions`, `tick(now, wall) -> actions` and
`next_timer() -> ms | None`; actions are `("send", bytes, (proto, host, port))`. This module is the only one
(with store/ for files) that does I/O. It uses only `socket` and `select.poll`, which CPython and MicroPython
share, so the host runs the same loop a device does.

The network is injected: `net` is one module-like object with the socket module's `socket`, `getaddrinfo` and
AF_/SOCK_/SOL_/SO_ constants and the select module's `poll` and POLL* constants (`SysNet()` is the real one,
the default). A test hands in an in-memory network and drives this very loop, with `ticks`/`wall` clocks it
advances itself. Address shapes differ by port (tuples or raw sockaddr bytes): outgoing addresses always come
from `net.getaddrinfo`, incoming ones are decoded by `compat.sockaddr`.

TCP (RFC 3261 §18.3): the stream is framed by Content-Length; a double-CRLF keep-alive is answered with a single
CRLF (RFC 5626 §4.4.1); responses go back over the connection the request came on.
"""
from microwitch.compat import const, ticks_ms, ticks_diff, wall_s, print_exception, sockaddr, sock_name, \
    CONNECT_PENDING
from microwitch.sip.message import frame, ParseError, MAX_MESSAGE
from microwitch.sip.uri import is_ip_literal

_UDP_RECV = const(65535)
_TCP_RECV = const(16384)
_MAX_OUT = const(262144)   # bytes queued for one TCP peer before it is dropped as too slow
_TICK_MAX_MS = const(1000)  # the core's tick runs at least this often (user-store refresh, idle sweep)
_UDP_BURST = const(64)     # datagrams read per poll round from one socket, so TCP and timers get turns
_COMMIT_MAX_MS = const(20)  # longest an answer waits for the group commit (fsync) of what it acknowledges
_ADDR_CACHE = const(64)    # resolved numeric destination addresses kept (cleared when full)
_RCVBUF = const(4194304)   # UDP receive buffer asked for where the port has SO_RCVBUF: absorbs REGISTER bursts

_SOCK_NAMES = ("AF_INET", "AF_INET6", "SOCK_DGRAM", "SOCK_STREAM", "SOL_SOCKET", "SO_REUSEADDR", "SO_RCVBUF")
_POLL_NAMES = ("POLLIN", "POLLOUT", "POLLERR", "POLLHUP")


class SysNet:
    """This runtime's real network as one object: socket.socket/getaddrinfo, select.poll and the constants
    (None for a constant the port lacks, e.g. SO_RCVBUF on MicroPython)."""

    def __init__(self):
        import socket
        import select
        self.socket = socket.socket
        self.getaddrinfo = socket.getaddrinfo
        self.poll = select.poll
        for n in _SOCK_NAMES:
            setattr(self, n, getattr(socket, n, None))
        for n in _POLL_NAMES:
            setattr(self, n, getattr(select, n))


class _Conn:
    __slots__ = ("sock", "peer", "inbuf", "outbuf", "last")

    def __init__(self, sock, peer, now):
        self.sock = sock
        self.peer = peer
        self.inbuf = bytearray()
        self.outbuf = bytearray()
        self.last = now


class PollLoop:
    """PollLoop(core, listen, log, max_conns, max_per_source, idle_s, net, ticks, wall); `bound` lists the real
    bound addresses. `net` defaults to SysNet(), `ticks` to compat.ticks_ms, `wall` to compat.wall_s."""

    def __init__(self, core, listen, log, max_conns=1024, max_per_source=64, idle_s=600, net=None, ticks=None,
                 wall=None):
        self.core = core
        self.log = log
        self.max_conns = max_conns
        self.max_per_source = max_per_source
        self.idle_ms = idle_s * 1000
        self.net = net = net or SysNet()
        self._ticks_fn = ticks or ticks_ms
        self.wall = wall or wall_s
        self._IN = net.POLLIN
        self._OUT = net.POLLOUT
        self._ERR = net.POLLERR | net.POLLHUP
        self._addrs = {}
        self.poll = net.poll()
        self.udp = {}        # fileno -> (sock, (host, port) bound)
        self.listeners = {}  # fileno -> sock
        self.conns = {}      # fileno -> _Conn
        self.by_peer = {}    # (host, port) -> _Conn
        self.udp_by_bind = {}
        self.dns_udp = {}    # fileno -> DNS client socket (one per family, random port: RFC 5452 §9.2)
        self.dns_conns = {}  # fileno -> _Conn to a DNS server over TCP (truncation fallback)
        self._dns_by_fam = {}
        self.bound = []
        self.running = True
        self._ticks = self._ticks_fn()
        self._now = 0
        self._swept = 0
        self._held = []         # actions waiting for the group commit of journal records (see _do)
        self._held_since = 0
        self._backlog = False   # a socket still had data when its read burst ended
        for proto, host, port in listen:
            self._bind(proto, host, port)

    def _fam(self, host):
        return self.net.AF_INET6 if ":" in host else self.net.AF_INET

    def _sockaddr_out(self, host, port):
        """The address object this port's sendto/connect/bind want (tuple or raw sockaddr bytes)."""
        key = (host, port)
        a = self._addrs.get(key)
        if a is None:
            a = self.net.getaddrinfo(host, port, self._fam(host))[0][-1]
            if is_ip_literal(host):  # a host name is resolved again next time (its address may change)
                if len(self._addrs) >= _ADDR_CACHE:
                    self._addrs.clear()
                self._addrs[key] = a
        return a

    def _bind(self, proto, host, port):
        net = self.net
        fam = self._fam(host)
        ai = self._sockaddr_out(host, port)
        if proto == "udp":
            s = net.socket(fam, net.SOCK_DGRAM)
            s.setsockopt(net.SOL_SOCKET, net.SO_REUSEADDR, 1)
            if net.SO_RCVBUF is not None:
                try:
                    s.setsockopt(net.SOL_SOCKET, net.SO_RCVBUF, _RCVBUF)
                except OSError:
                    pass
            s.bind(ai)
            s.setblocking(False)
            self.udp[s.fileno()] = s
            self.udp_by_bind.setdefault(fam, s)
        else:
            s = net.socket(fam, net.SOCK_STREAM)
            s.setsockopt(net.SOL_SOCKET, net.SO_REUSEADDR, 1)
            s.bind(ai)
            s.listen(128)
            s.setblocking(False)
            self.listeners[s.fileno()] = s
        self.poll.register(s, self._IN)
        real = sock_name(s, host, port)
        self.bound.append((proto, real[0], real[1]))

    # -- actions -----------------------------------------------------------------------------------
    def _do(self, actions):
        """Send actions, unless stored records are not yet durable: then they wait, in order, for the group
        commit (one fsync for a burst) so nothing is acknowledged before it survives a power cut."""
        if not actions:
            return
        if self._held or self.core.dirty():
            if not self._held:
                self._held_since = self._now
            self._held.extend(actions)
            return
        self._send(actions)

    def _release(self):
        self.core.commit()
        held = self._held
        self._held = []
        self._send(held)

    def _dns_sock(self, host):
        fam = self._fam(host)
        s = self._dns_by_fam.get(fam)
        if s is not None:
            return s
        s = self.net.socket(fam, self.net.SOCK_DGRAM)
        s.bind(self._sockaddr_out("::" if fam == self.net.AF_INET6 else "0.0.0.0", 0))
        s.setblocking(False)
        self._dns_by_fam[fam] = s
        self.dns_udp[s.fileno()] = s
        self.poll.register(s, self._IN)
        return s

    def _dns(self, act):
        kind, data, addr = act
        if kind == "dns_udp":
            try:
                self._dns_sock(addr[0]).sendto(data, self._sockaddr_out(addr[0], addr[1]))
            except OSError as e:
                self.log.debug("dns send to %s:%d failed: %s" % (addr[0], addr[1], e))
            return
        for c in self.dns_conns.values():
            if c.peer == (addr[0], addr[1]):
                self._send_tcp(c, data)
                return
        try:
            s = self.net.socket(self._fam(addr[0]), self.net.SOCK_STREAM)
            s.setblocking(False)
            try:
                s.connect(self._sockaddr_out(addr[0], addr[1]))
            except OSError as e:
                if e.args[0] not in CONNECT_PENDING:
                    s.close()
                    raise
        except OSError as e:
            self.log.info("dns tcp connect to %s:%d failed: %s" % (addr[0], addr[1], e))
            return
        c = _Conn(s, (addr[0], addr[1]), self._now)
        self.dns_conns[s.fileno()] = c
        self.poll.register(s, self._IN | self._OUT)
        self._send_tcp(c, data)

    def _read_dns_tcp(self, c, now):
        try:
            data = c.sock.recv(_TCP_RECV)
        except OSError:
            data = b""
        if not data:
            for k, v in list(self.dns_conns.items()):
                if v is c:
                    del self.dns_conns[k]
            self._close(c)
            return
        self._do(self.core.on_dns_tcp(data, c.peer, now, self.wall()))

    def _send(self, actions):
        for act in actions:
            if act[0] == "dns_udp" or act[0] == "dns_tcp":
                self._dns(act)
                continue
            if act[0] != "send":
                continue
            data, addr = act[1], act[2]
            if addr[0] == "udp":
                s = self.udp_by_bind.get(self._fam(addr[1]))
                if s is None:
                    continue
                try:
                    s.sendto(data, self._sockaddr_out(addr[1], addr[2]))
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
            s = self.net.socket(self._fam(addr[1]), self.net.SOCK_STREAM)
            s.setblocking(False)
            try:
                s.connect(self._sockaddr_out(addr[1], addr[2]))
            except OSError as e:
                if e.args[0] not in CONNECT_PENDING:
                    s.close()
                    raise
        except OSError as e:
            self.log.info("tcp connect to %s:%d failed: %s" % (addr[1], addr[2], e))
            self._fail(addr)
            return None
        c = _Conn(s, (addr[1], addr[2]), self._now)
        self.conns[s.fileno()] = c
        self.by_peer[c.peer] = c
        self.poll.register(s, self._IN | self._OUT)
        return c

    def _fail(self, addr):
        self._do(self.core.transport_error(addr, self._now, self.wall()))

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
            c.outbuf[:n] = b""  # slice assignment: MicroPython bytearrays have no item deletion
        self.poll.modify(c.sock, self._IN | self._OUT if c.outbuf else self._IN)

    # -- TCP -------------------------------------------------------------------------------------------
    def _accept(self, ls, now):
        try:
            s, peer = ls.accept()
        except OSError:
            return
        peer = sockaddr(peer)
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
        self.poll.register(s, self._IN)

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
            data = c.sock.recv(_TCP_RECV)
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
                    buf[:4] = b""
                    self._send_tcp(c, b"\r\n")
                    continue
                if len(buf) < 4 and b"\r\n\r\n".startswith(bytes(buf)):
                    return
                buf[:1] = b""
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
            buf[:n] = b""
            self._do(self.core.receive(msg, ("tcp", c.peer[0], c.peer[1]), now, self.wall()))
            if c.sock.fileno() not in self.conns:
                return

    def _clock(self):
        """Milliseconds since start, never wrapping (ticks_ms wraps on MicroPython)."""
        t = self._ticks_fn()
        self._now += ticks_diff(t, self._ticks)
        self._ticks = t
        return self._now

    # -- the loop ----------------------------------------------------------------------------------------
    def step(self, max_wait_ms=_TICK_MAX_MS):
        """One poll round: wait for I/O or the next timer, dispatch, run due timers."""
        now = self._clock()
        nxt = self.core.next_timer()
        if self._held:
            nxt = min(nxt, self._held_since + _COMMIT_MAX_MS) if nxt is not None else \
                self._held_since + _COMMIT_MAX_MS
        wait = max_wait_ms if nxt is None else max(0, min(max_wait_ms, nxt - now))
        self._backlog = False
        for ev in self.poll.poll(wait):
            obj, flags = ev[0], ev[1]
            fd = obj if isinstance(obj, int) else obj.fileno()
            now = self._clock()
            try:
                if fd in self.udp:
                    self._read_udp(self.udp[fd], now)
                elif fd in self.dns_udp:
                    try:
                        data, peer = self.dns_udp[fd].recvfrom(_UDP_RECV)
                    except OSError:
                        continue  # ICMP unreachable from an earlier query: the resolver's timer handles it
                    peer = sockaddr(peer)
                    self._do(self.core.on_dns(data, (peer[0], peer[1]), now, self.wall()))
                elif fd in self.dns_conns:
                    c = self.dns_conns[fd]
                    if flags & self._OUT:
                        self._flush(c)
                    if flags & self._IN or flags & self._ERR:
                        self._read_dns_tcp(c, now)
                elif fd in self.listeners:
                    self._accept(self.listeners[fd], now)
                elif fd in self.conns:
                    c = self.conns[fd]
                    if flags & self._ERR and not flags & self._IN:
                        self._close(c)
                        if c.outbuf:  # a connect that failed, or a peer gone with data queued
                            self._fail(("tcp", c.peer[0], c.peer[1]))
                        continue
                    if flags & self._OUT:
                        self._flush(c)
                    if flags & self._IN:
                        self._read_tcp(c, now)
            except Exception as e:  # a bug must not take the node down; say where it happened
                self.log.error("internal error while handling fd %d: %r" % (fd, e))
                print_exception(e)
        now = self._clock()
        self._do(self.core.tick(now, self.wall()))
        if self._held and (not self._backlog or now - self._held_since >= _COMMIT_MAX_MS):
            self._release()  # input drained (or the wait is up): commit the burst, then answer it
        self._sweep(now)

    def _read_udp(self, s, now):
        acts = []
        for _ in range(_UDP_BURST):  # drain a burst, bounded so TCP and timers still get turns
            try:
                data, peer = s.recvfrom(_UDP_RECV)
            except OSError:
                break
            peer = sockaddr(peer)
            acts.extend(self.core.receive(data, ("udp", peer[0], peer[1]), now, self.wall()))
        else:
            self._backlog = True  # more is waiting: keep reading before paying for an fsync
        self._do(acts)

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
