"""QR encoder (microwitch.web.qr): known answers and structural invariants; runs on MicroPython too.

Reference symbols were produced once with the PyPI `qrcode` 8.2 package at a fixed mask (byte mode,
no ECI); RS codewords come from worked examples (ISO/IEC 18004 Annex I, thonky.com's tutorial).
"""
from binascii import hexlify
from hashlib import sha256

from microwitch.web.qr import qr_matrix, qr_svg, encode, rs_ec, max_bytes, penalty, _bch

PROVISION_URL = ("https://node.example.org/provision?user=alice&domain=example.org&token="
                 + "0123456789abcdef" * 4)[:120]

# "sip:alice@example.org", level M, mask 2 (version 2), as drawn by `qrcode`.
SIP_ALICE_M2 = (
    "#######..#.###....#######",
    "#.....#...#..####.#.....#",
    "#.###.#.#####..##.#.###.#",
    "#.###.#.##..####..#.###.#",
    "#.###.#.#.#..#..#.#.###.#",
    "#.....#.#.##.###..#.....#",
    "#######.#.#.#.#.#.#######",
    "........##.##.###........",
    "#.#####...#..##...#####..",
    "#....#...##...#.#.##.#.#.",
    ".#..####.##..#.#..##.#.##",
    "..#.....####...#..##.#.##",
    "#####.#..#..#######.#.#..",
    "#.####..#.......#..#.##..",
    "#.#...#.#..##############",
    "#..#....#..#..#####....#.",
    "#.###.#.#.##....#######.#",
    "........#...##.##...##.#.",
    "#######......##.#.#.#..##",
    "#.....#.###.##..#...#..##",
    "#.###.#.#.#.#.###########",
    "#.###.#.###......##.#.###",
    "#.###.#.#####..#.#.#.#..#",
    "#.....#..#.#..###..#....#",
    "#######.#..#......#.#####",
)


def _digest(rows):
    bits = "".join("".join("1" if v else "0" for v in row) for row in rows)
    return hexlify(sha256(bits.encode()).digest()).decode()


def _format_bits_copies(g):
    """Both 15-bit format information copies read back from a symbol (bit 14 first)."""
    size = len(g)
    a = []
    for i in range(6):
        a.append(g[i][8])
    a.append(g[7][8])
    a.append(g[8][8])
    a.append(g[8][7])
    for i in range(9, 15):
        a.append(g[8][14 - i])
    b = []
    for i in range(8):
        b.append(g[8][size - 1 - i])
    for i in range(8, 15):
        b.append(g[size - 15 + i][8])
    va = 0
    vb = 0
    for i in range(14, -1, -1):
        va = (va << 1) | a[i]
        vb = (vb << 1) | b[i]
    return va, vb


def _decode_format(bits):
    """(level letter, mask) for a format word, by nearest valid codeword (Annex C)."""
    best = None
    for lv, letter in ((1, "L"), (0, "M"), (3, "Q"), (2, "H")):
        for m in range(8):
            code = _bch((lv << 3) | m, 0x537, 11) ^ 0x5412
            d = bin(code ^ bits).count("1")
            if best is None or d < best[0]:
                best = (d, letter, m)
    if best[0] != 0:
        raise AssertionError("format bits are not a valid codeword: %s" % bin(bits))
    return best[1], best[2]


def _check_finder(g, x0, y0):
    for dy in range(7):
        for dx in range(7):
            d = max(abs(dx - 3), abs(dy - 3))
            assert g[y0 + dy][x0 + dx] == (0 if d == 2 else 1), (x0, y0, dx, dy)


