"""SRTP/SRTCP against libsrtp (through pylibsrtp) for every profile, both directions, plus the CPython-only
checks: the pure-Python back-ends against OpenSSL, and the long RFC 3711 B.2 keystream segment."""
import hmac
import os
import struct

import pytest
from hypothesis import given, settings, strategies as st
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from microwitch import compat
from microwitch.media import srtp, srtp_pure
from microwitch.media.srtp import SrtpError, SrtpSession

pylibsrtp = pytest.importorskip("pylibsrtp")
ffi = pylibsrtp.ffi

PROFILES = {  # ours -> (libsrtp cipher type id, master key length, tag length)
    "AES_CM_128_HMAC_SHA1_80": (1, 16, 10),
    "AES_CM_128_HMAC_SHA1_32": (1, 16, 4),
    "AES_256_CM_HMAC_SHA1_80": (5, 32, 10),
    "AES_256_CM_HMAC_SHA1_32": (5, 32, 4),
}
_SHA1, _CONF_AND_AUTH = 3, 3


def libsrtp(profile, key, salt, inbound):
    """A libsrtp session for any of our profiles. pylibsrtp only names the AES-128 ones, so the crypto
    policy (libsrtp 2's srtp_crypto_policy_t: cipher type, key+salt length, auth type, auth key length,
    tag length, services) is written directly; SRTCP keeps the 80-bit tag, as libsrtp's own _32 profile."""
    cipher, klen, tag = PROFILES[profile]
    p = pylibsrtp.Policy(key=key + salt, srtp_profile=pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
                         ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND if inbound
                         else pylibsrtp.Policy.SSRC_ANY_OUTBOUND)
    for part, t in ((p._policy.rtp, tag), (p._policy.rtcp, 10)):
        buf = ffi.buffer(ffi.addressof(part))
        if struct.unpack("<6i", bytes(buf)) != (1, 30, _SHA1, 20, 10, _CONF_AND_AUTH):
            pytest.skip("unexpected libsrtp crypto policy layout")
        buf[:] = struct.pack("<6i", cipher, klen + 14, _SHA1, 20, t, _CONF_AND_AUTH)
    return pylibsrtp.Session(p)


def rtp(seq, ssrc=0x11223344, payload=None, ts=None):
    if payload is None:
        payload = os.urandom(160)
    return struct.pack(">BBHII", 0x80, 0, seq & 0xFFFF, (seq * 160 if ts is None else ts) & 0xFFFFFFFF,
                       ssrc) + payload


def rtcp_sr(ssrc=0x11223344):
    return struct.pack(">BBHIIIIII", 0x80, 200, 6, ssrc, 1, 2, 3, 4, 5) + os.urandom(8)


def keys(profile):
    return os.urandom(PROFILES[profile][1]), os.urandom(14)


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_ours_protect_libsrtp_unprotect_across_the_rollover(profile):
    key, salt = keys(profile)
    ours = SrtpSession(profile, key, salt)
    theirs = libsrtp(profile, key, salt, inbound=True)
    ref = libsrtp(profile, key, salt, inbound=False)
    for i in range(65530, 65530 + 300):
        p = rtp(i)
        s = ours.protect(p)
        assert s == ref.protect(p)  # deterministic: byte for byte what libsrtp sends
        assert theirs.unprotect(s) == p
    for _ in range(5):
        c = rtcp_sr()
        assert theirs.unprotect_rtcp(ours.protect_rtcp(c)) == c


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_libsrtp_protect_ours_unprotect_across_the_rollover(profile):
    key, salt = keys(profile)
    theirs = libsrtp(profile, key, salt, inbound=False)
    ours = SrtpSession(profile, key, salt)
    sent = []
    for i in range(65400, 65400 + 300):
        p = rtp(i)
        s = theirs.protect(p)
        sent.append(s)
        assert ours.unprotect(s) == p
    assert ours._rx[0x11223344][0] == 1  # ROC 1 after the wrap
    with pytest.raises(SrtpError, match="replayed packet"):
        ours.unprotect(sent[-1])
    with pytest.raises(SrtpError, match="too old"):
        ours.unprotect(sent[0])
    bad = bytearray(theirs.protect(rtp(65400 + 300)))
    bad[20] ^= 0x80
    with pytest.raises(SrtpError, match="authentication failed"):
        ours.unprotect(bytes(bad))
    for _ in range(5):
        c = rtcp_sr()
        assert ours.unprotect_rtcp(theirs.protect_rtcp(c)) == c


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_libsrtp_rejects_our_replayed_and_tampered_packets(profile):
    key, salt = keys(profile)
    ours = SrtpSession(profile, key, salt)
    theirs = libsrtp(profile, key, salt, inbound=True)
    s = ours.protect(rtp(1))
    theirs.unprotect(s)
    with pytest.raises(pylibsrtp.Error):
        theirs.unprotect(s)
    t = bytearray(ours.protect(rtp(2)))
    t[-1] ^= 1
    with pytest.raises(pylibsrtp.Error):
        theirs.unprotect(bytes(t))
    c = ours.protect_rtcp(rtcp_sr())
    theirs.unprotect_rtcp(c)
    with pytest.raises(pylibsrtp.Error):
        theirs.unprotect_rtcp(c)


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_out_of_order_from_libsrtp(profile):
    key, salt = keys(profile)
    theirs = libsrtp(profile, key, salt, inbound=False)
    ours = SrtpSession(profile, key, salt)
    pk = [(i, rtp(i)) for i in range(65500, 65600)]
    sent = [(i, p, theirs.protect(p)) for i, p in pk]
    order = list(range(len(sent)))
    # swap neighbours and delay every tenth packet by 20: reordering across the wrap
    for k in range(0, len(order) - 1, 2):
        order[k], order[k + 1] = order[k + 1], order[k]
    for k in range(0, len(order) - 25, 10):
        order.insert(k + 20, order.pop(k))
    for k in order:
        assert ours.unprotect(sent[k][2]) == sent[k][1]


