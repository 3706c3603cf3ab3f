"""SRTP/SRTCP (RFC 3711, RFC 6188): known answers, round trips, rollover, replay and tampering.

Small enough for the pure-Python back-ends under wasm MicroPython (a packet costs a few ms there)."""
from binascii import hexlify, unhexlify

from microwitch.compat import aes_ctr, hmac_sha1
from microwitch.media import srtp
from microwitch.media.srtp import SrtpError, SrtpSession


def h(s):
    return unhexlify(s.replace(" ", ""))


def rtp(seq, ts=0, ssrc=0xCAFEBABE, payload=b"\xab" * 16, pt=0, marker=0, extra=b"", first=0x80):
    return (bytes((first, (marker << 7) | pt, seq >> 8, seq & 0xFF)) + ts.to_bytes(4, "big")
            + ssrc.to_bytes(4, "big") + extra + payload)


def raises(fn, *args):
    try:
        fn(*args)
    except SrtpError as e:
        return e.reason
    raise AssertionError("no SrtpError")


# RFC 3711 B.2: AES-CM keystream, session key 2B7E..., counter = session salt with zero SSRC and index
def test_rfc3711_b2_aes_cm_keystream():
    ks = aes_ctr(h("2B7E151628AED2A6ABF7158809CF4F3C")).xor(
        int.from_bytes(h("F0F1F2F3F4F5F6F7F8F9FAFBFCFD0000"), "big"), bytes(48))
    assert ks == h("E03EAD0935C95E80E166B16DD92B4EB4 D23513162B02D0F72A43A2FE4A5F97AB"
                   "41E95B3BB0A2E8DD477901E4FCA894C0")


def test_keystream_truncated_to_data_length():
    c = aes_ctr(h("2B7E151628AED2A6ABF7158809CF4F3C"))
    iv = int.from_bytes(h("F0F1F2F3F4F5F6F7F8F9FAFBFCFD0000"), "big")
    assert c.xor(iv, bytes(20)) == h("E03EAD0935C95E80E166B16DD92B4EB4 D2351316")
    assert c.xor(iv, b"") == b""
    try:
        c.xor(iv | 1, bytes(16))
    except ValueError:
        pass
    else:
        raise AssertionError("a counter with low bits set must be refused")


def test_device_ctr_on_buffers_gives_the_rfc_keystream_in_place():
    # AesCtrBuffers is what a device with cryptolib runs; a pure-Python ECB stands in for cryptolib here
    from microwitch.compat import AesCtrBuffers
    from microwitch.crypto.aes import AES

    def ecb_into(key):
        a = AES(key)

        def encrypt(src, dst):
            for o in range(0, len(src), 16):
                dst[o:o + 16] = a.encrypt(bytes(src[o:o + 16]))
        return encrypt
    iv = h("F0F1F2F3F4F5F6F7F8F9FAFBFCFD0000")
    c = AesCtrBuffers(ecb_into(h("2B7E151628AED2A6ABF7158809CF4F3C")))
    buf = bytearray(b"hdr" + bytes(44) + b"tail")
    c.xor_into(iv, buf, 3, 47)                            # 44 bytes: two whole blocks and a short third
    assert bytes(buf) == b"hdr" + h("E03EAD0935C95E80E166B16DD92B4EB4 D23513162B02D0F72A43A2FE4A5F97AB"
                                    "41E95B3BB0A2E8DD477901E4") + b"tail"
    c.xor_into(iv, buf, 3, 47)                            # XOR again: back to zeros
    assert bytes(buf) == b"hdr" + bytes(44) + b"tail"
    assert c.xor(int.from_bytes(iv, "big"), bytes(20)) == h("E03EAD0935C95E80E166B16DD92B4EB4 D2351316")
    c = AesCtrBuffers(ecb_into(h("57f82fe3613fd170a85ec93c40b1f092 2ec4cb0dc025b58272147cc438944a98")))
    assert c.xor(int.from_bytes(iv, "big"), bytes(48)) == h(
        "92bdd28a93c3f52511c677d08b5515a4 9da71b2378a854f67050756ded165bac 63c4868b7096d88421b563b8c94c9a31")


