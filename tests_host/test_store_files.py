"""File backend (microwitch.store.files) with real files: truncation at every offset, interrupted compaction,
and writers killed with SIGKILL in the middle of appends and compactions."""
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from microwitch.store.files import FileBackend
from microwitch.store.journal import Journal, encode_record
from microwitch.store.users import Users
from microwitch.store.bindings import Bindings, Binding

FIRMWARE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "firmware")


class Owner:
    def __init__(self, backend, name="j.journal", **kw):
        self.d = {}
        self.j = Journal(backend, name, lambda: self.d.items(), **kw)

    def load(self, repair=True):
        self.d = self.j.load(repair)
        return self.d

    def put(self, k, v):
        self.j.put(k, v)
        if v is None:
            self.d.pop(k, None)
        else:
            self.d[k] = v


def test_roundtrip_and_directory_created(tmp_path):
    be = FileBackend(str(tmp_path / "state"))
    o = Owner(be)
    assert o.load() == {}
    o.put("a", {"x": 1})
    o.put("b", [1, 2])
    o.put("a", None)
    assert Owner(FileBackend(str(tmp_path / "state"))).load() == {"b": [1, 2]}
    assert os.path.getsize(tmp_path / "state" / "j.journal") == o.j.size


def test_truncation_at_every_offset(tmp_path):
    be = FileBackend(str(tmp_path))
    o = Owner(be)
    o.load()
    states, ends = [{}], [0]
    for i in range(12):
        k = "k%d" % (i % 5)
        v = None if i % 7 == 6 else {"i": i, "s": "é" * (i % 3)}
        o.put(k, v)
        ends.append(o.j.size)
        states.append(dict(o.d))
    path = tmp_path / "j.journal"
    full = path.read_bytes()
    assert len(full) == ends[-1]
    for cut in range(len(full) + 1):
        path.write_bytes(full[:cut])
        n = max(i for i, e in enumerate(ends) if e <= cut)  # complete records before the cut
        o2 = Owner(FileBackend(str(tmp_path)))
        assert o2.load() == states[n], cut
        assert os.path.getsize(path) == o2.j.size  # a torn tail is rewritten away at once
        assert o2.j.dropped == cut - ends[n]
        o2.put("after", cut)
        o3 = Owner(FileBackend(str(tmp_path)))
        got = o3.load()
        assert got.pop("after") == cut and got == states[n], cut


def test_interrupted_compaction_leftovers(tmp_path):
    be = FileBackend(str(tmp_path))
    o = Owner(be)
    o.load()
    o.put("a", 1)
    o.put("b", 2)
    main = tmp_path / "j.journal"
    tmp = tmp_path / "j.journal.tmp"
    # died while writing the temp file: the journal is intact, the temp file is discarded
    tmp.write_bytes(encode_record("a", 99)[:5])
    assert Owner(FileBackend(str(tmp_path))).load() == {"a": 1, "b": 2}
    assert not tmp.exists()
    # died between removing the journal and renaming (filesystems without rename-over): the temp file,
    # fsynced before the removal, is promoted
    tmp.write_bytes(encode_record("a", 7) + encode_record("c", 3))
    main.unlink()
    assert Owner(FileBackend(str(tmp_path))).load() == {"a": 7, "c": 3}
    assert main.exists() and not tmp.exists()


def test_rename_over_existing_refused_falls_back(tmp_path, fat_rename):
    be = FileBackend(str(tmp_path))
    o = Owner(be)
    o.load()
    o.put("a", 1)
    with fat_rename():
        o.put("b", 2)
        o.j.compact()
    assert Owner(FileBackend(str(tmp_path))).load() == {"a": 1, "b": 2}
    assert not (tmp_path / "j.journal.tmp").exists()


def test_users_reader_sees_cli_writes_via_stamp(tmp_path):
    writer = Users(FileBackend(str(tmp_path)))
    writer.load()
    reader = Users(FileBackend(str(tmp_path)), read_only=True)
    reader.load()
    writer.add("alice@example.org", "pw")
    assert reader.refresh() and reader.get("alice@example.org") is not None
    assert not reader.refresh()
    writer.journal.compact()  # rename-replace: same content, new inode
    assert reader.refresh() and reader.get("alice@example.org") is not None


