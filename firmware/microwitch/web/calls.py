"""Live calls as the node sees them pass, for the web page: caller, callee, start, and whether each leg's SDP
advertises ZRTP (`a=zrtp-hash`, RFC 6189 §8.1). Read-only observer of the SIP messages the node receives;
it never changes what the node does.

A call is keyed by Call-ID: an INVITE (no To tag) opens it as ringing; a 2xx to the INVITE marks it up; a
final non-2xx, a CANCEL or a BYE (and its 200) end it. Bounded: at most MAX_CALLS entries; a ringing call
older than _RING_MAX_S and any call older than _CALL_MAX_S are dropped (a lost BYE must not keep a row forever).
"""
from microwitch.compat import const
from microwitch.sip.message import ParseError
from microwitch.sip.headers import parse_name_addr, parse_cseq

MAX_CALLS = const(256)
_RING_MAX_S = const(300)
_CALL_MAX_S = const(86400)
_MAX_SHOWN = const(64)


def _aor(value):
    """'sip:alice@example.org' from a From/To value ('' when it does not parse)."""
    try:
        uri = parse_name_addr(value).uri
    except ParseError:
        return ""
    if uri[:4] == "sip:":
        uri = uri[4:]
    i = uri.find(";")
    return uri if i < 0 else uri[:i]


def _zrtp(msg):
    b = msg.body
    return bool(b) and b"a=zrtp-hash:" in b


class CallTable:
    def __init__(self, max_calls=MAX_CALLS):
        self.max_calls = max_calls
        self.calls = {}  # Call-ID -> dict(caller, callee, start, up, zrtp_caller, zrtp_callee)

    def observe_msg(self, msg, wall):
        """Look at one message the node parsed (Node.observe); cheap for everything but INVITE/CANCEL/BYE and
        final responses; never raises."""
        try:
            cid = msg.get("Call-ID")
            cseq = msg.get("CSeq")
            if cid is None or cseq is None:
                return
            method = parse_cseq(cseq)[1]
        except (ParseError, ValueError, IndexError):
            return
        self._on(msg, cid, method, wall)

    def _on(self, msg, cid, method, wall):
        c = self.calls.get(cid)
        if msg.is_request:
            if msg.method == "INVITE":
                if c is None:
                    if "tag=" in (msg.get("To") or ""):
                        return  # a re-INVITE of a call we did not see start
                    self._make_room(wall)
                    if len(self.calls) >= self.max_calls:
                        return
                    self.calls[cid] = {"caller": _aor(msg.get("From") or ""), "callee": _aor(msg.get("To") or ""),
                                       "start": wall, "up": False, "zrtp_caller": _zrtp(msg),
                                       "zrtp_callee": False}
            elif c is not None and (msg.method == "BYE" or (msg.method == "CANCEL" and not c["up"])):
                del self.calls[cid]
            return
        if c is None or method != "INVITE":
            return
        if 200 <= msg.status < 300:
            if not c["up"]:
                c["up"] = True
                c["start"] = wall  # duration counts from the answer
                c["zrtp_callee"] = _zrtp(msg)
        elif msg.status >= 300 and not c["up"]:
            del self.calls[cid]

    def _make_room(self, wall):
        if len(self.calls) < self.max_calls:
            return
        for cid in list(self.calls):
            c = self.calls[cid]
            if wall - c["start"] > (_CALL_MAX_S if c["up"] else _RING_MAX_S):
                del self.calls[cid]

    def expire(self, wall):
        for cid in list(self.calls):
            c = self.calls[cid]
            if wall - c["start"] > (_CALL_MAX_S if c["up"] else _RING_MAX_S):
                del self.calls[cid]

    def view(self, wall):
        """Up to _MAX_SHOWN rows: caller, callee, state, duration_s, zrtp (True when both legs advertise it)."""
        self.expire(wall)
        out = []
        for c in self.calls.values():
            if len(out) >= _MAX_SHOWN:
                break
            out.append({"caller": c["caller"], "callee": c["callee"], "state": "up" if c["up"] else "ringing",
                        "duration_s": int(wall - c["start"]) if c["up"] else 0,
                        "zrtp_caller": c["zrtp_caller"], "zrtp_callee": c["zrtp_callee"],
                        "zrtp": c["zrtp_caller"] and c["zrtp_callee"]})
        return out
