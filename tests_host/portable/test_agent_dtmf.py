"""Telephone-event receive (RFC 4733) in the call's media session (microwitch.agent.call.MediaSession): packets
of the negotiated payload type (101) become one ("dtmf", digit) each, in clear where clear media is allowed and
inside SRTP once ZRTP is secure; clear ones on a mandatory call, other payload types and tampered SRTP do not."""
import struct

from microwitch.agent.call import MediaSession
from _lcg import Lcg

A = ("127.0.0.1", 4000)
B = ("127.0.0.1", 5000)
PEER_SSRC = 0x0E05384E


def _remote(addr, zrtp_hash=None):
    return {"addr": addr[0], "port": addr[1], "pt": 8, "codec": "PCMA", "dtmf_pt": 101, "zrtp_hash": zrtp_hash,
            "direction": "sendrecv"}


def _event_packets(event, seq, ts, pt=101, ssrc=PEER_SSRC, new_seq=False):
    """One RFC 4733 event as a sender puts it on the wire: 7 packets with growing duration (the first with the
    marker bit), then the end packet (E bit) three times, all with the event's RTP timestamp. The repeats keep
    the sequence number (RFC 2833 senders, e.g. sipp's captures) or, with new_seq, take new ones (RFC 4733
    2.5.1.4; SRTP refuses a repeated index as a replay)."""
    out = []
    for i in range(7):
        out.append(struct.pack(">BBHIIBBH", 0x80, (0x80 if i == 0 else 0) | pt, seq + i, ts, ssrc, event, 10,
                               160 * i))
    for i in range(3):
        out.append(struct.pack(">BBHIIBBH", 0x80, pt, seq + 7 + (i if new_seq else 0), ts, ssrc, event,
                               0x80 | 10, 1120))
    return out


def _audio(seq, ts, ssrc=PEER_SSRC):
    return struct.pack(">BBHII", 0x80, 8, seq, ts, ssrc) + bytes([0xD5]) * 160


def _feed(m, packets, now=100):
    acts = []
    for p in packets:
        acts += m.receive(p, B, now)
    return acts


def _digits(acts):
    return [a[1] for a in acts if a[0] == "dtmf"]


def test_clear_events_give_one_digit_each_in_order():
    m = MediaSession("optional", Lcg(1), None, 0)
    m.start(_remote(B), 0)
    pkts = [_audio(100, 8000), _audio(101, 8160)]
    pkts += _event_packets(1, 102, 8320)
    pkts += [_audio(110, 9600)]
    pkts += _event_packets(11, 111, 9760)          # '#'
    pkts += _event_packets(10, 119, 11200)         # '*'
    pkts += _event_packets(4, 127, 12640)
    acts = _feed(m, pkts)
    assert _digits(acts) == ["1", "#", "*", "4"]
    assert m.received == len(pkts)                  # the events were accepted as RTP, not dropped


def test_a_lost_first_packet_still_gives_the_digit_once():
    m = MediaSession("optional", Lcg(2), None, 0)
    m.start(_remote(B), 0)
    assert _digits(_feed(m, _event_packets(9, 200, 4000)[3:])) == ["9"]


def test_only_the_negotiated_payload_type_is_telephone_event():
    m = MediaSession("optional", Lcg(3), None, 0)
    m.start(_remote(B), 0)
    assert _digits(_feed(m, _event_packets(5, 300, 4000, pt=96))) == []
    assert _digits(_feed(m, _event_packets(5, 308, 5000))) == ["5"]


def test_clear_events_on_a_mandatory_call_are_refused():
    m = MediaSession("mandatory", Lcg(4), None, 0)
    m.start(_remote(B, None), 0)
    pkts = _event_packets(7, 400, 4000)
    assert _digits(_feed(m, pkts)) == []
    assert m.dropped_clear == len(pkts) and m.received == 0


class _Pair:
    """Two mandatory sessions back to back in memory (ZRTP then SRTP), 5 ms steps of a fake clock."""

    def __init__(self):
        self.a = MediaSession("mandatory", Lcg(11), None, 0)
        self.b = MediaSession("mandatory", Lcg(12), None, 0)
        self.events = []
        self.wire = []
        self.now = 0
        self._take("a", self.a.start(_remote(B, self.b.hello_hash()), 0))
        self._take("b", self.b.start(_remote(A, self.a.hello_hash()), 0))

    def _take(self, who, acts):
        for act in acts:
            if act[0] == "send":
                self.wire.append(("b" if who == "a" else "a", act[1]))
            elif who == "a":
                self.events.append(act)

    def run(self, ms):
        end = self.now + ms
        while self.now < end:
            self.now += 5
            self._take("a", self.a.tick(self.now))
            self._take("b", self.b.tick(self.now))
            for _ in range(200):
                if not self.wire:
                    break
                to, data = self.wire.pop(0)
                if to == "a":
                    self._take("a", self.a.receive(data, B, self.now))
                else:
                    self._take("b", self.b.receive(data, A, self.now))


def test_events_inside_srtp_once_secure():
    p = _Pair()
    for _ in range(40):
        if p.a.secure and p.b.secure:
            break
        p.run(100)
    assert p.a.secure and p.b.secure
    b = p.b
    seq = b.tx.seq
    ts = b.tx.timestamp
    clear = (_event_packets(3, seq, ts, ssrc=b.ssrc, new_seq=True) +
             _event_packets(0, seq + 10, ts + 1280, ssrc=b.ssrc, new_seq=True))
    b.tx.seq = (seq + 20) & 0xFFFF
    protected = [b.srtp_out.protect(x) for x in clear]
    n = p.a.received_srtp
    tampered = bytearray(protected[0])
    tampered[14] ^= 1                               # inside the encrypted event: authentication fails
    assert _digits(p.a.receive(bytes(tampered), B, p.now)) == []
    assert p.a.dropped_auth == 1
    assert _digits(_feed(p.a, protected, p.now)) == ["3", "0"]
    assert p.a.received_srtp == n + len(protected)
    # the same events in clear are not digits on a secure mandatory call
    assert _digits(_feed(p.a, _event_packets(8, seq + 20, ts + 2560, ssrc=b.ssrc), p.now)) == []
