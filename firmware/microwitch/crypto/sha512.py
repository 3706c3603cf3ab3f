"""SHA-384 and SHA-512 (FIPS 180-4 6.4, 6.5) in pure Python, for runtimes whose hashlib lacks them
(ZRTP S384, RFC 6189 5.1.2)."""
from struct import unpack_from

from microwitch.crypto.mdhash import MDHash

# FIPS 180-4 4.2.3: first 64 bits of the fractional parts of the cube roots of the first 80 primes
_K = (
    0x428a2f98d728ae22, 0x7137449123ef65cd, 0xb5c0fbcfec4d3b2f, 0xe9b5dba58189dbbc,
    0x3956c25bf348b538, 0x59f111f1b605d019, 0x923f82a4af194f9b, 0xab1c5ed5da6d8118,
    0xd807aa98a3030242, 0x12835b0145706fbe, 0x243185be4ee4b28c, 0x550c7dc3d5ffb4e2,
    0x72be5d74f27b896f, 0x80deb1fe3b1696b1, 0x9bdc06a725c71235, 0xc19bf174cf692694,
    0xe49b69c19ef14ad2, 0xefbe4786384f25e3, 0x0fc19dc68b8cd5b5, 0x240ca1cc77ac9c65,
    0x2de92c6f592b0275, 0x4a7484aa6ea6e483, 0x5cb0a9dcbd41fbd4, 0x76f988da831153b5,
    0x983e5152ee66dfab, 0xa831c66d2db43210, 0xb00327c898fb213f, 0xbf597fc7beef0ee4,
    0xc6e00bf33da88fc2, 0xd5a79147930aa725, 0x06ca6351e003826f, 0x142929670a0e6e70,
    0x27b70a8546d22ffc, 0x2e1b21385c26c926, 0x4d2c6dfc5ac42aed, 0x53380d139d95b3df,
    0x650a73548baf63de, 0x766a0abb3c77b2a8, 0x81c2c92e47edaee6, 0x92722c851482353b,
    0xa2bfe8a14cf10364, 0xa81a664bbc423001, 0xc24b8b70d0f89791, 0xc76c51a30654be30,
    0xd192e819d6ef5218, 0xd69906245565a910, 0xf40e35855771202a, 0x106aa07032bbd1b8,
    0x19a4c116b8d2d0c8, 0x1e376c085141ab53, 0x2748774cdf8eeb99, 0x34b0bcb5e19b48a8,
    0x391c0cb3c5c95a63, 0x4ed8aa4ae3418acb, 0x5b9cca4f7763e373, 0x682e6ff3d6b2b8a3,
    0x748f82ee5defb2fc, 0x78a5636f43172f60, 0x84c87814a1f0ab72, 0x8cc702081a6439ec,
    0x90befffa23631e28, 0xa4506cebde82bde9, 0xbef9a3f7b2c67915, 0xc67178f2e372532b,
    0xca273eceea26619c, 0xd186b8c721c0c207, 0xeada7dd6cde0eb1e, 0xf57d4f7fee6ed178,
    0x06f067aa72176fba, 0x0a637dc5a2c898a6, 0x113f9804bef90dae, 0x1b710b35131c471b,
    0x28db77f523047d84, 0x32caab7b40c72493, 0x3c9ebe0a15c9bebc, 0x431d67c49c100d4c,
    0x4cc5d4becb3e42b6, 0x597f299cfc657e2a, 0x5fcb6fab3ad6faec, 0x6c44198c4a475817,
)


