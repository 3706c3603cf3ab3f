"""RTP (RFC 3550): header pack/parse, a sender of 20 ms packets, and a receiver that tracks the
sequence (A.1), loss (A.3) and interarrival jitter (A.8) of one source and learns where it sends from,
so replies go back there (symmetric RTP, RFC 4961).

Feed the receiver only packets that passed SRTP authentication when media is encrypted: what it
learns (the source address, the SSRC) must not come from a forged packet.
"""
from struct import pack_into, unpack_from

from microwitch.compat import const

_MAX_DROPOUT = const(3000)  # RFC 3550 A.1
_MAX_MISORDER = const(100)
_SEQ_MOD = const(0x10000)
_MAX_CSRC = const(15)
SAMPLES_PER_PACKET = const(160)  # 20 ms at 8 kHz (RFC 3551 4.5: G.711 default packetization)


class RtpError(ValueError):
    """A malformed RTP packet; reason says what is wrong."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


class RtpHeader:
    """The fields of an RTP header (RFC 3550 5.1). parse() also sets .payload (padding removed)."""

    def __init__(self, payload_type, seq, timestamp, ssrc, marker=False, csrcs=(), ext_profile=None,
                 ext_data=b""):
        self.payload_type = payload_type
        self.seq = seq
        self.timestamp = timestamp
        self.ssrc = ssrc
        self.marker = bool(marker)
        self.csrcs = tuple(csrcs)
        self.ext_profile = ext_profile
        self.ext_data = ext_data
        self.payload = b""

    def pack(self, payload=b""):
        """Header + payload as bytes (no padding)."""
        if not 0 <= self.payload_type <= 127:
            raise RtpError("payload type %r outside 0-127" % (self.payload_type,))
        if len(self.csrcs) > _MAX_CSRC:
            raise RtpError("more than 15 CSRCs")
        ext = self.ext_profile is not None
        if ext and len(self.ext_data) & 3:
            raise RtpError("header extension data must be a multiple of 4 bytes")
        h = bytearray(12 + 4 * len(self.csrcs))
        pack_into(">BBHII", h, 0, 0x80 | (0x10 if ext else 0) | len(self.csrcs),
                  (0x80 if self.marker else 0) | self.payload_type, self.seq & 0xFFFF,
                  self.timestamp & 0xFFFFFFFF, self.ssrc & 0xFFFFFFFF)
        for i, c in enumerate(self.csrcs):
            pack_into(">I", h, 12 + 4 * i, c)
        if ext:
            e = bytearray(4)
            pack_into(">HH", e, 0, self.ext_profile, len(self.ext_data) >> 2)
            return bytes(h) + bytes(e) + bytes(self.ext_data) + bytes(payload)
        return bytes(h) + bytes(payload)


def parse(packet):
    """RtpHeader of a packet, with .payload; RtpError names what is malformed."""
    n = len(packet)
    if n < 12:
        raise RtpError("RTP packet shorter than 12 bytes")
    b0, b1, seq, ts, ssrc = unpack_from(">BBHII", packet, 0)
    if b0 & 0xC0 != 0x80:
        raise RtpError("RTP version is not 2")
    cc = b0 & 0x0F
    off = 12 + 4 * cc
    if off > n:
        raise RtpError("RTP CSRC list runs past the packet")
    csrcs = unpack_from(">%dI" % cc, packet, 12) if cc else ()
    prof = None
    ext = b""
    if b0 & 0x10:
        if off + 4 > n:
            raise RtpError("RTP header extension runs past the packet")
        prof, words = unpack_from(">HH", packet, off)
        off += 4
        if off + 4 * words > n:
            raise RtpError("RTP header extension runs past the packet")
        ext = bytes(packet[off:off + 4 * words])
        off += 4 * words
    end = n
    if b0 & 0x20:
        pad = packet[n - 1]
        if pad == 0 or off + pad > n:
            raise RtpError("RTP padding count %d does not fit the packet" % pad)
        end = n - pad
    h = RtpHeader(b1 & 0x7F, seq, ts, ssrc, b1 & 0x80, csrcs, prof, ext)
    h.payload = bytes(packet[off:end])
    return h


class RtpSender:
    """Numbers outgoing packets of one source: random initial sequence number and timestamp (RFC 3550
    5.1), +1 and +samples per packet. Counts packets and payload octets for sender reports."""

    def __init__(self, ssrc, payload_type, rand, samples=SAMPLES_PER_PACKET, clock_rate=8000):
        r = rand(6)
        self.ssrc = int.from_bytes(rand(4), "big") if ssrc is None else ssrc
        self.payload_type = payload_type
        self.seq = (r[0] << 8) | r[1]
        self.timestamp = int.from_bytes(r[2:6], "big")
        self.samples = samples
        self.clock_rate = clock_rate
        self.packets = 0
        self.octets = 0
        self._hdr = bytearray(12)
        self._last = None  # (now ms, timestamp) of the last packet sent with a time

    def packet(self, payload, marker=False, now=None):
        """The next RTP packet carrying payload (one 20 ms frame)."""
        h = self._hdr
        pack_into(">BBHII", h, 0, 0x80, (0x80 if marker else 0) | self.payload_type, self.seq, self.timestamp,
                  self.ssrc)
        if now is not None:
            self._last = (now, self.timestamp)
        self.seq = (self.seq + 1) & 0xFFFF
        self.timestamp = (self.timestamp + self.samples) & 0xFFFFFFFF
        self.packets += 1
        self.octets += len(payload)
        return bytes(h) + payload

    def skip(self, samples=None):
        """Advance the timestamp without sending (silence), RFC 3550 5.1."""
        self.timestamp = (self.timestamp + (self.samples if samples is None else samples)) & 0xFFFFFFFF

    def timestamp_at(self, now):
        """The RTP timestamp that corresponds to `now` (ms), for a sender report (RFC 3550 6.4.1)."""
        if self._last is None:
            return self.timestamp
        t0, ts0 = self._last
        return (ts0 + (now - t0) * self.clock_rate // 1000) & 0xFFFFFFFF


class RtpReceiver:
    """State of the one source a call receives from: RFC 3550 A.1 sequence tracking, A.3 loss, A.8
    jitter, and symmetric RTP: `source` is where its valid packets come from (send there)."""

    def __init__(self, clock_rate=8000):
        self.clock_rate = clock_rate
        self.ssrc = None
        self.source = None
        self.source_changes = 0
        self.ssrc_changes = 0
        self.dropped = 0
        self._last_sr = None  # (middle 32 bits of its NTP time, our ms when it arrived)
        self._reset(0)

    def _reset(self, seq):
        self.max_seq = seq
        self.cycles = 0
        self.base_seq = seq
        self.bad_seq = _SEQ_MOD + 1
        self.received = 0
        self._expected_prior = 0
        self._received_prior = 0
        self._transit = None
        self._jitter16 = 0

    def feed(self, packet, addr, now):
        """Account for a packet arriving from addr at now (ms). Returns its RtpHeader, or None when
        RFC 3550 A.1 drops it (a large jump not yet confirmed by the next packet). RtpError if malformed."""
        h = parse(packet)
        seq = h.seq
        if h.ssrc != self.ssrc:
            if self.ssrc is not None:
                self.ssrc_changes += 1
            self.ssrc = h.ssrc
            self._reset(seq)
        elif not self._update_seq(seq):
            self.dropped += 1
            return None
        self.received += 1
        if addr != self.source:
            if self.source is not None:
                self.source_changes += 1
            self.source = addr
        # A.8: transit time in timestamp units; J += (|D| - J) / 16, kept scaled by 16
        arrival = now * self.clock_rate // 1000
        transit = (arrival - h.timestamp) & 0xFFFFFFFF
        if self._transit is not None:
            d = transit - self._transit
            if d > 0x7FFFFFFF:
                d -= 0x100000000
            elif d < -0x7FFFFFFF:
                d += 0x100000000
            if d < 0:
                d = -d
            self._jitter16 += d - ((self._jitter16 + 8) >> 4)
        self._transit = transit
        return h

    def _update_seq(self, seq):
        """RFC 3550 A.1 update_seq without probation (SRTP has authenticated the source)."""
        udelta = (seq - self.max_seq) & 0xFFFF
        if udelta < _MAX_DROPOUT:
            if seq < self.max_seq:
                self.cycles += _SEQ_MOD
            self.max_seq = seq
        elif udelta <= _SEQ_MOD - _MAX_MISORDER:
            if seq == self.bad_seq:
                # two sequential packets after a big jump: the source restarted, resynchronise
                self._reset(seq)
                return True
            self.bad_seq = (seq + 1) & 0xFFFF
            return False
        # else a duplicate or reordered packet within the misorder window: accepted as is
        return True

    @property
    def extended_max(self):
        return self.cycles + self.max_seq

    @property
    def expected(self):
        return self.extended_max - self.base_seq + 1

    @property
    def lost(self):
        """Cumulative packets lost (RFC 3550 A.3); negative with duplicates."""
        return self.expected - self.received

    @property
    def jitter(self):
        """Interarrival jitter in timestamp units (RFC 3550 A.8)."""
        return self._jitter16 >> 4

    def on_sender_report(self, ntp, now):
        """Remember the source's last SR (its 64-bit NTP time) for LSR/DLSR (RFC 3550 6.4.1)."""
        self._last_sr = ((ntp >> 16) & 0xFFFFFFFF, now)

    def report_block(self, now):
        """A reception report block for rtcp.sender_report/receiver_report (RFC 3550 6.4.1, A.3), or
        None before the first packet. Starts a new interval for the fraction lost."""
        if self.ssrc is None or self.received == 0:
            return None
        expected = self.expected
        exp_int = expected - self._expected_prior
        rec_int = self.received - self._received_prior
        self._expected_prior = expected
        self._received_prior = self.received
        lost_int = exp_int - rec_int
        fraction = 0 if exp_int == 0 or lost_int <= 0 else (lost_int << 8) // exp_int
        lost = self.lost
        lost = 0x7FFFFF if lost > 0x7FFFFF else (-0x800000 if lost < -0x800000 else lost)
        lsr = dlsr = 0
        if self._last_sr is not None:
            lsr = self._last_sr[0]
            dlsr = ((now - self._last_sr[1]) * 65536 // 1000) & 0xFFFFFFFF
        return {"ssrc": self.ssrc, "fraction": min(fraction, 255), "lost": lost,
                "highest": self.extended_max & 0xFFFFFFFF, "jitter": self.jitter & 0xFFFFFFFF,
                "lsr": lsr, "dlsr": dlsr}
