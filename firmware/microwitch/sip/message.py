"""SIP message parser and serializer (RFC 3261 §7, §20, §25).

`parse(data, stream=False)` turns one datagram (or one framed stream message) into a Message or raises
ParseError with a short reason; nothing else escapes. `frame(buf)` finds the length of the first
message in a TCP stream buffer. Header helpers (parse_via, parse_name_addr, ...) live in
microwitch.sip.headers and are re-exported here.

Decisions worth knowing:
- Encoding: the start line and header block must be UTF-8 (RFC 3261 §7.3.1 TEXT-UTF8); anything else
  is ParseError("header block is not UTF-8") with no partial message, so both runtimes behave the same
  (MicroPython only decodes UTF-8). NUL and bare CR or LF in the header block are refused. The body is
  bytes and never decoded.
- The method is kept as written (RFC 3261 §7.1: it is case-sensitive, "invite" is not INVITE); the
  version is accepted in any case and always stored as "SIP/2.0".
- parse() checks what the node relies on: every Via, From/To/Contact/Route/Record-Route/Path/
  Service-Route as name-addr, CSeq (number < 2**31, method = request method), Call-ID, Max-Forwards
  (<= 255), Expires (32-bit), Content-Length, a sip:/sips: Request-URI (no headers allowed); other
  URI schemes in the Request-URI are only checked for `scheme:` and left to parse_uri (lazily).
- Errors found after the Via/From/To/Call-ID/CSeq core is in hand carry the partial message (see
  ParseError) so the node can answer 400 (or 505 for another SIP version) with the reason.
- Leading CRLFs before the start line are skipped (RFC 3261 §7.5); frame() counts them.
"""
from microwitch.compat import const
from microwitch.sip.headers import (  # noqa: F401  (re-exported API)
    ParseError, Via, NameAddr, parse_via, parse_name_addr, parse_cseq, parse_params, split_list,
    is_token, parse_digits, check_scheme, quote, unquote, split_quoted, parse_via_shared, parse_name_addr_shared,
    TOKEN_CHARS)
from microwitch.sip.uri import parse_uri_shared

MAX_MESSAGE = const(65535)     # bytes: a bigger datagram or stream message is refused
MAX_HEADERS = const(100)       # header lines (after unfolding)
MAX_HEADER_LEN = const(4096)   # bytes (chars) of one header line after unfolding
_MAX_LINES = const(400)        # physical lines, counting folded continuations
_MAX_FORWARDS = const(255)
_MAX_EXPIRES = 4294967295      # RFC 3261 §20.19: delta-seconds fit 32 bits

# lower-case long and compact names -> canonical spelling (RFC 3261 §7.3.3 and §20, RFC 3265/3515/4028/3892)
_CANON = {}
for _n in ("Accept", "Accept-Contact", "Accept-Encoding", "Accept-Language", "Alert-Info", "Allow",
           "Allow-Events", "Authentication-Info", "Authorization", "Call-ID", "Call-Info", "Contact",
           "Content-Disposition", "Content-Encoding", "Content-Language", "Content-Length",
           "Content-Type", "CSeq", "Date", "Error-Info", "Event", "Expires", "From", "Identity",
           "Identity-Info", "In-Reply-To", "Max-Forwards", "MIME-Version", "Min-Expires", "Min-SE",
           "Organization", "P-Asserted-Identity", "P-Preferred-Identity", "Path", "Priority", "Privacy",
           "Proxy-Authenticate", "Proxy-Authorization", "Proxy-Require", "RAck", "Reason", "Record-Route",
           "Refer-To", "Referred-By", "Reject-Contact", "Reply-To", "Request-Disposition", "Require",
           "Retry-After", "Route", "RSeq", "Server", "Service-Route", "Session-Expires", "SIP-ETag",
           "SIP-If-Match", "Subject", "Subscription-State", "Supported", "Timestamp", "To",
           "Unsupported", "User-Agent", "Via", "Warning", "WWW-Authenticate"):
    _CANON[_n.lower()] = _n
for _c, _n in (("v", "Via"), ("f", "From"), ("t", "To"), ("i", "Call-ID"), ("m", "Contact"),
               ("l", "Content-Length"), ("c", "Content-Type"), ("k", "Supported"), ("s", "Subject"),
               ("e", "Content-Encoding"), ("o", "Event"), ("u", "Allow-Events"), ("r", "Refer-To"),
               ("b", "Referred-By"), ("x", "Session-Expires"), ("y", "Identity"), ("a", "Accept-Contact"),
               ("j", "Reject-Contact"), ("d", "Request-Disposition"), ("n", "Identity-Info")):
    _CANON[_c] = _n