def _compress(st, buf, off):
    """One 128-byte block. Each pass does eight rounds with the variable roles written out. The
    rotations are not masked: the bits they leave above bit 63 vanish in the final mask of each sum."""
    M = 0xFFFFFFFFFFFFFFFF
    k = _K
    w = list(unpack_from(">16Q", buf, off))
    for t in range(16, 80):
        x = w[t - 15]
        y = w[t - 2]
        w.append((w[t - 16] + w[t - 7]
                  + (((x >> 1) | (x << 63)) ^ ((x >> 8) | (x << 56)) ^ (x >> 7))
                  + (((y >> 19) | (y << 45)) ^ ((y >> 61) | (y << 3)) ^ (y >> 6))) & M)
    a, b, c, d, e, f, g, h = st
    for i in range(0, 80, 8):
        s1 = ((e >> 14) | (e << 50)) ^ ((e >> 18) | (e << 46)) ^ ((e >> 41) | (e << 23))
        t = h + s1 + (g ^ (e & (f ^ g))) + k[i] + w[i]
        d = (d + t) & M
        s0 = ((a >> 28) | (a << 36)) ^ ((a >> 34) | (a << 30)) ^ ((a >> 39) | (a << 25))
        h = (t + s0 + ((a & b) | (c & (a | b)))) & M
        s1 = ((d >> 14) | (d << 50)) ^ ((d >> 18) | (d << 46)) ^ ((d >> 41) | (d << 23))
        t = g + s1 + (f ^ (d & (e ^ f))) + k[i + 1] + w[i + 1]
        c = (c + t) & M
        s0 = ((h >> 28) | (h << 36)) ^ ((h >> 34) | (h << 30)) ^ ((h >> 39) | (h << 25))
        g = (t + s0 + ((h & a) | (b & (h | a)))) & M
        s1 = ((c >> 14) | (c << 50)) ^ ((c >> 18) | (c << 46)) ^ ((c >> 41) | (c << 23))
        t = f + s1 + (e ^ (c & (d ^ e))) + k[i + 2] + w[i + 2]
        b = (b + t) & M
        s0 = ((g >> 28) | (g << 36)) ^ ((g >> 34) | (g << 30)) ^ ((g >> 39) | (g << 25))
        f = (t + s0 + ((g & h) | (a & (g | h)))) & M
        s1 = ((b >> 14) | (b << 50)) ^ ((b >> 18) | (b << 46)) ^ ((b >> 41) | (b << 23))
        t = e + s1 + (d ^ (b & (c ^ d))) + k[i + 3] + w[i + 3]
        a = (a + t) & M
        s0 = ((f >> 28) | (f << 36)) ^ ((f >> 34) | (f << 30)) ^ ((f >> 39) | (f << 25))
        e = (t + s0 + ((f & g) | (h & (f | g)))) & M
        s1 = ((a >> 14) | (a << 50)) ^ ((a >> 18) | (a << 46)) ^ ((a >> 41) | (a << 23))
        t = d + s1 + (c ^ (a & (b ^ c))) + k[i + 4] + w[i + 4]
        h = (h + t) & M
        s0 = ((e >> 28) | (e << 36)) ^ ((e >> 34) | (e << 30)) ^ ((e >> 39) | (e << 25))
        d = (t + s0 + ((e & f) | (g & (e | f)))) & M
        s1 = ((h >> 14) | (h << 50)) ^ ((h >> 18) | (h << 46)) ^ ((h >> 41) | (h << 23))
        t = c + s1 + (b ^ (h & (a ^ b))) + k[i + 5] + w[i + 5]
        g = (g + t) & M
        s0 = ((d >> 28) | (d << 36)) ^ ((d >> 34) | (d << 30)) ^ ((d >> 39) | (d << 25))
        c = (t + s0 + ((d & e) | (f & (d | e)))) & M
        s1 = ((g >> 14) | (g << 50)) ^ ((g >> 18) | (g << 46)) ^ ((g >> 41) | (g << 23))
        t = b + s1 + (a ^ (g & (h ^ a))) + k[i + 6] + w[i + 6]
        f = (f + t) & M
        s0 = ((c >> 28) | (c << 36)) ^ ((c >> 34) | (c << 30)) ^ ((c >> 39) | (c << 25))
        b = (t + s0 + ((c & d) | (e & (c | d)))) & M
        s1 = ((f >> 14) | (f << 50)) ^ ((f >> 18) | (f << 46)) ^ ((f >> 41) | (f << 23))
        t = a + s1 + (h ^ (f & (g ^ h))) + k[i + 7] + w[i + 7]
        e = (e + t) & M
        s0 = ((b >> 28) | (b << 36)) ^ ((b >> 34) | (b << 30)) ^ ((b >> 39) | (b << 25))
        a = (t + s0 + ((b & c) | (d & (b | c)))) & M
    return ((st[0] + a) & M, (st[1] + b) & M, (st[2] + c) & M, (st[3] + d) & M,
            (st[4] + e) & M, (st[5] + f) & M, (st[6] + g) & M, (st[7] + h) & M)


class sha512(MDHash):
    """hashlib-style SHA-512: sha512(data).update(more).digest() -> 64 bytes."""
    block_size = 128
    digest_size = 64
    _H0 = (
        0x6a09e667f3bcc908, 0xbb67ae8584caa73b, 0x3c6ef372fe94f82b, 0xa54ff53a5f1d36f1,
        0x510e527fade682d1, 0x9b05688c2b3e6c1f, 0x1f83d9abfb41bd6b, 0x5be0cd19137e2179,
    )
    _LEN = ">QQ"
    _OUT = ">8Q"
    _compress = staticmethod(_compress)


class sha384(sha512):
    """hashlib-style SHA-384: SHA-512 with its own initial value, truncated to 48 bytes."""
    digest_size = 48
    _H0 = (
        0xcbbb9d5dc1059ed8, 0x629a292a367cd507, 0x9159015a3070dd17, 0x152fecd8f70e5939,
        0x67332667ffc00b31, 0x8eb44a8768581511, 0xdb0c2e0d64f98fa7, 0x47b5481dbefa4fa4,
    )
