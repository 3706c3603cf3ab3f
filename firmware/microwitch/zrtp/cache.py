"""ZID cache (RFC 6189 4.6, 4.9): our ZID and, per peer ZID, the retained secrets rs1/rs2 with their
expiry and the SAS-verified flag.

Storage is an append-only log of records `<crc32c hex> <json>\n` through a small backend object
(read() -> bytes, append(bytes), replace(bytes) atomically). A torn last record fails its checksum and is
skipped on load; when the log holds too many superseded records it is compacted by replace(), which the
file backend does as write-temp, fsync, rename (cachefile.FileBackend).
"""
import json
import binascii
from microwitch.compat import const, wall_s
from microwitch.compat import crc32c

MAX_PEERS = const(256)        # peers remembered; the least recently used one is forgotten first
_COMPACT_SLACK = const(64)    # superseded records tolerated in the log before compaction
_FOREVER = const(-1)
_NEVER_CACHE = const(0)


def _hex(b):
    return binascii.hexlify(b).decode() if b is not None else None


def _unhex(s):
    return binascii.unhexlify(s) if s else None


class MemoryBackend:
    """Backend for tests: the log lives in a bytes attribute."""

    def __init__(self, data=b""):
        self.data = data

    def read(self):
        return self.data

    def append(self, b):
        self.data += b

    def replace(self, b):
        self.data = b


def _line(rec):
    txt = json.dumps(rec)
    return ("%08x %s\n" % (crc32c(txt.encode()), txt)).encode()


class ZidCache:
    """The cache of one endpoint. clock() gives wall-clock seconds (expiry survives reboots)."""

    def __init__(self, backend, rand=None, clock=None):
        self._b = backend
        self._rand = rand
        self._clock = clock or wall_s
        self._zid = None
        self._peers = {}
        self._order = []        # peer keys, least recently stored first (MicroPython dicts are unordered)
        self._records = 0
        self.skipped = 0
        self._load()

    def _load(self):
        data = self._b.read() or b""
        # a torn last record has no newline: the next append must not be glued to it
        self._torn = len(data) > 0 and data[-1:] != b"\n"
        for raw in data.split(b"\n"):
            if not raw:
                continue
            try:
                crc, txt = raw.split(b" ", 1)
                if int(crc, 16) != crc32c(txt):
                    raise ValueError("checksum")
                rec = json.loads(txt)
                self._apply(rec)
                self._records += 1
            except (ValueError, KeyError, TypeError, IndexError):
                self.skipped += 1   # torn or damaged record: ignore it, the rest still counts

    def _apply(self, rec):
        if "z" in rec:
            self._zid = _unhex(rec["z"])
            if len(self._zid) != 12:
                raise ValueError("zid")
        elif "d" in rec:
            if self._peers.pop(rec["d"], None) is not None:
                self._order.remove(rec["d"])
        else:
            p = rec["p"]
            if p in self._peers:
                self._order.remove(p)
            self._order.append(p)
            self._peers[p] = {"rs1": rec.get("rs1"), "rs2": rec.get("rs2"), "x1": rec.get("x1", _FOREVER),
                              "x2": rec.get("x2", _FOREVER), "v": rec.get("v", 0), "t": rec.get("t", 0)}

    def _write(self, rec):
        self._apply(rec)
        line = _line(rec)
        if self._torn:
            line = b"\n" + line
            self._torn = False
        self._b.append(line)
        self._records += 1
        if self._records > len(self._peers) + 1 + _COMPACT_SLACK:
            self.compact()

    def compact(self):
        """Rewrite the log with only the live records (atomic through the backend)."""
        out = []
        if self._zid is not None:
            out.append(_line({"z": _hex(self._zid)}))
        for p in self._order:
            r = {"p": p}
            r.update(self._peers[p])
            out.append(_line(r))
        self._b.replace(b"".join(out))
        self._records = len(out)
        self._torn = False

    def zid(self):
        """Our own 96-bit ZID, created (from rand) and stored on first use."""
        if self._zid is None:
            if self._rand is None:
                raise ValueError("ZID cache needs rand to create a ZID")
            self._write({"z": _hex(self._rand(12))})
        return self._zid

    def set_zid(self, zid):
        """Adopt `zid` as our own (kept by the caller beside the cache, so that losing the cache does not
        silently give the device a new identity); stored only when it differs."""
        if len(zid) != 12:
            raise ValueError("a ZID is 12 bytes")
        if self._zid != zid:
            self._write({"z": _hex(zid)})

    def lookup(self, peer_zid):
        """None for an unknown peer, else {"rs1", "rs2", "verified"} with expired secrets as None."""
        e = self._peers.get(_hex(peer_zid))
        if e is None:
            return None
        now = self._clock()
        rs1 = _unhex(e["rs1"]) if e["x1"] == _FOREVER or now < e["x1"] else None
        rs2 = _unhex(e["rs2"]) if e["x2"] == _FOREVER or now < e["x2"] else None
        return {"rs1": rs1, "rs2": rs2, "verified": bool(e["v"])}

    def store(self, peer_zid, rs1, interval, verified=None):
        """Rotate in a new rs1 (the old rs1 becomes rs2, 4.6.1). interval: cache expiration in seconds
        from Confirm (0: do not keep the secret, 0xFFFFFFFF: never expires)."""
        p = _hex(peer_zid)
        old = self._peers.get(p)
        now = int(self._clock())
        rec = {"p": p, "t": now, "v": (old["v"] if old else 0) if verified is None else (1 if verified else 0)}
        if old:
            rec["rs2"], rec["x2"] = old["rs1"], old["x1"]
        if interval == _NEVER_CACHE or rs1 is None:
            rec["rs1"], rec["x1"] = None, _FOREVER
        else:
            rec["rs1"] = _hex(rs1)
            rec["x1"] = _FOREVER if interval >= 0xFFFFFFFF else now + interval
        if old is None and len(self._peers) >= MAX_PEERS:
            self._write({"d": self._order[0]})
        self._write(rec)

    def set_verified(self, peer_zid, flag):
        """Record whether the users compared the SAS with this peer (5.7 V flag)."""
        p = _hex(peer_zid)
        e = self._peers.get(p)
        if e is None:
            return
        r = {"p": p}
        r.update(e)
        r["v"] = 1 if flag else 0
        self._write(r)

    def forget(self, peer_zid):
        self._write({"d": _hex(peer_zid)})

    def __len__(self):
        return len(self._peers)
