"""The one place that knows which runtime we are on (CPython 3.11 or MicroPython >= 1.23).

Everything else imports what it needs from here and never looks at sys.implementation.
Hash constructors return objects with update()/digest(); aes_ecb(key) returns an object whose
encrypt(block) maps 16 bytes to 16 bytes.
"""
try:
    from micropython import const
except ImportError:
    def const(x):
        return x

try:
    from time import ticks_ms, ticks_diff, ticks_add
except ImportError:
    import time as _time

    def ticks_ms():
        return int(_time.monotonic() * 1000)

    def ticks_diff(a, b):
        return a - b

    def ticks_add(a, b):
        return a + b

try:
    from sys import print_exception
except ImportError:
    import traceback as _tb

    def print_exception(exc, file=None):
        _tb.print_exception(type(exc), exc, exc.__traceback__, file=file)

import hashlib as _hashlib

sha256 = _hashlib.sha256

try:
    md5 = _hashlib.md5
except AttributeError:
    from microwitch.crypto.md5 import md5
try:
    sha1 = _hashlib.sha1
except AttributeError:
    from microwitch.crypto.sha1 import sha1
try:
    sha384 = _hashlib.sha384
except AttributeError:
    from microwitch.crypto.sha512 import sha384

try:
    from cryptolib import aes as _cl_aes

    class aes_ecb:
        """AES-ECB on a device's cryptolib (mode 1); one block at a time."""

        def __init__(self, key):
            self._c = _cl_aes(key, 1)

        def encrypt(self, block):
            return self._c.encrypt(block)
except ImportError:
    try:
        from cryptography.hazmat.primitives.ciphers import Cipher as _Cipher, algorithms as _alg, modes as _modes

        class aes_ecb:
            """AES-ECB on CPython's `cryptography`."""

            def __init__(self, key):
                self._e = _Cipher(_alg.AES(bytes(key)), _modes.ECB()).encryptor()

            def encrypt(self, block):
                return self._e.update(bytes(block))
    except ImportError:
        from microwitch.crypto.aes import AES as aes_ecb

# Key agreement: x25519(k, u), x25519_base(k), p256_public(secret), p256_shared(secret, peer_xy).
# Native `cryptography` where it exists (CPython); the pure modules otherwise. Both raise ValueError for
# the same bad inputs (the P-256 checks are the pure module's, so the two back-ends agree exactly).
try:
    from cryptography.hazmat.primitives.asymmetric import ec as _ec, x25519 as _cx

    from microwitch.crypto.p256 import p256_point as _p256_point, p256_scalar as _p256_scalar

    def x25519(k, u):
        """X25519 (RFC 7748) on `cryptography`; ValueError for an all-zero result."""
        if len(u) != 32:
            raise ValueError("X25519 u-coordinate must be 32 bytes")
        priv = _cx.X25519PrivateKey.from_private_bytes(bytes(k))
        return priv.exchange(_cx.X25519PublicKey.from_public_bytes(bytes(u)))

    def x25519_base(k):
        return _cx.X25519PrivateKey.from_private_bytes(bytes(k)).public_key().public_bytes_raw()

    def p256_public(secret):
        n = _ec.derive_private_key(_p256_scalar(secret), _ec.SECP256R1()).public_key().public_numbers()
        return n.x.to_bytes(32, "big") + n.y.to_bytes(32, "big")

    def p256_shared(secret, peer):
        x, y = _p256_point(peer)
        priv = _ec.derive_private_key(_p256_scalar(secret), _ec.SECP256R1())
        return priv.exchange(_ec.ECDH(), _ec.EllipticCurvePublicNumbers(x, y, _ec.SECP256R1()).public_key())
except ImportError:
    # imported on first use: a node that never runs ZRTP never loads the big-int code
    def x25519(k, u):
        from microwitch.crypto.x25519 import x25519 as f
        return f(k, u)

    def x25519_base(k):
        from microwitch.crypto.x25519 import x25519_base as f
        return f(k)

    def p256_public(secret):
        from microwitch.crypto.p256 import p256_public as f
        return f(secret)

    def p256_shared(secret, peer):
        from microwitch.crypto.p256 import p256_shared as f
        return f(secret, peer)

try:
    from os import urandom as random_bytes
except ImportError:
    try:
        import js as _js

        def random_bytes(n):
            # wasm MicroPython: the host's CSPRNG through the JS bridge
            return bytes(_js.crypto.getRandomValues(_js.Uint8Array.new(n)))
    except ImportError:
        def random_bytes(n):
            # nonces, ZRTP secrets and SRTP keys depend on this: never fall back to a seeded PRNG
            raise RuntimeError("no CSPRNG on this runtime (os.urandom missing)")

import os as _os

try:
    _fsync = _os.fsync

    def fsync(f):
        """Flush a file object to stable storage (fsync where the OS has it)."""
        f.flush()
        _fsync(f.fileno())
except AttributeError:
    def fsync(f):
        f.flush()
        try:
            _os.sync()
        except AttributeError:
            pass

import time as _t

try:
    wall_s = _t.time
except AttributeError:
    def wall_s():
        return 0
