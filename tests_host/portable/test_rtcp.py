"""RTCP (RFC 3550 6) as the agent runs it: report-block statistics (A.1, A.3, A.8), LSR/DLSR round trips
(6.4.1), the report interval (6.2, 6.3, A.7), compound packets (SR/RR, SDES CNAME, BYE), SRTCP with the
ZRTP tag lengths, and two media sessions exchanging reports on a fake clock (clear and SRTCP)."""
from microwitch.media import rtcp, srtp, demux
from microwitch.media.rtcp import Reporter, RtcpError
from microwitch.media.rtp import RtpReceiver, RtpSender
from microwitch.agent.call import MediaSession
from _lcg import Lcg


def _fixed(value):
    """rand(n) that always answers with `value` (0..65535) for the 2-byte interval draws."""
    def rand(n):
        if n == 2:
            return bytes(((value >> 8) & 0xFF, value & 0xFF))
        return bytes(range(1, n + 1))
    return rand


def _pkt(seq, ts, ssrc=0x55):
    return bytes((0x80, 0)) + (seq & 0xFFFF).to_bytes(2, "big") + (ts & 0xFFFFFFFF).to_bytes(4, "big") + \
        ssrc.to_bytes(4, "big") + bytes(160)


def _raises(fn, *args):
    try:
        fn(*args)
    except RtcpError as e:
        return e.reason
    return None


# -- round trip and NTP -----------------------------------------------------------------------------------

def test_rtt_rfc3550_example():
    # RFC 3550 6.4.1: A = 0xb710:8000, LSR = 0xb705:2000, DLSR = 0x0005:4000 -> delay 0x0006:2000 = 6.125 s
    assert rtcp.rtt_ms(0xB7108000, 0xB7052000, 0x00054000) == 6125
    assert rtcp.rtt_ms(0xB7108000, 0, 0x00054000) is None           # no SR received yet
    # a hair negative (ms clock rounding on loopback) is 0; clearly negative is not a round trip
    assert rtcp.rtt_ms(0x00010000, 0x00010000, 100) == 0
    assert rtcp.rtt_ms(0x00010000, 0x00010000, 0x2000) is None
    # across the 16-bit seconds wrap of the compact format
    assert rtcp.rtt_ms(0x00000800, 0xFFFFF000, 0) == 94            # 0x1800 / 65536 s = 93.75 ms


def test_ntp_compact_form_of_the_ms_clock():
    assert rtcp.ntp_from_ms(1500) == (1 << 32) | (1 << 31)
    assert rtcp.ntp_middle(1500) == 0x00018000
    assert rtcp.ntp_middle(1500) == (rtcp.ntp_from_ms(1500) >> 16) & 0xFFFFFFFF
    assert rtcp.ntp_middle(65536 * 1000 + 250) == 0x00004000       # the seconds wrap at 16 bits


# -- report interval ----------------------------------------------------------------------------------------

def test_interval_rfc3550_formula():
    # two parties, G.711 (500 B/s of RTCP): the 5 s minimum rules, halved before the first report (6.2),
    # times 0.5..1.5, divided by e - 3/2 (6.3.1)
    assert rtcp.interval_ms(2, 2, 500, True, 142, True, 0) == 1026
    assert rtcp.interval_ms(2, 2, 500, True, 142, True, 65535) == 3077
    assert rtcp.interval_ms(2, 2, 500, True, 142, False, 0) == 2052
    assert rtcp.interval_ms(2, 2, 500, True, 142, False, 32768) == 4104
    assert rtcp.interval_ms(2, 2, 500, True, 142, False, 65535) == 6155
    # a thin RTCP bandwidth stretches it past the minimum: 2 members x 200 B / 20 B/s = 20 s
    assert rtcp.interval_ms(2, 2, 20, True, 200, False, 32768) == 16416
    # few senders (<= 25 %): a sender shares a quarter of the bandwidth with the senders only, a receiver
    # three quarters with the receivers
    assert rtcp.interval_ms(8, 1, 100, True, 200, False, 32768) == 8000 * 100000 // 121828
    assert rtcp.interval_ms(8, 1, 100, False, 200, False, 32768) == 18666 * 100000 // 121828


