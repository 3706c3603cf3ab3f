#!/usr/bin/env python3
"""A UDP relay between two ZRTP peers on 127.0.0.1 that can drop or mutate packets.

    python3 tools/udp_lossy_relay.py --a-port PA --b-port PB [--loss 0.2] [--seed 1]

prints the two relay ports ("relay a_side=RA b_side=RB"): point peer A at RA and peer B at RB
(`--peer RA` / `--peer RB`). Each relay socket faces one peer, so each peer sees its datagrams come
from the port it was told to use. Runs until interrupted, logging one line per packet on stderr.

In tests, use `Relay` directly: it runs in a thread, logs (direction, type, action) per packet and
takes a `mutate(direction, ztype, packet, nth) -> bytes | None` hook (None drops the packet).
ZRTP packets (RFC 6189 section 5) are identified by the 8-byte type block after the 12-byte header
and the preamble/length word; `fix_crc` re-seals a mutated packet so only the intended check can
reject it.
"""
import argparse
import random
import select
import socket
import struct
import sys
import threading

HEADER_LEN = 12
TYPE_OFFSET = HEADER_LEN + 4
CONFIRM_MAC_OFFSET = TYPE_OFFSET + 8  # Confirm1/Confirm2: confirm_mac (8 bytes) follows the type
MAX_DATAGRAM = 4096
MAX_LOG = 10000  # packets remembered per relay

A2B = "a2b"
B2A = "b2a"


def _crc32c_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _crc32c_table()


def crc32c(data):
    """CRC-32C (Castagnoli), as RFC 6189 section 5.1.1 uses it (RFC 3309 parameters)."""
    c = 0xFFFFFFFF
    for b in data:
        c = _TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def crc_ok(pkt):
    """True when the trailing CRC (sent least-significant byte first) matches."""
    return len(pkt) >= HEADER_LEN + 16 and struct.unpack("<I", pkt[-4:])[0] == crc32c(pkt[:-4])


def fix_crc(pkt):
    pkt = bytes(pkt)
    return pkt[:-4] + struct.pack("<I", crc32c(pkt[:-4]))


def zrtp_type(pkt):
    """The 8-character message type ("Hello   ", "Confirm1", ...) or None if not a ZRTP packet."""
    if len(pkt) < TYPE_OFFSET + 8 + 4 or pkt[0] != 0x10 or pkt[4:8] != b"ZRTP" or pkt[12:14] != b"\x50\x5a":
        return None
    return pkt[TYPE_OFFSET:TYPE_OFFSET + 8].decode("ascii", "replace")


def message(pkt):
    """The ZRTP message (what hashes and MACs cover): the packet without header and CRC."""
    return bytes(pkt[HEADER_LEN:-4])


def flip_crc_bit(pkt):
    pkt = bytearray(pkt)
    pkt[-1] ^= 0x01
    return bytes(pkt)


def tamper_confirm_mac(pkt):
    """Flips one bit of confirm_mac and re-seals the CRC, so only the MAC check can notice."""
    pkt = bytearray(pkt)
    pkt[CONFIRM_MAC_OFFSET] ^= 0x80
    return fix_crc(pkt)


class Relay:
    """Forwards datagrams between peer A (at a_port) and peer B (at b_port) in a thread.

    Peer A must send to `self.a_side` and peer B to `self.b_side`. `loss` drops that fraction of
    packets (both directions) with a seeded RNG; `mutate` sees each surviving packet first.
    """

    def __init__(self, a_port, b_port, loss=0.0, seed=0, mutate=None):
        self.a_port = a_port
        self.b_port = b_port
        self.loss = loss
        self.rng = random.Random(seed)
        self.mutate = mutate
        self.log = []
        self.counts = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.sa = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sb = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sa.bind(("127.0.0.1", 0))
        self.sb.bind(("127.0.0.1", 0))
        self.a_side = self.sa.getsockname()[1]
        self.b_side = self.sb.getsockname()[1]
        self._thread = threading.Thread(target=self._run, name="zrtp-relay", daemon=True)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=5)
        self.sa.close()
        self.sb.close()

    def packets(self, direction=None, ztype=None, action=None):
        with self._lock:
            return [e for e in self.log
                    if (direction is None or e[0] == direction) and (ztype is None or e[1] == ztype)
                    and (action is None or e[2] == action)]

    def _run(self):
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([self.sa, self.sb], [], [], 0.05)
            except (OSError, ValueError):
                return
            for s in ready:
                try:
                    pkt, _ = s.recvfrom(MAX_DATAGRAM)
                except OSError:  # e.g. ICMP refusal from a peer not yet bound
                    continue
                if s is self.sa:
                    direction, out, dest = A2B, self.sb, self.b_port
                else:
                    direction, out, dest = B2A, self.sa, self.a_port
                self._forward(direction, pkt, out, dest)

    def _forward(self, direction, pkt, out, dest):
        ztype = zrtp_type(pkt)
        key = (direction, ztype)
        nth = self.counts.get(key, 0)
        self.counts[key] = nth + 1
        entry = [direction, ztype, "pass", bytes(pkt), crc_ok(pkt)]
        if self.loss and self.rng.random() < self.loss:
            entry[2] = "drop"
        elif self.mutate is not None:
            new = self.mutate(direction, ztype, bytes(pkt), nth)
            if new is None:
                entry[2] = "drop"
            elif new != pkt:
                entry[2] = "mutated"
                pkt = new
        with self._lock:
            if len(self.log) < MAX_LOG:
                self.log.append(tuple(entry))
        if entry[2] != "drop":
            try:
                out.sendto(pkt, ("127.0.0.1", dest))
            except OSError:
                pass


def main(argv=None):
    ap = argparse.ArgumentParser(description="UDP relay with seeded packet loss between two ZRTP peers.")
    ap.add_argument("--a-port", type=int, required=True, help="port peer A listens on")
    ap.add_argument("--b-port", type=int, required=True, help="port peer B listens on")
    ap.add_argument("--loss", type=float, default=0.0, help="fraction of packets to drop (0..1)")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args(argv)
    if not 0.0 <= a.loss <= 1.0:
        ap.error("--loss must be between 0 and 1")

    def show(direction, ztype, pkt, nth):
        print("%s %s #%d %d bytes crc_ok=%s" % (direction, ztype, nth, len(pkt), crc_ok(pkt)), file=sys.stderr)
        return pkt

    r = Relay(a.a_port, a.b_port, loss=a.loss, seed=a.seed, mutate=show).start()
    print("relay a_side=%d b_side=%d" % (r.a_side, r.b_side), flush=True)
    try:
        r._thread.join()
    except KeyboardInterrupt:
        pass
    r.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
