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
# Back-ends only the agent needs (SHA-1 for SRTP, SHA-384, AES, CRC-32C, MODP) are imported inside functions,
# on first use: a node never loads them, and node images (tools/build_images.py) leave them out.
try:
    sha1 = _hashlib.sha1
except AttributeError:
    def sha1(data=b""):
        from microwitch.crypto.sha1 import sha1 as f
        return f(data)
try:
    sha384 = _hashlib.sha384
except AttributeError:
    def sha384(data=b""):
        from microwitch.crypto.sha512 import sha384 as f
        return f(data)

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
        def aes_ecb(key):
            from microwitch.crypto.aes import AES
            return AES(key)

# Key agreement: x25519(k, u), x25519_base(k), p256_public(secret), p256_shared(secret, peer_xy).
# Native `cryptography` where it exists (CPython); the pure modules otherwise. Both raise ValueError for
# the same bad inputs (the P-256 checks are the pure module's, so the two back-ends agree exactly).
try:
    from cryptography.hazmat.primitives.asymmetric import ec as _ec, x25519 as _cx

    def x25519(k, u):
        """X25519 (RFC 7748) on `cryptography`; ValueError for an all-zero result."""
        if len(u) != 32:
            raise ValueError("X25519 u-coordinate must be 32 bytes")
        priv = _cx.X25519PrivateKey.from_private_bytes(bytes(k))
        return priv.exchange(_cx.X25519PublicKey.from_public_bytes(bytes(u)))

    def x25519_base(k):
        return _cx.X25519PrivateKey.from_private_bytes(bytes(k)).public_key().public_bytes_raw()

    def p256_public(secret):
        from microwitch.crypto.p256 import p256_scalar as _p256_scalar
        n = _ec.derive_private_key(_p256_scalar(secret), _ec.SECP256R1()).public_key().public_numbers()
        return n.x.to_bytes(32, "big") + n.y.to_bytes(32, "big")

    def p256_shared(secret, peer):
        from microwitch.crypto.p256 import p256_point as _p256_point, p256_scalar as _p256_scalar
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

# ZRTP's per-packet helpers and DH: C implementations on CPython (the handshake benchmark is against C),
# the pure modules everywhere else. Each pure module stays importable for the cross-checks.
import sys as _sys



def crc32c(data, crc=0):
    from microwitch.crypto.crc32c import crc32c as f
    return f(data, crc)


def modp_public(bits, secret):
    from microwitch.crypto.modp import modp_public as f
    return f(bits, secret)


def modp_shared(bits, secret, peer):
    from microwitch.crypto.modp import modp_shared as f
    return f(bits, secret, peer)


