"""Registrar bindings (RFC 3261 §10.3): address-of-record -> contacts, in RAM, journaled to survive restarts.

Write discipline (flash wear): the AoR's record is written only when its contact set changes (a contact
added or removed; a contact's source address, instance, reg-id, path or granted interval changed) or when a
refresh would outrun the stored lease. Each stored binding carries a *lease* = write time + LEASE_FACTOR x
granted interval, never earlier than its real expiry; a refresh that keeps the real expiry within the lease
is not written. On load a binding whose lease has passed is certainly expired and dropped; one whose lease
has not passed is restored with expiry min(lease, now + granted), because a live phone refreshed at most
`granted` seconds ago.

Consequences, stated: no binding ever expires early because of a restart. Worst case, a phone that died
shortly before the restart keeps a binding up to `granted` seconds (<= max_expires) beyond its real expiry.
Writes: one per binding per (LEASE_FACTOR - 1) x granted seconds of refreshing, plus one per contact change.
At min_expires 60 that is 20 writes/hour per contact, at the default 3600 one write per 3 hours.
Call-ID and CSeq are stored with each write but not rewritten on refresh: after a restart the stored CSeq
can be lower than the phone's, which only matters for replays, and those need a nonce from before the
restart, which the digest module no longer accepts.
"""
from microwitch.compat import const
from microwitch.store import StoreFull
from microwitch.store.journal import Journal

LEASE_FACTOR = const(4)
MAX_AORS = const(10000)
MAX_CONTACTS_PER_AOR = const(10)
DEFAULT_NAME = "bindings.journal"


class Binding:
    """One contact of an AoR. `expires` is absolute wall-clock seconds; `source` = (proto, host, port)."""

    def __init__(self, uri, expires, granted, call_id, cseq, source, q=None, instance=None, reg_id=None,
                 path=None, contact=None, lease=0):
        self.uri = uri  # the contact URI (what requests are sent to)
        # the name-addr as the phone sent it (minus expires/q), kept only when it is more than "<uri>": most
        # phones send just that, and a 50-byte copy per binding is an eighth of the RAM a binding costs
        self.contact = None if contact is None or contact == "<" + uri + ">" else contact
        self.expires = expires
        self.granted = granted
        self.call_id = call_id
        self.cseq = cseq
        self.source = source
        self.q = q  # int thousandths or None
        self.instance = instance  # +sip.instance value as written (with quotes), or None
        self.reg_id = reg_id  # int or None (RFC 5626)
        self.path = path  # list of Path values or None (RFC 3327)
        self.lease = lease

    def name_addr(self):
        """The Contact value to return to the phone (without expires/q)."""
        return self.contact or "<" + self.uri + ">"

    def ident(self):
        """What makes a change worth writing (everything but expiry, Call-ID and CSeq)."""
        return (self.uri, self.contact, self.instance, self.reg_id, self.source,
                tuple(self.path) if self.path else None, self.granted, self.q)

    def to_json(self):
        d = {"u": self.uri, "x": self.lease, "g": self.granted, "i": self.call_id, "s": self.cseq,
             "a": list(self.source)}
        if self.contact is not None:
            d["c"] = self.contact
        if self.q is not None:
            d["q"] = self.q
        if self.instance is not None:
            d["n"] = self.instance
        if self.reg_id is not None:
            d["r"] = self.reg_id
        if self.path:
            d["p"] = self.path
        return d

    @staticmethod
    def from_json(d, wall_s):
        """Binding restored from a record, or None if expired or malformed."""
        try:
            lease = int(d["x"])
            granted = int(d["g"])
            a = d["a"]
            source = (str(a[0]), str(a[1]), int(a[2]))
            if lease <= wall_s:
                return None
            b = Binding(str(d["u"]), min(lease, wall_s + granted), granted, str(d["i"]), int(d["s"]), source,
                        d.get("q"), d.get("n"), d.get("r"), d.get("p"), d.get("c"), lease)
        except (KeyError, TypeError, ValueError, IndexError):
            return None
        return b

    def __repr__(self):
        return "<Binding %s exp=%d src=%s>" % (self.uri, self.expires, self.source)


