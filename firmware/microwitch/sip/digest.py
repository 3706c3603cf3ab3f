"""SIP digest authentication, server side (RFC 3261 §22, RFC 7616 §3, RFC 8760: SHA-256 before MD5).

Challenges offer `algorithm=SHA-256` then `algorithm=MD5` (order and subset configurable), both
`qop="auth"`, one nonce. Nonces need no state to verify: base64(ts ‖ seq ‖ rnd ‖ HMAC-SHA256(key, ts ‖ seq ‖
rnd)[:12]) with ts = 4-byte seconds of the monotonic clock, seq = 4-byte issue counter, rnd = 4 random bytes
(32 characters). The HMAC key is the
node secret plus 16 random bytes drawn at start, so nonces die with the process: the monotonic clock restarts
and the `nc` table is lost on a restart, and a pre-restart nonce must not come back as fresh. A nonce older
than `ttl_s` (or from the future, e.g. after a clock wrap) is answered with `stale=true`, which makes phones
retry without asking the user; so is a nonce that is not ours at all (most often one from before a restart).

Replay protection: the highest `nc` seen is kept per nonce (keyed by 30 bits of its issue counter, so no two
nonces of the last 2**30 share a key; ~20 bytes an entry) for up to `max_nonces` (MAX_NONCES) nonces; a
request whose `nc` is not above it is refused. When the table is full the entry used first is evicted and
its (timestamp, counter) raises a watermark: a nonce not in the table from before the watermark second may be
an evicted one, so it is refused too (stale=true: the phone just gets a fresh nonce). Within the watermark
second the counter orders nonces, so one issued after every evicted one is accepted on first use while it is
at most _FRESH_S seconds old (at thousands of registrations a second the table turns over within a second,
and nonces still in flight must not be refused); an older one is refused, as before. Only a verified
response touches the table, so a forger cannot burn a phone's nonce counts.

Only `qop=auth` is accepted. The RFC 2069 form (no qop, no nc, no cnonce) is refused: without `nc` a
captured request could be replayed for the whole nonce lifetime, and every SIP phone since RFC 3261 sends
qop when the challenge offers it. `-sess` algorithms and `auth-int` are not offered and refused.
"""
import struct
from binascii import hexlify, b2a_base64, a2b_base64

from microwitch.compat import const, md5, sha256
from microwitch.compat import tags_equal
from microwitch.sip.uri import parse_uri
from microwitch.sip.headers import ParseError

NONCE_TTL_S = const(300)
MAX_NONCES = const(4096)
_MAC_LEN = const(12)
_RND_LEN = const(8)  # bytes after the timestamp: 4-byte issue counter + 4 random bytes
_FRESH_S = const(2)  # a nonce from the watermark second is accepted on first use only while this young
_NONCE_RAW = const(24)  # 4 + 8 + 12 bytes -> 32 base64 characters, no padding
_NONCE_CHARS = const(32)
_MAX_AUTH_LEN = const(4096)
_MAX_PARAMS = const(24)
_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

ALGORITHMS = ("SHA-256", "MD5")  # offer order (RFC 8760 §2.4: the preferred algorithm first)


def _hash(algorithm):
    return sha256 if algorithm == "SHA-256" else md5


def h_hex(algorithm, text):
    """Lower-case hex digest of the UTF-8 text under the digest `algorithm` ("MD5" or "SHA-256")."""
    return hexlify(_hash(algorithm)(text.encode()).digest()).decode()


def ha1_hex(algorithm, username, realm, password):
    """HA1 = H(username ":" realm ":" password) (RFC 7616 §3.4.2); what the user store keeps."""
    return h_hex(algorithm, username + ":" + realm + ":" + password)


def response_hex(algorithm, ha1, nonce, nc, cnonce, qop, method, uri):
    """request-digest for qop=auth (RFC 7616 §3.4.1): H(HA1:nonce:nc:cnonce:qop:H(method:uri))."""
    ha2 = h_hex(algorithm, method + ":" + uri)
    return h_hex(algorithm, ha1 + ":" + nonce + ":" + nc + ":" + cnonce + ":" + qop + ":" + ha2)


