"""Telephone-event receive (RFC 4733 2.3): DTMF digits from the named-event RTP payload.

One event spans several packets with the same RTP timestamp; the last three carry the E bit. feed()
reports each event once, on its first packet, so a lost start or lost end packets do not lose the
digit. Only the first 4-byte event block of a packet is read (RFC 4733 2.5.1.5 redundancy is ignored).
"""
from microwitch.compat import const

_EVENTS = "0123456789*#ABCD"
FLASH = const(16)
_SEEN = const(8)  # recent event timestamps remembered against end-packet repeats


class DtmfError(ValueError):
    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


def parse(payload):
    """(event, end, volume, duration) of a telephone-event payload (RFC 4733 2.3)."""
    if len(payload) < 4:
        raise DtmfError("telephone-event payload shorter than 4 bytes")
    return payload[0], bool(payload[1] & 0x80), payload[1] & 0x3F, (payload[2] << 8) | payload[3]


def event_name(event):
    """'0'-'9', '*', '#', 'A'-'D', 'flash', or 'event N' for others."""
    if event < 16:
        return _EVENTS[event]
    if event == FLASH:
        return "flash"
    return "event %d" % event


class DtmfReceiver:
    def __init__(self):
        self._seen = []  # RTP timestamps of the last _SEEN events

    def feed(self, timestamp, payload):
        """The event name on an event's first packet, None on its later packets. DtmfError if malformed."""
        ev = parse(payload)[0]
        if timestamp in self._seen:
            return None
        self._seen.append(timestamp)
        if len(self._seen) > _SEEN:
            self._seen.pop(0)
        return event_name(ev)
