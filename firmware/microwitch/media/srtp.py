"""SRTP and SRTCP (RFC 3711) with AES-CM-128 and AES-256-CM (RFC 6188) and HMAC-SHA1-80/-32.

One SrtpSession holds one master key and salt (ZRTP gives one per direction, RFC 6189 4.5.3): protect()
and protect_rtcp() keep the sending state, unprotect() and unprotect_rtcp() the receiving state, per SSRC,
for at most _MAX_STREAMS SSRCs each way. Session keys are derived once (key derivation rate 0, 4.3).
Receive: rollover-counter estimation (3.3.1, Appendix A), a 128-packet replay window (3.3.2) and the
authentication check before anything is decrypted or remembered. Failures raise SrtpError(reason).
"""
from microwitch.compat import aes_ctr, const, hmac_sha1, tags_equal

_MAX_STREAMS = const(8)  # SSRCs per direction; a packet for one more is refused, never evicts one
_WINDOW = const(128)  # replay window, in packets (RFC 3711 3.3.2 asks for at least 64)
_SRTCP_TAG = const(10)  # SRTCP's default 80-bit tag, also with the _32 profiles (RFC 4568 6.2, SDES/DTLS)
_SRTCP_MAX_INDEX = const(0x7FFFFFFF)
_SALT_LEN = const(14)

_WINDOW_MASK = (1 << 128) - 1

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


def _window_check(top, mask, idx):
    """Raise for an index already seen or older than the window below the highest index `top`."""
    if idx <= top:
        d = top - idx
        if d >= _WINDOW:
            raise SrtpError("packet too old for the replay window")
        if (mask >> d) & 1:
            raise SrtpError("replayed packet")


