"""Sessions, CSRF tokens and per-source login back-off for the web page. Sans-I/O: `now` is ms, `rand(n)`
gives random bytes.

- Sessions: random 128-bit ids in an HttpOnly, SameSite=Strict cookie; idle and absolute timeouts; at most
  MAX_SESSIONS (the oldest is dropped for a new login).
- CSRF (synchronizer token bound to the cookie): a form carries HMAC(key, cookie value); a post whose token
  does not match the cookie it came with is refused. Before login the cookie is a random pre-session value.
- Login back-off per source address, never per account: each wrong password doubles the wait before that
  address may try again (1 s, 2 s, 4 s ... capped at BACKOFF_MAX_MS); the owner on another address is not
  slowed, and a right password clears the address's count.
"""
from microwitch.compat import const, hmac, sha256, tags_equal
from binascii import hexlify

MAX_SESSIONS = const(8)
SESSION_IDLE_MS = const(1800000)       # 30 min without a request ends a session
SESSION_MAX_MS = const(43200000)       # 12 h after login at most
MAX_SOURCES = const(256)               # back-off table entries (addresses with recent wrong passwords)
BACKOFF_FREE = const(1)                # wrong passwords before any wait (a typo costs nothing)
BACKOFF_BASE_MS = const(1000)
BACKOFF_MAX_MS = const(60000)
BACKOFF_FORGET_MS = const(3600000)     # an address's count is forgotten after an hour without failures

SESSION_COOKIE = "mw_s"
PRE_COOKIE = "mw_pre"


def _hex(b):
    return hexlify(b).decode()


def cookie_header(name, value, max_age=None):
    h = "%s=%s; Path=/; HttpOnly; SameSite=Strict" % (name, value)
    if max_age is not None:
        h += "; Max-Age=%d" % max_age
    return h


def _valid_cookie_value(v):
    if not v or len(v) != 32:
        return False
    for ch in v:
        if ch not in "0123456789abcdef":
            return False
    return True


class Security:
    def __init__(self, rand, key=None):
        self.rand = rand
        self.key = key or rand(32)
        self.sessions = {}   # id -> [created, last]
        self.failures = {}   # source -> [count, next_allowed_ms, last_failure_ms]

    # -- cookies and CSRF ----------------------------------------------------------------------------------
    def new_cookie_value(self):
        return _hex(self.rand(16))

    def csrf_for(self, cookie_value):
        return _hex(hmac(sha256, self.key, b"csrf:" + cookie_value.encode()))[:32]

    def csrf_ok(self, cookie_value, token):
        if not _valid_cookie_value(cookie_value) or not isinstance(token, str) or len(token) != 32:
            return False
        return tags_equal(self.csrf_for(cookie_value).encode(), token.encode())

    @staticmethod
    def pre_value(cookies):
        v = cookies.get(PRE_COOKIE)
        return v if _valid_cookie_value(v) else None

    # -- sessions ------------------------------------------------------------------------------------------
    def login(self, now):
        """A new session id (the oldest session goes when the table is full)."""
        self._expire(now)
        if len(self.sessions) >= MAX_SESSIONS:
            oldest = None
            for sid, rec in self.sessions.items():
                if oldest is None or rec[1] < self.sessions[oldest][1]:
                    oldest = sid
            del self.sessions[oldest]
        sid = self.new_cookie_value()
        self.sessions[sid] = [now, now]
        return sid

    def session(self, cookies, now):
        """The valid session id from the request's cookies (its idle timer restarts), or None."""
        sid = cookies.get(SESSION_COOKIE)
        if not _valid_cookie_value(sid):
            return None
        rec = self.sessions.get(sid)
        if rec is None:
            return None
        if now - rec[1] > SESSION_IDLE_MS or now - rec[0] > SESSION_MAX_MS:
            del self.sessions[sid]
            return None
        rec[1] = now
        return sid

    def logout(self, sid):
        self.sessions.pop(sid, None)

    def logout_all(self):
        self.sessions.clear()

    def _expire(self, now):
        for sid in list(self.sessions):
            rec = self.sessions[sid]
            if now - rec[1] > SESSION_IDLE_MS or now - rec[0] > SESSION_MAX_MS:
                del self.sessions[sid]

    # -- login back-off --------------------------------------------------------------------------------------
    def wait_ms(self, source, now):
        """How long `source` must still wait before its next password is even checked (0: go ahead)."""
        rec = self.failures.get(source)
        if rec is None:
            return 0
        if now - rec[2] > BACKOFF_FORGET_MS:
            del self.failures[source]
            return 0
        return rec[1] - now if rec[1] > now else 0

    def failed(self, source, now):
        rec = self.failures.get(source)
        if rec is None:
            if len(self.failures) >= MAX_SOURCES:
                self._evict(now)
            rec = self.failures[source] = [0, now, now]
        rec[0] += 1
        rec[2] = now
        over = rec[0] - BACKOFF_FREE
        if over > 0:
            delay = BACKOFF_BASE_MS << min(over - 1, 16)
            rec[1] = now + (delay if delay < BACKOFF_MAX_MS else BACKOFF_MAX_MS)
        return rec[1] - now

    def succeeded(self, source):
        self.failures.pop(source, None)

    def _evict(self, now):
        for s in list(self.failures):
            if now - self.failures[s][2] > BACKOFF_FORGET_MS:
                del self.failures[s]
        if len(self.failures) >= MAX_SOURCES:
            # full of recent offenders: drop the one whose wait ends first (it is the least slowed)
            first = None
            for s, rec in self.failures.items():
                if first is None or rec[1] < self.failures[first][1]:
                    first = s
            del self.failures[first]
