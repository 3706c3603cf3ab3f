"""The call's media session (microwitch.agent.call.MediaSession), two of them wired back to back in memory with
a fake clock: ZRTP then SRTP on one port, the three policies, symmetric RTP and refused packets."""
import os
import random

from microwitch.agent.call import MediaSession
from microwitch.media import g711

A = ("127.0.0.1", 4000)
B = ("127.0.0.1", 5000)


def _remote(addr, zrtp_hash=None, codec="PCMU"):
    return {"addr": addr[0], "port": addr[1], "pt": 0 if codec == "PCMU" else 8, "codec": codec, "dtmf_pt": 101,
            "zrtp_hash": zrtp_hash, "direction": "sendrecv"}


def _signal(n, seed):
    """PCM (16-bit LE bytes) of n samples that µ-law carries exactly."""
    r = random.Random(seed)
    return g711.ulaw_decode(bytes(r.randrange(256) for _ in range(n)))


class _Pair:
    def __init__(self, pa, pb, play_a=None, b_from=B):
        self.rec_a, self.rec_b = bytearray(), bytearray()
        src = iter([play_a[i:i + 320] for i in range(0, len(play_a), 320)]) if play_a else None
        self.a = MediaSession(pa, os.urandom, None, 0, (lambda: next(src, None)) if src else None,
                              self.rec_a.extend)
        self.b = MediaSession(pb, os.urandom, None, 0, None, self.rec_b.extend)
        self.b_from = b_from
        self.events = {"a": [], "b": []}
        self.wire = []            # (to, data, source)
        self.a_to_b = []
        self.now = 0
        self._take("a", self.a.start(_remote(B, self.b.hello_hash()), 0))
        self._take("b", self.b.start(_remote(A, self.a.hello_hash()), 0))

    def _take(self, who, acts):
        for act in acts:
            if act[0] == "send":
                if who == "a":
                    self.a_to_b.append(act[1])
                    self.wire.append(("b", act[1], A))
                else:
                    self.wire.append(("a", act[1], self.b_from))
            else:
                self.events[who].append(act)

    def run(self, ms, tamper=None):
        end = self.now + ms
        while self.now < end:
            self.now += 5
            self._take("a", self.a.tick(self.now))
            self._take("b", self.b.tick(self.now))
            for _ in range(200):
                if not self.wire:
                    break
                to, data, src = self.wire.pop(0)
                if tamper is not None:
                    data = tamper(to, data)
                if to == "a":
                    self._take("a", self.a.receive(data, src, self.now))
                else:
                    self._take("b", self.b.receive(data, A, self.now))

    def kinds(self, who):
        return [e[0] for e in self.events[who]]


def test_mandatory_both_sides_secure_same_sas_and_exact_audio():
    sig = _signal(8000, 7)
    p = _Pair("mandatory", "mandatory", play_a=sig)
    p.run(2000)
    sa = [e[1] for e in p.events["a"] if e[0] == "secure"]
    sb = [e[1] for e in p.events["b"] if e[0] == "secure"]
    assert sa and sb and sa[0]["sas"] == sb[0]["sas"]
    assert "insecure" not in p.kinds("a") + p.kinds("b")
    p.run(1500)
    # every packet a sent was SRTP (no clear RTP before secure: frames were withheld, not sent)
    assert p.a.sent == p.a.sent_srtp > 50 and p.a.withheld > 0
    assert p.b.received_srtp == p.b.received > 50 and p.b.dropped_auth == 0
    k = bytes(p.rec_b).find(sig[:64])
    assert k >= 0 and k % 2 == 0
    assert bytes(p.rec_b[k:k + len(sig)]) == sig


def test_mandatory_against_a_peer_without_zrtp_sends_nothing_and_fails():
    p = _Pair("mandatory", "off")
    p.run(6000)
    assert p.a.sent == 0 and p.a.withheld > 200
    assert p.a.dropped_clear > 200 and p.a.received == 0
    assert "zrtp_failed" in p.kinds("a")
    assert p.kinds("b") == ["insecure"]           # "off" says so from the start


def test_optional_sends_clear_until_secure_and_reports_insecure():
    p = _Pair("optional", "off")
    p.run(1000)
    assert p.kinds("a")[0] == "insecure"
    assert p.a.sent > 40 and p.a.sent_srtp == 0 and p.a.received > 40
    assert p.b.received > 40


def test_optional_pair_goes_secure():
    p = _Pair("optional", "optional")
    p.run(2000)
    assert "secure" in p.kinds("a") and "secure" in p.kinds("b")
    n = p.a.sent_srtp
    p.run(500)
    assert p.a.sent_srtp >= n + 20


def test_tampered_srtp_is_refused():
    p = _Pair("mandatory", "mandatory")
    p.run(2000)
    r = p.a.received

    def flip(to, data):
        if to == "a" and data[0] == 0x80:
            data = bytearray(data)
            data[20] ^= 1
            return bytes(data)
        return data
    p.run(500, tamper=flip)
    assert p.a.received == r and p.a.dropped_auth > 20


def test_symmetric_rtp_follows_the_peer_source():
    moved = ("127.0.0.1", 5999)
    p = _Pair("off", "off", b_from=moved)
    p.run(200)
    assert p.a.peer == moved and p.a.received > 0
