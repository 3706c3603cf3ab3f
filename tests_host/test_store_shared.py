"""Two real processes write users.journal at once: `microwitch user add` (loaded, then waiting for its
password) and the running node's web page (adds a user over HTTP meanwhile). The CLI's write then compacts
the journal; both users must exist afterwards, in both handles and after a restart."""
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import nodeproc
from webclient import WebClient, wait_web
from microwitch.store.files import FileBackend
from microwitch.store.journal import COMPACT_MIN, encode_record
from microwitch.store.users import Users

DOMAIN = "home.test"
ADMIN = "a long admin password"
CLI_USER = "cli-" + "c" * 56 + "@" + DOMAIN  # a longer record than the page's: only the CLI's write compacts


def _user_record(address):
    return len(encode_record(address, {"realm": DOMAIN, "md5": "0" * 32, "sha256": "0" * 64}))


def _prefill(path, size):
    """A journal of `size` bytes with no live user (deleted keys: what compaction reclaims)."""
    out = b""
    for i in range(1000):
        left = size - len(out)
        if left < 600:
            break
        out += encode_record("old%d-" % i + "x" * 240, None)
    left = size - len(out)
    first = left - 300
    out += encode_record("p" * (first - 17), None) + encode_record("q" * (300 - 17), None)
    if len(out) != size:
        raise AssertionError("prefill is %d bytes, not %d" % (len(out), size))
    with open(path, "wb") as f:
        f.write(out)


def _reading_stdin(pid):
    """True while `pid` is blocked in read(0, ...) (the CLI waiting for its password, store loaded)."""
    with open("/proc/%d/syscall" % pid) as f:
        parts = f.read().split()
    return len(parts) >= 2 and parts[0] == "0" and parts[1] == "0x0"


