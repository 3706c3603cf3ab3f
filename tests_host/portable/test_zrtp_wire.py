"""ZRTP wire format, KDF, SAS and hash-chain checks against known answers (RFC 6189; vectors from
bzrtp's test suite, generated with GNU ZRTP). Portable: runs under MicroPython too."""
import binascii
import hashlib

import _zrtp_vectors as V
from microwitch.compat import aes_ecb
from microwitch.crypto.crc32c import crc32c
from microwitch.crypto.modes import cfb_decrypt
from microwitch.zrtp import packet, messages as M, sas, kdf
from microwitch.zrtp.errors import ZrtpError


def _h(s):
    return binascii.unhexlify(s)


def _sha(b):
    return hashlib.sha256(b).digest()


def _exchange():
    out = []
    for p in V.EXCHANGE:
        seq, ssrc, raw = packet.parse(_h(p))
        out.append((seq, ssrc, M.decode(raw)))
    return out


def _raises(fn, *args):
    try:
        fn(*args)
    except ZrtpError as e:
        return e
    raise AssertionError("no ZrtpError")


def test_crc32c_vectors_are_sent_lsb_first():
    for data, want in V.CRC:
        d = _h(data)
        c = crc32c(d)
        # bzrtp keeps the value read back big-endian from the little-endian wire: byte-swapped
        assert int.from_bytes(c.to_bytes(4, "little"), "big") == want
        assert packet.parse(d + c.to_bytes(4, "little"))[2] == d[12:]


def test_exchange_parses_with_crc_seq_and_ssrc():
    ex = _exchange()
    types = [m["type"] for _, _, m in ex]
    assert types == [M.HELLO, M.HELLO, M.HELLOACK, M.COMMIT, M.DHPART1, M.DHPART2, M.CONFIRM1, M.CONFIRM2,
                     M.CONF2ACK]
    assert [s for s, _, _ in ex][:3] == [0x09f1, 0x02ce, 0x09f2]
    assert ex[0][1] == 0x12345678 and ex[3][1] == 0x87654321
    hello = ex[0][2]
    assert hello["version"] == b"1.10" and hello["client"] == b"LINPHONE-ZRTPCPP"
    assert hello["hash"] == [b"S256"] and hello["auth"] == [b"HS32", b"HS80"]
    assert hello["ka"] == [b"DH3k", b"DH2k", b"Mult"] and hello["sas"] == [b"B32 "]
    c = ex[3][2]
    assert (c["hash"], c["cipher"], c["auth"], c["ka"], c["sas"]) == (b"S256", b"AES1", b"HS32", b"DH3k", b"B32 ")
    assert len(ex[4][2]["pv"]) == 384 and len(ex[5][2]["pv"]) == 384


def test_exchange_reencodes_byte_for_byte():
    ex = _exchange()
    for (seq, ssrc, m), p in zip(ex, V.EXCHANGE):
        assert packet.build(seq, ssrc, m["raw"]) == _h(p)
    c = ex[3][2]
    again = M.commit(c["h2"], c["zid"], c["hash"], c["cipher"], c["auth"], c["ka"], c["sas"], c["hvi"], None,
                     _h(V.H_87654321[1]))
    assert again == c["raw"]
    d = ex[4][2]
    again = M.dhpart(M.DHPART1, d["h1"], d["rs1id"], d["rs2id"], d["auxid"], d["pbxid"], d["pv"],
                     _h(V.H_12345678[0]))
    assert again == d["raw"]


def test_hello_hashes_match_sdp_values():
    ex = _exchange()
    assert "1.10 " + binascii.hexlify(_sha(ex[0][2]["raw"])).decode() == V.HELLO_HASH_12345678
    assert "1.10 " + binascii.hexlify(_sha(ex[1][2]["raw"])).decode() == V.HELLO_HASH_87654321
    raw = packet.parse(_h(V.GNU_HELLO))[2]
    assert "1.10 " + binascii.hexlify(_sha(raw)).decode() == V.GNU_HELLO_HASH
    g = M.decode(raw)
    assert g["ka"] == [b"EC25", b"DH3k", b"EC38", b"DH2k", b"Mult"]


def test_hash_chains_and_every_chain_mac():
    ex = _exchange()
    hr = [_h(x) for x in V.H_12345678]
    hi = [_h(x) for x in V.H_87654321]
    for chain in (hr, hi):
        for k in range(3):
            assert _sha(chain[k]) == chain[k + 1]
    hello_r, hello_i, commit, dh1, dh2 = ex[0][2], ex[1][2], ex[3][2], ex[4][2], ex[5][2]
    assert hello_r["h3"] == hr[3] and hello_i["h3"] == hi[3]
    assert M.mac_ok(hello_r["raw"], hr[2]) and M.mac_ok(hello_i["raw"], hi[2])
    assert commit["h2"] == hi[2] and M.mac_ok(commit["raw"], hi[1])
    assert dh1["h1"] == hr[1] and M.mac_ok(dh1["raw"], hr[0])
    assert dh2["h1"] == hi[1] and M.mac_ok(dh2["raw"], hi[0])
    assert not M.mac_ok(hello_r["raw"], hi[2])


