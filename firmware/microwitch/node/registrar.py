"""The registrar: REGISTER processing as RFC 3261 §10.3 lists it, with RFC 5626 instance/reg-id bindings.

`Registrar.handle(msg, source, now_ms, wall_s)` returns the response Message; `lookup(aor, wall_s)` gives
the forwarder the current contacts. Steps (numbers as in §10.3):
 1 Request-URI names a local domain (config `domain`, `aliases`, listen addresses), else 403.
 2 Require options we do not support -> 420 with Unsupported.
 3 digest authentication (401 with SHA-256 and MD5 challenges; stale=true for an old nonce).
 4 the authenticated user must own the AoR (To user) -> else 403.
 5 To names a local domain and a user -> else 404.
 6 Contact: `*` only alone and with `Expires: 0` (else 400); expires from the contact's param, the Expires
   header or `default_expires`; below `min_expires` (and not 0) -> 423 with Min-Expires; above
   `max_expires` -> capped. q in thousandths.
 7 per contact: a binding with the same key (+sip.instance and reg-id when present, else the URI) is
   updated or removed; same Call-ID with a CSeq not above the stored one aborts the whole request (500).
   Bounds: a new AoR when `max_aors` are taken -> 503 "Registrar full"; more than `max_contacts_per_aor`
   -> 403 "Too many contacts". In both cases and on a storage error nothing changes.
 8 200 OK lists every current contact with its remaining expires. Never a GRUU (RFC 5627 is not done:
   no pub-gruu/temp-gruu even when the phone sends Supported: gruu).
"""
from binascii import hexlify

from microwitch.compat import const
from microwitch.sip.headers import ParseError, parse_name_addr_shared, parse_cseq, params_str
from microwitch.sip.message import make_response
from microwitch.sip.uri import parse_uri_shared, aor_key, URI
from microwitch.sip.digest import DigestAuth, NONCE_TTL_S, MAX_NONCES, ALGORITHMS
from microwitch.store import StoreFull
from microwitch.store.bindings import Binding

SUPPORTED = ("path",)  # option tags a Require may name (RFC 3327 Path is stored and echoed)
_MAX_LOG_FIELD = const(96)
# stored sizes, so that max_contacts_per_aor (<= 100) bindings always fit one journal record (MAX_RECORD)
_MAX_CONTACT = const(512)  # characters of one stored contact (URI and parameters)
_MAX_PATH = const(512)  # characters of all Path values together
_MAX_CALL_ID = const(128)
_SANE_WALL = const(1000000000)  # wall clock below this (2001) is unset: no Date header
_DAYS = ("Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed")  # 1970-01-01 was a Thursday
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


_date_memo = [None, ""]  # (second, text) of the last http_date: every 200 of one second shares it


def http_date(t):
    """RFC 1123 date for Unix time t (RFC 3261 §20.17), e.g. 'Sat, 13 Nov 2010 23:29:00 GMT'."""
    t = int(t)
    if _date_memo[0] == t:
        return _date_memo[1]
    text = _http_date(t)
    _date_memo[0] = t
    _date_memo[1] = text
    return text


