"""Telephone-event receive (RFC 4733) through the real agent CLI: a sipp callee answers with PCMA and
telephone-event/8000 on payload type 101 and plays sipp's own captures of the digits 1, 4 and # (RFC 2833
senders: the end packet three times); the agent (--zrtp optional, so clear media is accepted) reports each
digit once as a `dtmf` event, in order. With --zrtp mandatory the same clear packets are refused: no digit."""
import shutil
import signal
import subprocess
import time

import pytest

from nodeproc import free_port, free_port_run
from agentproc import Agent

PCAPS = "/usr/share/sip-tester"
DIGITS = (("1", "dtmf_2833_1.pcap"), ("4", "dtmf_2833_4.pcap"), ("#", "dtmf_2833_pound.pcap"))

pytestmark = pytest.mark.skipif(not shutil.which("sipp"), reason="needs sipp")

_REPLY = """
      SIP/2.0 %s
      [last_Via:]
      [last_From:]
      [last_To:]%s
      [last_Call-ID:]
      [last_CSeq:]
%s"""


def _scenario():
    """A registrar (REGISTER -> 200) and a callee whose SDP offers telephone-event, playing the digits."""
    plays = "".join('  <nop><action><exec play_pcap_audio="%s/%s"/></action></nop>\n'
                    '  <pause milliseconds="500"/>\n' % (PCAPS, f) for _, f in DIGITS)
    contact = "      Contact: <sip:dtmf@[local_ip]:[local_port]>\n"
    sdp = ("      Content-Type: application/sdp\n      Content-Length: [len]\n\n      v=0\n"
           "      o=dtmf 1 1 IN IP[local_ip_type] [local_ip]\n      s=-\n      c=IN IP[media_ip_type] [media_ip]\n"
           "      t=0 0\n      m=audio [media_port] RTP/AVP 8 101\n      a=rtpmap:8 PCMA/8000\n"
           "      a=rtpmap:101 telephone-event/8000\n      a=fmtp:101 0-15\n")
    return ("""<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="uas_dtmf">
  <recv request="REGISTER" optional="true" next="register"/>
  <recv request="INVITE"/>
  <send><![CDATA[%s]]></send>
  <send retrans="500"><![CDATA[%s]]></send>
  <recv request="ACK"/>
%s  <recv request="BYE"/>
  <send><![CDATA[%s]]></send>
  <nop next="end"/>
  <label id="register"/>
  <send><![CDATA[%s]]></send>
  <label id="end"/>
</scenario>
""" % (_REPLY % ("180 Ringing", ";tag=[pid]U[call_number]", contact + "      Content-Length: 0\n"),
       _REPLY % ("200 OK", ";tag=[pid]U[call_number]", contact + sdp),
       plays,
       _REPLY % ("200 OK", "", "      Content-Length: 0\n"),
       _REPLY % ("200 OK", ";tag=[pid]R[call_number]", "      [last_Contact:];expires=600\n"
                 "      Content-Length: 0\n")))


def _call(tmp_path, policy):
    xml = str(tmp_path / "uas_dtmf.xml")
    with open(xml, "w") as f:
        f.write(_scenario())
    sip_port, media_port = free_port("udp"), free_port_run(4)
    sipp = subprocess.Popen(["sipp", "-sf", xml, "-i", "127.0.0.1", "-p", str(sip_port), "-mi", "127.0.0.1",
                             "-mp", str(media_port), "-m", "3", "-nostdin", "-timeout", "25s"], cwd=str(tmp_path),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    try:
        time.sleep(0.3)          # sipp binds its socket; an earlier REGISTER would be retransmitted anyway
        a = Agent("sip:alice@localhost", "pw-alice", ("127.0.0.1", sip_port), "--call", "sip:dtmf@localhost",
                  "--zrtp", policy, "--duration", 3, timeout=25)
        a.wait()
    finally:
        if sipp.poll() is None:
            sipp.send_signal(signal.SIGTERM)
            try:
                sipp.wait(timeout=10)
            except subprocess.TimeoutExpired:
                sipp.kill()
                sipp.wait(timeout=10)
    return a


def test_telephone_events_are_reported_once_each_in_order(tmp_path):
    a = _call(tmp_path, "optional")
    info = a.describe()
    assert a.first("answered") is not None, info
    assert [e["digit"] for e in a.events() if e["event"] == "dtmf"] == [d for d, _ in DIGITS], info
    names = [e["event"] for e in a.events()]
    assert names.index("answered") < names.index("dtmf") < names.index("ended"), info


def test_clear_telephone_events_are_refused_under_mandatory(tmp_path):
    a = _call(tmp_path, "mandatory")
    info = a.describe()
    assert a.first("answered") is not None and a.first("dtmf") is None, info
    assert a.first("ended")["dropped_clear"] >= 30, info      # 3 digits x 10 packets, all refused
