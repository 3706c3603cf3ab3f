"""QR encoder against real readers and a reference encoder (CPython only).

- zbar (libzbar0 through PyPI pyzbar) decodes our symbols for random texts of 1-150 characters at
  every level, every mask and every version 1-40; binary mode so zbar hands back the bytes as they
  are instead of guessing a character set.
- The SVG is rendered by a real SVG renderer (rsvg-convert) and read by zbarimg.
- PyPI `qrcode` draws byte-identical symbols at the same mask for every version and level.
- The mask penalty equals a brute-force count of the four rules of ISO/IEC 18004 §7.8.3.

Needs: apt libzbar0 zbar-tools librsvg2-bin; pip pyzbar qrcode.
"""
import os
import random
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET

import pytest

from microwitch.web.qr import encode, max_bytes, penalty, qr_matrix, qr_svg

ALPHABETS = (
    "".join(chr(c) for c in range(32, 127)),  # printable ASCII: the URLs we really draw
    "abcdefghijklmnopqrstuvwxyz0123456789:/?&=.@;-_%+",
    "\u00e4\u00f6\u00fc\u00df\u00e9\u00f1\u00ff\u00c5 abc",  # Latin-1 range, 2 bytes in UTF-8
    "\u65e5\u672c\u8a9e\u4e2d\u6587\u30c6\u30ad\u30b9\u30c8",  # CJK, 3 bytes each
    "\U0001F600\u260E\U0001F512\u00e9x",  # 4-byte emoji
    "\x00\t\n\r\x7f ab",  # control bytes
)


def _random_text(rnd, length):
    alphabet = rnd.choice(ALPHABETS)
    return "".join(rnd.choice(alphabet) for _ in range(length))


def _gray(rows, scale=2, quiet=4):
    """8-bit grayscale pixels (dark = 0) of a matrix with a light quiet zone."""
    n = len(rows)
    width = (n + 2 * quiet) * scale
    px = bytearray(b"\xff" * (width * width))
    dark = b"\x00" * scale
    for y, row in enumerate(rows):
        for x, v in enumerate(row):
            if v:
                for dy in range(scale):
                    at = ((y + quiet) * scale + dy) * width + (x + quiet) * scale
                    px[at:at + scale] = dark
    return bytes(px), width


@pytest.fixture
def zbar_decode(monkeypatch):
    """decode(rows) -> list of byte strings zbar reads in the rendered matrix."""
    pyzbar = pytest.importorskip("pyzbar.pyzbar", reason="needs pyzbar (pip) and libzbar0 (apt)")
    from pyzbar.wrapper import ZBarSymbol

    real = pyzbar.zbar_image_scanner_set_config

    def set_config(scanner, symbol, config, value):
        rc = real(scanner, symbol, config, value)
        if symbol == ZBarSymbol.QRCODE and config == 0 and value == 1:  # ZBAR_CFG_ENABLE
            real(scanner, symbol, 4, 1)  # ZBAR_CFG_BINARY (zbar >= 0.23): bytes as encoded
        return rc

    monkeypatch.setattr(pyzbar, "zbar_image_scanner_set_config", set_config)

    def decode(rows, scale=2):
        px, width = _gray(rows, scale)
        return [d.data for d in pyzbar.decode((px, width, width), symbols=[ZBarSymbol.QRCODE])]

    return decode


def test_random_texts_decode(zbar_decode):
    rnd = random.Random(18004)
    lengths = [1, 2, 150] + [rnd.randint(1, 150) for _ in range(237)]
    versions = set()
    for i, length in enumerate(lengths):
        text = _random_text(rnd, length)
        ecc = "LMQH"[i % 4]
        rows = qr_matrix(text, ecc)
        versions.add(len(rows))
        assert zbar_decode(rows) == [text.encode("utf-8")], (ecc, text)
    assert len(versions) > 20  # the sample spans many symbol sizes


def test_every_level_and_mask_decodes(zbar_decode):
    rnd = random.Random(7)
    for ecc in "LMQH":
        for mask in range(8):
            text = _random_text(rnd, rnd.randint(1, 120))
            version, m, g = encode(text, ecc, mask=mask)
            assert m == mask
            assert zbar_decode(g) == [text.encode("utf-8")], (ecc, mask)


def test_every_version_full_decodes(zbar_decode):
    rnd = random.Random(40)
    for version in range(1, 41):
        ecc = "LMQH"[version % 4]
        n = max_bytes(version, ecc)
        data = bytes(rnd.randrange(256) for _ in range(n))  # filled to the last byte
        v, _, g = encode(data, ecc)
        assert v == version
        assert zbar_decode(g) == [data], (version, ecc)


