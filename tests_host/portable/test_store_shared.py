"""Two writers on one state directory (the CLI and the web page): neither loses the other's users, whatever
order their loads, adds, removes and compactions come in. Real files (store/files.py); portable, so the same
scenarios run under MicroPython's filesystem."""
import os

from microwitch.store import ValidationError
from microwitch.store.files import FileBackend
from microwitch.store.users import Users
from microwitch.store.pbx_accounts import PbxAccounts

MD5 = "0123456789abcdef0123456789abcdef"
SHA = MD5 + MD5
_dirs = [0]


def _fresh_dir():
    """An empty directory of its own for one test (no tempfile module on MicroPython)."""
    base = "/tmp" if _isdir("/tmp") else "."
    for _ in range(1000):
        _dirs[0] += 1
        d = "%s/mw_shared_%d_%d" % (base, _pid(), _dirs[0])
        if not _isdir(d):
            os.mkdir(d)
            return d
    raise OSError("no free directory name")


def _pid():
    getpid = getattr(os, "getpid", None)
    return getpid() if getpid else 0


def _isdir(p):
    try:
        os.stat(p)
        return True
    except OSError:
        return False


def _clean(d):
    for n in os.listdir(d):
        os.remove(d + "/" + n)
    os.rmdir(d)


def _users(d, compact_often=True):
    u = Users(FileBackend(d))
    if compact_often:  # compaction is due after almost every write: the race the reviewer found
        u.journal.min_bytes = 0
        u.journal.factor = 1
    u.load()
    return u


def _add(u, name):
    return u.set_ha1(name + "@x.lan", "x.lan", MD5, SHA)


def _fresh(d):
    u = Users(FileBackend(d), read_only=True)
    u.load()
    return u.addresses()


def test_stale_handle_compaction_keeps_the_other_writers_user():
    d = _fresh_dir()
    try:
        cli = _users(d)          # loaded, then prompts for a password (seconds)
        web = _users(d)
        _add(web, "web")         # the page adds a user meanwhile
        for i in range(6):       # the CLI keeps writing until it compacts, several times
            _add(cli, "c%d" % i)
            _add(cli, "c0")      # a password change: the old record becomes garbage
        cli.journal.compact()
        assert cli.journal.compactions >= 3
        want = ["c%d@x.lan" % i for i in range(6)] + ["web@x.lan"]
        assert _fresh(d) == want                 # on disk, after a restart
        assert cli.addresses() == want           # the CLI's own handle knows the page's user
        _add(web, "web2")                        # the page writes after the CLI replaced the file
        assert web.addresses() == sorted(want + ["web2@x.lan"])
        assert _fresh(d) == sorted(want + ["web2@x.lan"])
    finally:
        _clean(d)


def test_other_order_page_compacts_while_cli_holds_a_stale_view():
    d = _fresh_dir()
    try:
        web = _users(d)
        cli = _users(d, compact_often=False)     # never compacts by itself: only appends
        _add(cli, "first")
        for i in range(5):
            _add(web, "w%d" % i)
        web.journal.compact()                    # the page replaced the file the CLI read
        _add(cli, "cli")                         # the CLI appends from its old view
        want = ["cli@x.lan", "first@x.lan"] + ["w%d@x.lan" % i for i in range(5)]
        assert _fresh(d) == want
        assert cli.addresses() == want
        web.remove("first@x.lan")                # and the page keeps going from its own view
        assert _fresh(d) == [a for a in want if a != "first@x.lan"]
    finally:
        _clean(d)


def test_interleaved_adds_and_removes_with_compactions_match_a_model():
    d = _fresh_dir()
    try:
        a = _users(d)
        b = _users(d, compact_often=False)
        model = {}
        for step in range(40):
            h = a if step % 3 else b
            name = "u%d@x.lan" % (step * 7 % 13)
            if name in model and step % 4 == 0:
                assert h.remove(name)            # a user the other handle added: removed, not "no such user"
                del model[name]
            else:
                h.set_ha1(name, "x.lan", MD5, SHA)
                model[name] = 1
            if step % 9 == 8:
                b.journal.compact()              # the appending-only handle compacts now and then too
        want = sorted(model)
        assert _fresh(d) == want
        a.refresh()
        b.refresh()
        assert a.addresses() == want and b.addresses() == want
    finally:
        _clean(d)


def test_remove_by_a_stale_handle_sees_the_user_added_meanwhile():
    d = _fresh_dir()
    try:
        cli = _users(d, compact_often=False)
        web = _users(d, compact_often=False)
        _add(web, "bob")
        assert cli.remove("bob@x.lan")           # the old code said "no user bob" and changed nothing
        assert _fresh(d) == []
        assert not web.refresh() or web.get("bob@x.lan") is None
    finally:
        _clean(d)


