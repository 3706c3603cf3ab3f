"""RTCP (RFC 3550 6): sender and receiver reports, SDES CNAME, BYE, a parser for compound packets, and the
Reporter that runs RTCP for one two-party call (when to report, what to send, what the peer's reports say).

Report blocks are dicts with the keys of RtpReceiver.report_block(): ssrc, fraction (0-255), lost
(cumulative, 24-bit signed), highest (extended highest sequence number), jitter, lsr, dlsr.
A compound packet is the concatenation of these; RFC 3550 6.1 wants an SR or RR first and an SDES
with a CNAME in each.
"""
from binascii import b2a_base64
from struct import pack, pack_into, unpack_from

from microwitch.compat import const

SR = const(200)
RR = const(201)
SDES = const(202)
BYE = const(203)
APP = const(204)
_CNAME = const(1)
_MAX_BLOCKS = const(31)  # the 5-bit report count
_MAX_PACKETS = const(16)  # parts of one compound packet we parse before refusing it
_NTP_UNIX_OFFSET = 2208988800  # seconds from 1900-01-01 to 1970-01-01
_TMIN_MS = const(5000)           # 6.2: minimum report interval (half of it before the first report)
_RTCP_SHARE = const(20)          # 6.2: RTCP gets 5 % of the session bandwidth
_SESSION_BYTES_S = const(10000)  # G.711 at 20 ms: 50 packets/s of 160 + 12 (RTP) + 8 (UDP) + 20 (IPv4) bytes
_IP_UDP = const(28)              # 6.2: the average RTCP size counts the IPv4 and UDP headers
_FIRST_SIZE = const(122)         # our usual compound: SR + block (52), SDES (28), SRTCP trailer (14), IP/UDP
_COMP_NUM = const(100000)        # 6.3.1: T is divided by e - 3/2 = 1.21828 to make up for reconsideration
_COMP_DEN = const(121828)
_RTT_SLACK = const(655)          # 10 ms in 1/65536 s: rounding may make a loopback RTT a hair negative