def _wait(pred, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


_NEEDS_SYSCALL = pytest.mark.skipif(not os.path.exists("/proc/self/syscall") or os.uname().machine != "x86_64",
                                    reason="needs /proc/PID/syscall (x86_64 numbering) to see a process wait")


@_NEEDS_SYSCALL
def test_cli_add_while_page_adds_keeps_both_users(tmp_path):
    work = str(tmp_path)
    web_port = nodeproc.free_port("tcp")
    node = nodeproc.Node(work, config={"web": "127.0.0.1:%d" % web_port, "aliases": ["127.0.0.1"],
                                       "domain": DOMAIN}, transports=("udp",), domain=DOMAIN)
    os.makedirs(node.state)
    journal = os.path.join(node.state, "users.journal")
    page_rec, cli_rec = _user_record("web@" + DOMAIN), _user_record(CLI_USER)
    size = COMPACT_MIN - page_rec  # the page's add stays at the threshold; the CLI's add crosses it
    assert size + cli_rec > COMPACT_MIN
    _prefill(journal, size)
    cli = None
    try:
        node.start()
        wait_web(node)
        web = WebClient("127.0.0.1", web_port).setup_and_login(ADMIN, DOMAIN)
        cli = subprocess.Popen([sys.executable, nodeproc.MICROWITCH, "user", "add", CLI_USER, "--password-stdin",
                                "--state", node.state], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, cwd=nodeproc.REPO)
        assert _wait(lambda: cli.poll() is not None or _reading_stdin(cli.pid)), "the CLI never asked"
        assert cli.poll() is None, cli.communicate()
        web.get("/")
        assert web.post("/add", [("name", "web"), ("password", "web-secret-1")]) == 200
        assert os.path.getsize(journal) == COMPACT_MIN  # appended, not compacted, by the page
        out, err = cli.communicate("cli-secret-1\n", timeout=30)
        assert cli.returncode == 0, err
        assert os.path.getsize(journal) < size  # the CLI's write compacted the journal
        want = sorted(["web@" + DOMAIN, CLI_USER])
        assert node.cli("user", "list").stdout.split() == want
        web.get("/")
        assert all(a in web.text for a in want)  # the page's handle has both
        node.restart()
        wait_web(node)
        assert node.cli("user", "list").stdout.split() == want
        web = WebClient("127.0.0.1", web_port).setup_and_login(ADMIN, DOMAIN)
        assert all(a in web.text for a in want)
        assert node.alive()
    finally:
        if cli is not None and cli.poll() is None:
            cli.kill()
            cli.wait()
        node.stop()


_RACER = textwrap.dedent("""
    import sys
    sys.path.insert(0, %r)
    from microwitch.store.files import FileBackend
    from microwitch.store.users import Users
    me, n = sys.argv[2], int(sys.argv[3])
    u = Users(FileBackend(sys.argv[1]))
    u.journal.min_bytes = 0
    u.journal.factor = int(sys.argv[4])  # 1: compact whenever there is any garbage (almost every write)
    u.load()
    sys.stdin.readline()  # start together (after every racer's interpreter is up)
    md5, sha = "0" * 32, "0" * 64
    for i in range(n):
        u.set_ha1("%%s-%%d@x.lan" %% (me, i), "x.lan", md5, sha)
        u.set_ha1("hot-%%s@x.lan" %% me, "x.lan", "%%032x" %% i, sha)  # garbage: drives compaction
        if i %% 5 == 4:
            assert u.remove("%%s-%%d@x.lan" %% (me, i - 2))
    print(u.journal.compactions, u.journal.merged)
""") % os.path.join(nodeproc.REPO, "firmware")


def _want(me, n):
    return {"%s-%d@x.lan" % (me, i) for i in range(n) if not (i % 5 == 2 and i + 2 < n)} | {"hot-%s@x.lan" % me}


@_NEEDS_SYSCALL
@pytest.mark.parametrize("factor", [1, 4])
def test_writer_processes_racing_with_compactions_lose_nothing(tmp_path, factor):
    """Three processes add, change and remove users in one journal at the same time, compacting all the
    while: appends at once, appends into a file being renamed away, compactions at once."""
    script = tmp_path / "racer.py"
    script.write_text(_RACER)
    state = str(tmp_path / "state")
    os.makedirs(state)
    n = 150
    procs = [subprocess.Popen([sys.executable, str(script), state, me, str(n), str(factor)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for me in "abc"]
    assert _wait(lambda: all(p.poll() is not None or _reading_stdin(p.pid) for p in procs))
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    merged = 0
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        merged += int(out.split()[1])
    assert merged > 0  # they did interleave
    r = Users(FileBackend(state), read_only=True)
    r.load()
    want = _want("a", n) | _want("b", n) | _want("c", n)
    got = set(r.addresses())
    assert got == want, (sorted(want - got)[:5], sorted(got - want)[:5])
    assert r.get("hot-a@x.lan")["md5"] == "%032x" % (n - 1)


_KILLED = textwrap.dedent("""
    import sys
    sys.path.insert(0, %r)
    from microwitch.store import files
    from microwitch.store.files import FileBackend
    from microwitch.store.users import Users
    files.LOCK_STALE_S = 5  # a lock left by a killed writer must not hold the next run up for long
    u = Users(FileBackend(sys.argv[1]))
    u.journal.min_bytes = 0
    u.journal.factor = 1  # compacting almost every write: kills often land in a compaction
    u.load()
    me, i = sys.argv[2], int(sys.argv[3])
    while True:
        i += 1
        u.set_ha1("%%s%%d@x.lan" %% (me, i), "x.lan", "0" * 32, "0" * 64)
        u.set_ha1("hot-%%s@x.lan" %% me, "x.lan", "%%032x" %% i, "0" * 64)
        sys.stdout.write("%%d\\n" %% i)
        sys.stdout.flush()
""") % os.path.join(nodeproc.REPO, "firmware")


def test_two_writers_killed_mid_write_or_compaction_lose_nothing_acknowledged(tmp_path):
    """Two writer processes at once, both killed with SIGKILL (mid-append, mid-compaction, holding the
    lock...), three times over: every change either acknowledged is in the journal afterwards."""
    script = tmp_path / "killed.py"
    script.write_text(_KILLED)
    state = str(tmp_path / "state")
    acked = {"a": 0, "b": 0}
    for round_ in range(3):  # each run starts on what the killed ones left (torn record, lock, temp file)
        procs = {me: subprocess.Popen([sys.executable, str(script), state, me, str(acked[me])],
                                      stdout=subprocess.PIPE, text=True) for me in "ab"}
        last = dict(acked)
        try:
            for me, p in procs.items():
                for _ in range(100000):
                    line = p.stdout.readline()
                    if not line:
                        break
                    last[me] = int(line)
                    if last[me] >= acked[me] + 40:
                        break
        finally:
            for me, p in procs.items():
                os.kill(p.pid, signal.SIGKILL)
                p.wait()
                rest = p.stdout.read().split()  # acknowledged before the kill arrived
                if rest:
                    last[me] = int(rest[-1])
                p.stdout.close()
        r = Users(FileBackend(state), read_only=True)
        r.load()
        for me in "ab":
            assert last[me] >= acked[me] + 40, "writer %s stopped early" % me
            for i in range(1, last[me] + 1):
                assert r.get("%s%d@x.lan" % (me, i)) is not None, (round_, me, i)
            assert int(r.get("hot-%s@x.lan" % me)["md5"], 16) >= last[me]
        acked = last
