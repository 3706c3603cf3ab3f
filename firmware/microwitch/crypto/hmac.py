"""HMAC (RFC 2104) over any hashlib-style constructor.

Hash objects on MicroPython have no copy(), so the key pads are hashed again for every message; callers
that MAC many packets with one key pay two extra compressions each time.
"""


def hmac(hash_ctor, key, msg, block_size=64):
    """HMAC(key, msg) with hash_ctor (sha256, sha1, ...). block_size is the hash's input block: 64 for
    MD5/SHA-1/SHA-256, 128 for SHA-384/SHA-512 (RFC 4231 3)."""
    if len(key) > block_size:
        key = hash_ctor(key).digest()
    # XOR the zero-padded key with the pads as one big integer: no per-byte Python loop
    k = int.from_bytes(bytes(key) + bytes(block_size - len(key)), "big")
    ones = int.from_bytes(b"\x01" * block_size, "big")
    inner = hash_ctor((k ^ (ones * 0x36)).to_bytes(block_size, "big"))
    inner.update(msg)
    outer = hash_ctor((k ^ (ones * 0x5C)).to_bytes(block_size, "big"))
    outer.update(inner.digest())
    return outer.digest()