def _check_structure(g, version, ecc, mask):
    size = len(g)
    assert size == 17 + 4 * version
    for row in g:
        assert len(row) == size
    _check_finder(g, 0, 0)
    _check_finder(g, size - 7, 0)
    _check_finder(g, 0, size - 7)
    for i in range(8):  # separators are light
        for x, y in ((i, 7), (7, i), (size - 1 - i, 7), (size - 8, i), (i, size - 8), (7, size - 1 - i)):
            assert g[y][x] == 0, (x, y)
    for i in range(8, size - 8):  # timing patterns alternate, dark on even positions
        assert g[6][i] == (1 - i % 2)
        assert g[i][6] == (1 - i % 2)
    assert g[size - 8][8] == 1  # dark module
    fa, fb = _format_bits_copies(g)
    assert fa == fb
    assert _decode_format(fa) == (ecc, mask)
    if version >= 7:
        va = 0
        vb = 0
        for i in range(17, -1, -1):
            va = (va << 1) | g[i // 3][size - 11 + i % 3]
            vb = (vb << 1) | g[size - 11 + i % 3][i // 3]
        assert va == vb == _bch(version, 0x1F25, 13)
        assert va >> 12 == version


def test_reed_solomon_worked_examples():
    # thonky.com QR tutorial: "HELLO WORLD" 1-M data codewords and their 10 EC codewords
    data = bytes((32, 91, 11, 120, 209, 114, 220, 77, 67, 64, 236, 17, 236, 17, 236, 17))
    assert list(rs_ec(data, 10)) == [196, 35, 39, 119, 235, 215, 231, 226, 93, 23]
    # ISO/IEC 18004 Annex I: "01234567" 1-M
    data = bytes((0x10, 0x20, 0x0C, 0x56, 0x61, 0x80) + (0xEC, 0x11) * 5)
    assert rs_ec(data, 10) == bytes((0xA5, 0x24, 0xD4, 0xC1, 0xED, 0x36, 0xC7, 0x87, 0x2C, 0x55))


def test_format_and_version_codewords():
    # Format information table (Annex C, after the 0x5412 mask), mask 0 and mask 7 for each level.
    assert _bch((1 << 3) | 0, 0x537, 11) ^ 0x5412 == 0b111011111000100  # L, 0
    assert _bch((0 << 3) | 0, 0x537, 11) ^ 0x5412 == 0b101010000010010  # M, 0
    assert _bch((3 << 3) | 0, 0x537, 11) ^ 0x5412 == 0b011010101011111  # Q, 0
    assert _bch((2 << 3) | 0, 0x537, 11) ^ 0x5412 == 0b001011010001001  # H, 0
    assert _bch((2 << 3) | 7, 0x537, 11) ^ 0x5412 == 0b000100000111011  # H, 7
    # Version information (Annex D)
    assert _bch(7, 0x1F25, 13) == 0b000111110010010100
    assert _bch(40, 0x1F25, 13) == 0b101000110001101001


def test_capacity_matches_table_7():
    expect = {1: (17, 14, 11, 7), 7: (154, 122, 86, 64), 10: (271, 213, 151, 119),
              40: (2953, 2331, 1663, 1273)}
    for v in expect:
        got = tuple(max_bytes(v, e) for e in "LMQH")
        assert got == expect[v], (v, got)


def test_known_matrix_small():
    version, mask, g = encode("sip:alice@example.org", "M", mask=2)
    assert (version, mask) == (2, 2)
    assert ["".join("#" if v else "." for v in row) for row in g] == list(SIP_ALICE_M2)


def test_known_matrix_digests():
    cases = (
        (PROVISION_URL, "M", None, 5, 7, "c284b7bf062c4486a64c72265b9d9a1118df950ab5d314f38ec479980c56b24d"),
        ("gr\u00fc\u00dfe \U0001F600 \u260E", "H", 7, 3, 7,
         "f3e75788b7b44fbc695f8ac2a9d40fbb73f403d26551b5f69be1953121aa0f14"),
        (bytes(range(256)) * 2, "Q", None, 6, 22, "89fef5fe596fa053c22dcfb9ca8d4b7b54823f2cafbc8f5c273ae6b336590563"),
    )
    for data, ecc, want_version, mask, version, digest in cases:
        v, m, g = encode(data, ecc, version=want_version, mask=mask)
        assert (v, m) == (version, mask)
        assert _digest(g) == digest, (version, ecc)
        _check_structure(g, v, ecc, m)


def test_structure_with_chosen_mask():
    for text, ecc in (("a", "L"), ("sip:bob@example.net", "Q"), (PROVISION_URL, "M"), ("x" * 119, "H")):
        version, mask, g = encode(text, ecc)
        _check_structure(g, version, ecc, mask)


def test_version_selection_and_limits():
    assert encode(PROVISION_URL, "M")[0] == 7  # a ~120 character provisioning link fits version 7-M
    for ecc in "LMQH":
        for v in (1, 9, 10):
            n = max_bytes(v, ecc)
            assert encode(b"z" * n, ecc, mask=0)[0] == v
            assert encode(b"z" * (n + 1), ecc, mask=0)[0] == v + 1
    assert encode("", "M", mask=0)[0] == 1


def test_too_long_and_bad_arguments_raise_value_error():
    for ecc, n in (("L", 2954), ("H", 1274)):
        try:
            qr_matrix("a" * n, ecc)
        except ValueError as e:
            assert "too long" in str(e) and str(n) in str(e)
        else:
            raise AssertionError("no error for %d bytes at %s" % (n, ecc))
    try:
        encode("\u00e9" * 8, "M", version=1)  # 16 bytes in UTF-8, version 1-M holds 14
    except ValueError as e:
        assert "16 bytes" in str(e)
    else:
        raise AssertionError("no error for a too long version 1 text")
    for kwargs in ({"ecc": "X"}, {"ecc": "m"}, {"mask": 8}, {"version": 41}, {"version": 0}):
        try:
            encode("abc", **kwargs)
        except ValueError:
            pass
        else:
            raise AssertionError(kwargs)
    for scale in (0, -1, 1.5, "4"):
        try:
            qr_svg("abc", scale=scale)
        except ValueError:
            pass
        else:
            raise AssertionError(scale)


def test_penalty_rules_on_handmade_grids():
    size = 21
    light = [bytearray(size) for _ in range(size)]
    # rule 1: 42 lines with a run of 21 -> 42 * (3 + 16); rule 2: 400 blocks * 3; rule 4: 0% dark -> 10 * 10
    assert penalty(light) == 42 * 19 + 400 * 3 + 100
    checker = [bytearray((x + y) & 1 for x in range(size)) for y in range(size)]
    assert penalty(checker) == 0  # no runs, no blocks, no finder-like pattern, 220/441 dark
    # Row 10 becomes 1011101 then 14 light: a finder-like pattern (40, light on both sides) and a
    # run of 14 light (3 + 9); columns through it keep runs of at most 3, no 2x2 block appears,
    # 215/441 dark is within 5% of half.
    checker[10] = bytearray(b"\x01\x00\x01\x01\x01\x00\x01" + b"\x00" * 14)
    assert penalty(checker) == 40 + 12
    # 1011101 at the left edge, then alternating: only the quiet zone is light beside it.
    checker[10] = bytearray(b"\x01\x00\x01\x01\x01\x00\x01" + bytes((x + 1) & 1 for x in range(7, 21)))
    assert penalty(checker) == 40
    # The same 1:1:3:1:1 pattern with a dark module right before and after it is not finder-like.
    row = bytearray((x + 1) & 1 for x in range(size))
    row[4:13] = b"\x01\x01\x00\x01\x01\x01\x00\x01\x01"
    checker[10] = row
    assert penalty(checker) == 0


def test_chosen_mask_has_least_penalty():
    text = "sip:carol@example.com;transport=tls"
    version, mask, g = encode(text, "Q")
    scores = [penalty(encode(text, "Q", mask=m)[2]) for m in range(8)]
    assert scores[mask] == min(scores)
    assert scores.index(min(scores)) == mask  # the first of equal scores wins
    assert g == encode(text, "Q", mask=mask)[2]


def test_text_is_utf8():
    s = "sip:j\u00fcrgen@b\u00e4r.example"
    assert encode(s, "M", mask=4) == encode(s.encode("utf-8"), "M", mask=4)


def test_qr_matrix_is_bools_without_quiet_zone():
    m = qr_matrix("sip:alice@example.org")
    assert len(m) == 25 and all(len(r) == 25 for r in m)
    assert all(v is True or v is False for r in m for v in r)
    assert m[0][:7] == [True] * 7 and m[7][:8] == [False] * 8
    assert m == [[v == 1 for v in r] for r in encode("sip:alice@example.org", "M")[2]]


def test_qr_svg_draws_the_matrix():
    text = PROVISION_URL
    m = qr_matrix(text, "M")
    svg = qr_svg(text, scale=3, ecc="M")
    size = len(m)
    full = size + 8
    assert svg.startswith('<svg xmlns="http://www.w3.org/2000/svg" ')
    assert svg.endswith("</svg>")
    assert svg.count("<path") == 1 and svg.count("http") == 1  # no external reference
    assert ('width="%d" height="%d" viewBox="0 0 %d %d"' % (full * 3, full * 3, full, full)) in svg
    d = svg.split(' d="')[1].split('"')[0]
    drawn = [[False] * size for _ in range(size)]
    for cmd in d.split("M")[1:]:  # "x yhNv1h-Nz" per run of dark modules
        xy, rest = cmd.split("h", 1)
        x, y = xy.split(" ")
        n = int(rest.split("v")[0])
        assert rest == "%dv1h-%dz" % (n, n)
        x = int(x) - 4
        y = int(y) - 4
        assert 0 <= x and x + n <= size and 0 <= y < size  # inside the quiet zone border
        for i in range(x, x + n):
            assert not drawn[y][i]
            drawn[y][i] = True
    assert drawn == m
    assert len(qr_svg("a", scale=1)) < 2000
