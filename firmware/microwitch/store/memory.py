"""In-memory storage backend with the same calls as files.FileBackend (for tests and RAM-only boards).

Counts appends and replaces so tests can prove how often a store writes; `fail` makes the next write raise
OSError (full flash) to test that a failed write leaves the in-memory tables untouched.
"""


class _Reader:
    """A handle on one file's bytes. Like an open file, it keeps the bytes it was opened on after a replace
    (which installs a new bytearray), and sees appends made to them."""

    def __init__(self, data, backend=None):
        self._d = data
        self._p = 0
        self._be = backend  # set for read+append handles

    def read(self, n):
        p = self._p
        self._p = min(len(self._d), p + n)
        return bytes(self._d[p:self._p])

    def seek(self, pos):
        self._p = pos

    def tell(self):
        return self._p

    def write(self, data):
        # append mode: every write lands at the end, wherever the read position was
        self._be._check()
        self._d.extend(data)
        self._be.appends += 1
        self._be._dirty = True
        self._be._version += 1
        self._p = len(self._d)
        return len(data)

    def flush(self):
        pass

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
        self.locks = set()

    def _check(self):
        if self.fail:
            self.fail = False
            raise OSError(28, "no space left on device")

    def open_read(self, name):
        d = self.files.get(name)
        return None if d is None else _Reader(d)

    def open_append(self, name):
        return _Reader(self.files.setdefault(name, bytearray()), self)

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

    def replace(self, name, chunks, hold=None):
        self._check()
        buf = bytearray()
        for c in chunks:
            buf.extend(c)
        self.files[name] = buf
        self.replaces += 1
        self._version += 1
        return True

    def lock(self, name):
        if name in self.locks:
            return False
        self.locks.add(name)
        return True

    def locked(self, name):
        return name in self.locks

    def wait_unlocked(self, name):
        return name not in self.locks  # one process: nobody else can release it meanwhile

    def unlock(self, name):
        self.locks.discard(name)

    def stamp(self, name):
        d = self.files.get(name)
        return None if d is None else (len(d), self._version)

    @property
    def writes(self):
        return self.appends + self.replaces