# how the one-pass parser treats each header (RFC 3261 §7.3.1, §20): lists are split per element
_K_LIST = const(1)     # comma list, elements kept as written
_K_VIA = const(2)      # comma list of Via, each parsed
_K_ADDRS = const(3)    # comma list of name-addr, each parsed
_K_SINGLE = const(4)   # single-valued from here on: counted, a repeat is an error
_K_ADDR1 = const(5)    # From / To
_K_CALLID = const(6)
_KIND = {"Via": _K_VIA, "Contact": _K_ADDRS, "Route": _K_ADDRS, "Record-Route": _K_ADDRS,
         "Path": _K_ADDRS, "Service-Route": _K_ADDRS,
         "From": _K_ADDR1, "To": _K_ADDR1, "Call-ID": _K_CALLID, "CSeq": _K_SINGLE,
         "Max-Forwards": _K_SINGLE, "Content-Length": _K_SINGLE, "Expires": _K_SINGLE}
for _n in ("Allow", "Supported", "Require", "Proxy-Require", "Unsupported", "Accept", "Accept-Encoding",
           "Accept-Language", "In-Reply-To", "Allow-Events"):
    _KIND[_n] = _K_LIST
_CORE = ("Via", "From", "To", "Call-ID", "CSeq")
_K_OTHER = const(0)
# any spelling the parser meets most (canonical, lower-case, compact) -> (canonical name, kind): one lookup
_INFO = {}
for _l in _CANON:
    _n = _CANON[_l]
    _INFO[_l] = _INFO[_n] = (_n, _KIND.get(_n, _K_OTHER))


def _canon(name):
    """Canonical header name for any spelling; unknown names come back unchanged."""
    c = _CANON.get(name.lower())
    return c if c is not None else name


class Message:
    """A SIP request or response. Header names canonical, one [name, value] entry per list element."""

    def __init__(self, method=None, uri=None, status=None, reason="", headers=None, body=b""):
        self.method = method
        self.uri = uri
        self.status = status
        self.reason = reason
        self.version = "SIP/2.0"
        self.headers = headers if headers is not None else []
        self.body = body
        self.is_request = method is not None

    @classmethod
    def request(cls, method, uri, headers=None, body=b""):
        return cls(method, uri, None, "", _header_list(headers), bytes(body))

    @classmethod
    def response(cls, status, reason, headers=None, body=b""):
        return cls(None, None, status, reason, _header_list(headers), bytes(body))

    def get(self, name):
        """First value of header `name` (any case, compact form accepted) or None."""
        lname = name.lower()
        c = _CANON.get(lname)
        if c is not None:
            for h in self.headers:
                if h[0] == c:
                    return h[1]
        else:
            for h in self.headers:
                if h[0].lower() == lname:
                    return h[1]
        return None

    def get_all(self, name):
        """All values of header `name` in wire order."""
        lname = name.lower()
        c = _CANON.get(lname)
        if c is not None:
            return [h[1] for h in self.headers if h[0] == c]
        return [h[1] for h in self.headers if h[0].lower() == lname]

    def _matches(self, name):
        lname = name.lower()
        c = _CANON.get(lname)
        if c is not None:
            return lambda n: n == c
        return lambda n: n.lower() == lname

    def set(self, name, value):
        """Replace every `name` header by one with `value` (at the first one's place, else appended)."""
        m = self._matches(name)
        hs = self.headers
        for i in range(len(hs)):
            if m(hs[i][0]):
                hs[i] = [hs[i][0], value]
                self.headers = [h for j, h in enumerate(hs) if j <= i or not m(h[0])]
                return
        hs.append([_canon(name), value])

    def add(self, name, value, top=False):
        """Add a header entry: at the top of the existing ones of that name (top=True) or at the end."""
        entry = [_canon(name), value]
        if top:
            m = self._matches(name)
            for i in range(len(self.headers)):
                if m(self.headers[i][0]):
                    self.headers.insert(i, entry)
                    return
            self.headers.insert(0, entry)
        else:
            self.headers.append(entry)

    def remove(self, name):
        m = self._matches(name)
        self.headers = [h for h in self.headers if not m(h[0])]

    def remove_first(self, name):
        m = self._matches(name)
        for i in range(len(self.headers)):
            if m(self.headers[i][0]):
                del self.headers[i]
                return

    def to_bytes(self):
        """Serialize with CRLF line ends; Content-Length always written from len(body)."""
        body = self.body
        cl = "Content-Length: " + str(len(body))
        # every Content-Length entry becomes `cl` (and only those can: a name holds no ": ")
        lines = [cl if h[0] == "Content-Length" else h[0] + ": " + h[1] for h in self.headers]
        n = lines.count(cl)
        if n == 0:
            lines.append(cl)
        elif n > 1:  # keep the first one only
            i = lines.index(cl) + 1
            lines = lines[:i] + [line for line in lines[i:] if line != cl]
        if self.is_request:
            lines.insert(0, self.method + " " + self.uri + " " + self.version)
        else:
            lines.insert(0, self.version + " " + str(self.status) + " " + self.reason)
        flat = "".join(lines)
        if "\r" in flat or "\n" in flat:
            raise ValueError("CR or LF inside a start line or header value")
        lines.append("")
        lines.append("")
        return "\r\n".join(lines).encode() + body

    def __eq__(self, other):
        """Field equality; Content-Length entries are ignored (they are derived from the body)."""
        if not isinstance(other, Message):
            return False
        return (self.method == other.method and self.uri == other.uri and self.status == other.status
                and self.reason == other.reason and self.version == other.version
                and self.body == other.body and _no_cl(self.headers) == _no_cl(other.headers))

    def __ne__(self, other):
        return not self.__eq__(other)

    def __hash__(self):
        return hash((self.method, self.uri, self.status, self.reason))

    def __repr__(self):
        if self.is_request:
            return "<Message " + str(self.method) + " " + str(self.uri) + ">"
        return "<Message " + str(self.status) + " " + str(self.reason) + ">"


