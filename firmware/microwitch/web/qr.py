"""QR code encoder (ISO/IEC 18004:2015): byte mode (UTF-8), versions 1-40, levels L/M/Q/H.

The provisioning page draws its QR codes itself (no network service may see the links).

    qr_matrix(text, ecc="M") -> rows of bools, True = dark, no quiet zone
    qr_svg(text, scale=4, ecc="M") -> standalone SVG text, 4-module quiet zone, one <path>
    encode(data, ecc="M", version=None, mask=None) -> (version, mask, rows of bytearray 0/1)

Too long a text raises ValueError. No ECI header is written: readers take byte mode as UTF-8 or
Latin-1, and provisioning URLs are ASCII.
"""
from microwitch.compat import const

_MAX_VERSION = const(40)
_QUIET_ZONE = const(4)  # light modules around the symbol (§9.1)
_PAD_A = const(0xEC)  # pad codewords, alternating (§7.4.10)
_PAD_B = const(0x11)
_GF_POLY = const(0x11D)  # x^8 + x^4 + x^3 + x^2 + 1 (§7.5.2)
_FORMAT_POLY = const(0x537)  # BCH(15,5) generator (Annex C)
_FORMAT_XOR = const(0x5412)  # keeps the format information from being all light (Annex C)
_VERSION_POLY = const(0x1F25)  # BCH(18,6) generator (Annex D)
_N1 = const(3)  # mask penalty weights (§7.8.3, Table 11)
_N2 = const(3)
_N3 = const(40)
_N4 = const(10)

# Level -> (format bits, column in the tables below) (§7.9.1, Table 12)
_LEVELS = {"L": (1, 0), "M": (0, 1), "Q": (3, 2), "H": (2, 3)}

# Table 9, indexed by version (index 0 unused): error correction codewords per block ...
_EC_PER_BLOCK = (
    bytes((0, 7, 10, 15, 20, 26, 18, 20, 24, 30, 18, 20, 24, 26, 30, 22, 24, 28, 30, 28, 28,
           28, 28, 30, 30, 26, 28, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30)),
    bytes((0, 10, 16, 26, 18, 24, 16, 18, 22, 22, 26, 30, 22, 22, 24, 24, 28, 28, 26, 26, 26,
           26, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28)),
    bytes((0, 13, 22, 18, 26, 18, 24, 18, 22, 20, 24, 28, 26, 24, 20, 30, 24, 28, 28, 26, 30,
           28, 30, 30, 30, 30, 28, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30)),
    bytes((0, 17, 28, 22, 16, 22, 28, 26, 26, 24, 28, 24, 28, 22, 24, 24, 30, 28, 28, 26, 28,
           30, 24, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30)),
)
# ... and number of error correction blocks.
_NUM_BLOCKS = (
    bytes((0, 1, 1, 1, 1, 1, 2, 2, 2, 2, 4, 4, 4, 4, 4, 6, 6, 6, 6, 7, 8,
           8, 9, 9, 10, 12, 12, 12, 13, 14, 15, 16, 17, 18, 19, 19, 20, 21, 22, 24, 25)),
    bytes((0, 1, 1, 1, 2, 2, 4, 4, 4, 5, 5, 5, 8, 9, 9, 10, 10, 11, 13, 14, 16,
           17, 17, 18, 20, 21, 23, 25, 26, 28, 29, 31, 33, 35, 37, 38, 40, 43, 45, 47, 49)),
    bytes((0, 1, 1, 2, 2, 4, 4, 6, 6, 8, 8, 8, 10, 12, 16, 12, 17, 16, 18, 21, 20,
           23, 23, 25, 27, 29, 34, 34, 35, 38, 40, 43, 45, 48, 51, 53, 56, 59, 62, 65, 68)),
    bytes((0, 1, 1, 2, 4, 4, 4, 5, 6, 8, 8, 11, 11, 16, 16, 18, 16, 19, 21, 25, 25,
           25, 34, 30, 32, 35, 37, 40, 42, 45, 48, 51, 54, 57, 60, 63, 66, 70, 74, 77, 81)),
)

# GF(256) antilog/log tables; _EXP is doubled so a product needs no modulo.
_EXP = bytearray(512)
_LOG = bytearray(256)
_x = 1
for _i in range(255):
    _EXP[_i] = _x
    _LOG[_x] = _i
    _x <<= 1
    if _x & 0x100:
        _x ^= _GF_POLY
for _i in range(255, 512):
    _EXP[_i] = _EXP[_i - 255]
del _x, _i

_generators = {}  # EC codeword count -> generator polynomial; at most 13 distinct counts in Table 9


