"""SIP, SIPS and tel URIs (RFC 3261 §19.1, RFC 3966) and the registrar's address-of-record key.

`parse_uri(s)` returns a URI or raises ParseError; the user part is percent-decoded (and re-escaped by
`to_str`), the host lower-cased, parameters keep their values as written under lower-case names.
"""
from microwitch.sip.headers import (
    ParseError, check_scheme, split_hostport, params_str, memoized, _ALNUM)

_HEX = "0123456789abcdef"
# characters a user part may carry unescaped: unreserved / user-unreserved (RFC 3261 §25.1)
_USER_CHARS = _ALNUM + "-_.!~*'()&=+$,;?/"
_PASSWORD_CHARS = _ALNUM + "-_.!~*'()&=+$,"
_USER_RAW = _ALNUM + "-_.!~*'()&=+$,;?/%"  # as written: escapes checked by unescape
_PASSWORD_RAW = _ALNUM + "-_.!~*'()&=+$,%"
# paramchar / hnv chars, plus '%' for escapes
_PARAM_CHARS = _ALNUM + "-_.!~*'()[]/:&+$%"
_HDR_CHARS = _ALNUM + "-_.!~*'()[]/?:+$%"
_TEL_CHARS = "0123456789abcdefABCDEF*#+-.()"
_TEL_VISUAL = "-.()"
_memo = [{}, {}]  # recent parse_uri results (see headers.memoized)


class URI:
    """A parsed sip:/sips:/tel: URI. For tel:, `user` holds the number and `host` is None."""

    def __init__(self, scheme, user=None, host=None, port=None, params=None, headers=None, password=None):
        self.scheme = scheme
        self.user = user
        self.password = password
        self.host = host
        self.port = port
        self.params = params if params is not None else {}
        self.headers = headers if headers is not None else {}

    def to_str(self):
        if self.scheme == "tel":
            return "tel:" + self.user + params_str(self.params)
        s = self.scheme + ":"
        if self.user is not None:
            s += escape(self.user, _USER_CHARS)
            if self.password is not None:
                s += ":" + escape(self.password, _PASSWORD_CHARS)
            s += "@"
        s += self.host
        if self.port is not None:
            s += ":" + str(self.port)
        s += params_str(self.params)
        if self.headers:
            sep = "?"
            for k in self.headers:
                s += sep + k + "=" + self.headers[k]
                sep = "&"
        return s

    def __eq__(self, other):
        return (isinstance(other, URI) and self.scheme == other.scheme and self.user == other.user
                and self.password == other.password and self.host == other.host
                and self.port == other.port and self.params == other.params
                and self.headers == other.headers)

    def __ne__(self, other):
        return not self.__eq__(other)

    def __hash__(self):
        return hash((self.scheme, self.user, self.host, self.port))

    def __repr__(self):
        return "<URI " + self.to_str() + ">"


def unescape(s):
    """Percent-decode s (RFC 3261 §19.1.2); the result must be UTF-8. ParseError on a bad escape."""
    if "%" not in s:
        return s
    out = bytearray()
    i = 0
    n = len(s)
    while i < n:
        c = s[i]
        if c == "%":
            h = s[i + 1:i + 3].lower()
            if len(h) != 2 or h[0] not in _HEX or h[1] not in _HEX:
                raise ParseError("bad % escape in URI")
            out.append(int(h, 16))
            i += 3
        else:
            out.extend(c.encode())
            i += 1
    try:
        return bytes(out).decode()
    except (UnicodeError, ValueError):
        raise ParseError("escaped URI is not UTF-8")


def escape(s, allowed):
    """Percent-encode every character of s not in the string `allowed` (as UTF-8 bytes)."""
    if not s.strip(allowed):
        return s  # nothing to escape (the common case)
    out = []
    for c in s:
        if c in allowed:
            out.append(c)
        else:
            for b in c.encode():
                out.append("%" + _HEX[b >> 4].upper() + _HEX[b & 15].upper())
    return "".join(out)


def _check_chars(s, allowed, what):
    # every char of s must be in `allowed` (non-ASCII must be %-escaped, RFC 3261 §19.1.2)
    if s.strip(allowed):
        raise ParseError("bad character in URI " + what)


