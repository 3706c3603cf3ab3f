"""In-memory storage backend with the same calls as files.FileBackend (for tests and RAM-only boards).

Counts appends and replaces so tests can prove how often a store writes; `fail` makes the next write raise
OSError (full flash) to test that a failed write leaves the in-memory tables untouched.
"""


class _Reader:
    def __init__(self, data):
        self._d = data
        self._p = 0

    def read(self, n):
        p = self._p
        self._p = min(len(self._d), p + n)
        return bytes(self._d[p:self._p])

    def close(self):
        pass


class MemoryBackend:
    def __init__(self):
        self.files = {}  # name -> bytearray
        self.appends = 0
        self.replaces = 0
        self.syncs = 0
        self._dirty = False
        self.fail = False
        self._version = 0

    def _check(self):
        if self.fail:
            self.fail = False
            raise OSError(28, "no space left on device")

    def open_read(self, name):
        d = self.files.get(name)
        return None if d is None else _Reader(bytes(d))

    def append(self, name, data):
        self._check()
        self.files.setdefault(name, bytearray()).extend(data)
        self.appends += 1
        self._dirty = True
        self._version += 1

    def dirty(self):
        return self._dirty

    def sync(self):
        if self._dirty:
            self.syncs += 1
        self._dirty = False

    def replace(self, name, chunks):
        self._check()
        buf = bytearray()
        for c in chunks:
            buf.extend(c)
        self.files[name] = buf
        self.replaces += 1
        self._version += 1

    def stamp(self, name):
        d = self.files.get(name)
        return None if d is None else (len(d), self._version)

    @property
    def writes(self):
        return self.appends + self.replaces