def _generator(degree):
    """Coefficients (highest first, leading 1 dropped) of prod(x - a^i), i < degree (§7.5.2)."""
    g = _generators.get(degree)
    if g is None:
        poly = bytearray((1,))
        for i in range(degree):
            nxt = bytearray(len(poly) + 1)
            for j in range(len(poly)):
                c = poly[j]
                nxt[j] ^= c  # c * x
                if c:
                    nxt[j + 1] ^= _EXP[_LOG[c] + i]  # c * a^i
            poly = nxt
        g = poly[1:]
        _generators[degree] = g
    return g


def rs_ec(data, n):
    """The n Reed-Solomon error correction codewords for `data`: remainder of data*x^n / g(x)."""
    gen = _generator(n)
    rem = bytearray(n)
    last = n - 1
    for b in data:
        factor = b ^ rem[0]
        for i in range(last):
            rem[i] = rem[i + 1]
        rem[last] = 0
        if factor:
            lf = _LOG[factor]
            for i in range(n):
                g = gen[i]
                if g:
                    rem[i] ^= _EXP[lf + _LOG[g]]
    return rem


def _bch(value, poly, poly_bits):
    """value << (poly_bits-1) with the remainder modulo poly appended (Annex C, D); value < 64."""
    shift = poly_bits - 1
    rem = value << shift
    for i in range(shift + 5, shift - 1, -1):
        if (rem >> i) & 1:
            rem ^= poly << (i - shift)
    return (value << shift) | rem


def _alignment_positions(version):
    """Row/column centres of the alignment patterns (Annex E): evenly spaced from the last one back
    to 6 with an even step, except version 32 whose step the table gives as 26."""
    if version == 1:
        return ()
    count = version // 7 + 2
    last = version * 4 + 10
    if version == 32:
        step = 26
    else:
        step = (last - 6 + count - 2) // (count - 1)  # ceiling
        step += step & 1
    pos = [6]
    for i in range(count - 2, -1, -1):
        pos.append(last - i * step)
    return pos


def _capacity(version, level):
    """(data codewords, EC codewords per block, number of blocks, total codewords)."""
    size = version * 4 + 17
    modules = size * size - 192 - 2 * (size - 16) - 31  # finders+separators+format, timing, format+dark
    n = len(_alignment_positions(version))
    if n:
        modules -= 25 * (n * n - 3) - 10 * (n - 2)  # alignment patterns, less their timing overlap
    if version >= 7:
        modules -= 36  # two version information blocks
    total = modules >> 3
    ec = _EC_PER_BLOCK[level][version]
    blocks = _NUM_BLOCKS[level][version]
    return total - ec * blocks, ec, blocks, total


def _count_bits(version):
    return 8 if version < 10 else 16  # byte mode character count indicator (Table 3)


def max_bytes(version, ecc="M"):
    """How many bytes of data fit in `version` at level `ecc` (Table 7, byte mode)."""
    data = _capacity(version, _level(ecc)[1])[0]
    return (data * 8 - 4 - _count_bits(version)) >> 3


def _level(ecc):
    lv = _LEVELS.get(ecc)
    if lv is None:
        raise ValueError("QR error correction level must be L, M, Q or H, not %r" % (ecc,))
    return lv


def _codewords(data, version, level):
    """Mode, count, data, terminator and pad, split in blocks with their EC, interleaved (§7.4-7.6)."""
    ndata, ec, nblocks, total = _capacity(version, level)
    cbits = _count_bits(version)
    # Byte mode: 4-bit mode 0100, the count, then the bytes; everything after the header is shifted by
    # 4 bits when the count is 8 or 16 bits long, so build the stream a byte at a time.
    n = len(data)
    out = bytearray(ndata)
    if cbits == 8:
        head = (0x4 << 8) | n  # 12 bits
    else:
        head = (0x4 << 16) | n  # 20 bits
    out[0] = head >> (cbits - 4)
    if cbits == 16:
        out[1] = (head >> 4) & 0xFF
    carry = head & 0xF  # low 4 bits of the header, waiting for the first data nibble
    k = 1 if cbits == 8 else 2
    for b in data:
        out[k] = (carry << 4) | (b >> 4)
        carry = b & 0xF
        k += 1
    out[k] = carry << 4  # last nibble plus the 4-bit terminator (0000) fill this byte
    k += 1
    pad = _PAD_A
    while k < ndata:
        out[k] = pad
        pad ^= _PAD_A ^ _PAD_B
        k += 1
    # Short blocks first; the last (ndata % nblocks) blocks carry one more data codeword (§7.6).
    short = ndata // nblocks
    nlong = ndata % nblocks
    blocks = []
    ecs = []
    at = 0
    for i in range(nblocks):
        size = short + (1 if i >= nblocks - nlong else 0)
        blk = out[at:at + size]
        at += size
        blocks.append(blk)
        ecs.append(rs_ec(blk, ec))
    res = bytearray()
    for i in range(short + 1):
        for blk in blocks:
            if i < len(blk):
                res.append(blk[i])
    for i in range(ec):
        for e in ecs:
            res.append(e[i])
    if len(res) != total:
        raise RuntimeError("QR codeword count mismatch")  # a table error, never the input
    return res


