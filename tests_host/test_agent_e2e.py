"""Two `microwitch agent` processes register to a real node on loopback and call each other: ZRTP makes both
report `secure` with the same SAS, audio crosses SRTP exactly (a µ-law-exact signal comes out sample for
sample), the ZID cache reports `match` on the next call and `mismatch` when one side lost its secrets. A capture
of all loopback UDP during the call proves the node never sees media: every datagram to or from one of the
node's ports is SIP, and the RTP/SRTP/ZRTP flows only between the agents' own ports."""
import os


from agentproc import START_S, Agent, exact_signal, write_wav, read_wav, find, node  # noqa: F401 (node: the module's fixture)
from capture import Capture, SIP_STARTS, is_rtp, is_zrtp, udp_ports


def _call(node, caller_extra=(), callee_extra=(), duration=1.5, ports=None):
    """One call alice -> bob; with a dict `ports`, fills in the UDP ports each agent process has open."""
    bob = Agent("sip:bob@localhost", "pw-bob", node.udp, "--answer", *callee_extra, timeout=30)
    try:
        assert bob.wait_event("registered", START_S) is not None, bob.describe()
        if ports is not None:
            ports["bob"] = udp_ports(bob.proc.pid)
        alice = Agent("sip:alice@localhost", "pw-alice", node.udp, "--call", "sip:bob@localhost",
                      "--duration", duration, *caller_extra, timeout=30)
        if ports is not None:
            assert alice.wait_event("registered", START_S) is not None, alice.describe()
            ports["alice"] = udp_ports(alice.proc.pid)
        alice.wait()
        bob.wait()
    finally:
        bob.kill()
    return alice, bob


def test_secure_call_same_sas_and_exact_audio_both_ways(node, tmp_path):
    lead = [0] * 4000                      # 0.5 s of silence: the first frames may race the last ZRTP message
    sig_a = exact_signal(12000, 1)
    sig_b = exact_signal(12000, 2)
    a_in, b_in = str(tmp_path / "a_in.wav"), str(tmp_path / "b_in.wav")
    a_out, b_out = str(tmp_path / "a_out.wav"), str(tmp_path / "b_out.wav")
    write_wav(a_in, lead + sig_a)
    write_wav(b_in, lead + sig_b)
    node_ports = udp_ports(node.pid)
    assert node.udp[1] in node_ports
    ports = {}
    cap = Capture(str(tmp_path / "lo.pcap")).start()
    try:
        alice, bob = _call(node, ("--play", a_in, "--record", a_out), ("--play", b_in, "--record", b_out),
                           duration=3, ports=ports)
    finally:
        cap.stop()
    info = alice.describe() + "\n" + bob.describe()
    assert alice.rc == 0 and bob.rc == 0, info
    for ag in (alice, bob):
        names = [e["event"] for e in ag.events()]
        assert names[0] == "registered", info
        assert "insecure" not in names, info
        # zrtp=mandatory: once answered, the user is told (once) that no media flows until ZRTP succeeds
        assert names.count("waiting") == 1, info
        assert names.index("answered") < names.index("waiting") < names.index("secure"), info
    assert "ringing" in [e["event"] for e in alice.events()]
    assert bob.first("incoming")["from"] == "sip:alice@localhost"
    sa, sb = alice.first("secure"), bob.first("secure")
    assert sa and sb, info
    assert sa["sas"] == sb["sas"] and len(sa["sas"]) == 4
    assert (sa["cipher"], sa["ka"]) == (sb["cipher"], sb["ka"])
    ea, eb = alice.first("ended"), bob.first("ended")
    assert ea["secure"] and eb["secure"]
    assert ea["srtp_sent"] > 100 and ea["srtp_received"] > 100 and ea["dropped_clear"] == 0, info
    assert eb["rtp_sent"] == eb["srtp_sent"]          # nothing went out in clear
    assert ea["reason"].startswith("local hangup") and eb["reason"] == "remote hangup"
    got_b, got_a = read_wav(b_out), read_wav(a_out)
    i = find(got_b, sig_a[:32])
    assert i >= 0, "alice's signal not found in bob's recording"
    assert got_b[i:i + len(sig_a)] == sig_a
    j = find(got_a, sig_b[:32])
    assert j >= 0, "bob's signal not found in alice's recording"
    assert got_a[j:j + len(sig_b)] == sig_b
    # the node only coordinates: every datagram to or from any of its ports is SIP, none is RTP/SRTP/ZRTP;
    # the media flows between the agents' own ports (other loopback traffic on the machine is ignored)
    assert len(ports["alice"]) == len(ports["bob"]) == 2, ports     # one SIP and one media socket each
    assert not (ports["alice"] | ports["bob"]) & node_ports, (ports, node_ports)
    pkts = cap.packets()
    at_node = [(s, d, p) for s, d, p in pkts if s in node_ports or d in node_ports]
    assert len(at_node) >= 10, len(pkts)
    for s, d, p in at_node:
        assert not is_rtp(p) and not is_zrtp(p), (s, d, p[:40])
        assert p.startswith(SIP_STARTS), (s, d, p[:40])
    assert any(p.startswith(b"INVITE ") and d in node_ports for s, d, p in at_node)
    for src, dst in (("alice", "bob"), ("bob", "alice")):
        flow = [p for s, d, p in pkts if s in ports[src] and d in ports[dst]]
        assert sum(1 for p in flow if is_zrtp(p)) >= 3, (src, dst, len(flow))    # Hello .. Confirm
        assert sum(1 for p in flow if is_rtp(p)) > 100, (src, dst, len(flow))    # 3 s of SRTP