class RtcpError(ValueError):
    """A malformed RTCP packet; reason says what is wrong."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


def ntp_from_unix_ms(ms):
    """64-bit NTP timestamp (RFC 3550 4) for a wall-clock time in ms since 1970."""
    s, r = divmod(ms, 1000)
    return ((s + _NTP_UNIX_OFFSET) << 32) | ((r << 32) // 1000)


def _blocks(blocks):
    if len(blocks) > _MAX_BLOCKS:
        raise RtcpError("more than 31 report blocks")
    out = bytearray(24 * len(blocks))
    for i, b in enumerate(blocks):
        pack_into(">IIIIII", out, 24 * i, b["ssrc"], ((b["fraction"] & 0xFF) << 24) | (b["lost"] & 0xFFFFFF),
                  b["highest"] & 0xFFFFFFFF, b["jitter"] & 0xFFFFFFFF, b["lsr"] & 0xFFFFFFFF, b["dlsr"] & 0xFFFFFFFF)
    return bytes(out)


def sender_report(ssrc, ntp, rtp_ts, packets, octets, blocks=()):
    """SR (RFC 3550 6.4.1): ntp is the 64-bit NTP time of rtp_ts; packets/octets sent so far."""
    body = _blocks(blocks)
    return pack(">BBHIIIIII", 0x80 | len(blocks), SR, 6 + 6 * len(blocks), ssrc, (ntp >> 32) & 0xFFFFFFFF,
                ntp & 0xFFFFFFFF, rtp_ts & 0xFFFFFFFF, packets & 0xFFFFFFFF, octets & 0xFFFFFFFF) + body


def receiver_report(ssrc, blocks=()):
    """RR (RFC 3550 6.4.2)."""
    return pack(">BBHI", 0x80 | len(blocks), RR, 1 + 6 * len(blocks), ssrc) + _blocks(blocks)


def sdes_cname(ssrc, cname):
    """SDES with one chunk carrying a CNAME (RFC 3550 6.5.1)."""
    c = cname.encode() if isinstance(cname, str) else bytes(cname)
    if not 0 < len(c) <= 255:
        raise RtcpError("CNAME must be 1-255 bytes")
    item = pack(">I", ssrc) + bytes((_CNAME, len(c))) + c
    item += bytes(4 - (len(item) & 3))  # at least one zero octet ends the item list
    return pack(">BBH", 0x81, SDES, len(item) >> 2) + item


def bye(ssrc, reason=None):
    """BYE (RFC 3550 6.6) for one SSRC, with an optional reason."""
    body = pack(">I", ssrc)
    if reason:
        r = reason.encode() if isinstance(reason, str) else bytes(reason)
        r = r[:255]
        body += bytes((len(r),)) + r
        body += bytes(-len(body) & 3)
    return pack(">BBH", 0x81, BYE, len(body) >> 2) + body


def _parse_blocks(p, off, count, end):
    out = []
    for _ in range(count):
        if off + 24 > end:
            raise RtcpError("report blocks run past the packet")
        ssrc, fl, hi, jit, lsr, dlsr = unpack_from(">IIIIII", p, off)
        lost = fl & 0xFFFFFF
        if lost & 0x800000:
            lost -= 0x1000000
        out.append({"ssrc": ssrc, "fraction": fl >> 24, "lost": lost, "highest": hi, "jitter": jit,
                    "lsr": lsr, "dlsr": dlsr})
        off += 24
    return out


def parse(data):
    """The packets of a compound RTCP packet as dicts with "type" (SR, RR, SDES, BYE, APP or another
    number): SR has ssrc, ntp, rtp_ts, packets, octets, blocks; RR has ssrc, blocks; SDES has chunks
    [(ssrc, {item type: bytes})]; BYE has ssrcs and reason. RtcpError names what is malformed."""
    n = len(data)
    if n < 4:
        raise RtcpError("RTCP packet shorter than 4 bytes")
    out = []
    off = 0
    while off < n:
        if len(out) >= _MAX_PACKETS:
            raise RtcpError("more than 16 packets in one compound RTCP packet")
        if off + 4 > n:
            raise RtcpError("RTCP header runs past the datagram")
        b0, pt, words = unpack_from(">BBH", data, off)
        if b0 & 0xC0 != 0x80:
            raise RtcpError("RTCP version is not 2")
        end = off + 4 + 4 * words
        if end > n:
            raise RtcpError("RTCP length field runs past the datagram")
        body_end = end
        if b0 & 0x20:
            if end != n:
                raise RtcpError("RTCP padding only allowed in the last packet")
            pad = data[end - 1]
            if pad == 0 or pad > 4 * words:
                raise RtcpError("bad RTCP padding count")
            body_end = end - pad
        count = b0 & 0x1F
        p = {"type": pt}
        if pt == SR:
            if off + 28 > body_end:
                raise RtcpError("SR shorter than its sender info")
            ssrc, hi, lo, ts, pk, octs = unpack_from(">IIIIII", data, off + 4)
            p.update(ssrc=ssrc, ntp=(hi << 32) | lo, rtp_ts=ts, packets=pk, octets=octs,
                     blocks=_parse_blocks(data, off + 28, count, body_end))
        elif pt == RR:
            if off + 8 > body_end:
                raise RtcpError("RR shorter than its SSRC")
            p.update(ssrc=unpack_from(">I", data, off + 4)[0], blocks=_parse_blocks(data, off + 8, count, body_end))
        elif pt == SDES:
            p["chunks"] = _parse_sdes(data, off + 4, count, body_end)
        elif pt == BYE:
            if off + 4 + 4 * count > body_end:
                raise RtcpError("BYE SSRC list runs past the packet")
            p["ssrcs"] = list(unpack_from(">%dI" % count, data, off + 4)) if count else []
            r = off + 4 + 4 * count
            p["reason"] = None
            if r < body_end:
                ln = data[r]
                if r + 1 + ln > body_end:
                    raise RtcpError("BYE reason runs past the packet")
                p["reason"] = bytes(data[r + 1:r + 1 + ln]).decode("utf-8", "replace")
        else:
            p["body"] = bytes(data[off + 4:body_end])
        out.append(p)
        off = end
    return out


def _parse_sdes(data, off, count, end):
    chunks = []
    for _ in range(count):
        if off + 4 > end:
            raise RtcpError("SDES chunk runs past the packet")
        ssrc = unpack_from(">I", data, off)[0]
        off += 4
        items = {}
        while True:
            if off >= end:
                raise RtcpError("SDES item list not terminated")
            t = data[off]
            if t == 0:
                off = (off + 4) & ~3  # the null item, then padding to the next 32-bit boundary
                break
            if off + 2 > end or off + 2 + data[off + 1] > end:
                raise RtcpError("SDES item runs past the packet")
            ln = data[off + 1]
            items[t] = bytes(data[off + 2:off + 2 + ln])
            off += 2 + ln
        chunks.append((ssrc, items))
    return chunks


def ntp_from_ms(ms):
    """64-bit NTP timestamp for `ms` milliseconds of the adapter's monotonic clock. RFC 3550 6.4.1 lets a sender
    without wallclock time use its uptime: round-trip times only compare our own timestamps."""
    return (ms << 32) // 1000


def ntp_middle(ms):
    """The middle 32 bits of ntp_from_ms(ms): the compact form LSR and DLSR use (RFC 3550 4, 6.4.1)."""
    return ((ms << 16) // 1000) & 0xFFFFFFFF


def rtt_ms(arrival, lsr, dlsr):
    """Round-trip time in ms from a report block (RFC 3550 6.4.1): arrival - LSR - DLSR, all in 1/65536 s
    (`arrival` is ntp_middle of when the block arrived). None without an SR to refer to (LSR 0) or when the
    figures cannot be a round trip (more than 10 ms negative)."""
    if lsr == 0:
        return None
    d = (arrival - lsr - dlsr) & 0xFFFFFFFF
    if d & 0x80000000:
        if d < 0x100000000 - _RTT_SLACK:
            return None
        d = 0
    return (d * 1000 + 32768) >> 16


def interval_ms(members, senders, rtcp_bytes_s, we_sent, avg_size, initial, r16):
    """The RTCP report interval in ms (RFC 3550 6.3.1, A.7 rtcp_interval): members and senders of the session,
    the RTCP bandwidth in bytes/s, whether we sent RTP recently, the average compound size (bytes, IP/UDP
    included), whether we have not reported yet (half the minimum, 6.2) and r16, a random 0-65535 that spreads
    the interval over [0.5, 1.5) times the deterministic value before the e - 3/2 compensation."""
    n = members
    bw = rtcp_bytes_s
    if 4 * senders <= members:
        # 6.3.1: senders share a quarter of the RTCP bandwidth, receivers the rest
        if we_sent:
            bw = bw // 4
            n = senders
        else:
            bw = bw * 3 // 4
            n = members - senders
    if bw < 1:
        bw = 1
    t = avg_size * n * 1000 // bw
    floor = _TMIN_MS // 2 if initial else _TMIN_MS
    if t < floor:
        t = floor
    t = t * (32768 + r16) >> 16
    return t * _COMP_NUM // _COMP_DEN


class Reporter:
    """RTCP for a two-party RTP session (RFC 3550 6), sans-I/O, a few integers of state per call.

        r = Reporter(tx, rx, rand, now)     # tx: RtpSender (our stream), rx: RtpReceiver (the peer's)
        r.due(now) -> bool                  # the timer expired and reconsideration (6.3.6) says send now
        data = r.compound(now, leaving)     # SR or RR (+ report block), SDES CNAME, BYE when leaving
        r.sent(now, wire_len)               # after sending: schedules the next report (6.3.3 avg size)
        r.skip(now)                         # a report we were not allowed to send (no clear RTCP): retry later
        r.receive(data, now)                # a clear compound from the peer; RtcpError if malformed (A.2)

    The CNAME is random (RFC 7022 4.2: 96 random bits in base64), so reports do not name the user or host.
    What the peer reports about our stream (peer_lost, peer_fraction, peer_jitter) and the round-trip time
    from its LSR/DLSR (rtt_ms) are kept from its latest report block about our SSRC."""

    def __init__(self, tx, rx, rand, now, session_bytes_s=_SESSION_BYTES_S):
        self.tx = tx
        self.rx = rx
        self.ssrc = tx.ssrc
        self.rand = rand
        self.cname = b2a_base64(rand(12)).strip()
        self.rtcp_bw = session_bytes_s // _RTCP_SHARE
        self.avg_size = _FIRST_SIZE
        self.initial = True
        self.tp = now
        self.we_sent = False
        self._tx_mark = (0, 0)    # our RTP packet count at the last two reports (6.3.8: we_sent)
        self._rx_mark = (0, 0)    # the peer's RTP packets received at the same moments (is it a sender?)
        self.peer_heard = False
        self.sent_count = 0
        self.received_count = 0
        self.peer_bye = False
        self.peer_lost = None     # what the peer's latest report block says about our stream
        self.peer_fraction = None
        self.peer_jitter = None
        self.peer_highest = None
        self.rtt_ms = None        # the latest round trip, and the largest one seen
        self.rtt_max_ms = None
        self.tn = now + self._interval()

    def _interval(self):
        r = self.rand(2)
        members = 2 if self.peer_heard or self.rx.received else 1
        senders = (1 if self._we_sent() else 0) + (1 if self.rx.received != self._rx_mark[0] else 0)
        return interval_ms(members, senders, self.rtcp_bw, self._we_sent(), self.avg_size, self.initial,
                           (r[0] << 8) | r[1])

    def _we_sent(self):
        """6.3.8: we are a sender if we sent RTP since the report before the last one."""
        return self.tx.packets != self._tx_mark[0]

    def next_time(self):
        return self.tn

    def due(self, now):
        """The timer expired (A.7 OnExpire): True when a report goes out now, else the timer is reconsidered
        with a fresh interval from the last report (6.3.6)."""
        if now < self.tn:
            return False
        t = self._interval()
        if self.tp + t <= now:
            return True
        self.tn = self.tp + t
        return False

    def skip(self, now):
        """A report that could not be sent (a mandatory call not yet secure): try again one interval later."""
        self.tn = now + self._interval()

    def compound(self, now, leaving=None, rtp_ts=None):
        """The compound packet to send now (6.1): SR if we sent RTP since the report before last (6.4), else
        RR; one report block about the peer's stream once it has sent; SDES CNAME; BYE (`leaving` is its
        reason, "" for none) when we are leaving the session (6.6). rtp_ts: the RTP timestamp of `now` on our
        media clock (default: extrapolated from the last packet sent)."""
        tx = self.tx
        self.we_sent = self._we_sent()
        blk = self.rx.report_block(now)
        blocks = (blk,) if blk is not None else ()
        if self.we_sent:
            if rtp_ts is None:
                rtp_ts = tx.timestamp_at(now)
            head = sender_report(self.ssrc, ntp_from_ms(now), rtp_ts, tx.packets, tx.octets, blocks)
        else:
            head = receiver_report(self.ssrc, blocks)
        out = head + sdes_cname(self.ssrc, self.cname)
        if leaving is not None:
            out += bye(self.ssrc, leaving or None)
        return out

    def sent(self, now, wire_len):
        """A compound of wire_len bytes went out at now: 6.3.3 average size, next report time."""
        self.sent_count += 1
        self.avg_size = (wire_len + _IP_UDP + 15 * self.avg_size) >> 4
        self._tx_mark = (self._tx_mark[1], self.tx.packets)
        self._rx_mark = (self._rx_mark[1], self.rx.received)
        self.tp = now
        self.initial = False
        self.tn = now + self._interval()

    def receive(self, data, now):
        """A clear (already unprotected) compound packet from the peer. Validity (A.2): version 2, lengths
        that add up (parse), and an SR or RR first. RtcpError leaves the state untouched."""
        pkts = parse(data)
        if pkts[0]["type"] != SR and pkts[0]["type"] != RR:
            raise RtcpError("compound RTCP packet does not start with SR or RR")
        self.received_count += 1
        self.peer_heard = True
        self.avg_size = (len(data) + _IP_UDP + 15 * self.avg_size) >> 4
        rx = self.rx
        for p in pkts:
            t = p["type"]
            if t == SR or t == RR:
                if t == SR and (rx.ssrc is None or p["ssrc"] == rx.ssrc):
                    rx.on_sender_report(p["ntp"], now)
                for b in p["blocks"]:
                    if b["ssrc"] == self.ssrc:
                        self._peer_block(b, now)
            elif t == BYE:
                self.peer_bye = True

    def _peer_block(self, b, now):
        self.peer_lost = b["lost"]
        self.peer_fraction = b["fraction"]
        self.peer_jitter = b["jitter"]
        self.peer_highest = b["highest"]
        r = rtt_ms(ntp_middle(now), b["lsr"], b["dlsr"])
        if r is not None:
            self.rtt_ms = r
            if self.rtt_max_ms is None or r > self.rtt_max_ms:
                self.rtt_max_ms = r

    def stats(self):
        """The figures a user sees when the call ends: reports both ways, round trip, loss and jitter of the
        stream we received ("in", our own counting) and of ours as the peer saw it ("out", its latest report)."""
        rx = self.rx
        ms = 1000 / rx.clock_rate
        heard = rx.ssrc is not None and rx.received > 0
        exp = rx.expected if heard else 0
        lost = rx.lost if heard else 0
        d = {"sent": self.sent_count, "received": self.received_count, "rtt_ms": self.rtt_ms,
             "rtt_max_ms": self.rtt_max_ms,
             "in": {"expected": exp, "lost": lost,
                    "loss_pct": round(100.0 * lost / exp, 2) if exp > 0 and lost > 0 else 0.0,
                    "jitter_ms": round(rx.jitter * ms, 2)}}
        if self.peer_lost is None:
            d["out"] = None
        else:
            d["out"] = {"lost": self.peer_lost, "fraction_pct": round(self.peer_fraction * 100.0 / 256, 2),
                        "jitter_ms": round(self.peer_jitter * ms, 2)}
        return d