def _function_patterns(version):
    """The grid with finder, separator, timing, alignment, dark module and version information
    drawn, and a second grid that marks those modules plus the format areas as reserved."""
    size = version * 4 + 17
    grid = [bytearray(size) for _ in range(size)]
    fixed = [bytearray(size) for _ in range(size)]

    def put(x, y, dark):
        grid[y][x] = 1 if dark else 0
        fixed[y][x] = 1

    for i in range(size):  # timing patterns (§6.3.5)
        put(6, i, i % 2 == 0)
        put(i, 6, i % 2 == 0)
    for cx, cy in ((3, 3), (size - 4, 3), (3, size - 4)):  # finders with separators (§6.3.3-6.3.4)
        for dy in range(-4, 5):
            for dx in range(-4, 5):
                x = cx + dx
                y = cy + dy
                if 0 <= x < size and 0 <= y < size:
                    d = max(abs(dx), abs(dy))
                    put(x, y, d != 2 and d != 4)
    pos = _alignment_positions(version)  # alignment patterns (§6.3.6), not over the finders
    n = len(pos)
    for i in range(n):
        for j in range(n):
            if (i == 0 and (j == 0 or j == n - 1)) or (i == n - 1 and j == 0):
                continue
            for dy in range(-2, 3):
                for dx in range(-2, 3):
                    put(pos[i] + dx, pos[j] + dy, max(abs(dx), abs(dy)) != 1)
    for i in range(9):  # format information areas (§7.9.1), written per mask
        fixed[8][i] = 1
        fixed[i][8] = 1
    for i in range(8):
        fixed[8][size - 1 - i] = 1
        fixed[size - 1 - i][8] = 1
    put(8, size - 8, True)  # the dark module
    if version >= 7:  # version information (§7.10), 6x3 blocks by two finders
        bits = _bch(version, _VERSION_POLY, 13)
        for i in range(18):
            dark = (bits >> i) & 1
            a = size - 11 + i % 3
            b = i // 3
            put(a, b, dark)
            put(b, a, dark)
    return grid, fixed


def _place_data(grid, fixed, codewords):
    """Codeword bits in the two-column zigzag from the bottom right, skipping the vertical timing
    column; modules left over are remainder bits, 0 (§7.7.3)."""
    size = len(grid)
    nbits = len(codewords) * 8
    i = 0
    right = size - 1
    while right >= 1:
        if right == 6:
            right = 5
        upward = ((right + 1) & 2) == 0
        for vert in range(size):
            y = size - 1 - vert if upward else vert
            row = grid[y]
            frow = fixed[y]
            for x in (right, right - 1):
                if not frow[x]:
                    if i < nbits:
                        row[x] = (codewords[i >> 3] >> (7 - (i & 7))) & 1
                    i += 1
        right -= 2


