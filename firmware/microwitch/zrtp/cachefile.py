"""File backend for the ZID cache: append with fsync, compaction by write-temp, fsync, rename."""
import os
from microwitch.compat import fsync


class FileBackend:
    def __init__(self, path):
        self.path = path

    def read(self):
        try:
            with open(self.path, "rb") as f:
                return f.read()
        except OSError:
            return b""

    def append(self, b):
        with open(self.path, "ab") as f:
            f.write(b)
            fsync(f)

    def replace(self, b):
        tmp = self.path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(b)
            fsync(f)
        os.rename(tmp, self.path)
