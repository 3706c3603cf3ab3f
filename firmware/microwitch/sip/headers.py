"""SIP header-value grammar helpers (RFC 3261 §25.1): tokens, quoted strings, parameters, Via,
name-addr, CSeq, and the one ParseError every SIP parser raises.

Values handed in are already unfolded and stripped (see message.parse). Everything here raises
ParseError on bad input and nothing else.
"""
from microwitch.compat import const

_MAX_CSEQ = 2147483647  # RFC 3261 §8.1.1.5: CSeq numbers are below 2**31
_MAX_PORT = const(65535)

_ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
# token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~")
TOKEN_CHARS = _ALNUM + "-.!%*_+`'~"
_DISPLAY_CHARS = TOKEN_CHARS + " \t"
_HOST_CHARS = _ALNUM + "-."
_IPV6_CHARS = "0123456789abcdefABCDEF:."
_SCHEME_CHARS = _ALNUM + "+-."
_DIGITS = "0123456789"
_DIGITS_DOT = _DIGITS + "."
# characters allowed in an unquoted generic parameter value: token / host (incl. IPv6 reference);
# ':' '/' '@' '?' '&' '=' '$' are tolerated because real stacks put them into extension params.
_PVALUE_CHARS = _ALNUM + "-.!%*_+`'~[]:/@?&=$#"


# parse_via / parse_name_addr (and uri.parse_uri) remember recent values: one message's values are parsed
# by the parser, then again by the transaction layer, the registrar and make_response. A memo is two dicts
# (young, old) of up to _MEMO_MAX entries; a full young one becomes the old one, so at least the last
# _MEMO_MAX values are always there. Only values that parsed are kept; results are never changed in place.
_MEMO_MAX = const(16)
_memo_via = [{}, {}]
_memo_addr = [{}, {}]
_memo_hp = [{}, {}]


def memoized(memo, key, parse):
    """parse(key), served from a two-generation memo (see above) when `key` was parsed recently. Only values
    that parsed are remembered: a ParseError is raised again each time."""
    r = memo[0].get(key)
    if r is None:
        r = memo[1].get(key)
        if r is None:
            r = parse(key)
            young = memo[0]
            if len(young) >= _MEMO_MAX:
                memo[1] = young
                young = memo[0] = {}
            young[key] = r
    return r


class ParseError(Exception):
    """A message or value that is not valid SIP.

    .reason  short text usable as a SIP reason phrase / Warning (never echoes input)
    .message from parse(): a partial Message when a response can be built, else None (drop it).
             Guaranteed then: a start line was recognised, every Via parses (parse_via), and From,
             To, Call-ID and CSeq are present (their values may be the broken part: build the
             answer with make_response(err.message, err.status, err.reason), which copies them).
    .status  status code to answer with: 400, or 505 for a well-formed but unsupported SIP version
    """

    def __init__(self, reason, message=None, status=400):
        super().__init__(reason)
        self.reason = reason
        self.message = message
        self.status = status


def is_token(s):
    """True if s is a non-empty RFC 3261 token."""
    return bool(s) and not s.strip(TOKEN_CHARS)


def parse_digits(s, limit, what):
    """Parse a run of ASCII digits as an int in [0, limit]; ParseError naming `what` otherwise."""
    if not s or s.strip(_DIGITS):
        raise ParseError("bad " + what)
    if len(s) > 10:
        raise ParseError(what + " out of range")
    n = int(s)
    if n > limit:
        raise ParseError(what + " out of range")
    return n


def _all_in(s, chars):
    # str.strip(chars) runs in C on both runtimes: nothing left means every char is in `chars`
    return not s.strip(chars)


def check_scheme(uri):
    """Check that uri starts with `scheme:` (RFC 3261 §25.1 absoluteURI); returns the lower-case scheme."""
    c = uri.find(":")
    if c < 1:
        raise ParseError("URI without scheme")
    if c == 3 and uri[:3] == "sip" and len(uri) > 4:
        return "sip"  # fast path
    scheme = uri[:c]
    if scheme[0] not in _ALNUM or scheme[0] in "0123456789" or not _all_in(scheme, _SCHEME_CHARS):
        raise ParseError("bad URI scheme")
    if c == len(uri) - 1:
        raise ParseError("empty URI")
    return scheme.lower()