def _http_date(t):
    days = t // 86400
    rem = t - days * 86400
    # days -> civil date (proleptic Gregorian, era-based)
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    y = yoe + era * 400 + (1 if m <= 2 else 0)
    return "%s, %02d %s %04d %02d:%02d:%02d GMT" % (_DAYS[days % 7], d, _MONTHS[m - 1], y, rem // 3600,
                                                      (rem // 60) % 60, rem % 60)


def _parse_q(v):
    """'0.5' -> 500, '1' -> 1000 (RFC 3261 §25.1 qvalue); None if malformed."""
    if v is None:
        return None
    if v == "1" or (v[:2] == "1." and len(v) <= 5 and v[2:] == "0" * (len(v) - 2)):
        return 1000
    if v == "0":
        return 0
    if v[:2] != "0." or len(v) > 5 or len(v) < 3:
        return None
    frac = v[2:]
    for ch in frac:
        if ch < "0" or ch > "9":
            return None
    return int((frac + "00")[:3])


def _q_str(q):
    if q == 1000:
        return "1"
    if q == 0:
        return "0"
    s = "0.%03d" % q
    while s[-1] == "0" and len(s) > 3:
        s = s[:-1]
    return s


def _digits(v, limit):
    if v is None or not v or len(v) > 10:
        return None
    for ch in v:
        if ch < "0" or ch > "9":
            return None
    n = int(v)
    return n if n <= limit else None


def _uri_key(u):
    """Contact identity for RFC 3261 §19.1.4-style comparison (scheme, user, host, port, transport)."""
    t = u.params.get("transport")
    return "%s:%s@%s:%s;%s" % (u.scheme, u.user, u.host, u.port, t.lower() if t else "")


def _binding_key(b):
    if b.instance is not None:
        return ("i", b.instance, b.reg_id)
    # computed per REGISTER rather than cached on the binding: a binding's RAM is the scarce resource on a
    # device, and parse_uri_shared remembers the few URIs one REGISTER touches
    try:
        return ("u", _uri_key(parse_uri_shared(b.uri)))
    except ParseError:
        return ("u", b.uri)


# the request headers the registrar reads, gathered in one pass over the message (see _fields)
_F_REQUIRE = const(0)
_F_AUTH = const(1)
_F_CONTACT = const(2)
_F_PATH = const(3)
_F_TO = const(4)
_F_CSEQ = const(5)
_F_CALL_ID = const(6)
_F_EXPIRES = const(7)
_FIELDS = {"Require": _F_REQUIRE, "Authorization": _F_AUTH, "Contact": _F_CONTACT, "Path": _F_PATH,
           "To": _F_TO, "CSeq": _F_CSEQ, "Call-ID": _F_CALL_ID, "Expires": _F_EXPIRES}


def _fields(msg):
    """[values in wire order, or None] for each _F_ slot: msg.get_all for each, in one pass (header names in
    a Message are canonical)."""
    f = [None, None, None, None, None, None, None, None]
    get = _FIELDS.get
    for h in msg.headers:
        i = get(h[0])
        if i is not None:
            if f[i] is None:
                f[i] = [h[1]]
            else:
                f[i].append(h[1])
    return f


class _Reject(Exception):
    def __init__(self, status, reason, headers=()):
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers = headers


class Registrar:
    def __init__(self, cfg, users, bindings, rand, node_secret, log=None, local_hosts=()):
        self.domain = cfg["domain"].lower()
        self.realm = cfg.get("realm") or self.domain
        self.min_expires = cfg.get("min_expires", 60)
        self.max_expires = cfg.get("max_expires", 3600)
        self.default_expires = cfg.get("default_expires", 3600)
        self.users = users
        self.bindings = bindings
        self.rand = rand
        self.log = log
        local = [self.domain]
        for a in cfg.get("aliases", ()):
            local.append(a)
        for spec in cfg.get("listen", ()):
            # "udp:HOST:PORT"; HOST may be "[v6]"
            local.append(spec[spec.find(":") + 1:spec.rfind(":")])
        for h in local_hosts:
            local.append(h)
        # compared without IPv6 brackets and case; wildcard listen addresses name no host
        self.local = set(h.lower().strip("[]") for h in local if h) - set(("0.0.0.0", "::", ""))
        self._last_auth = ""
        self._contacts = 0  # contacts in the last 200 (for its log line)
        self.auth = DigestAuth(self.realm, node_secret, rand, cfg.get("nonce_ttl", NONCE_TTL_S),
                               cfg.get("max_nonces", MAX_NONCES), cfg.get("digest_algorithms") or ALGORITHMS)

    # -- public ----------------------------------------------------------------------------------------
    def is_local(self, host):
        """True for the domain, an alias or a listen address (IPv6 with or without brackets)."""
        return host is not None and host.lower().strip("[]") in self.local

    def aor_for(self, uri):
        """AoR key for a URI string or URI naming a local user ('sip:user@<domain>'), else None."""
        try:
            u = parse_uri_shared(uri) if isinstance(uri, str) else uri
        except ParseError:
            return None
        if u.scheme not in ("sip", "sips") or u.user is None or not self.is_local(u.host):
            return None
        return aor_key(URI("sip", u.user, self.domain))

    def lookup(self, aor, wall_s):
        """Current bindings (highest q first) for an AoR key or a URI of a local user."""
        return self.bindings.lookup(self.aor_for(aor) or aor, wall_s)

    def handle(self, msg, source, now_ms, wall_s):
        """Answer one REGISTER (or any request routed here by mistake) with a response Message."""
        aor = None
        wall_s = int(wall_s)
        try:
            if msg.method != "REGISTER":
                raise _Reject(405, "Method Not Allowed", (("Allow", "REGISTER"),))
            aor, resp = self._register(msg, source, now_ms, wall_s)
        except _Reject as r:
            resp = make_response(msg, r.status, r.reason, self._tag())
            for name, value in r.headers:
                resp.headers.append([name, value])  # names written canonically in this module
        self._log(msg, aor, source, resp)
        return resp

    # -- steps -----------------------------------------------------------------------------------------
    def _register(self, msg, source, now_ms, wall_s):
        # 1: Request-URI
        try:
            ruri = parse_uri_shared(msg.uri)
        except ParseError:
            raise _Reject(400, "Bad Request-URI")
        if ruri.scheme not in ("sip", "sips"):
            raise _Reject(416, "Unsupported URI Scheme")
        if not self.is_local(ruri.host):
            raise _Reject(403, "Domain not served here")
        f = _fields(msg)
        # 2: Require
        if f[_F_REQUIRE] is not None:
            bad = [t for t in f[_F_REQUIRE] if t.lower() not in SUPPORTED]
            if bad:
                raise _Reject(420, "Bad Extension", [("Unsupported", t) for t in bad])
        # 3: authentication
        creds = self.auth.pick(f[_F_AUTH] or ())
        res = self.auth.check("REGISTER", msg.uri, creds, self._ha1, now_ms)
        if not res.ok:
            self._last_auth = res.reason
            raise _Reject(401, "Unauthorized",
                          [("WWW-Authenticate", v) for v in self.auth.challenges(now_ms, res.stale)])
        # 5 (checked before 4 so the owner check compares a valid AoR): To
        try:
            to_uri = parse_uri_shared(parse_name_addr_shared(f[_F_TO][0]).uri)
        except (ParseError, TypeError, AttributeError):
            raise _Reject(400, "Bad To")
        aor = self.aor_for(to_uri)
        if aor is None:
            raise _Reject(404, "Not Found")
        # 4: the authenticated user owns the AoR
        if to_uri.user != res.username:
            raise _Reject(403, "Not the owner of this address")
        try:
            cseq, cmethod = parse_cseq(f[_F_CSEQ][0])
        except (ParseError, TypeError):
            raise _Reject(400, "Bad CSeq")
        call_id = f[_F_CALL_ID][0] if f[_F_CALL_ID] is not None else ""
        if len(call_id) > _MAX_CALL_ID:
            raise _Reject(400, "Call-ID too long")
        # 6 + 7: contacts
        values = f[_F_CONTACT]
        old = self.bindings.current(aor, wall_s)
        if values:
            new = self._apply(f, values, old, call_id, cseq, source, wall_s)
            if len(new) > self.bindings.max_contacts:
                raise _Reject(403, "Too many contacts")
            if new and not self.bindings.has_room_for(aor, wall_s):
                raise _Reject(503, "Registrar full", (("Retry-After", "600"),))
            try:
                self.bindings.update(aor, new, wall_s)
            except StoreFull as e:
                raise _Reject(503, str(e)[:_MAX_LOG_FIELD])
            except (OSError, ValueError):
                raise _Reject(500, "Storage error")
            old = new
        # 8: 200 OK with all current bindings
        resp = make_response(msg, 200, "OK", self._tag())
        hs = resp.headers
        for b in old:
            e = b.expires - wall_s
            c = b.name_addr() + ";expires=" + str(e if e > 0 else 0)
            if b.q is not None:
                c += ";q=" + _q_str(b.q)
            hs.append(["Contact", c])
        self._contacts = len(old)
        if f[_F_PATH] is not None:
            for p in f[_F_PATH]:
                hs.append(["Path", p])
        if wall_s >= _SANE_WALL:
            hs.append(["Date", http_date(wall_s)])
        return aor, resp

    def _apply(self, f, values, old, call_id, cseq, source, wall_s):
        """The AoR's new binding list after this request's contacts (step 6 and 7), or _Reject. `f` is the
        request's _fields."""
        hdr_exp = f[_F_EXPIRES][0] if f[_F_EXPIRES] is not None else None
        if "*" in values:
            if len(values) != 1 or hdr_exp is None or hdr_exp.strip() != "0":
                raise _Reject(400, "Contact * needs Expires: 0 and no other Contact")
            for b in old:
                if b.call_id == call_id and cseq <= b.cseq:
                    raise _Reject(500, "CSeq out of order")
            return []
        default = self.default_expires
        if hdr_exp is not None:
            default = _digits(hdr_exp.strip(), 0xFFFFFFFF)
            if default is None:
                raise _Reject(400, "Bad Expires")
        path = f[_F_PATH]
        if path and sum(len(p) for p in path) > _MAX_PATH:
            raise _Reject(400, "Path too long")
        incoming = {}  # key -> (uri, contact, expires, q, instance, reg_id); the last one of a key wins
        by_uri = {}    # the exact URI text of each incoming contact -> its key (a refresh repeats it verbatim)
        for v in values:
            try:
                na = parse_name_addr_shared(v)  # shared: read only
                u = parse_uri_shared(na.uri)
            except ParseError:
                raise _Reject(400, "Bad Contact")
            if u.scheme not in ("sip", "sips"):
                raise _Reject(400, "Bad Contact URI scheme")
            params = na.params
            e = params.get("expires")
            if e is not None:
                e = _digits(e, 0xFFFFFFFF)
                if e is None:
                    raise _Reject(400, "Bad Contact expires")
            else:
                e = default
            q = params.get("q")
            if q is not None:
                q = _parse_q(q)
                if q is None:
                    raise _Reject(400, "Bad q value")
            inst = params.get("+sip.instance")
            rid = params.get("reg-id")
            if rid is not None:
                rid = _digits(rid, 0x7FFFFFFF)
                if rid is None:
                    raise _Reject(400, "Bad reg-id")
                if inst is None:
                    rid = None  # a reg-id only means something with an instance (RFC 5626 §4.2): ignored
            if e != 0 and e < self.min_expires:
                raise _Reject(423, "Interval Too Brief", (("Min-Expires", str(self.min_expires)),))
            if e > self.max_expires:
                e = self.max_expires
            keep = {}
            for k in params:
                if k != "expires" and k != "q":
                    keep[k] = params[k]
            contact = "<" + na.uri + ">" + params_str(keep)
            if len(contact) > _MAX_CONTACT:
                raise _Reject(400, "Contact too long")
            key = ("i", inst, rid) if inst is not None else ("u", _uri_key(u))
            incoming[key] = (na.uri, contact, e, q, inst, rid)
            by_uri[na.uri] = key
        new = []
        for b in old:
            key = by_uri.get(b.uri) if b.instance is None else None
            if key is None or key[0] != "u":
                key = _binding_key(b)
            got = incoming.pop(key, None)
            if got is None:
                new.append(b)
                continue
            if b.call_id == call_id and cseq <= b.cseq:
                raise _Reject(500, "CSeq out of order")
            if got[2] != 0:
                new.append(self._binding(key, got, call_id, cseq, source, path, wall_s, b.lease))
        for key in incoming:
            got = incoming[key]
            if got[2] != 0:
                new.append(self._binding(key, got, call_id, cseq, source, path, wall_s, 0))
        return new

    def _binding(self, key, got, call_id, cseq, source, path, wall_s, lease):
        uri, contact, e, q, inst, rid = got
        return Binding(uri, wall_s + e, e, call_id, cseq, (source[0], source[1], source[2]), q, inst, rid,
                       path, contact, lease)

    # -- helpers ---------------------------------------------------------------------------------------
    def _ha1(self, username, algorithm):
        return self.users.ha1(username, self.domain, algorithm, self.realm)

    def _tag(self):
        return hexlify(self.rand(6)).decode()

    def _log(self, msg, aor, source, resp):
        if self.log is None:
            return
        who = aor
        if who is None:
            who = (msg.get("To") or "-")[:_MAX_LOG_FIELD]
        line = "%s %s %s:%s:%s %d %s" % (msg.method, who, source[0], source[1], source[2], resp.status,
                                         resp.reason)
        if resp.status == 401:
            line += " (" + self._last_auth + ")"
        elif resp.status == 200:
            line += " contacts=%d" % self._contacts
        self.log(line)