class _Tx:
    def __init__(self):
        self.ssrc = 0x1111
        self.packets = 0
        self.octets = 0
        self.timestamp = 1000

    def timestamp_at(self, now):
        return self.timestamp + 8 * now


def test_reporter_schedule_first_report_then_intervals_with_reconsideration():
    rx = RtpReceiver()
    r = Reporter(_Tx(), rx, _fixed(0), 0)
    assert r.next_time() == 1026 and not r.due(1025)
    assert r.due(1026)
    r.sent(1026, 100)
    assert r.next_time() == 1026 + 2052 and not r.initial
    # reconsideration (6.3.6): the timer fires, a fresh draw says the interval is longer: not yet, re-armed
    # from the last report
    late = Reporter(_Tx(), rx, _fixed(0), 0)
    late.rand = _fixed(65535)
    assert not late.due(1026) and late.next_time() == 3077
    assert late.due(3077)
    # the gap between reports stays within [0.5, 1.5] x 5 s / 1.21828 whatever the draws
    rnd = Lcg(9)
    r2 = Reporter(_Tx(), rx, rnd, 0)
    now = 0
    last = None
    gaps = []
    for _ in range(20000):
        now += 20
        if r2.due(now):
            if last is not None:
                gaps.append(now - last)
            r2.sent(now, 120)
            last = now
        if len(gaps) >= 60:
            break
    assert len(gaps) == 60
    assert min(gaps) >= 2052 and max(gaps) <= 6160 + 20
    mean = sum(gaps) // len(gaps)
    assert 3400 < mean < 5600, mean


# -- statistics of the stream we receive -----------------------------------------------------------------

def test_report_blocks_with_loss_reorder_and_wrap_exact():
    rx = RtpReceiver()
    # 65530..65535, 0..9 across the wrap; 65533, 2 and 3 lost; 5 arrives before 4
    order = [65530, 65531, 65532, 65534, 65535, 0, 1, 5, 4, 6, 7, 8, 9]
    for i, s in enumerate(order):
        assert rx.feed(_pkt(s, 160 * i), ("h", 1), 20 * i) is not None
    b = rx.report_block(1000)
    assert b["highest"] == 65536 + 9
    assert b["lost"] == 3 and b["fraction"] == 3 * 256 // 16        # 16 expected, 13 received
    # next interval: 10..19 without 15
    for s in range(10, 20):
        if s != 15:
            rx.feed(_pkt(s, 160 * s), ("h", 1), 20 * s)
    b = rx.report_block(2000)
    assert b["lost"] == 4 and b["fraction"] == 256 // 10 and b["highest"] == 65536 + 19
    # duplicates: more received than expected in the interval -> fraction 0, cumulative lost shrinks
    for s in (20, 21, 21, 22, 22, 23, 23):
        rx.feed(_pkt(s, 160 * s), ("h", 1), 20 * s)
    b = rx.report_block(3000)
    assert b["fraction"] == 0 and b["lost"] == 1 and b["highest"] == 65536 + 23
    # a quiet interval: nothing expected, nothing lost
    b = rx.report_block(4000)
    assert b["fraction"] == 0 and b["lost"] == 1


