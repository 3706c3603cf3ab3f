"""The agent CLI's error paths (tools/mwcli/agent.py): a --cache it cannot use and a --play file that is too long
are bad arguments (one line naming the file, exit 2, no traceback); a cache that stops being writable mid-call
is the `cache_error` event and the call still ends normally."""
import os
import shutil
import struct

import pytest

from agentproc import START_S, Agent, node  # noqa: F401 (node: the module's fixture)
from mwcli import agent as cli

NOWHERE = ("127.0.0.1", 9)      # never reached: these errors come before any packet


def _bad(*extra):
    a = Agent("sip:alice@localhost", "pw", NOWHERE, "--answer", *extra, timeout=5)
    a.wait()
    err = a.stderr.strip()
    assert a.rc == 2, a.describe()
    assert "Traceback" not in a.stderr and len(err.splitlines()) == 1, a.describe()
    assert a.events() == [], a.describe()      # nothing started
    return err


def test_cache_in_a_missing_directory_is_a_bad_argument(tmp_path):
    path = str(tmp_path / "no" / "such" / "alice.zid")
    err = _bad("--cache", path)
    assert path in err and "--cache" in err and "No such file" in err


def test_cache_that_is_a_directory_is_a_bad_argument(tmp_path):
    d = str(tmp_path / "cachedir")
    os.mkdir(d)
    for given in (d, d + "/"):
        err = _bad("--cache", given)
        assert given in err and "is a directory" in err
    assert os.listdir(d) == []                 # nothing was written into it


def test_identity_file_that_cannot_be_read_or_written_is_a_bad_argument(tmp_path):
    path = str(tmp_path / "alice.zid")
    os.mkdir(path + ".id")                     # FILE.id is where our ZID lives
    err = _bad("--cache", path)
    assert path + ".id" in err
    os.rmdir(path + ".id")
    with open(path + ".id", "w") as f:
        f.write("not hex\n")
    err = _bad("--cache", path)
    assert path + ".id" in err and "not a ZID" in err


def _wav(path, samples, header_samples=None):
    """An 8 kHz mono 16-bit WAV of `samples` zero samples; the data chunk may claim another size."""
    n = samples if header_samples is None else header_samples
    with open(path, "wb") as f:
        f.write(b"RIFF" + struct.pack("<I", (36 + 2 * n) & 0xFFFFFFFF) + b"WAVE")
        f.write(b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, 8000, 16000, 2, 16))
        f.write(b"data" + struct.pack("<I", min(2 * n, 0xFFFFFFFF)))
        f.write(bytes(2 * samples))


def test_play_file_longer_than_the_bound_is_refused(tmp_path):
    limit = 8000 * 600                          # the documented bound: 10 minutes
    assert cli._MAX_PLAY_SAMPLES == limit
    ok, long = str(tmp_path / "ok.wav"), str(tmp_path / "long.wav")
    _wav(ok, limit)
    assert len(cli.read_pcm(ok)) == 2 * limit   # exactly the bound is accepted
    _wav(long, limit + 1)
    with pytest.raises(ValueError) as e:
        cli.read_pcm(long)
    assert long in str(e.value) and "600 s" in str(e.value)
    err = _bad("--play", long)
    assert long in err and "--play" in err and "600 s" in err


def test_play_file_whose_header_claims_too_much_is_read_up_to_its_end(tmp_path):
    # a streamed WAV (the writer could not seek back) says 0xFFFFFFFF bytes: the real length counts
    path = str(tmp_path / "streamed.wav")
    _wav(path, 8000, header_samples=0x7FFFFFFF)
    assert len(cli.read_pcm(path)) == 16000


def test_cache_that_cannot_be_written_mid_call_is_the_cache_error_event(node, tmp_path):
    cb = str(tmp_path / "bob.zid")
    bob = Agent("sip:bob@localhost", "pw-bob", node.udp, "--answer", "--cache", cb, timeout=30)
    try:
        assert bob.wait_event("registered", START_S) is not None, bob.describe()
        # the cache was loaded and our ZID written at start; now the file turns into a directory, so the
        # retained secret of this call cannot be appended when ZRTP goes secure
        os.remove(cb)
        os.mkdir(cb)
        alice = Agent("sip:alice@localhost", "pw-alice", node.udp, "--call", "sip:bob@localhost",
                      "--duration", 1, timeout=30)
        alice.wait()
        bob.wait()
    finally:
        bob.kill()
    info = alice.describe() + "\n" + bob.describe()
    names = [e["event"] for e in bob.events()]
    assert "secure" in names and "cache_error" in names, info
    assert names.index("secure") < names.index("cache_error"), info
    assert "could not be saved" in bob.first("cache_error")["reason"], info
    assert bob.first("ended")["secure"] and bob.rc == 0 and alice.rc == 0, info
    assert "Traceback" not in bob.stderr, info
    shutil.rmtree(cb)


def test_overall_time_limit_exits_6():
    """--timeout is the run's limit: when it ends the run (here a registration nobody answers), the exit code
    is the documented 6, not Ctrl-C's 130."""
    import nodeproc
    a = Agent("sip:alice@localhost", "pw", ("127.0.0.1", nodeproc.free_port()), "--answer", timeout=1)
    a.wait()
    assert a.rc == 6, a.describe()
    assert {"event": "error", "reason": "overall time limit reached"} in a.events(), a.describe()
