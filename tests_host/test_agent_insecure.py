"""The agent against a peer without ZRTP (a sipp UAS that answers with plain PCMA and plays clear RTP):
`--zrtp optional` connects, carries audio in clear and reports `insecure`; `--zrtp mandatory` never sends a
clear RTP or RTCP packet (checked with a capture of all loopback UDP: what reaches the peer's media port and
media port + 1, where RTCP goes without rtcp-mux, and whatever leaves any port the agent has open, is SIP or
ZRTP only), refuses the peer's clear RTP, tells the user it waits for ZRTP and then why it hangs up."""
import os
import shutil
import subprocess
import time

import pytest

from nodeproc import free_port, free_port_run, REPO
from agentproc import START_S, Agent, read_wav
from capture import Capture, SIP_STARTS, is_rtp, is_zrtp, udp_ports

SCENARIO = os.path.join(REPO, "tests_host", "sipp", "agent", "uas_plain_rtp.xml")

pytestmark = pytest.mark.skipif(not shutil.which("sipp"), reason="needs sipp")


class _Peer:
    """sipp as registrar + plain-RTP callee, and tshark capturing what arrives at its media port."""

    def __init__(self, tmp):
        self.tmp = str(tmp)
        self.sip_port = free_port("udp")
        self.media_port = free_port_run(4)  # sipp binds audio and video RTP/RTCP from here
        self.cap = Capture(os.path.join(self.tmp, "peer.pcap")).start()
        self.sipp = subprocess.Popen(["sipp", "-sf", SCENARIO, "-i", "127.0.0.1", "-p", str(self.sip_port),
                                      "-mi", "127.0.0.1", "-mp", str(self.media_port), "-m", "3", "-nostdin",
                                      "-timeout", "25s"], cwd=self.tmp, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        time.sleep(0.3)          # sipp binds its socket; a REGISTER sent earlier is retransmitted anyway

    def stop(self):
        if self.sipp.poll() is None:
            self.sipp.terminate()
            try:
                self.sipp.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.sipp.kill()
                self.sipp.wait(timeout=10)
        self.cap.stop()

    def packets(self):
        """(source port, destination port, payload) of every UDP datagram captured on loopback."""
        return self.cap.packets()


def _run(tmp, policy, *extra):
    """Returns the agent, the captured datagrams and the UDP ports the agent process had open."""
    peer = _Peer(tmp)
    try:
        a = Agent("sip:alice@localhost", "pw-alice", ("127.0.0.1", peer.sip_port), "--call",
                  "sip:plain@localhost", "--zrtp", policy, *extra, timeout=25)
        assert a.wait_event("registered", START_S) is not None, a.describe()
        ports = udp_ports(a.proc.pid)
        a.wait()
    finally:
        peer.stop()
    pkts = peer.packets()
    peer.firsts = [p[0] for s, d, p in pkts if d == peer.media_port and p]
    return a, peer, pkts, ports


def test_optional_connects_in_clear_and_says_insecure(tmp_path):
    rec = str(tmp_path / "rec.wav")
    a, peer, _, _ = _run(tmp_path, "optional", "--duration", 5, "--record", rec)
    firsts = peer.firsts
    info = a.describe()
    names = [e["event"] for e in a.events()]
    assert names[:4] == ["registered", "ringing", "answered", "insecure"], info
    assert "waiting" not in names, info        # optional does not wait: media flows in clear at once
    assert "secure" not in names, info
    reasons = [e["reason"] for e in a.events() if e["event"] == "insecure"]
    assert any("ZRTP failed" in r and "clear" in r for r in reasons), info   # the Hello was never answered
    ended = a.first("ended")
    assert ended["secure"] is False and ended["rtp_sent"] > 100 and ended["rtp_received"] > 50, info
    assert firsts.count(0x80) > 100 and firsts.count(0x10) > 0, firsts[:20]
    # the peer's clear PCMA speech was played: the recording is not silence
    assert max(abs(x) for x in read_wav(rec)) > 1000


def test_mandatory_sends_no_clear_media_and_says_why(tmp_path):
    a, peer, pkts, ports = _run(tmp_path, "mandatory", "--duration", 15)
    info = a.describe()
    names = [e["event"] for e in a.events()]
    assert "secure" not in names and "answered" in names, info
    # told once, right after the answer, that nothing is sent until ZRTP succeeds; then why it gives up
    assert names.count("waiting") == 1 and names.index("answered") + 1 == names.index("waiting"), info
    assert "no media is sent until ZRTP succeeds" in a.first("waiting")["reason"], info
    assert names.index("waiting") < names.index("insecure"), info
    why = [e["reason"] for e in a.events() if e["event"] == "insecure"]
    assert why and "mandatory" in why[-1] and "no media was sent in clear" in why[-1], info
    ended = a.first("ended")
    assert ended["rtp_sent"] == 0 and ended["dropped_clear"] > 10 and ended["reason"].startswith("ZRTP failed"), info
    assert a.rc == 4, info
    # packet evidence. The capture works: the peer's clear RTP reached the agent's media port
    assert len(ports) == 2, ports                     # the agent's SIP and media sockets
    assert sum(1 for s, d, p in pkts if s == peer.media_port and d in ports and is_rtp(p)) > 10, len(pkts)
    # to the peer's RTP port and RTP port + 1 (RTCP without rtcp-mux): ZRTP Hellos only, never RTP or RTCP
    to_media = [p for s, d, p in pkts if d in (peer.media_port, peer.media_port + 1)]
    assert sum(1 for p in to_media if is_zrtp(p)) > 0, len(pkts)
    assert all(is_zrtp(p) for p in to_media), [p[:12] for p in to_media if not is_zrtp(p)][:5]
    # and from any port the agent has open, whatever the destination: SIP or ZRTP, nothing RTP-shaped
    sent = [(s, d, p) for s, d, p in pkts if s in ports]
    assert sum(1 for s, d, p in sent if p.startswith(b"INVITE ")) >= 1, len(sent)
    bad = [(s, d, p[:12]) for s, d, p in sent if is_rtp(p) or not (is_zrtp(p) or p.startswith(SIP_STARTS))]
    assert bad == [], bad[:5]
