"""Crash-safe persistent state: append-only journals (journal.py) behind a storage backend.

`memory.MemoryBackend` (tests) and `files.FileBackend` (devices and host; the only code here that touches
files) implement the same four calls:
  open_read(name) -> reader with read(n)/close(), or None when absent
  append(name, data)      written through to the OS when it returns; durable after the next sync()
  dirty()                 True while something appended is not yet synced
  sync()                  fsync everything appended since the last sync (group commit: one fsync for a
                          burst of records, before any of them is acknowledged)
  replace(name, chunks)   atomic and durable: temp file, fsync, rename over `name`
  stamp(name) -> (size, mtime-or-version) or None   cheap change detection
`bindings.Bindings` and `users.Users` keep their tables in RAM and journal changes.
"""


class ValidationError(ValueError):
    """Bad input for a store; `.field` names the field, str() says what is wrong with it."""

    def __init__(self, field, text):
        super().__init__("%s: %s" % (field, text))
        self.field = field


class StoreFull(Exception):
    """A bounded table is full; nothing was changed."""
