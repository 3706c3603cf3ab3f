"""Stub resolver (RFC 1035 §7, RFC 5452): sans-I/O, UDP with TCP fallback on truncation, answers into a Cache.

`Resolver(servers, rand, cache, log)`; `servers` is a list of (host, port) from `pick_servers`. Query IDs come
from the injected `rand`, retransmissions and timeouts from the `now` (ms) passed in. Entry points return
actions for the adapter:
    ("dns_udp", bytes, (host, port))   send one datagram from the DNS socket (a random source port)
    ("dns_tcp", bytes, (host, port))   open a TCP connection (if none) and send these bytes (length-prefixed)
and the adapter hands back what arrives: `on_udp(data, source, now)`, `on_tcp(data, source, now)` (raw stream
bytes, any split). Each returns (done, actions) where `done` lists the (name, type) keys whose result is now in
the cache (positive, negative or failed); `tick(now)` does the same for timeouts.

A reply is only accepted from the server it was sent to, with our ID and our question echoed (RFC 5452 §9.1);
anything else is dropped with a log line and the query keeps waiting for the real answer. A truncated reply
(TC) is asked again over TCP (RFC 1035 §4.2.1).
"""
from microwitch.compat import const
from microwitch.dns import message as dm
from microwitch.dns.cache import Cache
from microwitch.sip.uri import is_ip_literal

MAX_PENDING = const(64)        # queries in flight; more fail at once as "busy"
_TRIES = const(4)              # UDP attempts in all, rotating over the servers
_FIRST_TIMEOUT_MS = const(500)  # then doubled per attempt, up to _MAX_TIMEOUT_MS
_MAX_TIMEOUT_MS = const(2000)
_TCP_TIMEOUT_MS = const(4000)
_MAX_CNAME = const(8)
_MAX_ID_TRIES = const(8)
DNS_PORT = const(53)


def parse_resolv_conf(text):
    """'nameserver' lines of resolv.conf(5) text -> [(host, 53)] (at most 3, like the C library)."""
    out = []
    for line in text.split("\n"):
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "nameserver" and len(out) < 3:
            host = parts[1].split("%")[0]
            out.append((host, DNS_PORT))
    return out


def server_error(spec):
    """None if `spec` is a resolver address `_server` accepts, else what is wrong (for config validation)."""
    try:
        host, port = _server(spec)
    except ValueError:
        return "must look like IP, IP:PORT or [IPv6]:PORT"
    if not host or not 0 < port < 65536:
        return "must look like IP, IP:PORT or [IPv6]:PORT"
    for ch in host:
        if ch not in "0123456789abcdefABCDEF.:":
            return "must be a numeric IP address (a resolver cannot be found by name)"
    if not is_ip_literal(host) or (":" in host and host.count(":") < 2):
        return "must be a numeric IP address (dotted quad of 0..255, or IPv6)"
    return None


def _server(spec):
    """'10.0.0.1', '10.0.0.1:5353', '[::1]:53' or '::1' -> (host, port)."""
    if spec.startswith("["):
        host, _, rest = spec[1:].partition("]")
        return (host, int(rest[1:]) if rest.startswith(":") else DNS_PORT)
    if spec.count(":") == 1:
        host, port = spec.split(":")
        return (host, int(port))
    return (spec, DNS_PORT)


def pick_servers(configured=None, resolv_conf_text=None, dhcp=None):
    """The resolver addresses: config first, else /etc/resolv.conf (text read by the adapter), else the
    DHCP-given list a device adapter passes in (hook: its network stack's `ifconfig()` DNS entry)."""
    if configured:
        return [_server(s) for s in configured]
    if resolv_conf_text:
        found = parse_resolv_conf(resolv_conf_text)
        if found:
            return found
    if dhcp:
        return [_server(s) for s in dhcp]
    return []


class _Query:
    __slots__ = ("name", "type", "id", "tries", "deadline", "server", "tcp")

    def __init__(self, name, rtype, qid):
        self.name = name
        self.type = rtype
        self.id = qid
        self.tries = 0
        self.deadline = 0
        self.server = None
        self.tcp = False