def test_jitter_rfc3550_a8():
    rx = RtpReceiver()
    # constant transit: no jitter
    for i in range(10):
        rx.feed(_pkt(i, 160 * i), ("h", 1), 100 + 20 * i)
    assert rx.jitter == 0
    # one packet 10 ms late (D = 80 timestamp units), then on time again (D = 80 back):
    # J = 80/16 = 5, then J = 5 + (80 - 5)/16 = 9.69 -> 9 in the integer form of A.8
    rx.feed(_pkt(10, 1600), ("h", 1), 100 + 200 + 10)
    assert rx.jitter == 5
    rx.feed(_pkt(11, 1760), ("h", 1), 100 + 220)
    assert rx.jitter == 9
    # against the floating-point formula over an irregular pattern
    rx = RtpReceiver()
    j = 0.0
    prev = None
    delays = [0, 3, 1, 7, 2, 2, 9, 0, 4, 1, 6, 3]
    for i, dl in enumerate(delays):
        arrival = 20 * i + dl
        rx.feed(_pkt(i, 160 * i), ("h", 1), arrival)
        transit = arrival * 8 - 160 * i
        if prev is not None:
            j += (abs(transit - prev) - j) / 16
        prev = transit
    assert abs(rx.jitter - j) <= 1, (rx.jitter, j)


# -- compound packets ---------------------------------------------------------------------------------------

def test_compound_sr_then_rr_sdes_cname_and_bye():
    tx = RtpSender(0xABCD, 0, Lcg(1))
    rx = RtpReceiver()
    r = Reporter(tx, rx, Lcg(2), 0)
    for i in range(50):
        tx.packet(bytes(160), i == 0, 20 * i)
    rx.feed(_pkt(7, 0, ssrc=0x77), ("h", 1), 0)
    p = rtcp.parse(r.compound(1000))
    assert [x["type"] for x in p] == [rtcp.SR, rtcp.SDES]
    sr = p[0]
    assert sr["ssrc"] == 0xABCD and sr["packets"] == 50 and sr["octets"] == 8000
    assert sr["ntp"] == rtcp.ntp_from_ms(1000)
    assert sr["rtp_ts"] == (tx.timestamp - 160 + 8 * (1000 - 980)) & 0xFFFFFFFF
    assert len(sr["blocks"]) == 1 and sr["blocks"][0]["ssrc"] == 0x77
    cname = p[1]["chunks"][0][1][1]
    assert p[1]["chunks"][0][0] == 0xABCD and len(cname) == 16   # 96 random bits, base64 (RFC 7022)
    assert cname != Reporter(tx, rx, Lcg(3), 0).cname
    r.sent(1000, 100)
    # nothing sent since: still a sender until the report after next (6.3.8), then RR
    assert rtcp.parse(r.compound(6000))[0]["type"] == rtcp.SR
    r.sent(6000, 100)
    last = rtcp.parse(r.compound(11000, "bye now"))
    assert [x["type"] for x in last] == [rtcp.RR, rtcp.SDES, rtcp.BYE]
    assert last[2]["ssrcs"] == [0xABCD] and last[2]["reason"] == "bye now"
    assert rtcp.parse(r.compound(12000, ""))[2]["reason"] is None


def test_receive_keeps_the_peer_view_and_round_trip():
    a_tx, b_tx = RtpSender(0xA, 0, Lcg(4)), RtpSender(0xB, 0, Lcg(5))
    a_rx, b_rx = RtpReceiver(), RtpReceiver()
    a = Reporter(a_tx, a_rx, Lcg(6), 0)
    b = Reporter(b_tx, b_rx, Lcg(7), 0)
    for i in range(100):
        if i % 10 != 3:                                   # b misses 10 of a's packets
            b_rx.feed(a_tx.packet(bytes(160), False, 20 * i), ("a", 1), 20 * i + 25)
        else:
            a_tx.packet(bytes(160), False, 20 * i)
        a_rx.feed(b_tx.packet(bytes(160), False, 20 * i), ("b", 1), 20 * i + 25)
    # a's SR leaves at 2000 and arrives at 2025; b answers at 3000, a gets it at 3025: 50 ms round trip
    b.receive(a.compound(2000), 2025)
    a.receive(b.compound(3000), 3025)
    assert a.rtt_ms == 50 and a.rtt_max_ms == 50
    assert a.peer_lost == 10 and a.peer_fraction == 10 * 256 // 100 and a.peer_highest == b_rx.extended_max
    assert b.rtt_ms is None                              # a's SR carried no block about b's SR yet
    assert a.received_count == 1 and b.received_count == 1
    st = a.stats()
    assert st["out"]["lost"] == 10 and st["out"]["fraction_pct"] == 9.77 and st["rtt_ms"] == 50
    assert st["in"]["expected"] == 100 and st["in"]["lost"] == 0
    # a BYE from the peer is noted
    a.receive(b.compound(4000, ""), 4025)
    assert a.peer_bye and a.received_count == 2


