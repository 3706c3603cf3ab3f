"""Block-cipher modes built on any object with encrypt(16 bytes) -> 16 bytes (compat.aes_ecb).

CFB-128 for the ZRTP Confirm messages (RFC 6189 5.7) and the counter mode of SRTP AES-CM (RFC 3711
4.1.1: 128-bit counter block incremented big-endian). Blocks are XORed as 128-bit integers so no
Python loop runs per byte.
"""


def _xor(a, b):
    """a XOR b for equal-length byte strings."""
    n = len(a)
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(n, "big")


def _cfb(ecb, iv, data, decrypt):
    if len(iv) != 16:
        raise ValueError("CFB IV must be 16 bytes")
    out = bytearray(len(data))
    mv = memoryview(data)
    reg = bytes(iv)
    for i in range(0, len(data), 16):
        block = bytes(mv[i:i + 16])
        x = _xor(block, ecb.encrypt(reg)[:len(block)])
        out[i:i + len(x)] = x
        reg = block if decrypt else x  # the feedback is always the ciphertext
    return bytes(out)


def cfb_encrypt(ecb, iv, data):
    """CFB-128 encryption; the last block may be short (the keystream is truncated)."""
    return _cfb(ecb, iv, data, False)


def cfb_decrypt(ecb, iv, data):
    """CFB-128 decryption (uses the cipher's encrypt direction, like encryption)."""
    return _cfb(ecb, iv, data, True)


def ctr_xor(ecb, iv, data, out=None):
    """XOR data with the counter-mode keystream E(iv), E(iv + 1), ... (mod 2**128).

    Encrypts and decrypts alike. With `out` (a bytearray or writable memoryview at least len(data)
    long) the result is written there and `out` is returned; otherwise new bytes are returned.
    `out` may be the same buffer as `data` (in-place SRTP payload encryption).
    """
    if len(iv) != 16:
        raise ValueError("CTR counter block must be 16 bytes")
    n = len(data)
    ret = out is None
    if ret:
        out = bytearray(n)
    elif len(out) < n:
        raise ValueError("CTR output buffer too short")
    mv = memoryview(data)
    ctr = int.from_bytes(iv, "big")
    for i in range(0, n, 16):
        ks = ecb.encrypt(ctr.to_bytes(16, "big"))
        chunk = bytes(mv[i:i + 16])
        m = len(chunk)
        out[i:i + m] = _xor(chunk, ks[:m])
        ctr = (ctr + 1) & 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF
    return bytes(out) if ret else out
