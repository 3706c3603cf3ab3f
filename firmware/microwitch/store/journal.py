"""Append-only key/value journal with checksummed records and compaction.

Record on disk: 4-byte big-endian payload length, payload, 4-byte big-endian CRC-32 of the payload.
Payload: compact JSON `[key, value]`; `value` null deletes `key`. Loading replays records in order and stops
at the first record that is short (torn write) or fails its length bound, CRC or JSON check: every record
before it is kept, it and anything after it are dropped. A loader that may write (`repair=True`) then rewrites
the file from the live set at once, so later appends never land behind garbage.

Compaction writes the live set (from the owner's `snapshot()` callable) to a temp file, fsyncs it and renames
it over the journal (the backend's `replace`); it runs when the journal is larger than `factor` times the live
set and larger than `min_bytes`.
"""
import json
import struct
from binascii import crc32

from microwitch.compat import const

# payload bytes; a longer length field is corruption, not a record. Sized for the largest AoR the registrar
# accepts (100 contacts of its bounded size, see node/registrar.py); a sanity bound, never preallocated.
MAX_RECORD = const(262144)
COMPACT_FACTOR = const(4)  # compact when journal > factor * live bytes ...
COMPACT_MIN = const(8192)  # ... and journal > this many bytes (tiny journals are not worth rewriting)
_FRAME = const(8)  # length + crc bytes around each payload


def _dumps(obj):
    return json.dumps(obj, separators=(",", ":"))


def encode_record(key, value):
    """Bytes of one journal record for `key` -> `value` (None = delete)."""
    p = _dumps([key, value]).encode()
    if len(p) > MAX_RECORD:
        raise ValueError("journal record too large (%d bytes)" % len(p))
    return struct.pack(">I", len(p)) + p + struct.pack(">I", crc32(p) & 0xFFFFFFFF)


def _read_exact(reader, n):
    # a file read may return fewer bytes than asked before EOF on some ports: loop until EOF
    out = b""
    while len(out) < n:
        chunk = reader.read(n - len(out))
        if not chunk:
            break
        out += chunk
    return out


class Journal:
    """One journal file `name` on `backend`; `snapshot()` yields the owner's live (key, value) pairs."""

    def __init__(self, backend, name, snapshot, factor=COMPACT_FACTOR, min_bytes=COMPACT_MIN):
        self.backend = backend
        self.name = name
        self._snapshot = snapshot
        self.factor = factor
        self.min_bytes = min_bytes
        self.size = 0  # bytes of valid records in the file
        self._sizes = {}  # key -> bytes of its latest record (live-size accounting)
        self.live = 0
        self.dropped = 0  # bytes of torn/corrupt tail ignored by the last load
        self.writes = 0  # appends + compactions since creation (tests and benchmarks count these)
        self.compactions = 0
        self._tail_bad = False

    # -- load ------------------------------------------------------------------------------------------
    def load(self, repair=True):
        """Replay the journal; return {key: value}. Never raises on bad content (backend errors do raise)."""
        state = {}
        self._sizes = {}
        self.live = 0
        self.size = 0
        self.dropped = 0
        self._tail_bad = False
        r = self.backend.open_read(self.name)
        if r is None:
            return state
        try:
            off = 0
            while True:
                hdr = _read_exact(r, 4)
                if not hdr:
                    break
                got = len(hdr)
                bad = got < 4
                if not bad:
                    n = struct.unpack(">I", hdr)[0]
                    bad = n == 0 or n > MAX_RECORD
                if not bad:
                    p = _read_exact(r, n)
                    t = _read_exact(r, 4)
                    got += len(p) + len(t)
                    bad = len(p) < n or len(t) < 4 or struct.unpack(">I", t)[0] != crc32(p) & 0xFFFFFFFF
                if not bad:
                    rec = self._decode(p)
                    bad = rec is None
                if bad:
                    self._tail_bad = True
                    # count what is dropped (bounded read), for the log
                    self.dropped = got + len(_read_exact(r, MAX_RECORD))
                    break
                key, value = rec
                size = n + _FRAME
                off += size
                if value is None:
                    if key in state:
                        del state[key]
                        self.live -= self._sizes.pop(key)
                else:
                    state[key] = value
                    self.live += size - self._sizes.get(key, 0)
                    self._sizes[key] = size
            self.size = off
        finally:
            r.close()
        if self._tail_bad and repair:
            self._rewrite(state.items())
        return state

    def _decode(self, p):
        try:
            rec = json.loads(p.decode())
        except (ValueError, UnicodeError):
            return None
        if not isinstance(rec, list) or len(rec) != 2 or not isinstance(rec[0], str):
            return None
        return rec

    # -- write -----------------------------------------------------------------------------------------
    def put(self, key, value):
        """Record key -> value (value None deletes); durable after the backend's next sync(). Compacts
        afterwards when due."""
        rec = encode_record(key, value)
        if self._tail_bad:
            # a read-only load left garbage at the end: rewrite before appending behind it
            self._rewrite(self._snapshot())
        self.backend.append(self.name, rec)
        self.writes += 1
        self.size += len(rec)
        old = self._sizes.pop(key, 0)
        self.live -= old
        if value is not None:
            self._sizes[key] = len(rec)
            self.live += len(rec)
        if self.due():
            self._rewrite(self._overlay(key, value))

    def _overlay(self, key, value):
        """The owner's live set with this put applied. Owners update their own table after put() returns, so
        a compaction inside put must add the change itself, or it would lose a new key or bring a deleted
        one back."""
        for k, v in self._snapshot():
            if k != key:
                yield k, v
        if value is not None:
            yield key, value

    def delete(self, key):
        self.put(key, None)

    def forget(self, key):
        """The owner dropped `key` without a write (e.g. an expired entry): stop counting it as live."""
        self.live -= self._sizes.pop(key, 0)

    def due(self):
        return self.size > self.min_bytes and self.size > self.factor * self.live

    def compact(self):
        """Rewrite the journal from the owner's live set (temp file, fsync, rename)."""
        self._rewrite(self._snapshot())

    def _rewrite(self, items):
        sizes = {}
        total = [0]

        def records():
            for key, value in items:
                rec = encode_record(key, value)
                sizes[key] = len(rec)
                total[0] += len(rec)
                yield rec

        self.backend.replace(self.name, records())
        self.writes += 1
        self.compactions += 1
        self._sizes = sizes
        self.live = total[0]
        self.size = total[0]
        self._tail_bad = False
