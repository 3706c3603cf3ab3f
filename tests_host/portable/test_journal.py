"""Append-only journal (microwitch.store.journal) on the in-memory backend: replay, torn/corrupt tails,
compaction, and the users store built on it."""
from microwitch.store.journal import Journal, encode_record, MAX_RECORD
from microwitch.store.memory import MemoryBackend
from microwitch.store.users import Users, split_address
from microwitch.store import ValidationError, StoreFull
from microwitch.sip.digest import ha1_hex

NAME = "j"


class Owner:
    """A minimal journal owner: a dict and its snapshot."""

    def __init__(self, backend, **kw):
        self.d = {}
        self.j = Journal(backend, NAME, self.items, **kw)

    def items(self):
        return self.d.items()

    def load(self, repair=True):
        self.d = self.j.load(repair)
        return self.d

    def put(self, k, v):
        self.j.put(k, v)
        if v is None:
            self.d.pop(k, None)
        else:
            self.d[k] = v


def test_record_format():
    r = encode_record("k", {"a": 1})
    p = r[4:-4]
    assert len(p) == int.from_bytes(r[:4], "big")
    assert p == b'["k",{"a":1}]'
    import binascii
    assert int.from_bytes(r[-4:], "big") == binascii.crc32(p) & 0xFFFFFFFF


def test_replay_put_overwrite_delete():
    be = MemoryBackend()
    o = Owner(be)
    o.load()
    o.put("a", 1)
    o.put("b", [1, "x"])
    o.put("a", 2)
    o.put("b", None)
    o.put("c", {"z": None})
    o2 = Owner(be)
    assert o2.load() == {"a": 2, "c": {"z": None}}
    assert o2.j.size == len(be.files[NAME]) and o2.j.dropped == 0
    assert o2.j.live == len(encode_record("a", 2)) + len(encode_record("c", {"z": None}))


def test_missing_file_is_empty():
    assert Owner(MemoryBackend()).load() == {}


def test_torn_last_record_at_every_offset():
    be = MemoryBackend()
    o = Owner(be)
    o.load()
    for i in range(5):
        o.put("k%d" % i, {"v": i, "pad": "x" * i})
    full = bytes(be.files[NAME])
    last = len(encode_record("k4", {"v": 4, "pad": "xxxx"}))
    start = len(full) - last
    want = {"k%d" % i: {"v": i, "pad": "x" * i} for i in range(4)}
    for cut in range(start, len(full)):
        be.files[NAME] = bytearray(full[:cut])
        o2 = Owner(be)
        got = o2.load()
        assert got == want, cut
        assert o2.j.dropped == cut - start
        if cut > start:
            # repaired at once: the file now holds exactly the intact records, so appends are safe
            assert len(be.files[NAME]) == start and Owner(be).load() == want, cut
        o2.put("new", 1)
        o3 = Owner(be)
        got3 = o3.load()
        assert got3.get("new") == 1 and len(got3) == 5 and o3.j.dropped == 0, cut
    be.files[NAME] = bytearray(full)
    assert len(Owner(be).load()) == 5


def test_corrupt_record_stops_replay_keeps_earlier():
    be = MemoryBackend()
    o = Owner(be)
    o.load()
    o.put("a", 1)
    o.put("b", 2)
    o.put("c", 3)
    full = bytes(be.files[NAME])
    ra = len(encode_record("a", 1))
    # flip a payload byte of the second record: CRC mismatch -> only "a" survives
    bad = bytearray(full)
    bad[ra + 6] ^= 0x01
    be.files[NAME] = bad
    assert Owner(be).load() == {"a": 1}
    # an absurd length field is corruption, not a giant allocation
    bad = bytearray(full)
    bad[ra:ra + 4] = (MAX_RECORD + 1).to_bytes(4, "big")
    be.files[NAME] = bad
    assert Owner(be).load() == {"a": 1}
    # a zero length field too
    bad = bytearray(full)
    bad[ra:ra + 4] = b"\x00\x00\x00\x00"
    be.files[NAME] = bad
    assert Owner(be).load() == {"a": 1}
    # valid CRC over a payload that is not our JSON shape
    import struct
    import binascii
    for p in (b"not json", b'{"a":1}', b'[1,2]', b'["a"]', b"\xff\xfe"):
        rec = struct.pack(">I", len(p)) + p + struct.pack(">I", binascii.crc32(p) & 0xFFFFFFFF)
        be.files[NAME] = bytearray(full[:ra] + rec + full[ra:])
        assert Owner(be).load() == {"a": 1}, p


def test_read_only_load_does_not_write_then_put_repairs():
    be = MemoryBackend()
    o = Owner(be)
    o.load()
    o.put("a", 1)
    o.put("b", 2)
    be.files[NAME] = be.files[NAME][:-3]
    w = be.writes
    ro = Owner(be)
    assert ro.load(repair=False) == {"a": 1}
    assert be.writes == w  # a reader never rewrites a file a writer may be appending to
    ro.put("c", 3)  # a write after a read-only load rewrites first, so "c" is not lost behind garbage
    assert Owner(be).load() == {"a": 1, "c": 3}


def test_compaction_when_journal_outgrows_live_set():
    be = MemoryBackend()
    o = Owner(be, factor=4, min_bytes=200)
    o.load()
    for i in range(200):
        o.put("hot", i)  # one live key rewritten over and over
        o.put("k%d" % (i % 3), i)
        assert o.j.size <= 4 * o.j.live or o.j.size <= 200, i
    assert o.j.compactions > 0 and be.replaces == o.j.compactions
    o2 = Owner(be)
    assert o2.load() == {"hot": 199, "k0": 198, "k1": 199, "k2": 197}
    assert o2.j.size == len(be.files[NAME]) and o2.j.size <= 4 * o2.j.live


