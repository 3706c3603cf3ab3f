"""The agent's SRTCP against libsrtp (pylibsrtp): two media sessions run a real ZRTP handshake in memory, then
the compound reports one of them sends unprotect in libsrtp with the keys ZRTP gave, and compounds libsrtp
protects with the peer's keys are authenticated, decrypted and used by ours. With HS32 the SRTCP tag is 32
bits, as in bzrtp/mediastreamer (Linphone); with HS80 it is 80."""
import os
import struct

import pytest

from microwitch.agent.call import MediaSession
from microwitch.media import demux, rtcp

pylibsrtp = pytest.importorskip("pylibsrtp")
ffi = pylibsrtp.ffi

A = ("127.0.0.1", 4000)
B = ("127.0.0.1", 5000)
_SHA1, _CONF_AND_AUTH = 3, 3


def _libsrtp(key, salt, tag, inbound):
    """AES-CM-128 with HMAC-SHA1 and `tag` bytes for both SRTP and SRTCP. pylibsrtp's _32 profile keeps the
    80-bit SRTCP tag of SDES, so the policy's tag length (libsrtp 2's srtp_crypto_policy_t: cipher type, key
    length, auth type, auth key length, tag length, services) is written directly."""
    p = pylibsrtp.Policy(key=key + salt, srtp_profile=pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
                         ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND if inbound
                         else pylibsrtp.Policy.SSRC_ANY_OUTBOUND)
    for part in (p._policy.rtp, p._policy.rtcp):
        buf = ffi.buffer(ffi.addressof(part))
        if struct.unpack("<6i", bytes(buf)) != (1, 30, _SHA1, 20, 10, _CONF_AND_AUTH):
            pytest.skip("unexpected libsrtp crypto policy layout")
        buf[:] = struct.pack("<6i", 1, 30, _SHA1, 20, tag, _CONF_AND_AUTH)
    return pylibsrtp.Session(p)


def _remote(addr, zrtp_hash):
    return {"addr": addr[0], "port": addr[1], "pt": 0, "codec": "PCMU", "dtmf_pt": 101, "zrtp_hash": zrtp_hash,
            "direction": "sendrecv", "rtcp_mux": True, "rtcp_port": None, "rtcp_addr": addr[0]}


def _secure_pair(auth):
    cfg = {"auth": [auth]}
    a = MediaSession("mandatory", os.urandom, None, 0, zrtp_config=cfg)
    b = MediaSession("mandatory", os.urandom, None, 0, zrtp_config=cfg)
    wire = []
    reports = []

    def take(who, acts):
        for act in acts:
            if act[0] == "send":
                if who == "a" and demux.classify(act[1]) == demux.RTCP:
                    reports.append(act[1])
                wire.append(("b" if who == "a" else "a", act[1]))

    take("a", a.start(_remote(B, b.hello_hash()), 0))
    take("b", b.start(_remote(A, a.hello_hash()), 0))
    now = 0
    while now < 12000:
        now += 5
        take("a", a.tick(now))
        take("b", b.tick(now))
        for _ in range(200):
            if not wire:
                break
            to, data = wire.pop(0)
            if to == "a":
                take("a", a.receive(data, B, now))
            else:
                take("b", b.receive(data, A, now))
        if len(reports) >= 2 and b.rtcp.received_count >= 2:
            break
    assert a.secure and b.secure and a.info["auth"] in (auth, auth.encode())
    return a, b, reports, now


@pytest.mark.parametrize("auth,tag", [("HS80", 10), ("HS32", 4)])
def test_our_srtcp_unprotects_in_libsrtp_and_theirs_in_ours(auth, tag):
    a, b, reports, now = _secure_pair(auth)
    assert len(reports) >= 2
    info = a.info
    lib_in = _libsrtp(info["self_key"], info["self_salt"], tag, inbound=True)     # what b's side would use
    for s in reports:
        c = lib_in.unprotect_rtcp(s)
        p = rtcp.parse(c)
        assert p[0]["type"] in (rtcp.SR, rtcp.RR) and p[0]["ssrc"] == a.ssrc
        assert p[1]["type"] == rtcp.SDES and p[1]["chunks"][0][1][1] == a.rtcp.cname
        assert len(s) == len(c) + 4 + tag
    # libsrtp protects a compound with b's keys (b's side of the call); ours authenticates and reads it
    lib_out = _libsrtp(info["peer_key"], info["peer_salt"], tag, inbound=False)
    block = {"ssrc": a.ssrc, "fraction": 64, "lost": 7, "highest": 1234, "jitter": 40, "lsr": 0, "dlsr": 0}
    # (another SSRC than b's: b's own reports already used SRTCP indices 0, 1, ... under this key)
    comp = rtcp.receiver_report(0x5EED, [block]) + rtcp.sdes_cname(0x5EED, "libsrtp")
    n = a.rtcp.received_count
    for i in range(3):
        a.receive(lib_out.protect_rtcp(comp), B, now + i)
    assert a.rtcp.received_count == n + 3 and a.rtcp_dropped_auth == 0
    assert a.rtcp.peer_lost == 7 and a.rtcp.peer_fraction == 64 and a.rtcp.peer_jitter == 40
    # a forged one (wrong key) is refused and counted
    forged = _libsrtp(os.urandom(16), os.urandom(14), tag, inbound=False).protect_rtcp(comp)
    a.receive(forged, B, now + 5)
    assert a.rtcp_dropped_auth == 1 and a.rtcp.received_count == n + 3
    # a's last report, with its BYE, unprotects too
    bye = a.stop(now + 10)[0][1]
    assert rtcp.parse(lib_in.unprotect_rtcp(bye))[-1]["type"] == rtcp.BYE