def check_host(host):
    """Validate a hostname, IPv4 address or bracketed IPv6 reference (RFC 3261 §25.1 host);
    returns it lower-cased."""
    if not host:
        raise ParseError("empty host")
    if host[0] == "[":
        if host[-1] != "]" or not _is_ipv6(host[1:-1]):
            raise ParseError("bad IPv6 reference")
        return host.lower()
    if host.strip(_HOST_CHARS):
        raise ParseError("bad host")
    if "-" not in host and ".." not in host and host[0] != "." and host[-1] != ".":
        # fast paths (every label non-empty, no hyphens): a name whose toplabel starts with a letter,
        # or a dotted quad; anything else is left to the full rules below
        if host[host.rfind(".") + 1] not in _DIGITS:
            return host.lower()
        if not host.strip(_DIGITS_DOT) and _is_ipv4(host.split(".")):
            return host
    labels = host.split(".")
    if len(labels) > 1 and not labels[-1]:
        labels.pop()  # fully qualified name with a trailing dot
    last = labels[-1]
    if last and not last.strip(_DIGITS):
        if host[-1] == "." or not _is_ipv4(labels):
            raise ParseError("bad IPv4 address")
        return host
    for label in labels:
        if not label or label[0] == "-" or label[-1] == "-":
            raise ParseError("bad host")
    if last[0] in _DIGITS:
        raise ParseError("bad host")  # toplabel starts with a letter
    return host.lower()


def _is_ipv4(parts):
    if len(parts) != 4:
        return False
    for p in parts:
        # 1 to 3 digits, at most 255 (for three digits a string comparison is a numeric one)
        n = len(p)
        if not n or n > 3 or p.strip(_DIGITS) or (n == 3 and p > "255"):
            return False
    return True


def _is_ipv6(a):
    """RFC 4291 §2.2 text forms: 8 groups, or fewer with one '::', optionally ending in IPv4."""
    if not a or not _all_in(a, _IPV6_CHARS):
        return False
    groups = a.split(":")
    if len(groups) > 9:
        return False
    need = 8
    if "." in groups[-1]:
        if not _is_ipv4(groups[-1].split(".")):
            return False
        groups.pop()
        need = 6
    if "." in a[:a.rfind(":")]:
        return False
    dbl = a.count("::")
    if dbl > 1:
        return False
    if dbl == 1:
        # '::' leaves empty strings at its place and possibly at either end
        if a[:2] == "::":
            groups = groups[1:]
        if a[-2:] == "::":
            groups = groups[:-1]
        empties = 0
        for g in groups:
            if not g:
                empties += 1
            elif len(g) > 4:
                return False
        return empties == 1 and len(groups) - 1 < need
    if len(groups) != need:
        return False
    for g in groups:
        if not g or len(g) > 4:
            return False
    return True


def split_hostport(hp):
    """`host[:port]` (host may be `[v6]`) -> (host lower-case, port int or None); LWS around ':' allowed.

    Memoised: the same sent-by / host appears in several headers of one message and of a peer's messages."""
    return memoized(_memo_hp, hp, _split_hostport)


def _split_hostport(hp):
    hp = hp.strip()
    if hp[:1] == "[":
        e = hp.find("]")
        if e < 0:
            raise ParseError("bad IPv6 reference")
        host = hp[:e + 1]
        rest = hp[e + 1:].strip()
        if not rest:
            return check_host(host), None
        if rest[0] != ":":
            raise ParseError("bad host")
        port = rest[1:].strip()
    else:
        c = hp.find(":")
        if c < 0:
            return check_host(hp), None
        host = hp[:c].rstrip()
        port = hp[c + 1:].strip()
    return check_host(host), parse_digits(port, _MAX_PORT, "port")


def unquote(s, i):
    """Parse the quoted-string starting at s[i] == '"'; returns (unescaped content, index after it)."""
    n = len(s)
    j = i + 1
    e = s.find('"', j)
    if e >= 0 and s.find("\\", j, e) < 0:
        return s[j:e], e + 1  # fast path: no escapes
    out = []
    while j < n:
        c = s[j]
        if c == '"':
            return "".join(out), j + 1
        if c == "\\":
            j += 1
            if j >= n:
                break
            c = s[j]
            if c in "\r\n":
                raise ParseError("bad escape in quoted string")
        out.append(c)
        j += 1
    raise ParseError("unterminated quoted string")


