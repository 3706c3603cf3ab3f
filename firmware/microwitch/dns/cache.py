"""Bounded DNS cache honouring TTLs, with negative caching (RFC 2308).

Keys are (name, type). A positive entry holds the records' data; a negative one holds the rcode (NXDOMAIN, or
NOERROR for "no data") and lives for min(SOA TTL, SOA MINIMUM) (RFC 2308 §5), capped by `MAX_NEGATIVE_S`. A
failed lookup (SERVFAIL, timeout, a refused reply) is remembered for `FAIL_S` (RFC 2308 §7.1 allows up to five
minutes) so a dead resolver is not hammered. TTLs are capped at `MAX_TTL_S` and raised to `MIN_TTL_S`, so an
answer outlives the event that brought it. When `MAX_ENTRIES` is reached, expired entries are swept and then the
entry closest to expiry is dropped.
"""
from microwitch.compat import const

MAX_ENTRIES = const(256)
MAX_TTL_S = const(86400)       # RFC 8767 suggests capping at a day or a week
MIN_TTL_S = const(1)
MAX_NEGATIVE_S = const(3600)   # RFC 2308 §5: 1-3 hours is a reasonable cap
DEFAULT_NEGATIVE_S = const(60)  # no SOA in the authority section (RFC 2308 §5: such answers SHOULD not be cached
                                # for long)
FAIL_S = const(5)

POSITIVE = "ok"
NEGATIVE = "nx"      # NXDOMAIN
NODATA = "nodata"    # the name exists, no records of this type
FAILED = "fail"


class Cache:
    """get(name, rtype, now) -> (kind, value) | None; put_*(..., now). `now` is ms."""

    def __init__(self, max_entries=MAX_ENTRIES):
        self.max = max_entries
        self._d = {}   # (name, type) -> (expires_ms, kind, value)

    def __len__(self):
        return len(self._d)

    def get(self, name, rtype, now):
        key = (name, rtype)
        e = self._d.get(key)
        if e is None:
            return None
        if now >= e[0]:
            del self._d[key]
            return None
        return (e[1], e[2])

    def ttl_left(self, name, rtype, now):
        e = self._d.get((name, rtype))
        return None if e is None else max(0, e[0] - now)

    def _put(self, key, ttl_s, kind, value, now):
        if key not in self._d and len(self._d) >= self.max:
            self._evict(now)
        self._d[key] = (now + ttl_s * 1000, kind, value)

    def _evict(self, now):
        for k in [k for k, e in self._d.items() if now >= e[0]]:
            del self._d[k]
        if len(self._d) >= self.max:
            soonest = None
            for k, e in self._d.items():
                if soonest is None or e[0] < self._d[soonest][0]:
                    soonest = k
            del self._d[soonest]

    def put_records(self, name, rtype, values, ttl_s, now):
        self._put((name, rtype), min(max(ttl_s, MIN_TTL_S), MAX_TTL_S), POSITIVE, values, now)

    def put_negative(self, name, rtype, nxdomain, soa_ttl_s, now):
        """soa_ttl_s: min(SOA record TTL, SOA MINIMUM) from the authority section, or None without an SOA."""
        ttl = DEFAULT_NEGATIVE_S if soa_ttl_s is None else soa_ttl_s
        ttl = min(max(ttl, MIN_TTL_S), MAX_NEGATIVE_S)
        self._put((name, rtype), ttl, NEGATIVE if nxdomain else NODATA, None, now)

    def put_failure(self, name, rtype, reason, now):
        self._put((name, rtype), FAIL_S, FAILED, reason, now)

    def clear(self):
        self._d = {}