def test_known_packets_agree_with_libsrtp():
    plain = bytes.fromhex("800f1234decafbadcafebabe") + b"\xab" * 16
    for profile, key, salt, want in (
            ("AES_CM_128_HMAC_SHA1_80", "e1f97a0d3e018be0d64fa32c06de4139", "0ec675ad498afeebb6960b3aabe6",
             "800f1234decafbadcafebabe4e55dc4ce79978d88ca4d215949d2402b78d6acc99ea179b8dbb"),
            ("AES_256_CM_HMAC_SHA1_80", "f0f04914b513f2763a1b1fa130f10e2998f6f6e43e4309d1e622a0e332b9f1b6",
             "3b04803de51ee7c96423ab5b78d2",
             "800f1234decafbadcafebabef1d9de17ff251ff1aa007774b0b4b40da08d9d9a5b3a55d8873b")):
        k, s = bytes.fromhex(key), bytes.fromhex(salt)
        assert libsrtp(profile, k, s, inbound=False).protect(plain).hex() == want
        assert SrtpSession(profile, k, s).protect(plain).hex() == want


@pytest.mark.parametrize("back_end", ["pure", "device"])
@pytest.mark.parametrize("profile", ["AES_CM_128_HMAC_SHA1_80", "AES_256_CM_HMAC_SHA1_32"])
def test_other_back_ends_interoperate_with_libsrtp(profile, back_end, monkeypatch):
    # pure: what MicroPython without cryptolib/hashlib.sha1 runs; device: a native ECB (OpenSSL here, cryptolib
    # there) with MicroPython's allocation-free byte loop XOR and a C SHA-1 rehashed per message
    if back_end == "pure":
        monkeypatch.setattr(srtp, "aes_ctr", srtp_pure.AesCtr)
        monkeypatch.setattr(srtp, "hmac_sha1", srtp_pure.HmacSha1)
    else:
        def aes_ctr(key):  # cryptolib's aes(key, 1).encrypt(src, dst) played by OpenSSL
            return compat.AesCtrBuffers(Cipher(algorithms.AES(key), modes.ECB()).encryptor().update_into)
        monkeypatch.setattr(srtp, "aes_ctr", aes_ctr)
        monkeypatch.setattr(srtp, "hmac_sha1", compat.HmacSha1Rehash)
    key, salt = keys(profile)
    ours = SrtpSession(profile, key, salt)
    assert isinstance(ours._ctr, srtp_pure.AesCtr if back_end == "pure" else compat.AesCtrBuffers)
    tx, rx = libsrtp(profile, key, salt, False), libsrtp(profile, key, salt, True)
    for i in range(65534, 65534 + 4):
        p = rtp(i, payload=os.urandom(1 + i % 300))
        assert rx.unprotect(ours.protect(p)) == p
        assert ours.unprotect(tx.protect(p)) == p
    c = rtcp_sr()
    assert rx.unprotect_rtcp(ours.protect_rtcp(c)) == c
    assert ours.unprotect_rtcp(tx.protect_rtcp(c)) == c