def quote(s):
    """Render s as a quoted-string (escaping backslash and double quote)."""
    if "\\" in s or '"' in s:
        s = s.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + s + '"'


def split_quoted(s, sep):
    """s.split(sep) that does not split inside quoted strings or <...>."""
    if '"' not in s and "<" not in s:
        return s.split(sep)
    out = []
    start = 0
    i = 0
    n = len(s)
    inq = False
    ina = False
    while i < n:
        c = s[i]
        if inq:
            if c == "\\":
                i += 1
            elif c == '"':
                inq = False
        elif c == '"':
            inq = True
        elif ina:
            if c == ">":
                ina = False
        elif c == "<":
            ina = True
        elif c == sep:
            out.append(s[start:i])
            start = i + 1
        i += 1
    if inq:
        raise ParseError("unterminated quoted string")
    if ina:
        raise ParseError("unterminated <")
    out.append(s[start:])
    return out


def split_list(value):
    """Split a comma-separated header value into stripped elements (RFC 3261 §7.3.1)."""
    if "," not in value:
        return [value]
    out = []
    for part in split_quoted(value, ","):
        part = part.strip()
        if not part:
            raise ParseError("empty list element")
        out.append(part)
    return out


def parse_params(s):
    """`;a=b;c;d="x"` (one leading ';' optional) -> dict with lower-case names, flags -> None.

    Values are kept as written (quoted strings keep their quotes); LWS around ';' and '=' is allowed.
    """
    s = s.strip()
    if not s:
        return {}
    if s[0] == ";":
        s = s[1:]
    return params_of(s)


def params_of(s):
    """Parameters after the first ';' (so `a=b;c`): like parse_params without the leading ';'."""
    if not s.strip():
        raise ParseError("empty parameter")
    params = {}
    for p in (s.split(";") if '"' not in s and "<" not in s else split_quoted(s, ";")):
        e = p.find("=")
        if e < 0:
            name = p.strip()
            value = None
        else:
            name = p[:e].strip()
            value = p[e + 1:].strip()
            if not value:
                raise ParseError("empty parameter value")
            if value[0] == '"':
                end = unquote(value, 0)[1]
                if end != len(value):
                    raise ParseError("bad quoted parameter")
            elif value.strip(_PVALUE_CHARS):
                raise ParseError("bad parameter value")
        if not name or name.strip(TOKEN_CHARS):
            raise ParseError("bad parameter" if name else "empty parameter")
        params[name.lower()] = value
    return params


def params_str(params):
    """Render a params dict back to `;a=b;c`."""
    out = ""
    for k in params:
        v = params[k]
        if v is None:
            out += ";" + k
        else:
            out += ";" + k + "=" + v
    return out


class Via:
    """One Via element (RFC 3261 §20.42): SIP/2.0/<transport> host[:port] *(;param)."""

    def __init__(self, transport, host, port=None, params=None):
        self.transport = transport
        self.host = host
        self.port = port
        self.params = params if params is not None else {}

    @property
    def branch(self):
        return self.params.get("branch")

    def to_str(self):
        s = "SIP/2.0/" + self.transport + " " + self.host
        if self.port is not None:
            s += ":" + str(self.port)
        return s + params_str(self.params)

    def __repr__(self):
        return "<Via " + self.to_str() + ">"


def parse_via(value):
    """Parse one Via element; ParseError on anything that is not `SIP/2.0/transport sent-by params`.

    Each call returns a new Via (callers may change its params); repeated values are served from a small
    memo, since the parser, the transaction layer and the TU all parse the same top Via."""
    r = parse_via_shared(value)
    return Via(r.transport, r.host, r.port, dict(r.params))


def parse_via_shared(value):
    """parse_via without the copy: the Via returned is shared with later callers and must not be changed."""
    return memoized(_memo_via, value, _parse_via)


