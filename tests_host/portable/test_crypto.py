"""Known-answer tests for the pure-Python crypto in microwitch.crypto (also run under MicroPython).

Vectors: RFC 1321 A.5 (MD5), FIPS 180-2 appendices (SHA-1/384/512), RFC 4231 and RFC 2202 (HMAC),
FIPS-197 appendix C (AES), NIST SP 800-38A F.3.13/F.3.14 and F.5.1/F.5.2 (CFB128, CTR), RFC 3720 B.4 and
the CRC catalogue check value (CRC-32C), RFC 7748 5.2 and 6.1 (X25519), RFC 5903 8.1 (P-256 ECDH).
Messages are short and public-key operations few, so the file stays fast in pure Python on MicroPython.
"""
from microwitch.crypto.aes import AES
from microwitch.crypto.crc32c import crc32c
from microwitch.crypto.hmac import hmac
from microwitch.crypto.md5 import md5
from microwitch.crypto.modes import cfb_decrypt, cfb_encrypt, ctr_xor
from microwitch.crypto.modp import modp_public, modp_shared
from microwitch.crypto.p256 import p256_public, p256_shared
from microwitch.crypto.sha1 import sha1
from microwitch.crypto.sha512 import sha384, sha512
from microwitch.crypto.x25519 import x25519, x25519_base
from microwitch.compat import sha256

H = bytes.fromhex

ABC448 = b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"


def raises_value_error(f, *args):
    try:
        f(*args)
    except ValueError:
        return True
    return False


