"""ZRTP message encoding and decoding (RFC 6189 5.1-5.16).

Messages are bytes that start with the 0x505a preamble. decode() validates the length of each type
before reading a field and returns a dict: "type" (the 8-byte block), "raw" (the whole message) and
the type's fields. MACs over the hash chain (5.1.2.2) are always HMAC-SHA-256 truncated to 64 bits.
"""
import struct
from microwitch.compat import const, sha256
from microwitch.compat import hmac
from microwitch.zrtp.errors import ZrtpError, MALFORMED

HELLO = b"Hello   "
HELLOACK = b"HelloACK"
COMMIT = b"Commit  "
DHPART1 = b"DHPart1 "
DHPART2 = b"DHPart2 "
CONFIRM1 = b"Confirm1"
CONFIRM2 = b"Confirm2"
CONF2ACK = b"Conf2ACK"
ERROR = b"Error   "
ERRORACK = b"ErrorACK"
GOCLEAR = b"GoClear "
CLEARACK = b"ClearACK"
SASRELAY = b"SASrelay"
RELAYACK = b"RelayACK"
PING = b"Ping    "
PINGACK = b"PingACK "

_MAX_ALGOS = const(7)       # per family in a Hello (RFC 6189 5.2: 3-bit counts in practice, <= 7)
_HELLO_FIXED = const(88)    # Hello bytes without the algorithm lists
_DH_FIXED = const(84)       # DHPart bytes without pv (MAC included)
# public value lengths per key agreement type (RFC 6189 5.1.5; X255/E255 as bzrtp and GNU ZRTP send them)
PV_LEN = {b"DH3k": 384, b"DH2k": 256, b"EC25": 64, b"X255": 32, b"E255": 32}
NON_DH = (b"Mult", b"Prsh")


def chain_mac(key, data):
    """The 64-bit MAC keyed by a hash-chain element (RFC 6189 5.1.2.2: always HMAC-SHA-256)."""
    return hmac(sha256, key, data)[:8]


def _wrap(mtype, body):
    n = 12 + len(body)
    return struct.pack(">HH", 0x505A, n >> 2) + mtype + body


def _with_mac(mtype, body, key):
    msg = _wrap(mtype, body + b"\x00" * 8)
    return msg[:-8] + chain_mac(key, msg[:-8])


def mac_ok(raw, key):
    """True when the last 8 bytes of a message are its chain MAC under key."""
    return chain_mac(key, raw[:-8]) == raw[-8:]


def hello(version, client_id, h3, zid, flags, hashes, ciphers, auths, kas, sas_types, h2):
    """Hello (5.2). flags: bit 6 S, bit 5 M, bit 4 P of the first flag byte. Lists of 4-byte names."""
    lists = (hashes, ciphers, auths, kas, sas_types)
    for lst in lists:
        if len(lst) > _MAX_ALGOS:
            raise ValueError("more than 7 algorithms in one family")
    cid = (client_id + b" " * 16)[:16]
    counts = bytes((flags & 0x70, len(hashes), (len(ciphers) << 4) | len(auths), (len(kas) << 4) | len(sas_types)))
    body = version + cid + h3 + zid + counts + b"".join(hashes + ciphers + auths + kas + sas_types)
    return _with_mac(HELLO, body, h2)


def simple(mtype):
    """The header-only messages: HelloACK, Conf2ACK, ErrorACK, ClearACK, RelayACK (5.3, 5.7, 5.10, 5.12, 5.14)."""
    return _wrap(mtype, b"")


def commit(h2, zid, hash_t, cipher, auth, ka, sas_t, hvi_or_nonce, key_id, h1):
    """Commit (5.4): hvi (32 bytes) in DH mode, nonce (16) for Mult, nonce + keyID (8) for Prsh."""
    body = h2 + zid + hash_t + cipher + auth + ka + sas_t + hvi_or_nonce + (key_id or b"")
    return _with_mac(COMMIT, body, h1)


def dhpart(mtype, h1, rs1id, rs2id, auxid, pbxid, pv, h0):
    """DHPart1 / DHPart2 (5.5, 5.6)."""
    return _with_mac(mtype, h1 + rs1id + rs2id + auxid + pbxid + pv, h0)


def confirm(mtype, confirm_mac, iv, encrypted):
    """Confirm1 / Confirm2 (5.7): confirm_mac and CFB IV in clear, the rest encrypted."""
    return _wrap(mtype, confirm_mac + iv + encrypted)


def confirm_plain(h0, flags, expiry):
    """The to-be-encrypted part of a Confirm: H0, sig len 0, flags (E V A D in bits 3..0), cache expiry."""
    return h0 + bytes((0, 0, 0, flags & 0x0F)) + struct.pack(">I", expiry & 0xFFFFFFFF)


def error(code):
    """Error (5.9)."""
    return _wrap(ERROR, struct.pack(">I", code))


def goclear(clear_mac):
    """GoClear (5.11)."""
    return _wrap(GOCLEAR, clear_mac)


def ping(endpoint_hash):
    """Ping (5.15)."""
    return _wrap(PING, b"1.10" + endpoint_hash)


def pingack(endpoint_hash, peer_hash, ssrc):
    """PingACK (5.16): our endpoint hash, the one from the Ping, the Ping's SSRC."""
    return _wrap(PINGACK, b"1.10" + endpoint_hash + peer_hash + struct.pack(">I", ssrc))


