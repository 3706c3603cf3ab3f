"""Cross-checks of the pure-Python crypto (microwitch.crypto) against CPython's hashlib/hmac and the
`cryptography` package, on random inputs with lengths around every block boundary, plus the choice of
back-ends in microwitch.compat."""
import hashlib
import hmac as std_hmac
import os
import random

import pytest
from cryptography.hazmat.primitives.asymmetric import dh, ec
from cryptography.hazmat.primitives.asymmetric import x25519 as cx
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes as cmodes
from hypothesis import given, settings, strategies as st

try:
    from cryptography.hazmat.decrepit.ciphers.modes import CFB as native_cfb
except ImportError:  # cryptography < 43
    native_cfb = cmodes.CFB

from microwitch import compat
from microwitch.crypto import modp as pure_modp
from microwitch.crypto import p256 as pure_p256
from microwitch.crypto import x25519 as pure_x25519
from microwitch.crypto.aes import AES
from microwitch.crypto.crc32c import crc32c
from microwitch.crypto.hmac import hmac
from microwitch.crypto.md5 import md5
from microwitch.crypto.modes import cfb_decrypt, cfb_encrypt, ctr_xor
from microwitch.crypto.sha1 import sha1
from microwitch.crypto.sha512 import sha384, sha512

PURE_HASHES = [(md5, hashlib.md5), (sha1, hashlib.sha1), (sha384, hashlib.sha384), (sha512, hashlib.sha512)]
# every length that sits next to a padding or block edge for 64- and 128-byte blocks, and a few beyond
EDGE_LENGTHS = sorted({n + d for n in (0, 55, 56, 64, 111, 112, 119, 120, 128, 192, 256) for d in (-1, 0, 1)
                       if n + d >= 0} | {1000, 4097})


@pytest.mark.parametrize("pure, native", PURE_HASHES)
def test_hash_edge_lengths_match_hashlib(pure, native):
    for n in EDGE_LENGTHS:
        data = os.urandom(n)
        assert pure(data).digest() == native(data).digest(), n


@pytest.mark.parametrize("pure, native", PURE_HASHES)
@settings(max_examples=60, deadline=None)
@given(data=st.binary(max_size=700), cuts=st.lists(st.integers(0, 700), max_size=5))
def test_hash_random_chunked_updates_match_hashlib(pure, native, data, cuts):
    h = pure()
    last = 0
    for c in sorted(min(c, len(data)) for c in cuts) + [len(data)]:
        h.update(data[last:c])
        last = c
    assert h.digest() == native(data).digest()
    # digest() leaves the object usable, like hashlib
    h.update(b"tail")
    assert h.digest() == native(data + b"tail").digest()


def test_hash_accepts_memoryview_and_bytearray():
    data = os.urandom(300)
    assert sha1(memoryview(data)).digest() == hashlib.sha1(data).digest()
    h = sha512(bytearray(data[:10]))
    h.update(memoryview(data)[10:])
    assert h.digest() == hashlib.sha512(data).digest()


@pytest.mark.parametrize("ctor, native, block", [
    (md5, "md5", 64), (sha1, "sha1", 64), (hashlib.sha256, "sha256", 64),
    (sha384, "sha384", 128), (sha512, "sha512", 128)])
@settings(max_examples=40, deadline=None)
@given(key=st.binary(max_size=200), msg=st.binary(max_size=300))
def test_hmac_matches_stdlib(ctor, native, block, key, msg):
    assert hmac(ctor, key, msg, block) == std_hmac.new(key, msg, native).digest()


def test_hmac_key_lengths_around_block_size():
    for ctor, native, block in ((sha1, "sha1", 64), (sha384, "sha384", 128)):
        for n in (block - 1, block, block + 1):
            key = os.urandom(n)
            assert hmac(ctor, key, b"m", block) == std_hmac.new(key, b"m", native).digest()


def _native_ecb(key):
    return Cipher(algorithms.AES(key), cmodes.ECB())


@pytest.mark.parametrize("klen", [16, 24, 32])
def test_aes_matches_cryptography(klen):
    for _ in range(100):
        key, block = os.urandom(klen), os.urandom(16)
        ref = _native_ecb(key).encryptor().update(block)
        a = AES(key)
        assert a.encrypt(block) == ref
        assert a.decrypt(ref) == block
        assert compat.aes_ecb(key).encrypt(block) == ref


@settings(max_examples=60, deadline=None)
@given(key=st.binary(min_size=16, max_size=16) | st.binary(min_size=32, max_size=32),
       iv=st.binary(min_size=16, max_size=16), data=st.binary(max_size=200))
def test_cfb_matches_cryptography(key, iv, data):
    ref = Cipher(algorithms.AES(key), native_cfb(iv)).encryptor().update(data)
    for ecb in (AES(key), compat.aes_ecb(key)):
        assert cfb_encrypt(ecb, iv, data) == ref
        assert cfb_decrypt(ecb, iv, ref) == data


