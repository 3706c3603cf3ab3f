"""A small, bounded playout buffer for 20 ms audio frames (reordering and late-packet absorption).

push(seq, payload) when a packet arrives; pop() once per frame period returns the next frame in
sequence order, or None for a frame that is missing (the player conceals it, e.g. with silence).
Playout starts once `depth` frames are waiting, so the delay is depth x 20 ms. A frame that arrives
after its turn, or a duplicate, is dropped; one more than _MAX_AHEAD frames ahead restarts the buffer
(the sender jumped).
"""
from microwitch.compat import const

MAX_DEPTH = const(16)  # frames: 320 ms
_MAX_AHEAD = const(64)  # frames beyond the next one that we still wait for


class JitterBuffer:
    def __init__(self, depth_packets=3):
        if not 1 <= depth_packets <= MAX_DEPTH:
            raise ValueError("jitter buffer depth must be 1-%d packets, got %r" % (MAX_DEPTH, depth_packets))
        self.depth = depth_packets
        self._frames = {}  # seq -> payload, at most depth + _MAX_AHEAD entries
        self._next = None  # next sequence number to play
        self._started = False
        self.late = 0
        self.duplicates = 0
        self.missing = 0
        self.resyncs = 0

    def __len__(self):
        return len(self._frames)

    def push(self, seq, payload):
        """Queue a frame; returns False when it is dropped (late or duplicate)."""
        seq &= 0xFFFF
        if self._next is None:
            self._next = seq
        d = (seq - self._next) & 0xFFFF
        if d >= 0x8000:
            self.late += 1
            return False
        if d > _MAX_AHEAD + self.depth:
            self.resyncs += 1
            self._frames = {}
            self._next = seq
            self._started = False
            d = 0
        if seq in self._frames:
            self.duplicates += 1
            return False
        self._frames[seq] = payload
        if not self._started and len(self._frames) >= self.depth:
            self._started = True
        return True

    def pop(self):
        """The next frame's payload, or None (not started yet, or the frame is missing)."""
        if not self._started or self._next is None:
            return None
        f = self._frames.pop(self._next, None)
        if f is None:
            self.missing += 1
            if not self._frames:  # drained: wait for depth frames again
                self._started = False
        self._next = (self._next + 1) & 0xFFFF
        return f