def test_rtcp_reports_both_ways_with_round_trip_time(node):
    # RFC 3550 6.2/A.7 timing: each side's first report comes 1.0-3.1 s after media starts and later ones at
    # most 6.2 s apart, so a 10 s call guarantees that each side's SR is answered by a report from the other
    # (the caller's last report, sent with its RTCP BYE, is the callee's second chance)
    alice, bob = _call(node, duration=10)
    info = alice.describe() + "\n" + bob.describe()
    assert alice.rc == 0 and bob.rc == 0, info
    for ag in (alice, bob):
        e = ag.first("ended")
        r = e["rtcp"]
        assert e["secure"] and r["mux"], info                  # both offer and accept rtcp-mux
        assert r["sent"] >= 3 and r["received"] >= 2, info
        assert r["dropped"] == 0 and r["withheld"] <= 2, info
        assert r["rtt_ms"] is not None and 0 <= r["rtt_ms"] <= r["rtt_max_ms"] < 200, info
        assert r["in"]["expected"] > 400 and r["in"]["lost"] <= 2 and r["in"]["jitter_ms"] < 40, info
        assert r["out"] is not None and r["out"]["lost"] <= 2 and r["out"]["jitter_ms"] < 40, info
    # the caller's BYE compound reaches the callee before the SIP BYE does: it has one report more
    assert bob.first("ended")["rtcp"]["received"] >= alice.first("ended")["rtcp"]["sent"] - 1, info


def test_cache_new_then_match_then_mismatch(node, tmp_path):
    ca, cb = str(tmp_path / "alice.zid"), str(tmp_path / "bob.zid")
    states = []
    for step in range(3):
        if step == 2:
            os.remove(ca)                  # alice lost her cache; her ZID (alice.zid.id) is unchanged
        alice, bob = _call(node, ("--cache", ca), ("--cache", cb), duration=0.5)
        info = alice.describe() + "\n" + bob.describe()
        sa, sb = alice.first("secure"), bob.first("secure")
        assert sa and sb, info
        assert sa["sas"] == sb["sas"]
        states.append((sa["cache"], sb["cache"]))
        if step == 2:
            mm = bob.first("cache_mismatch")
            assert mm is not None and mm["sas"] == sb["sas"] and "man-in-the-middle" in mm["reason"], info
    assert states[0] == ("new", "new")
    assert states[1] == ("match", "match")
    assert states[2][1] == "mismatch" and states[2][0] != "match"


def test_deleted_identity_gives_a_stranger(node, tmp_path):
    ca, cb = str(tmp_path / "alice.zid"), str(tmp_path / "bob.zid")
    _call(node, ("--cache", ca), ("--cache", cb), duration=0.3)
    os.remove(ca)
    os.remove(ca + ".id")
    alice, bob = _call(node, ("--cache", ca), ("--cache", cb), duration=0.3)
    # a fresh ZID is a stranger to bob, not an impostor: "new" on both sides (RFC 6189 §4.9)
    assert alice.first("secure")["cache"] == "new" and bob.first("secure")["cache"] == "new"


def test_bad_arguments_name_the_field(tmp_path):
    bad = str(tmp_path / "stereo.wav")
    write_wav(bad, [0] * 320, channels=2)
    a = Agent("sip:alice@localhost", "pw", ("127.0.0.1", 9), "--call", "sip:bob@localhost", "--play", bad,
              timeout=5)
    a.wait()
    assert a.rc == 2 and "--play" in a.stderr and "mono" in a.stderr
    a = Agent("alice@localhost", "pw", ("127.0.0.1", 9), "--answer", timeout=5)
    a.wait()
    assert a.rc == 2 and "--user" in a.stderr


def test_wrong_password_reports_registration_failure(node):
    a = Agent("sip:alice@localhost", "nope", node.udp, "--answer", timeout=10)
    a.wait()
    err = a.first("error")
    assert a.rc == 3 and err and "registration failed" in err["reason"], a.describe()
