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

try:
    from os import urandom as random_bytes
except ImportError:
    try:
        import js as _js

        def random_bytes(n):
            # wasm MicroPython: the host's CSPRNG through the JS bridge
            return bytes(_js.crypto.getRandomValues(_js.Uint8Array.new(n)))
    except ImportError:
        from random import getrandbits as _grb

        def random_bytes(n):
            # last resort (no OS CSPRNG exposed): callers that need secrecy get it from the board
            return bytes(_grb(8) for _ in range(n))
