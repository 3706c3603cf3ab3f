"""Stateful forwarding proxy (RFC 3261 §16) that never touches media.

Requests are forwarded with their bodies byte for byte (SDP is never read or rewritten), so endpoints run ZRTP
end to end. Dialog-creating requests are record-routed (`;lr`, with a flow token, see flow.py) so in-dialog
requests keep crossing the node and reach phones behind NAT. A request for a local user forks to every contact
in parallel; the response context picks the best final response (§16.7). The node is never an open relay:
requests from a local identity need proxy digest auth, and nothing unauthenticated goes to another domain.

Sans-I/O: every entry point returns a list of actions ("send", bytes, addr).
"""
from binascii import hexlify
from microwitch.compat import const, sha256
from microwitch.sip.message import Message, make_response
from microwitch.sip.headers import ParseError, parse_via, parse_name_addr, parse_cseq
from microwitch.sip.uri import parse_uri, is_ip_literal
from microwitch.sip.transaction import MAGIC_COOKIE
from microwitch.node import flow

TIMER_C_MS = const(181000)      # §16.6 item 11: "greater than 3 minutes"
CANCEL_WAIT_MS = const(32000)   # §9.1: 64·T1 after a CANCEL, a branch with no final response is given up
# An INVITE to a DNS target that has not answered at all, not even 100 Trying (which §16.2 and §17.2.1 have
# come within 200 ms), after this long and four sends by Timer A, goes to the next target (RFC 3263 §4.3):
# silence is the only failure a dead UDP port shows, and Timer B would keep the caller waiting 32 s.
FAILOVER_MS = const(4000)
MAX_CONTEXTS = const(1024)      # forwarded requests in progress; more get 503 + Retry-After
MAX_PER_SOURCE = const(128)     # of those, from one source address
MAX_BRANCHES = const(10)        # contacts one request forks to (the registrar's contacts-per-AoR bound)
MAX_PARKED = const(256)         # requests waiting for a DNS lookup (federation); more get 503 + Retry-After
_DEFAULT_MF = const(70)
_LOOP_HASH = const(10)          # hex chars of the loop-detection hash in our branch (RFC 5393 §4.2)
_RR_METHODS = ("INVITE", "SUBSCRIBE", "REFER", "NOTIFY")
_NO_AUTH = ("ACK", "CANCEL", "BYE", "PRACK")
_BRANCH_MW = MAGIC_COOKIE + "mw"
# the fields of the loop hash after the Request-URI, in hashing order (canonical header names)
_LOOP_FIELDS = {"From": 0, "To": 1, "Call-ID": 2, "CSeq": 3, "Route": 4, "Proxy-Require": 5,
                "Proxy-Authorization": 6}
_LOOP_N = const(7)


# stands in for a 2xx already passed upstream once its context is finished (see _drop)
_PASSED_2XX = Message(None, None, 200, "OK")


class _Branch:
    __slots__ = ("txn", "request", "final", "provisional", "cancel_wanted", "cancelled", "timer_c", "pbx",
                 "auth_tried", "dest", "alts", "base")

    def __init__(self, request, pbx=None):
        self.request = request
        self.dest = None           # where this branch went
        self.alts = None           # RFC 3263 §4.3: the next DNS targets to fail over to
        self.base = None           # the request before our Via/Record-Route, to rebuild for the next target
        self.pbx = pbx             # the caller's PBX account when this branch goes out via the PBX bridge
        self.auth_tried = False
        self.txn = None
        self.final = None          # final response (or a synthesized one)
        self.provisional = False
        self.cancel_wanted = False
        self.cancelled = False
        self.timer_c = None


class _Context:
    """§16.7 response context for one forwarded request."""
    __slots__ = ("txn", "request", "source", "branches", "best", "final_sent", "cancelled", "key")

    def __init__(self, txn, request, source, key):
        self.txn = txn
        self.request = request
        self.source = source
        self.branches = []
        self.best = None
        self.final_sent = False
        self.cancelled = False
        self.key = key


def _rank(status):
    """§16.7 step 6: lower is better among finals; 6xx beats everything but 2xx, 503 ranks as a 5xx."""
    if status < 300:
        return 0
    if status >= 600:
        return 1
    return status // 100 * 1000 + status


def _copy_headers(headers, mf=None):
    """A fresh header list (names are already canonical), Max-Forwards set to `mf`. Entries are (name, value)
    tuples: Message replaces entries and never edits one in place, and on CPython a tuple of strings is not
    tracked by the cyclic GC, whose full collections otherwise grow with every transaction still lingering
    (Timers K/L/M), up to pauses long enough to cause retransmissions under load."""
    out = []
    seen_mf = False
    for h in headers:
        if mf is not None and h[0] == "Max-Forwards":
            if seen_mf:
                continue
            seen_mf = True
            out.append(("Max-Forwards", mf))
        else:
            out.append((h[0], h[1]))
    if mf is not None and not seen_mf:
        out.append(("Max-Forwards", mf))
    return out


