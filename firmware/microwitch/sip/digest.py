"""SIP digest authentication, server side (RFC 3261 §22, RFC 7616 §3, RFC 8760: SHA-256 before MD5).

Challenges offer `algorithm=SHA-256` then `algorithm=MD5` (order and subset configurable), both
`qop="auth"`, one nonce. Nonces need no state to verify: base64(ts ‖ rnd ‖ HMAC-SHA256(key, ts ‖ rnd)[:12])
with ts = 4-byte seconds of the monotonic clock, rnd = 8 random bytes (32 characters). The HMAC key is the
node secret plus 16 random bytes drawn at start, so nonces die with the process: the monotonic clock restarts
and the `nc` table is lost on a restart, and a pre-restart nonce must not come back as fresh. A nonce older
than `ttl_s` (or from the future, e.g. after a clock wrap) is answered with `stale=true`, which makes phones
retry without asking the user; so is a nonce that is not ours at all (most often one from before a restart).

Replay protection: the highest `nc` seen is kept per nonce (keyed by 30 bits of its random part, ~20 bytes
an entry) for up to `max_nonces` (MAX_NONCES) nonces; a request whose `nc` is not above it is refused. When
the table is full the entry used first is evicted and its timestamp raises a watermark: a nonce at or below
the watermark that is not in the table may be an evicted one, so it is refused too (stale=true: the phone
just gets a fresh nonce). Only a verified response touches the table, so a forger cannot burn a phone's
nonce counts.

Only `qop=auth` is accepted. The RFC 2069 form (no qop, no nc, no cnonce) is refused: without `nc` a
captured request could be replayed for the whole nonce lifetime, and every SIP phone since RFC 3261 sends
qop when the challenge offers it. `-sess` algorithms and `auth-int` are not offered and refused.
"""
import struct
from binascii import hexlify, b2a_base64, a2b_base64

from microwitch.compat import const, md5, sha256
from microwitch.compat import hmac
from microwitch.sip.uri import parse_uri
from microwitch.sip.headers import ParseError

NONCE_TTL_S = const(300)
MAX_NONCES = const(4096)
_MAC_LEN = const(12)
_RND_LEN = const(8)
_NONCE_RAW = const(24)  # 4 + 8 + 12 bytes -> 32 base64 characters, no padding
_NONCE_CHARS = const(32)
_MAX_AUTH_LEN = const(4096)
_MAX_PARAMS = const(24)
_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_TOKEN_END = " \t,="

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
    r = 0
    for i in range(len(a)):
        r |= a[i] ^ b[i]
    return r == 0


def parse_credentials(value):
    """Parse an Authorization value 'Digest k=v, k="q,v", ...' into {lower-case name: str}.

    Returns None for anything that is not well-formed Digest credentials (never raises).
    """
    if not isinstance(value, str) or len(value) > _MAX_AUTH_LEN:
        return None
    s = value.strip()
    n = len(s)
    i = 0
    while i < n and s[i] not in " \t":
        i += 1
    if s[:i].lower() != "digest":
        return None
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
        j = i
        while j < n and s[j] not in _TOKEN_END and s[j] != '"':
            j += 1
        name = s[i:j].lower()
        if not name:
            return None
        i = j
        while i < n and s[i] in " \t":
            i += 1
        if i >= n or s[i] != "=":
            return None
        i += 1
        while i < n and s[i] in " \t":
            i += 1
        if i < n and s[i] == '"':
            i += 1
            buf = []
            while True:
                if i >= n:
                    return None  # unterminated quoted string
                ch = s[i]
                if ch == "\\":
                    if i + 1 >= n:
                        return None
                    buf.append(s[i + 1])
                    i += 2
                    continue
                if ch == '"':
                    i += 1
                    break
                buf.append(ch)
                i += 1
            val = "".join(buf)
        else:
            j = i
            while j < n and s[j] not in " \t,":
                j += 1
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
        self._key = bytes(node_secret) + rand(16)
        self._max = max_nonces
        # replay table, sized for small heaps: key = 30 bits of the nonce's random part (a small int on
        # MicroPython, no allocation) -> highest nc. A key collision only makes two nonces share one
        # counter, which can refuse a good request (the phone gets stale=true and a fresh nonce) but never
        # accepts a replay. About 20 bytes per entry on a 32-bit port.
        self._nc = {}
        self._ring_k = [-1] * max_nonces  # keys in order of first use; the oldest is evicted
        self._ring_t = [0] * max_nonces  # their nonce timestamps
        self._pos = 0
        self._watermark = -1  # highest ts among evicted nonces

    # -- nonces --------------------------------------------------------------------------------------------
    def _mac(self, head):
        return hmac(sha256, self._key, head)[:_MAC_LEN]

    def new_nonce(self, now_ms):
        head = struct.pack(">I", (now_ms // 1000) & 0xFFFFFFFF) + self._rand(_RND_LEN)
        return b2a_base64(head + self._mac(head)).decode().strip()

    def _nonce_ts(self, nonce):
        """(timestamp s, replay-table key) if `nonce` is one of ours, else None."""
        if len(nonce) != _NONCE_CHARS:
            return None
        for ch in nonce:
            if ch not in _B64:
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
        return struct.unpack(">I", raw[:4])[0], struct.unpack(">I", raw[4:8])[0] & 0x3FFFFFFF

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

    def _seen(self, key, ts, nc):
        """True if `nc` is fresh for the nonce with table `key` (and record it); False for a replay or a
        nonce that may have been evicted."""
        last = self._nc.get(key)
        if last is not None:
            if nc <= last:
                return False
            self._nc[key] = nc
            return True
        if ts <= self._watermark:
            return False
        pos = self._pos
        old = self._ring_k[pos]
        if old >= 0 and self._nc.pop(old, None) is not None and self._ring_t[pos] > self._watermark:
            self._watermark = self._ring_t[pos]
        self._ring_k[pos] = key
        self._ring_t[pos] = ts
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
        if nc < 1 or not self._seen(tk[1], ts, nc):
            return AuthResult(False, "nonce count replayed", stale=True)
        return AuthResult(True, "ok", username=username, algorithm=alg)
