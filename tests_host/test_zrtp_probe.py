"""`microwitch zrtp-peer` (our engine over real UDP on loopback) against itself, and the ZID cache's file
backend. The probe against bzrtp is in test_zrtp_bzrtp.py."""
import json
import os
import subprocess
import sys

from _zrtp_pair import Drbg
from nodeproc import free_port
from microwitch.zrtp.cache import ZidCache
from microwitch.zrtp.cachefile import FileBackend

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROBE = [sys.executable, os.path.join(ROOT, "tools", "microwitch"), "zrtp-peer"]


def _ports():
    return [free_port(), free_port()]


def _events(stdout):
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def _pair(extra_a=(), extra_b=(), timeout_ms=8000):
    pa, pb = _ports()
    a = subprocess.Popen(PROBE + ["--local", str(pa), "--peer", str(pb), "--timeout-ms", str(timeout_ms)] +
                         list(extra_a), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    b = subprocess.Popen(PROBE + ["--local", str(pb), "--peer", str(pa), "--timeout-ms", str(timeout_ms)] +
                         list(extra_b), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out = []
    for p in (a, b):
        so, se = p.communicate(timeout=timeout_ms / 1000.0 + 20)
        out.append((p.returncode, _events(so), se))
    return out


def test_two_probes_agree_and_keep_continuity(tmp_path):
    ca, cb = str(tmp_path / "a.cache"), str(tmp_path / "b.cache")
    (ra, ea, sa), (rb, eb, sb) = _pair(["--role", "initiator", "--ka", "DH3k", "--cache", ca],
                                       ["--role", "responder", "--ka", "DH3k", "--cache", cb])
    assert ra == 0 and rb == 0, (sa[-2000:], sb[-2000:])
    assert ea[0]["event"] == "hello_hash" and ea[0]["value"].startswith("1.10 ")
    xa, xb = ea[-1], eb[-1]
    assert xa["event"] == xb["event"] == "secure"
    assert (xa["role"], xb["role"]) == ("initiator", "responder")
    assert xa["ka"] == xb["ka"] == "DH3k" and xa["sas"] == xb["sas"]
    assert xa["self_key"] == xb["peer_key"] and xa["peer_salt"] == xb["self_salt"]
    assert xa["cache"] == xb["cache"] == "new" and xa["rs1"] == xb["rs1"]
    (ra, ea, _), (rb, eb, _) = _pair(["--cache", ca, "--sas", "B256"], ["--cache", cb, "--sas", "B256"])
    assert ra == rb == 0
    xa, xb = ea[-1], eb[-1]
    assert xa["cache"] == xb["cache"] == "match" and xa["ka"] == "X255"
    assert ":" in xa["sas"] and xa["sas"] == xb["sas"]


def test_probe_checks_the_peer_hash():
    pa, pb = _ports()
    b = subprocess.Popen(PROBE + ["--local", str(pb), "--peer", str(pa), "--timeout-ms", "3000", "--role",
                                  "responder"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = b.stdout.readline()
    h = json.loads(first)["value"]
    wrong = h[:-1] + ("0" if h[-1] != "0" else "1")
    a = subprocess.run(PROBE + ["--local", str(pa), "--peer", str(pb), "--timeout-ms", "3000", "--peer-hash",
                                wrong], capture_output=True, text=True, timeout=30)
    b.communicate(timeout=30)
    ev = _events(a.stdout)
    assert a.returncode == 2 and ev[-1] == {"event": "failed", "reason": "zrtp-hash mismatch"}
    assert b.returncode == 2


def test_probe_rejects_bad_arguments_and_times_out():
    r = subprocess.run(PROBE + ["--local", "0", "--peer", "5"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "--local" in r.stderr
    pa, pb = _ports()
    r = subprocess.run(PROBE + ["--local", str(pa), "--peer", str(pb), "--peer-hash", "1.10 xyz"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "--peer-hash" in r.stderr
    r = subprocess.run(PROBE + ["--local", str(pa), "--peer", str(pb), "--timeout-ms", "400"],
                       capture_output=True, text=True, timeout=30)
    ev = _events(r.stdout)
    assert r.returncode == 2 and ev[0]["event"] == "hello_hash" and ev[-1]["event"] == "failed"
    assert "timeout" in ev[-1]["reason"]


def test_file_backend_survives_torn_appends_and_leftover_temp(tmp_path):
    path = str(tmp_path / "zid.cache")
    c = ZidCache(FileBackend(path), rand=Drbg("f"), clock=lambda: 100)
    zid = c.zid()
    c.store(b"\x01" * 12, b"a" * 32, 0xFFFFFFFF)
    with open(path, "ab") as f:
        f.write(b'1234abcd {"p": "0101')          # a crash half-way through an append
    with open(path + ".tmp", "wb") as f:
        f.write(b"garbage from a crash during compaction")
    r = ZidCache(FileBackend(path), clock=lambda: 100)
    assert r.zid() == zid and r.lookup(b"\x01" * 12)["rs1"] == b"a" * 32 and r.skipped == 1
    # the next append after a torn record starts on a line of its own
    r.store(b"\x02" * 12, b"c" * 32, 0xFFFFFFFF)
    r = ZidCache(FileBackend(path), clock=lambda: 100)
    assert r.lookup(b"\x02" * 12)["rs1"] == b"c" * 32 and r.skipped == 1
    r.compact()
    assert not os.path.exists(path + ".tmp")
    assert open(path, "rb").read().count(b"\n") == 3
    r.store(b"\x01" * 12, b"b" * 32, 0xFFFFFFFF)
    e = ZidCache(FileBackend(path), clock=lambda: 100).lookup(b"\x01" * 12)
    assert e["rs1"] == b"b" * 32 and e["rs2"] == b"a" * 32


def test_file_backend_uses_the_journal_discipline(tmp_path, monkeypatch, fat_rename):
    # a compaction that died after removing the cache on a filesystem without rename-over leaves only
    # name.tmp (complete: it was fsynced first); the next load finishes the rename
    path = str(tmp_path / "zid.cache")
    c = ZidCache(FileBackend(path), rand=Drbg("j"), clock=lambda: 100)
    zid = c.zid()
    c.store(b"\x03" * 12, b"d" * 32, 0xFFFFFFFF)
    c.compact()
    os.rename(path, path + ".tmp")
    r = ZidCache(FileBackend(path), clock=lambda: 100)
    assert r.zid() == zid and r.lookup(b"\x03" * 12)["rs1"] == b"d" * 32
    assert os.path.exists(path) and not os.path.exists(path + ".tmp")
    # rename cannot replace an existing file (FAT): compaction removes the old file first, then renames
    with fat_rename():
        r.store(b"\x03" * 12, b"e" * 32, 0xFFFFFFFF)
        r.compact()
    e = ZidCache(FileBackend(path), clock=lambda: 100).lookup(b"\x03" * 12)
    assert e["rs1"] == b"e" * 32 and e["rs2"] == b"d" * 32
    assert not os.path.exists(path + ".tmp")
    # every append is fsynced before store() returns (the secret is on disk before the call is secure)
    synced = []
    import microwitch.store.files as files
    real_fsync = files.fsync
    monkeypatch.setattr(files, "fsync", lambda f: (synced.append(f.name), real_fsync(f)))
    r.store(b"\x04" * 12, b"f" * 32, 0xFFFFFFFF)
    assert synced == [path]


def test_probe_with_an_unusable_cache_file_fails_cleanly(tmp_path):
    pa, pb = _ports()
    for bad in ("/nonexistent/dir/zid", str(tmp_path)):
        r = subprocess.run(PROBE + ["--local", str(pa), "--peer", str(pb), "--timeout-ms", "300", "--cache", bad],
                           capture_output=True, text=True, timeout=30)
        ev = _events(r.stdout)
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
        assert ev[-1]["event"] == "failed" and bad in ev[-1]["reason"], ev
