"""The user store: user@domain -> digest HA1 values (MD5 and SHA-256, RFC 7616 §3.4.2), never a password.

Shared by the node (reads; `read_only=True`, it never rewrites a file the CLI may be appending to) and two
kinds of writers that may run at once: the CLI (`microwitch user add/remove/import`, `microwitch-node user
add`) and the web page. The journal is shared (journal.py): before every change a writer replays what the
others wrote since it loaded, so a handle that loaded before a password prompt never loses (or compacts
away) a user another writer added meanwhile. `refresh()` reloads when the backend's stamp (size, mtime,
inode) changed, so a running node sees CLI changes without a restart; the node calls it at most once a second.
"""
from microwitch.compat import const
from microwitch.store import ValidationError, StoreFull
from microwitch.store.journal import Journal
from microwitch.sip.digest import ha1_hex

MAX_USERS = const(10000)
_MAX_USER = const(64)
_MAX_DOMAIN = const(253)
_MAX_PASSWORD = const(256)
_MAX_REALM = const(128)
_USER_CHARS = "-_.!~*'()&=+$,;?/"  # RFC 3261 §25.1 unreserved marks and user-unreserved
_DOMAIN_CHARS = "-."
DEFAULT_NAME = "users.journal"


def _check_user(user):
    if not user:
        raise ValidationError("user", "the user part before '@' is empty")
    if len(user) > _MAX_USER:
        raise ValidationError("user", "longer than %d characters" % _MAX_USER)
    for ch in user:
        if not (("a" <= ch <= "z") or ("A" <= ch <= "Z") or ("0" <= ch <= "9") or ch in _USER_CHARS):
            raise ValidationError("user", "character %r is not allowed (letters, digits, %s)" % (ch, _USER_CHARS))


def _check_domain(domain):
    if not domain:
        raise ValidationError("domain", "the domain after '@' is empty")
    if len(domain) > _MAX_DOMAIN:
        raise ValidationError("domain", "longer than %d characters" % _MAX_DOMAIN)
    if domain[0] == "[":
        if domain[-1] != "]" or len(domain) < 4:
            raise ValidationError("domain", "an IPv6 address must be written [addr]")
        for ch in domain[1:-1]:
            if not (("0" <= ch <= "9") or ("a" <= ch <= "f") or ch in ":."):
                raise ValidationError("domain", "character %r is not allowed in an IPv6 address" % ch)
        return
    for ch in domain:
        if not (("a" <= ch <= "z") or ("0" <= ch <= "9") or ch in _DOMAIN_CHARS):
            raise ValidationError("domain", "character %r is not allowed (letters, digits, '-', '.')" % ch)
    if domain[0] in "-." or domain[-1] == "-" or ".." in domain:
        raise ValidationError("domain", "%r is not a host name" % domain)


def split_address(address):
    """'alice@example.org' -> ('alice', 'example.org') (domain lower-cased) or ValidationError."""
    if not isinstance(address, str) or "@" not in address:
        raise ValidationError("user", "expected user@domain, got %r" % (address,))
    if address[:4].lower() == "sip:":
        address = address[4:]
    user, _, domain = address.rpartition("@")
    domain = domain.lower()
    _check_user(user)
    _check_domain(domain)
    return user, domain


def _check_realm(realm):
    if not realm or len(realm) > _MAX_REALM:
        raise ValidationError("realm", "must be 1..%d characters" % _MAX_REALM)
    for ch in realm:
        if ch in '"\\' or ord(ch) < 32 or ord(ch) == 127:
            raise ValidationError("realm", "character %r is not allowed" % ch)


def _check_hex(field, value, n):
    if not isinstance(value, str) or len(value) != n:
        raise ValidationError(field, "must be %d hex digits" % n)
    for ch in value:
        if ch not in "0123456789abcdef":
            raise ValidationError(field, "must be lower-case hex digits")


class Users:
    def __init__(self, backend, name=DEFAULT_NAME, read_only=False, max_users=MAX_USERS):
        self.read_only = read_only
        self.max_users = max_users
        self._users = {}
        self.journal = Journal(backend, name, self._items, merge=self._merge)
        self._stamp = None

    def _items(self):
        return self._users.items()

    def _merge(self, records):
        """What other writers changed (journal.py); None: the file was replaced, reload it."""
        if records is None:
            self.load()
            return
        for k, v in records:
            if isinstance(v, dict) and isinstance(v.get("realm"), str):
                self._users[k] = v
            else:
                self._users.pop(k, None)

    def load(self):
        backend = self.journal.backend
        self._stamp = backend.stamp(self.journal.name)
        state = self.journal.load(repair=not self.read_only)
        users = {}
        for k, v in state.items():
            if isinstance(v, dict) and isinstance(v.get("realm"), str):
                users[k] = v
        self._users = users
        return len(users)

    def refresh(self):
        """Reload if the journal changed on the backend since the last load; True when reloaded."""
        st = self.journal.backend.stamp(self.journal.name)
        if st == self._stamp:
            return False
        self.load()
        return True

    # -- queries -----------------------------------------------------------------------------------------
    def get(self, address):
        return self._users.get(address)

    def __len__(self):
        return len(self._users)

    def addresses(self):
        return sorted(self._users)

    def ha1(self, user, domain, algorithm, realm):
        """HA1 hex for digest `algorithm` ("MD5"/"SHA-256"), or None (unknown user or other realm)."""
        rec = self._users.get(user + "@" + domain)
        if rec is None or rec.get("realm") != realm:
            return None
        return rec.get("sha256" if algorithm == "SHA-256" else "md5")

    # -- changes (CLI) -----------------------------------------------------------------------------------
    def _writable(self):
        if self.read_only:
            raise ValueError("user store opened read-only")
        self.journal.catch_up()  # decide on the file's users, not on what this handle loaded earlier

    def add(self, address, password, realm=None):
        """Add or replace a user; `realm` defaults to the domain. Returns the canonical 'user@domain'."""
        self._writable()
        user, domain = split_address(address)
        if not isinstance(password, str) or not password:
            raise ValidationError("password", "must not be empty")
        if len(password) > _MAX_PASSWORD:
            raise ValidationError("password", "longer than %d characters" % _MAX_PASSWORD)
        realm = domain if realm is None else realm
        _check_realm(realm)
        return self.set_ha1(user + "@" + domain, realm, ha1_hex("MD5", user, realm, password),
                            ha1_hex("SHA-256", user, realm, password))

    def set_ha1(self, address, realm, ha1_md5, ha1_sha256):
        """Store precomputed HA1 values (import from another system without passwords)."""
        self._writable()
        user, domain = split_address(address)
        _check_realm(realm)
        _check_hex("ha1_md5", ha1_md5, 32)
        _check_hex("ha1_sha256", ha1_sha256, 64)
        key = user + "@" + domain
        if key not in self._users and len(self._users) >= self.max_users:
            raise StoreFull("user store full (%d users)" % self.max_users)
        rec = {"realm": realm, "md5": ha1_md5, "sha256": ha1_sha256}
        self.journal.put(key, rec)
        self._users[key] = rec
        return key

    def remove(self, address):
        """Remove a user; False when there was none."""
        self._writable()
        user, domain = split_address(address)
        key = user + "@" + domain
        if key not in self._users:
            return False
        self.journal.delete(key)
        self._users.pop(key, None)  # (a reload inside delete may have applied it already)
        return True
