"""File storage backend: the only code in the firmware that touches files (journals in one directory).

Crash safety: `append` writes one record per write call and flushes it to the OS (safe against a killed
process); `sync()` fsyncs every file appended to since the last sync (safe against power loss), so a burst of
records costs one fsync and callers sync before they acknowledge anything; `replace` writes
`name.tmp`, fsyncs it, then renames it over `name`. Where rename cannot replace an existing file (FAT on
some ports) the old file is removed first; `open_read` then finds only `name.tmp`, which is complete because
it was fsynced before the old file went away, and finishes the rename. A `name.tmp` next to an existing
`name` is a compaction that died before its rename and is discarded.

Several writers (processes) may share a journal: `open_append` gives a read+append handle (O_APPEND: every
write lands at the end), `replace` is handed the compactor's open reader of the old file (closed first where the old file has to be
removed), and
`lock`/`unlock` (a `name.lock` directory) let one writer compact at a time; a leftover `name.tmp` is only
removed under the lock, never while another writer is writing it (see journal.py for how writers use these).
"""
import os
import time

from microwitch.compat import const, fsync, wall_s
from microwitch.store import CompactionLost

_TMP = ".tmp"
_LOCK = ".lock"
# a compaction lock this old was left by a killed writer: a compaction of the largest user store (10,000
# users, ~1.5 MB) takes well under this even on router flash; appenders wait until then at the longest
LOCK_STALE_S = const(30)
LOCK_WAIT_MS = const(31000)
_POLL_MS = const(2)


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def _remove(path):
    try:
        os.remove(path)
    except OSError:
        pass


class FileBackend:
    def __init__(self, directory):
        self._dirty = set()
        self.syncs = 0
        self.dir = directory.rstrip("/") or "/"
        if not _exists(self.dir):
            os.mkdir(self.dir)

    def path(self, name):
        return self.dir + "/" + name

    def open_read(self, name):
        p = self.path(name)
        if _exists(p):
            if _exists(p + _TMP) and self.lock(name):  # (under the lock: not another writer's compaction)
                try:
                    _remove(p + _TMP)
                finally:
                    self.unlock(name)
        elif _exists(p + _TMP):
            os.rename(p + _TMP, p)
        else:
            return None
        return open(p, "rb")

    def open_append(self, name):
        """The file opened to read and append (created if absent): a shared journal reads the generation
        through the handle it appends with, so it knows which file its record went into."""
        f = open(self.path(name), "a+b")
        self._dirty.add(name)
        return f

    def append(self, name, data):
        f = open(self.path(name), "ab")
        try:
            f.write(data)
            f.flush()
        finally:
            f.close()
        self._dirty.add(name)

    def dirty(self):
        return bool(self._dirty)

    def sync(self):
        """fsync what was appended since the last call (fsync reaches the file through any descriptor)."""
        for name in self._dirty:
            f = open(self.path(name), "ab")
            try:
                fsync(f)
            finally:
                f.close()
            self.syncs += 1
        self._dirty.clear()

    def replace(self, name, chunks, hold=None):
        """`hold`: a reader of the old file the caller still has open; where the old file must be removed
        before the rename (FAT cannot remove an open file) it is closed first and False returned, else True."""
        p = self.path(name)
        f = open(p + _TMP, "wb")
        try:
            for c in chunks:
                f.write(c)
            fsync(f)
            self._dirty.discard(name)  # the new file holds every record, durably
        finally:
            f.close()
        try:
            os.rename(p + _TMP, p)
        except OSError:
            # rename onto an existing file is refused on some filesystems: see the module docstring
            if not _exists(p + _TMP):
                # the temp file is gone (another writer broke this one's lock as stale): keep the journal
                raise CompactionLost("%s: compaction taken over by another writer" % name)
            if hold is not None:
                hold.close()  # FAT must not remove an open file
            _remove(p)
            os.rename(p + _TMP, p)
            return False
        return True

    def lock(self, name):
        """Take the compaction lock of `name` (a directory: mkdir is atomic on every filesystem here); False
        when another writer holds it. A lock older than LOCK_STALE_S (its writer was killed) is broken."""
        p = self.path(name) + _LOCK
        for _ in range(2):
            try:
                os.mkdir(p)
                return True
            except OSError:
                pass
            try:
                age = wall_s() - os.stat(p)[8]
            except OSError:
                continue  # released meanwhile: try again
            if -LOCK_STALE_S < age < LOCK_STALE_S:
                return False
            try:
                os.rmdir(p)
            except OSError:
                pass
        return False

    def locked(self, name):
        """True while a live writer holds the compaction lock of `name` (a stale lock does not count)."""
        try:
            age = wall_s() - os.stat(self.path(name) + _LOCK)[8]
        except OSError:
            return False
        return -LOCK_STALE_S < age < LOCK_STALE_S

    def wait_unlocked(self, name):
        """Wait (sleeping, at most LOCK_WAIT_MS) until no live writer compacts `name`; False on timeout."""
        for _ in range(LOCK_WAIT_MS // _POLL_MS):
            if not self.locked(name):
                return True
            time.sleep(_POLL_MS / 1000)
        return not self.locked(name)

    def unlock(self, name):
        try:
            os.rmdir(self.path(name) + _LOCK)
        except OSError:
            pass

    def stamp(self, name):
        try:
            st = os.stat(self.path(name))
        except OSError:
            return None
        # size, mtime, inode (tuple indices work on CPython and MicroPython); the inode changes on a
        # rename-replace even within one mtime second
        return (st[6], st[8], st[1])
