"""PBKDF2-HMAC-SHA256 (RFC 8018 §5.2) for the admin password, written for MicroPython speed.

One 32-byte output block only (dkLen = hLen), so the loop is T1 = U1 ^ U2 ^ ... ^ Uc. The HMAC key pads are
built once; each iteration is two hash calls and one big-integer XOR, no per-byte Python work.
"""
from microwitch.compat import sha256, const

_BLOCK = const(64)


def pbkdf2_sha256(password, salt, iterations):
    """32-byte PBKDF2-HMAC-SHA256(password, salt, iterations); password and salt are bytes."""
    if iterations < 1:
        raise ValueError("iterations must be >= 1")
    key = bytes(password)
    if len(key) > _BLOCK:
        key = sha256(key).digest()
    k = int.from_bytes(key + bytes(_BLOCK - len(key)), "big")
    ones = int.from_bytes(b"\x01" * _BLOCK, "big")
    ipad = (k ^ (ones * 0x36)).to_bytes(_BLOCK, "big")
    opad = (k ^ (ones * 0x5C)).to_bytes(_BLOCK, "big")
    h = sha256(ipad)
    h.update(bytes(salt) + b"\x00\x00\x00\x01")
    o = sha256(opad)
    o.update(h.digest())
    u = o.digest()
    acc = int.from_bytes(u, "big")
    for _ in range(iterations - 1):
        h = sha256(ipad)
        h.update(u)
        o = sha256(opad)
        o.update(h.digest())
        u = o.digest()
        acc ^= int.from_bytes(u, "big")
    return acc.to_bytes(32, "big")