class Bindings:
    """AoR key (`sip:user@domain`) -> list of Binding, bounded by max_aors x max_contacts_per_aor."""

    def __init__(self, backend, name=DEFAULT_NAME, max_aors=MAX_AORS, max_contacts_per_aor=MAX_CONTACTS_PER_AOR):
        self.max_aors = max_aors
        self.max_contacts = max_contacts_per_aor
        self._aors = {}
        self.journal = Journal(backend, name, self._items)
        self.skipped = 0  # bindings not restored by the last load (expired, malformed or over the bounds)

    def _items(self):
        for aor, bl in self._aors.items():
            yield aor, [b.to_json() for b in bl]

    def load(self, wall_s, repair=True):
        """Restore from the journal (see module docstring for expiry); returns the number of bindings.

        `repair=False` for readers (the CLI) that must not rewrite a torn tail a running node may own."""
        state = self.journal.load(repair)
        self._aors = {}
        self.skipped = 0
        total = 0
        for aor, recs in state.items():
            bl = []
            if isinstance(recs, list):
                for d in recs:
                    b = Binding.from_json(d, wall_s) if isinstance(d, dict) else None
                    if b is None or len(bl) >= self.max_contacts:
                        self.skipped += 1
                    else:
                        bl.append(b)
            if bl and len(self._aors) < self.max_aors:
                self._aors[aor] = bl
                total += len(bl)
            else:
                self.skipped += len(bl)
                self.journal.forget(aor)
        return total

    # -- queries ---------------------------------------------------------------------------------------
    def __len__(self):
        return len(self._aors)

    def aors(self):
        return list(self._aors)

    def current(self, aor, wall_s):
        """Unexpired bindings of `aor` in stored order (a copy of the list; the Binding objects are live)."""
        return [b for b in self._aors.get(aor, ()) if b.expires > wall_s]

    def lookup(self, aor, wall_s):
        """Unexpired bindings, highest q first (absent q counts as 1.0), then the most recently extended."""
        bl = self.current(aor, wall_s)
        bl.sort(key=lambda b: (-(1000 if b.q is None else b.q), -b.expires))
        return bl

    def has_room_for(self, aor, wall_s):
        """False if `aor` is new and the table is full even after dropping expired AoRs."""
        if aor in self._aors or len(self._aors) < self.max_aors:
            return True
        self.purge(wall_s)
        return len(self._aors) < self.max_aors

    # -- changes ---------------------------------------------------------------------------------------
    def update(self, aor, new, wall_s):
        """Make `new` (list of Binding, unexpired) the bindings of `aor`; returns True if a write happened.

        Raises StoreFull (nothing changed) when over a bound, OSError from the backend (nothing changed).
        """
        if len(new) > self.max_contacts:
            raise StoreFull("too many contacts (max %d)" % self.max_contacts)
        if new and not self.has_room_for(aor, wall_s):
            raise StoreFull("registrar full (%d AoRs)" % self.max_aors)
        old = [b for b in self._aors.get(aor, ()) if b.expires > wall_s]
        write = len(old) != len(new)
        if not write:
            have = set(b.ident() for b in old)
            for b in new:
                if b.ident() not in have or b.expires > b.lease:
                    write = True
                    break
        if write:
            leases = [max(b.expires, wall_s + LEASE_FACTOR * b.granted) for b in new]
            saved = [b.lease for b in new]
            for b, lease in zip(new, leases):
                b.lease = lease
            try:
                self.journal.put(aor, [b.to_json() for b in new] if new else None)
            except Exception:
                for b, lease in zip(new, saved):
                    b.lease = lease
                raise
        if new:
            self._aors[aor] = new
        elif aor in self._aors:
            del self._aors[aor]
            if not write:
                self.journal.forget(aor)
        return write

    def purge(self, wall_s):
        """Drop expired bindings from RAM (no write: their leases make them expire on reload too, see above)."""
        for aor in list(self._aors):
            bl = [b for b in self._aors[aor] if b.expires > wall_s]
            if bl:
                self._aors[aor] = bl
            else:
                del self._aors[aor]
                self.journal.forget(aor)