# Data mask conditions (§7.8.2, Table 10): module at row i, column j is inverted when true.
_MASKS = (
    lambda i, j: (i + j) % 2 == 0,
    lambda i, j: i % 2 == 0,
    lambda i, j: j % 3 == 0,
    lambda i, j: (i + j) % 3 == 0,
    lambda i, j: (i // 2 + j // 3) % 2 == 0,
    lambda i, j: (i * j) % 2 + (i * j) % 3 == 0,
    lambda i, j: ((i * j) % 2 + (i * j) % 3) % 2 == 0,
    lambda i, j: ((i + j) % 2 + (i * j) % 3) % 2 == 0,
)


def _masked(grid, fixed, mask, fmt_level):
    """A copy of `grid` with data mask `mask` applied and the format information written."""
    size = len(grid)
    cond = _MASKS[mask]
    out = []
    for i in range(size):
        row = bytearray(grid[i])
        frow = fixed[i]
        for j in range(size):
            if not frow[j] and cond(i, j):
                row[j] ^= 1
        out.append(row)
    bits = _bch((fmt_level << 3) | mask, _FORMAT_POLY, 11) ^ _FORMAT_XOR
    for i in range(15):  # bit 0 is the least significant; positions as in §7.9.1 Figure 25
        b = (bits >> i) & 1
        # copy by the top-left finder
        if i < 6:
            out[i][8] = b
        elif i < 8:
            out[i + 1][8] = b
        elif i == 8:
            out[8][7] = b
        else:
            out[8][14 - i] = b
        # copy split between the other two finders
        if i < 8:
            out[8][size - 1 - i] = b
        else:
            out[size - 15 + i][8] = b
    return out


_LIGHT4 = b"\x00\x00\x00\x00"
_FINDER_LIKE = b"\x01\x00\x01\x01\x01\x00\x01"


def _line_penalty(line):
    """Rules 1 and 3 of §7.8.3 on one row or column (bytes of 0/1)."""
    score = 0
    run = 1
    prev = line[0]
    for k in range(1, len(line)):
        v = line[k]
        if v == prev:
            run += 1
        else:
            if run >= 5:
                score += _N1 + run - 5
            run = 1
            prev = v
    if run >= 5:
        score += _N1 + run - 5
    # 1:1:3:1:1 dark:light:dark:light:dark with 4 light modules on either side; beyond the
    # symbol is the light quiet zone. Each such pattern counts once.
    padded = _LIGHT4 + line + _LIGHT4
    k = padded.find(_FINDER_LIKE)
    while k >= 0:
        if padded[k - 4:k] == _LIGHT4 or padded[k + 7:k + 11] == _LIGHT4:
            score += _N3
        k = padded.find(_FINDER_LIKE, k + 1)
    return score


def penalty(grid):
    """Mask penalty score of a finished symbol (§7.8.3): runs, 2x2 blocks, finder-like patterns,
    dark/light balance. Lower is better."""
    size = len(grid)
    score = 0
    dark = 0
    for y in range(size):
        row = grid[y]
        dark += sum(row)
        score += _line_penalty(bytes(row))
        if y + 1 < size:
            nxt = grid[y + 1]
            for x in range(size - 1):
                v = row[x]
                if v == row[x + 1] and v == nxt[x] and v == nxt[x + 1]:
                    score += _N2
    col = bytearray(size)
    for x in range(size):
        for y in range(size):
            col[y] = grid[y][x]
        score += _line_penalty(bytes(col))
    total = size * size
    score += _N4 * (abs(dark * 20 - total * 10) // total)  # each full 5% away from half dark
    return score


def encode(data, ecc="M", version=None, mask=None):
    """Encode `data` (str as UTF-8, or bytes) in the smallest version that fits (or `version`),
    with the mask of least penalty (or `mask`). Returns (version, mask, rows of bytearray 0/1)."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    fmt_level, level = _level(ecc)
    n = len(data)
    if version is None:
        for v in range(1, _MAX_VERSION + 1):
            if n <= max_bytes(v, ecc):
                version = v
                break
        else:
            raise ValueError("text too long for a QR code at level %s: %d bytes, at most %d"
                             % (ecc, n, max_bytes(_MAX_VERSION, ecc)))
    elif not 1 <= version <= _MAX_VERSION:
        raise ValueError("QR version must be 1..40, not %r" % (version,))
    elif n > max_bytes(version, ecc):
        raise ValueError("text too long for QR version %d at level %s: %d bytes, at most %d"
                         % (version, ecc, n, max_bytes(version, ecc)))
    if mask is not None and not 0 <= mask <= 7:
        raise ValueError("QR mask must be 0..7, not %r" % (mask,))
    grid, fixed = _function_patterns(version)
    _place_data(grid, fixed, _codewords(data, version, level))
    if mask is not None:
        return version, mask, _masked(grid, fixed, mask, fmt_level)
    best = None
    best_score = 0
    best_mask = 0
    for m in range(8):
        cand = _masked(grid, fixed, m, fmt_level)
        s = penalty(cand)
        if best is None or s < best_score:
            best, best_score, best_mask = cand, s, m
    return version, best_mask, best


def qr_matrix(text, ecc="M"):
    """The QR symbol for `text` as rows of bools (True = dark), without the quiet zone."""
    rows = encode(text, ecc)[2]
    return [[v == 1 for v in row] for row in rows]


def qr_svg(text, scale=4, ecc="M"):
    """A standalone SVG of the QR symbol for `text`: `scale` pixels per module, a 4-module light
    quiet zone, the dark modules as one path of horizontal runs."""
    if not isinstance(scale, int) or scale < 1:
        raise ValueError("QR scale must be a whole number of pixels >= 1, not %r" % (scale,))
    rows = encode(text, ecc)[2]
    size = len(rows)
    full = size + 2 * _QUIET_ZONE
    px = full * scale
    parts = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d"'
             ' shape-rendering="crispEdges"><rect width="%d" height="%d" fill="#fff"/><path d="'
             % (px, px, full, full, full, full)]
    for y in range(size):
        row = rows[y]
        x = 0
        while x < size:
            if row[x]:
                start = x
                while x < size and row[x]:
                    x += 1
                parts.append("M%d %dh%dv1h-%dz" % (start + _QUIET_ZONE, y + _QUIET_ZONE,
                                                    x - start, x - start))
            else:
                x += 1
    parts.append('" fill="#000"/></svg>')
    return "".join(parts)
