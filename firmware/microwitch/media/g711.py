"""G.711 mu-law and A-law (ITU-T G.711), table-driven: no audioop (gone from CPython 3.13, absent on
MicroPython).

PCM is 16-bit signed little-endian mono (what WAV files and sound cards carry). Encoding looks each
sample up in a table indexed by its top 14 (mu-law) or 13 (A-law) bits: 16 KiB and 8 KiB, built on
first use so a node that never encodes audio never pays for them. Decoding uses 256-entry tables of
ready-made 2-byte samples.
"""
from struct import pack, unpack

from microwitch.compat import const

_ULAW_BIAS = const(0x84)
_ULAW_CLIP = const(8159)  # 14-bit magnitude that still fits segment 7 once biased
_ULAW_SEG_END = (0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF)
_ALAW_SEG_END = (0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF)

_tables = {}


def _segment(v, ends):
    for i in range(8):
        if v <= ends[i]:
            return i
    return 8


def _ulaw_code(v):
    """mu-law code of a 14-bit signed sample (G.711 table 2a, with the conventional bias of 33)."""
    if v < 0:
        v = -v
        mask = 0x7F
    else:
        mask = 0xFF
    if v > _ULAW_CLIP:
        v = _ULAW_CLIP
    v += _ULAW_BIAS >> 2
    seg = _segment(v, _ULAW_SEG_END)
    if seg >= 8:
        return 0x7F ^ mask
    return ((seg << 4) | ((v >> (seg + 1)) & 0x0F)) ^ mask


def _ulaw_value(u):
    u = ~u & 0xFF
    t = (((u & 0x0F) << 3) + _ULAW_BIAS) << ((u & 0x70) >> 4)
    return _ULAW_BIAS - t if u & 0x80 else t - _ULAW_BIAS


def _alaw_code(v):
    """A-law code of a 13-bit signed sample (G.711 table 1a; even bits inverted with 0x55)."""
    if v >= 0:
        mask = 0xD5
    else:
        mask = 0x55
        v = -v - 1
    seg = _segment(v, _ALAW_SEG_END)
    if seg >= 8:
        return 0x7F ^ mask
    a = seg << 4
    a |= ((v >> 1) if seg < 2 else (v >> seg)) & 0x0F
    return a ^ mask


def _alaw_value(a):
    a ^= 0x55
    t = (a & 0x0F) << 4
    seg = (a & 0x70) >> 4
    if seg == 0:
        t += 8
    elif seg == 1:
        t += 0x108
    else:
        t = (t + 0x108) << (seg - 1)
    return t if a & 0x80 else -t


def _table(name):
    t = _tables.get(name)
    if t is None:
        if name == "ue":  # index: the sample's top 14 bits as an unsigned number
            t = bytes(_ulaw_code(i - 0x4000 if i & 0x2000 else i) for i in range(0x4000))
        elif name == "ae":
            t = bytes(_alaw_code(i - 0x2000 if i & 0x1000 else i) for i in range(0x2000))
        elif name == "ud":
            t = tuple(pack("<h", _ulaw_value(c)) for c in range(256))
        else:
            t = tuple(pack("<h", _alaw_value(c)) for c in range(256))
        _tables[name] = t
    return t


def _samples(pcm):
    n = len(pcm)
    if n & 1:
        raise ValueError("16-bit PCM must have an even number of bytes, got %d" % n)
    return unpack("<%dh" % (n >> 1), pcm)


def ulaw_encode(pcm16):
    """16-bit little-endian PCM -> mu-law bytes (one per sample)."""
    t = _table("ue")
    return bytes(t[(s >> 2) & 0x3FFF] for s in _samples(pcm16))


def alaw_encode(pcm16):
    """16-bit little-endian PCM -> A-law bytes (one per sample)."""
    t = _table("ae")
    return bytes(t[(s >> 3) & 0x1FFF] for s in _samples(pcm16))


def ulaw_decode(data):
    """mu-law bytes -> 16-bit little-endian PCM."""
    t = _table("ud")
    return b"".join(t[c] for c in data)


def alaw_decode(data):
    """A-law bytes -> 16-bit little-endian PCM."""
    t = _table("ad")
    return b"".join(t[c] for c in data)


# RTP static payload types (RFC 3551 6): PCMU 0, PCMA 8
CODECS = {0: (ulaw_encode, ulaw_decode), 8: (alaw_encode, alaw_decode)}
