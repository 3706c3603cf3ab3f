"""The agent against a peer without ZRTP (a sipp UAS that answers with plain PCMA and plays clear RTP):
`--zrtp optional` connects, carries audio in clear and reports `insecure`; `--zrtp mandatory` never sends a
clear RTP packet (checked with a capture of what reaches the peer's media port: ZRTP Hellos only), refuses
the peer's clear RTP, tells the user why and hangs up."""
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from nodeproc import free_port, free_port_run, REPO
from agentproc import Agent, read_wav

SCENARIO = os.path.join(REPO, "tests_host", "sipp", "agent", "uas_plain_rtp.xml")
TSHARK = shutil.which("tshark")

pytestmark = pytest.mark.skipif(not (shutil.which("sipp") and TSHARK), reason="needs sipp and tshark")


class _Peer:
    """sipp as registrar + plain-RTP callee, and tshark capturing what arrives at its media port."""

    def __init__(self, tmp):
        self.tmp = str(tmp)
        self.sip_port = free_port("udp")
        self.media_port = free_port_run(4)  # sipp binds audio and video RTP/RTCP from here
        self.pcap = os.path.join(self.tmp, "peer.pcap")
        self.cap_err = open(os.path.join(self.tmp, "tshark.err"), "w")
        self.cap = subprocess.Popen([TSHARK, "-i", "lo", "-f", "udp dst port %d" % self.media_port, "-w", self.pcap,
                                     "-q"], stdout=subprocess.DEVNULL, stderr=self.cap_err, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and self.cap.poll() is None:
            with open(self.cap_err.name) as f:
                if "Capturing on" in f.read():
                    break
            time.sleep(0.05)
        self.sipp = subprocess.Popen(["sipp", "-sf", SCENARIO, "-i", "127.0.0.1", "-p", str(self.sip_port),
                                      "-mi", "127.0.0.1", "-mp", str(self.media_port), "-m", "3", "-nostdin",
                                      "-timeout", "25s"], cwd=self.tmp, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        time.sleep(0.3)          # sipp binds its socket; a REGISTER sent earlier is retransmitted anyway

    def stop(self):
        for p, sig in ((self.sipp, signal.SIGTERM), (self.cap, signal.SIGINT)):
            if p.poll() is None:
                p.send_signal(sig)
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(timeout=10)
        self.cap_err.close()

    def first_bytes(self):
        """First payload byte of every UDP datagram that reached the peer's media port (0x80 RTP, 0x10 ZRTP)."""
        p = subprocess.run([TSHARK, "-r", self.pcap, "-T", "fields", "-e", "udp.payload"], capture_output=True,
                           text=True, timeout=60)
        return [int(line.strip()[:2], 16) for line in p.stdout.splitlines() if line.strip()]


def _run(tmp, policy, *extra):
    peer = _Peer(tmp)
    try:
        a = Agent("sip:alice@localhost", "pw-alice", ("127.0.0.1", peer.sip_port), "--call",
                  "sip:plain@localhost", "--zrtp", policy, *extra, timeout=25)
        a.wait()
    finally:
        peer.stop()
    return a, peer.first_bytes()


def test_optional_connects_in_clear_and_says_insecure(tmp_path):
    rec = str(tmp_path / "rec.wav")
    a, firsts = _run(tmp_path, "optional", "--duration", 5, "--record", rec)
    info = a.describe()
    names = [e["event"] for e in a.events()]
    assert names[:4] == ["registered", "ringing", "answered", "insecure"], info
    assert "secure" not in names, info
    reasons = [e["reason"] for e in a.events() if e["event"] == "insecure"]
    assert any("ZRTP failed" in r and "clear" in r for r in reasons), info   # the Hello was never answered
    ended = a.first("ended")
    assert ended["secure"] is False and ended["rtp_sent"] > 100 and ended["rtp_received"] > 50, info
    assert firsts.count(0x80) > 100 and firsts.count(0x10) > 0, firsts[:20]
    # the peer's clear PCMA speech was played: the recording is not silence
    assert max(abs(x) for x in read_wav(rec)) > 1000


def test_mandatory_sends_no_clear_media_and_says_why(tmp_path):
    a, firsts = _run(tmp_path, "mandatory", "--duration", 15)
    info = a.describe()
    names = [e["event"] for e in a.events()]
    assert "secure" not in names and "answered" in names, info
    why = [e["reason"] for e in a.events() if e["event"] == "insecure"]
    assert why and "mandatory" in why[-1] and "no media was sent in clear" in why[-1], info
    ended = a.first("ended")
    assert ended["rtp_sent"] == 0 and ended["dropped_clear"] > 10 and ended["reason"].startswith("ZRTP failed"), info
    assert a.rc == 4, info
    # packet evidence: only ZRTP (first byte 0x10) ever reached the peer's media port, never RTP (0x80)
    assert firsts and all(b == 0x10 for b in firsts), firsts[:20]