def test_rfc3711_b2_keystream_segment_tail():
    # B.2 lists the last blocks of the 65282-block segment: counter ...FEFF, ...FF00, ...FF01
    key = bytes.fromhex("2B7E151628AED2A6ABF7158809CF4F3C")
    iv = int.from_bytes(bytes.fromhex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD0000"), "big")
    want = bytes.fromhex("EC8CDF7398607CB0F2D21675EA9EA1E4362B7C3C6773516318A077D7FC5073AE"
                         "6A2CC3787889374FBEB4C81B17BA6C44")
    for ctr in (compat.aes_ctr(key), srtp_pure.AesCtr(key)):
        assert ctr.xor(iv, bytes(65282 * 16))[-48:] == want


@settings(max_examples=60, deadline=None)
@given(key=st.sampled_from([16, 32]).flatmap(lambda n: st.binary(min_size=n, max_size=n)),
       iv_hi=st.integers(0, (1 << 112) - 1), data=st.binary(max_size=5000))
def test_pure_ctr_matches_openssl(key, iv_hi, data):
    iv = iv_hi << 16
    assert srtp_pure.AesCtr(key).xor(iv, data) == compat.aes_ctr(key).xor(iv, data)


@settings(max_examples=60, deadline=None)
@given(key=st.binary(max_size=100), data=st.binary(max_size=300), extra=st.binary(max_size=8))
def test_hmac_sha1_back_ends_match_stdlib(key, data, extra):
    want = hmac.digest(key, data + extra, "sha1")
    assert srtp_pure.HmacSha1(key).digest(data, extra) == want
    assert compat.hmac_sha1(key).digest(data, extra) == want
    assert compat.HmacSha1Rehash(key).digest(data, extra) == want  # what devices with hashlib.sha1 run


def test_tags_equal():
    assert compat.tags_equal(b"abcd", memoryview(b"abcd"))
    assert not compat.tags_equal(b"abcd", b"abce") and not compat.tags_equal(b"abcd", b"abc")


@settings(max_examples=40, deadline=None)
@given(seqs=st.lists(st.integers(0, 400), min_size=1, max_size=60))
def test_replay_window_model(seqs):
    # any arrival order: accepted exactly once if within 128 of the highest seen, like a reference model
    key, salt = keys("AES_CM_128_HMAC_SHA1_32")
    tx = SrtpSession("AES_CM_128_HMAC_SHA1_32", key, salt)
    rx = SrtpSession("AES_CM_128_HMAC_SHA1_32", key, salt)
    sent = {}
    for s in range(401):
        sent[s] = tx.protect(rtp(1000 + s, payload=b"x"))
    seen, top = set(), None
    for s in seqs:
        ok = s not in seen and (top is None or s > top - 128)
        if ok:
            assert rx.unprotect(sent[s])
            seen.add(s)
            top = s if top is None else max(top, s)
        else:
            with pytest.raises(SrtpError):
                rx.unprotect(sent[s])


@pytest.mark.parametrize("cipher,auth", [("AES1", "HS80"), ("AES3", "HS32")])
def test_sessions_from_a_real_zrtp_handshake(cipher, auth):
    # the keys the engine's "secure" event hands over make working sessions both ways, and libsrtp
    # with the same keys agrees (the engine's key lengths match the profile)
    from _zrtp_pair import Drbg, Link
    from microwitch.zrtp.engine import ZrtpSession

    cfg = {"ka": ["X255"], "cipher": [cipher], "auth": [auth]}
    link = Link(ZrtpSession("initiator", cfg, Drbg("a"), None, 0), ZrtpSession("responder", cfg, Drbg("b"), None, 0))
    link.run()
    infos = {}
    for who in ("a", "b"):
        secure = [e for e in link.events[who] if e[0] == "secure"]
        assert secure, link.events[who]
        infos[who] = secure[-1][1]
    a_tx, a_rx = srtp.from_zrtp(infos["a"])
    b_tx, b_rx = srtp.from_zrtp(infos["b"])
    assert a_tx.profile == srtp.profile_for(cipher, auth)
    p = rtp(1)
    assert b_rx.unprotect(a_tx.protect(p)) == p
    assert a_rx.unprotect(b_tx.protect(p)) == p
    i = infos["a"]
    lib = libsrtp(a_tx.profile, i["peer_key"], i["peer_salt"], inbound=True)
    q = rtp(2)
    assert lib.unprotect(b_tx.protect(q)) == q
