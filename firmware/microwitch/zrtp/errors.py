"""ZRTP error codes (RFC 6189 5.9) and the exception that carries one."""
from microwitch.compat import const

MALFORMED = const(0x10)
SOFTWARE = const(0x20)
UNSUPPORTED_VERSION = const(0x30)
HELLO_MISMATCH = const(0x40)
BAD_HASH = const(0x51)
BAD_CIPHER = const(0x52)
BAD_KA = const(0x53)
BAD_AUTH = const(0x54)
BAD_SAS = const(0x55)
NO_SHARED_SECRET = const(0x56)
BAD_PV = const(0x61)
BAD_HVI = const(0x62)
UNTRUSTED_MITM = const(0x63)
BAD_CONFIRM_MAC = const(0x70)
NONCE_REUSE = const(0x80)
EQUAL_ZID = const(0x90)
SSRC_COLLISION = const(0x91)
UNAVAILABLE = const(0xA0)
TIMEOUT = const(0xB0)
GOCLEAR_NOT_ALLOWED = const(0x100)


class ZrtpError(Exception):
    """A protocol failure. code is the RFC 6189 5.9 error code to send (0: drop silently)."""

    def __init__(self, code, reason):
        super().__init__(reason)
        self.code = code
        self.reason = reason