def ct_equal(a, b):
    """Compare two str/bytes in time independent of where they differ."""
    if isinstance(a, str):
        a = a.encode()
    if isinstance(b, str):
        b = b.encode()
    if len(a) != len(b):
        return False
    return tags_equal(a, b)


def parse_credentials(value):
    """Parse an Authorization value 'Digest k=v, k="q,v", ...' into {lower-case name: str}.

    Returns None for anything that is not well-formed Digest credentials (never raises). Scans with
    str.find (C on both runtimes); only a quoted value holding a backslash is walked per character.
    """
    if not isinstance(value, str) or len(value) > _MAX_AUTH_LEN:
        return None
    s = value.strip()
    n = len(s)
    if s[:6].lower() != "digest" or (n > 6 and s[6] != " " and s[6] != "\t"):
        return None
    if "\\" not in s:
        out = _split_credentials(s)
        if out is not None:
            return out
    # the general scanner: exact for every input, also the ones the split above leaves to it
    i = 6
    out = {}
    count = 0
    while True:
        while i < n and s[i] in " \t,":
            i += 1
        if i >= n:
            break
        count += 1
        if count > _MAX_PARAMS:
            return None
        # name: up to '=', optionally followed by blanks; none of ' \t,"' inside
        e = s.find("=", i)
        if e < 0:
            return None
        name = s[i:e]
        if " " in name or "\t" in name:
            name = name.rstrip(" \t")
            if " " in name or "\t" in name:
                return None
        if not name or "," in name or '"' in name:
            return None
        name = name.lower()
        i = e + 1
        while i < n and s[i] in " \t":
            i += 1
        if i < n and s[i] == '"':
            e = s.find('"', i + 1)
            if e < 0:
                return None  # unterminated quoted string
            if s.find("\\", i + 1, e) < 0:
                val = s[i + 1:e]
                i = e + 1
            else:
                i, val = _unquote_escaped(s, i + 1)
                if i < 0:
                    return None
        else:
            # token: up to blank or ','
            j = s.find(",", i)
            if j < 0:
                j = n
            k = s.find(" ", i, j)
            if k >= 0:
                j = k
            k = s.find("\t", i, j)
            if k >= 0:
                j = k
            val = s[i:j]
            if not val:
                return None
            i = j
        if name in out:
            return None  # RFC 7616 §3.4: each directive at most once
        out[name] = val
        while i < n and s[i] in " \t":
            i += 1
        if i < n and s[i] != ",":
            return None
    return out or None


def _split_credentials(s):
    """parse_credentials for the usual shape, with no backslash in s: the quotes then delimit the quoted
    values exactly. Each quoted value is replaced by a \\x01 mark and the rest is one comma list of
    `name=token` / `name=<mark>`. Returns the dict, or None for anything else (the caller's scanner then
    decides, so this only has to be right when it answers)."""
    parts = s[6:].split('"')
    if not len(parts) & 1 or "\x01" in s:
        return None  # an odd number of quotes, or a mark character of its own
    quoted = parts[1::2]
    q = 0
    out = {}
    flat = "\x01".join(parts[0::2]).lstrip(" \t")  # the blanks after "Digest" separate too
    if ", " in flat:
        flat = flat.replace(", ", ",")  # a blank after a comma is always a separator
    blanks = " " in flat or "\t" in flat
    for item in flat.split(","):
        name, eq, val = item.partition("=")
        if not eq:
            if item.strip(" \t"):
                return None
            continue  # empty list element
        if blanks:
            name = name.strip(" \t")
            val = val.strip(" \t")
            if " " in name or "\t" in name or " " in val or "\t" in val:
                return None
        if not name or not val or "\x01" in name:
            return None
        if val == "\x01":
            val = quoted[q]
            q += 1
        elif "\x01" in val:
            return None
        name = name.lower()
        if name in out:
            return None
        out[name] = val
    if not out or len(out) > _MAX_PARAMS:
        return None
    return out


def _unquote_escaped(s, i):
    """Quoted-string content from s[i] (after the opening quote) with backslash escapes:
    (index after the closing quote, text), or (-1, None) if it does not end."""
    n = len(s)
    buf = []
    while i < n:
        ch = s[i]
        if ch == "\\":
            if i + 1 >= n:
                return -1, None
            buf.append(s[i + 1])
            i += 2
            continue
        if ch == '"':
            return i + 1, "".join(buf)
        buf.append(ch)
        i += 1
    return -1, None


