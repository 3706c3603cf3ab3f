"""AES block cipher (FIPS 197) in pure Python: the fallback behind compat.aes_ecb when neither the
device's cryptolib nor CPython's `cryptography` is there (the wasm test runtime).

Byte-oriented on purpose: every value stays below 256, which on MicroPython keeps all arithmetic in
small ints (no heap allocation), where 32-bit T-tables would allocate a big int per XOR. SubBytes and
the MixColumns multiplications are folded into 256-byte tables built once at import.
Not constant-time (table lookups): fine for a test runtime, devices use their cryptolib.
"""


def _build_tables():
    """S-box (FIPS 197 5.1.1) and its inverse, each composed with the MixColumns coefficients."""
    exp = bytearray(256)
    log = bytearray(256)
    p = 1
    for i in range(255):
        exp[i] = p
        log[p] = i
        # multiply by the generator 3 = x + 1 in GF(2^8) mod x^8 + x^4 + x^3 + x + 1
        p ^= ((p << 1) ^ (0x1B if p & 0x80 else 0)) & 0xFF

    def mul(a, b):
        if a == 0 or b == 0:
            return 0
        return exp[(log[a] + log[b]) % 255]

    sbox = bytearray(256)
    inv = bytearray(256)
    for x in range(256):
        b = exp[(255 - log[x]) % 255] if x else 0
        s = b
        for _ in range(4):
            b = ((b << 1) | (b >> 7)) & 0xFF
            s ^= b
        s ^= 0x63
        sbox[x] = s
        inv[s] = x
    t = [bytes(sbox), bytes(mul(2, s) for s in sbox), bytes(mul(3, s) for s in sbox), bytes(inv)]
    for c in (9, 11, 13, 14):
        t.append(bytes(mul(c, s) for s in inv))
    return t, mul


(_S, _S2, _S3, _IS, _I9, _I11, _I13, _I14), _mul = _build_tables()


def _inv_mix(k):
    """InvMixColumns of a 16-byte round key (the equivalent inverse cipher, FIPS 197 5.3.5)."""
    m = _mul
    out = bytearray(16)
    for c in range(0, 16, 4):
        a0, a1, a2, a3 = k[c], k[c + 1], k[c + 2], k[c + 3]
        out[c] = m(14, a0) ^ m(11, a1) ^ m(13, a2) ^ m(9, a3)
        out[c + 1] = m(9, a0) ^ m(14, a1) ^ m(11, a2) ^ m(13, a3)
        out[c + 2] = m(13, a0) ^ m(9, a1) ^ m(14, a2) ^ m(11, a3)
        out[c + 3] = m(11, a0) ^ m(13, a1) ^ m(9, a2) ^ m(14, a3)
    return bytes(out)


