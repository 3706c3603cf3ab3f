"""Our agent and a headless linphonec (liblinphone 5.1, bzrtp) with ZRTP mandatory call each other through the
node, in both directions: both report an encrypted call with the same SAS and audio arrives on both sides
(non-silent recordings). RTCP crosses both ways as SRTCP: our agent authenticates linphone's reports and
linphone's libsrtp accepts ours (its end-of-call statistics count them; no srtp_unprotect_rtcp failure).
Every wait is bounded; processes are stopped in finally blocks."""
import array
import os
import re
import sys
import wave

import pytest

import nodeproc
import linphone
from agentproc import START_S, Agent

ENCRYPTED = r"Call (\d+) is (fully|not fully) encrypted(?: and auth token is (\w+))?"

pytestmark = pytest.mark.skipif(not linphone.available(), reason="needs linphonec (linphone-cli)")


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    n = nodeproc.Node(str(tmp_path_factory.mktemp("node")), transports=("udp",),
                      users=[("alice", "pw-alice", "localhost"), ("bob", "pw-bob", "localhost")])
    n.start()
    yield n
    n.stop()


def _peak(path):
    """Largest absolute sample of a 16-bit WAV (any rate/channels); 0 for a missing or empty file."""
    if not os.path.exists(path):
        return 0
    with wave.open(path, "rb") as w:
        if w.getsampwidth() != 2:
            return 0
        a = array.array("h")
        a.frombytes(w.readframes(w.getnframes()))
    if sys.byteorder == "big":
        a.byteswap()
    return max([abs(x) for x in a] or [0])


def _phone(tmp, node):
    ph = linphone.Linphone(str(tmp), "bob", "bob", "pw-bob", "localhost", node.udp, nodeproc.free_port(),
                           nodeproc.free_port_run(4))
    ph.start()
    if not ph.wait_registered():
        log = ph.log()[-3000:]
        ph.stop()  # a phone left running would load the machine for every later test
        raise AssertionError("linphonec did not register:\n" + log)
    ph.command("soundcard use files")
    return ph


def _explain(agent, ph, node):
    return "\n".join([agent.describe(), "--- linphone stdout ---", ph.output()[-3000:],
                      "--- linphone log ---", ph.log()[-4000:], "--- node ---", node.output()[-2000:]])


def _check(agent, ph, node, lin_rec, our_rec):
    info = _explain(agent, ph, node)
    m = ph.wait_out(ENCRYPTED, 1)
    sec = agent.first("secure")
    assert m is not None and sec is not None, info
    assert m.group(2) == "fully", info
    assert sec["sas"] == m.group(3), info
    assert "insecure" not in [e["event"] for e in agent.events()], info
    ended = agent.first("ended")
    assert ended and ended["secure"] and ended["srtp_received"] > 20 and ended["rtp_sent"] == ended["srtp_sent"], info
    assert _peak(lin_rec) > 1000, "linphone recorded silence\n" + info
    assert _peak(our_rec) > 1000, "the agent recorded silence\n" + info
    _check_rtcp(ended["rtcp"], ph, info)


def _check_rtcp(r, ph, info):
    """Linphone sends SRTCP (oRTP reports from ~1.5 s on, with the ZRTP keys and its tag length, 32 bits with
    HS32); we must authenticate it. Ours must pass linphone's libsrtp: oRTP logs its RTCP counters when the
    stream stops ("received rtcp N packets") and mediastreamer logs every SRTCP it refuses."""
    assert r["received"] >= 1 and r["dropped_auth"] == 0 and r["dropped"] == 0, info
    assert r["sent"] >= 1 and r["withheld"] <= 2, info
    assert r["in"]["expected"] > 20 and 0 <= r["in"]["jitter_ms"] < 100, info
    assert r["out"] is not None and r["out"]["lost"] <= 5, info        # linphone's view of our stream
    assert ph.wait_log(r"ortp-message-received rtcp\s+\d+ packets", 5), info
    log = ph.log()
    got = [int(x) for x in re.findall(r"ortp-message-received rtcp\s+(\d+) packets", log)]
    assert got and got[-1] >= 1, "linphone counted none of our RTCP\n" + info
    assert "srtp_unprotect_rtcp" not in log, "linphone refused our SRTCP\n" + info


def test_agent_calls_linphone(node, tmp_path):
    tone = linphone.write_tone(str(tmp_path / "tone.wav"), seconds=4)
    lin_rec, our_rec = str(tmp_path / "lin.wav"), str(tmp_path / "ours.wav")
    ph = _phone(tmp_path, node)
    agent = None
    try:
        ph.command("record " + lin_rec)
        ph.command("play " + tone)
        agent = Agent("sip:alice@localhost", "pw-alice", node.udp, "--call", "sip:bob@localhost", "--play", tone,
                      "--record", our_rec, "--duration", 4, timeout=30)
        agent.wait()
        ph.wait_out(r"Call \d+ with sip:alice@localhost ended", 15)
    finally:
        if agent is not None:
            agent.kill()
        ph.stop()
    _check(agent, ph, node, lin_rec, our_rec)


def test_linphone_calls_agent(node, tmp_path):
    tone = linphone.write_tone(str(tmp_path / "tone.wav"), seconds=4, hz=660.0)
    lin_rec, our_rec = str(tmp_path / "lin.wav"), str(tmp_path / "ours.wav")
    ph = _phone(tmp_path, node)
    agent = None
    try:
        agent = Agent("sip:alice@localhost", "pw-alice", node.udp, "--answer", "--play", tone, "--record", our_rec,
                      "--duration", 4, timeout=30)
        assert agent.wait_event("registered", START_S), agent.describe()
        ph.command("record " + lin_rec)
        ph.command("play " + tone)
        ph.command("call sip:alice@localhost")
        agent.wait()
        ph.wait_out(r"Call \d+ with sip:alice@localhost ended", 15)
    finally:
        if agent is not None:
            agent.kill()
        ph.stop()
    _check(agent, ph, node, lin_rec, our_rec)
    assert re.search(r"Call \d+ with sip:alice@localhost connected", ph.output())