def _uri_params(s):
    params = {}
    for p in s.split(";"):
        e = p.find("=")
        if e < 0:
            name = p
            value = None
        else:
            name = p[:e]
            value = p[e + 1:]
            _check_chars(value, _PARAM_CHARS, "parameter")
        if not name:
            raise ParseError("empty URI parameter")
        _check_chars(name, _PARAM_CHARS, "parameter")
        params[name.lower()] = value
    return params


def parse_uri(s):
    """Parse a sip:, sips: or tel: URI; ParseError("unsupported URI scheme") for any other scheme.

    Each call returns a new URI (callers may change it); repeated strings are served from a small memo,
    since one message's Request-URI, To and Contact URIs are parsed by several layers."""
    u = parse_uri_shared(s)
    return URI(u.scheme, u.user, u.host, u.port, dict(u.params), dict(u.headers), u.password)


def parse_uri_shared(s):
    """parse_uri without the copy: the URI returned is shared with later callers and must not be changed."""
    if not isinstance(s, str):
        raise ParseError("URI is not text")
    return memoized(_memo, s, _parse)


def _parse(s):
    if " " in s or "\t" in s or "\r" in s or "\n" in s or "<" in s or ">" in s or '"' in s:
        raise ParseError("bad character in URI")
    scheme = check_scheme(s)
    rest = s[len(scheme) + 1:]
    if scheme == "sip" or scheme == "sips":
        return _parse_sip(scheme, rest)
    if scheme == "tel":
        return _parse_tel(rest)
    raise ParseError("unsupported URI scheme")


def _parse_sip(scheme, rest):
    user = None
    password = None
    at = rest.find("@")
    if at >= 0:
        userinfo = rest[:at]
        rest = rest[at + 1:]
        c = userinfo.find(":")
        if c >= 0:
            pw = userinfo[c + 1:]
            _check_chars(pw, _PASSWORD_RAW, "password")
            password = unescape(pw)
            userinfo = userinfo[:c]
        if not userinfo:
            raise ParseError("empty URI user")
        if userinfo.strip(_USER_RAW):
            raise ParseError("bad character in URI user")
        user = unescape(userinfo) if "%" in userinfo else userinfo
    headers = {}
    q = rest.find("?")
    if q >= 0:
        for h in rest[q + 1:].split("&"):
            e = h.find("=")
            if e < 1:
                raise ParseError("bad URI header")
            name = h[:e]
            value = h[e + 1:]
            _check_chars(name, _HDR_CHARS, "header")
            _check_chars(value, _HDR_CHARS, "header")
            headers[name] = value
        rest = rest[:q]
    params = {}
    k = rest.find(";")
    if k >= 0:
        params = _uri_params(rest[k + 1:])
        rest = rest[:k]
    host, port = split_hostport(rest)
    return URI(scheme, user, host, port, params, headers, password)


def _parse_tel(rest):
    k = rest.find(";")
    number = rest if k < 0 else rest[:k]
    if not number or not _all_tel(number):
        raise ParseError("bad telephone number")
    params = {}
    if k >= 0:
        params = _uri_params(rest[k + 1:])
    return URI("tel", number, None, None, params)


def _all_tel(s):
    return not s.strip(_TEL_CHARS)


def aor_key(uri):
    """Canonical address-of-record key (RFC 3261 §10.3): `sip:user@host`, sips folded to sip, host
    lower-case, user canonically escaped, no password/port/params. tel: URIs give `tel:<digits>`.
    Accepts a URI or a string (ParseError if it does not parse)."""
    if isinstance(uri, str):
        uri = parse_uri(uri)
    if uri.scheme == "tel":
        n = uri.user
        for c in _TEL_VISUAL:
            n = n.replace(c, "")
        return "tel:" + n
    if uri.user is None:
        return "sip:" + uri.host
    return "sip:" + escape(uri.user, _USER_CHARS) + "@" + uri.host


def is_ip_literal(host):
    """True for an IPv6 or dotted-quad IPv4 literal (brackets already stripped): a host that needs no DNS
    (RFC 3263 §4.2) and whose address never changes."""
    if ":" in host:
        return True
    parts = host.split(".")
    if len(parts) != 4:
        return False
    for p in parts:
        if not p or not p.isdigit() or int(p) > 255:
            return False
    return True
