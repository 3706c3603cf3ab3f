"""Our half of the SRTP benchmark (tools/bench/srtp.py): runs on CPython and MicroPython.

measure(n) -> (cpu_pps, wall_pps): packets per second through protect() then unprotect()
(AES_CM_128_HMAC_SHA1_80, 160-byte G.711 payloads, 20 ms apart in RTP time); one packet counts once for
the pair of calls, as the libsrtp figure is measured. cpu_pps divides by the CPU time this process used
(time.process_time on CPython, Node's process.cpuUsage under wasm MicroPython), which other jobs on a
shared machine do not inflate; wall_pps by the elapsed time. The packets are built before the clock
starts, and WARMUP packets go through first, untimed (wasm engines compile hot code in tiers; a device
runs a call for minutes).
"""
import gc
import time

from microwitch.media.srtp import SrtpSession

try:
    _ticks_us = time.ticks_us  # MicroPython

    def _wall_us():
        return _ticks_us()

    def _wall_elapsed(t0):
        return time.ticks_diff(_ticks_us(), t0)
except AttributeError:
    def _wall_us():
        return time.perf_counter() * 1e6

    def _wall_elapsed(t0):
        return time.perf_counter() * 1e6 - t0

try:
    import js  # wasm MicroPython: the host's process clock

    def _cpu_us():
        u = js.process.cpuUsage()
        return u.user + u.system
except ImportError:
    try:
        _pt = time.process_time

        def _cpu_us():
            return _pt() * 1e6
    except AttributeError:
        _cpu_us = None

KEY = bytes(range(1, 17))
SALT = bytes(range(40, 54))
SSRC = 0x5EC0DE01
WARMUP = 20


def packets(n, start_seq=0):
    payload = bytes((i * 37) & 0xFF for i in range(160))
    out = []
    for i in range(n):
        seq = (start_seq + i) & 0xFFFF
        ts = (i * 160) & 0xFFFFFFFF
        out.append(bytes((0x80, 0, seq >> 8, seq & 0xFF)) + ts.to_bytes(4, "big") + SSRC.to_bytes(4, "big") + payload)
    return out


def measure(n):
    tx = SrtpSession("AES_CM_128_HMAC_SHA1_80", KEY, SALT)
    rx = SrtpSession("AES_CM_128_HMAC_SHA1_80", KEY, SALT)
    pk = packets(n + WARMUP)
    protect = tx.protect
    unprotect = rx.unprotect
    for p in pk[:WARMUP]:
        unprotect(protect(p))
    pk = pk[WARMUP:]
    gc.collect()
    c0 = _cpu_us() if _cpu_us else 0
    t0 = _wall_us()
    for p in pk:
        if unprotect(protect(p)) != p:
            raise RuntimeError("round trip changed a packet")
    wall = _wall_elapsed(t0)
    cpu = (_cpu_us() - c0) if _cpu_us else wall
    return n * 1e6 / max(cpu, 1), n * 1e6 / max(wall, 1)