def test_bindings_survive_restart_on_files(tmp_path):
    b = Bindings(FileBackend(str(tmp_path)))
    b.load(1000)
    bl = [Binding("sip:a@10.0.0.1", 1600, 600, "cid", 3, ("udp", "10.0.0.1", 5060), q=500,
                  instance='"<urn:uuid:1>"', reg_id=1)]
    assert b.update("sip:a@example.org", bl, 1000)
    b2 = Bindings(FileBackend(str(tmp_path)))
    assert b2.load(1100) == 1
    got = b2.lookup("sip:a@example.org", 1100)[0]
    assert (got.uri, got.q, got.instance, got.reg_id, got.source) == \
        ("sip:a@10.0.0.1", 500, '"<urn:uuid:1>"', 1, ("udp", "10.0.0.1", 5060))
    assert 1600 <= got.expires <= 1100 + 600


_WRITER = textwrap.dedent("""
    import sys
    sys.path.insert(0, %r)
    from microwitch.store.files import FileBackend
    from microwitch.store.journal import Journal
    d = {}
    j = Journal(FileBackend(sys.argv[1]), "j.journal", lambda: d.items(), factor=2, min_bytes=2048)
    d.update(j.load())
    i = d.get("count", 0)
    while True:
        i += 1
        # a unique key per step, a hot key rewritten each step (drives compaction), and the count
        j.put("k%%d" %% i, {"i": i, "pad": "x" * (i %% 50)})
        d["k%%d" %% i] = {"i": i, "pad": "x" * (i %% 50)}
        if i %% 3 == 0:
            j.put("k%%d" %% (i - 1), None)
            d.pop("k%%d" %% (i - 1), None)  # a restart replays step count+1, which may be half done
        j.put("count", i)
        d["count"] = i
        sys.stdout.write("%%d\\n" %% i)
        sys.stdout.flush()
""") % FIRMWARE


def _check_consistent(d):
    """Every key the writer made up to `count` is there with its value (or deleted on schedule)."""
    n = d.get("count", 0)
    for i in range(1, n + 1):
        k = "k%d" % i
        if i == n and (n + 1) % 3 == 0:
            assert k not in d or d[k] == {"i": i, "pad": "x" * (i % 50)}  # step n+1 may have deleted it
        elif (i + 1) % 3 == 0:
            assert k not in d, k
        else:
            assert d.get(k) == {"i": i, "pad": "x" * (i % 50)}, k
    # at most the one step after `count` (its unique key written, `count` not yet) may be present
    extra = [k for k in d if k.startswith("k") and int(k[1:]) > n]
    assert extra in ([], ["k%d" % (n + 1)])
    return n


@pytest.mark.parametrize("kill_after", [5, 40, 150, 250])
def test_sigkill_writer_mid_writes(tmp_path, kill_after):
    script = tmp_path / "writer.py"
    script.write_text(_WRITER)
    state = tmp_path / "state"
    acked_total = 0
    for round_ in range(3):  # restart on top of what the killed writer left, three times
        p = subprocess.Popen([sys.executable, str(script), str(state)], stdout=subprocess.PIPE)
        last = 0
        try:
            for _ in range(100000):  # bounded: the writer prints one line per step
                line = p.stdout.readline()
                if not line:
                    break
                last = int(line)
                if last >= acked_total + kill_after:
                    break
        finally:
            os.kill(p.pid, signal.SIGKILL)
            p.wait()
            p.stdout.close()
        assert p.returncode == -signal.SIGKILL
        assert last >= acked_total + kill_after
        d = Owner(FileBackend(str(state))).load()
        n = _check_consistent(d)
        assert n >= last  # everything acknowledged (fsynced) survived
        acked_total = n


def test_group_commit_one_fsync_per_burst(tmp_path):
    """append() writes through to the OS at once (a killed process loses nothing) but fsyncs only on sync():
    a burst of bindings costs one fsync, taken before any of them is acknowledged."""
    from microwitch.store.files import FileBackend
    from microwitch.store.bindings import Bindings, Binding
    be = FileBackend(str(tmp_path))
    b = Bindings(be)
    b.load(1000)
    for i in range(50):
        b.update("sip:u%d@x" % i, [Binding("sip:u%d@1.2.3.4" % i, 2000, 1000, "c%d" % i, 1, ("udp", "1.2.3.4", 5060))],
                 1000)
    assert be.syncs == 0
    other = Bindings(FileBackend(str(tmp_path)))  # another process sees the records before the fsync
    assert other.load(1000) == 50
    be.sync()
    assert be.syncs == 1
    be.sync()
    assert be.syncs == 1  # nothing new appended: no fsync
