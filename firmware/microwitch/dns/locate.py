"""Locating SIP servers (RFC 3263 §4) with RFC 2782 SRV ordering. Pure: no I/O, no state.

`locate(uri, lookup, rand)` runs the whole procedure against `lookup(name, type) -> (kind, value) | None`
(the resolver's cache; kinds from cache.py) and returns one of
    ("targets", [(proto, host, port), ...])  an ordered list to try in turn (failover)
    ("need", [(name, type), ...])            records still to ask for; call again once they are in the cache
    ("fail", status, reason)                  no way to reach the URI's domain, with a SIP status for the caller
so a caller restarts it after every answer (cheap: everything it already asked for is cached). `trace`, if given,
collects one line per step for `microwitch dns check`.

The procedure: a numeric host needs no lookup (§4.2, port default 5060); an explicit port means A/AAAA only;
an explicit transport means SRV for that transport, then A/AAAA; otherwise NAPTR (§4.1) with the SIP+D2U and
SIP+D2T services, else SRV for _sip._udp and _sip._tcp, else A/AAAA on port 5060 over UDP. `sips:` needs TLS,
which this node does not have, so it fails with 416 and says so. NXDOMAIN for the domain is a 404 naming it.
"""
from microwitch.compat import const
from microwitch.dns import message as dm
from microwitch.dns.cache import POSITIVE, NEGATIVE, NODATA, FAILED
from microwitch.sip.uri import parse_uri
from microwitch.sip.uri import is_ip_literal

MAX_TARGETS = const(8)     # addresses in one ordered target list
MAX_SRV = const(8)         # SRV records used from one SRV set
MAX_NAPTR = const(4)       # usable NAPTR records followed
SIP_PORT = const(5060)
_SERVICES = {"SIP+D2U": "udp", "SIP+D2T": "tcp"}
_SRV_PREFIX = {"udp": "_sip._udp.", "tcp": "_sip._tcp."}


def _rand_below(rand, n):
    """Uniform-enough integer in [0, n) from the injected RNG (n is small: summed SRV weights)."""
    b = rand(4)
    return ((b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3]) % n


def order_srv(records, rand):
    """RFC 2782 ordering: ascending priority; within one priority a weighted random order (weight-0 records
    first in the running sum, so they are picked only rarely)."""
    out = []
    prios = sorted(set([r[0] for r in records]))
    for p in prios:
        group = [r for r in records if r[0] == p]
        group.sort(key=lambda r: r[1] != 0)  # zero weights first, as §"Usage rules" says
        while group:
            total = 0
            for r in group:
                total += r[1]
            pick = _rand_below(rand, total + 1)
            run = 0
            chosen = len(group) - 1
            for k in range(len(group)):
                run += group[k][1]
                if run >= pick:
                    chosen = k
                    break
            out.append(group.pop(chosen))
    return out


class _Walk:
    """One pass over the cache: collects targets, missing records, and what went wrong."""

    def __init__(self, lookup, trace):
        self.lookup = lookup
        self.trace = trace
        self.need = []
        self.failures = []
        self.nx = False

    def get(self, name, rtype):
        r = self.lookup(name, rtype)
        if r is None:
            if (name, rtype) not in self.need:
                self.need.append((name, rtype))
            return None
        kind, value = r
        if self.trace is not None:
            t = dm.TYPE_NAMES.get(rtype, str(rtype))
            if kind == POSITIVE:
                for v in value:
                    self.trace.append("%s %s %s" % (t, name, _show(rtype, v)))
            else:
                self.trace.append("%s %s: %s" % (t, name, {NEGATIVE: "NXDOMAIN", NODATA: "no records",
                                                           FAILED: "lookup failed (%s)" % value}.get(kind, kind)))
        if kind == FAILED:
            self.failures.append("%s %s: %s" % (dm.TYPE_NAMES.get(rtype, rtype), name, value))
        return r

    def addresses(self, host, port, proto, out, domain=False):
        """A, else AAAA, for one host; appends (proto, address, port). NXDOMAIN counts against the URI's
        domain only when `host` is that domain (an SRV target that does not exist is just a dead target)."""
        r = self.get(host, dm.A)
        if r is None:
            return
        if r[0] == POSITIVE:
            for a in r[1]:
                if len(out) < MAX_TARGETS and (proto, a, port) not in out:
                    out.append((proto, a, port))
            return
        if r[0] == NEGATIVE:
            if domain:
                self.nx = True
            return
        if r[0] == FAILED:
            return
        r = self.get(host, dm.AAAA)  # the name exists without an IPv4 address
        if r is not None and r[0] == POSITIVE:
            for a in r[1]:
                if len(out) < MAX_TARGETS and (proto, a, port) not in out:
                    out.append((proto, a, port))

    def srv(self, name, proto, rand, out):
        """SRV set at `name` -> addresses in RFC 2782 order; False when the name has no usable SRV."""
        r = self.get(name, dm.SRV)
        if r is None:
            return True  # pending: do not fall back to A yet
        if r[0] != POSITIVE:
            return False
        recs = r[1][:MAX_SRV]
        if len(recs) == 1 and recs[0][3] == "":
            if self.trace is not None:
                self.trace.append("SRV %s: target '.' (service explicitly not offered)" % name)
            return True
        for rec in order_srv(list(recs), rand):
            self.addresses(rec[3], rec[2], proto, out)
        return True


