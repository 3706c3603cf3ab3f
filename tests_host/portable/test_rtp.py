"""RTP and its neighbours (RFC 3550, 4733, 4961, 5761): header pack/parse, sender numbering, receiver
sequence/loss/jitter accounting and source learning, RTCP reports, the jitter buffer, telephone-events,
the shared-port demultiplexer and 8 kHz WAV files."""
import io
from struct import pack

from microwitch.media import demux, dtmf, rtcp, rtp, wav
from microwitch.media.jitter import JitterBuffer
from microwitch.media.rtp import RtpError, RtpHeader, RtpReceiver, RtpSender


def fixed_rand(n):
    return bytes(range(0xF0, 0xF0 + n))


def fails(exc, fn, *args):
    try:
        fn(*args)
    except exc as e:
        return e.reason
    raise AssertionError("no %s" % exc.__name__)


# -- header ---------------------------------------------------------------------------------------------

def test_header_round_trip_with_csrcs_extension_and_marker():
    h = RtpHeader(8, 65535, 0xFFFFFFFF, 0x01020304, marker=True, csrcs=(7, 9), ext_profile=0xBEDE,
                  ext_data=b"\x10\xab\x00\x00")
    p = h.pack(b"audio")
    assert p[0] == 0x80 | 0x10 | 2 and p[1] == 0x80 | 8
    q = rtp.parse(p)
    assert (q.payload_type, q.seq, q.timestamp, q.ssrc, q.marker) == (8, 65535, 0xFFFFFFFF, 0x01020304, True)
    assert q.csrcs == (7, 9) and q.ext_profile == 0xBEDE and q.ext_data == b"\x10\xab\x00\x00"
    assert q.payload == b"audio"


def test_padding_removed():
    p = bytearray(RtpHeader(0, 1, 2, 3).pack(b"abc\x00\x00\x03"))
    p[0] |= 0x20
    assert rtp.parse(bytes(p)).payload == b"abc"


def test_malformed_headers_named():
    good = RtpHeader(0, 1, 2, 3).pack(b"x")
    assert fails(RtpError, rtp.parse, good[:11]) == "RTP packet shorter than 12 bytes"
    assert fails(RtpError, rtp.parse, b"\x40" + good[1:]) == "RTP version is not 2"
    assert fails(RtpError, rtp.parse, b"\x83" + good[1:]) == "RTP CSRC list runs past the packet"
    assert fails(RtpError, rtp.parse, b"\x90" + good[1:]) == "RTP header extension runs past the packet"
    assert fails(RtpError, rtp.parse, b"\xa0" + good[1:12] + b"\x05").startswith("RTP padding count 5")
    assert fails(RtpError, RtpHeader(200, 0, 0, 0).pack) == "payload type 200 outside 0-127"


# -- sender ---------------------------------------------------------------------------------------------

def test_sender_numbers_20ms_packets_from_random_start():
    s = RtpSender(0xABCD, 0, fixed_rand)
    assert s.seq == 0xF0F1 and s.timestamp == 0xF2F3F4F5
    frames = [rtp.parse(s.packet(bytes(160), marker=(i == 0), now=1000 + 20 * i)) for i in range(3)]
    assert [f.seq for f in frames] == [0xF0F1, 0xF0F2, 0xF0F3]
    assert [f.timestamp - frames[0].timestamp for f in frames] == [0, 160, 320]
    assert [f.marker for f in frames] == [True, False, False]
    assert all(f.ssrc == 0xABCD and f.payload_type == 0 for f in frames)
    assert (s.packets, s.octets) == (3, 480)
    assert s.timestamp_at(1060) == (frames[2].timestamp + 160) & 0xFFFFFFFF
    s.skip()
    assert rtp.parse(s.packet(b"")).timestamp == (frames[2].timestamp + 320) & 0xFFFFFFFF
    assert RtpSender(None, 8, fixed_rand).ssrc == 0xF0F1F2F3


def test_sender_wraps_sequence_and_timestamp():
    s = RtpSender(1, 0, lambda n: b"\xff" * n)
    a, b = rtp.parse(s.packet(b"")), rtp.parse(s.packet(b""))
    assert (a.seq, b.seq) == (65535, 0) and b.timestamp == 159


# -- receiver -------------------------------------------------------------------------------------------

def pkt(seq, ts, ssrc=0x55):
    return RtpHeader(0, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc).pack(bytes(4))


def test_receiver_counts_loss_across_wrap_and_reports():
    r = RtpReceiver()
    a = ("10.0.0.2", 4000)
    now = 0
    for i, seq in enumerate(range(65530, 65530 + 20)):
        if seq in (65533, 65540):
            continue  # two lost
        assert r.feed(pkt(seq, seq * 160), a, now + 20 * i) is not None
    assert r.received == 18 and r.expected == 20 and r.lost == 2
    assert r.extended_max == 0x10000 + (65549 & 0xFFFF)
    b = r.report_block(1000)
    assert b["fraction"] == (2 << 8) // 20 and b["lost"] == 2 and b["highest"] == r.extended_max
    assert b["jitter"] == 0 and b["ssrc"] == 0x55
    assert r.report_block(1020)["fraction"] == 0  # nothing new lost in the next interval