# RFC 3711 B.3: key derivation with key derivation rate 0
def test_rfc3711_b3_key_derivation():
    mk = h("E1F97A0D3E018BE0D64FA32C06DE4139")
    ms = h("0EC675AD498AFEEBB6960B3AABE6")
    assert srtp.derive(mk, ms, 0, 16) == h("C61E7A93744F39EE10734AFE3FF7A087")
    assert srtp.derive(mk, ms, 2, 14) == h("30CBBC08863D8C85D49DB34A9AE1")
    assert srtp.derive(mk, ms, 1, 94) == h(
        "CEBE321F6FF7716B6FD4AB49AF256A156D38BAA48F0A0ACF3C34E2359E6CDBCE"
        "E049646C43D9327AD175578EF72270986371C10C9A369AC2F94A8C5FBCDDDC25"
        "6D6E919A48B610EF17C2041E474035766B68642C59BBFC2F34DB60DBDFB2")


# RFC 6188 7.1: AES-256-CM keystream; 7.2: AES_256_CM_PRF key derivation
def test_rfc6188_aes256_keystream():
    ks = aes_ctr(h("57f82fe3613fd170a85ec93c40b1f092 2ec4cb0dc025b58272147cc438944a98")).xor(
        int.from_bytes(h("F0F1F2F3F4F5F6F7F8F9FAFBFCFD0000"), "big"), bytes(48))
    assert ks == h("92bdd28a93c3f52511c677d08b5515a4 9da71b2378a854f67050756ded165bac"
                   "63c4868b7096d88421b563b8c94c9a31")


def test_rfc6188_aes256_key_derivation():
    mk = h("f0f04914b513f2763a1b1fa130f10e29 98f6f6e43e4309d1e622a0e332b9f1b6")
    ms = h("3b04803de51ee7c96423ab5b78d2")
    assert srtp.derive(mk, ms, 0, 32) == h("5ba1064e30ec51613cad926c5a28ef73 1ec7fb397f70a960653caf06554cd8c4")
    assert srtp.derive(mk, ms, 2, 14) == h("fa31791685ca444a9e07c6c64e93")
    assert srtp.derive(mk, ms, 1, 20) == h("fd9c32d39ed5fbb5a9dc96b30818454d1313dc05")


def test_hmac_sha1_rfc2202():
    # RFC 2202 test cases 2 and 6 (a key longer than the block)
    assert hmac_sha1(b"Jefe").digest(b"what do ya want ", b"for nothing?") == h(
        "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79")
    assert hmac_sha1(b"\xaa" * 80).digest(b"Test Using Larger Than Block-Size Key - Hash Key First") == h(
        "aa4ae5e15272d00e95705637ce8a3b55ed402112")


# a whole packet, as libsrtp's own driver checks it (the CPython tests also run it through libsrtp)
_PLAIN = h("800f1234decafbadcafebabe") + b"\xab" * 16


def test_known_packet_aes128_sha1_80():
    s = SrtpSession("AES_CM_128_HMAC_SHA1_80", h("e1f97a0d3e018be0d64fa32c06de4139"), h("0ec675ad498afeebb6960b3aabe6"))
    out = s.protect(_PLAIN)
    assert out == h("800f1234decafbadcafebabe4e55dc4ce79978d88ca4d215949d2402b78d6acc99ea179b8dbb")
    r = SrtpSession("AES_CM_128_HMAC_SHA1_80", h("e1f97a0d3e018be0d64fa32c06de4139"), h("0ec675ad498afeebb6960b3aabe6"))
    assert r.unprotect(out) == _PLAIN


def test_known_packet_aes256_sha1_80():
    mk = h("f0f04914b513f2763a1b1fa130f10e2998f6f6e43e4309d1e622a0e332b9f1b6")
    ms = h("3b04803de51ee7c96423ab5b78d2")
    out = SrtpSession("AES_256_CM_HMAC_SHA1_80", mk, ms).protect(_PLAIN)
    assert out == h("800f1234decafbadcafebabe f1d9de17ff251ff1aa007774 b0b4b40da08d9d9a5b3a55d8873b")


def pair(profile="AES_CM_128_HMAC_SHA1_80", klen=16):
    key = bytes(range(1, klen + 1))
    salt = bytes(range(100, 114))
    return SrtpSession(profile, key, salt), SrtpSession(profile, key, salt)


