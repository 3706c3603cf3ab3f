"""File backend for the ZID cache (RFC 6189 4.9): the registrar journals' write discipline, reused.

store/files.py does the file work: an append is fsynced before the call returns (the retained secret is
on disk before the session reports secure), compaction writes `name.tmp`, fsyncs it and renames it over
the cache (removing the old file first where rename cannot replace one), and a load finishes a rename
that a crash left as a lone `name.tmp`. OSError from a missing directory or a full disk reaches the
caller, which names the file.
"""
from microwitch.store.files import FileBackend as _Files


def _split(path):
    """(directory, file name) without os.path, which MicroPython lacks."""
    i = path.rfind("/")
    if i < 0:
        return ".", path
    return path[:i] or "/", path[i + 1:]


class FileBackend:
    """read() -> bytes, append(bytes), replace(bytes) on one cache file (zrtp.cache.ZidCache's backend)."""

    def __init__(self, path):
        self.path = path
        d, self._name = _split(path)
        if not self._name:
            raise OSError("a ZID cache needs a file name, not a directory: " + path)
        self._files = _Files(d)

    def read(self):
        f = self._files.open_read(self._name)
        if f is None:
            return b""
        try:
            return f.read()
        finally:
            f.close()

    def append(self, b):
        self._files.append(self._name, b)
        self._files.sync()

    def replace(self, b):
        self._files.replace(self._name, [b])
