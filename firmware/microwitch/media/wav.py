"""WAV files for --play/--record: 8 kHz, mono, 16-bit PCM only (what G.711 carries).

WavReader(f) / WavWriter(f) work on binary file objects the caller opens (the writer needs seek() to
fill in the sizes at close). Anything else raises WavError with a message naming the field that is
wrong, e.g. "sample rate is 44100 Hz, need 8000 Hz".
"""
from struct import pack, unpack

from microwitch.compat import const

RATE = const(8000)
_PCM = const(1)
_EXTENSIBLE = const(0xFFFE)
_MAX_CHUNKS = const(64)  # chunks skipped before "data" before giving up on a file


class WavError(ValueError):
    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


def _read_exact(f, n, what):
    b = f.read(n)
    if b is None or len(b) < n:
        raise WavError("file ends inside the %s" % what)
    return b


class WavReader:
    """Reads the PCM frames of an 8 kHz mono 16-bit WAV file: read(n_samples) -> little-endian bytes."""

    def __init__(self, f):
        self._f = f
        head = f.read(12)
        if head is None or len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            raise WavError("not a WAV file (no RIFF/WAVE header)")
        fmt = None
        for _ in range(_MAX_CHUNKS):
            cid, size = unpack("<4sI", _read_exact(f, 8, "chunk header"))
            if cid == b"fmt ":
                if size < 16:
                    raise WavError("fmt chunk too short (%d bytes)" % size)
                fmt = _read_exact(f, size + (size & 1), "fmt chunk")
                self._check_fmt(fmt)
            elif cid == b"data":
                if fmt is None:
                    raise WavError("data chunk before the fmt chunk")
                self.remaining = size & ~1
                self.samples = size >> 1
                return
            else:
                _read_exact(f, size + (size & 1), "%s chunk" % cid.decode("latin-1"))
        raise WavError("no data chunk in the first %d chunks" % _MAX_CHUNKS)

    @staticmethod
    def _check_fmt(fmt):
        tag, channels, rate, _, align, bits = unpack("<HHIIHH", fmt[:16])
        if tag == _EXTENSIBLE and len(fmt) >= 26:
            tag = unpack("<H", fmt[24:26])[0]  # the sub-format GUID starts with the format code
        if tag != _PCM:
            raise WavError("audio format is %d, need 1 (PCM)" % tag)
        if channels != 1:
            raise WavError("%d channels, need 1 (mono)" % channels)
        if rate != RATE:
            raise WavError("sample rate is %d Hz, need 8000 Hz" % rate)
        if bits != 16:
            raise WavError("%d bits per sample, need 16" % bits)
        if align != 2:
            raise WavError("block align is %d, need 2" % align)

    def read(self, samples):
        """Up to `samples` samples (2 bytes each); b"" at the end."""
        n = min(samples * 2, self.remaining)
        if n <= 0:
            return b""
        b = self._f.read(n) or b""
        b = b[:len(b) & ~1]
        self.remaining = 0 if len(b) < n else self.remaining - n
        return b


class WavWriter:
    """Writes an 8 kHz mono 16-bit WAV file: write(pcm bytes) ..., then close() fills in the sizes."""

    def __init__(self, f):
        self._f = f
        self.samples = 0
        f.write(self._header(0))

    @staticmethod
    def _header(data_bytes):
        return (b"RIFF" + pack("<I", 36 + data_bytes) + b"WAVE" + b"fmt " + pack("<IHHIIHH", 16, _PCM, 1, RATE,
                2 * RATE, 2, 16) + b"data" + pack("<I", data_bytes))

    def write(self, pcm):
        if len(pcm) & 1:
            raise WavError("PCM to write must be whole 16-bit samples")
        self._f.write(pcm)
        self.samples += len(pcm) >> 1

    def close(self):
        """Rewrite the header with the final sizes (the file stays open: the caller closes it)."""
        self._f.seek(0)
        self._f.write(self._header(2 * self.samples))
        self._f.seek(0, 2)
        self._f.flush()
