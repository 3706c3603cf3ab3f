"""Append-only key/value journal with checksummed records and compaction.

Record on disk: 4-byte big-endian payload length, payload, 4-byte big-endian CRC-32 of the payload.
Payload: compact JSON `[key, value]`; `value` null deletes `key`. Loading replays records in order and stops
at the first record that is short (torn write) or fails its length bound, CRC or JSON check: every record
before it is kept, it and anything after it are dropped. A single-writer loader that may write (`repair=True`)
then rewrites the file from the live set at once, so later appends never land behind garbage; any other
writer rewrites before its next append instead.

Compaction writes the live set (from the owner's `snapshot()` callable) to a temp file, fsyncs it and renames
it over the journal (the backend's `replace`); it runs when the journal is larger than `factor` times the live
set and larger than `min_bytes`. Every file a shared journal rewrites starts with a generation record
(reserved key "", a random token): it names the file, so a handle can tell "the file grew" from "the file
was replaced".

Shared journals (several handles, possibly in several processes, write one file: the CLI and the web page on
users.journal and pbx.journal; the owner passes `merge`). A handle never writes from a view older than the
file:
- before each change the owner calls `catch_up()`: if the file still has the generation this handle read,
  the records others appended since are replayed into the owner (`merge(records)`); if it was replaced,
  the owner reloads it (`merge(None)`);
- an append opens the file read+append, checks the generation through that same handle, writes the record
  in one write call (O_APPEND puts it at the end even when others append at once), and replays the records
  that others slipped in between this handle's offset and its own record (the file position after the
  write says where the record landed);
- compaction takes the backend's lock (one compactor at a time; a writer that finds it taken skips its
  compaction, which is only an optimisation), replays everything new, rewrites from the merged live set and,
  just before the rename, adds what others appended to the old file meanwhile;
- after its append a writer waits until no compaction runs, then checks the generation again: unchanged,
  the record is in the journal and every later compaction reads it; changed (a compaction renamed a new file
  in after the record's last chance to be read), it reloads and appends the record again unless it is there.
So a change is in the journal, and seen by every handle's next catch-up, once put() returns.
What is left: (1) two writers changing the *same* key at the same moment end in either order (both are
valid outcomes of overlapping changes); (2) on filesystems where rename cannot replace a file (FAT) the old
file is removed before the rename: a reader in another process at that instant finds the temp file and
finishes the rename itself; those boards run one process; (3) a writer killed mid-compaction leaves its
lock: others wait up to files.LOCK_STALE_S for it once, then ignore and break it (a live compaction slower
than that loses its temp file to the breaker and gives up, CompactionLost, the journal intact); two writers
breaking the same stale lock at the same instant could both compact, and an append between their renames
could then be lost; (4) a record is atomic against other appenders when the OS writes it in one piece: POSIX O_APPEND
does for one write() to a regular file (a user record is ~200 bytes). A reader may see a record
half-copied if it crosses a page boundary mid-write: it stops there as at a torn tail, and the writer that
then repairs the file takes the lock, so the record's own writer either sees it carried into the new file
or appends it again.
Bindings are written by the node alone and stay a single-writer journal (no generation record, no checks).
"""
import json
import struct
from binascii import crc32, hexlify

from microwitch.compat import const, random_bytes
from microwitch.store import CompactionLost

# payload bytes; a longer length field is corruption, not a record. Sized for the largest AoR the registrar
# accepts (100 contacts of its bounded size, see node/registrar.py); a sanity bound, never preallocated.
MAX_RECORD = const(262144)
COMPACT_FACTOR = const(4)  # compact when journal > factor * live bytes ...
COMPACT_MIN = const(8192)  # ... and journal > this many bytes (tiny journals are not worth rewriting)
_FRAME = const(8)  # length + crc bytes around each payload
_GEN = ""  # reserved key of the generation record a rewritten file starts with
_GEN_BYTES = const(8)  # random bytes in a generation token
_MAX_GEN = const(64)  # payload bound of a generation record (read first to name the file)
RETRIES = const(64)  # how often one change is retried when other writers keep replacing the file
_SCAN_BOUND = const(1 << 29)  # records one scan may replay (a loop bound; files end long before)


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