def test_receiver_jitter_rfc3550_a8():
    r = RtpReceiver()
    # packets 20 ms apart in RTP time arriving alternately 0 and 10 ms late: |D| = 80 units each time
    for i in range(40):
        r.feed(pkt(i, i * 160), ("h", 1), i * 20 + (10 if i & 1 else 0))
    assert 70 <= r.jitter <= 80
    r2 = RtpReceiver()
    for i in range(40):
        r2.feed(pkt(i, i * 160), ("h", 1), i * 20)
    assert r2.jitter == 0


def test_receiver_symmetric_rtp_learns_and_follows_source():
    r = RtpReceiver()
    assert r.source is None
    r.feed(pkt(1, 0), ("192.0.2.1", 5004), 0)
    assert r.source == ("192.0.2.1", 5004)
    r.feed(pkt(2, 160), ("198.51.100.7", 6000), 20)  # NAT rebinding: replies follow
    assert r.source == ("198.51.100.7", 6000) and r.source_changes == 1


def test_receiver_resyncs_after_confirmed_jump_and_new_ssrc():
    r = RtpReceiver()
    for s in range(10):
        r.feed(pkt(s, s * 160), ("h", 1), s * 20)
    assert r.feed(pkt(20000, 0), ("h", 1), 300) is None  # a big jump is dropped until confirmed
    assert r.feed(pkt(20001, 160), ("h", 1), 320) is not None
    assert r.received == 1 and r.base_seq == 20001
    r.feed(pkt(5, 0, ssrc=0x77), ("h", 1), 340)
    assert r.ssrc == 0x77 and r.ssrc_changes == 1 and r.received == 1


def test_report_block_lsr_dlsr():
    r = RtpReceiver()
    assert r.report_block(0) is None
    r.feed(pkt(1, 0), ("h", 1), 0)
    r.on_sender_report(0x0123456789ABCDEF, 1000)
    b = r.report_block(1500)
    assert b["lsr"] == 0x456789AB and b["dlsr"] == 32768


# -- RTCP -----------------------------------------------------------------------------------------------

_BLOCK = {"ssrc": 0x99, "fraction": 12, "lost": -3, "highest": 0x1FFFF, "jitter": 40, "lsr": 7, "dlsr": 8}


def test_rtcp_compound_round_trip():
    ntp = rtcp.ntp_from_unix_ms(1500)
    assert ntp == ((2208988801 << 32) | 0x80000000)
    c = (rtcp.sender_report(0x11, ntp, 12345, 10, 1600, [_BLOCK]) + rtcp.sdes_cname(0x11, "alice@example")
         + rtcp.bye(0x11, "hangup"))
    sr, sd, by = rtcp.parse(c)
    assert sr["type"] == rtcp.SR and sr["ssrc"] == 0x11 and sr["ntp"] == ntp and sr["rtp_ts"] == 12345
    assert (sr["packets"], sr["octets"]) == (10, 1600) and sr["blocks"] == [_BLOCK]
    assert sd["type"] == rtcp.SDES and sd["chunks"] == [(0x11, {1: b"alice@example"})]
    assert by["type"] == rtcp.BYE and by["ssrcs"] == [0x11] and by["reason"] == "hangup"
    rr, = rtcp.parse(rtcp.receiver_report(0x22, [_BLOCK, _BLOCK]))
    assert rr["type"] == rtcp.RR and rr["ssrc"] == 0x22 and rr["blocks"] == [_BLOCK, _BLOCK]
    assert len(c) % 4 == 0


def test_rtcp_malformed_named():
    sr = rtcp.sender_report(1, 0, 0, 0, 0, [_BLOCK])
    assert fails(rtcp.RtcpError, rtcp.parse, sr[:3]) == "RTCP packet shorter than 4 bytes"
    assert fails(rtcp.RtcpError, rtcp.parse, sr[:-4]) == "RTCP length field runs past the datagram"
    assert fails(rtcp.RtcpError, rtcp.parse, b"\x40" + sr[1:]) == "RTCP version is not 2"
    bad = bytearray(sr)
    bad[0] = 0x82  # claims two blocks, carries one
    assert fails(rtcp.RtcpError, rtcp.parse, bytes(bad)) == "report blocks run past the packet"
    assert fails(rtcp.RtcpError, rtcp.receiver_report, 1, [_BLOCK] * 32) == "more than 31 report blocks"
    assert fails(rtcp.RtcpError, rtcp.parse, rtcp.receiver_report(1) * 17).startswith("more than 16 packets")