def _parse_via(value):
    v = value.strip()
    if v[:8] == "SIP/2.0/":
        rest = v[8:].lstrip()
    else:
        i1 = v.find("/")
        i2 = v.find("/", i1 + 1) if i1 >= 0 else -1
        if i2 < 0:
            raise ParseError("bad Via")
        if v[:i1].strip().upper() != "SIP" or v[i1 + 1:i2].strip() != "2.0":
            raise ParseError("bad Via protocol")
        rest = v[i2 + 1:].lstrip()
    j = rest.find(" ")
    t = rest.find("\t")
    if t >= 0 and (j < 0 or t < j):
        j = t
    if j < 0:
        j = len(rest)
    transport = rest[:j]
    if not transport or transport.strip(TOKEN_CHARS):
        raise ParseError("bad Via transport")
    rest = rest[j:].strip()
    if not rest:
        raise ParseError("Via without host")
    k = rest.find(";")
    if k >= 0:
        params = params_of(rest[k + 1:])
        rest = rest[:k]
    else:
        params = {}
    host, port = split_hostport(rest)
    ttl = params.get("ttl")
    if ttl is not None:
        parse_digits(ttl, 255, "Via ttl")
    return Via(transport.upper(), host, port, params)


class NameAddr:
    """A name-addr / addr-spec with header parameters (From, To, Contact, Route, ...; RFC 3261 §20.10)."""

    def __init__(self, uri, display=None, params=None):
        self.display = display
        self.uri = uri
        self.params = params if params is not None else {}

    @property
    def tag(self):
        return self.params.get("tag")

    def to_str(self):
        s = "<" + self.uri + ">"
        if self.display is not None:
            s = quote(self.display) + " " + s
        return s + params_str(self.params)

    def __repr__(self):
        return "<NameAddr " + self.to_str() + ">"


def parse_name_addr(value):
    """Parse `"Display" <uri>;params`, `Display <uri>;params` or `uri;params` (addr-spec).

    Each call returns a new NameAddr; repeated values are served from a small memo (see parse_via)."""
    r = parse_name_addr_shared(value)
    return NameAddr(r.uri, r.display, dict(r.params))


def parse_name_addr_shared(value):
    """parse_name_addr without the copy: the result is shared with later callers and must not be changed."""
    return memoized(_memo_addr, value, _parse_name_addr)


def _parse_name_addr(value):
    s = value.strip()
    if not s:
        raise ParseError("empty address")
    if s[0] == '"':
        display, i = unquote(s, 0)
        rest = s[i:].lstrip()
        if rest[:1] != "<":
            raise ParseError("display name without <URI>")
    elif s[0] == "<":
        display = None
        rest = s
    else:
        lt = s.find("<")
        if lt >= 0:
            d = s[:lt].strip()
            if d:
                if d.strip(_DISPLAY_CHARS):
                    raise ParseError("bad display name")
                display = " ".join(d.split())
            else:
                display = None
            rest = s[lt:]
        else:
            # addr-spec: a URI holding ',', '?' or ';' would have to be in <> (RFC 3261 §20.10)
            k = s.find(";")
            uri = s if k < 0 else s[:k].rstrip()
            for c in " \t?,<>\"":
                if c in uri:
                    raise ParseError("URI must be enclosed in <>")
            check_scheme(uri)
            return NameAddr(uri, None, params_of(s[k + 1:]) if k >= 0 else {})
    gt = rest.find(">")
    if gt < 0:
        raise ParseError("unterminated <")
    uri = rest[1:gt]
    if " " in uri or "\t" in uri or "<" in uri or '"' in uri:
        raise ParseError("bad URI in <>")
    check_scheme(uri)
    if gt + 1 == len(rest):
        return NameAddr(uri, display, {})
    after = rest[gt + 1:].strip()
    if not after:
        return NameAddr(uri, display, {})
    if after[0] != ";":
        raise ParseError("junk after <URI>")
    return NameAddr(uri, display, params_of(after[1:]))


def parse_cseq(value):
    """`CSeq: 4711 INVITE` -> (4711, "INVITE") (RFC 3261 §20.16; method kept as written, it is case-sensitive)."""
    parts = value.split()
    if len(parts) != 2:
        raise ParseError("bad CSeq")
    n = parse_digits(parts[0], _MAX_CSEQ, "CSeq")
    if not is_token(parts[1]):
        raise ParseError("bad CSeq method")
    return n, parts[1]
