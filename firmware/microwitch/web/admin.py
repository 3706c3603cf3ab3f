"""The admin password of the web page: salted PBKDF2-HMAC-SHA256 in its own journal (`web.journal`) in the
state directory, written with the same discipline as the user store (append, then sync before answering).

Record "admin": {"alg": "pbkdf2-sha256", "iter": N, "salt": hex, "hash": hex}. The iteration count is stored
with the hash so it can be raised later without breaking old records. PBKDF2_ITERATIONS is sized so one
check takes well under a second on wasm MicroPython (measured: ~115,000 iterations/s there, see README.md).
"""
from binascii import hexlify, unhexlify

from microwitch.compat import const, tags_equal
from microwitch.store.journal import Journal
from microwitch.web.pbkdf2 import pbkdf2_sha256

PBKDF2_ITERATIONS = const(60000)
MIN_PASSWORD = const(10)
MAX_PASSWORD = const(128)
_SALT = const(16)
DEFAULT_NAME = "web.journal"


def password_error(pw):
    """Why `pw` cannot be the admin password, or None."""
    if not pw:
        return "enter a password"
    if len(pw) < MIN_PASSWORD:
        return "use at least %d characters" % MIN_PASSWORD
    if len(pw) > MAX_PASSWORD:
        return "use at most %d characters" % MAX_PASSWORD
    return None


class AdminStore:
    def __init__(self, backend, rand, iterations=PBKDF2_ITERATIONS, name=DEFAULT_NAME):
        self.rand = rand
        self.iterations = iterations
        self._state = {}
        self.journal = Journal(backend, name, self._items)

    def _items(self):
        return self._state.items()

    def load(self):
        self._state = self.journal.load(repair=True)
        return self

    def is_set(self):
        rec = self._state.get("admin")
        return isinstance(rec, dict) and isinstance(rec.get("hash"), str)

    def set_password(self, pw):
        err = password_error(pw)
        if err:
            raise ValueError(err)
        salt = self.rand(_SALT)
        rec = {"alg": "pbkdf2-sha256", "iter": self.iterations, "salt": hexlify(salt).decode(),
               "hash": hexlify(pbkdf2_sha256(pw.encode(), salt, self.iterations)).decode()}
        self.journal.put("admin", rec)
        self.journal.backend.sync()  # durable before the page says it is set
        self._state["admin"] = rec

    def check(self, pw):
        rec = self._state.get("admin")
        if not isinstance(rec, dict) or not isinstance(pw, str) or len(pw) > MAX_PASSWORD:
            return False
        try:
            salt = unhexlify(rec["salt"])
            want = unhexlify(rec["hash"])
            n = int(rec["iter"])
        except (KeyError, ValueError, TypeError):
            return False
        if n < 1 or n > 10000000:
            return False
        return tags_equal(pbkdf2_sha256(pw.encode(), salt, n), want)
