"""X25519 Diffie-Hellman (RFC 7748 5), ZRTP key agreement X255/E255, in pure Python.

Montgomery ladder on Python integers. Python big-int arithmetic is not constant-time; acceptable for the
pure fallback, compat prefers a native implementation where one exists.
"""

_P = 2 ** 255 - 19
_A24 = 121665
_BASE = b"\x09" + bytes(31)


def _scalar(k):
    """decodeScalar25519: clear the 3 low bits and the top bit, set bit 254 (RFC 7748 5)."""
    if len(k) != 32:
        raise ValueError("X25519 scalar must be 32 bytes")
    n = int.from_bytes(k, "little")
    return (n & ~7 & ((1 << 255) - 1)) | (1 << 254)


def x25519(k, u):
    """X25519(k, u): 32-byte scalar and u-coordinate in, 32-byte shared u-coordinate out.

    Raises ValueError if the result is all zero (a low-order peer point, RFC 7748 6.1)."""
    if len(u) != 32:
        raise ValueError("X25519 u-coordinate must be 32 bytes")
    p = _P
    a24 = _A24
    n = _scalar(k)
    # decodeUCoordinate: mask the top bit; non-canonical values >= p are reduced
    x1 = (int.from_bytes(u, "little") & ((1 << 255) - 1)) % p
    x2, z2, x3, z3 = 1, 0, x1, 1
    swap = 0
    for t in range(254, -1, -1):
        # one ladder step (RFC 7748 5); cswap is a branch here, the arithmetic is the RFC's
        bit = (n >> t) & 1
        if swap ^ bit:
            x2, z2, x3, z3 = x3, z3, x2, z2
        swap = bit
        a = x2 + z2
        b = x2 - z2
        aa = a * a % p
        bb = b * b % p
        e = aa - bb
        da = (x3 - z3) * a % p
        cb = (x3 + z3) * b % p
        x3 = da + cb
        x3 = x3 * x3 % p
        z3 = da - cb
        z3 = x1 * (z3 * z3 % p) % p
        x2 = aa * bb % p
        z2 = e * (aa + a24 * e) % p
    if swap:
        x2, z2 = x3, z3
    out = x2 * pow(z2, p - 2, p) % p
    if out == 0:
        raise ValueError("X25519 result is all zero (low-order point)")
    return out.to_bytes(32, "little")


def x25519_base(k):
    """The public value for scalar k: X25519(k, 9)."""
    return x25519(k, _BASE)
