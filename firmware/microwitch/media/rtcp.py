"""RTCP (RFC 3550 6): sender and receiver reports, SDES CNAME, BYE, and a parser for compound packets.

Report blocks are dicts with the keys of RtpReceiver.report_block(): ssrc, fraction (0-255), lost
(cumulative, 24-bit signed), highest (extended highest sequence number), jitter, lsr, dlsr.
A compound packet is the concatenation of these; RFC 3550 6.1 wants an SR or RR first and an SDES
with a CNAME in each.
"""
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