def _uri_dest(uri, default_proto="udp"):
    """Next-hop address for a URI (no DNS: a host name is resolved by the adapter)."""
    u = parse_uri(uri) if isinstance(uri, str) else uri
    proto = (u.params.get("transport") or default_proto).lower()
    if proto not in ("udp", "tcp"):
        proto = "udp"
    return (proto, u.host.strip("[]"), u.port or 5060)


def _src(txn):
    """The request's source as log text (issue #3: a log line names who asked), "-" without a transaction."""
    src = getattr(txn, "source", None)
    return "%s:%s:%d" % src if src else "-"


def _strict_next(req):
    """§16.6 step 6: if the next hop is a strict router (first Route URI without `lr`), its URI becomes the
    Request-URI and the Request-URI goes to the end of the Route set, as a strict router expects (§16.12)."""
    top = req.get("Route")
    if top is None:
        return
    uri = parse_name_addr(top).uri
    if "lr" in parse_uri(uri).params:
        return
    req.remove_first("Route")
    req.add("Route", "<" + req.uri + ">")
    req.uri = uri


class Proxy:
    """Proxy(cfg, txl, registrar, users, rand, secret, log); set `listen` [(proto, host, port)] before use."""

    def __init__(self, cfg, txl, registrar, users, rand, secret, log, bridge=None, accounts=None,
                 federation=None):
        self.cfg = cfg
        self.federation = federation
        self._parked = {}       # DNS lookup key -> [(txn, msg, fwd, source, in_dialog, lh, cancel key)]
        self._parked_count = 0
        self.bridge = bridge
        self.accounts = accounts
        self.short_dial = cfg.get("short_dial") or {}
        self.txl = txl
        self.registrar = registrar
        self.auth = registrar.auth
        self.users = users
        self.rand = rand
        self.key = bytes(secret)
        self.log = log
        self.me = {}            # proto -> (host, port) for Via and Record-Route
        self.my_ports = set()
        self._by_client = {}    # client txn id -> (context, branch)
        self._by_server = {}    # server txn id -> context
        self._by_key = {}       # INVITE key (branch, sent-by) -> context, for CANCEL
        self._per_source = {}   # source host -> contexts in progress
        self._timer_c_next = None
        self._count = 0

    def set_listen(self, bound):
        adv = self.cfg.get("advertise")
        for proto, host, port in bound:
            if adv:
                host = adv
            elif host in ("0.0.0.0", "::"):
                host = self.cfg["domain"]  # a wildcard is no address: the domain must then resolve to us
            self.me.setdefault(proto, (host, port))
            self.my_ports.add(port)

    # -- helpers -----------------------------------------------------------------------------------------
    def _is_me(self, u):
        return self.registrar.is_local(u.host.strip("[]")) and (u.port or 5060) in self.my_ports \
            or (u.user is not None and u.user.startswith(flow.PREFIX) and self.registrar.is_local(u.host))

    def _serves(self, u):
        """§16.4: a Request-URI in a domain we are responsible for. One of our listen addresses counts only with
        no port or one of ours: sip:x@127.0.0.1:5062 is a phone beside the node (the agent on the same box, a
        test peer), not the node."""
        host = u.host.strip("[]")
        if not self.registrar.is_local(host):
            return False
        return u.port is None or u.port in self.my_ports or not is_ip_literal(host)

    def _loop_hash(self, msg):
        """RFC 5393 §4.2 / RFC 3261 §16.6 item 8: a hash of what identifies this request's path (the first value
        of each field, NUL-terminated, after the Request-URI), gathered in one pass over the headers."""
        vals = [None] * _LOOP_N
        for h in msg.headers:
            i = _LOOP_FIELDS.get(h[0])
            if i is not None and vals[i] is None:
                vals[i] = h[1]
        text = msg.uri + "\x00"
        for v in vals:
            text += (v or "") + "\x00"
        return hexlify(sha256(text.encode()).digest()).decode()[:_LOOP_HASH]

    def _via(self, proto, branch):
        host, port = self.me.get(proto) or self.me.get("udp") or next(iter(self.me.values()))
        if ":" in host:
            host = "[" + host + "]"
        return "SIP/2.0/%s %s:%d;branch=%s;rport" % (proto.upper(), host, port, branch)

    def _rr(self, proto, token):
        host, port = self.me.get(proto) or self.me.get("udp") or next(iter(self.me.values()))
        if ":" in host:
            host = "[" + host + "]"
        tail = ";transport=tcp;lr" if proto == "tcp" else ";lr"
        return "<sip:%s@%s:%d%s>" % (token, host, port, tail)

    def _reply(self, txn, msg, status, reason, headers=(), now=0):
        resp = make_response(msg, status, reason, self.registrar._tag() if msg.get("To") and
                             ";tag=" not in msg.get("To") else None)
        for name, value in headers:
            resp.add(name, value)
        self.log("%s %s %s %d %s" % (msg.method, msg.uri[:80], _src(txn), status, reason))
        return self.txl.respond(txn, resp, now)

    # -- requests ------------------------------------------------------------------------------------------
    def on_request(self, txn, msg, source, now, wall):
        """A request for the proxy (not REGISTER, not for the node itself) on server transaction `txn`."""
        try:
            return self._request(txn, msg, source, now, wall)
        except ParseError as e:
            return self._reply(txn, msg, 400, "Bad Request (" + e.reason[:60] + ")", now=now)

    def _request(self, txn, msg, source, now, wall):
        method = msg.method
        if method == "CANCEL":
            return self._cancel(txn, msg, now)
        # §16.3: validation
        mf = msg.get("Max-Forwards")
        if mf is not None:
            mf = int(mf)
            if mf <= 0:
                return self._reply(txn, msg, 483, "Too Many Hops", now=now)
        else:
            mf = _DEFAULT_MF
        preq = msg.get_all("Proxy-Require")
        if preq:
            return self._reply(txn, msg, 420, "Bad Extension", [("Unsupported", t) for t in preq], now)
        lh = self._loop_hash(msg)
        mark = _BRANCH_MW + lh
        for v in msg.get_all("Via"):
            if mark not in v:
                continue  # cheap test first: most Vias are not ours
            via = parse_via(v)
            if via.branch and via.branch.startswith(mark) and (via.port or 5060) in self.my_ports \
                    and self.registrar.is_local(via.host.strip("[]")):
                return self._reply(txn, msg, 482, "Loop Detected", now=now)
        # §16.4: our own Route entries, and the strict-router case; §16.6 item 3: Max-Forwards decremented
        fwd = Message(method, msg.uri, None, "", _copy_headers(msg.headers, str(mf - 1)), bytes(msg.body))
        ruri = parse_uri(msg.uri)
        flows = None
        if ruri.user and ruri.user.startswith(flow.PREFIX) and self._is_me(ruri):
            routes = fwd.get_all("Route")
            flows = flow.parse(self.key, ruri.user)
            if routes:  # the previous hop was a strict router: the last Route is the real target
                fwd.uri = parse_name_addr(routes[-1]).uri
                fwd.remove("Route")
                for r in routes[:-1]:
                    fwd.add("Route", r)
                ruri = parse_uri(fwd.uri)
        while True:
            top = fwd.get("Route")
            if top is None:
                break
            ru = parse_uri(parse_name_addr(top).uri)
            if not self._is_me(ru):
                break
            if flows is None and ru.user:
                flows = flow.parse(self.key, ru.user)
            fwd.remove_first("Route")
        # targets. Only our own flow token, arriving from one end of the dialog it was minted for, makes a
        # request "in dialog": it then goes to the other end, whatever Route or To say (a To tag or a preloaded
        # Route is the caller's claim, and trusting it would make the node an open relay).
        side = flow.other_side(flows, source) if flows is not None else None
        in_dialog = side is not None
        alts = None
        if in_dialog:
            targets = [(fwd.uri, side, None, None)]
        else:
            res = self._targets(txn, msg, fwd, ruri, source, False, now, wall, fwd.get("Route"))
            if isinstance(res, tuple) and res[0] == "park":
                return self._park(txn, msg, fwd, source, in_dialog, lh, res[1], res[2], now)
            if not isinstance(res, list) or not res or res[0][0] != "target":
                return res
            targets = [t[1] for t in res]
            alts = res[0][2] if len(res[0]) > 2 else None
        if method == "ACK":
            return self._forward_ack(fwd, targets[0], source, lh)
        if len(self._by_server) >= MAX_CONTEXTS or self._per_source.get(source[1], 0) >= MAX_PER_SOURCE:
            return self._reply(txn, msg, 503, "Service Unavailable (busy)", [("Retry-After", "5")], now)
        return self._fork(txn, msg, fwd, targets, source, in_dialog, lh, now, alts)

    def _targets(self, txn, msg, fwd, ruri, source, in_dialog, now, wall, next_route=None):
        """Target set for a request outside a dialog of ours: a preloaded Route (authenticated local callers
        only), local user contacts, or the foreign-domain seam."""
        local = ruri.scheme in ("sip", "sips") and self._serves(ruri)
        caller = None
        if not in_dialog and msg.method not in _NO_AUTH:
            try:
                fu = parse_uri(parse_name_addr(msg.get("From")).uri)
            except (ParseError, TypeError, AttributeError):
                return self._reply(txn, msg, 400, "Bad From", now=now)
            if fu.scheme in ("sip", "sips") and fu.host and self.registrar.is_local(fu.host.strip("[]")):
                caller = fu
        if caller is not None:
            # a local identity: prove it (§22.3) and that From is really the authenticated user
            creds = self.auth.pick(msg.get_all("Proxy-Authorization"))
            res = self.auth.check(msg.method, msg.uri, creds, self._ha1, now)
            if not res.ok:
                return self._reply(txn, msg, 407, "Proxy Authentication Required",
                                   [("Proxy-Authenticate", v) for v in self.auth.challenges(now, res.stale)], now)
            if caller.user != res.username:
                return self._reply(txn, msg, 403, "From does not match the authenticated user", now=now)
            self._strip_our_credentials(fwd)
        if next_route is not None:
            if caller is None:
                return self._reply(txn, msg, 403, "Relaying denied (Route not through this node)", now=now)
            return [("target", (fwd.uri, _uri_dest(parse_name_addr(next_route).uri, source[0]), None, None))]
        if not local:
            if caller is None and not in_dialog:
                return self._reply(txn, msg, 403, "Relaying denied", now=now)
            dest = self.foreign_dest(ruri)
            if dest is not None:
                return [("target", (fwd.uri, dest, None, None))]
            if self.federation is not None and ruri.scheme in ("sip", "sips") and ruri.host:
                r = self.federation.route(ruri, now)  # RFC 3263 through DNS, like mail finds an MX
                if r[0] == "targets":
                    return [("target", (fwd.uri, r[1][0], None, None), r[1][1:])]
                if r[0] == "wait":
                    return ("park", r[1], r[2])
                pbx = self._via_pbx(caller, fwd, ruri)  # DNS has no way there: the PBX may have one
                if pbx is not None:
                    return [pbx]
                return self._reply(txn, msg, r[1], r[2], now=now)
            pbx = self._via_pbx(caller, fwd, ruri)
            if pbx is not None:
                return [pbx]
            return self._reply(txn, msg, 404, "No route to " + (ruri.host or ruri.user or "")[:60], now=now)
        if caller is None and not in_dialog and self.federation is not None and msg.method not in _NO_AUTH:
            # from another domain: no local auth (its own domain vouches), but rate-limited per source
            refuse = self.federation.inbound(source, False, True, False, now)
            if refuse is not None:
                return self._reply(txn, msg, refuse[0], refuse[1], refuse[2], now)
        if ruri.user is None:
            return self._reply(txn, msg, 404, "No user in Request-URI", now=now)
        user = self._local_user(ruri.user)
        if user is None:
            pbx = self._via_pbx(caller, fwd, ruri)  # not one of ours: maybe a PBX extension
            if pbx is not None:
                return [pbx]
            return self._reply(txn, msg, 404, "Not Found", now=now)
        bl = self.registrar.lookup("sip:" + user, wall)[:MAX_BRANCHES]
        if not bl:
            return self._reply(txn, msg, 480, "Temporarily Unavailable", now=now)
        out = []
        for b in bl:
            route = b.path[0] if b.path else None
            dest = _uri_dest(parse_name_addr(route).uri) if route else b.source
            out.append(("target", (b.uri, dest, b.path, None)))
        return out

    def _local_user(self, name):
        """'user@domain' of a local user named by user part, short-dial number or PBX extension, or None."""
        address = name + "@" + self.registrar.domain
        if self.users.get(address) is not None:
            return address
        mapped = self.short_dial.get(name)
        if mapped is not None and self.users.get(mapped + "@" + self.registrar.domain) is not None:
            return mapped + "@" + self.registrar.domain
        if self.accounts is not None:
            address = self.accounts.by_extension(name)
            if address is not None and self.users.get(address) is not None:
                return address
        return None

    def _via_pbx(self, caller, fwd, ruri):
        """Target through the PBX under the caller's insecure identity (From rewritten to it), or None."""
        if self.bridge is None or caller is None:
            return None
        ident = self.bridge.identity(caller.user + "@" + self.registrar.domain)
        if ident is None:
            return None
        ext, rec = ident
        na = parse_name_addr(fwd.get("From"))
        na.uri = "sip:%s@%s" % (ext, self.bridge.domain)
        fwd.set("From", na.to_str())
        number = ruri.user if ruri.user else ""
        return ("target", ("sip:%s@%s" % (number, self.bridge.domain), self.bridge.dest, None, rec))

    def foreign_dest(self, ruri):
        """The seam for the DNS federation: next hop for a non-local URI, or None. Until RFC 3263 lookups land
        only numeric hosts are reachable (RFC 3263 §4.2: a numeric host needs no lookup)."""
        if is_ip_literal((ruri.host or "").strip("[]")):
            return _uri_dest(ruri)
        return None

    def _ha1(self, username, algorithm):
        return self.users.ha1(username, self.registrar.domain, algorithm, self.auth.realm)

    def _strip_our_credentials(self, fwd):
        keep = [v for v in fwd.get_all("Proxy-Authorization") if ('realm="%s"' % self.auth.realm) not in v]
        fwd.remove("Proxy-Authorization")
        for v in keep:
            fwd.add("Proxy-Authorization", v)

    # -- forwarding ----------------------------------------------------------------------------------------
    def _branch_id(self, lh):
        self._count += 1
        return _BRANCH_MW + lh + "." + hexlify(self.rand(4)).decode() + "%x" % self._count

    def _fork(self, txn, msg, fwd, targets, source, in_dialog, lh, now, alts=None, trying_sent=False):
        """§16.6 for every target in parallel; §16.2: 100 Trying at once for INVITE. `alts`: further DNS targets
        for a single target, tried in turn when it fails (RFC 3263 §4.3)."""
        key = None
        acts = []
        base = None
        if alts:
            base = Message(fwd.method, fwd.uri, None, "", _copy_headers(fwd.headers), fwd.body)
        if msg.method == "INVITE":
            top = parse_via(msg.get("Via"))
            key = (top.branch, top.host, top.port)
            if not trying_sent:
                acts.extend(self.txl.respond(txn, make_response(msg, 100, "Trying"), now))
        ctx = _Context(txn, msg, source, key)
        last = len(targets) - 1
        for i, (ruri, dest, path, pbx) in enumerate(targets):
            if i == last:
                req = fwd  # already our own copy: the last branch takes it, the others copy it
                req.uri = ruri
            else:
                req = Message(fwd.method, ruri, None, "", _copy_headers(fwd.headers), fwd.body)
            if path:
                for p in reversed(path):
                    req.add("Route", p, top=True)
            _strict_next(req)
            if not in_dialog and req.method in _RR_METHODS:
                self._record_route(req, source, dest)
            req.add("Via", self._via(dest[0], self._branch_id(lh)), top=True)
            br = _Branch(req, pbx)
            br.dest = dest
            if base is not None:
                br.alts = list(alts)
                br.base = base
            ctn, a = self.txl.send_request(req, dest, now)
            if ctn is None:
                br.final = make_response(req, 503, "Service Unavailable")
            else:
                br.txn = ctn
                self._by_client[ctn.id] = (ctx, br)
                if req.method == "INVITE":
                    br.timer_c = now + (FAILOVER_MS if br.alts else TIMER_C_MS)
                    self._arm_c(br.timer_c)
            ctx.branches.append(br)
            acts.extend(a)
        self._by_server[txn.id] = ctx
        if key is not None:
            self._by_key[key] = ctx
        self._per_source[source[1]] = self._per_source.get(source[1], 0) + 1
        acts.extend(self._maybe_final(ctx, now))
        return acts

    def _record_route(self, req, source, dest):
        token = flow.make(self.key, source, dest)
        # RFC 5658 double record-routing across transports: the callee's route set is the list as it
        # stands and the caller's is the reverse (§12.1.1/§12.1.2), so the entry facing the caller goes
        # in first (lower) and the one facing the callee on top
        if dest[0] != source[0]:
            req.add("Record-Route", self._rr(source[0], token), top=True)
        req.add("Record-Route", self._rr(dest[0], token), top=True)

    # -- DNS federation: parking while a lookup runs, failover to the next target ---------------------------
    def _park(self, txn, msg, fwd, source, in_dialog, lh, key, dns_actions, now):
        """RFC 3263 lookups are asynchronous: the request waits under the lookup's key (100 Trying sent for an
        INVITE so the caller stops retransmitting) until on_dns_done resumes it."""
        if txn is None:
            return dns_actions  # an ACK is never parked: without a target it is dropped (its sender retransmits)
        if self._parked_count >= MAX_PARKED:
            return self._reply(txn, msg, 503, "Service Unavailable (too many DNS lookups waiting)",
                               [("Retry-After", "5")], now)
        acts = []
        ck = None
        if msg.method == "INVITE":
            top = parse_via(msg.get("Via"))
            ck = (top.branch, top.host, top.port)
            acts.extend(self.txl.respond(txn, make_response(msg, 100, "Trying"), now))
        self._parked.setdefault(key, []).append((txn, msg, fwd, source, in_dialog, lh, ck))
        self._parked_count += 1
        acts.extend(dns_actions)
        return acts

    def on_dns_done(self, completions, now):
        """Federation completions [(key, ("targets", [addr...]) | ("fail", status, reason))]: resume what waited."""
        acts = []
        for key, result in completions:
            for txn, msg, fwd, source, in_dialog, lh, ck in self._parked.pop(key, ()):
                self._parked_count -= 1
                if result[0] != "targets":
                    acts.extend(self._reply(txn, msg, result[1], result[2], now=now))
                elif len(self._by_server) >= MAX_CONTEXTS or \
                        self._per_source.get(source[1], 0) >= MAX_PER_SOURCE:
                    acts.extend(self._reply(txn, msg, 503, "Service Unavailable (busy)", [("Retry-After", "5")],
                                            now))
                else:
                    acts.extend(self._fork(txn, msg, fwd, [(fwd.uri, result[1][0], None, None)], source, in_dialog,
                                           lh, now, result[1][1:], ck is not None))
        return acts

    def _cancel_parked(self, ck, now):
        for key, entries in self._parked.items():
            for e in entries:
                if e[6] == ck:
                    entries.remove(e)
                    self._parked_count -= 1
                    if not entries:
                        del self._parked[key]
                    return self._reply(e[0], e[1], 487, "Request Terminated", now=now)
        return None

    def _failover(self, ctx, br, ctn, why, now):
        """RFC 3263 §4.3: the target failed (transport error, Timer B/F, 503, an INVITE unanswered for
        FAILOVER_MS): mark it dead and send the request to the next one on a new client transaction. None
        when there is no next target."""
        if not br.alts or ctx.cancelled or br.provisional or self.federation is None:
            return None
        self.federation.dead(br.dest, now)
        dest = br.alts.pop(0)
        self.log("%s %s: %s:%s:%d %s, trying %s:%s:%d" % (ctx.request.method, ctx.request.uri[:80], br.dest[0],
                                                         br.dest[1], br.dest[2], why, dest[0], dest[1], dest[2]))
        base = br.base
        req = Message(base.method, base.uri, None, "", _copy_headers(base.headers), base.body)
        if ";tag=" not in (ctx.request.get("To") or "") and req.method in _RR_METHODS:
            self._record_route(req, ctx.source, dest)  # the flow token names the new target
        req.add("Via", self._via(dest[0], self._branch_id(self._loop_hash(ctx.request))), top=True)
        self._by_client.pop(ctn.id, None)
        new, acts = self.txl.send_request(req, dest, now)
        if new is None:
            return None
        br.request = req
        br.txn = new
        br.dest = dest
        self._by_client[new.id] = (ctx, br)
        if req.method == "INVITE":
            br.timer_c = now + (FAILOVER_MS if br.alts else TIMER_C_MS)
            self._arm_c(br.timer_c)
        return acts

    def _forward_ack(self, fwd, target, source, lh):
        """§16.11: an ACK for a 2xx is forwarded statelessly, with a branch derived from the request."""
        ruri, dest = target[0], target[1]
        fwd.uri = ruri
        _strict_next(fwd)
        fwd.add("Via", self._via(dest[0], _BRANCH_MW + lh + ".ack"), top=True)
        return [("send", fwd.to_bytes(), dest)]

    def on_ack(self, msg, source, now, wall):
        """An ACK no server transaction absorbed (ACK for a 2xx): route it like any in-dialog request."""
        try:
            return self._request(None, msg, source, now, wall) or []
        except ParseError:
            return []

    # -- CANCEL (§16.10) -----------------------------------------------------------------------------------
    def _cancel(self, txn, msg, now):
        top = parse_via(msg.get("Via"))
        ctx = self._by_key.get((top.branch, top.host, top.port))
        if ctx is None and self._parked:
            acts = self._cancel_parked((top.branch, top.host, top.port), now)
            if acts is not None:
                return self._reply(txn, msg, 200, "OK", now=now) + acts
        if ctx is None or ctx.final_sent:
            return self._reply(txn, msg, 481, "Call/Transaction Does Not Exist", now=now)
        acts = self._reply(txn, msg, 200, "OK", now=now)
        ctx.cancelled = True
        for br in ctx.branches:
            acts.extend(self._cancel_branch(br, now))
        return acts

    def _cancel_branch(self, br, now):
        if br.final is not None or br.cancelled or br.txn is None:
            return []
        if not br.provisional:
            br.cancel_wanted = True  # §9.1: no CANCEL before a provisional response; sent when one arrives
            return []
        br.cancelled = True
        inv = br.request
        h = [["Via", inv.get("Via")]]
        for r in inv.get_all("Route"):
            h.append(["Route", r])
        for name in ("Max-Forwards", "From", "To", "Call-ID"):
            h.append([name, inv.get(name)])
        h.append(["CSeq", "%d CANCEL" % parse_cseq(inv.get("CSeq"))[0]])
        cancel = Message.request("CANCEL", inv.uri, h)
        ctn, acts = self.txl.send_request(cancel, br.txn.addr, now)
        br.timer_c = now + CANCEL_WAIT_MS  # from now on Timer C's slot holds the §9.1 give-up deadline
        self._arm_c(br.timer_c)
        return acts

    # -- responses (§16.7) -----------------------------------------------------------------------------------
    def on_response(self, ctn, msg, now):
        """A response on one of our client transactions (ctn None: a stray, forwarded statelessly)."""
        ent = self._by_client.get(ctn.id) if ctn is not None else None
        if ent is None:
            return self.forward_stateless(msg)
        ctx, br = ent
        if br.request is not ctn.request:
            return []  # response to our own CANCEL: nothing to pass upstream
        status = msg.status
        acts = []
        if status < 200:
            br.provisional = True
            if br.timer_c is not None and not br.cancelled:
                br.timer_c = now + TIMER_C_MS
                self._arm_c(br.timer_c)
            if br.cancel_wanted or (ctx.cancelled and not br.cancelled):
                acts.extend(self._cancel_branch(br, now))
            if status == 100 or ctx.final_sent:
                return acts
            acts.extend(self.txl.respond(ctx.txn, self._upstream(msg), now))
            return acts
        if status < 300:
            br.final = msg
            br.timer_c = None
            # §16.7 step 5: every 2xx goes upstream at once; for INVITE the other branches are cancelled
            acts.extend(self.txl.respond(ctx.txn, self._upstream(msg), now))
            if not ctx.final_sent:
                ctx.final_sent = True
                self.log("%s %s %s %d %s" % (ctx.request.method, ctx.request.uri[:80], _src(ctx.txn), status,
                                             msg.reason))  # one line per outcome, answered calls too
                if ctx.request.method == "INVITE":  # §16.7 step 10; §9.1: no CANCEL for other methods
                    for other in ctx.branches:
                        if other is not br:
                            acts.extend(self._cancel_branch(other, now))
            self._maybe_done(ctx)
            return acts
        if status == 503 and br.alts and br.final is None:
            retry = self._failover(ctx, br, ctn, "answered 503", now)
            if retry is not None:
                return retry
        if br.pbx is not None and status in (401, 407) and not br.auth_tried and not ctx.cancelled:
            retry = self._answer_pbx(ctx, br, ctn, msg, now)
            if retry is not None:
                return retry
        if br.final is None:
            br.final = msg
            br.timer_c = None
            if ctx.best is None or _rank(status) < _rank(ctx.best.status):
                ctx.best = msg
            if status >= 600 and ctx.request.method == "INVITE":
                for other in ctx.branches:
                    acts.extend(self._cancel_branch(other, now))
        acts.extend(self._maybe_final(ctx, now))
        return acts

    def _answer_pbx(self, ctx, br, ctn, msg, now):
        """The PBX challenged a call placed under a user's PBX identity: send it again with her PBX
        credentials (same CSeq: a new transaction of the same request, like a UAC retry)."""
        name = "WWW-Authenticate" if msg.status == 401 else "Proxy-Authenticate"
        value = self.bridge.credentials(br.pbx, msg.get_all(name), br.request.method, br.request.uri)
        if value is None:
            return None
        req = Message.request(br.request.method, br.request.uri, [list(h) for h in br.request.headers],
                              br.request.body)
        req.remove_first("Via")
        req.add("Via", self._via(ctn.addr[0], self._branch_id(self._loop_hash(ctx.request))), top=True)
        req.add("Authorization" if msg.status == 401 else "Proxy-Authorization", value)
        new, acts = self.txl.send_request(req, ctn.addr, now)
        if new is None:
            return None
        self._by_client.pop(ctn.id, None)
        br.request = req
        br.txn = new
        br.auth_tried = True
        br.provisional = False
        self._by_client[new.id] = (ctx, br)
        return acts

    def on_timeout(self, ctn, now, reason="Request Timeout", status=408):
        """Timer B/F (or a transport error) on a branch: it ends with a synthesized response (§16.7 step 1)."""
        ent = self._by_client.pop(ctn.id, None) if ctn is not None else None
        if ent is None:
            return []
        ctx, br = ent
        if br.request is not ctn.request or br.final is not None:
            return []
        retry = self._failover(ctx, br, ctn, "timed out" if status == 408 else "unreachable", now)
        if retry is not None:
            return retry
        return self._end_branch(ctx, br, status, reason, now)

    def _end_branch(self, ctx, br, status, reason, now):
        """The branch ends with a response of our own (§16.7 step 1); the best one goes upstream when due."""
        br.final = make_response(br.request, status, reason)  # carries our Via, like a real response
        br.timer_c = None
        if ctx.best is None or _rank(status) < _rank(ctx.best.status):
            ctx.best = br.final
        return self._maybe_final(ctx, now)

    def _give_up(self, ctx, br, now):
        """§9.1: the branch was cancelled 64·T1 ago and its final response never came: end its client
        transaction and the branch (487 if the caller cancelled, else 408 for Timer C), so the caller gets
        an answer and the context is freed."""
        self._by_client.pop(br.txn.id, None)
        self.txl.abandon(br.txn)
        if ctx.cancelled:
            return self._end_branch(ctx, br, 487, "Request Terminated", now)
        return self._end_branch(ctx, br, 408, "Request Timeout", now)

    def on_terminated(self, txn):
        self._by_client.pop(txn.id, None)
        ctx = self._by_server.get(txn.id)
        if ctx is not None and ctx.final_sent:
            self._drop(ctx)

    def _upstream(self, msg):
        """The response as the previous hop must see it: our Via removed, everything else untouched."""
        hs = _copy_headers(msg.headers)
        for i in range(len(hs)):
            if hs[i][0] == "Via":
                del hs[i]
                break
        return Message(None, None, msg.status, msg.reason, hs, bytes(msg.body))

    def _maybe_final(self, ctx, now):
        """§16.7 step 6/8: once every branch has a final response, send the best one upstream."""
        if ctx.final_sent:
            self._maybe_done(ctx)
            return []
        for br in ctx.branches:
            if br.final is None:
                return []
        ctx.final_sent = True
        best = ctx.best
        if ctx.cancelled and ctx.request.method == "INVITE":
            resp = make_response(ctx.request, 487, "Request Terminated")
        elif best is None:
            resp = make_response(ctx.request, 500, "Server Internal Error")
        elif best.status == 503:
            resp = make_response(ctx.request, 500, "Server Internal Error (next hop unavailable)")
        else:
            resp = self._upstream(best)
            if best.status in (401, 407):  # §16.7 step 7: every branch's challenge goes upstream
                for br in ctx.branches:
                    if br.final is not best and br.final is not None:
                        for name in ("WWW-Authenticate", "Proxy-Authenticate"):
                            for v in br.final.get_all(name):
                                resp.add(name, v)
        if resp.get("To") and ";tag=" not in resp.get("To"):
            resp.set("To", resp.get("To") + ";tag=" + self.registrar._tag())
        self.log("%s %s %s %d %s" % (ctx.request.method, ctx.request.uri[:80], _src(ctx.txn), resp.status,
                                     resp.reason))
        acts = self.txl.respond(ctx.txn, resp, now)
        self._maybe_done(ctx)
        return acts

    def _maybe_done(self, ctx):
        for br in ctx.branches:
            if br.final is None:
                return
        self._drop(ctx)

    def _drop(self, ctx):
        if self._by_server.pop(ctx.txn.id, None) is None:
            return
        if ctx.key is not None and self._by_key.get(ctx.key) is ctx:
            del self._by_key[ctx.key]
        n = self._per_source.get(ctx.source[1], 1) - 1
        if n > 0:
            self._per_source[ctx.source[1]] = n
        else:
            self._per_source.pop(ctx.source[1], None)
        for br in ctx.branches:
            if br.txn is not None:
                ent = self._by_client.get(br.txn.id)
                if ent is not None and ent[0] is ctx and br.final is not None and br.final.status >= 300:
                    del self._by_client[br.txn.id]
            if br.final is not None and br.final.status < 300:
                br.final = _PASSED_2XX  # only "a 2xx went upstream" matters now; the message can go
        ctx.best = None

    def forward_stateless(self, msg):
        """A response matching no transaction (e.g. a 2xx retransmission after Timer M): if the top Via is ours,
        pop it and send the response where the next Via says (§16.11, RFC 6026 §8.4)."""
        vias = msg.get_all("Via")
        if len(vias) < 2 or not 200 <= msg.status < 300:
            return []  # only a 2xx travels end to end; other finals are hop by hop
        try:
            mine = parse_via(vias[0])
            nxt = parse_via(vias[1])
        except ParseError:
            return []
        if not (mine.branch or "").startswith(_BRANCH_MW):
            return []
        resp = self._upstream(msg)
        host = nxt.params.get("received") or nxt.host.strip("[]")
        port = nxt.params.get("rport") or nxt.port or 5060
        return [("send", resp.to_bytes(), (nxt.transport.lower(), host, int(port)))]

    # -- Timer C -----------------------------------------------------------------------------------------------
    def _arm_c(self, deadline):
        if self._timer_c_next is None or deadline < self._timer_c_next:
            self._timer_c_next = deadline

    def next_timer(self):
        return self._timer_c_next

    def tick(self, now):
        """§16.6 item 11 / §16.8: an INVITE branch silent past Timer C is cancelled (or ends with 408); a
        cancelled branch still without a final response 64·T1 later is given up (§9.1); a DNS target silent
        for FAILOVER_MS with another target left is given up for that one."""
        if self._timer_c_next is None or now < self._timer_c_next:
            return []
        self._timer_c_next = None
        acts = []
        for ctx in list(self._by_server.values()):
            for br in ctx.branches:
                if br.timer_c is None or br.final is not None:
                    continue
                if br.timer_c <= now:
                    br.timer_c = None
                    if br.cancelled:
                        acts.extend(self._give_up(ctx, br, now))
                    elif br.provisional:
                        acts.extend(self._cancel_branch(br, now))
                    else:
                        if br.alts:
                            self.txl.abandon(br.txn)  # FAILOVER_MS of silence: stop retransmitting there
                        acts.extend(self.on_timeout(br.txn, now))
                else:
                    self._arm_c(br.timer_c)
        return acts