def test_round_trip_every_profile_and_tag_length():
    for profile, klen, tag in (("AES_CM_128_HMAC_SHA1_80", 16, 10), ("AES_CM_128_HMAC_SHA1_32", 16, 4),
                               ("AES_256_CM_HMAC_SHA1_80", 32, 10), ("AES_256_CM_HMAC_SHA1_32", 32, 4)):
        tx, rx = pair(profile, klen)
        p = rtp(7, payload=bytes(range(160)))
        s = tx.protect(p)
        assert len(s) == len(p) + tag
        assert s[:12] == p[:12] and s[12:172] != p[12:]
        assert rx.unprotect(s) == p
        c = bytes((0x80, 201, 0, 1)) + (0xCAFEBABE).to_bytes(4, "big")
        sc = tx.protect_rtcp(c + b"0123456789")
        assert len(sc) == 18 + 4 + 10  # SRTCP keeps the 80-bit tag with _32 profiles
        assert sc[18] & 0x80  # E flag
        assert rx.unprotect_rtcp(sc) == c + b"0123456789"


def test_header_with_csrc_and_extension_stays_clear():
    tx, rx = pair()
    ext = (0xBEDE).to_bytes(2, "big") + (1).to_bytes(2, "big") + b"\x10\xaa\x00\x00"
    p = rtp(1, first=0x91, extra=(0x11223344).to_bytes(4, "big") + ext, payload=b"hello world")
    s = tx.protect(p)
    assert s[:24] == p[:24] and s[24:35] != b"hello world"
    assert rx.unprotect(s) == p


def test_rollover_at_65535():
    tx, rx = pair()
    got = []
    for i in range(6):
        seq = (65533 + i) & 0xFFFF
        got.append(rx.unprotect(tx.protect(rtp(seq, payload=bytes((i,)) * 8))))
    assert [g[12] for g in got] == list(range(6))
    assert rx._rx[0xCAFEBABE][0] == 1 and tx._tx[0xCAFEBABE][0] == 1  # ROC moved to 1 on both sides


def test_reordered_across_the_wrap_uses_old_roc():
    tx, rx = pair()
    pk = [tx.protect(rtp(s)) for s in (65534, 65535, 0, 1)]
    assert rx.unprotect(pk[0])
    assert rx.unprotect(pk[2])  # seq 0: ROC 1
    assert rx.unprotect(pk[1])  # seq 65535 arrives late: guessed with ROC 0 and still authenticates
    assert rx.unprotect(pk[3])
    assert raises(rx.unprotect, pk[1]) == "replayed packet"


def test_roc_guess_rfc3711_appendix_a():
    g = srtp._guess
    assert g(0, 100, 101) == 0
    assert g(0, 65500, 3) == 1
    assert g(1, 3, 65500) == 0
    assert g(0, 3, 65500) == -1
    assert g(5, 40000, 40001) == 5


def test_replay_and_window():
    tx, rx = pair()
    pk = [tx.protect(rtp(s)) for s in range(1, 200)]
    assert rx.unprotect(pk[150])
    assert raises(rx.unprotect, pk[150]) == "replayed packet"
    assert rx.unprotect(pk[30])  # 120 behind the highest: inside the 128-packet window
    assert raises(rx.unprotect, pk[30]) == "replayed packet"
    assert raises(rx.unprotect, pk[10]) == "packet too old for the replay window"
    assert rx.unprotect(pk[151])


def test_window_ring_after_jumps_and_between_streams():
    # the window is a 128-bit ring indexed by packet index mod 128: a jump must forget the skipped slots'
    # old marks, and a jump of 128 or more must forget everything
    tx, rx = pair()
    pk = [tx.protect(rtp(s)) for s in range(1, 600)]
    for s in range(1, 11):
        assert rx.unprotect(pk[s - 1])
    assert rx.unprotect(pk[60 - 1])                 # 50 ahead: slots 11..59 were marked by nothing new
    for s in (11, 59, 40):                           # skipped packets arrive late, once each
        assert rx.unprotect(pk[s - 1])
        assert raises(rx.unprotect, pk[s - 1]) == "replayed packet"
    assert rx.unprotect(pk[139 - 1])                # slot 139 % 128 = 11 held packet 11's mark
    assert rx.unprotect(pk[137 - 1])                # slot 9: packet 9's old mark was cleared by the jump
    assert raises(rx.unprotect, pk[10 - 1]) == "packet too old for the replay window"
    assert rx.unprotect(pk[400 - 1])                # 261 ahead: the whole ring is forgotten
    for s in (394, 387, 316):                       # slots 10, 3 and 60 were marked before the jump
        assert rx.unprotect(pk[s - 1])
    assert raises(rx.unprotect, pk[272 - 1]) == "packet too old for the replay window"
    # a second SSRC between packets of the first keeps its own state (the last-SSRC shortcut is per packet)
    other = tx.protect(rtp(1, ssrc=0x0BADF00D))
    assert rx.unprotect(other) and rx.unprotect(pk[401 - 1])
    assert raises(rx.unprotect, other) == "replayed packet"
    assert raises(rx.unprotect, pk[401 - 1]) == "replayed packet"


