"""A read-only snapshot of the running node for the web page (plain dicts, no secrets, bounded).

`snapshot(node, calls, errors, wall)` runs where the node runs (the poll loop's thread); the web server only
reads the dict it returns, so the two never touch the same live tables at once.
"""
from microwitch.compat import const

_MAX_DEVICE_AORS = const(500)   # AoRs listed with their devices (the page is for a home, not a carrier)
MAX_ERRORS = const(20)


class ErrorRing:
    """The last MAX_ERRORS warning/error log lines, for the page. `write(line)` wraps a Logger's writer."""

    def __init__(self, write, wall, max_lines=MAX_ERRORS):
        self._write = write
        self._wall = wall
        self.max_lines = max_lines
        self.lines = []

    def write(self, line):
        self._write(line)
        if line[:4] == "WARN" or line[:5] == "ERROR" or line[:3] in ("<4>", "<3>"):
            self.lines.append((int(self._wall()), line[:300]))
            if len(self.lines) > self.max_lines:
                self.lines.pop(0)


def devices(bindings, wall):
    """{'user@domain': [{'contact', 'source', 'expires_in'}]} for up to _MAX_DEVICE_AORS AoRs."""
    out = {}
    for aor in bindings.aors():
        if len(out) >= _MAX_DEVICE_AORS:
            break
        rows = []
        for b in bindings.current(aor, wall):
            src = b.source
            rows.append({"contact": b.uri, "source": "%s:%s:%d" % (src[0], src[1], src[2]) if src else "",
                         "expires_in": int(b.expires - wall)})
        if rows:
            out[aor[4:] if aor[:4] == "sip:" else aor] = rows
    return out


def snapshot(node, calls, errors, wall):
    st = node.status(wall)
    st["devices"] = devices(node.registrar.bindings, wall)
    st["calls"] = calls.view(wall) if calls is not None else []
    st["errors"] = list(errors.lines) if errors is not None else []
    st["domain"] = node.cfg["domain"]
    return st
