"""Which protocol a datagram on the shared media port carries: ZRTP, RTP or RTCP.

ZRTP packets have the magic cookie 0x5a525450 ('ZRTP') at offset 4 (RFC 6189 5); RTP and RTCP have
version 2 in the top bits, and RTCP's second octet is its packet type 192-223 (RFC 5761 4: RTP
payload types 64-95 are kept out of that range, so with the marker bit RTP never reaches it).
"""
from microwitch.compat import const

ZRTP = "zrtp"
RTP = "rtp"
RTCP = "rtcp"

_COOKIE = b"ZRTP"
_RTCP_LO = const(192)
_RTCP_HI = const(223)


def classify(data):
    """ZRTP, RTP, RTCP, or None for anything else (too short, not version 2: STUN, junk)."""
    n = len(data)
    if n >= 12 and data[4:8] == _COOKIE and data[0] & 0xF0 == 0x10:
        return ZRTP
    if n < 8 or data[0] & 0xC0 != 0x80:
        return None
    if _RTCP_LO <= data[1] <= _RTCP_HI:
        return RTCP
    return RTP if n >= 12 else None