def test_receive_refuses_malformed_and_non_report_first():
    r = Reporter(_Tx(), RtpReceiver(), Lcg(8), 0)
    sdes_only = rtcp.sdes_cname(5, "x")
    assert _raises(r.receive, sdes_only, 0) == "compound RTCP packet does not start with SR or RR"
    assert _raises(r.receive, rtcp.receiver_report(5)[:6], 0) is not None
    assert _raises(r.receive, b"\x40" + bytes(7), 0) == "RTCP version is not 2"
    assert r.received_count == 0 and not r.peer_heard


# -- SRTCP ----------------------------------------------------------------------------------------------------

def _zrtp_info(auth, swap=False):
    ka, sa, kb, sb = bytes(range(16)), bytes(range(14)), bytes(range(16, 32)), bytes(range(14, 28))
    if swap:
        ka, sa, kb, sb = kb, sb, ka, sa
    return {"cipher": "AES1", "auth": auth, "self_key": ka, "self_salt": sa, "peer_key": kb, "peer_salt": sb,
            "sas": "abcd", "hash": "S256", "ka": "X255", "cache": "new", "verified": False}


def test_srtcp_compounds_round_trip_with_the_zrtp_tag_length():
    tx = RtpSender(0xABCD, 0, Lcg(1))
    tx.packet(bytes(160), True, 0)
    r = Reporter(tx, RtpReceiver(), Lcg(2), 0)
    c = r.compound(1000, "")
    for auth, tag in (("HS80", 10), ("HS32", 4)):
        a_out, a_in = srtp.from_zrtp(_zrtp_info(auth))
        b_out, b_in = srtp.from_zrtp(_zrtp_info(auth, True))
        s = a_out.protect_rtcp(c)
        assert len(s) == len(c) + 4 + tag               # E flag + index, then the tag of the ZRTP auth type
        assert s[8:len(c)] != c[8:]                      # encrypted after the first 8 bytes
        bad = bytearray(s)
        bad[12] ^= 1
        try:
            b_in.unprotect_rtcp(bytes(bad))
            assert False, "tampered SRTCP accepted"
        except srtp.SrtpError as e:
            assert e.reason == "SRTCP authentication failed"
        assert b_in.unprotect_rtcp(s) == c


# -- two media sessions ---------------------------------------------------------------------------------------

A = ("127.0.0.1", 4000)
B = ("127.0.0.1", 5000)


def _remote(addr, mux):
    return {"addr": addr[0], "port": addr[1], "pt": 0, "codec": "PCMU", "dtmf_pt": 101, "zrtp_hash": None,
            "direction": "sendrecv", "rtcp_mux": mux, "rtcp_port": None, "rtcp_addr": addr[0]}