class AuthResult:
    """Outcome of DigestAuth.check: `.ok`, `.username` (when ok), `.stale`, `.reason` (log text)."""

    def __init__(self, ok, reason, username=None, stale=False, algorithm=None):
        self.ok = ok
        self.reason = reason
        self.username = username
        self.stale = stale
        self.algorithm = algorithm


def _uri_same(a, b):
    if a == b:
        return True
    try:
        ua = parse_uri(a)
        ub = parse_uri(b)
    except ParseError:
        return False
    return (ua.scheme == ub.scheme and ua.user == ub.user and ua.host == ub.host and
            (ua.port or 0) == (ub.port or 0))


class DigestAuth:
    """Challenges and verifies digest credentials for one realm (sans-I/O: now_ms and rand injected)."""

    def __init__(self, realm, node_secret, rand, ttl_s=NONCE_TTL_S, max_nonces=MAX_NONCES, algorithms=ALGORITHMS):
        for a in algorithms:
            if a not in ALGORITHMS:
                raise ValueError("digest algorithm %r: use SHA-256 and/or MD5" % (a,))
        if not algorithms:
            raise ValueError("digest algorithms: at least one of SHA-256, MD5")
        # challenge order (RFC 8760 §2.4: preferred first); only these are accepted. Clients that read only
        # the first challenge (sipp 3.6, old pjsip) need MD5 first: config `digest_algorithms`.
        self.algorithms = tuple(algorithms)
        self.realm = realm
        self.ttl_s = ttl_s
        self._rand = rand
        key = bytes(node_secret) + rand(16)
        if len(key) > 64:
            key = sha256(key).digest()
        key = key + bytes(64 - len(key))
        # HMAC-SHA256 (RFC 2104) with the key's pads prepared once: two hash calls per nonce
        self._ipad = bytes(b ^ 0x36 for b in key)
        self._opad = bytes(b ^ 0x5C for b in key)
        self._max = max_nonces
        # replay table, sized for small heaps: key = 30 bits of the nonce's random part (a small int on
        # MicroPython, no allocation) -> highest nc. A key collision only makes two nonces share one
        # counter, which can refuse a good request (the phone gets stale=true and a fresh nonce) but never
        # accepts a replay. About 20 bytes per entry on a 32-bit port.
        self._nc = {}
        self._ring_k = [-1] * max_nonces  # keys in order of first use; the oldest is evicted
        self._ring_t = [0] * max_nonces  # their nonce timestamps
        self._ring_s = [0] * max_nonces  # and issue counters
        self._pos = 0
        self._watermark = -1  # highest (ts, counter) among evicted nonces
        self._watermark_seq = -1
        self._issued = 0  # issue counter of the next nonce (32 bits, wraps)

    # -- nonces --------------------------------------------------------------------------------------------
    def _mac(self, head):
        return sha256(self._opad + sha256(self._ipad + head).digest()).digest()[:_MAC_LEN]

    def new_nonce(self, now_ms):
        seq = self._issued
        self._issued = (seq + 1) & 0xFFFFFFFF
        head = struct.pack(">II", (now_ms // 1000) & 0xFFFFFFFF, seq) + self._rand(_RND_LEN - 4)
        return b2a_base64(head + self._mac(head)).decode().strip()

    def _nonce_ts(self, nonce):
        """(timestamp s, replay-table key, issue counter) if `nonce` is one of ours, else None."""
        if len(nonce) != _NONCE_CHARS or nonce.strip(_B64):
            return None
        try:
            raw = a2b_base64(nonce.encode())
        except ValueError:
            return None
        if len(raw) != _NONCE_RAW:
            return None
        head = raw[:4 + _RND_LEN]
        if not ct_equal(self._mac(head), raw[4 + _RND_LEN:]):
            return None
        ts, seq = struct.unpack(">II", raw[:8])
        return ts, seq & 0x3FFFFFFF, seq

    def challenges(self, now_ms, stale=False, opaque=None):
        """WWW-Authenticate values (SHA-256 then MD5 by default), sharing one fresh nonce."""
        nonce = self.new_nonce(now_ms)
        tail = ', qop="auth"'
        if opaque is not None:
            tail += ', opaque="' + opaque + '"'
        if stale:
            tail += ", stale=true"
        return ['Digest realm="%s", nonce="%s", algorithm=%s%s' % (self.realm, nonce, alg, tail)
                for alg in self.algorithms]

    def _seen(self, key, ts, nc, seq=None, now_s=0):
        """True if `nc` is fresh for the nonce with table `key` (and record it); False for a replay or a
        nonce that may have been evicted. `seq` is the nonce's issue counter (None: unknown, ordered last
        within its second), `now_s` the time of use (see _FRESH_S)."""
        last = self._nc.get(key)
        if last is not None:
            if nc <= last:
                return False
            self._nc[key] = nc
            return True
        wm = self._watermark
        if ts <= wm:
            if ts < wm or seq is None or seq <= self._watermark_seq or now_s - ts > _FRESH_S:
                return False
        if seq is None:
            seq = 0xFFFFFFFF
        pos = self._pos
        old = self._ring_k[pos]
        if old >= 0 and self._nc.pop(old, None) is not None:
            t = self._ring_t[pos]
            if t > wm or (t == wm and self._ring_s[pos] > self._watermark_seq):
                self._watermark = t
                self._watermark_seq = self._ring_s[pos]
        self._ring_k[pos] = key
        self._ring_t[pos] = ts
        self._ring_s[pos] = seq
        self._pos = (pos + 1) % self._max
        self._nc[key] = nc
        return True

    # -- verification --------------------------------------------------------------------------------------
    def pick(self, values):
        """The parsed credentials among Authorization `values` meant for our realm, or None."""
        for v in values:
            c = parse_credentials(v)
            if c is not None and c.get("realm") == self.realm:
                return c
        return None

    def check(self, method, request_uri, creds, get_ha1, now_ms):
        """Verify parsed credentials `creds` (from pick) for a request; get_ha1(username, algorithm) -> hex|None.

        Order: syntax, nonce authenticity, response hash, then age and nc, so a stale or replayed nonce is
        only reported stale when the password was right (the phone retries silently with a fresh nonce).
        """
        if creds is None:
            return AuthResult(False, "no credentials for realm")
        username = creds.get("username")
        nonce = creds.get("nonce")
        uri = creds.get("uri")
        resp = creds.get("response")
        if not username or nonce is None or uri is None or resp is None:
            return AuthResult(False, "credentials incomplete")
        alg = creds.get("algorithm", "MD5").upper()
        if alg not in self.algorithms:
            return AuthResult(False, "unsupported algorithm")
        if creds.get("qop") != "auth":
            return AuthResult(False, "qop=auth required")
        nc_text = creds.get("nc", "")
        cnonce = creds.get("cnonce")
        if len(nc_text) != 8 or not cnonce:
            return AuthResult(False, "bad nc or cnonce")
        try:
            nc = int(nc_text, 16)
        except ValueError:
            return AuthResult(False, "bad nc or cnonce")
        if not _uri_same(uri, request_uri):
            return AuthResult(False, "uri does not match Request-URI")
        tk = self._nonce_ts(nonce)
        if tk is None:
            return AuthResult(False, "nonce not ours", stale=True)
        ts = tk[0]
        ha1 = get_ha1(username, alg)
        if ha1 is None:
            # same work and answer as a wrong password: do not tell which user names exist
            ha1 = "0" * (64 if alg == "SHA-256" else 32)
            response_hex(alg, ha1, nonce, nc_text, cnonce, "auth", method, uri)
            return AuthResult(False, "bad credentials")
        want = response_hex(alg, ha1, nonce, nc_text, cnonce, "auth", method, uri)
        if not ct_equal(want, resp.lower()):
            return AuthResult(False, "bad credentials")
        age = (now_ms // 1000) - ts
        if age < 0 or age > self.ttl_s:
            return AuthResult(False, "nonce expired", stale=True)
        if nc < 1 or not self._seen(tk[1], ts, nc, tk[2], now_ms // 1000):
            return AuthResult(False, "nonce count replayed", stale=True)
        return AuthResult(True, "ok", username=username, algorithm=alg)
