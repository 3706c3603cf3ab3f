"""DNS federation glue between the proxy and the resolver: domains reach each other like e-mail (RFC 3263).

Outbound: `route(ruri, now)` -> ("targets", [(proto, host, port), ...]) | ("wait", key, actions) |
("fail", status, reason). On "wait" the proxy parks the request under `key` and sends `actions` (dns_udp /
dns_tcp, see dns/resolver.py); every DNS packet the adapter receives goes to `on_dns` / `on_dns_tcp`, and
`tick(now)` runs the resolver's retransmissions; all three return (completions, actions) where a completion is
(key, result) and result is a "targets" or "fail" tuple as above, for every request parked under that key.
The target list is ordered for failover (RFC 3263 §4.3, RFC 2782); targets marked `dead(addr, now)` (transport
error, Timer B/F, 503, an unanswered INVITE) go to the end of later lists for `DEAD_MS`.

Inbound: `inbound(source, from_local, ruri_local, in_dialog, now)` says whether a request may proceed: requests
from other domains reach local users without local auth (their own domain authenticates them), are rate-limited
per source address (token bucket, bounded table), and are never relayed on to a third domain.
"""
from microwitch.compat import const
from microwitch.dns.locate import locate

MAX_WAITING = const(64)       # URIs being located at once
MAX_DEAD = const(64)          # dead-target table; when full the entry closest to revival is dropped
DEAD_MS = const(60000)        # a dead target goes to the back of the list this long
MAX_SOURCES = const(256)      # per-source rate-limit buckets
RATE_PER_S = const(20)        # inbound out-of-dialog requests per second from one source (sustained)
BURST = const(40)             # ... and the bucket size
_RETRY_AFTER_S = const(5)
_MAX_STEPS = const(8)         # locate passes in one route() when queries cannot start (each caches a failure)


def uri_key(u):
    """What determines the lookup: scheme, host (or maddr), port, transport."""
    return "%s:%s:%s:%s" % (u.scheme, (u.params.get("maddr") or u.host or "").lower(), u.port or "",
                            (u.params.get("transport") or "").lower())