if _sys.implementation.name == "cpython":
    import hmac as _std_hmac

    def hmac(hash_ctor, key, msg, block_size=64):
        """HMAC (RFC 2104) through OpenSSL; hash_ctor is one of the constructors above."""
        return _std_hmac.digest(bytes(key), bytes(msg), hash_ctor)

    try:
        from google_crc32c import extend as _crc_extend

        def crc32c(data, crc=0):
            return _crc_extend(crc, bytes(data))
    except ImportError:
        pass

    try:
        from cryptography.hazmat.primitives.asymmetric import dh as _dh

        _MODP_PARAMS = {}

        def _modp_key(bits, secret):
            from microwitch.crypto.modp import _prime, _exponent
            p = _prime(bits)
            pn = _MODP_PARAMS.get(bits)
            if pn is None:
                pn = _MODP_PARAMS[bits] = _dh.DHParameterNumbers(p, 2)
            # OpenSSL never checks the public half of a private key we only use for exchange
            return pn, _dh.DHPrivateNumbers(_exponent(secret, p), _dh.DHPublicNumbers(2, pn)).private_key()

        def modp_public(bits, secret):
            pn, key = _modp_key(bits, secret)
            return key.exchange(_dh.DHPublicNumbers(2, pn).public_key())

        def modp_shared(bits, secret, peer):
            from microwitch.crypto.modp import _prime
            p = _prime(bits)
            if len(peer) != bits // 8:
                raise ValueError("MODP peer value must be %d bytes" % (bits // 8))
            y = int.from_bytes(peer, "big")
            if not 1 < y < p - 1:
                raise ValueError("MODP peer value is 0, 1, p-1 or not below p")
            pn, key = _modp_key(bits, secret)
            return key.exchange(_dh.DHPublicNumbers(y, pn).public_key())
    except ImportError:
        pass
else:
    from microwitch.crypto.hmac import hmac  # the node's nonces and flow tokens need it

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

# -- socket addresses and errors: the shapes differ by port ------------------------------------------------
# CPython and the ESP32 port give (host, port) tuples; MicroPython's unix port (OpenWrt) gives and takes raw
# `struct sockaddr` bytes. The poll loop always gets outgoing addresses from getaddrinfo (whatever shape the
# port wants) and decodes incoming ones with sockaddr().
import errno as _errno

_AF_INET = const(2)
_EINPROGRESS_LWIP = const(119)  # the ESP32 port's connect() raises lwIP's own EINPROGRESS number
CONNECT_PENDING = (_errno.EINPROGRESS, _errno.EAGAIN, _EINPROGRESS_LWIP)


def _ipv6_text(b):
    """RFC 5952 text of 16 address bytes (what inet_ntop prints)."""
    g = [(b[i] << 8) | b[i + 1] for i in range(0, 16, 2)]
    if g[:5] == [0, 0, 0, 0, 0] and g[5] == 0xFFFF:
        return "::ffff:%d.%d.%d.%d" % (b[12], b[13], b[14], b[15])
    best, blen, i = -1, 1, 0
    while i < 8:  # the longest run of two or more zero groups, the first on a tie
        if g[i] == 0:
            j = i
            while j < 8 and g[j] == 0:
                j += 1
            if j - i > blen:
                best, blen = i, j - i
            i = j
        else:
            i += 1
    hx = ["%x" % x for x in g]
    if best < 0:
        return ":".join(hx)
    return ":".join(hx[:best]) + "::" + ":".join(hx[best + blen:])


def sockaddr(addr):
    """(host, port) of an address from recvfrom/accept/getsockname: a tuple (CPython, ESP32; IPv6 4-tuples
    too) or raw struct sockaddr bytes (unix port: sa_family in host byte order, port big-endian)."""
    if isinstance(addr, tuple):
        return (addr[0], addr[1])
    b = addr
    if len(b) < 8:
        raise ValueError("short socket address")
    fam = b[0] or b[1]
    port = (b[2] << 8) | b[3]
    if fam == _AF_INET:
        return ("%d.%d.%d.%d" % (b[4], b[5], b[6], b[7]), port)
    if len(b) >= 24:
        return (_ipv6_text(b[8:24]), port)
    raise ValueError("unknown socket address family %d" % fam)


def sock_name(sock, host, port):
    """The (host, port) a socket is bound to: getsockname() where the port has it; MicroPython's unix and
    ESP32 sockets have none, so there it is what was asked for (a port 0 then stays 0)."""
    f = getattr(sock, "getsockname", None)
    return (host, port) if f is None else sockaddr(f())

# -- SRTP per-packet crypto (media/srtp, RFC 3711 4.1.1 and 4.2.1) ------------------------------------------
# aes_ctr(key).xor_into(iv, buf, start, end): buf[start:end] XOR= the AES-CTR keystream that starts at the
#   counter block iv (16 bytes whose last two are zero, as every SRTP/SRTCP IV is), in place;
#   aes_ctr(key).xor(iv, data) is the same for an integer iv and returns new bytes (key derivation).
# hmac_sha1(key).digest(data, extra=b""): HMAC-SHA1(key, data || extra), the key's pads prepared once.
# tags_equal(a, b): compare two MACs in time independent of where they differ.
# Native AES (OpenSSL, a device's cryptolib) gets all counter blocks of a packet in one ECB call; the pure
# fallbacks in media/srtp_pure are imported on first use so a node never loads them.
_CTR_MAX_BLOCKS = const(0x10000)  # the low 16 counter bits never carry
_CTR_BLOCKS = const(100)  # counter blocks ready without a new buffer or pattern: packets up to 1600 bytes


class CtrBase:
    """xor_into() and xor() on top of a subclass's _run(iv, buf, start, end, nb), which XORs buf[start:end]
    with the nb keystream blocks that start at iv."""

    def xor_into(self, iv, buf, start, end):
        n = end - start
        if n <= 0:
            return
        nb = (n + 15) >> 4
        if iv[14] or iv[15] or nb > _CTR_MAX_BLOCKS:
            raise ValueError("AES-CTR: counter low 16 bits must be zero and at most 65536 blocks")
        self._run(iv, buf, start, end, nb)

    def xor(self, iv, data):
        n = len(data)
        if n == 0:
            return b""
        b = bytearray(data)
        self.xor_into(iv.to_bytes(16, "big"), b, 0, n)
        return bytes(b)


class AesCtrBuffers(CtrBase):
    """AES-CTR on a device's native ECB, encrypt_into(src, dst) (cryptolib's aes(key, 1).encrypt): counter
    blocks and keystream live in buffers kept by the context and everything is done a byte at a time, so a
    packet allocates nothing on MicroPython. The counter blocks' last two bytes (the block number) are
    written once."""

    def __init__(self, encrypt_into):
        self._enc = encrypt_into
        self._grow(_CTR_BLOCKS)

    def _grow(self, nb):
        cb = self._cb = bytearray(nb << 4)
        for j in range(nb):
            cb[(j << 4) + 14] = j >> 8
            cb[(j << 4) + 15] = j & 0xFF
        self._cbv = memoryview(cb)
        self._ks = bytearray((nb << 4) + 15)  # OpenSSL's update_into (the tests' stand-in) wants a block of slack

    def _run(self, iv, buf, start, end, nb):
        if nb << 4 > len(self._cb):
            self._grow(nb)
        cb = self._cb
        for o in range(0, nb << 4, 16):
            for k in range(14):
                cb[o + k] = iv[k]
        self._enc(self._cbv[:nb << 4], self._ks)
        ks = self._ks
        for i in range(end - start):
            buf[start + i] ^= ks[i]


class AesCtrInt(CtrBase):
    """AES-CTR on CPython's OpenSSL ECB, encrypt(bytes) -> bytes: the counter blocks are one integer product,
    iv * (1 + 2^128 + ...) plus the block numbers, and the XOR one integer operation (CPython allocates
    freely and loops slowly)."""

    _patterns = {}

    def __init__(self, encrypt):
        self._enc = encrypt

    def _run(self, iv, buf, start, end, nb):
        p = self._patterns.get(nb)
        if p is None:
            p = (int.from_bytes((bytes(15) + b"\x01") * nb, "big"),
                 int.from_bytes(b"".join(j.to_bytes(16, "big") for j in range(nb)), "big"))
            if nb <= _CTR_BLOCKS:
                self._patterns[nb] = p
        m = nb << 4
        n = end - start
        ks = self._enc((int.from_bytes(iv, "big") * p[0] + p[1]).to_bytes(m, "big"))
        buf[start:end] = (int.from_bytes(buf[start:end], "big") ^ (int.from_bytes(ks, "big") >> ((m - n) << 3))
                          ).to_bytes(n, "big")


try:
    from cryptolib import aes as _cl_aes_ctr

    def aes_ctr(key):
        return AesCtrBuffers(_cl_aes_ctr(bytes(key), 1).encrypt)  # ECB: encrypt(src, dst)
except ImportError:
    try:
        from cryptography.hazmat.primitives.ciphers import Cipher as _Cipher2, algorithms as _alg2, modes as _modes2

        def aes_ctr(key):
            return AesCtrInt(_Cipher2(_alg2.AES(bytes(key)), _modes2.ECB()).encryptor().update)
    except ImportError:
        def aes_ctr(key):
            from microwitch.media.srtp_pure import AesCtr
            return AesCtr(key)


class HmacSha1Rehash:
    """HMAC-SHA1 on a C SHA-1 without copy() (devices): the two pad blocks are hashed per message."""

    def __init__(self, key):
        if len(key) > 64:
            key = sha1(key).digest()
        k = bytes(key) + bytes(64 - len(key))
        self._ipad = bytes(b ^ 0x36 for b in k)
        self._opad = bytes(b ^ 0x5C for b in k)

    def digest(self, data, extra=b""):
        h = sha1(self._ipad)
        h.update(data)
        if extra:
            h.update(extra)
        o = sha1(self._opad)
        o.update(h.digest())
        return o.digest()


if _sys.implementation.name == "cpython":
    from hmac import compare_digest as tags_equal

    try:
        from _hashlib import hmac_new as _hmac_new

        def _hmac_sha1_ctx(key):
            return _hmac_new(bytes(key), digestmod="sha1")
    except ImportError:
        import hmac as _std_hmac2

        def _hmac_sha1_ctx(key):
            return _std_hmac2.new(bytes(key), digestmod=sha1)

    class hmac_sha1:
        """HMAC-SHA1 on OpenSSL: a keyed context copied per message."""

        def __init__(self, key):
            self._h = _hmac_sha1_ctx(key)

        def digest(self, data, extra=b""):
            h = self._h.copy()
            h.update(data)
            if extra:
                h.update(extra)
            return h.digest()
else:
    def tags_equal(a, b):
        """a == b for two MACs without stopping at the first differing byte (bytes-like; small integers only,
        so nothing is allocated)."""
        n = len(a)
        if n != len(b):
            return False
        x = 0
        for i in range(n):
            x |= a[i] ^ b[i]
        return x == 0

    if hasattr(_hashlib, "sha1"):
        hmac_sha1 = HmacSha1Rehash
    else:
        def hmac_sha1(key):
            from microwitch.media.srtp_pure import HmacSha1
            return HmacSha1(key)


def gc_settle():
    """Call once the node has loaded its state. CPython: move what is loaded out of the collector's sight and
    collect young objects less often, so full collections (a pause of up to a second with 10,000 calls of
    state, long enough to trigger SIP retransmission storms) become rare. MicroPython: collect once now."""
    import gc
    if _sys.implementation.name == "cpython":
        gc.collect()
        gc.freeze()
        gc.set_threshold(100000, 50, 1000)
    else:
        gc.collect()
