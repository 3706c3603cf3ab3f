"""PBX accounts: a secure user's insecure identity on the PBX beside the node (the GNU SIP Witch bridge).

user@domain -> {"ext": extension on the PBX, "realm": the PBX's digest realm, "md5"/"sha256": HA1 for it}.
Like users.py: only HA1 is kept (enough to answer the PBX's challenges, never a password), the same journal
discipline, read-only in the node with `refresh()` so CLI changes apply without a restart; shared between
the CLI and the web page like users.journal (a writer replays the others' changes before its own).
"""
from microwitch.compat import const
from microwitch.store import ValidationError, StoreFull
from microwitch.store.journal import Journal
from microwitch.store.users import split_address, _check_realm
from microwitch.sip.digest import ha1_hex

MAX_ACCOUNTS = const(1000)
_MAX_EXT = const(32)
_MAX_PASSWORD = const(256)
DEFAULT_NAME = "pbx.journal"


def check_extension(ext):
    if not isinstance(ext, str) or not ext or len(ext) > _MAX_EXT:
        raise ValidationError("extension", "must be 1..%d characters" % _MAX_EXT)
    for ch in ext:
        if not (ch.isdigit() or ("a" <= ch <= "z") or ("A" <= ch <= "Z") or ch in "-_.+*#"):
            raise ValidationError("extension", "character %r is not allowed" % ch)


class PbxAccounts:
    def __init__(self, backend, name=DEFAULT_NAME, read_only=False, max_accounts=MAX_ACCOUNTS):
        self.read_only = read_only
        self.max_accounts = max_accounts
        self._acc = {}
        self._by_ext = {}
        self.journal = Journal(backend, name, self._items, merge=self._merge)
        self._stamp = None

    def _items(self):
        return self._acc.items()

    def _merge(self, records):
        """What other writers changed (journal.py); None: the file was replaced, reload it."""
        if records is None:
            self.load()
            return
        for k, v in records:
            old = self._acc.pop(k, None)
            if old is not None and self._by_ext.get(old["ext"]) == k:
                del self._by_ext[old["ext"]]
            if isinstance(v, dict) and isinstance(v.get("ext"), str) and isinstance(v.get("realm"), str):
                self._acc[k] = v
                self._by_ext[v["ext"]] = k

    def _writable(self):
        if self.read_only:
            raise ValueError("PBX account store opened read-only")
        self.journal.catch_up()  # decide on the file's accounts, not on what this handle loaded earlier

    def load(self):
        self._stamp = self.journal.backend.stamp(self.journal.name)
        state = self.journal.load(repair=not self.read_only)
        acc = {}
        for k, v in state.items():
            if isinstance(v, dict) and isinstance(v.get("ext"), str) and isinstance(v.get("realm"), str):
                acc[k] = v
        self._acc = acc
        self._by_ext = dict((v["ext"], k) for k, v in acc.items())
        return len(acc)

    def refresh(self):
        """Reload if the journal changed since the last load; True when reloaded."""
        if self.journal.backend.stamp(self.journal.name) == self._stamp:
            return False
        self.load()
        return True

    def __len__(self):
        return len(self._acc)

    def get(self, address):
        return self._acc.get(address)

    def by_extension(self, ext):
        """The user@domain whose PBX extension is `ext`, or None."""
        return self._by_ext.get(ext)

    def addresses(self):
        return sorted(self._acc)

    def set(self, address, ext, password, realm):
        """Give `address` the PBX identity `ext` with `password` in the PBX's `realm` (stored as HA1)."""
        self._writable()
        user, domain = split_address(address)
        key = user + "@" + domain
        check_extension(ext)
        _check_realm(realm)
        if not isinstance(password, str) or not password or len(password) > _MAX_PASSWORD:
            raise ValidationError("password", "must be 1..%d characters" % _MAX_PASSWORD)
        other = self._by_ext.get(ext)
        if other is not None and other != key:
            raise ValidationError("extension", "%s already belongs to %s" % (ext, other))
        if key not in self._acc and len(self._acc) >= self.max_accounts:
            raise StoreFull("PBX account store full (%d accounts)" % self.max_accounts)
        rec = {"ext": ext, "realm": realm, "md5": ha1_hex("MD5", ext, realm, password),
               "sha256": ha1_hex("SHA-256", ext, realm, password)}
        self.journal.put(key, rec)
        self._merge([(key, rec)])
        return key

    def remove(self, address):
        self._writable()
        user, domain = split_address(address)
        key = user + "@" + domain
        if key not in self._acc:
            return False
        self.journal.delete(key)
        self._merge([(key, None)])
        return True
