"""Acceptance: two real linphonec phones with ZRTP mandatory call each other through the node (issue 5).

The node only forwards signalling; the phones run ZRTP (RFC 6189) end to end. Both must report a fully
encrypted call with the same SAS (§7: the SAS both users compare is derived from the shared secret, so equal
strings mean no one in the middle, the node included, holds a key), and a packet capture on `lo` must show
RTP/ZRTP only between the two phones' RTP ports while every packet to or from the node's port is SIP.
Every wait is bounded; processes are stopped in finally blocks.
"""
import os
import re
import time

import pytest

import nodeproc
import linphone
from capture import Capture, TSHARK

ENCRYPTED = r"Call (\d+) is (fully|not fully) encrypted(?: and auth token is (\w+))?"
MEDIA_S = 1.5           # the call stays up this long after ZRTP finished, so SRTP flows both ways

pytestmark = pytest.mark.skipif(not (linphone.available() and os.path.exists(TSHARK)),
                                reason="needs linphonec (linphone-cli) and tshark")


@pytest.fixture
def tmp(tmp_path):
    return str(tmp_path)


def _explain(node, phones):
    out = ["--- node ---", node.output()[-3000:]]
    for p in phones:
        out += ["--- %s stdout ---" % p.name, p.output()[-2000:],
                "--- %s log (tail) ---" % p.name, p.log()[-3000:]]
    return "\n".join(out)


def test_two_linphones_zrtp_call_through_the_node(tmp):
    node = nodeproc.Node(os.path.join(tmp, "node"), users=[("alice", "alice-pw", "localhost"),
                                                            ("bob", "bob-pw", "localhost")]).start()
    # distinct even RTP ports (RTCP on +1); the capture filter below names them
    ra, rb = nodeproc.free_port_run(4), nodeproc.free_port_run(4)  # audio and video RTP/RTCP each
    alice = linphone.Linphone(tmp, "alice", "alice", "alice-pw", "localhost", node.udp, nodeproc.free_port(), ra)
    bob = linphone.Linphone(tmp, "bob", "bob", "bob-pw", "localhost", node.udp, nodeproc.free_port(), rb)
    phones = (alice, bob)
    np = node.udp[1]
    cap = Capture(os.path.join(tmp, "call.pcap"),
                  "udp and (port %d or port %d or port %d or port %d or port %d)" % (np, ra, ra + 1, rb, rb + 1))
    try:
        alice.start()
        bob.start()
        assert alice.wait_registered() and bob.wait_registered(), _explain(node, phones)
        tone = linphone.write_tone(os.path.join(tmp, "tone.wav"))
        for p in phones:
            p.command("soundcard use files")  # no sound card here: audio comes from / goes to files
        cap.start()
        t0 = time.monotonic()
        alice.command("call sip:bob@localhost")
        ma = alice.wait_out(ENCRYPTED, linphone.CALL_S)
        mb = bob.wait_out(ENCRYPTED, 20)
        zrtp_s = time.monotonic() - t0
        assert ma is not None and mb is not None, _explain(node, phones)
        assert ma.group(2) == "fully" and mb.group(2) == "fully", (ma.group(0), mb.group(0))
        sas_a, sas_b = ma.group(3), mb.group(3)
        assert sas_a and len(sas_a) == 4 and sas_a == sas_b, (ma.group(0), mb.group(0))
        assert alice.wait_out(r"Call \d+ with sip:bob@localhost connected", 1)
        assert bob.wait_out(r"Call \d+ with sip:alice@localhost connected", 1)
        # the negotiated ZRTP session as liblinphone logged it: same SAS on both sides
        for p in phones:
            assert p.wait_log(r"SAS is %s" % re.escape(sas_a), 2) is not None, p.log()[-3000:]
        for p in phones:
            p.command("play " + tone)  # so SRTP flows both ways
        time.sleep(MEDIA_S)  # keep the call up (a real-time media interval, not a protocol timer)
        alice.command("terminate")
        assert alice.wait_out(r"Call \d+ with sip:bob@localhost ended", 20), _explain(node, phones)
        assert bob.wait_out(r"Call \d+ with sip:alice@localhost ended", 20), _explain(node, phones)
    finally:
        for p in phones:
            p.stop()
        cap.stop()
        node.stop()
    # packet evidence: the node saw SIP only; media (ZRTP, then SRTP) went straight between the phones
    to_node = cap.count("udp.port == %d" % np)
    not_sip_at_node = cap.count("udp.port == %d && !sip" % np)
    decode = ["udp.port==%d,rtp" % ra, "udp.port==%d,rtp" % rb]
    a_to_b = cap.count("udp.srcport == %d && udp.dstport == %d" % (ra, rb))
    b_to_a = cap.count("udp.srcport == %d && udp.dstport == %d" % (rb, ra))
    zrtp = cap.count("zrtp && ((udp.srcport == %d && udp.dstport == %d) || (udp.srcport == %d && udp.dstport == %d))"
                     % (ra, rb, rb, ra), decode)
    srtp = cap.count("rtp && !zrtp && udp.srcport == %d && udp.dstport == %d" % (ra, rb), decode)
    media_elsewhere = cap.count("(udp.port == %d || udp.port == %d) && !(udp.port == %d && udp.port == %d)"
                                " && !(udp.port == %d && udp.port == %d)" % (ra, rb, ra, rb, ra + 1, rb + 1))
    print("ZRTP call: SAS %s, encrypted %.2f s after dialling; packets: %d SIP at the node, %d a->b, %d b->a "
          "(%d ZRTP, %d SRTP a->b)" % (sas_a, zrtp_s, to_node, a_to_b, b_to_a, zrtp, srtp))
    assert to_node >= 6 and not_sip_at_node == 0, (to_node, not_sip_at_node)
    assert a_to_b > 20 and b_to_a > 20, (a_to_b, b_to_a)
    assert zrtp >= 8, zrtp   # Hello, HelloACK, Commit, DHPart1/2, Confirm1/2, Conf2ACK at least
    assert srtp > 10, srtp
    assert media_elsewhere == 0, media_elsewhere
