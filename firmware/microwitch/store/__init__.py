"""Crash-safe persistent state: append-only journals (journal.py) behind a storage backend.

`memory.MemoryBackend` (tests) and `files.FileBackend` (devices and host; the only code here that touches
files) implement the same calls:
  open_read(name) -> reader with read(n)/close(), or None when absent
  append(name, data)      written through to the OS when it returns; durable after the next sync()
  dirty()                 True while something appended is not yet synced
  sync()                  fsync everything appended since the last sync (group commit: one fsync for a
                          burst of records, before any of them is acknowledged)
  replace(name, chunks[, hold])  atomic and durable: temp file, fsync, rename over `name`; True when
                          `hold` (a reader of the old file) stays readable after it
  open_append(name)       a handle to read (seek/read/tell) and append (write/flush) through; for journals
                          that several writers share
  lock(name) -> bool, locked(name), unlock(name), wait_unlocked(name) -> bool   one compaction of a shared
                          journal at a time; appenders wait for a running one to end
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


class CompactionLost(OSError):
    """A compaction's temp file was taken over by another writer (which found this writer's lock stale): the
    journal was not replaced and is intact."""
