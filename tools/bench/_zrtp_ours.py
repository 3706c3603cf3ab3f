"""Our half of the ZRTP handshake benchmark (tools/bench/zrtp.py): runs on CPython and MicroPython.

measure(ka, runs) -> median milliseconds per side of a full handshake: two ZrtpSession objects with
fixed roles (initiator / responder, so no commit contention), in-memory delivery, a simulated clock.
A side's time is the time spent inside its own start/receive/tick calls up to the call that reported
secure; per side = (initiator + responder) / 2, as tools/bzrtp/bench.c measures bzrtp.
"""
import time

from microwitch.compat import random_bytes
from microwitch.zrtp.engine import ZrtpSession

try:
    _now_us = time.ticks_us       # MicroPython

    def _elapsed_us(t0):
        return time.ticks_diff(time.ticks_us(), t0)
except AttributeError:
    def _now_us():
        return time.perf_counter()

    def _elapsed_us(t0):
        return (time.perf_counter() - t0) * 1e6

_MAX_ROUNDS = 200
_STEP_MS = 10


def handshake(ka):
    """One handshake; returns (initiator_us, responder_us)."""
    cfg = {"ka": [ka]}
    sides = []
    busy = [0.0, 0.0]
    done = [False, False]
    queues = [[], []]
    t0 = _now_us()
    sides.append(ZrtpSession("initiator", cfg, random_bytes, None, 0))
    busy[0] += _elapsed_us(t0)
    t0 = _now_us()
    sides.append(ZrtpSession("responder", cfg, random_bytes, None, 0))
    busy[1] += _elapsed_us(t0)

    def call(i, fn, *args):
        if done[i]:
            fn(*args)
            return
        t = _now_us()
        acts = fn(*args)
        busy[i] += _elapsed_us(t)
        for a in acts:
            if a[0] == "send":
                queues[1 - i].append(a[1])
            elif a[0] == "secure":
                done[i] = True
            elif a[0] == "failed":
                raise RuntimeError("handshake failed: " + a[1])

    now = 0
    call(0, sides[0].tick, now)
    call(1, sides[1].tick, now)
    for _ in range(_MAX_ROUNDS):
        moved = True
        while moved:
            moved = False
            for i in (0, 1):
                while queues[i]:
                    moved = True
                    call(i, sides[i].receive, queues[i].pop(0), now)
        if done[0] and done[1]:
            return busy[0], busy[1]
        now += _STEP_MS
        call(0, sides[0].tick, now)
        call(1, sides[1].tick, now)
    raise RuntimeError("handshake did not finish")


def measure(ka, runs):
    """Median per-side handshake time in ms over `runs` handshakes (one warm-up run first)."""
    handshake(ka)
    per = []
    for _ in range(runs):
        i, r = handshake(ka)
        per.append((i + r) / 2.0 / 1000.0)
    per.sort()
    n = len(per)
    return per[n // 2] if n % 2 else (per[n // 2 - 1] + per[n // 2]) / 2.0


if __name__ == "__main__":
    import sys
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    for k in ("X255", "DH3k", "DH2k", "EC25"):
        print("ours ka=%s runs=%d per_side_ms=%.3f" % (k, n, measure(k, n)))