def test_md5_rfc1321_suite():
    for msg, want in (
        (b"", "d41d8cd98f00b204e9800998ecf8427e"),
        (b"a", "0cc175b9c0f1b6a831c399e269772661"),
        (b"abc", "900150983cd24fb0d6963f7d28e17f72"),
        (b"message digest", "f96b697d7cb7938d525a2f31aaf161d0"),
        (b"abcdefghijklmnopqrstuvwxyz", "c3fcd3d76192e4007dfb496cca67e13b"),
        (b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", "d174ab98d277d9f5a5611c2c9f419d9f"),
        (b"1234567890" * 8, "57edf4a22be3c955ac49da2e2107b67a"),
    ):
        assert md5(msg).digest() == H(want), msg


def test_md5_incremental_matches_one_shot():
    h = md5()
    for part in (b"12345678901234567890123456789012345678901234567890", b"12345", b"", b"6789012345678901234567890"):
        h.update(part)
    assert h.digest() == H("57edf4a22be3c955ac49da2e2107b67a")
    # digest() does not finish the object: more data may follow
    h.update(b"x")
    assert h.digest() == md5(b"1234567890" * 8 + b"x").digest()


def test_sha1_fips180():
    assert sha1(b"abc").digest() == H("a9993e364706816aba3e25717850c26c9cd0d89d")
    assert sha1().digest() == H("da39a3ee5e6b4b0d3255bfef95601890afd80709")
    assert sha1(ABC448).digest() == H("84983e441c3bd26ebaae4aa1f95129e5e54670f1")


def test_sha384_fips180():
    assert sha384(b"abc").digest() == H(
        "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7")
    assert sha384().digest() == H(
        "38b060a751ac96384cd9327eb1b1e36a21fdb71114be07434c0cc7bf63f6e1da274edebfe76f65fbd51ad2f14898b95b")
    assert sha384(ABC448).digest() == H(
        "3391fdddfc8dc7393707a65b1b4709397cf8b1d162af05abfe8f450de5f36bc6b0455a8520bc4e6f5fe95b1fe3c8452b")


def test_sha512_fips180():
    assert sha512(b"abc").digest() == H(
        "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
        "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f")
    assert sha512().digest() == H(
        "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce"
        "47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e")
    assert sha512(ABC448).digest() == H(
        "204a8fc6dda82f0a0ced7beb8e08a41657c16ef468b228a8279be331a703c335"
        "96fd15c13b1b07f9aa1d3bea57789ca031ad85c7a71dd70354ec631238ca3445")


def test_hmac_rfc4231_cases_1_to_3():
    cases = (
        (b"\x0b" * 20, b"Hi There",
         "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
         "afd03944d84895626b0825f4ab46907f15f9dadbe4101ec682aa034c7cebc59c"
         "faea9ea9076ede7f4af152e8b2fa9cb6"),
        (b"Jefe", b"what do ya want for nothing?",
         "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
         "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e"
         "8e2240ca5e69e2c78b3239ecfab21649"),
        (b"\xaa" * 20, b"\xdd" * 50,
         "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
         "88062608d3e6ad8a0aa2ace014c8a86f0aa635d947ac9febe83ef4e55966144b"
         "2a5ab39dc13814b94e3ab6e101a34f27"),
    )
    for key, msg, want256, want384 in cases:
        assert hmac(sha256, key, msg) == H(want256), key
        assert hmac(sha384, key, msg, 128) == H(want384), key


def test_hmac_rfc2202_md5_sha1_case_1():
    assert hmac(md5, b"\x0b" * 16, b"Hi There") == H("9294727a3638bb1c13f48ef8158bfc9d")
    assert hmac(sha1, b"\x0b" * 20, b"Hi There") == H("b617318655057264e28bc0b6fb378c8ef146be00")


def test_hmac_long_key_is_hashed_first():
    # RFC 2202 case 6: an 80-byte key is longer than the 64-byte block
    assert hmac(sha1, b"\xaa" * 80, b"Test Using Larger Than Block-Size Key - Hash Key First") == H(
        "aa4ae5e15272d00e95705637ce8a3b55ed402112")


def test_aes_fips197_appendix_c():
    pt = H("00112233445566778899aabbccddeeff")
    a128 = AES(H("000102030405060708090a0b0c0d0e0f"))
    assert a128.encrypt(pt) == H("69c4e0d86a7b0430d8cdb78070b4c55a")
    assert a128.decrypt(H("69c4e0d86a7b0430d8cdb78070b4c55a")) == pt
    a256 = AES(H("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"))
    assert a256.encrypt(pt) == H("8ea2b7ca516745bfeafc49904b496089")
    assert a256.decrypt(H("8ea2b7ca516745bfeafc49904b496089")) == pt


def test_aes_rejects_bad_sizes():
    assert raises_value_error(AES, bytes(15))
    assert raises_value_error(AES(bytes(16)).encrypt, bytes(15))


SP800_KEY = H("2b7e151628aed2a6abf7158809cf4f3c")
SP800_PT = H("6bc1bee22e409f96e93d7e117393172a" "ae2d8a571e03ac9c9eb76fac45af8e51"
             "30c81c46a35ce411e5fbc1191a0a52ef" "f69f2445df4f9b17ad2b417be66c3710")


def test_cfb128_sp800_38a_f313_f314():
    ecb = AES(SP800_KEY)
    iv = H("000102030405060708090a0b0c0d0e0f")
    ct = H("3b3fd92eb72dad20333449f8e83cfb4a" "c8a64537a0b3a93fcde3cdad9f1ce58b"
           "26751f67a3cbb140b1808cf187a4f4df" "c04b05357c5d1c0eeac4c66f9ff7f2e6")
    assert cfb_encrypt(ecb, iv, SP800_PT) == ct
    assert cfb_decrypt(ecb, iv, ct) == SP800_PT
    # a short last block (ZRTP Confirm bodies are whole words, not whole blocks) truncates the keystream
    assert cfb_encrypt(ecb, iv, SP800_PT[:36]) == ct[:36]
    assert cfb_decrypt(ecb, iv, ct[:36]) == SP800_PT[:36]


def test_ctr_sp800_38a_f51_f52():
    ecb = AES(SP800_KEY)
    ctr = H("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff")
    ct = H("874d6191b620e3261bef6864990db6ce" "9806f66b7970fdff8617187bb9fffdff"
           "5ae4df3edbd5d35e5b4f09020db03eab" "1e031dda2fbe03d1792170a0f3009cee")
    assert ctr_xor(ecb, ctr, SP800_PT) == ct
    assert ctr_xor(ecb, ctr, ct) == SP800_PT
    assert ctr_xor(ecb, ctr, SP800_PT[:21]) == ct[:21]
    # in place, into a preallocated buffer and through a memoryview window
    buf = bytearray(b"\x00\x00" + SP800_PT)
    out = ctr_xor(ecb, ctr, memoryview(buf)[2:], memoryview(buf)[2:])
    assert bytes(buf[2:]) == ct and bytes(out) == ct
    assert buf[:2] == b"\x00\x00"


def test_ctr_counter_wraps_at_2_128():
    ecb = AES(SP800_KEY)
    top = b"\xff" * 16
    ks = ctr_xor(ecb, top, bytes(32))
    assert ks[:16] == ecb.encrypt(top)
    assert ks[16:] == ecb.encrypt(bytes(16))


def test_crc32c_known_values():
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c(bytes(32)) == 0x8A9136AA
    assert crc32c(b"\xff" * 32) == 0x62A8AB43
    assert crc32c(bytes(range(32))) == 0x46DD794E
    assert crc32c(b"") == 0
    # continuing from a previous value equals one pass
    assert crc32c(b"6789", crc32c(b"12345")) == 0xE3069283


def test_x25519_rfc7748_5_2():
    assert x25519(H("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4"),
                  H("e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c")) == H(
        "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552")
    # the second vector's u has its top bit set: it must be masked off
    assert x25519(H("4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d"),
                  H("e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493")) == H(
        "95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957")


def test_x25519_rfc7748_6_1_alice_bob():
    a = H("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
    b = H("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")
    a_pub = x25519_base(a)
    assert a_pub == H("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
    b_pub = H("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
    assert x25519(a, b_pub) == H("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")


def test_x25519_rejects_zero_output_and_bad_lengths():
    k = H("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
    assert raises_value_error(x25519, k, bytes(32))              # u = 0
    assert raises_value_error(x25519, k, b"\x01" + bytes(31))    # u = 1, order 4
    assert raises_value_error(x25519, k, bytes(31))
    assert raises_value_error(x25519, bytes(31), b"\x09" + bytes(31))


P256_I = H("c88f01f510d9ac3f70a292daa2316de544e9aab8afe84049c62a9c57862d1433")
P256_GI = H("dad0b65394221cf9b051e1feca5787d098dfe637fc90b9ef945d0c3772581180"
            "5271a0461cdb8252d61f1c456fa3e59ab1f45b33accf5f58389e0577b8990bb3")
P256_GR = H("d12dfb5289c8d4f81208b70270398c342296970a0bccb74c736fc7554494bf63"
            "56fbf3ca366cc23e8157854c13c58d6aac23f046ada30f8353e74f33039872ab")
P256_GIR = H("d6840f6b42f6edafd13116e0e12565202fef8e9ece7dce03812464d04b9442de")


def test_p256_rfc5903_8_1():
    assert p256_public(P256_I) == P256_GI
    assert p256_shared(P256_I, P256_GR) == P256_GIR


def test_p256_rejects_bad_points_and_secrets():
    p = H("ffffffff00000001000000000000000000000000ffffffffffffffffffffffff")
    bad_y = P256_GR[:63] + bytes((P256_GR[63] ^ 1,))
    for peer in (bad_y, bytes(64), p + P256_GR[32:], P256_GR[:32] + p, P256_GR[:63]):
        assert raises_value_error(p256_shared, P256_I, peer), peer
    n = H("ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551")
    for secret in (bytes(32), n, b"\xff" * 32, P256_I[:31]):
        assert raises_value_error(p256_public, secret), secret


def test_modp_dh2k_round_trip_small_exponents():
    a, b = b"\x05", b"\x07"
    pa = modp_public(2048, a)
    assert len(pa) == 256 and pa == (32).to_bytes(256, "big")
    pb = modp_public(2048, b)
    s = modp_shared(2048, a, pb)
    assert s == modp_shared(2048, b, pa) == (2 ** 35).to_bytes(256, "big")
    # 2^4000 wraps around the modulus: both sides must still agree
    x, y = b"\x0f\xa0", b"\x03"
    assert modp_shared(3072, x, modp_public(3072, y)) == modp_shared(3072, y, modp_public(3072, x))


def test_modp_rejects_bad_peer_values():
    p = modp_public(2048, b"\x02")   # any valid value, to get the length right
    assert len(p) == 256
    prime = int(
        "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74"
        "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437"
        "4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED"
        "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF05"
        "98DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB"
        "9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B"
        "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF695581718"
        "3995497CEA956AE515D2261898FA051015728E5A8AACAA68FFFFFFFFFFFFFFFF", 16)
    for y in (0, 1, prime - 1, prime, prime + 1, 2 ** 2048 - 1):
        assert raises_value_error(modp_shared, 2048, b"\x05", y.to_bytes(256, "big")), y
    assert modp_shared(2048, b"\x05", (prime - 2).to_bytes(256, "big"))
    assert raises_value_error(modp_shared, 2048, b"\x05", bytes(254) + b"\x02")
    assert raises_value_error(modp_public, 1024, b"\x05")
    assert raises_value_error(modp_public, 2048, b"\x00")


def test_compat_key_agreement_matches_pure():
    # whichever back-end compat chose (native on CPython, these modules on MicroPython) gives the same
    from microwitch import compat
    a = H("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
    assert compat.x25519_base(a) == H("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
    assert compat.p256_shared(P256_I, P256_GR) == P256_GIR
    assert raises_value_error(compat.p256_shared, P256_I, bytes(64))
    assert raises_value_error(compat.x25519, a, bytes(32))