def _window_add(top, mask, idx):
    """(new top, new mask) after accepting idx."""
    if idx > top:
        d = idx - top
        if d >= _WINDOW:
            return idx, 1
        return idx, ((mask << d) | 1) & _WINDOW_MASK
    return top, mask | (1 << (top - idx))


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
        self._salt = int.from_bytes(_derive(kdf, salt, _L_RTP_SALT, _SALT_LEN), "big") << 16
        self._cctr = aes_ctr(_derive(kdf, salt, _L_RTCP_ENC, key_len))
        self._cmac = hmac_sha1(_derive(kdf, salt, _L_RTCP_AUTH, 20))
        self._csalt = int.from_bytes(_derive(kdf, salt, _L_RTCP_SALT, _SALT_LEN), "big") << 16
        # per SSRC: RTP [roc, highest seq, window mask, roc as 4 bytes]; SRTCP received [highest index,
        # window mask]; SRTCP sent: the next index
        self._tx = {}
        self._rx = {}
        self._ctx = {}
        self._crx = {}

    # -- SRTP (RFC 3711 3.3 and 3.4) ----------------------------------------------------------------------

    def protect(self, rtp):
        """The SRTP packet for an RTP packet: payload encrypted, auth tag appended."""
        n = len(rtp)
        if n < 12:
            raise SrtpError("RTP packet shorter than its 12-byte header")
        # 0x80: version 2 without CSRCs or extension, the 12-byte header of every G.711 packet we send
        hl = 12 if rtp[0] == 0x80 else _header_len(rtp, n)
        seq = (rtp[2] << 8) | rtp[3]
        ssrc = int.from_bytes(rtp[8:12], "big")
        st = self._tx.get(ssrc)
        if st is not None and seq == (st[1] + 1) & 0xFFFF:
            # the next packet in order (the usual case): no estimate, no window search
            if seq == 0:
                st[0] += 1
                st[3] = st[0].to_bytes(4, "big")
            st[1] = seq
            st[2] = ((st[2] << 1) | 1) & _WINDOW_MASK
        else:
            st = self._tx_index(st, ssrc, seq)
        m = bytes(rtp[:hl]) + self._ctr.xor(self._salt ^ (ssrc << 64) ^ (((st[0] << 16) | seq) << 16), rtp[hl:])
        return m + self._mac.digest(m, st[3])[:self._tag]

    def _tx_index(self, st, ssrc, seq):
        """Sending state after a packet out of order or the first of its SSRC."""
        if st is None:
            if len(self._tx) >= _MAX_STREAMS:
                raise SrtpError("too many outgoing SSRCs")
            st = self._tx[ssrc] = [0, seq, 0, bytes(4)]
        roc = _guess(st[0], st[1], seq)
        if roc < 0:
            raise SrtpError("sequence number from before the first packet")
        idx = (roc << 16) | seq
        top = (st[0] << 16) | st[1]
        # never encrypt two packets under one index: that would reuse keystream
        _window_check(top, st[2], idx)
        top, st[2] = _window_add(top, st[2], idx)
        st[0] = top >> 16
        st[1] = top & 0xFFFF
        st[3] = st[0].to_bytes(4, "big")
        # the ROC this packet is sent with (one less than the state's for a late packet before a wrap)
        return st if roc == st[0] else [roc, seq, 0, roc.to_bytes(4, "big")]

    def unprotect(self, srtp):
        """The RTP packet inside an SRTP packet, after the replay and authentication checks."""
        n = len(srtp)
        tl = self._tag
        if n < 12 + tl:
            raise SrtpError("SRTP packet too short")
        end = n - tl
        hl = 12 if srtp[0] == 0x80 else _header_len(srtp, end)
        seq = (srtp[2] << 8) | srtp[3]
        ssrc = int.from_bytes(srtp[8:12], "big")
        st = self._rx.get(ssrc)
        if st is not None and seq == (st[1] + 1) & 0xFFFF:
            # the next packet in order: it is newer than anything seen, no window search
            roc = st[0]
            rb = st[3]
            if seq == 0:
                roc += 1
                rb = roc.to_bytes(4, "big")
            top = -1
        else:
            if st is None:
                if len(self._rx) >= _MAX_STREAMS:
                    raise SrtpError("too many incoming SSRCs")
                roc = 0
                top = seq
                mask = 0
            else:
                roc = _guess(st[0], st[1], seq)
                if roc < 0:
                    raise SrtpError("packet too old for the replay window")
                top = (st[0] << 16) | st[1]
                mask = st[2]
            _window_check(top, mask, (roc << 16) | seq)
            rb = roc.to_bytes(4, "big")
        mv = memoryview(srtp)
        if not tags_equal(self._mac.digest(mv[:end], rb)[:tl], mv[end:]):
            raise SrtpError("SRTP authentication failed")
        # authentic: only now does the packet move the state (RFC 3711 3.3.2)
        if top < 0:
            st[0] = roc
            st[1] = seq
            st[2] = ((st[2] << 1) | 1) & _WINDOW_MASK
            st[3] = rb
        else:
            if st is None:
                st = self._rx[ssrc] = [0, 0, 0, bytes(4)]
            top, st[2] = _window_add(top, mask, (roc << 16) | seq)
            st[0] = top >> 16
            st[1] = top & 0xFFFF
            st[3] = st[0].to_bytes(4, "big")
        return bytes(mv[:hl]) + self._ctr.xor(self._salt ^ (ssrc << 64) ^ (((roc << 16) | seq) << 16), mv[hl:end])

    # -- SRTCP (RFC 3711 3.4) -----------------------------------------------------------------------------

    def protect_rtcp(self, rtcp):
        """The SRTCP packet for a (compound) RTCP packet: encrypted after the first 8 bytes, then
        E-flag + 31-bit SRTCP index and the 80-bit tag."""
        n = len(rtcp)
        if n < 8:
            raise SrtpError("RTCP packet shorter than 8 bytes")
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
        m = (bytes(rtcp[:8]) + self._cctr.xor(self._csalt ^ (ssrc << 64) ^ (idx << 16), rtcp[8:])
             + (0x80000000 | idx).to_bytes(4, "big"))
        return m + self._cmac.digest(m)[:self._ctag]

    def unprotect_rtcp(self, srtcp):
        """The RTCP packet inside an SRTCP packet, after the replay and authentication checks."""
        n = len(srtcp)
        tl = self._ctag
        if n < 8 + 4 + tl:
            raise SrtpError("SRTCP packet too short")
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
            top, mask = idx, 0
        else:
            top, mask = st
        _window_check(top, mask, idx)
        mv = memoryview(srtcp)
        if not tags_equal(self._cmac.digest(mv[:end])[:tl], mv[end:]):
            raise SrtpError("SRTCP authentication failed")
        self._crx[ssrc] = _window_add(top, mask, idx)
        body = mv[8:end - 4]
        if ei >> 31:
            body = self._cctr.xor(self._csalt ^ (ssrc << 64) ^ (idx << 16), body)
        return bytes(mv[:8]) + bytes(body)