class _Wire:
    """Two MediaSessions joined by a queue with a one-way delay; drop(to, data) may lose packets."""

    def __init__(self, pa, pb, mux=True, delay=25, drop=None, seed=1):
        self.a = MediaSession(pa, Lcg(seed), None, 0)
        self.b = MediaSession(pb, Lcg(seed + 1), None, 0)
        self.delay = delay
        self.drop = drop
        self.q = []
        self.now = 0
        self.sent_to = {"a": [], "b": []}
        self.rtcp = {"a": [], "b": []}
        self.rtcp_at = {"a": [], "b": []}
        self.first_ts = {}
        self._take("a", self.a.start(_remote(B, mux), 0))
        self._take("b", self.b.start(_remote(A, mux), 0))

    def _take(self, who, acts):
        to = "b" if who == "a" else "a"
        for act in acts:
            if act[0] != "send":
                continue
            kind = demux.classify(act[1])
            if kind == demux.RTCP:
                self.rtcp[who].append((act[1], act[2]))
                self.rtcp_at[who].append(self.now)
            elif kind == demux.RTP and who not in self.first_ts:
                self.first_ts[who] = int.from_bytes(act[1][4:8], "big")
            if self.drop is not None and self.drop(to, act[1]):
                continue
            self.q.append((self.now + self.delay, to, act[1]))

    def run(self, ms):
        end = self.now + ms
        while self.now < end:
            self.now += 5
            self._take("a", self.a.tick(self.now))
            self._take("b", self.b.tick(self.now))
            for _ in range(100):
                if not self.q or self.q[0][0] > self.now:
                    break
                _, to, data = self.q.pop(0)
                if to == "a":
                    self._take("a", self.a.receive(data, B, self.now))
                else:
                    self._take("b", self.b.receive(data, A, self.now))


def test_clear_sessions_report_loss_jitter_and_round_trip():
    lost = [0]

    def drop(to, data):
        # every 25th RTP packet from a to b is lost
        if to == "b" and demux.classify(data) == demux.RTP:
            lost[0] += 1
            return lost[0] % 25 == 0
        return False
    w = _Wire("off", "off", delay=25, drop=drop)
    w.run(9000)
    ra, rb = w.a.rtcp_stats(), w.b.rtcp_stats()
    assert ra["sent"] >= 2 and rb["sent"] >= 2 and ra["received"] >= 1 and rb["received"] >= 1
    assert ra["rtt_ms"] == 50 and rb["rtt_ms"] == 50, (ra, rb)
    assert rb["in"]["lost"] == w.b.rx.lost and 12 <= rb["in"]["lost"] <= 18
    assert ra["in"]["lost"] == 0 and ra["in"]["jitter_ms"] == 0.0
    # a's view of its own stream comes from b's latest report
    assert 0 < ra["out"]["lost"] <= rb["in"]["lost"] and 3.0 < ra["out"]["fraction_pct"] < 5.0
    assert ra["mux"] and ra["dropped"] == 0 and ra["withheld"] == 0
    # clear RTCP ("off"), sent to the peer's RTP port with rtcp-mux
    data, dest = w.rtcp["a"][0]
    sr = rtcp.parse(data)[0]
    assert sr["type"] == rtcp.SR and dest == B
    # its RTP timestamp is our sampling clock at that instant (8 per ms since the first frame at 0 ms)
    assert sr["rtp_ts"] == (w.first_ts["a"] + 8 * w.rtcp_at["a"][0]) & 0xFFFFFFFF
    assert sr["ntp"] == rtcp.ntp_from_ms(w.rtcp_at["a"][0])
    assert sr["packets"] == w.rtcp_at["a"][0] // 20 + 1 and sr["octets"] == 160 * sr["packets"]
    # the end of the call: SR/RR + SDES + BYE, the peer notes it
    acts = w.a.stop(w.now)
    assert len(acts) == 1 and [p["type"] for p in rtcp.parse(acts[0][1])][-1] == rtcp.BYE
    w.b.receive(acts[0][1], A, w.now)
    assert w.b.rtcp.peer_bye and w.a.stop(w.now) == []


