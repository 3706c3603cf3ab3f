"""Buffering and final padding shared by the pure Merkle-Damgard hashes (MD5, SHA-1, SHA-384/512).

A subclass supplies the initial state `_H0`, `block_size`, `digest_size`, `_compress(h, buf, off) -> h`
(one block at `off`), `_LEN` (struct format of the bit length in the padding) and `_OUT` (the struct
format that serialises the state into the digest).
"""
import struct


class MDHash:
    """hashlib-like object: update(data) any number of times, digest() does not end the hash."""

    def __init__(self, data=b""):
        self._h = self._H0
        self._buf = b""
        self._n = 0
        if data:
            self.update(data)

    def update(self, data):
        bs = self.block_size
        n = len(data)
        self._n += n
        buf = self._buf
        if len(buf) + n < bs:
            self._buf = buf + bytes(data)
            return
        h = self._h
        compress = self._compress
        mv = memoryview(data)
        i = 0
        if buf:
            i = bs - len(buf)
            h = compress(h, buf + bytes(mv[:i]), 0)
        end = n - bs
        while i <= end:
            h = compress(h, mv, i)
            i += bs
        self._h = h
        self._buf = bytes(mv[i:])

    def digest(self):
        bs = self.block_size
        nlen = struct.calcsize(self._LEN)
        buf = self._buf
        # pad: 0x80, zeros, then the message length in bits (RFC 1321 3.1-3.2, FIPS 180-4 5.1)
        pad = -(len(buf) + 1 + nlen) % bs
        bits = self._n << 3
        if nlen == 16:
            tail = struct.pack(self._LEN, bits >> 64, bits & 0xFFFFFFFFFFFFFFFF)
        else:
            tail = struct.pack(self._LEN, bits & 0xFFFFFFFFFFFFFFFF)
        last = buf + b"\x80" + bytes(pad) + tail
        h = self._h
        compress = self._compress
        for off in range(0, len(last), bs):
            h = compress(h, last, off)
        return struct.pack(self._OUT, *h)[:self.digest_size]

    def hexdigest(self):
        from binascii import hexlify
        return hexlify(self.digest()).decode()
