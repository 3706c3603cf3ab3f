"""Test helpers for the ZRTP engine: a seeded RNG and an in-memory link between two sessions."""
import hashlib

from microwitch.zrtp.engine import ZrtpSession


class Drbg:
    """Deterministic bytes from a seed (SHA-256 in counter mode): rand(n) for the engine."""

    def __init__(self, seed):
        self.seed = str(seed).encode()
        self.n = 0

    def __call__(self, n):
        out = b""
        while len(out) < n:
            self.n += 1
            out += hashlib.sha256(self.seed + str(self.n).encode()).digest()
        return out[:n]

    def chance(self):
        """A float in [0, 1) for loss decisions."""
        return int.from_bytes(self(4), "big") / 4294967296.0


class Link:
    """Two sessions a and b joined by a queue; optional loss and mutation, fake clock in ms."""

    def __init__(self, a, b, rng=None, loss=0.0, mutate=None):
        self.a, self.b = a, b
        self.rng = rng or Drbg("link")
        self.loss = loss
        self.mutate = mutate
        self.queue = []
        self.events = {"a": [], "b": []}
        self.sent = {"a": [], "b": []}
        self.now = 0

    def _handle(self, who, actions):
        for act in actions:
            if act[0] == "send":
                pkt = act[1]
                self.sent[who].append(pkt)
                if self.mutate is not None:
                    pkt = self.mutate(who, pkt)
                if pkt is not None and (self.loss == 0 or self.rng.chance() >= self.loss):
                    self.queue.append(("b" if who == "a" else "a", pkt))
            else:
                self.events[who].append(act)

    def done(self):
        return self.a.state in ("secure", "failed") and self.b.state in ("secure", "failed")

    def run(self, limit_ms=60000, step_ms=5):
        """Deliver and tick until both ends are secure or failed (or limit_ms of fake time)."""
        self._handle("a", self.a.tick(self.now))
        self._handle("b", self.b.tick(self.now))
        for _ in range(limit_ms // step_ms + 1):
            for _ in range(1000):
                if not self.queue:
                    break
                to, pkt = self.queue.pop(0)
                s = self.a if to == "a" else self.b
                self._handle(to, s.receive(pkt, self.now))
            if self.done() or self.now >= limit_ms:
                break
            self.now += step_ms
            self._handle("a", self.a.tick(self.now))
            self._handle("b", self.b.tick(self.now))
        return self

    def final(self, who):
        evs = [e for e in self.events[who] if e[0] in ("secure", "failed")]
        return evs[-1] if evs else None


def pair(cfg_a=None, cfg_b=None, role_a="auto", role_b="auto", cache_a=None, cache_b=None, seed=1, **kw):
    """Two sessions on one Link (not started)."""
    rng = Drbg(seed)
    a = ZrtpSession(role_a, cfg_a or {}, rng, cache_a, 0)
    b = ZrtpSession(role_b, cfg_b or {}, rng, cache_b, 0)
    return Link(a, b, rng, **kw)


def assert_agree(link):
    ea, eb = link.final("a"), link.final("b")
    assert ea is not None and ea[0] == "secure", (ea, link.a.failure, link.a.last_internal_error)
    assert eb is not None and eb[0] == "secure", (eb, link.b.failure, link.b.last_internal_error)
    ia, ib = ea[1], eb[1]
    assert ia["sas"] == ib["sas"]
    assert ia["self_key"] == ib["peer_key"] and ia["peer_key"] == ib["self_key"]
    assert ia["self_salt"] == ib["peer_salt"] and ia["peer_salt"] == ib["self_salt"]
    assert ia["self_key"] != ia["peer_key"]
    assert sorted([ia["role"], ib["role"]]) == ["initiator", "responder"]
    for k in ("ka", "cipher", "hash", "auth", "sas_type"):
        assert ia[k] == ib[k], k
    assert link.a.last_internal_error is None and link.b.last_internal_error is None
    return ia, ib