def test_without_rtcp_mux_reports_go_to_port_plus_one_then_follow_the_peer():
    w = _Wire("off", "off", mux=False, seed=2)
    assert w.a.rtcp_peer == (B[0], B[1] + 1)             # RFC 3605 default: RTP port + 1
    for _ in range(200):
        if w.rtcp["a"]:
            break
        w.run(20)
    sent = [d for _, d in w.rtcp["a"]]      # this seed: a reports first, before anything latched
    assert sent and sent[0] == (B[0], B[1] + 1) and not w.a.rtcp_latched, (sent, w.rtcp["b"])
    # b's reports arrive from B (its media port, as its a=rtcp says): a answers there from now on
    w.run(9000)
    assert w.a.rtcp_peer == B and w.rtcp["a"][-1][1] == B
    r = {"rtcp_addr": "192.0.2.7", "rtcp_port": 7001}
    m = MediaSession("off", Lcg(3), None, 0)
    rem = _remote(A, False)
    rem.update(r)
    m.start(rem, 0)
    assert m.rtcp_peer == ("192.0.2.7", 7001)


def test_a_reinvite_to_a_new_address_moves_rtcp_and_drops_its_latch():
    m = MediaSession("off", Lcg(3), None, 0)
    m.start(_remote(A, False), 0)
    nat = ("192.0.2.9", 4011)
    m.receive(rtcp.receiver_report(0x1234) + rtcp.sdes_cname(0x1234, "x"), nat, 100)
    assert m.rtcp_peer == nat and m.rtcp_latched        # symmetric RTCP: latched on the peer's report
    m.update(_remote(A, False), 200)                     # same address (a hold or a codec change): kept
    assert m.rtcp_peer == nat
    m.update(_remote(("198.51.100.2", 6000), False), 300)
    assert m.rtcp_peer == ("198.51.100.2", 6001) and not m.rtcp_latched


def _no_zrtp(to, data):
    return demux.classify(data) == demux.ZRTP


def test_mandatory_sends_no_clear_rtcp_then_only_srtcp():
    # two mandatory sessions, ZRTP kept off the wire, then made secure by hand with mirrored keys
    w = _Wire("mandatory", "mandatory", drop=_no_zrtp)
    w.run(3200)                                          # the first report is due by 3.08 s: withheld
    # not secure: no report went out, clear reports from the peer are refused
    assert w.rtcp["a"] == [] and w.a.rtcp_withheld >= 1
    clear = rtcp.receiver_report(w.b.ssrc) + rtcp.sdes_cname(w.b.ssrc, "x")
    w.a.receive(clear, B, w.now)
    assert w.a.rtcp_dropped_clear == 1 and w.a.rtcp.received_count == 0
    w.a._go_secure(_zrtp_info("HS32"))
    w.b._go_secure(_zrtp_info("HS32", True))
    w.run(3400)                                          # the retry comes at most 3.08 s after the skip
    assert w.rtcp["a"] and w.rtcp["b"]
    ra, rb = w.a.rtcp_stats(), w.b.rtcp_stats()
    assert ra["received"] >= 1 and rb["received"] >= 1 and ra["dropped_auth"] == 0
    # every report on the wire is SRTCP (32-bit tag with HS32): it does not parse as clear RTCP
    b_in = srtp.from_zrtp(_zrtp_info("HS32", True))[1]
    for data, dest in w.rtcp["a"]:
        assert _raises(rtcp.parse, data) is not None
        assert rtcp.parse(b_in.unprotect_rtcp(data))[0]["type"] in (rtcp.SR, rtcp.RR)
    # clear, tampered and replayed reports are refused and counted, never raised
    n = w.a.rtcp.received_count
    w.a.receive(clear, B, w.now)
    bad = bytearray(w.rtcp["b"][-1][0])
    bad[-1] ^= 1
    w.a.receive(bytes(bad), B, w.now)
    w.a.receive(w.rtcp["b"][0][0], B, w.now)             # accepted long ago: a replay
    assert w.a.rtcp_dropped_auth == 3 and w.a.rtcp.received_count == n
    assert w.a.rtcp_stats()["dropped"] == 4


def test_optional_sends_clear_rtcp_before_zrtp():
    w = _Wire("optional", "off", drop=_no_zrtp)
    w.run(3200)
    assert w.rtcp["a"] and rtcp.parse(w.rtcp["a"][0][0])[0]["type"] == rtcp.SR
    assert w.b.rtcp_stats()["received"] >= 1