def _decode(p):
    try:
        rec = json.loads(p.decode())
    except (ValueError, UnicodeError):
        return None
    if not isinstance(rec, list) or len(rec) != 2 or not isinstance(rec[0], str):
        return None
    return rec


def _next(reader, limit=-1):
    """(key, value, record bytes) of the next record, None at a clean end, or (None, None, bytes read) for a
    torn or corrupt record. `limit` >= 0 stops after that many bytes."""
    if limit == 0:
        return None
    hdr = _read_exact(reader, 4)
    if not hdr:
        return None
    got = len(hdr)
    if got < 4:
        return None, None, got
    n = struct.unpack(">I", hdr)[0]
    if n == 0 or n > MAX_RECORD or (limit >= 0 and n + _FRAME > limit):
        return None, None, got
    p = _read_exact(reader, n)
    t = _read_exact(reader, 4)
    got += len(p) + len(t)
    if len(p) < n or len(t) < 4 or struct.unpack(">I", t)[0] != crc32(p) & 0xFFFFFFFF:
        return None, None, got
    rec = _decode(p)
    if rec is None:
        return None, None, got
    return rec[0], rec[1], got


def _generation(reader):
    """The generation token the file starts with, or None (no generation record: an appended-only file)."""
    reader.seek(0)
    hdr = _read_exact(reader, 4)
    if len(hdr) < 4:
        return None
    n = struct.unpack(">I", hdr)[0]
    if n == 0 or n > _MAX_GEN:
        return None
    p = _read_exact(reader, n + 4)
    if len(p) < n + 4 or struct.unpack(">I", p[n:])[0] != crc32(p[:n]) & 0xFFFFFFFF:
        return None
    rec = _decode(p[:n])
    if rec is None or rec[0] != _GEN or not isinstance(rec[1], str):
        return None
    return rec[1]