class Federation:
    def __init__(self, cfg, resolver, rand, log):
        self.cfg = cfg
        self.resolver = resolver
        self.rand = rand
        self.log = log
        self.dead_ms = cfg.get("dns_dead_s", DEAD_MS // 1000) * 1000
        self.rate = cfg.get("federation_rate", RATE_PER_S)
        self.burst = cfg.get("federation_burst", BURST)
        self._waiting = {}   # key -> (uri, since ms)
        self._dead = {}      # (proto, host, port) -> until ms
        self._buckets = {}   # source host -> [tokens (milli-requests), last ms]
        self._now = 0

    # -- outbound --------------------------------------------------------------------------------------------
    def _lookup(self, name, rtype):
        return self.resolver.lookup(name, rtype, self._now)

    def route(self, ruri, now):
        key = uri_key(ruri)
        acts = []
        for _ in range(_MAX_STEPS):
            res = self._locate(ruri, now)
            if res[0] != "need":
                return res
            if key not in self._waiting and len(self._waiting) >= MAX_WAITING:
                return ("fail", 503, "Service Unavailable (too many DNS lookups in progress)")
            acts.extend(self._ask(res[1], now))
            for name, rtype in res[1]:
                if self.resolver.pending(name, rtype):
                    self._waiting.setdefault(key, (ruri, now))
                    return ("wait", key, acts)
            # nothing went out (no resolver, table full): the failure is cached now, so the next pass ends
        return ("fail", 500, "Server Internal Error (DNS lookup made no progress)")

    def _locate(self, ruri, now, trace=None):
        self._now = now
        res = locate(ruri, self._lookup, self.rand, trace)
        if res[0] == "targets":
            return ("targets", self._order(res[1], now))
        if res[0] == "fail":
            self.log("DNS %s: %d %s" % (uri_key(ruri), res[1], res[2]))
        return res

    def _ask(self, needs, now):
        acts = []
        for name, rtype in needs:
            acts.extend(self.resolver.query(name, rtype, now))
        return acts

    def _order(self, targets, now):
        alive, dead = [], []
        for t in targets:
            until = self._dead.get(t)
            if until is not None and now >= until:
                del self._dead[t]
                until = None
            (alive if until is None else dead).append(t)
        return alive + dead

    def _progress(self, done, acts, now):
        if not done:
            return [], acts
        out = []
        for key, (ruri, since) in list(self._waiting.items()):
            res = self._locate(ruri, now)
            if res[0] == "need":
                acts.extend(self._ask(res[1], now))
                continue
            del self._waiting[key]
            out.append((key, res))
        return out, acts

    def on_dns(self, data, source, now):
        done, acts = self.resolver.on_udp(data, source, now)
        return self._progress(done, acts, now)

    def on_dns_tcp(self, data, source, now):
        done, acts = self.resolver.on_tcp(data, source, now)
        return self._progress(done, acts, now)

    def tick(self, now):
        done, acts = self.resolver.tick(now)
        res = self._progress(done, acts, now)
        # a key can only still be waiting with nothing in flight if the cache expired between steps: re-ask
        for key, (ruri, since) in list(self._waiting.items()):
            r = self._locate(ruri, now)
            if r[0] == "need":
                stuck = True
                for name, rtype in r[1]:
                    if self.resolver.pending(name, rtype):
                        stuck = False
                if stuck:
                    res[1].extend(self._ask(r[1], now))
            else:
                del self._waiting[key]
                res[0].append((key, r))
        return res

    def next_timer(self):
        return self.resolver.next_timer()

    def dead(self, addr, now):
        """`addr` failed (transport error, Timer B/F, 503, an unanswered INVITE): try it last for a while."""
        addr = tuple(addr)
        if addr not in self._dead and len(self._dead) >= MAX_DEAD:
            soonest = None
            for k, until in self._dead.items():
                if soonest is None or until < self._dead[soonest]:
                    soonest = k
            del self._dead[soonest]
        self._dead[addr] = now + self.dead_ms
        self.log("target %s:%s:%d marked dead for %d s" % (addr[0], addr[1], addr[2], self.dead_ms // 1000))

    def is_dead(self, addr, now):
        until = self._dead.get(tuple(addr))
        return until is not None and now < until

    def explain(self, ruri, now):
        """(result, trace lines) for `microwitch dns check`; result as from route() minus the parking."""
        trace = []
        res = self._locate(ruri, now, trace)
        return res, trace

    # -- inbound ---------------------------------------------------------------------------------------------
    def inbound(self, source, from_local, ruri_local, in_dialog, now):
        """None to proceed, or (status, reason, headers) to answer at once."""
        if in_dialog or from_local:
            return None
        if not ruri_local:
            return (403, "Forbidden (requests from other domains reach only local users)", ())
        host = source[1]
        b = self._buckets.get(host)
        if b is None:
            if len(self._buckets) >= MAX_SOURCES and not self._evict(now):
                return (503, "Service Unavailable (too many foreign sources)",
                        (("Retry-After", str(_RETRY_AFTER_S)),))
            b = self._buckets[host] = [self.burst * 1000, now]
        tokens = b[0] + (now - b[1]) * self.rate
        if tokens > self.burst * 1000:
            tokens = self.burst * 1000
        b[1] = now
        if tokens < 1000:
            b[0] = tokens
            self.log("rate limit: %s sent more than %d requests/s" % (host, self.rate))
            return (503, "Service Unavailable (rate limit for %s)" % host[:46],
                    (("Retry-After", str(_RETRY_AFTER_S)),))
        b[0] = tokens - 1000
        return None

    def _evict(self, now):
        """Drop buckets that have refilled completely (their sources are idle); False if none has."""
        full = self.burst * 1000
        gone = [h for h, b in self._buckets.items() if b[0] + (now - b[1]) * self.rate >= full]
        for h in gone:
            del self._buckets[h]
        return bool(gone)

