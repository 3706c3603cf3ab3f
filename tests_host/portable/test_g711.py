"""G.711 mu-law and A-law: known values, exact re-encoding of decoded audio, and (CPython 3.11 only,
where audioop still exists) every 16-bit sample against audioop."""
from struct import pack, unpack

from microwitch.media import g711

try:
    import audioop  # CPython <= 3.12 only: a cross-check, never used by the firmware
except ImportError:
    audioop = None


def samples(b):
    return list(unpack("<%dh" % (len(b) // 2), b))


def test_ulaw_known_values():
    pcm = pack("<7h", 0, 1000, -1000, 32767, -32768, 4, -4)
    assert g711.ulaw_encode(pcm) == bytes((0xFF, 0xCE, 0x4E, 0x80, 0x00, 0xFE, 0x7E))
    assert samples(g711.ulaw_decode(bytes((0x00, 0x7F, 0x80, 0xFF, 0xCE)))) == [-32124, 0, 32124, 0, 988]


def test_alaw_known_values():
    pcm = pack("<5h", 0, 1000, -1000, 32767, -32768)
    assert g711.alaw_encode(pcm) == bytes((0xD5, 0xFA, 0x7A, 0xAA, 0x2A))
    assert samples(g711.alaw_decode(bytes((0x55, 0xD5, 0x2A, 0xAA, 0xFA)))) == [-8, 8, -32256, 32256, 1008]


def test_decoded_audio_survives_reencoding_exactly():
    # what the call tests send: samples that are G.711 code points pass through unchanged
    for enc, dec in ((g711.ulaw_encode, g711.ulaw_decode), (g711.alaw_encode, g711.alaw_decode)):
        pcm = dec(bytes(range(256)))
        assert dec(enc(pcm)) == pcm
    codes = bytes(c for c in range(256) if c != 0x7F)  # 0x7F is mu-law's negative zero
    assert g711.ulaw_encode(g711.ulaw_decode(codes)) == codes
    assert g711.alaw_encode(g711.alaw_decode(bytes(range(256)))) == bytes(range(256))


def test_monotonic_and_symmetric():
    u = samples(g711.ulaw_decode(bytes(range(0x80, 0x100))))
    assert u == sorted(u, reverse=True)
    assert samples(g711.ulaw_decode(bytes(range(0x80)))) == [-v for v in u]
    a = [samples(g711.alaw_decode(bytes((c ^ 0x55 | 0x80,))))[0] for c in range(0x80)]
    assert a == sorted(a)


def test_packet_sizes_and_bad_input():
    frame = pack("<160h", *range(-8000, 8000, 100))
    assert len(g711.ulaw_encode(frame)) == 160 and len(g711.alaw_encode(frame)) == 160
    assert len(g711.ulaw_decode(bytes(160))) == 320
    assert g711.ulaw_encode(b"") == b"" and g711.alaw_decode(b"") == b""
    try:
        g711.ulaw_encode(b"\x00\x01\x02")
    except ValueError as e:
        assert "even" in str(e)
    else:
        raise AssertionError("odd PCM length accepted")
    assert g711.CODECS[0][0] is g711.ulaw_encode and g711.CODECS[8][1] is g711.alaw_decode


def test_every_sample_against_audioop():
    if audioop is None:
        return  # MicroPython, CPython >= 3.13
    pcm = pack("<65536h", *range(-32768, 32768))
    assert g711.ulaw_encode(pcm) == audioop.lin2ulaw(pcm, 2)
    assert g711.alaw_encode(pcm) == audioop.lin2alaw(pcm, 2)
    codes = bytes(range(256))
    assert g711.ulaw_decode(codes) == audioop.ulaw2lin(codes, 2)
    assert g711.alaw_decode(codes) == audioop.alaw2lin(codes, 2)