def sasrelay(mac, iv, encrypted):
    """SASrelay (5.13)."""
    return _wrap(SASRELAY, mac + iv + encrypted)


def _names(b, off, count):
    return [bytes(b[off + 4 * i:off + 4 * i + 4]) for i in range(count)]


def _need(cond, what):
    if not cond:
        raise ZrtpError(MALFORMED, "malformed " + what)


def decode(raw):
    """Parse one message (preamble included, as returned by packet.parse). ZrtpError(0x10) if malformed."""
    n = len(raw)
    _need(n >= 12 and n & 3 == 0 and ((raw[2] << 8) | raw[3]) * 4 == n, "message")
    t = bytes(raw[4:12])
    m = {"type": t, "raw": raw}
    if t == HELLO:
        _need(n >= _HELLO_FIXED, "Hello")
        c = raw[76:80]
        hc, cc, ac, kc, sc = c[1] & 15, c[2] >> 4, c[2] & 15, c[3] >> 4, c[3] & 15
        _need(max(hc, cc, ac, kc, sc) <= _MAX_ALGOS, "Hello counts")
        _need(n == _HELLO_FIXED + 4 * (hc + cc + ac + kc + sc), "Hello length")
        m["version"] = bytes(raw[12:16])
        m["client"] = bytes(raw[16:32])
        m["h3"] = bytes(raw[32:64])
        m["zid"] = bytes(raw[64:76])
        m["flags"] = raw[76] & 0x70
        off = 80
        for key, cnt in (("hash", hc), ("cipher", cc), ("auth", ac), ("ka", kc), ("sas", sc)):
            m[key] = _names(raw, off, cnt)
            off += 4 * cnt
    elif t == COMMIT:
        _need(n in (100, 108, 116), "Commit")
        m["h2"] = bytes(raw[12:44])
        m["zid"] = bytes(raw[44:56])
        m["hash"], m["cipher"], m["auth"], m["ka"], m["sas"] = _names(raw, 56, 5)
        ka = m["ka"]
        if ka == b"Mult":
            _need(n == 100, "Commit (Mult)")
            m["nonce"] = bytes(raw[76:92])
        elif ka == b"Prsh":
            _need(n == 108, "Commit (Prsh)")
            m["nonce"] = bytes(raw[76:92])
            m["key_id"] = bytes(raw[92:100])
        else:
            _need(n == 116, "Commit (DH)")
            m["hvi"] = bytes(raw[76:108])
    elif t == DHPART1 or t == DHPART2:
        _need(n > _DH_FIXED and n <= _DH_FIXED + 384, "DHPart")
        m["h1"] = bytes(raw[12:44])
        m["rs1id"] = bytes(raw[44:52])
        m["rs2id"] = bytes(raw[52:60])
        m["auxid"] = bytes(raw[60:68])
        m["pbxid"] = bytes(raw[68:76])
        m["pv"] = bytes(raw[76:n - 8])
    elif t == CONFIRM1 or t == CONFIRM2:
        _need(n >= 76, "Confirm")
        m["confirm_mac"] = bytes(raw[12:20])
        m["iv"] = bytes(raw[20:36])
        m["encrypted"] = bytes(raw[36:])
    elif t == ERROR:
        _need(n == 16, "Error")
        m["code"] = struct.unpack(">I", raw[12:16])[0]
    elif t == GOCLEAR:
        _need(n == 20, "GoClear")
        m["clear_mac"] = bytes(raw[12:20])
    elif t == SASRELAY:
        _need(n >= 76, "SASrelay")
        m["mac"] = bytes(raw[12:20])
        m["iv"] = bytes(raw[20:36])
        m["encrypted"] = bytes(raw[36:])
    elif t == PING:
        _need(n == 24, "Ping")
        m["version"] = bytes(raw[12:16])
        m["endpoint_hash"] = bytes(raw[16:24])
    elif t == PINGACK:
        _need(n == 36, "PingACK")
        m["version"] = bytes(raw[12:16])
        m["endpoint_hash"] = bytes(raw[16:24])
        m["peer_hash"] = bytes(raw[24:32])
        m["ssrc"] = struct.unpack(">I", raw[32:36])[0]
    elif t in (HELLOACK, CONF2ACK, ERRORACK, CLEARACK, RELAYACK):
        _need(n == 12, "ACK")
    else:
        raise ZrtpError(MALFORMED, "unknown message type")
    return m


def confirm_fields(plain):
    """Fields of a decrypted Confirm body (5.7): h0, sig_len (words), flags (E V A D bits), expiry."""
    _need(len(plain) >= 40, "Confirm body")
    sig_len = ((plain[33] & 1) << 8) | plain[34]
    _need(len(plain) == 40 + 4 * sig_len, "Confirm signature length")
    return {"h0": bytes(plain[:32]), "sig_len": sig_len, "flags": plain[35] & 0x0F,
            "expiry": struct.unpack(">I", plain[36:40])[0]}


def sasrelay_fields(plain):
    """Fields of a decrypted SASrelay body (5.13): flags, rendering scheme, trusted SAS hash."""
    _need(len(plain) >= 40, "SASrelay body")
    return {"flags": plain[3] & 0x0F, "scheme": bytes(plain[4:8]), "sas_hash": bytes(plain[8:40])}
