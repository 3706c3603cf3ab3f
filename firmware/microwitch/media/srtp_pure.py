"""Pure-Python AES-CTR keystream and HMAC-SHA1 shaped for SRTP packets (RFC 3711 4.1.1, 4.2.1).

compat picks these on runtimes without a native AES or SHA-1 (the wasm test port); devices use their
cryptolib/hashlib and CPython uses OpenSSL. Two tricks keep a 160-byte packet cheap:
- counter-mode caching: an SRTP counter block differs from its packet's first one only in the last
  byte (fewer than 256 blocks), so round 1 is computed once per packet except for one column, and
  round 2 only needs one S-box term per byte per block;
- HMAC pads are compressed once per key, so a MAC costs the message blocks plus one outer block.
Not constant-time (table lookups): devices with cryptolib do not use it.
"""
from struct import pack, pack_into

from microwitch.crypto.aes import AES, _S, _S2, _S3
from microwitch.crypto.sha1 import _compress, sha1


def _pair_tables():
    """MixColumns o SubBytes as 16-bit pairs of rows: a column is held as hi = row0 << 8 | row1 and
    lo = row2 << 8 | row3, and T[i][x] is the contribution of S-box output S[x] to such a pair with the
    coefficients (2, 1), (3, 2), (1, 3), (1, 1) (FIPS 197 5.1.3). Every value stays below 2**16, so
    MicroPython never allocates a big int, and a round costs half the table lookups of a byte state."""
    out = []
    for hi, lo in ((_S2, _S), (_S3, _S2), (_S, _S3), (_S, _S)):
        out.append(tuple((hi[x] << 8) | lo[x] for x in range(256)))
    return out


_T0, _T1, _T2, _T3 = _pair_tables()


class AesCtr:
    """xor(iv, data): data XOR the AES-CTR keystream E(iv), E(iv + 1), ... for an integer iv whose
    low 16 bits are zero (every SRTP/SRTCP IV and key-derivation IV is shifted left by 16)."""

    def __init__(self, key):
        a = AES(key)
        self._nr = a._nr
        self._rk = a._ek
        # round keys as the same row pairs as the state
        self._rp = [tuple((k[i] << 8) | k[i + 1] for i in range(0, 16, 2)) for k in a._ek]
        self._ks = bytearray(1504)

    def xor(self, iv, data):
        n = len(data)
        if n == 0:
            return b""
        ks = self.keystream(iv, (n + 15) >> 4)
        return (int.from_bytes(data, "big") ^ int.from_bytes(memoryview(ks)[:n], "big")).to_bytes(n, "big")

    def keystream(self, iv, nb):
        """nb keystream blocks into a reused bytearray (returned; valid until the next call)."""
        if iv & 0xFFFF or nb > 0x10000:
            raise ValueError("AES-CTR: counter low 16 bits must be zero and at most 65536 blocks")
        ks = self._ks
        if len(ks) < 16 * nb:
            ks = self._ks = bytearray(16 * nb)
        S = _S
        T0 = _T0
        T1 = _T1
        T2 = _T2
        T3 = _T3
        rp = self._rp
        nr = self._nr
        kl = self._rk[nr]
        k0 = self._rk[0]
        b = iv.to_bytes(16, "big")
        # round 0 (AddRoundKey) as bytes: x[4c + row]
        x0, x1, x2, x3 = b[0] ^ k0[0], b[1] ^ k0[1], b[2] ^ k0[2], b[3] ^ k0[3]
        x4, x5, x6, x7 = b[4] ^ k0[4], b[5] ^ k0[5], b[6] ^ k0[6], b[7] ^ k0[7]
        x8, x9, x10, x11 = b[8] ^ k0[8], b[9] ^ k0[9], b[10] ^ k0[10], b[11] ^ k0[11]
        x12, x13 = b[12] ^ k0[12], b[13] ^ k0[13]
        k015 = k0[15]
        q0, q1, q2, q3, q4, q5, q6, q7 = rp[1]
        r0, r1, r2, r3, r4, r5, r6, r7 = rp[2]
        rounds = range(3, nr)
        j = 0
        o = 0
        while j < nb:
            x14 = k0[14] ^ (j >> 8)
            # round 1: output column c takes rows 0-3 from input columns c, c+1, c+2, c+3; only column 0
            # reads byte 15 (the low counter byte), so columns 1-3 are fixed for up to 256 blocks
            ch0 = T0[x0] ^ T1[x5] ^ T2[x10] ^ q0
            cl0 = T2[x0] ^ T3[x5] ^ T0[x10] ^ q1
            h1 = T0[x4] ^ T1[x9] ^ T2[x14] ^ T3[x3] ^ q2
            l1 = T2[x4] ^ T3[x9] ^ T0[x14] ^ T1[x3] ^ q3
            h2 = T0[x8] ^ T1[x13] ^ T2[x2] ^ T3[x7] ^ q4
            l2 = T2[x8] ^ T3[x13] ^ T0[x2] ^ T1[x7] ^ q5
            h3 = T0[x12] ^ T1[x1] ^ T2[x6] ^ T3[x11] ^ q6
            l3 = T2[x12] ^ T3[x1] ^ T0[x6] ^ T1[x11] ^ q7
            # round 2: each output column has exactly one input byte from column 0
            a1, b1, c1, d1 = h1 >> 8, h1 & 255, l1 >> 8, l1 & 255
            a2, b2, c2, d2 = h2 >> 8, h2 & 255, l2 >> 8, l2 & 255
            a3, b3, c3, d3 = h3 >> 8, h3 & 255, l3 >> 8, l3 & 255
            dh0 = T1[b1] ^ T2[c2] ^ T3[d3] ^ r0
            dl0 = T3[b1] ^ T0[c2] ^ T1[d3] ^ r1
            dh1 = T0[a1] ^ T1[b2] ^ T2[c3] ^ r2
            dl1 = T2[a1] ^ T3[b2] ^ T0[c3] ^ r3
            dh2 = T0[a2] ^ T1[b3] ^ T3[d1] ^ r4
            dl2 = T2[a2] ^ T3[b3] ^ T1[d1] ^ r5
            dh3 = T0[a3] ^ T2[c1] ^ T3[d2] ^ r6
            dl3 = T2[a3] ^ T0[c1] ^ T1[d2] ^ r7
            end = (j | 0xFF) + 1
            if end > nb:
                end = nb
            while j < end:
                t = k015 ^ (j & 0xFF)
                h0 = ch0 ^ T3[t]
                l0 = cl0 ^ T1[t]
                a0 = h0 >> 8
                b0 = h0 & 255
                c0 = l0 >> 8
                d0 = l0 & 255
                h0 = dh0 ^ T0[a0]
                l0 = dl0 ^ T2[a0]
                h1 = dh1 ^ T3[d0]
                l1 = dl1 ^ T1[d0]
                h2 = dh2 ^ T2[c0]
                l2 = dl2 ^ T0[c0]
                h3 = dh3 ^ T1[b0]
                l3 = dl3 ^ T3[b0]
                for r in rounds:
                    k0_, k1_, k2_, k3_, k4_, k5_, k6_, k7_ = rp[r]
                    a0 = h0 >> 8
                    b0 = h0 & 255
                    c0 = l0 >> 8
                    d0 = l0 & 255
                    a1 = h1 >> 8
                    b1 = h1 & 255
                    c1 = l1 >> 8
                    d1 = l1 & 255
                    a2 = h2 >> 8
                    b2 = h2 & 255
                    c2 = l2 >> 8
                    d2 = l2 & 255
                    a3 = h3 >> 8
                    b3 = h3 & 255
                    c3 = l3 >> 8
                    d3 = l3 & 255
                    h0 = T0[a0] ^ T1[b1] ^ T2[c2] ^ T3[d3] ^ k0_
                    l0 = T2[a0] ^ T3[b1] ^ T0[c2] ^ T1[d3] ^ k1_
                    h1 = T0[a1] ^ T1[b2] ^ T2[c3] ^ T3[d0] ^ k2_
                    l1 = T2[a1] ^ T3[b2] ^ T0[c3] ^ T1[d0] ^ k3_
                    h2 = T0[a2] ^ T1[b3] ^ T2[c0] ^ T3[d1] ^ k4_
                    l2 = T2[a2] ^ T3[b3] ^ T0[c0] ^ T1[d1] ^ k5_
                    h3 = T0[a3] ^ T1[b0] ^ T2[c1] ^ T3[d2] ^ k6_
                    l3 = T2[a3] ^ T3[b0] ^ T0[c1] ^ T1[d2] ^ k7_
                # final round: SubBytes, ShiftRows, AddRoundKey; no MixColumns
                ks[o:o + 16] = bytes((
                    S[h0 >> 8] ^ kl[0], S[h1 & 255] ^ kl[1], S[l2 >> 8] ^ kl[2], S[l3 & 255] ^ kl[3],
                    S[h1 >> 8] ^ kl[4], S[h2 & 255] ^ kl[5], S[l3 >> 8] ^ kl[6], S[l0 & 255] ^ kl[7],
                    S[h2 >> 8] ^ kl[8], S[h3 & 255] ^ kl[9], S[l0 >> 8] ^ kl[10], S[l1 & 255] ^ kl[11],
                    S[h3 >> 8] ^ kl[12], S[h0 & 255] ^ kl[13], S[l1 >> 8] ^ kl[14], S[l2 & 255] ^ kl[15],
                ))
                o += 16
                j += 1
        return ks


_H0 = (0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0)


class HmacSha1:
    """HMAC-SHA1 (RFC 2104) with the key pads compressed once: digest(data, extra) = HMAC(key, data || extra)."""

    def __init__(self, key):
        if len(key) > 64:
            key = sha1(key).digest()
        k = bytes(key) + bytes(64 - len(key))
        self._hi = _compress(_H0, bytes(b ^ 0x36 for b in k), 0)
        self._ho = _compress(_H0, bytes(b ^ 0x5C for b in k), 0)
        ob = self._ob = bytearray(64)
        ob[20] = 0x80
        pack_into(">Q", ob, 56, (64 + 20) * 8)

    def digest(self, data, extra=b""):
        msg = bytes(data) + extra if extra else data
        n = len(msg)
        h = self._hi
        i = 0
        end = n - 64
        while i <= end:
            h = _compress(h, msg, i)
            i += 64
        r = n - i
        # final padding (FIPS 180-4 5.1.1); the length counts the ipad block
        last = bytes(msg[i:]) + b"\x80" + bytes((55 - r) % 64) + pack(">Q", (64 + n) * 8)
        h = _compress(h, last, 0)
        if len(last) > 64:
            h = _compress(h, last, 64)
        ob = self._ob
        pack_into(">5I", ob, 0, h[0], h[1], h[2], h[3], h[4])
        h = _compress(self._ho, ob, 0)
        return pack(">5I", h[0], h[1], h[2], h[3], h[4])