class Resolver:
    def __init__(self, servers, rand, cache=None, log=None, tries=_TRIES, first_timeout_ms=_FIRST_TIMEOUT_MS):
        self.servers = list(servers)
        self.rand = rand
        self.cache = cache if cache is not None else Cache()
        self.log = log or (lambda text: None)
        self.tries = tries
        self.first_timeout = first_timeout_ms
        self._pending = {}   # (name, type) -> _Query
        self._by_id = {}     # id -> _Query
        self._tcp_in = {}    # server -> bytearray of stream bytes not yet framed
        self.sent = 0        # queries put on the wire (a counter for tests and status)
        self.rejected = 0    # replies refused

    # -- asking ----------------------------------------------------------------------------------------------
    def lookup(self, name, rtype, now):
        """(kind, value) from the cache (see cache.py kinds) or None."""
        return self.cache.get(name.lower(), rtype, now)

    def pending(self, name, rtype):
        return (name.lower(), rtype) in self._pending

    def query(self, name, rtype, now):
        """Start a query for (name, type) unless one is in flight; returns actions. A query that cannot start
        (no server, too many in flight, a bad name) leaves a failure in the cache at once."""
        name = name.lower()
        key = (name, rtype)
        if key in self._pending:
            return []
        if not self.servers:
            self.cache.put_failure(name, rtype, "no DNS resolver configured", now)
            return []
        if len(self._pending) >= MAX_PENDING:
            self.cache.put_failure(name, rtype, "too many DNS queries in flight", now)
            return []
        qid = None
        for _ in range(_MAX_ID_TRIES):
            b = self.rand(2)
            c = (b[0] << 8) | b[1]
            if c not in self._by_id:
                qid = c
                break
        if qid is None:
            self.cache.put_failure(name, rtype, "no free query ID", now)
            return []
        try:
            dm.query(qid, name, rtype)
        except dm.DnsError as e:
            self.cache.put_failure(name, rtype, e.reason, now)
            return []
        q = _Query(name, rtype, qid)
        self._pending[key] = q
        self._by_id[qid] = q
        return self._send(q, now)

    def _send(self, q, now):
        q.server = self.servers[q.tries % len(self.servers)]
        timeout = self.first_timeout << q.tries
        if timeout > _MAX_TIMEOUT_MS:
            timeout = _MAX_TIMEOUT_MS
        q.tries += 1
        q.deadline = now + timeout
        self.sent += 1
        return [("dns_udp", dm.query(q.id, q.name, q.type), q.server)]

    def _send_tcp(self, q, now):
        q.tcp = True
        q.deadline = now + _TCP_TIMEOUT_MS
        self.sent += 1
        return [("dns_tcp", dm.tcp_frame(dm.query(q.id, q.name, q.type)), q.server)]

    def _finish(self, q):
        self._pending.pop((q.name, q.type), None)
        if self._by_id.get(q.id) is q:
            del self._by_id[q.id]

    # -- answers ---------------------------------------------------------------------------------------------
    def _reject(self, source, reason):
        self.rejected += 1
        self.log("DNS reply from %s:%d rejected: %s" % (source[0], source[1], reason))

    def on_udp(self, data, source, now):
        return self._reply(data, source, now, True)

    def on_tcp(self, data, source, now):
        """Stream bytes from the TCP connection to `source`; complete length-prefixed messages are handled."""
        buf = self._tcp_in.get(source)
        if buf is None:
            if len(self._tcp_in) >= len(self.servers) + 1:
                self._tcp_in = {}
            buf = self._tcp_in[source] = bytearray()
        buf.extend(data)
        done, acts = [], []
        at = 0
        while len(buf) - at >= 2:
            n = (buf[at] << 8) | buf[at + 1]
            if len(buf) - at < 2 + n:
                break
            d, a = self._reply(bytes(buf[at + 2:at + 2 + n]), source, now, False)
            at += 2 + n
            done.extend(d)
            acts.extend(a)
        if at == len(buf):
            self._tcp_in.pop(source, None)
        elif at:
            self._tcp_in[source] = bytearray(buf[at:])  # MicroPython bytearrays have no slice deletion
        return done, acts

    def tcp_closed(self, source):
        self._tcp_in.pop(source, None)

    def _reply(self, data, source, now, udp):
        try:
            msg = dm.decode(data, udp)
        except dm.DnsError as e:
            self._reject(source, e.reason)
            return [], []
        q = self._by_id.get(msg.id)
        if q is None:
            self._reject(source, "reply ID %d matches no query in flight" % msg.id)
            return [], []
        if (source[0], source[1]) != (q.server[0], q.server[1]) or q.tcp == udp:
            self._reject(source, "reply for query %d from an address or transport we did not ask" % msg.id)
            return [], []
        try:
            dm.check_reply(msg, q.id, q.name, q.type)
        except dm.DnsError as e:
            self._reject(source, e.reason)
            return [], []
        if msg.tc:
            if not udp:
                self._reject(source, "truncated reply over TCP")
                self._finish(q)
                self.cache.put_failure(q.name, q.type, "truncated reply over TCP", now)
                return [(q.name, q.type)], []
            self.log("DNS reply for %s %s truncated: asking %s:%d over TCP" %
                     (q.name, dm.TYPE_NAMES.get(q.type, q.type), q.server[0], q.server[1]))
            return [], self._send_tcp(q, now)
        rc = msg.rcode
        if rc not in (dm.NOERROR, dm.NXDOMAIN):
            reason = "%s from %s" % (dm.RCODE_NAMES.get(rc, "rcode %d" % rc), q.server[0])
            if len(self.servers) > 1 and q.tries < self.tries and not q.tcp:
                self.log("DNS %s %s: %s, trying the next server" %
                         (q.name, dm.TYPE_NAMES.get(q.type, q.type), reason))
                return [], self._send(q, now)
            self._finish(q)
            self.cache.put_failure(q.name, q.type, reason, now)
            return [(q.name, q.type)], []
        self._finish(q)
        self._store(q, msg, now)
        return [(q.name, q.type)], []

    def _store(self, q, msg, now):
        """Answer records for our name (following a CNAME chain inside the answer) or an RFC 2308 negative."""
        name = q.name
        for _ in range(_MAX_CNAME):
            alias = None
            for r in msg.answers:
                if r.name == name and r.type == dm.CNAME and q.type != dm.CNAME:
                    alias = r.data
            if alias is None:
                break
            name = alias
        values, ttl = [], None
        for r in msg.answers:
            if r.name == name and r.type == q.type and r.cls == dm.IN:
                values.append(r.data)
                ttl = r.ttl if ttl is None else min(ttl, r.ttl)
        if values:
            self.cache.put_records(q.name, q.type, values, ttl, now)
            return
        soa_ttl = None
        for r in msg.authority:
            if r.type == dm.SOA:
                soa_ttl = min(r.ttl, r.data[6])  # RFC 2308 §5
        self.cache.put_negative(q.name, q.type, msg.rcode == dm.NXDOMAIN, soa_ttl, now)

    # -- timers ----------------------------------------------------------------------------------------------
    def next_timer(self):
        best = None
        for q in self._pending.values():
            if best is None or q.deadline < best:
                best = q.deadline
        return best

    def tick(self, now):
        done, acts = [], []
        for q in list(self._pending.values()):
            if now < q.deadline:
                continue
            if not q.tcp and q.tries < self.tries:
                acts.extend(self._send(q, now))
                continue
            reason = "no answer from %s after %d tries" % (
                ", ".join([s[0] for s in self.servers]), q.tries) if not q.tcp else "no answer over TCP"
            self.log("DNS %s %s: %s" % (q.name, dm.TYPE_NAMES.get(q.type, q.type), reason))
            self._finish(q)
            self.cache.put_failure(q.name, q.type, "timeout (" + reason + ")", now)
            done.append((q.name, q.type))
        return done, acts
