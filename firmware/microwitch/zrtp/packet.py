"""ZRTP packet framing (RFC 6189 5): 12-byte header, message, CRC-32C sent least-significant byte first."""
import struct
from microwitch.compat import const
from microwitch.compat import crc32c
from microwitch.zrtp.errors import ZrtpError

HEADER_LEN = const(12)
MIN_PACKET = const(28)      # header + the 3-word minimum message + CRC
MAX_PACKET = const(3072)    # longest message we accept: a Confirm with a 511-word signature fits
_MAGIC = b"ZRTP"


def build(seq, ssrc, message):
    """Frame `message` (preamble included) into a packet with sequence number seq (16 bits)."""
    body = struct.pack(">BBH4sI", 0x10, 0, seq & 0xFFFF, _MAGIC, ssrc & 0xFFFFFFFF) + message
    return body + struct.pack("<I", crc32c(body))


def looks_like_zrtp(data):
    """True for a datagram that claims to be ZRTP (first nibble 0001, magic cookie): RFC 6189 5."""
    return len(data) >= HEADER_LEN and (data[0] & 0xF0) == 0x10 and data[4:8] == _MAGIC


def parse(data):
    """(seq, ssrc, message) of a packet; ZrtpError(0) for anything that is not a valid ZRTP packet.

    The CRC is checked before anything else is looked at, and the message length field must match
    the datagram exactly (RFC 6189 5: lengths are validated before the message is parsed)."""
    n = len(data)
    if n < MIN_PACKET or n > MAX_PACKET or n & 3:
        raise ZrtpError(0, "bad packet length")
    if not looks_like_zrtp(data):
        raise ZrtpError(0, "not a ZRTP packet")
    mv = memoryview(data)
    want = struct.unpack("<I", mv[n - 4:])[0]
    if crc32c(mv[:n - 4]) != want:
        raise ZrtpError(0, "bad CRC")
    seq, ssrc = struct.unpack(">H4xI", mv[2:12])
    message = bytes(mv[12:n - 4])
    if message[0] != 0x50 or message[1] != 0x5A:
        raise ZrtpError(0, "bad preamble")
    if ((message[2] << 8) | message[3]) * 4 != len(message):
        raise ZrtpError(0, "length field does not match packet")
    return seq, ssrc, message
