"""Packet capture for the tests that prove where media goes: tshark on loopback into a pcap, the datagrams read
back, and what kind each one is. Also the UDP ports a process has open (Linux /proc)."""
import os
import shutil
import signal
import subprocess
import time

TSHARK = shutil.which("tshark") or "/usr/bin/tshark"   # ./build.sh installs it
SIP_STARTS = (b"REGISTER ", b"INVITE ", b"ACK ", b"BYE ", b"CANCEL ", b"OPTIONS ", b"SIP/2.0 ", b"\r\n")


def is_zrtp(d):
    return len(d) >= 12 and d[0] == 0x10 and d[4:8] == b"ZRTP"       # RFC 6189 5: the magic cookie


def is_rtp(d):
    return len(d) >= 8 and d[0] >> 6 == 2      # RTP, SRTP, RTCP, SRTCP: version 2 (SIP starts with text)


class Capture:
    """tshark on lo with a BPF filter, written to a pcap; read back with packets() or counted with count()."""

    def __init__(self, path, bpf="udp"):
        self.path = path
        self.bpf = bpf
        self.proc = None
        self._err = None

    def start(self, timeout=15.0):
        """Returns once tshark says it is capturing; AssertionError with its message if it never does."""
        self.err_path = self.path + ".err"
        self._err = open(self.err_path, "w")
        self.proc = subprocess.Popen([TSHARK, "-i", "lo", "-f", self.bpf, "-w", self.path, "-q"],
                                     stdout=subprocess.DEVNULL, stderr=self._err, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with open(self.err_path) as f:
                if "Capturing on" in f.read():
                    return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        with open(self.err_path) as f:
            raise AssertionError("tshark did not start capturing: " + f.read()[-2000:])

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self._err is not None:
            self._err.close()
            self._err = None

    def packets(self):
        """(source port, destination port, payload) of every UDP datagram in the capture."""
        p = subprocess.run([TSHARK, "-r", self.path, "-T", "fields", "-e", "udp.srcport", "-e", "udp.dstport",
                            "-e", "udp.payload"], capture_output=True, text=True, timeout=120)
        out = []
        for line in p.stdout.splitlines():
            cols = line.strip().split("\t")
            if len(cols) == 3 and cols[0] and cols[1]:
                out.append((int(cols[0]), int(cols[1]), bytes.fromhex(cols[2])))
        return out

    def count(self, display_filter, decode_as=()):
        cmd = [TSHARK, "-r", self.path, "-Y", display_filter, "-T", "fields", "-e", "frame.number"]
        for d in decode_as:
            cmd += ["-d", d]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        if p.returncode != 0:
            raise RuntimeError("tshark -r failed: " + p.stderr[-2000:])
        return len([l for l in p.stdout.splitlines() if l.strip()])


def udp_ports(pid):
    """Every local UDP port the process `pid` has a socket on (its socket inodes, looked up in /proc/net/udp
    and udp6)."""
    inodes = set()
    fd_dir = "/proc/%d/fd" % pid
    for fd in os.listdir(fd_dir):
        try:
            link = os.readlink(os.path.join(fd_dir, fd))
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    ports = set()
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                cols = line.split()
                if len(cols) > 9 and cols[9] in inodes:
                    ports.add(int(cols[1].rsplit(":", 1)[1], 16))
    return ports
