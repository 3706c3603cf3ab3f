"""File storage backend: the only code in the firmware that touches files (journals in one directory).

Crash safety: `append` writes one record per write call and flushes it to the OS (safe against a killed
process); `sync()` fsyncs every file appended to since the last sync (safe against power loss), so a burst of
records costs one fsync and callers sync before they acknowledge anything; `replace` writes
`name.tmp`, fsyncs it, then renames it over `name`. Where rename cannot replace an existing file (FAT on
some ports) the old file is removed first; `open_read` then finds only `name.tmp`, which is complete because
it was fsynced before the old file went away, and finishes the rename. A `name.tmp` next to an existing
`name` is a compaction that died before its rename and is discarded.
"""
import os

from microwitch.compat import fsync

_TMP = ".tmp"


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
            if _exists(p + _TMP):
                _remove(p + _TMP)
        elif _exists(p + _TMP):
            os.rename(p + _TMP, p)
        else:
            return None
        return open(p, "rb")

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

    def replace(self, name, chunks):
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
            _remove(p)
            os.rename(p + _TMP, p)

    def stamp(self, name):
        try:
            st = os.stat(self.path(name))
        except OSError:
            return None
        # size, mtime, inode (tuple indices work on CPython and MicroPython); the inode changes on a
        # rename-replace even within one mtime second
        return (st[6], st[8], st[1])