# -- jitter buffer --------------------------------------------------------------------------------------

def test_jitter_buffer_reorders_and_conceals():
    jb = JitterBuffer(3)
    for s in (100, 102, 101):
        assert jb.push(s, b"f%d" % s)
    assert [jb.pop() for _ in range(3)] == [b"f100", b"f101", b"f102"]
    jb.push(104, b"f104")
    jb.push(105, b"f105")
    assert jb.pop() is None and jb.missing == 1  # 103 never came
    assert jb.pop() == b"f104"
    assert not jb.push(103, b"late") and jb.late == 1
    assert not jb.push(105, b"dup") and jb.duplicates == 1


def test_jitter_buffer_waits_for_depth_and_is_bounded():
    jb = JitterBuffer(2)
    jb.push(65535, b"a")
    assert jb.pop() is None  # not started: one frame of the two it waits for
    jb.push(0, b"b")
    assert jb.pop() == b"a" and jb.pop() == b"b"
    jb.push(30000, b"far")  # the sender jumped: start over there
    assert jb.resyncs == 1 and len(jb) == 1
    for bad in (0, 17):
        try:
            JitterBuffer(bad)
        except ValueError:
            pass
        else:
            raise AssertionError("depth %d accepted" % bad)


# -- RFC 4733 -------------------------------------------------------------------------------------------

def test_dtmf_reports_each_event_once():
    d = dtmf.DtmfReceiver()
    seq = [(1000, bytes((5, 10, 0, 160))), (1000, bytes((5, 10, 1, 64))), (1000, bytes((5, 0x8A, 3, 32))),
           (1000, bytes((5, 0x8A, 3, 32))), (2000, bytes((11, 10, 0, 160))), (3000, bytes((16, 0x80, 0, 8)))]
    assert [d.feed(ts, p) for ts, p in seq] == ["5", None, None, None, "#", "flash"]
    assert dtmf.parse(bytes((9, 0x8A, 3, 32))) == (9, True, 10, 800)
    assert fails(dtmf.DtmfError, d.feed, 4000, b"\x01\x02") == "telephone-event payload shorter than 4 bytes"


# -- demultiplexing -------------------------------------------------------------------------------------

def test_demux_zrtp_rtp_rtcp():
    zrtp = bytes((0x10, 0, 0, 1)) + b"ZRTP" + bytes(8)
    assert demux.classify(zrtp) == demux.ZRTP
    assert demux.classify(pkt(1, 0)) == demux.RTP
    assert demux.classify(RtpHeader(8, 1, 0, 1, marker=True).pack(b"")) == demux.RTP
    for pt in (200, 201, 202, 203, 204):
        assert demux.classify(bytes((0x80, pt, 0, 1)) + bytes(4)) == demux.RTCP
    assert demux.classify(b"\x00\x01\x00\x00" + bytes(16)) is None  # STUN
    assert demux.classify(b"\x80\x00") is None


# -- WAV ------------------------------------------------------------------------------------------------

def test_wav_write_then_read():
    f = io.BytesIO()
    w = wav.WavWriter(f)
    pcm = pack("<4h", 0, 1000, -1000, 32767)
    w.write(pcm[:4])
    w.write(pcm[4:])
    w.close()
    data = f.getvalue()
    assert data[:4] == b"RIFF" and len(data) == 44 + 8 and data[40:44] == pack("<I", 8)
    r = wav.WavReader(io.BytesIO(data))
    assert r.samples == 4
    assert r.read(3) + r.read(3) == pcm and r.read(3) == b""


def wav_bytes(tag=1, channels=1, rate=8000, bits=16, align=2, extra=b""):
    fmt = pack("<HHIIHH", tag, channels, rate, rate * align, align, bits)
    return (b"RIFF" + pack("<I", 0) + b"WAVE" + extra + b"fmt " + pack("<I", 16) + fmt + b"data"
            + pack("<I", 4) + b"\x01\x00\x02\x00")


def test_wav_errors_name_the_field():
    assert wav.WavReader(io.BytesIO(wav_bytes(extra=b"LIST" + pack("<I", 3) + b"abc\x00"))).read(9) == \
        b"\x01\x00\x02\x00"
    cases = ((wav_bytes(rate=44100), "sample rate is 44100 Hz, need 8000 Hz"),
             (wav_bytes(channels=2, align=4), "2 channels, need 1 (mono)"),
             (wav_bytes(bits=8, align=1), "8 bits per sample, need 16"),
             (wav_bytes(tag=3), "audio format is 3, need 1 (PCM)"),
             (b"OggS" + bytes(40), "not a WAV file (no RIFF/WAVE header)"),
             (wav_bytes()[:30], "file ends inside the fmt chunk"))
    for data, msg in cases:
        assert fails(wav.WavError, wav.WavReader, io.BytesIO(data)) == msg