def test_packets_longer_than_an_mtu_are_refused():
    tx, rx = pair()
    assert raises(tx.protect, rtp(1, payload=bytes(1489))) == "RTP packet longer than 1500 bytes"
    big = tx.protect(rtp(1, payload=bytes(1488)))    # 1500 bytes: the longest
    assert len(big) == 1510 and rx.unprotect(big) == rtp(1, payload=bytes(1488))
    assert raises(rx.unprotect, big + b"\x00") == "SRTP packet longer than 1500 bytes"
    assert raises(tx.protect_rtcp, b"\x80\xc8\x00\x06" + bytes(1497)) == "RTCP packet longer than 1500 bytes"
    assert raises(rx.unprotect_rtcp, b"\x80\xc8\x00\x06" + bytes(1511)) == "SRTCP packet longer than 1500 bytes"


def test_sender_refuses_to_reuse_an_index():
    tx, _ = pair()
    tx.protect(rtp(5))
    assert raises(tx.protect, rtp(5, payload=b"other")) == "replayed packet"


def test_tampered_packets_rejected_and_not_remembered():
    tx, rx = pair()
    s = tx.protect(rtp(9, payload=b"secret audio"))
    for i in (1, 3, 8, 12, len(s) - 1):
        bad = bytearray(s)
        bad[i] ^= 0x01
        assert raises(rx.unprotect, bytes(bad)) == "SRTP authentication failed"
    assert not rx._rx  # a forged packet creates no stream state
    assert rx.unprotect(s) == rtp(9, payload=b"secret audio")
    other = SrtpSession("AES_CM_128_HMAC_SHA1_80", bytes(16), bytes(14))
    assert raises(other.unprotect, s) == "SRTP authentication failed"


def test_malformed_packets():
    tx, rx = pair()
    assert raises(tx.protect, b"\x80\x00\x00") == "RTP packet shorter than its 12-byte header"
    assert raises(tx.protect, rtp(1, first=0x40)) == "not an RTP version 2 packet"
    assert raises(tx.protect, rtp(1, first=0x8F, payload=b"")) == "RTP header runs past the packet"
    assert raises(tx.protect, rtp(1, first=0x90, payload=b"\x00")) == "RTP header extension runs past the packet"
    assert raises(rx.unprotect, rtp(1, payload=b"")[:20]) == "SRTP packet too short"
    assert raises(rx.unprotect_rtcp, b"\x80\xc8\x00\x01" + bytes(10)) == "SRTCP packet too short"
    assert raises(tx.protect_rtcp, b"\x80\xc8\x00") == "RTCP packet shorter than 8 bytes"


def test_srtcp_index_replay_and_tamper():
    tx, rx = pair()
    c = bytes((0x80, 200, 0, 6)) + (0x1234).to_bytes(4, "big") + bytes(20)
    pk = [tx.protect_rtcp(c) for _ in range(3)]
    assert [int.from_bytes(p[28:32], "big") for p in pk] == [0x80000000, 0x80000001, 0x80000002]
    assert rx.unprotect_rtcp(pk[1]) == c
    assert rx.unprotect_rtcp(pk[0]) == c
    assert raises(rx.unprotect_rtcp, pk[1]) == "replayed packet"
    bad = bytearray(pk[2])
    bad[30] ^= 1  # the index is authenticated
    assert raises(rx.unprotect_rtcp, bytes(bad)) == "SRTCP authentication failed"
    assert rx.unprotect_rtcp(pk[2]) == c