def test_provisioning_url_is_version_7_m_and_decodes(zbar_decode):
    url = "https://sip.example.org/provision/v1?user=alice&domain=example.org&token=" + "A1b2C3d4" * 6
    url = url[:120]
    assert len(url) == 120
    version, _, g = encode(url, "M")
    assert version == 7
    assert zbar_decode(g, scale=1) == [url.encode()]


@pytest.mark.skipif(not (shutil.which("rsvg-convert") and shutil.which("zbarimg")),
                    reason="needs rsvg-convert (apt librsvg2-bin) and zbarimg (apt zbar-tools)")
def test_svg_rendered_by_librsvg_decodes(tmp_path):
    texts = ("https://sip.example.org/p?u=alice&t=" + "x" * 80, "sip:bob@example.net", "gr\u00fc\u00dfe \u260E")
    for i, text in enumerate(texts):
        for scale in (2, 4):  # zbarimg misses some 1-pixel-per-module images, ours and others'
            svg = qr_svg(text, scale=scale, ecc="LMQH"[i])
            root = ET.fromstring(svg)  # well-formed XML
            assert root.tag == "{http://www.w3.org/2000/svg}svg"
            assert "href" not in svg and "url(" not in svg and "<image" not in svg
            size = len(qr_matrix(text, "LMQH"[i])) + 8
            assert root.get("width") == str(size * scale)
            src = os.path.join(str(tmp_path), "q%d_%d.svg" % (i, scale))
            png = src[:-4] + ".png"
            with open(src, "w") as f:
                f.write(svg)
            subprocess.run(["rsvg-convert", src, "-o", png], check=True, timeout=30)
            out = subprocess.run(["zbarimg", "--raw", "-q", "-Sbinary", png], capture_output=True, timeout=30)
            assert out.returncode == 0, out.stderr
            assert out.stdout.rstrip(b"\n") == text.encode("utf-8"), (text, scale)


_LEVEL_NAMES = {"L": "ERROR_CORRECT_L", "M": "ERROR_CORRECT_M", "Q": "ERROR_CORRECT_Q", "H": "ERROR_CORRECT_H"}


def test_byte_identical_to_qrcode_package_every_version():
    qrcode = pytest.importorskip("qrcode", reason="needs the qrcode package (pip)")
    import qrcode.constants
    import qrcode.util

    def reference(data, ecc, version, mask):
        q = qrcode.QRCode(version=version, error_correction=getattr(qrcode.constants, _LEVEL_NAMES[ecc]),
                          border=0, mask_pattern=mask)
        q.add_data(qrcode.util.QRData(data, mode=qrcode.util.MODE_8BIT_BYTE))
        q.make(fit=False)
        return [bytearray(1 if v else 0 for v in row) for row in q.modules]

    rnd = random.Random(2015)
    for version in range(1, 41):
        for ecc in "LMQH":
            n = max_bytes(version, ecc)
            for length in (n, rnd.randint(0, n)):
                data = bytes(rnd.randrange(256) for _ in range(length))
                mask = rnd.randrange(8)
                assert encode(data, ecc, version=version, mask=mask)[2] == reference(data, ecc, version, mask), \
                    (version, ecc, length, mask)
            with pytest.raises(Exception):  # one byte more does not fit the reference either
                reference(bytes(n + 1), ecc, version, 0)


def _brute_penalty(g):
    """§7.8.3 written out the slow, obvious way (strings and regular expressions)."""
    n = len(g)
    lines = ["".join(str(v) for v in row) for row in g]
    lines += ["".join(str(g[y][x]) for y in range(n)) for x in range(n)]
    n1 = sum(3 + len(m.group()) - 5 for line in lines for m in re.finditer(r"0{5,}|1{5,}", line))
    n2 = 3 * sum(1 for y in range(n - 1) for x in range(n - 1)
                 if g[y][x] == g[y][x + 1] == g[y + 1][x] == g[y + 1][x + 1])
    n3 = 0
    for line in lines:
        padded = "0000" + line + "0000"  # outside the symbol is the light quiet zone
        for i in range(len(padded) - 6):
            if padded[i:i + 7] == "1011101" and (padded[i - 4:i] == "0000" or padded[i + 7:i + 11] == "0000"):
                n3 += 40
    dark = sum(sum(row) for row in g)
    k = int(abs(dark * 100.0 / (n * n) - 50) // 5)
    return n1 + n2 + n3 + 10 * k


def test_penalty_matches_brute_force_and_best_mask_is_chosen():
    rnd = random.Random(11)
    for _ in range(25):
        text = _random_text(rnd, rnd.randint(1, 150))
        ecc = rnd.choice("LMQH")
        scores = []
        for mask in range(8):
            g = encode(text, ecc, mask=mask)[2]
            s = penalty(g)
            assert s == _brute_penalty(g)
            scores.append(s)
        assert encode(text, ecc)[1] == scores.index(min(scores))
