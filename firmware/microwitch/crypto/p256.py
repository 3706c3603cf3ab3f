"""ECDH on NIST P-256 (SEC 1 / FIPS 186-4 D.1.2.3) for ZRTP EC25 (RFC 6189 5.1.5), in pure Python.

Public values are x || y, 32 bytes each, big-endian (RFC 6189 5.1.5); the shared secret is the x
coordinate of the product point. Points are kept in Jacobian coordinates (X, Y, Z) ~ (X/Z^2, Y/Z^3),
Z == 0 being the point at infinity, so only the final conversion needs an inversion.
"""

_P = 0xffffffff00000001000000000000000000000000ffffffffffffffffffffffff
_N = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551
_B = 0x5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604b
_GX = 0x6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296
_GY = 0x4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5


def _double(pt):
    """2P with a = -3 (the dbl-2001-b formulas)."""
    x, y, z = pt
    if z == 0 or y == 0:
        return (1, 1, 0)
    p = _P
    delta = z * z % p
    gamma = y * y % p
    beta = x * gamma % p
    alpha = 3 * (x - delta) * (x + delta) % p
    x3 = (alpha * alpha - 8 * beta) % p
    z3 = ((y + z) * (y + z) - gamma - delta) % p
    y3 = (alpha * (4 * beta - x3) - 8 * gamma * gamma) % p
    return (x3, y3, z3)


def _add(p1, p2):
    """P1 + P2 in Jacobian coordinates (add-2007-bl), falling back to doubling when P1 == P2."""
    x1, y1, z1 = p1
    x2, y2, z2 = p2
    if z1 == 0:
        return p2
    if z2 == 0:
        return p1
    p = _P
    z1z1 = z1 * z1 % p
    z2z2 = z2 * z2 % p
    u1 = x1 * z2z2 % p
    u2 = x2 * z1z1 % p
    s1 = y1 * z2 * z2z2 % p
    s2 = y2 * z1 * z1z1 % p
    h = (u2 - u1) % p
    r = (s2 - s1) % p
    if h == 0:
        if r == 0:
            return _double(p1)
        return (1, 1, 0)
    hh = h * h % p
    hhh = h * hh % p
    v = u1 * hh % p
    x3 = (r * r - hhh - 2 * v) % p
    y3 = (r * (v - x3) - s1 * hhh) % p
    z3 = z1 * z2 * h % p
    return (x3, y3, z3)


def _mul(k, x, y):
    """k * (x, y) with a fixed 4-bit window: 15 precomputed multiples, then 4 doublings + 1 addition per
    nibble. Returns affine (x, y); raises ValueError for the point at infinity."""
    table = [(1, 1, 0), (x, y, 1)]
    for i in range(2, 16):
        table.append(_add(table[-1], table[1]))
    acc = (1, 1, 0)
    for shift in range(252, -4, -4):
        acc = _double(_double(_double(_double(acc))))
        d = (k >> shift) & 15
        if d:
            acc = _add(acc, table[d])
    ax, ay, az = acc
    if az == 0:
        raise ValueError("P-256 result is the point at infinity")
    p = _P
    zi = pow(az, p - 2, p)
    zi2 = zi * zi % p
    return ax * zi2 % p, ay * zi2 * zi % p


def p256_scalar(secret):
    """The 32-byte big-endian secret as an integer, or ValueError unless it is in [1, n-1]."""
    if len(secret) != 32:
        raise ValueError("P-256 secret must be 32 bytes")
    k = int.from_bytes(secret, "big")
    if not 0 < k < _N:
        raise ValueError("P-256 secret out of range [1, n-1]")
    return k


def p256_public(secret):
    """Public value x || y (64 bytes) for a 32-byte big-endian secret in [1, n-1]."""
    x, y = _mul(p256_scalar(secret), _GX, _GY)
    return x.to_bytes(32, "big") + y.to_bytes(32, "big")


def p256_shared(secret, peer):
    """x coordinate (32 bytes) of secret * peer; ValueError for a bad secret or peer (see p256_point)."""
    x, y = p256_point(peer)
    sx, _ = _mul(p256_scalar(secret), x, y)
    return sx.to_bytes(32, "big")


def p256_point(peer):
    """Validate a peer public value x || y and return (x, y): 64 bytes, both coordinates below p, on
    the curve (P-256 has cofactor 1, so that is full validation, SEC 1 3.2.2.1); else ValueError."""
    if len(peer) != 64:
        raise ValueError("P-256 peer value must be 64 bytes (x || y)")
    x = int.from_bytes(peer[:32], "big")
    y = int.from_bytes(peer[32:], "big")
    p = _P
    if x >= p or y >= p:
        raise ValueError("P-256 peer coordinate not below p")
    if (y * y - (x * x * x - 3 * x + _B)) % p:
        raise ValueError("P-256 peer point not on the curve")
    return x, y