def test_srtcp_unencrypted_e_flag_clear():
    # E=0: the body travels in clear but is still authenticated (RFC 3711 3.4)
    tx, rx = pair()
    c = bytes((0x80, 200, 0, 1)) + (0x1234).to_bytes(4, "big") + b"clear!"
    m = c + (5).to_bytes(4, "big")
    pk = m + rx._cmac.digest(m)[:10]
    assert rx.unprotect_rtcp(pk) == c


def test_stream_table_bounded():
    tx, rx = pair()
    for ssrc in range(8):
        rx.unprotect(tx.protect(rtp(1, ssrc=ssrc)))
    assert raises(tx.protect, rtp(1, ssrc=99)) == "too many outgoing SSRCs"
    other_tx, _ = pair()
    assert raises(rx.unprotect, other_tx.protect(rtp(1, ssrc=99))) == "too many incoming SSRCs"


def test_profile_for_zrtp_names_and_bad_input():
    assert srtp.profile_for(b"AES1", b"HS80") == "AES_CM_128_HMAC_SHA1_80"
    assert srtp.profile_for("AES3", "HS32") == "AES_256_CM_HMAC_SHA1_32"
    for c, a in (("2FS1", "HS80"), ("AES1", "SK32")):
        try:
            srtp.profile_for(c, a)
        except ValueError:
            pass
        else:
            raise AssertionError("accepted %s/%s" % (c, a))
    for args in (("AES_CM_128_HMAC_SHA1_80", bytes(32), bytes(14)), ("AES_CM_128_HMAC_SHA1_80", bytes(16), bytes(12)),
                 ("NULL_HMAC_SHA1_80", bytes(16), bytes(14))):
        try:
            SrtpSession(*args)
        except ValueError:
            pass
        else:
            raise AssertionError("accepted %r" % (args,))


def test_sender_late_packet_before_the_wrap_keeps_its_roc():
    tx, rx = pair()
    a = tx.protect(rtp(65534))
    b = tx.protect(rtp(1))  # jumped over the wrap: ROC 1
    c = tx.protect(rtp(65535))  # sent late: still ROC 0
    assert tx._tx[0xCAFEBABE][0] == 1
    for s, seq in ((c, 65535), (a, 65534), (b, 1)):
        assert rx.unprotect(s) == rtp(seq)


def test_srtcp_index_exhaustion_refused():
    tx, rx = pair()
    c = bytes((0x80, 201, 0, 1)) + (7).to_bytes(4, "big")
    tx._ctx[7] = 0x7FFFFFFF
    last = tx.protect_rtcp(c)
    assert int.from_bytes(last[8:12], "big") == 0xFFFFFFFF
    assert rx.unprotect_rtcp(last) == c
    assert raises(tx.protect_rtcp, c) == "SRTCP index exhausted: rekey"


def test_from_zrtp_pairs_directions():
    ka, sa, kb, sb = bytes(range(16)), bytes(range(14)), bytes(range(16, 32)), bytes(range(14, 28))
    alice = {"cipher": "AES1", "auth": "HS32", "self_key": ka, "self_salt": sa, "peer_key": kb, "peer_salt": sb}
    bob = {"cipher": "AES1", "auth": "HS32", "self_key": kb, "self_salt": sb, "peer_key": ka, "peer_salt": sa}
    a_tx, a_rx = srtp.from_zrtp(alice)
    b_tx, b_rx = srtp.from_zrtp(bob)
    assert a_tx.profile == "AES_CM_128_HMAC_SHA1_32"
    assert b_rx.unprotect(a_tx.protect(rtp(3))) == rtp(3)
    assert a_rx.unprotect(b_tx.protect(rtp(4))) == rtp(4)
    assert raises(a_rx.unprotect, a_tx.protect(rtp(5))) == "SRTP authentication failed"


def test_tags_equal():
    from microwitch.compat import tags_equal
    assert tags_equal(b"\x01\x02\x03\x04", memoryview(b"\x01\x02\x03\x04"))
    assert not tags_equal(b"\x01\x02\x03\x04", b"\x01\x02\x03\x05")
    assert not tags_equal(b"\x01\x02\x03\x04", b"\x01\x02\x03")