@settings(max_examples=60, deadline=None)
@given(key=st.binary(min_size=16, max_size=16) | st.binary(min_size=32, max_size=32),
       iv=st.binary(min_size=16, max_size=16) | st.just(b"\xff" * 15 + b"\xfe"), data=st.binary(max_size=200))
def test_ctr_matches_cryptography(key, iv, data):
    ref = Cipher(algorithms.AES(key), cmodes.CTR(iv)).encryptor().update(data)
    assert ctr_xor(AES(key), iv, data) == ref
    out = bytearray(len(data) + 3)
    assert ctr_xor(compat.aes_ecb(key), iv, data, out) is out
    assert bytes(out[:len(data)]) == ref and out[len(data):] == b"\x00\x00\x00"


def test_ctr_rejects_short_output_and_bad_iv():
    with pytest.raises(ValueError):
        ctr_xor(AES(bytes(16)), bytes(16), bytes(20), bytearray(19))
    with pytest.raises(ValueError):
        ctr_xor(AES(bytes(16)), bytes(15), bytes(20))
    with pytest.raises(ValueError):
        cfb_encrypt(AES(bytes(16)), bytes(8), bytes(20))


def _crc32c_bitwise(data):
    # the definition, one bit at a time (RFC 3720 B.4 / RFC 3309): independent of the table code
    c = 0xFFFFFFFF
    for b in data:
        c ^= b
        for _ in range(8):
            c = (c >> 1) ^ (0x82F63B78 * (c & 1))
    return c ^ 0xFFFFFFFF


@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=300), cut=st.integers(0, 300))
def test_crc32c_matches_bitwise_definition_and_chains(data, cut):
    assert crc32c(data) == _crc32c_bitwise(data)
    assert crc32c(data[cut:], crc32c(data[:cut])) == crc32c(data)


def _raw(pub):
    return pub.public_bytes_raw()


def test_x25519_pure_and_native_agree_both_directions():
    for _ in range(25):
        a, b = os.urandom(32), os.urandom(32)
        na, nb = cx.X25519PrivateKey.from_private_bytes(a), cx.X25519PrivateKey.from_private_bytes(b)
        pa = pure_x25519.x25519_base(a)
        assert pa == _raw(na.public_key()) == compat.x25519_base(a)
        # pure on one side, native on the other, both ways
        shared = nb.exchange(cx.X25519PublicKey.from_public_bytes(pa))
        assert pure_x25519.x25519(a, _raw(nb.public_key())) == shared
        assert compat.x25519(b, pa) == shared


@settings(max_examples=30, deadline=None)
@given(k=st.binary(min_size=32, max_size=32), u=st.binary(min_size=32, max_size=32))
def test_x25519_arbitrary_u_matches_native(k, u):
    # includes u with the top bit set and non-canonical u >= p, which RFC 7748 5 says to accept
    try:
        ref = cx.X25519PrivateKey.from_private_bytes(k).exchange(cx.X25519PublicKey.from_public_bytes(u))
    except ValueError:
        ref = None
    if ref is None:
        with pytest.raises(ValueError):
            pure_x25519.x25519(k, u)
    else:
        assert pure_x25519.x25519(k, u) == ref


def test_x25519_low_order_points_rejected_by_both_backends():
    k = os.urandom(32)
    p = 2 ** 255 - 19
    for u in (0, 1, p - 1, p, p + 1):
        ub = u.to_bytes(32, "little")
        with pytest.raises(ValueError):
            pure_x25519.x25519(k, ub)
        with pytest.raises(ValueError):
            compat.x25519(k, ub)


def _xy(pub):
    n = pub.public_numbers()
    return n.x.to_bytes(32, "big") + n.y.to_bytes(32, "big")


def test_p256_pure_and_native_agree_both_directions():
    curve = ec.SECP256R1()
    for _ in range(15):
        ka, kb = ec.generate_private_key(curve), ec.generate_private_key(curve)
        a = ka.private_numbers().private_value.to_bytes(32, "big")
        b = kb.private_numbers().private_value.to_bytes(32, "big")
        pa, pb = _xy(ka.public_key()), _xy(kb.public_key())
        assert pure_p256.p256_public(a) == pa == compat.p256_public(a)
        shared = ka.exchange(ec.ECDH(), kb.public_key())
        assert pure_p256.p256_shared(a, pb) == shared          # pure side A, native side B
        assert compat.p256_shared(b, pure_p256.p256_public(a)) == shared
        assert pure_p256.p256_shared(b, pa) == shared


def test_p256_edge_scalars_match_native():
    n = pure_p256._N
    for k in (1, 2, 3, 15, 16, 17, n - 1, n - 2, 2 ** 252, 2 ** 255):
        kb = k.to_bytes(32, "big")
        assert pure_p256.p256_public(kb) == _xy(ec.derive_private_key(k, ec.SECP256R1()).public_key()), k


