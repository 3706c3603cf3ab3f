"""A deterministic `rand(n) -> bytes` for tests: a 31-bit LCG, the same bytes on CPython and MicroPython."""


class Lcg:
    def __init__(self, seed=0):
        self.state = seed

    def __call__(self, n):
        out = bytearray()
        for _ in range(n):
            self.state = (self.state * 1103515245 + 12345) & 0x7FFFFFFF
            out.append((self.state >> 16) & 0xFF)
        return bytes(out)