class Journal:
    """One journal file `name` on `backend`; `snapshot()` yields the owner's live (key, value) pairs.

    `merge` makes the journal shared (see the module docstring): `merge(records)` applies [(key, value), ...]
    other writers appended (value None deletes), `merge(None)` makes the owner reload (call `load()`).
    `rand(n)` gives the generation tokens of rewritten files."""

    def __init__(self, backend, name, snapshot, factor=COMPACT_FACTOR, min_bytes=COMPACT_MIN, merge=None,
                 rand=random_bytes):
        self.backend = backend
        self.name = name
        self._snapshot = snapshot
        self._merge = merge
        self._rand = rand
        self.factor = factor
        self.min_bytes = min_bytes
        self.size = 0  # bytes of valid records in the file (this handle's read/write offset)
        self.gen = None  # generation token of the file this handle read or wrote (None: none yet)
        self._sizes = {}  # key -> bytes of its latest record (live-size accounting)
        self.live = 0
        self.dropped = 0  # bytes of torn/corrupt tail ignored by the last load
        self.writes = 0  # appends + compactions since creation (tests and benchmarks count these)
        self.compactions = 0
        self.merged = 0  # records of other writers replayed by catch-up, appends and compactions
        self._tail_bad = False

    # -- load ------------------------------------------------------------------------------------------
    def load(self, repair=True):
        """Replay the journal; return {key: value}. Never raises on bad content (backend errors do raise).
        A shared journal never repairs here (the bad tail may be another writer's record in flight): its next
        put rewrites first."""
        state = {}
        self._sizes = {}
        self.live = 0
        self.size = 0
        self.dropped = 0
        self.gen = None
        self._tail_bad = False
        r = self.backend.open_read(self.name)
        if r is None:
            return state
        try:
            self.gen = _generation(r)
            r.seek(0)
            for _ in range(_SCAN_BOUND):  # bounded by the file: every turn consumes a record
                rec = _next(r)
                if rec is None:
                    break
                key, value, got = rec
                if key is None:
                    self._tail_bad = True
                    # count what is dropped (bounded read), for the log
                    self.dropped = got + len(_read_exact(r, MAX_RECORD))
                    break
                self._account(key, value, got)
                if key == _GEN:
                    continue
                if value is None:
                    state.pop(key, None)
                else:
                    state[key] = value
        finally:
            r.close()
        if self._tail_bad and repair and self._merge is None:
            self._rewrite(state.items())
        return state

    def _account(self, key, value, size):
        self.size += size
        self.live -= self._sizes.pop(key, 0)
        if value is not None:
            self._sizes[key] = size
            self.live += size

    def _tail(self, r):
        """Records after this handle's offset in the open file `r`, or None if `r` is another generation.
        Advances the offset over them; a torn or corrupt record stops the read and marks the tail bad."""
        if _generation(r) != self.gen:
            return None
        r.seek(self.size)
        recs = []
        for _ in range(_SCAN_BOUND):  # bounded by the file
            rec = _next(r)
            if rec is None:
                break
            key, value, got = rec
            if key is None:
                self._tail_bad = True
                break
            self._account(key, value, got)
            if key != _GEN:
                recs.append((key, value))
        return recs

    def catch_up(self):
        """Shared journals: replay into the owner what other writers changed since this handle last read or
        wrote (a replaced file is reloaded whole). Returns True when something changed."""
        if self._merge is None:
            return False
        r = self.backend.open_read(self.name)
        if r is None:
            if self.size == 0:
                return False
            recs = None  # the file went away: start again from nothing
        else:
            try:
                recs = self._tail(r)
            finally:
                r.close()
        return self._apply(recs)

    def _apply(self, recs):
        if recs is None:
            self._merge(None)  # the owner reloads, which calls load()
            return True
        if recs:
            self.merged += len(recs)
            self._merge(recs)
        return bool(recs)

    # -- write -----------------------------------------------------------------------------------------
    def put(self, key, value):
        """Record key -> value (value None deletes); durable after the backend's next sync(). Compacts
        afterwards when due."""
        rec = encode_record(key, value)
        if self._merge is not None:
            self._put_shared(key, value, rec)
            if self.due():
                self._rewrite_shared(key, value)
            return
        if self._tail_bad:
            # a read-only load left garbage at the end: rewrite before appending behind it
            self._rewrite(self._snapshot())
        self.backend.append(self.name, rec)
        self.writes += 1
        self._account(key, value, len(rec))
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
        """Rewrite the journal from the owner's live set (temp file, fsync, rename); a shared journal first
        replays what others appended, so the rewrite never drops their records. False when another writer
        is compacting it right now (then that one does the job)."""
        if self._merge is not None:
            return self._rewrite_shared()
        self._rewrite(self._snapshot())
        return True

    def _rewrite(self, items):
        gen = None
        sizes = {}
        acc = [0, 0]  # live bytes, file bytes
        late = []
        head = b""
        if self._merge is not None:  # only shared journals need to name their files
            gen = hexlify(self._rand(_GEN_BYTES)).decode()
            head = encode_record(_GEN, gen)
            sizes[_GEN] = len(head)  # live: a compaction keeps it
            acc[0] = acc[1] = len(head)
        old = self._held

        def one(key, value):
            rec = encode_record(key, value)
            acc[0] -= sizes.pop(key, 0)
            if value is not None:
                sizes[key] = len(rec)
                acc[0] += len(rec)
            acc[1] += len(rec)
            return rec

        def records():
            if head:
                yield head
            for key, value in items:
                yield one(key, value)
            if old is not None:
                # what others appended to the old file while this one was written goes in too, so the new
                # file is born with it (a writer whose record lands after this read appends it again, see
                # _put_shared)
                old.seek(self._held_end)
                for _ in range(_SCAN_BOUND):
                    rec = _next(old)
                    if rec is None or rec[0] is None:
                        break
                    self._held_end += rec[2]
                    if rec[0] != _GEN:
                        late.append((rec[0], rec[1]))
                        yield one(rec[0], rec[1])

        if old is None:
            self.backend.replace(self.name, records())
        else:
            self.backend.replace(self.name, records(), old)
        self.writes += 1
        self.compactions += 1
        self._sizes = sizes
        self.live = acc[0]
        self.size = acc[1]
        self.gen = gen
        self._tail_bad = False
        if late:
            self.merged += len(late)
            self._merge(late)

    _held = None  # the old file, read by a shared compaction up to its rename
    _held_end = 0  # where the records of the old file not yet in the new one start

    # -- shared writers ----------------------------------------------------------------------------------
    def _put_shared(self, key, value, rec):
        """Append `rec` so that it lands in the live journal, replaying what others wrote around it."""
        reloaded = False
        for _ in range(RETRIES):
            if self._tail_bad and not self._rewrite_shared(key, value, False):
                # garbage at the end and another writer compacting: its new file will be clean
                self.backend.wait_unlocked(self.name)
                self._apply(None)
                reloaded = True
                continue
            f = self.backend.open_append(self.name)
            gap = None
            try:
                if _generation(f) == self.gen:
                    f.write(rec)
                    f.flush()
                    start = f.tell() - len(rec)
                    if start >= self.size:
                        f.seek(self.size)
                        gap = self._tail_at(f, start - self.size)
            finally:
                f.close()
            if gap is None:  # replaced since this handle read it: reload and try again
                self._apply(None)
                reloaded = True
                continue
            self.writes += 1
            self._apply(gap)
            self._account(key, value, len(rec))
            if self._tail_bad and not self._rewrite_shared(key, value):
                # garbage before the record (loaders stop there) and another writer compacting: append
                # again once its clean file is in place
                self.backend.wait_unlocked(self.name)
                self._apply(None)
                reloaded = True
                continue
            # a compaction running now may have read the file before this record: wait until it is over
            if not self.backend.wait_unlocked(self.name):
                raise OSError("journal %s: another writer's compaction does not end" % self.name)
            if self._gen_now() == self.gen:
                break  # still the journal: any later compaction reads the record
            # a compaction renamed a new file in: it holds the record if it was appended before the
            # compaction's last read of the old file, else the record is appended again
            self._apply(None)
            reloaded = True
            if self._has(key, value):
                break
        else:
            raise OSError("journal %s keeps being replaced by other writers" % self.name)
        if reloaded:
            self._merge([(key, value)])  # the owner's reloaded table gets this change too

    def _tail_at(self, f, n):
        """Records in the next `n` bytes of `f` (other writers' records just before ours)."""
        recs = []
        for _ in range(_SCAN_BOUND):
            rec = _next(f, n)
            if rec is None:
                break
            k, v, got = rec
            if k is None:
                self._tail_bad = True
                self.size += n  # skip the garbage: the rewrite that follows makes the file clean
                break
            n -= got
            self._account(k, v, got)
            if k != _GEN:
                recs.append((k, v))
        return recs

    def _gen_now(self):
        r = self.backend.open_read(self.name)
        if r is None:
            return None
        try:
            return _generation(r)
        finally:
            r.close()

    def _has(self, key, value):
        for k, v in self._snapshot():
            if k == key:
                return v == value
        return value is None

    def _rewrite_shared(self, key=None, value=None, overlay=True):
        """Compaction by a shared writer: replay everything new, rewrite from the merged set, and just before
        the rename add what others appended to the old file meanwhile. One compaction at a time (the
        backend's lock): False, and nothing done, while another writer compacts or there is no file."""
        if not self.backend.lock(self.name):
            return False
        old = None
        mine = True  # the lock (another writer may break it as stale)
        try:
            for _ in range(RETRIES):
                old = self.backend.open_read(self.name)
                if old is None:
                    return False
                recs = self._tail(old)
                if recs is not None:
                    break
                old.close()
                old = None
                self._apply(None)  # replaced meanwhile: reload, then compact that file
            else:
                raise OSError("journal %s keeps being replaced by other writers" % self.name)
            if recs:
                self.merged += len(recs)
                self._merge(recs)
            if key is not None and overlay:
                items = self._overlay(key, value)
            else:
                items = self._snapshot()
            self._held = old
            self._held_end = self.size  # where this handle's good data ends in the old file
            try:
                self._rewrite(items)
            except CompactionLost:
                mine = False  # the writer that took the temp file holds the lock now
                old.close()
                old = None
                self._apply(None)  # the journal is intact but others may have replaced it since: reload
                return False
            finally:
                self._held = None
        finally:
            if old is not None:
                old.close()
            if mine:
                self.backend.unlock(self.name)
        return True
