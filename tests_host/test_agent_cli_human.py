"""The agent CLI's human output (no --json) in real calls between two agent processes through a real node:
the state lines, the WAITING line under zrtp=mandatory, the SECURE line with the same SAS on both sides, the
`call ended` line with its packet counts, and the loud cache-mismatch warning when one side lost its cache."""
import os
import re
import subprocess
import sys
import threading
import time


from agentproc import MICROWITCH, REPO, node  # noqa: F401 (node: the module's fixture)

SECURE = re.compile(r"^SECURE  SAS: (\S{4})   \((\S+)/(\S+), (\S+), (\S+), cache (\w+)\)$")
ENDED = re.compile(r"^call ended: (.+) \((was secure|was NOT secure); RTP sent (\d+), received (\d+); "
                   r"SRTP sent (\d+), received (\d+)\)$")


class Human:
    """`microwitch agent` without --json; its stdout lines collected by a thread."""

    def __init__(self, node, user, *extra, timeout=30):
        self.cmd = [sys.executable, MICROWITCH, "agent", "--user", "sip:%s@localhost" % user, "--password",
                    "pw-" + user, "--proxy", "%s:%d" % node.udp, "--timeout", str(timeout)] + [str(x) for x in extra]
        self.timeout = timeout
        self.lines = []
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
                                     stdin=subprocess.DEVNULL)
        self._t = threading.Thread(target=self._read, daemon=True)
        self._t.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_line(self, prefix, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            if any(x.startswith(prefix) for x in list(self.lines)):
                return True
            time.sleep(0.02)
        return any(x.startswith(prefix) for x in list(self.lines))

    def wait(self):
        try:
            self.rc = self.proc.wait(timeout=self.timeout + 10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.rc = self.proc.wait(timeout=10)
        self._t.join(timeout=5)
        self.stderr = self.proc.stderr.read()
        self.proc.stderr.close()
        return self.lines

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def index(self, prefix):
        for i, x in enumerate(self.lines):
            if x.startswith(prefix):
                return i
        raise AssertionError("no line starting %r in:\n%s" % (prefix, "\n".join(self.lines)))

    def match(self, rx):
        found = [m for m in (rx.match(x) for x in self.lines) if m]
        assert len(found) == 1, "\n".join(self.lines)
        return found[0]

    def describe(self):
        return "%s\nrc=%s\nstdout:\n%s\nstderr:\n%s" % (" ".join(self.cmd), getattr(self, "rc", None),
                                                        "\n".join(self.lines), getattr(self, "stderr", ""))


def _call(node, caller_extra=(), callee_extra=(), duration=1.5):
    bob = Human(node, "bob", "--answer", *callee_extra)
    try:
        assert bob.wait_line("registered as sip:bob@localhost"), bob.describe()
        alice = Human(node, "alice", "--call", "sip:bob@localhost", "--duration", duration, *caller_extra)
        alice.wait()
        bob.wait()
    finally:
        bob.kill()
    return alice, bob


def test_secure_call_shows_state_sas_and_the_end(node):
    alice, bob = _call(node)
    info = alice.describe() + "\n" + bob.describe()
    assert alice.rc == 0 and bob.rc == 0, info
    sas = []
    for ag, how in ((alice, "local hangup (duration reached)"), (bob, "remote hangup")):
        order = [ag.index("registered as sip:"), ag.index("answered ("),
                 ag.index("WAITING for ZRTP: zrtp=mandatory: no media is sent until ZRTP succeeds"),
                 ag.index("SECURE  SAS: "), ag.index("call ended: ")]
        assert order == sorted(order), info
        s = ag.match(SECURE)
        assert s.group(6) == "new", info
        sas.append(s.group(1))
        assert ag.lines[order[3] + 1].strip().startswith("read the SAS to your peer"), info
        e = ag.match(ENDED)
        assert e.group(1) == how and e.group(2) == "was secure", info
        rtp_sent, rtp_recv, srtp_sent, srtp_recv = (int(e.group(i)) for i in (3, 4, 5, 6))
        assert rtp_sent == srtp_sent > 20 and rtp_recv == srtp_recv > 20, info   # nothing in clear
        assert ag.lines[ag.index("call ended: ") + 1].strip().startswith("RTCP: "), info
        assert not any(x.startswith(("NOT SECURE", "*** WARNING")) for x in ag.lines), info
    assert sas[0] == sas[1], info


def test_cache_mismatch_is_shown_loudly(node, tmp_path):
    ca, cb = str(tmp_path / "alice.zid"), str(tmp_path / "bob.zid")
    alice, bob = _call(node, ("--cache", ca), ("--cache", cb), duration=0.5)
    assert bob.match(SECURE).group(6) == "new", bob.describe()
    assert not any("MISMATCH" in x for x in bob.lines), bob.describe()
    os.remove(ca)                            # alice lost her secrets; her ZID (alice.zid.id) stays
    with open(ca + ".id") as f:
        alice_zid = f.read().strip()
    alice, bob = _call(node, ("--cache", ca), ("--cache", cb), duration=0.5)
    info = alice.describe() + "\n" + bob.describe()
    sas = bob.match(SECURE).group(1)
    assert bob.match(SECURE).group(6) == "mismatch", info
    i = bob.index("*** WARNING: ZRTP CACHE MISMATCH")
    assert bob.lines[i] == "*** WARNING: ZRTP CACHE MISMATCH with peer ZID %s ***" % alice_zid, info
    assert bob.lines[i + 1].startswith("*** the peer's ZID cache does not match ours"), info
    assert "man-in-the-middle" in bob.lines[i + 1] and bob.lines[i + 1].endswith("SAS is %s ***" % sas), info
    assert alice.match(SECURE).group(1) == sas, info
