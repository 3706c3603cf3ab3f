"""DNS messages (RFC 1035 §4): encode a query, decode a response, with name compression (§4.1.4) and hard limits.

Sans-I/O. `decode(data, udp)` returns a `Message` or raises `DnsError(reason)` and nothing else: a compression
pointer that does not point strictly backwards (so loops are impossible) or exceeds `_MAX_HOPS`, a name over 255
octets, a datagram over 512 octets (we never advertise EDNS0), a record running past its RDATA or the message,
or too many records are all rejected with a reason that names the problem. `check_reply` adds the checks a
resolver needs against its own query: the ID, QR, the question echoed back, and TC (truncated: retry over TCP).

Names are text, lower case, without the trailing dot (the root is ""). Record data by type:
A/AAAA -> address text; SRV -> (priority, weight, port, target); NAPTR -> (order, preference, flags, services,
regexp, replacement); CNAME -> name; SOA -> (mname, rname, serial, refresh, retry, expire, minimum); other -> bytes.
"""
from microwitch.compat import const

A = const(1)
NS = const(2)
CNAME = const(5)
SOA = const(6)
AAAA = const(28)
SRV = const(33)
NAPTR = const(35)
OPT = const(41)
IN = const(1)

NOERROR = const(0)
FORMERR = const(1)
SERVFAIL = const(2)
NXDOMAIN = const(3)
NOTIMP = const(4)
REFUSED = const(5)

MAX_UDP = const(512)        # RFC 1035 §4.2.1: without EDNS0 a UDP reply is at most 512 octets
MAX_TCP = const(65535)      # RFC 1035 §4.2.2: two-octet length prefix
MAX_NAME = const(255)       # §2.3.4, octets on the wire
MAX_LABEL = const(63)
_MAX_HOPS = const(16)       # compression pointers followed for one name (each must also point backwards)
MAX_RECORDS = const(64)     # answer + authority + additional records decoded from one message
_HEADER = const(12)

TYPE_NAMES = {A: "A", NS: "NS", CNAME: "CNAME", SOA: "SOA", AAAA: "AAAA", SRV: "SRV", NAPTR: "NAPTR", OPT: "OPT"}
RCODE_NAMES = {NOERROR: "NOERROR", FORMERR: "FORMERR", SERVFAIL: "SERVFAIL", NXDOMAIN: "NXDOMAIN",
               NOTIMP: "NOTIMP", REFUSED: "REFUSED"}


