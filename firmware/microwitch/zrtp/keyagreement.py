"""Key agreement types of ZRTP (RFC 6189 5.1.5): DH3k, DH2k, EC25 and Curve25519.

Curve25519 is named X255 by bzrtp and E255 by GNU ZRTP/ZRTP4J; both send the 32-byte little-endian
u-coordinate of RFC 7748 and use the 32-byte X25519 output as DHResult, so one class serves both names.
"""
from microwitch.compat import const, x25519, x25519_base, p256_public, p256_shared
from microwitch.compat import modp_public, modp_shared
from microwitch.zrtp.errors import ZrtpError, BAD_PV

_MAX_TRIES = const(8)   # redraws of an out-of-range P-256 secret (probability ~2^-32 each)


class _Modp:
    def __init__(self, bits, rand, key_len):
        self.bits = bits
        # 5.1.5: the secret exponent is twice the AES key length (256 bits for AES1, 512 for AES3)
        self._secret = rand(2 * key_len)
        self.public = modp_public(bits, self._secret)

    def shared(self, pv):
        try:
            return modp_shared(self.bits, self._secret, pv)
        except ValueError:
            raise ZrtpError(BAD_PV, "bad DH public value")


class _X25519:
    def __init__(self, rand):
        self._secret = rand(32)
        self.public = x25519_base(self._secret)

    def shared(self, pv):
        if len(pv) != 32:
            raise ZrtpError(BAD_PV, "bad X25519 public value")
        try:
            return x25519(self._secret, pv)
        except ValueError:
            raise ZrtpError(BAD_PV, "low-order X25519 public value")


class _P256:
    def __init__(self, rand):
        for _ in range(_MAX_TRIES):
            self._secret = rand(32)
            try:
                self.public = p256_public(self._secret)
                return
            except ValueError:
                pass
        raise ZrtpError(0, "RNG gave no usable P-256 secret")

    def shared(self, pv):
        try:
            return p256_shared(self._secret, pv)
        except ValueError:
            raise ZrtpError(BAD_PV, "bad P-256 public value")


def make(name, rand, key_len):
    """A fresh key pair for key agreement `name` with .public (the pv to send) and .shared(peer_pv)."""
    if name == b"X255" or name == b"E255":
        return _X25519(rand)
    if name == b"DH3k":
        return _Modp(3072, rand, key_len)
    if name == b"DH2k":
        return _Modp(2048, rand, key_len)
    if name == b"EC25":
        return _P256(rand)
    raise ZrtpError(0, "unsupported key agreement")