class AES:
    """AES-128/192/256 in ECB, one 16-byte block per call: AES(key).encrypt(block) / .decrypt(block)."""

    def __init__(self, key):
        nk = len(key) // 4
        if len(key) not in (16, 24, 32):
            raise ValueError("AES key must be 16, 24 or 32 bytes")
        nr = nk + 6
        # key expansion (FIPS 197 5.2), byte-wise
        w = bytearray(key)
        rcon = 1
        sbox = _S
        for i in range(nk, 4 * (nr + 1)):
            t0, t1, t2, t3 = w[-4], w[-3], w[-2], w[-1]
            if i % nk == 0:
                t0, t1, t2, t3 = sbox[t1] ^ rcon, sbox[t2], sbox[t3], sbox[t0]
                rcon = ((rcon << 1) ^ (0x1B if rcon & 0x80 else 0)) & 0xFF
            elif nk > 6 and i % nk == 4:
                t0, t1, t2, t3 = sbox[t0], sbox[t1], sbox[t2], sbox[t3]
            j = len(w) - 4 * nk
            w.extend((w[j] ^ t0, w[j + 1] ^ t1, w[j + 2] ^ t2, w[j + 3] ^ t3))
        self._nr = nr
        self._ek = [bytes(w[16 * r:16 * r + 16]) for r in range(nr + 1)]
        self._dk = None

    def encrypt(self, block):
        """Encrypt one 16-byte block."""
        if len(block) != 16:
            raise ValueError("AES block must be 16 bytes")
        S = _S
        S2 = _S2
        S3 = _S3
        rk = self._ek
        k = rk[0]
        (s0, s1, s2, s3, s4, s5, s6, s7, s8, s9, s10, s11, s12, s13, s14, s15) = (
            block[0] ^ k[0], block[1] ^ k[1], block[2] ^ k[2], block[3] ^ k[3],
            block[4] ^ k[4], block[5] ^ k[5], block[6] ^ k[6], block[7] ^ k[7],
            block[8] ^ k[8], block[9] ^ k[9], block[10] ^ k[10], block[11] ^ k[11],
            block[12] ^ k[12], block[13] ^ k[13], block[14] ^ k[14], block[15] ^ k[15])
        for r in range(1, self._nr):
            k = rk[r]
            # SubBytes + ShiftRows + MixColumns + AddRoundKey; state is column-major (s[4c + row])
            (s0, s1, s2, s3, s4, s5, s6, s7,
             s8, s9, s10, s11, s12, s13, s14, s15) = (
                S2[s0] ^ S3[s5] ^ S[s10] ^ S[s15] ^ k[0],
                S[s0] ^ S2[s5] ^ S3[s10] ^ S[s15] ^ k[1],
                S[s0] ^ S[s5] ^ S2[s10] ^ S3[s15] ^ k[2],
                S3[s0] ^ S[s5] ^ S[s10] ^ S2[s15] ^ k[3],
                S2[s4] ^ S3[s9] ^ S[s14] ^ S[s3] ^ k[4],
                S[s4] ^ S2[s9] ^ S3[s14] ^ S[s3] ^ k[5],
                S[s4] ^ S[s9] ^ S2[s14] ^ S3[s3] ^ k[6],
                S3[s4] ^ S[s9] ^ S[s14] ^ S2[s3] ^ k[7],
                S2[s8] ^ S3[s13] ^ S[s2] ^ S[s7] ^ k[8],
                S[s8] ^ S2[s13] ^ S3[s2] ^ S[s7] ^ k[9],
                S[s8] ^ S[s13] ^ S2[s2] ^ S3[s7] ^ k[10],
                S3[s8] ^ S[s13] ^ S[s2] ^ S2[s7] ^ k[11],
                S2[s12] ^ S3[s1] ^ S[s6] ^ S[s11] ^ k[12],
                S[s12] ^ S2[s1] ^ S3[s6] ^ S[s11] ^ k[13],
                S[s12] ^ S[s1] ^ S2[s6] ^ S3[s11] ^ k[14],
                S3[s12] ^ S[s1] ^ S[s6] ^ S2[s11] ^ k[15],
            )
        k = rk[self._nr]
        return bytes((
            S[s0] ^ k[0], S[s5] ^ k[1], S[s10] ^ k[2], S[s15] ^ k[3],
            S[s4] ^ k[4], S[s9] ^ k[5], S[s14] ^ k[6], S[s3] ^ k[7],
            S[s8] ^ k[8], S[s13] ^ k[9], S[s2] ^ k[10], S[s7] ^ k[11],
            S[s12] ^ k[12], S[s1] ^ k[13], S[s6] ^ k[14], S[s11] ^ k[15],
        ))

    def decrypt(self, block):
        """Decrypt one 16-byte block (equivalent inverse cipher; decryption keys made on first use)."""
        if len(block) != 16:
            raise ValueError("AES block must be 16 bytes")
        nr = self._nr
        dk = self._dk
        if dk is None:
            ek = self._ek
            dk = self._dk = [_inv_mix(ek[nr - r]) for r in range(nr)]
        I9 = _I9
        I11 = _I11
        I13 = _I13
        I14 = _I14
        k = self._ek[nr]
        (s0, s1, s2, s3, s4, s5, s6, s7, s8, s9, s10, s11, s12, s13, s14, s15) = (
            block[0] ^ k[0], block[1] ^ k[1], block[2] ^ k[2], block[3] ^ k[3],
            block[4] ^ k[4], block[5] ^ k[5], block[6] ^ k[6], block[7] ^ k[7],
            block[8] ^ k[8], block[9] ^ k[9], block[10] ^ k[10], block[11] ^ k[11],
            block[12] ^ k[12], block[13] ^ k[13], block[14] ^ k[14], block[15] ^ k[15])
        for r in range(1, nr):
            k = dk[r]
            # InvShiftRows + InvSubBytes + InvMixColumns + AddRoundKey(InvMixColumns(key))
            (s0, s1, s2, s3, s4, s5, s6, s7,
             s8, s9, s10, s11, s12, s13, s14, s15) = (
                I14[s0] ^ I11[s13] ^ I13[s10] ^ I9[s7] ^ k[0],
                I9[s0] ^ I14[s13] ^ I11[s10] ^ I13[s7] ^ k[1],
                I13[s0] ^ I9[s13] ^ I14[s10] ^ I11[s7] ^ k[2],
                I11[s0] ^ I13[s13] ^ I9[s10] ^ I14[s7] ^ k[3],
                I14[s4] ^ I11[s1] ^ I13[s14] ^ I9[s11] ^ k[4],
                I9[s4] ^ I14[s1] ^ I11[s14] ^ I13[s11] ^ k[5],
                I13[s4] ^ I9[s1] ^ I14[s14] ^ I11[s11] ^ k[6],
                I11[s4] ^ I13[s1] ^ I9[s14] ^ I14[s11] ^ k[7],
                I14[s8] ^ I11[s5] ^ I13[s2] ^ I9[s15] ^ k[8],
                I9[s8] ^ I14[s5] ^ I11[s2] ^ I13[s15] ^ k[9],
                I13[s8] ^ I9[s5] ^ I14[s2] ^ I11[s15] ^ k[10],
                I11[s8] ^ I13[s5] ^ I9[s2] ^ I14[s15] ^ k[11],
                I14[s12] ^ I11[s9] ^ I13[s6] ^ I9[s3] ^ k[12],
                I9[s12] ^ I14[s9] ^ I11[s6] ^ I13[s3] ^ k[13],
                I13[s12] ^ I9[s9] ^ I14[s6] ^ I11[s3] ^ k[14],
                I11[s12] ^ I13[s9] ^ I9[s6] ^ I14[s3] ^ k[15],
            )
        k = self._ek[0]
        IS = _IS
        return bytes((
            IS[s0] ^ k[0], IS[s13] ^ k[1], IS[s10] ^ k[2], IS[s7] ^ k[3],
            IS[s4] ^ k[4], IS[s1] ^ k[5], IS[s14] ^ k[6], IS[s11] ^ k[7],
            IS[s8] ^ k[8], IS[s5] ^ k[9], IS[s2] ^ k[10], IS[s15] ^ k[11],
            IS[s12] ^ k[12], IS[s9] ^ k[13], IS[s6] ^ k[14], IS[s3] ^ k[15],
        ))