class DnsError(Exception):
    """A message we refuse; `reason` says why in words fit for a log line."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


class Record:
    __slots__ = ("name", "type", "cls", "ttl", "data")

    def __init__(self, name, rtype, ttl, data, cls=IN):
        self.name = name
        self.type = rtype
        self.cls = cls
        self.ttl = ttl
        self.data = data

    def __repr__(self):
        return "Record(%r, %s, %d, %r)" % (self.name, TYPE_NAMES.get(self.type, self.type), self.ttl, self.data)


class Message:
    __slots__ = ("id", "flags", "questions", "answers", "authority", "additional")

    def __init__(self, mid, flags, questions=None, answers=None, authority=None, additional=None):
        self.id = mid
        self.flags = flags
        self.questions = questions or []
        self.answers = answers or []
        self.authority = authority or []
        self.additional = additional or []

    @property
    def rcode(self):
        return self.flags & 0xF

    @property
    def tc(self):
        return bool(self.flags & 0x0200)

    @property
    def qr(self):
        return bool(self.flags & 0x8000)


# -- decoding ------------------------------------------------------------------------------------------------
def _u16(data, i):
    return (data[i] << 8) | data[i + 1]


def _u32(data, i):
    return (data[i] << 24) | (data[i + 1] << 16) | (data[i + 2] << 8) | data[i + 3]


def _name(data, i):
    """(name, offset after the name in the original position). §4.1.4 pointers must point strictly before the
    label that holds them, so following them always terminates; `_MAX_HOPS` bounds the work as well."""
    n = len(data)
    labels = []
    total = 1
    end = -1
    hops = 0
    while True:
        if i >= n:
            raise DnsError("name runs past the end of the message")
        ln = data[i]
        if ln == 0:
            if end < 0:
                end = i + 1
            return ".".join(labels), end
        kind = ln & 0xC0
        if kind == 0xC0:
            if i + 1 >= n:
                raise DnsError("compression pointer runs past the end of the message")
            ptr = ((ln & 0x3F) << 8) | data[i + 1]
            if ptr >= i:
                raise DnsError("compression pointer at %d does not point backwards (loop)" % i)
            hops += 1
            if hops > _MAX_HOPS:
                raise DnsError("more than %d compression pointers in one name" % _MAX_HOPS)
            if end < 0:
                end = i + 2
            i = ptr
            continue
        if kind:
            raise DnsError("reserved label type 0x%02x at %d" % (kind, i))
        if i + 1 + ln > n:
            raise DnsError("label runs past the end of the message")
        total += ln + 1
        if total > MAX_NAME:
            raise DnsError("name longer than %d octets" % MAX_NAME)
        chars = []
        for b in data[i + 1:i + 1 + ln]:
            if b <= 0x20 or b >= 0x7F or b == 0x2E:
                raise DnsError("name has a byte 0x%02x we do not accept" % b)
            if 0x41 <= b <= 0x5A:
                b += 0x20
            chars.append(chr(b))
        labels.append("".join(chars))
        i += 1 + ln


def _charstr(data, i, limit):
    """RFC 1035 §3.3 <character-string>: (text, next offset)."""
    if i >= limit:
        raise DnsError("character-string runs past its record")
    ln = data[i]
    if i + 1 + ln > limit:
        raise DnsError("character-string runs past its record")
    return "".join([chr(b) for b in data[i + 1:i + 1 + ln]]), i + 1 + ln


def ip6_text(b):
    """RFC 5952 text of 16 address bytes (longest run of zero groups shortened to ::)."""
    g = [(b[k] << 8) | b[k + 1] for k in range(0, 16, 2)]
    best, blen, cur, clen = -1, 0, -1, 0
    for k in range(8):
        if g[k] == 0:
            if cur < 0:
                cur, clen = k, 0
            clen += 1
            if clen > blen:
                best, blen = cur, clen
        else:
            cur = -1
    if blen < 2:
        return ":".join(["%x" % x for x in g])
    head = ":".join(["%x" % x for x in g[:best]])
    tail = ":".join(["%x" % x for x in g[best + blen:]])
    return head + "::" + tail


def _rdata(data, rtype, i, rdlen):
    end = i + rdlen
    if rtype == A:
        if rdlen != 4:
            raise DnsError("A record with %d octets of data" % rdlen)
        return "%d.%d.%d.%d" % (data[i], data[i + 1], data[i + 2], data[i + 3])
    if rtype == AAAA:
        if rdlen != 16:
            raise DnsError("AAAA record with %d octets of data" % rdlen)
        return ip6_text(data[i:end])
    if rtype == SRV:
        if rdlen < 7:
            raise DnsError("SRV record too short")
        target, j = _name(data, i + 6)
        out = (_u16(data, i), _u16(data, i + 2), _u16(data, i + 4), target)
    elif rtype == NAPTR:
        if rdlen < 7:
            raise DnsError("NAPTR record too short")
        flags, j = _charstr(data, i + 4, end)
        services, j = _charstr(data, j, end)
        regexp, j = _charstr(data, j, end)
        repl, j = _name(data, j)
        out = (_u16(data, i), _u16(data, i + 2), flags.lower(), services.upper(), regexp, repl)
    elif rtype == CNAME or rtype == NS:
        out, j = _name(data, i)
    elif rtype == SOA:
        mname, j = _name(data, i)
        rname, j = _name(data, j)
        if j + 20 > end:
            raise DnsError("SOA record too short")
        out = (mname, rname, _u32(data, j), _u32(data, j + 4), _u32(data, j + 8), _u32(data, j + 12),
               _u32(data, j + 16))
        j += 20
    else:
        return bytes(data[i:end])
    if j != end:
        raise DnsError("%s record data length does not match its content" % TYPE_NAMES.get(rtype, rtype))
    return out


def decode(data, udp=True):
    """Decode one DNS message (UDP datagram, or a TCP message without its length prefix) or raise DnsError."""
    n = len(data)
    if udp and n > MAX_UDP:
        raise DnsError("oversized UDP message (%d octets, limit %d without EDNS0)" % (n, MAX_UDP))
    if n > MAX_TCP:
        raise DnsError("oversized message (%d octets)" % n)
    if n < _HEADER:
        raise DnsError("message shorter than its 12-octet header")
    mid = _u16(data, 0)
    flags = _u16(data, 2)
    qd, an, ns, ar = _u16(data, 4), _u16(data, 6), _u16(data, 8), _u16(data, 10)
    if qd > 1:
        raise DnsError("%d questions (we ask one)" % qd)
    if an + ns + ar > MAX_RECORDS:
        raise DnsError("%d records (limit %d)" % (an + ns + ar, MAX_RECORDS))
    msg = Message(mid, flags)
    i = _HEADER
    for _ in range(qd):
        name, i = _name(data, i)
        if i + 4 > n:
            raise DnsError("question runs past the end of the message")
        msg.questions.append((name, _u16(data, i), _u16(data, i + 2)))
        i += 4
    if flags & 0x0200:
        return msg  # truncated: the rest may be cut anywhere; the caller retries over TCP
    for count, out in ((an, msg.answers), (ns, msg.authority), (ar, msg.additional)):
        for _ in range(count):
            name, i = _name(data, i)
            if i + 10 > n:
                raise DnsError("record header runs past the end of the message")
            rtype, cls, ttl, rdlen = _u16(data, i), _u16(data, i + 2), _u32(data, i + 4), _u16(data, i + 8)
            i += 10
            if i + rdlen > n:
                raise DnsError("record data runs past the end of the message")
            if ttl & 0x80000000:
                ttl = 0  # RFC 2181 §8: a TTL with the top bit set is treated as zero
            if rtype == OPT:
                out.append(Record(name, rtype, 0, bytes(data[i:i + rdlen]), cls))
            else:
                out.append(Record(name, rtype, ttl, _rdata(data, rtype, i, rdlen), cls))
            i += rdlen
    if i != n:
        raise DnsError("%d octets of garbage after the last record" % (n - i))
    return msg


def check_reply(msg, qid, name, qtype):
    """RFC 5452 §9.1-style acceptance of a reply to our query (qid, name, qtype); raise DnsError if it is not."""
    if msg.id != qid:
        raise DnsError("reply ID %d does not match query ID %d" % (msg.id, qid))
    if not msg.qr:
        raise DnsError("a query, not a reply")
    if len(msg.questions) != 1 or msg.questions[0][0] != name or msg.questions[0][1] != qtype:
        raise DnsError("reply does not echo our question")


# -- encoding ------------------------------------------------------------------------------------------------
def _put16(out, v):
    out.append((v >> 8) & 0xFF)
    out.append(v & 0xFF)


def _put32(out, v):
    _put16(out, (v >> 16) & 0xFFFF)
    _put16(out, v & 0xFFFF)


def _labels(name):
    if name == "" or name == ".":
        return []
    if name.endswith("."):
        name = name[:-1]
    parts = name.split(".")
    total = 1
    for p in parts:
        if not p or len(p) > MAX_LABEL:
            raise DnsError("bad label in name %r" % name[:80])
        for ch in p:
            if ord(ch) <= 0x20 or ord(ch) >= 0x7F:
                raise DnsError("name %r has a character a DNS name cannot carry" % name[:80])
        total += len(p) + 1
    if total > MAX_NAME:
        raise DnsError("name longer than %d octets" % MAX_NAME)
    return parts


def _put_name(out, name, table):
    """Write `name`, compressing against suffixes already written (table: lower-case suffix -> offset); a
    table of None writes it uncompressed."""
    parts = _labels(name)
    for k in range(len(parts)):
        suffix = ".".join(parts[k:]).lower()
        if table is not None:
            off = table.get(suffix)
            if off is not None:
                _put16(out, 0xC000 | off)
                return
            if len(out) < 0x3FFF:
                table[suffix] = len(out)
        p = parts[k].encode()
        out.append(len(p))
        out.extend(p)
    out.append(0)


def _put_charstr(out, s):
    b = s.encode()
    if len(b) > 255:
        raise DnsError("character-string longer than 255 octets")
    out.append(len(b))
    out.extend(b)


def _ip4(text):
    parts = text.split(".")
    if len(parts) != 4:
        raise DnsError("bad IPv4 address %r" % text)
    return bytes([int(p) for p in parts])


def ip6_bytes(text):
    """16 bytes of an IPv6 address text (no embedded IPv4 form)."""
    if "::" in text:
        head, tail = text.split("::", 1)
        h = [x for x in head.split(":") if x]
        t = [x for x in tail.split(":") if x]
        groups = h + ["0"] * (8 - len(h) - len(t)) + t
    else:
        groups = text.split(":")
    if len(groups) != 8:
        raise DnsError("bad IPv6 address %r" % text)
    out = bytearray()
    for g in groups:
        _put16(out, int(g, 16))
    return bytes(out)


def _put_record(out, rec, table):
    _put_name(out, rec.name, table)
    _put16(out, rec.type)
    _put16(out, rec.cls)
    _put32(out, rec.ttl)
    at = len(out)
    out.extend(b"\x00\x00")
    d = rec.data
    if rec.type == A:
        out.extend(_ip4(d))
    elif rec.type == AAAA:
        out.extend(ip6_bytes(d))
    elif rec.type == SRV:
        _put16(out, d[0])
        _put16(out, d[1])
        _put16(out, d[2])
        _put_name(out, d[3], None)  # RFC 2782: the SRV target is not compressed
    elif rec.type == NAPTR:
        _put16(out, d[0])
        _put16(out, d[1])
        _put_charstr(out, d[2])
        _put_charstr(out, d[3])
        _put_charstr(out, d[4])
        _put_name(out, d[5], None)
    elif rec.type == CNAME or rec.type == NS:
        _put_name(out, d, table)
    elif rec.type == SOA:
        _put_name(out, d[0], table)
        _put_name(out, d[1], table)
        for v in d[2:7]:
            _put32(out, v)
    else:
        out.extend(d)
    rdlen = len(out) - at - 2
    out[at] = rdlen >> 8
    out[at + 1] = rdlen & 0xFF


def encode(msg, compress=True):
    """Wire form of a Message (queries, and replies for tests and test servers)."""
    out = bytearray()
    _put16(out, msg.id)
    _put16(out, msg.flags)
    for sec in (msg.questions, msg.answers, msg.authority, msg.additional):
        _put16(out, len(sec))
    table = {} if compress else None
    for name, qtype, cls in msg.questions:
        _put_name(out, name, table)
        _put16(out, qtype)
        _put16(out, cls)
    for sec in (msg.answers, msg.authority, msg.additional):
        for rec in sec:
            _put_record(out, rec, table)
    return bytes(out)


def query(qid, name, qtype):
    """A standard recursive query (RD set) for one (name, type) in class IN."""
    return encode(Message(qid, 0x0100, [(name.lower(), qtype, IN)]))


def tcp_frame(data):
    """RFC 1035 §4.2.2: a two-octet length prefix for TCP."""
    return bytes([len(data) >> 8, len(data) & 0xFF]) + data