def test_pbx_extension_taken_by_the_other_writer_is_refused():
    d = _fresh_dir()
    try:
        a = PbxAccounts(FileBackend(d))
        a.load()
        b = PbxAccounts(FileBackend(d))
        b.load()
        b.set("bob@x.lan", "201", "pbx-secret", "pbx")
        try:
            a.set("alice@x.lan", "201", "pbx-secret", "pbx")
            raise AssertionError("two users were given extension 201")
        except ValidationError as e:
            assert e.field == "extension" and "bob@x.lan" in str(e)
        a.set("alice@x.lan", "202", "pbx-secret", "pbx")
        a.journal.compact()
        c = PbxAccounts(FileBackend(d), read_only=True)
        c.load()
        assert c.addresses() == ["alice@x.lan", "bob@x.lan"] and c.by_extension("201") == "bob@x.lan"
        assert a.by_extension("201") == "bob@x.lan"
    finally:
        _clean(d)


class _CompactsMidAppend(FileBackend):
    """A backend whose next append is interrupted, after the file was opened and before the record is
    written, by another writer's compaction (`between()`): the record goes into the file that compaction is
    replacing."""

    between = None

    def open_append(self, name):
        f = FileBackend.open_append(self, name)
        run, self.between = self.between, None
        if run is not None:
            run()
        return f


class _AppendsMidCompaction(FileBackend):
    """A backend whose next replace lets another writer append (`between()`) while the new file is being
    written, after the compaction read the old one."""

    between = None

    def replace(self, name, chunks, hold=None):
        run, self.between = self.between, None
        if run is not None:
            run()
        if hold is None:
            return FileBackend.replace(self, name, chunks)
        return FileBackend.replace(self, name, chunks, hold)


class _OtherProcess(FileBackend):
    """The backend of a writer in another process: the compaction it would wait for goes on meanwhile."""

    def wait_unlocked(self, name):
        return True


def test_append_into_a_file_being_replaced_is_not_lost():
    d = _fresh_dir()
    try:
        be = _CompactsMidAppend(d)
        cli = Users(be)
        cli.load()
        web = _users(d)
        _add(web, "w0")
        _add(cli, "c0")

        def compact():
            _add(web, "w1")
            web.journal.compact()

        be.between = compact
        _add(cli, "c1")                          # written into the old file after the page renamed a new one in
        want = ["c0@x.lan", "c1@x.lan", "w0@x.lan", "w1@x.lan"]
        assert _fresh(d) == want
        assert cli.addresses() == want
    finally:
        _clean(d)


def test_append_during_compaction_goes_into_the_new_file():
    d = _fresh_dir()
    try:
        be = _AppendsMidCompaction(d)
        web = Users(be)
        web.load()
        cli = Users(_OtherProcess(d))
        cli.load()
        _add(web, "w0")
        _add(cli, "c0")
        be.between = lambda: _add(cli, "c1")     # lands in the old file after the page read it
        web.journal.compact()
        want = ["c0@x.lan", "c1@x.lan", "w0@x.lan"]
        assert _fresh(d) == want
        assert web.addresses() == want
        _add(cli, "c2")                          # the CLI, which appended to the old file, carries on
        assert _fresh(d) == want[:2] + ["c2@x.lan", "w0@x.lan"]
    finally:
        _clean(d)


def test_torn_tail_in_a_shared_journal_is_repaired_by_the_next_writer():
    d = _fresh_dir()
    try:
        a = _users(d, compact_often=False)
        _add(a, "a")
        _add(a, "b")
        path = d + "/users.journal"
        with open(path, "rb") as f:
            full = f.read()
        with open(path, "wb") as f:
            f.write(full[:-5])                   # a writer killed mid-record (or power lost)
        r = _users(d, compact_often=False)
        assert r.addresses() == ["a@x.lan"]
        with open(path, "rb") as f:
            assert len(f.read()) == len(full) - 5  # loading alone never rewrites a shared file
        w = _users(d, compact_often=False)
        _add(w, "c")                             # the next write repairs first, then appends
        assert _fresh(d) == ["a@x.lan", "c@x.lan"]
        _add(a, "d")                             # the handle that wrote the torn record catches up
        assert _fresh(d) == ["a@x.lan", "c@x.lan", "d@x.lan"]
        assert a.addresses() == ["a@x.lan", "c@x.lan", "d@x.lan"]
    finally:
        _clean(d)
