"""SRTP and SRTCP (RFC 3711) with AES-CM-128 and AES-256-CM (RFC 6188) and HMAC-SHA1-80/-32.

One SrtpSession holds one master key and salt (ZRTP gives one per direction, RFC 6189 4.5.3): protect()
and protect_rtcp() keep the sending state, unprotect() and unprotect_rtcp() the receiving state, per SSRC,
for at most _MAX_STREAMS SSRCs each way. Session keys are derived once (key derivation rate 0, 4.3).
Receive: rollover-counter estimation (3.3.1, Appendix A), a 128-packet replay window (3.3.2) and the
authentication check before anything is decrypted or remembered. Failures raise SrtpError(reason).
Packets are built, encrypted, authenticated and checked in one buffer per session (_MAX_PACKET bytes plus
index and tag), with the IV and replay windows in small buffers of their own; each call's only
packet-sized allocation is the bytes it returns.
"""
from microwitch.compat import aes_ctr, const, hmac_sha1, tags_equal

_MAX_STREAMS = const(8)  # SSRCs per direction; a packet for one more is refused, never evicts one
_WINDOW = const(128)  # replay window, in packets (RFC 3711 3.3.2 asks for at least 64); a 16-byte ring
_SRTCP_TAG = const(10)  # SRTCP's default 80-bit tag, also with the _32 profiles (RFC 4568 6.2, SDES/DTLS)
_SRTCP_MAX_INDEX = const(0x7FFFFFFF)
_SALT_LEN = const(14)
_MAX_PACKET = const(1500)  # longest clear RTP/RTCP packet (an Ethernet MTU); longer ones are refused

# name -> (master key length, SRTP tag length)
PROFILES = {
    "AES_CM_128_HMAC_SHA1_80": (16, 10),
    "AES_CM_128_HMAC_SHA1_32": (16, 4),
    "AES_256_CM_HMAC_SHA1_80": (32, 10),
    "AES_256_CM_HMAC_SHA1_32": (32, 4),
}

# RFC 3711 4.3.2 and 4.3.1 labels
_L_RTP_ENC, _L_RTP_AUTH, _L_RTP_SALT = const(0), const(1), const(2)
_L_RTCP_ENC, _L_RTCP_AUTH, _L_RTCP_SALT = const(3), const(4), const(5)