def test_failed_append_raises_and_changes_nothing():
    be = MemoryBackend()
    o = Owner(be)
    o.load()
    o.put("a", 1)
    be.fail = True
    try:
        o.put("b", 2)
        raise AssertionError("no error")
    except OSError:
        pass
    assert o.d == {"a": 1}
    assert Owner(be).load() == {"a": 1}


# -- users store -------------------------------------------------------------------------------------------
def test_users_add_stores_ha1_never_password():
    be = MemoryBackend()
    u = Users(be)
    u.load()
    assert u.add("alice@Example.ORG", "s3cret pass") == "alice@example.org"
    rec = u.get("alice@example.org")
    assert rec == {"realm": "example.org", "md5": ha1_hex("MD5", "alice", "example.org", "s3cret pass"),
                   "sha256": ha1_hex("SHA-256", "alice", "example.org", "s3cret pass")}
    assert b"s3cret" not in bytes(be.files["users.journal"])
    assert u.ha1("alice", "example.org", "SHA-256", "example.org") == rec["sha256"]
    assert u.ha1("alice", "example.org", "MD5", "example.org") == rec["md5"]
    assert u.ha1("alice", "example.org", "MD5", "other-realm") is None
    assert u.ha1("bob", "example.org", "MD5", "example.org") is None
    u.add("bob@example.org", "pw", realm="Home Realm")
    assert u.get("bob@example.org")["realm"] == "Home Realm"
    assert u.addresses() == ["alice@example.org", "bob@example.org"]
    assert u.remove("bob@example.org") and not u.remove("bob@example.org")
    u2 = Users(be)
    assert u2.load() == 1 and u2.get("alice@example.org") == rec


def test_users_validation_names_the_field():
    u = Users(MemoryBackend())
    u.load()
    cases = (("alice", "pw", None, "user"), ("@example.org", "pw", None, "user"),
             ("al ice@example.org", "pw", None, "user"), ('a"b@example.org', "pw", None, "user"),
             ("a:b@example.org", "pw", None, "user"), ("alice@", "pw", None, "domain"),
             ("alice@exa mple.org", "pw", None, "domain"), ("alice@-bad.org", "pw", None, "domain"),
             ("alice@[zz::1]", "pw", None, "domain"), ("x" * 65 + "@example.org", "pw", None, "user"),
             ("alice@example.org", "", None, "password"), ("alice@example.org", "pw", 'a"b', "realm"),
             ("alice@example.org", "pw", "", "realm"))
    for addr, pw, realm, field in cases:
        try:
            u.add(addr, pw, realm)
            raise AssertionError("accepted %r" % addr)
        except ValidationError as e:
            assert e.field == field, (addr, e.field)
            assert str(e).startswith(field + ":")
    assert len(u) == 0
    assert split_address("sip:Bob.Smith-1@[::1]") == ("Bob.Smith-1", "[::1]")
    assert split_address("a+b@192.168.1.1") == ("a+b", "192.168.1.1")


def test_users_bounded():
    u = Users(MemoryBackend(), max_users=2)
    u.load()
    u.add("a@x.org", "1")
    u.add("b@x.org", "1")
    try:
        u.add("c@x.org", "1")
        raise AssertionError("no error")
    except StoreFull:
        pass
    u.add("a@x.org", "2")  # replacing an existing user is fine when full
    assert u.addresses() == ["a@x.org", "b@x.org"]


def test_users_read_only_reader_sees_writer_changes():
    be = MemoryBackend()
    writer = Users(be)
    writer.load()
    reader = Users(be, read_only=True)
    reader.load()
    assert not reader.refresh()  # nothing changed: no reload
    writer.add("carol@x.org", "pw")
    assert reader.get("carol@x.org") is None
    assert reader.refresh() and reader.get("carol@x.org") is not None
    assert not reader.refresh()
    writer.remove("carol@x.org")
    assert reader.refresh() and reader.get("carol@x.org") is None
    try:
        reader.add("d@x.org", "pw")
        raise AssertionError("read-only store accepted a write")
    except ValueError:
        pass
    # a torn tail left by a writer in mid-append: the reader keeps what is intact and writes nothing
    writer.add("dave@x.org", "pw")
    writer.add("erin@x.org", "pw")
    be.files["users.journal"] = be.files["users.journal"][:-10]
    w = be.writes
    assert reader.refresh()
    assert reader.get("dave@x.org") is not None and reader.get("erin@x.org") is None
    assert be.writes == w


def test_compaction_inside_put_keeps_the_change_the_owner_has_not_applied_yet():
    """Owners (users, bindings) update their table after put() returns; a compaction triggered by that very
    put must neither lose a new key nor resurrect a deleted one."""
    be = MemoryBackend()
    d = {"victim": 1, "hot": 0}
    j = Journal(be, "t", lambda: d.items())
    j.load()
    j.put("victim", 1)
    j.put("hot", 0)
    j.due = lambda: True   # compact inside every put from here on
    before = j.compactions
    j.put("victim", None)  # the owner still holds "victim" while put runs ...
    del d["victim"]        # ... and drops it only afterwards
    j.put("new", 7)        # likewise a new key the owner has not stored yet
    d["new"] = 7
    assert j.compactions == before + 2
    back = Journal(be, "t", lambda: {}.items()).load()
    assert back == {"hot": 0, "new": 7}
