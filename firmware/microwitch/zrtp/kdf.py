"""Negotiated hash, KDF and key derivations of ZRTP (RFC 6189 4.4.1.4, 4.5)."""
import struct
from microwitch.compat import sha256, sha384
from microwitch.compat import hmac

# name -> (constructor, digest length, HMAC block size)
HASHES = {b"S256": (sha256, 32, 64), b"S384": (sha384, 48, 128)}
# cipher name -> key length in bytes (AES-CFB for Confirm, AES-CM for SRTP)
CIPHERS = {b"AES1": 16, b"AES3": 32}


class Hash:
    """The negotiated hash: h(data), mac(key, data) and the 4.5.1 KDF."""

    def __init__(self, name):
        self.name = name
        self.ctor, self.size, self.block = HASHES[name]

    def h(self, *parts):
        d = self.ctor()
        for p in parts:
            d.update(p)
        return d.digest()

    def mac(self, key, data):
        return hmac(self.ctor, key, data, self.block)

    def kdf(self, ki, label, context, nbytes):
        """KDF(KI, Label, Context, L) = HMAC(KI, i || Label || 0x00 || Context || L), i = 1, L in bits,
        truncated to L (RFC 6189 4.5.1; the output never exceeds one hash block here)."""
        return self.mac(ki, b"\x00\x00\x00\x01" + label + b"\x00" + context + struct.pack(">I", nbytes * 8))[:nbytes]


def _lp(s):
    return struct.pack(">I", len(s)) + s


def s0_dh(hsh, dh_result, zidi, zidr, total_hash, s1, s2, s3):
    """s0 for DH mode (4.4.1.4); absent secrets are empty (length 0)."""
    return hsh.h(b"\x00\x00\x00\x01", dh_result, b"ZRTP-HMAC-KDF", zidi, zidr, total_hash,
                 _lp(s1 or b""), _lp(s2 or b""), _lp(s3 or b""))


def preshared_key(hsh, s1, s2, s3):
    """preshared_key = hash(len(s1) || s1 || len(s2) || s2 || len(s3) || s3) (4.4.2)."""
    return hsh.h(_lp(s1 or b""), _lp(s2 or b""), _lp(s3 or b""))


def derive(hsh, s0, context, key_len):
    """Everything ZRTP takes from s0 (4.5.2, 4.5.3): a dict of bytes."""
    k = hsh.kdf
    return {
        "srtpkeyi": k(s0, b"Initiator SRTP master key", context, key_len),
        "srtpsalti": k(s0, b"Initiator SRTP master salt", context, 14),
        "srtpkeyr": k(s0, b"Responder SRTP master key", context, key_len),
        "srtpsaltr": k(s0, b"Responder SRTP master salt", context, 14),
        "mackeyi": k(s0, b"Initiator HMAC key", context, hsh.size),
        "mackeyr": k(s0, b"Responder HMAC key", context, hsh.size),
        "zrtpkeyi": k(s0, b"Initiator ZRTP key", context, key_len),
        "zrtpkeyr": k(s0, b"Responder ZRTP key", context, key_len),
        "sashash": k(s0, b"SAS", context, 32),
        "zrtpsess": k(s0, b"ZRTP Session Key", context, hsh.size),
        "rs1": k(s0, b"retained secret", context, 32),
    }