def test_hvi_is_hash_of_dhpart2_and_responder_hello():
    ex = _exchange()
    hsh = kdf.Hash(b"S256")
    assert hsh.h(ex[5][2]["raw"], ex[0][2]["raw"])[:32] == ex[3][2]["hvi"]
    assert hsh.h(ex[5][2]["raw"], ex[1][2]["raw"])[:32] != ex[3][2]["hvi"]


def test_confirm_mac_and_cfb_decrypt_reveal_h0():
    ex = _exchange()
    hsh = kdf.Hash(b"S256")
    for m, mk, zk, h in ((ex[6][2], V.MACKEYR, V.ZRTPKEYR, V.H_12345678), (ex[7][2], V.MACKEYI, V.ZRTPKEYI,
                                                                           V.H_87654321)):
        assert hsh.mac(_h(mk), m["encrypted"])[:8] == m["confirm_mac"]
        f = M.confirm_fields(cfb_decrypt(aes_ecb(_h(zk)), m["iv"], m["encrypted"]))
        assert f["h0"] == _h(h[0])
        assert f["sig_len"] == 0 and f["expiry"] == 0xFFFFFFFF and f["flags"] == 0


def test_kdf_vectors():
    hsh = kdf.Hash(b"S256")
    ki = _h(V.KDF_KI)
    for label, ctx, n, out in V.KDF:
        assert hsh.kdf(ki, label.encode(), _h(ctx), n) == _h(out), label


def test_sas_rendering():
    assert sas.b32(0) == "yyyy"
    assert sas.b32(0xFFFFFFFF) == "9999"
    # 20 leftmost bits, 5 per character, alphabet of RFC 6189 5.1.6
    assert sas.b32(0x08421000) == "bbbb"
    assert sas.b32(0x00000FFF) == "yyyy"
    # PGP word list: even word for the first byte, odd word for the second (the published example
    # E582 94F2 -> topmost Istanbul Pluto vagabond)
    assert sas.b256(0xE5820000) == "topmost:Istanbul"
    assert sas.b256(0x94F2FFFF) == "Pluto:vagabond"
    assert sas.b256(0x0000) == "aardvark:adroitness"
    assert sas.render(b"B32 ", b"\x08\x42\x10\x00" + bytes(28)) == "bbbb"
    assert sas.render(b"B256", b"\xe5\x82" + bytes(30)) == "topmost:Istanbul"


def test_hello_encoding_and_counts():
    h = M.hello(b"1.10", b"x", b"\x03" * 32, b"\x0c" * 12, 0x10, [b"S256", b"S384"], [b"AES1"], [b"HS32"],
                [b"X255", b"DH3k", b"Mult"], [b"B32 "], b"\x02" * 32)
    assert len(h) == 88 + 4 * 8 and h[2:4] == b"\x00\x1e"
    m = M.decode(h)
    assert m["client"] == b"x" + b" " * 15 and m["flags"] == 0x10
    assert m["ka"] == [b"X255", b"DH3k", b"Mult"] and m["hash"] == [b"S256", b"S384"]
    assert M.mac_ok(h, b"\x02" * 32)


def test_lengths_and_types_are_validated_first():
    good = _h(V.EXCHANGE[2])
    assert _raises(packet.parse, good[:-1]).code == 0              # not a word multiple
    assert _raises(packet.parse, good[:24]).code == 0              # shorter than a minimal packet
    bad = bytearray(good)
    bad[-1] ^= 1
    assert "CRC" in _raises(packet.parse, bytes(bad)).reason
    bad = bytearray(good)
    bad[4] = 0x5b                                                  # magic cookie
    assert _raises(packet.parse, bytes(bad)).code == 0
    # a length field that disagrees with the datagram, CRC valid
    msg = bytearray(packet.parse(good)[2])
    msg[3] = 4
    e = _raises(packet.parse, packet.build(1, 2, bytes(msg)))
    assert "length" in e.reason and e.code == 0
    assert _raises(M.decode, M.simple(b"Bogus!!!")).code == 0x10
    assert _raises(M.decode, bytes(msg)).code == 0x10
    # a Commit whose length does not fit its mode
    c = packet.parse(_h(V.EXCHANGE[3]))[2]
    assert _raises(M.decode, c[:2] + b"\x00\x1b" + c[4:108]).code == 0x10


def test_other_messages_roundtrip():
    assert M.decode(M.error(0x70))["code"] == 0x70
    p = M.decode(M.ping(b"12345678"))
    assert p["version"] == b"1.10" and p["endpoint_hash"] == b"12345678"
    pa = M.decode(M.pingack(b"abcdefgh", b"12345678", 0xdeadbeef))
    assert pa["peer_hash"] == b"12345678" and pa["ssrc"] == 0xdeadbeef
    assert M.decode(M.goclear(b"\x01" * 8))["clear_mac"] == b"\x01" * 8
    for t in (M.HELLOACK, M.CONF2ACK, M.ERRORACK, M.CLEARACK, M.RELAYACK):
        assert M.decode(M.simple(t))["type"] == t
    r = M.decode(M.sasrelay(b"m" * 8, b"i" * 16, bytes(40)))
    assert r["mac"] == b"m" * 8 and len(r["encrypted"]) == 40
    f = M.sasrelay_fields(bytes(4) + b"B256" + b"\x05" * 32)
    assert f["scheme"] == b"B256" and f["sas_hash"] == b"\x05" * 32
