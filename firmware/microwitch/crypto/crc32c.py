"""CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the ZRTP packet checksum (RFC 6189 5, RFC 3309)."""
from array import array


def _table():
    t = array("I", bytes(1024))
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        t[n] = c
    return t


_T = _table()


def crc32c(data, crc=0):
    """CRC-32C of data, continuing from a previous result `crc` (init and final XOR 0xFFFFFFFF are
    applied here, so crc32c(b, crc32c(a)) == crc32c(a + b)). ZRTP sends it least-significant byte first."""
    t = _T
    c = crc ^ 0xFFFFFFFF
    for b in data:
        c = t[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF
