"""Pure-Python AES-CTR keystream and HMAC-SHA1 shaped for SRTP packets (RFC 3711 4.1.1, 4.2.1).

compat picks these on runtimes without a native AES or SHA-1 (the wasm test port); devices use their
cryptolib/hashlib and CPython uses OpenSSL. Two tricks keep a 160-byte packet cheap:
- counter-mode caching: an SRTP counter block differs from its packet's first one only in the last
  byte (fewer than 256 blocks), so round 1 is computed once per packet except for one column, and
  round 2 only needs one S-box term per byte per block;
- HMAC pads are compressed once per key, so a MAC costs the message blocks plus one outer block.
Both work in place: the keystream is XORed into the packet as it is computed, and HMAC reads whole blocks
straight from the packet, keeping only the last partial block in a buffer of its own.
Not constant-time (table lookups): devices with cryptolib do not use it.
"""
from struct import pack, pack_into

from microwitch.compat import CtrBase
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


class AesCtr(CtrBase):
    """compat.aes_ctr's contract: xor_into(iv, buf, start, end) XORs buf[start:end] in place with the AES-CTR
    keystream E(iv), E(iv + 1), ... for a 16-byte counter block iv whose last two bytes are zero."""

    def __init__(self, key):
        a = AES(key)
        self._nr = a._nr
        self._rk = a._ek
        # round keys as the same row pairs as the state
        self._rp = [tuple((k[i] << 8) | k[i + 1] for i in range(0, 16, 2)) for k in a._ek]
        self._last = bytearray(16)  # a short last block's keystream

    def _run(self, iv, buf, start, end, nb):
        """Each keystream byte is XORed into buf as it is computed: no keystream buffer, no second pass,
        except for a short last block, which goes through self._last."""
        last = self._last
        S = _S
        T0 = _T0
        T1 = _T1
        T2 = _T2
        T3 = _T3
        rp = self._rp
        nr = self._nr
        kl = self._rk[nr]
        k0 = self._rk[0]
        # round 0 (AddRoundKey) as bytes: x[4c + row]
        x0, x1, x2, x3 = iv[0] ^ k0[0], iv[1] ^ k0[1], iv[2] ^ k0[2], iv[3] ^ k0[3]
        x4, x5, x6, x7 = iv[4] ^ k0[4], iv[5] ^ k0[5], iv[6] ^ k0[6], iv[7] ^ k0[7]
        x8, x9, x10, x11 = iv[8] ^ k0[8], iv[9] ^ k0[9], iv[10] ^ k0[10], iv[11] ^ k0[11]
        x12, x13 = iv[12] ^ k0[12], iv[13] ^ k0[13]
        k015 = k0[15]
        q0, q1, q2, q3, q4, q5, q6, q7 = rp[1]
        r0, r1, r2, r3, r4, r5, r6, r7 = rp[2]
        rounds = range(3, nr)
        j = 0
        o = start
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
            stop = (j | 0xFF) + 1
            if stop > nb:
                stop = nb
            while j < stop:
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
                # final round: SubBytes, ShiftRows, AddRoundKey (no MixColumns), XORed into the data;
                # a short last block is computed into `last` first
                t = buf
                p = o
                if o + 16 > end:
                    t = last
                    p = 0
                    for k in range(16):
                        last[k] = 0
                t[p] ^= S[h0 >> 8] ^ kl[0]
                t[p + 1] ^= S[h1 & 255] ^ kl[1]
                t[p + 2] ^= S[l2 >> 8] ^ kl[2]
                t[p + 3] ^= S[l3 & 255] ^ kl[3]
                t[p + 4] ^= S[h1 >> 8] ^ kl[4]
                t[p + 5] ^= S[h2 & 255] ^ kl[5]
                t[p + 6] ^= S[l3 >> 8] ^ kl[6]
                t[p + 7] ^= S[l0 & 255] ^ kl[7]
                t[p + 8] ^= S[h2 >> 8] ^ kl[8]
                t[p + 9] ^= S[h3 & 255] ^ kl[9]
                t[p + 10] ^= S[l0 >> 8] ^ kl[10]
                t[p + 11] ^= S[l1 & 255] ^ kl[11]
                t[p + 12] ^= S[h3 >> 8] ^ kl[12]
                t[p + 13] ^= S[h0 & 255] ^ kl[13]
                t[p + 14] ^= S[l1 >> 8] ^ kl[14]
                t[p + 15] ^= S[l2 & 255] ^ kl[15]
                o += 16
                j += 1
        if o > end:
            o -= 16
            for k in range(end - o):
                buf[o + k] ^= last[k]


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
        self._tail = bytearray(192)  # the message's last partial block, `extra` (at most 64 bytes), padding

    def digest(self, data, extra=b""):
        n = len(data)
        m = len(extra)
        if m > 64:
            raise ValueError("HMAC-SHA1: extra is at most 64 bytes")
        h = self._hi
        i = 0
        end = n - 64
        while i <= end:  # whole blocks straight from the packet: no copy
            h = _compress(h, data, i)
            i += 64
        # the rest of data, then extra, then the final padding (FIPS 180-4 5.1.1; the length counts the ipad)
        t = self._tail
        r = n - i
        t[0:r] = memoryview(data)[i:n]
        t[r:r + m] = extra
        r += m
        t[r] = 0x80
        last = (r + 72) & ~63  # whole blocks holding the rest, 0x80 and the 8-byte length
        for k in range(r + 1, last - 8):
            t[k] = 0
        pack_into(">Q", t, last - 8, (64 + n + m) * 8)
        for k in range(0, last, 64):
            h = _compress(h, t, k)
        ob = self._ob
        pack_into(">5I", ob, 0, h[0], h[1], h[2], h[3], h[4])
        h = _compress(self._ho, ob, 0)
        return pack(">5I", h[0], h[1], h[2], h[3], h[4])