def _show(rtype, v):
    if rtype == dm.SRV:
        return "%d %d %d %s" % v
    if rtype == dm.NAPTR:
        return '%d %d "%s" "%s" "%s" %s' % v
    return str(v)


def locate(uri, lookup, rand, trace=None):
    u = parse_uri(uri) if isinstance(uri, str) else uri
    if u.scheme == "sips":
        return ("fail", 416, "Unsupported URI Scheme (sips: needs TLS, which this node does not offer)")
    if u.scheme != "sip" or not u.host:
        return ("fail", 416, "Unsupported URI Scheme")
    host = (u.params.get("maddr") or u.host).strip("[]").lower()
    if host.endswith("."):
        host = host[:-1]
    transport = u.params.get("transport")
    if transport is not None:
        transport = transport.lower()
        if transport not in ("udp", "tcp"):
            return ("fail", 502, "Bad Gateway (transport %s is not supported by this node)" % transport[:10])
    port = u.port
    if is_ip_literal(host):
        return ("targets", [(transport or "udp", host, port or SIP_PORT)])
    w = _Walk(lookup, trace)
    out = []
    if port is not None:
        w.addresses(host, port, transport or "udp", out, True)
    elif transport is not None:
        if not w.srv(_SRV_PREFIX[transport] + host, transport, rand, out):
            w.addresses(host, SIP_PORT, transport, out, True)
    else:
        r = w.get(host, dm.NAPTR)
        usable = []
        if r is not None and r[0] == POSITIVE:
            for n in r[1]:
                proto = _SERVICES.get(n[3])
                if n[2] == "s" and proto is not None and n[5]:
                    usable.append((n[0], n[1], proto, n[5]))
            usable.sort()
            usable = usable[:MAX_NAPTR]
            if not usable and trace is not None:
                trace.append("NAPTR %s: no SIP+D2U/SIP+D2T record with flag S, using SRV" % host)
        if r is not None and r[0] == NEGATIVE:
            w.nx = True
        elif r is not None and r[0] == FAILED and r[1].startswith("timeout"):
            pass  # the resolver is not answering: asking it for SRV and A as well would only triple the wait
        elif r is not None:
            found = False
            for n in usable:
                found = w.srv(n[3], n[2], rand, out) or found
            if not usable:
                a = w.srv(_SRV_PREFIX["udp"] + host, "udp", rand, out)
                b = w.srv(_SRV_PREFIX["tcp"] + host, "tcp", rand, out)
                found = a or b
            if not found:
                w.addresses(host, SIP_PORT, "udp", out, True)
    if w.need:
        return ("need", w.need)
    if out:
        return ("targets", out)
    if w.nx:
        return ("fail", 404, "Not Found (domain %s does not exist: NXDOMAIN)" % host[:80])
    if w.failures:
        return ("fail", 504, "Server Time-out (DNS lookup failed: %s)" % w.failures[0][:100])
    return ("fail", 404, "Not Found (no SIP server for %s: no NAPTR, SRV or address records)" % host[:80])