def test_p256_bad_inputs_rejected_by_both_backends():
    peer = pure_p256.p256_public(os.urandom(31) + b"\x01")
    p = pure_p256._P.to_bytes(32, "big")
    bad_peers = [peer[:63] + bytes((peer[63] ^ 1,)), bytes(64), p + peer[32:], peer[:32] + p, peer + b"\x00"]
    secret = b"\x01" * 32
    for f in (pure_p256.p256_shared, compat.p256_shared):
        for bad in bad_peers:
            with pytest.raises(ValueError):
                f(secret, bad)
        for bad_secret in (bytes(32), pure_p256._N.to_bytes(32, "big"), b"\x01" * 31):
            with pytest.raises(ValueError):
                f(bad_secret, peer)


def _pi_scaled(bits):
    """floor(pi * 2**bits) by Machin's formula, with guard bits."""
    one = 1 << (bits + 64)

    def arctan_inv(x):
        total, term, n, sign = 0, one // x, 1, 1
        while term:
            total += sign * (term // n)
            term //= x * x
            n += 2
            sign = -sign
        return total

    return (4 * (4 * arctan_inv(5) - arctan_inv(239))) >> 64


@pytest.mark.parametrize("bits, offset", [(2048, 124476), (3072, 1690314)])
def test_modp_primes_follow_rfc3526_formula(bits, offset):
    # RFC 3526: p = 2^bits - 2^(bits-64) - 1 + 2^64 * ([2^(bits-130) pi] + offset)
    want = 2 ** bits - 2 ** (bits - 64) - 1 + 2 ** 64 * (_pi_scaled(bits - 130) + offset)
    assert pure_modp._PRIMES[bits] == want


@pytest.mark.parametrize("bits", [2048, 3072])
def test_modp_matches_cryptography_dh(bits):
    p = pure_modp._PRIMES[bits]
    params = dh.DHParameterNumbers(p, 2)
    for _ in range(3):
        x = random.getrandbits(512) | 2
        y = random.getrandbits(512) | 2
        xb, yb = x.to_bytes(64, "big"), y.to_bytes(64, "big")
        pub_x, pub_y = pure_modp.modp_public(bits, xb), pure_modp.modp_public(bits, yb)
        assert len(pub_x) == bits // 8
        native_x = dh.DHPrivateNumbers(x, dh.DHPublicNumbers(int.from_bytes(pub_x, "big"), params)).private_key()
        native_y_pub = dh.DHPublicNumbers(int.from_bytes(pub_y, "big"), params).public_key()
        ref = native_x.exchange(native_y_pub)
        assert pure_modp.modp_shared(bits, xb, pub_y) == ref.rjust(bits // 8, b"\x00")


def test_compat_picks_native_backends_on_cpython():
    assert compat.md5 is hashlib.md5 and compat.sha1 is hashlib.sha1 and compat.sha384 is hashlib.sha384
    assert compat.aes_ecb is not AES
    assert compat.x25519 is not pure_x25519.x25519 and compat.x25519.__module__ == "microwitch.compat"
    assert compat.x25519_base is not pure_x25519.x25519_base
    assert compat.p256_public is not pure_p256.p256_public
    assert compat.p256_shared is not pure_p256.p256_shared


def test_compat_zrtp_helpers_match_the_pure_ones():
    """compat's C-backed crc32c, hmac and MODP (CPython) agree with the pure modules devices run."""
    import os
    from microwitch import compat
    from microwitch.crypto.crc32c import crc32c as pure_crc
    from microwitch.crypto.hmac import hmac as pure_hmac
    from microwitch.crypto.modp import modp_public as pure_pub, modp_shared as pure_shared
    for n in (0, 1, 63, 64, 65, 1000):
        data = os.urandom(n)
        assert compat.crc32c(data) == pure_crc(data)
        assert compat.crc32c(data[n // 2:], compat.crc32c(data[:n // 2])) == pure_crc(data)
        key = os.urandom(n % 100 + 1)
        assert compat.hmac(compat.sha256, key, data) == pure_hmac(compat.sha256, key, data)
        assert compat.hmac(compat.sha384, key, data, 128) == pure_hmac(compat.sha384, key, data, 128)
    for bits in (2048, 3072):
        a, b = os.urandom(64), os.urandom(64)
        pa = compat.modp_public(bits, a)
        assert pa == pure_pub(bits, a)
        assert compat.modp_shared(bits, b, pa) == pure_shared(bits, b, pa)
        for bad in (b"\x00" * (bits // 8), (1).to_bytes(bits // 8, "big"), b"\x02"):
            with pytest.raises(ValueError):
                compat.modp_shared(bits, b, bad)