def _no_cl(headers):
    return [[h[0], h[1]] for h in headers if h[0] != "Content-Length"]


def _header_list(headers):
    out = []
    if headers is None:
        return out
    if hasattr(headers, "items"):
        headers = headers.items()
    for n, v in headers:
        out.append([_canon(n), v])
    return out


def _head_start(data):
    """Skip CRLFs before the start line (RFC 3261 §7.5)."""
    pos = 0
    n = len(data)
    while pos + 1 < n and data[pos] == 13 and data[pos + 1] == 10:
        pos += 2
    return pos


def _decode(head):
    try:
        text = head.decode()
    except (UnicodeError, ValueError):
        raise ParseError("header block is not UTF-8")
    if "\x00" in text:
        raise ParseError("NUL in header block")
    return text


def parse(data, stream=False):
    """Parse one SIP message from bytes. Returns a Message or raises ParseError (and nothing else)."""
    try:
        return _parse(data, stream)
    except ParseError:
        raise
    except MemoryError:
        raise
    except Exception as e:  # a parser bug must still end as a ParseError (contract with the adapter)
        err = ParseError("malformed message")
        err.internal = repr(e)
        raise err


def _parse(data, stream):
    if not isinstance(data, bytes):
        if not isinstance(data, (bytearray, memoryview)):
            raise ParseError("not bytes")
        data = bytes(data)
    if len(data) > MAX_MESSAGE:
        raise ParseError("message too large")
    pos = _head_start(data)
    end = data.find(b"\r\n\r\n", pos)
    if end < 0:
        raise ParseError("no blank line after headers")
    text = _decode(data[pos:end])
    lines = text.split("\r\n")
    nl = len(lines) - 1
    flat = "".join(lines)  # a CR or LF left once the CRLFs are gone is a bare one
    if "\r" in flat or "\n" in flat:
        raise ParseError("bare CR or LF")
    if nl > _MAX_LINES:  # physical lines; logical ones (MAX_HEADERS) are checked below
        raise ParseError("too many header lines")

    # start line (RFC 3261 §7.1, §7.2); checked fully after the headers so a 400 can be built
    start = lines[0]
    if len(start) > MAX_HEADER_LEN:
        raise ParseError("start line too long")
    msg = Message()
    start_err = None
    status_code = 400
    if start[:4].upper() == "SIP/":
        sp = start.find(" ")
        if sp < 0:
            raise ParseError("bad status line")
        version = start[:sp]
        rest = start[sp + 1:]
        sp = rest.find(" ")
        code = rest if sp < 0 else rest[:sp]
        msg.reason = "" if sp < 0 else rest[sp + 1:]
        if len(code) != 3:
            raise ParseError("bad status code")
        msg.status = parse_digits(code, 699, "status code")
        if msg.status < 100:
            raise ParseError("bad status code")
        msg.is_request = False
    else:
        parts = start.split(" ")
        if len(parts) < 3:
            raise ParseError("bad request line")
        if len(parts) != 3:
            start_err = "bad request line"
        msg.method = parts[0]
        msg.uri = parts[1] if len(parts) == 3 else " ".join(parts[1:-1])
        version = parts[-1]
        msg.is_request = True
        if start_err is None:
            if not msg.method or msg.method.strip(TOKEN_CHARS):
                start_err = "bad method"
            elif not msg.uri or msg.uri[0] == "<":
                start_err = "bad Request-URI"
    if version != "SIP/2.0":
        v = version.upper()
        if v == "SIP/2.0":
            pass
        elif v[:4] == "SIP/" and _is_version(v[4:]):
            start_err = start_err or "SIP version not supported"
            if start_err == "SIP version not supported":
                status_code = 505
        else:
            if not msg.is_request:
                raise ParseError("bad SIP version")
            start_err = start_err or "bad SIP version"

    # header lines, unfolding continuation lines (RFC 3261 §7.3.1)
    if "\r\n " in text or "\r\n\t" in text:
        hl = []
        for i in range(1, len(lines)):
            line = lines[i]
            c = line[:1]
            if c == " " or c == "\t":
                if not hl:
                    raise ParseError("folded start line")
                hl[-1] = hl[-1] + " " + line.strip()
            else:
                hl.append(line)
    else:
        hl = lines[1:]
    if len(hl) > MAX_HEADERS:
        raise ParseError("too many headers")

    # One pass: split lists, note single-valued headers (counts: name -> first value), parse every
    # Via now (a broken Via means no response can be routed: drop) and keep the first other error
    # for after the core check (then it is answerable with 400). The parsed values stay in the
    # helpers' memo, so the transaction layer and the TU get them back without parsing again.
    headers = msg.headers
    deferred = None
    counts = {}
    info_get = _INFO.get
    long_lines = len(text) > MAX_HEADER_LEN  # else no logical line can be longer than the limit
    for line in hl:
        if long_lines and len(line) > MAX_HEADER_LEN:
            raise ParseError("header line too long")
        raw, colon, value = line.partition(":")
        if not raw or not colon:
            raise ParseError("header without colon" if line else "empty header line")
        info = info_get(raw)
        if info is None:
            info = info_get(raw.lower())
            if info is None:
                raw = raw.rstrip()
                info = info_get(raw.lower())
                if info is None:
                    if not raw or raw.strip(TOKEN_CHARS):
                        raise ParseError("bad header name")
                    headers.append([raw, value.strip()])
                    continue
        name, kind = info
        value = value.strip()
        if kind == _K_OTHER:
            headers.append([name, value])
            continue
        if kind >= _K_SINGLE:
            headers.append([name, value])
            if name in counts:
                if deferred is None:
                    deferred = "multiple " + name
                continue
            counts[name] = value
            if kind == _K_ADDR1:
                try:
                    parse_name_addr_shared(value)
                except ParseError as e:
                    if deferred is None:
                        deferred = e.reason
            elif kind == _K_CALLID:
                if (not value or " " in value or "\t" in value) and deferred is None:
                    deferred = "bad Call-ID"
            continue
        if "," not in value:
            values = (value,)
        else:
            try:
                parts = split_quoted(value, ",")
            except ParseError as e:
                if kind == _K_VIA:
                    raise
                if deferred is None:
                    deferred = e.reason
                headers.append([name, value])
                continue
            values = []
            for v in parts:
                v = v.strip()
                if v:
                    values.append(v)
                elif deferred is None:
                    deferred = "empty element in " + name
        for v in values:
            headers.append([name, v])
            if kind == _K_VIA:
                parse_via_shared(v)
                counts["Via"] = 1
            elif kind == _K_ADDRS:
                if v != "*" or name != "Contact":
                    try:
                        parse_name_addr_shared(v)
                    except ParseError as e:
                        if deferred is None:
                            deferred = e.reason

    # headers a 400 needs (RFC 3261 §8.1.1, §8.2.6); without them the message is dropped
    for n in _CORE:
        if n not in counts:
            raise ParseError("missing " + n)

    # from here on the message can be answered with a 400 (see ParseError.message)
    try:
        if start_err is not None:
            raise ParseError(start_err, None, status_code)
        if deferred is not None:
            raise ParseError(deferred)
        cseq = parse_cseq(counts["CSeq"])
        if msg.is_request:
            if cseq[1] != msg.method:
                raise ParseError("CSeq method does not match request")
            scheme = check_scheme(msg.uri)
            if scheme == "sip" or scheme == "sips":
                if parse_uri_shared(msg.uri).headers:
                    raise ParseError("headers in Request-URI")
        v = counts.get("Max-Forwards")
        if v is not None:
            parse_digits(v, _MAX_FORWARDS, "Max-Forwards")
        v = counts.get("Expires")
        if v is not None:
            parse_digits(v, _MAX_EXPIRES, "Expires")
        body = data[end + 4:]
        v = counts.get("Content-Length")
        if v is not None:
            n = parse_digits(v, MAX_MESSAGE, "Content-Length")
            if len(body) < n:
                raise ParseError("body shorter than Content-Length")
            if len(body) > n:
                body = body[:n]
        elif stream:
            raise ParseError("missing Content-Length")
        msg.body = body
    except ParseError as e:
        e.message = msg
        raise
    return msg