class SrtpError(Exception):
    """A packet SRTP refuses: too short, malformed, replayed, too old or failing authentication."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


def profile_for(cipher, auth):
    """The SRTP profile for ZRTP's negotiated cipher (AES1, AES3) and SRTP auth tag (HS80, HS32)
    (RFC 6189 5.1.3, 5.1.4). Takes bytes or str; ValueError names what it does not know."""
    c = cipher.decode() if isinstance(cipher, bytes) else cipher
    a = auth.decode() if isinstance(auth, bytes) else auth
    bits = {"AES1": "AES_CM_128", "AES3": "AES_256_CM"}.get(c)
    tag = {"HS80": "80", "HS32": "32"}.get(a)
    if bits is None:
        raise ValueError("no SRTP profile for ZRTP cipher %r (AES1 or AES3)" % (c,))
    if tag is None:
        raise ValueError("no SRTP profile for ZRTP auth tag %r (HS80 or HS32)" % (a,))
    return bits + "_HMAC_SHA1_" + tag


def from_zrtp(info):
    """(sender, receiver): the SrtpSessions for the ZRTP engine's "secure" event info (RFC 6189 4.5.3):
    we protect with our own key and salt and unprotect with the peer's. ZRTP negotiates one auth tag for
    the crypto context (5.1.4), so SRTCP carries the same tag as SRTP, HS32 included, as bzrtp/mediastreamer
    (Linphone) do; the 80-bit SRTCP tag of the _32 profiles belongs to SDES (RFC 4568 6.2)."""
    prof = profile_for(info["cipher"], info["auth"])
    tag = PROFILES[prof][1]
    return (SrtpSession(prof, info["self_key"], info["self_salt"], tag),
            SrtpSession(prof, info["peer_key"], info["peer_salt"], tag))


def _derive(ctr, salt_int, label, n):
    """Session key for a label with key derivation rate 0 (RFC 3711 4.3.1): AES-CM keystream from
    IV = (label << 48 XOR master salt) << 16."""
    return ctr.xor(((label << 48) ^ salt_int) << 16, bytes(n))


def derive(master_key, master_salt, label, n):
    """n bytes of the session key for `label` (0-2 SRTP encryption/auth/salt, 3-5 SRTCP), RFC 3711 4.3."""
    return _derive(aes_ctr(master_key), int.from_bytes(master_salt, "big"), label, n)


def _header_len(p, n):
    """Length of the RTP header (RFC 3550 5.1, 5.3.1): fixed part, CSRCs and extension."""
    b0 = p[0]
    if b0 & 0xC0 != 0x80:
        raise SrtpError("not an RTP version 2 packet")
    hl = 12 + ((b0 & 0x0F) << 2)
    if b0 & 0x10:
        if hl + 4 > n:
            raise SrtpError("RTP header extension runs past the packet")
        hl += 4 + (((p[hl + 2] << 8) | p[hl + 3]) << 2)
    if hl > n:
        raise SrtpError("RTP header runs past the packet")
    return hl


def _guess(roc, s_l, seq):
    """The rollover counter v for an incoming sequence number (RFC 3711 3.3.1 / Appendix A)."""
    if s_l < 32768:
        if seq - s_l > 32768:
            return roc - 1
        return roc
    if s_l - 32768 > seq:
        return roc + 1
    return roc


# The replay window is a ring of _WINDOW bits: index i is bit i mod 128 of a bytearray(16), meaning "seen"
# while i is within _WINDOW of the highest index.

def _window_check(top, ring, idx):
    """Raise for an index already seen or older than the window below the highest index `top`."""
    if idx <= top:
        if top - idx >= _WINDOW:
            raise SrtpError("packet too old for the replay window")
        b = idx & 127
        if ring[b >> 3] & (1 << (b & 7)):
            raise SrtpError("replayed packet")


def _window_add(top, ring, idx):
    """Mark idx seen in ring; the new highest index."""
    if idx > top:
        if idx - top >= _WINDOW:
            for k in range(16):
                ring[k] = 0
        else:
            for k in range(top + 1, idx):  # skipped indices reuse the bits of ones leaving the window
                b = k & 127
                ring[b >> 3] &= ~(1 << (b & 7))
        top = idx
    b = idx & 127
    ring[b >> 3] |= 1 << (b & 7)
    return top


class SrtpSession:
    """SRTP/SRTCP crypto context for one master key (RFC 3711 3.2)."""

    def __init__(self, profile, master_key, master_salt, rtcp_tag=_SRTCP_TAG):
        p = PROFILES.get(profile)
        if p is None:
            raise ValueError("unknown SRTP profile %r (one of %s)" % (profile, ", ".join(sorted(PROFILES))))
        key_len, self._tag = p
        if len(master_key) != key_len:
            raise ValueError("%s needs a %d-byte master key, got %d" % (profile, key_len, len(master_key)))
        if len(master_salt) != _SALT_LEN:
            raise ValueError("SRTP master salt must be 14 bytes, got %d" % len(master_salt))
        if rtcp_tag != 4 and rtcp_tag != 10:
            raise ValueError("SRTCP tag must be 4 or 10 bytes")
        self.profile = profile
        self._ctag = rtcp_tag
        kdf = aes_ctr(master_key)
        salt = int.from_bytes(master_salt, "big")
        self._ctr = aes_ctr(_derive(kdf, salt, _L_RTP_ENC, key_len))
        self._mac = hmac_sha1(_derive(kdf, salt, _L_RTP_AUTH, 20))
        self._salt = _derive(kdf, salt, _L_RTP_SALT, _SALT_LEN)
        self._cctr = aes_ctr(_derive(kdf, salt, _L_RTCP_ENC, key_len))
        self._cmac = hmac_sha1(_derive(kdf, salt, _L_RTCP_AUTH, 20))
        self._csalt = _derive(kdf, salt, _L_RTCP_SALT, _SALT_LEN)
        self._buf = bytearray(_MAX_PACKET + 4 + 10)  # packet, SRTCP index, tag
        self._bv = memoryview(self._buf)
        self._iv = bytearray(16)  # SRTCP's IV; the last two bytes stay zero: the block counter
        # per SSRC: RTP [roc, highest seq, window ring, roc as 4 bytes, ssrc, its high and low 16 bits (small
        # integers to compare with a packet's in place), the IV for a ROC, that ROC]; SRTCP received [highest
        # index, window ring]; SRTCP sent: the next index. _last_tx/_last_rx: the previous packet's stream.
        self._tx = {}
        self._rx = {}
        self._ctx = {}
        self._crx = {}
        self._last_tx = None
        self._last_rx = None

    def _set_iv(self, iv, salt, p, o, hi, lo):
        """IV = (k_s * 2^16) XOR (SSRC * 2^64) XOR (index * 2^16) (RFC 3711 4.1.1) into iv, for the SSRC at
        p[o:o + 4] and the 48-bit index hi * 2^16 + lo, without building a 128-bit integer."""
        iv[0:14] = salt
        iv[4] ^= p[o]
        iv[5] ^= p[o + 1]
        iv[6] ^= p[o + 2]
        iv[7] ^= p[o + 3]
        iv[8] ^= (hi >> 24) & 0xFF
        iv[9] ^= (hi >> 16) & 0xFF
        iv[10] ^= (hi >> 8) & 0xFF
        iv[11] ^= hi & 0xFF
        iv[12] ^= lo >> 8
        iv[13] ^= lo & 0xFF
        return iv

    def _rtp_iv(self, st, p, roc, seq):
        """The SRTP IV of packet p in stream st: the stream keeps its IV for one ROC (st[8]), so a packet only
        writes its sequence number into bytes 12-13."""
        iv = st[7]
        if roc != st[8]:
            self._set_iv(iv, self._salt, p, 8, roc, 0)
            st[8] = roc
        s = self._salt
        iv[12] = s[12] ^ (seq >> 8)
        iv[13] = s[13] ^ (seq & 0xFF)
        return iv

    def _stream(self, table, last, p, what):
        """(state, is it new) for the packet's SSRC p[8:12]; a new state is not in `table` yet. The previous
        packet's SSRC is compared in place, as two 16-bit halves: slicing or a 32-bit integer would
        allocate on every packet."""
        if last is not None and ((p[8] << 8) | p[9]) == last[5] and ((p[10] << 8) | p[11]) == last[6]:
            return last, False
        ssrc = int.from_bytes(p[8:12], "big")
        st = table.get(ssrc)
        if st is not None:
            return st, False
        if len(table) >= _MAX_STREAMS:
            raise SrtpError("too many " + what + " SSRCs")
        return [0, (p[2] << 8) | p[3], bytearray(16), bytes(4), ssrc, ssrc >> 16, ssrc & 0xFFFF, bytearray(16),
                -1], True

    # -- SRTP (RFC 3711 3.3 and 3.4) ----------------------------------------------------------------------

    def protect(self, rtp):
        """The SRTP packet for an RTP packet: payload encrypted, auth tag appended."""
        n = len(rtp)
        if n < 12:
            raise SrtpError("RTP packet shorter than its 12-byte header")
        if n > _MAX_PACKET:
            raise SrtpError("RTP packet longer than 1500 bytes")
        # 0x80: version 2 without CSRCs or extension, the 12-byte header of every G.711 packet we send
        hl = 12 if rtp[0] == 0x80 else _header_len(rtp, n)
        seq = (rtp[2] << 8) | rtp[3]
        st, new = self._stream(self._tx, self._last_tx, rtp, "outgoing")
        if new:
            self._tx[st[4]] = st
        self._last_tx = st
        roc = st[0]
        if not new and seq == (st[1] + 1) & 0xFFFF:
            # the next packet in order (the usual case): no estimate, no window search
            if seq == 0:
                roc = st[0] = roc + 1
                st[3] = roc.to_bytes(4, "big")
            st[1] = seq
            b = seq & 127
            st[2][b >> 3] |= 1 << (b & 7)
            rb = st[3]
        else:
            roc = _guess(roc, st[1], seq)
            if roc < 0:
                raise SrtpError("sequence number from before the first packet")
            idx = (roc << 16) | seq
            # never encrypt two packets under one index: that would reuse keystream
            _window_check((st[0] << 16) | st[1], st[2], idx)
            top = _window_add((st[0] << 16) | st[1], st[2], idx)
            if top >> 16 != st[0]:
                st[3] = (top >> 16).to_bytes(4, "big")
            st[0] = top >> 16
            st[1] = top & 0xFFFF
            # the ROC this packet is sent with (one less than the state's for a late packet before a wrap)
            rb = st[3] if roc == st[0] else roc.to_bytes(4, "big")
        buf = self._buf
        self._bv[0:n] = rtp
        self._ctr.xor_into(self._rtp_iv(st, buf, roc, seq), buf, hl, n)
        d = self._mac.digest(self._bv[:n], rb)
        tl = self._tag
        buf[n:n + tl] = d[:tl]
        return bytes(self._bv[:n + tl])

    def unprotect(self, srtp):
        """The RTP packet inside an SRTP packet, after the replay and authentication checks."""
        n = len(srtp)
        tl = self._tag
        if n < 12 + tl:
            raise SrtpError("SRTP packet too short")
        end = n - tl
        if end > _MAX_PACKET:
            raise SrtpError("SRTP packet longer than 1500 bytes")
        hl = 12 if srtp[0] == 0x80 else _header_len(srtp, end)
        seq = (srtp[2] << 8) | srtp[3]
        st, new = self._stream(self._rx, self._last_rx, srtp, "incoming")
        if not new and seq == (st[1] + 1) & 0xFFFF:
            # the next packet in order: it is newer than anything seen, no window search
            roc = st[0]
            rb = st[3]
            if seq == 0:
                roc += 1
                rb = roc.to_bytes(4, "big")
            top = -1
        else:
            if new:
                roc = 0
                top = seq
            else:
                roc = _guess(st[0], st[1], seq)
                if roc < 0:
                    raise SrtpError("packet too old for the replay window")
                top = (st[0] << 16) | st[1]
            _window_check(top, st[2], (roc << 16) | seq)
            rb = roc.to_bytes(4, "big")
        buf = self._buf
        self._bv[0:n] = srtp
        if not tags_equal(memoryview(self._mac.digest(self._bv[:end], rb))[:tl], self._bv[end:n]):
            raise SrtpError("SRTP authentication failed")
        # authentic: only now does the packet move the state (RFC 3711 3.3.2)
        if top < 0:
            st[0] = roc
            st[1] = seq
            b = seq & 127
            st[2][b >> 3] |= 1 << (b & 7)
            st[3] = rb
        else:
            if new:
                self._rx[st[4]] = st
            top = _window_add(top, st[2], (roc << 16) | seq)
            if top >> 16 != st[0]:
                st[3] = (top >> 16).to_bytes(4, "big")
            st[0] = top >> 16
            st[1] = top & 0xFFFF
        self._last_rx = st
        self._ctr.xor_into(self._rtp_iv(st, buf, roc, seq), buf, hl, end)
        return bytes(self._bv[:end])

    # -- SRTCP (RFC 3711 3.4) -----------------------------------------------------------------------------

    def protect_rtcp(self, rtcp):
        """The SRTCP packet for a (compound) RTCP packet: encrypted after the first 8 bytes, then
        E-flag + 31-bit SRTCP index and the 80-bit tag."""
        n = len(rtcp)
        if n < 8:
            raise SrtpError("RTCP packet shorter than 8 bytes")
        if n > _MAX_PACKET:
            raise SrtpError("RTCP packet longer than 1500 bytes")
        if rtcp[0] & 0xC0 != 0x80:
            raise SrtpError("not an RTCP version 2 packet")
        ssrc = int.from_bytes(rtcp[4:8], "big")
        idx = self._ctx.get(ssrc)
        if idx is None:
            if len(self._ctx) >= _MAX_STREAMS:
                raise SrtpError("too many outgoing RTCP SSRCs")
            idx = 0
        if idx > _SRTCP_MAX_INDEX:
            raise SrtpError("SRTCP index exhausted: rekey")
        self._ctx[ssrc] = idx + 1
        buf = self._buf
        self._bv[0:n] = rtcp
        self._cctr.xor_into(self._set_iv(self._iv, self._csalt, buf, 4, idx >> 16, idx & 0xFFFF), buf, 8, n)
        ei = 0x80000000 | idx
        buf[n] = ei >> 24
        buf[n + 1] = (ei >> 16) & 0xFF
        buf[n + 2] = (ei >> 8) & 0xFF
        buf[n + 3] = ei & 0xFF
        n += 4
        d = self._cmac.digest(self._bv[:n])
        tl = self._ctag
        buf[n:n + tl] = d[:tl]
        return bytes(self._bv[:n + tl])

    def unprotect_rtcp(self, srtcp):
        """The RTCP packet inside an SRTCP packet, after the replay and authentication checks."""
        n = len(srtcp)
        tl = self._ctag
        if n < 8 + 4 + tl:
            raise SrtpError("SRTCP packet too short")
        if n > _MAX_PACKET + 4 + tl:
            raise SrtpError("SRTCP packet longer than 1500 bytes")
        if srtcp[0] & 0xC0 != 0x80:
            raise SrtpError("not an RTCP version 2 packet")
        end = n - tl
        ei = int.from_bytes(srtcp[end - 4:end], "big")
        idx = ei & _SRTCP_MAX_INDEX
        ssrc = int.from_bytes(srtcp[4:8], "big")
        st = self._crx.get(ssrc)
        if st is None:
            if len(self._crx) >= _MAX_STREAMS:
                raise SrtpError("too many incoming RTCP SSRCs")
            st = [idx, bytearray(16)]
            new = True
        else:
            new = False
        _window_check(st[0], st[1], idx)
        buf = self._buf
        self._bv[0:n] = srtcp
        if not tags_equal(memoryview(self._cmac.digest(self._bv[:end]))[:tl], self._bv[end:n]):
            raise SrtpError("SRTCP authentication failed")
        if new:
            self._crx[ssrc] = st
        st[0] = _window_add(st[0], st[1], idx)
        end -= 4
        if ei >> 31:
            self._cctr.xor_into(self._set_iv(self._iv, self._csalt, buf, 4, idx >> 16, idx & 0xFFFF), buf, 8, end)
        return bytes(self._bv[:end])
