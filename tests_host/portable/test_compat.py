"""microwitch.compat gives the same primitives on CPython and MicroPython (portable tests)."""
import binascii
import random

from microwitch import compat
from microwitch.compat import const

_THREE = const(3)


def _hex(b):
    return binascii.hexlify(b).decode()


def test_const_is_the_plain_value():
    assert _THREE == 3
    assert const(0x7FFF) + 1 == 0x8000


def test_ticks_add_diff_roundtrip():
    t = compat.ticks_ms()
    assert isinstance(t, int)
    assert compat.ticks_diff(compat.ticks_add(t, 1500), t) == 1500
    assert compat.ticks_diff(t, compat.ticks_add(t, 250)) == -250
    assert compat.ticks_diff(compat.ticks_ms(), t) >= 0


def test_hashes_present_and_correct_on_abc():
    # FIPS 180-4 / RFC 1321 "abc" vectors
    assert _hex(compat.sha256(b"abc").digest()) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert _hex(compat.sha1(b"abc").digest()) == "a9993e364706816aba3e25717850c26c9cd0d89d"
    assert _hex(compat.md5(b"abc").digest()) == "900150983cd24fb0d6963f7d28e17f72"
    assert _hex(compat.sha384(b"abc").digest()) == (
        "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed"
        "8086072ba1e7cc2358baeca134c825a7")


def test_hash_update_in_pieces_matches_one_shot():
    h = compat.sha256()
    h.update(b"a")
    h.update(b"bc")
    assert h.digest() == compat.sha256(b"abc").digest()


def test_aes_ecb_fips197_c1():
    # FIPS-197 appendix C.1 (AES-128)
    key = binascii.unhexlify("000102030405060708090a0b0c0d0e0f")
    pt = binascii.unhexlify("00112233445566778899aabbccddeeff")
    c = compat.aes_ecb(key)
    assert _hex(c.encrypt(pt)) == "69c4e0d86a7b0430d8cdb78070b4c55a"
    # the object is reusable: a second block encrypts the same way
    assert _hex(c.encrypt(pt)) == "69c4e0d86a7b0430d8cdb78070b4c55a"


def test_random_bytes_length_and_type():
    for n in (0, 1, 16, 33):
        r = compat.random_bytes(n)
        assert isinstance(r, bytes)
        assert len(r) == n


def test_random_bytes_not_constant():
    seen = set()
    for _ in range(8):
        seen.add(compat.random_bytes(16))
    assert len(seen) == 8


def test_random_bytes_ignores_the_seeded_prng():
    # a CSPRNG (os.urandom or the host's crypto.getRandomValues) does not follow random.seed
    random.seed(1234)
    a = compat.random_bytes(16)
    random.seed(1234)
    b = compat.random_bytes(16)
    assert a != b