def _is_version(v):
    """`1*DIGIT "." 1*DIGIT` (RFC 3261 §7.1 SIP-Version, after "SIP/")."""
    d = v.find(".")
    return 0 < d < len(v) - 1 and len(v) < 12 and not v.replace(".", "", 1).strip("0123456789")


def frame(buf):
    """Length of the first complete message at the start of a stream buffer (RFC 3261 §18.3), counting
    any CRLFs before it; 0 if more bytes are needed. ParseError if it can never be a message."""
    try:
        return _frame(buf)
    except ParseError:
        raise
    except MemoryError:
        raise
    except Exception as e:
        err = ParseError("malformed message")
        err.internal = repr(e)
        raise err


def _frame(buf):
    if not isinstance(buf, bytes):
        if not isinstance(buf, (bytearray, memoryview)):
            raise ParseError("not bytes")
        buf = bytes(buf)
    n = len(buf)
    pos = _head_start(buf)
    end = buf.find(b"\r\n\r\n", pos, pos + MAX_MESSAGE + 4)
    if end < 0:
        if n - pos > MAX_MESSAGE:
            raise ParseError("header block too large")
        return 0
    text = _decode(buf[pos:end])
    lines = text.split("\r\n")
    cl = None
    pending = False
    for i in range(1, len(lines)):
        line = lines[i]
        c = line[:1]
        if c == " " or c == "\t":
            if pending:
                cl += " " + line
            continue
        pending = False
        colon = line.find(":")
        if colon < 1:
            continue
        name = line[:colon].strip().lower()
        if name == "content-length" or name == "l":
            if cl is not None:
                raise ParseError("multiple Content-Length")
            cl = line[colon + 1:]
            pending = True
    if cl is None:
        raise ParseError("missing Content-Length")
    total = end + 4 + parse_digits(cl.strip(), MAX_MESSAGE, "Content-Length")
    if total - pos > MAX_MESSAGE:
        raise ParseError("message too large")
    return total if n >= total else 0


_RESP_COPY = {"Via": 1, "From": 2, "Call-ID": 2, "CSeq": 2, "To": 3}  # make_response: all Via, one of the others


def make_response(request, status, reason, to_tag=None):
    """Build a response to `request` (RFC 3261 §8.2.6): all Via in order, From, To (+ tag if given and
    absent), Call-ID, CSeq; empty body."""
    hs = []
    done = {}
    copy = _RESP_COPY.get
    for h in [h for h in request.headers if h[0] in _RESP_COPY]:
        n = h[0]
        k = copy(n)
        if k == 1:
            hs.append([n, h[1]])
            continue
        if n in done:
            continue  # a broken request may repeat single-valued headers: answer with the first
        done[n] = 1
        v = h[1]
        if k == 3 and to_tag is not None:
            try:
                has_tag = parse_name_addr_shared(v).tag is not None
            except ParseError:
                has_tag = True
            if not has_tag:
                v = v + ";tag=" + to_tag
        hs.append([n, v])
    return Message(None, None, status, reason, hs, b"")
