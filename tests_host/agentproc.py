"""Run `tools/microwitch agent --json` as a child process for tests; helpers for exact-G.711 test signals.

Agent(args) starts one agent; wait() collects its JSON events (bounded by a deadline) and the exit code.
"""
import array
import json
import os
import random
import subprocess
import sys
import threading
import time
import wave

import pytest

from nodeproc import Node

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MICROWITCH = os.path.join(REPO, "tools", "microwitch")
# Agent start to its "registered" event: ~0.3 s on an idle machine; a bounded wait, generous for a loaded CI host.
START_S = 30.0
USERS = [("alice", "pw-alice", "localhost"), ("bob", "pw-bob", "localhost")]


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    """A node on loopback (UDP) serving localhost with alice and bob, shared by a test module's agent calls
    (import it into the module: `from agentproc import node`)."""
    n = Node(str(tmp_path_factory.mktemp("node")), users=USERS, transports=("udp",))
    n.start()
    yield n
    n.stop()


class Agent:
    def __init__(self, user, password, proxy, *extra, timeout=40):
        self.cmd = [sys.executable, MICROWITCH, "agent", "--user", user, "--password", password,
                    "--proxy", "%s:%d" % proxy, "--json", "--timeout", str(timeout)] + [str(x) for x in extra]
        self.timeout = timeout
        self.lines = []
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     cwd=REPO, stdin=subprocess.DEVNULL)
        self._t = threading.Thread(target=self._read, daemon=True)
        self._t.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def events(self):
        out = []
        for line in list(self.lines):
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out

    def wait_event(self, name, timeout=15.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for e in self.events():
                if e.get("event") == name:
                    return e
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        for e in self.events():
            if e.get("event") == name:
                return e
        return None

    def wait(self):
        try:
            rc = self.proc.wait(timeout=self.timeout + 10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait(timeout=10)
        self._t.join(timeout=5)
        self.stderr = self.proc.stderr.read()
        self.proc.stderr.close()
        self.rc = rc
        return self.events()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def first(self, name):
        for e in self.events():
            if e.get("event") == name:
                return e
        return None

    def describe(self):
        return "%s\nrc=%s\nstdout:\n%s\nstderr:\n%s" % (" ".join(self.cmd), getattr(self, "rc", None),
                                                        "\n".join(self.lines), getattr(self, "stderr", ""))


def ulaw_value(code):
    """G.711 µ-law decoding (ITU-T G.711 Table 2a), written out here so the test does not trust our codec."""
    u = ~code & 0xFF
    t = (((u & 0x0F) << 3) + 0x84) << ((u & 0x70) >> 4)
    return (0x84 - t) if u & 0x80 else (t - 0x84)


def exact_signal(n, seed):
    """n samples that G.711 µ-law carries exactly (every one is a µ-law code point), none of them silence."""
    r = random.Random(seed)
    out = []
    while len(out) < n:
        v = ulaw_value(r.randrange(256))
        if abs(v) > 100:
            out.append(v)
    return out


def write_wav(path, samples, rate=8000, channels=1, width=2):
    a = array.array("h", samples)
    if sys.byteorder == "big":
        a.byteswap()
    with wave.open(path, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(a.tobytes())


def read_wav(path):
    with wave.open(path, "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 8000)
        a = array.array("h")
        a.frombytes(w.readframes(w.getnframes()))
    if sys.byteorder == "big":
        a.byteswap()
    return list(a)


def find(haystack, needle):
    """Index of `needle` (a list) in `haystack`, or -1."""
    n = len(needle)
    first = needle[0]
    for i in range(len(haystack) - n + 1):
        if haystack[i] == first and haystack[i:i + n] == needle:
            return i
    return -1
