"""`microwitch dns check` against a DNS server and SIP responders on loopback: the printed resolution and
target order, OPTIONS probing, TCP fallback on truncation, NXDOMAIN and bad replies."""
import os
import socket
import subprocess
import sys
import threading

from dnsfake import FakeDns
from nodeproc import MICROWITCH, REPO
from microwitch.dns import message as dm


class SipResponder:
    """Answers every OPTIONS on a UDP port with 200 OK (echoing Via/From/To/Call-ID/CSeq)."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.count = 0
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        while True:
            try:
                data, src = self.sock.recvfrom(65535)
            except OSError:
                return
            self.count += 1
            lines = data.decode().split("\r\n")
            keep = [l for l in lines if l.split(":")[0] in ("Via", "From", "To", "Call-ID", "CSeq")]
            resp = "SIP/2.0 200 OK\r\n" + "\r\n".join(keep) + "\r\nContent-Length: 0\r\n\r\n"
            self.sock.sendto(resp.encode(), src)

    def close(self):
        self.sock.close()


def _closed_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _check(dns, target, *extra):
    p = subprocess.run([sys.executable, MICROWITCH, "dns", "check", target, "--server", "%s:%d" % dns.addr,
                        "--timeout-ms", "1500"] + list(extra), capture_output=True, text=True, timeout=60, cwd=REPO)
    return p.returncode, p.stdout + p.stderr


def _zone(good_port, dead_port):
    return {
        "b.test": {dm.NAPTR: [(10, 10, "s", "SIP+D2U", "", "_sip._udp.b.test")]},
        "_sip._udp.b.test": {dm.SRV: [(10, 0, dead_port, "n1.b.test"), (20, 0, good_port, "n2.b.test")]},
        "n1.b.test": {dm.A: ["127.0.0.1"]},
        "n2.b.test": {dm.A: ["127.0.0.1"]},
    }


def test_check_prints_targets_in_order_and_probes_them():
    sip = SipResponder()
    dead = _closed_port()
    dns = FakeDns(_zone(sip.port, dead))
    try:
        rc, out = _check(dns, "b.test")
    finally:
        dns.close()
        sip.close()
    assert rc == 0, out
    assert 'NAPTR b.test 10 10 "s" "SIP+D2U" "" _sip._udp.b.test' in out
    assert "SRV _sip._udp.b.test 10 0 %d n1.b.test" % dead in out
    assert "A n2.b.test 127.0.0.1" in out
    lines = out.splitlines()
    first = [l for l in lines if l.strip().startswith("1. ")][0]
    second = [l for l in lines if l.strip().startswith("2. ")][0]
    assert "udp:127.0.0.1:%d" % dead in first and "unreachable" in first
    assert "udp:127.0.0.1:%d" % sip.port in second and "200 OK" in second
    assert sip.count == 1


def test_truncated_udp_falls_back_to_tcp():
    sip = SipResponder()
    dns = FakeDns(_zone(sip.port, sip.port), mode="truncate")
    try:
        rc, out = _check(dns, "b.test", "--no-probe")
        tcp = dns.tcp_queries
    finally:
        dns.close()
        sip.close()
    assert rc == 0, out
    assert "truncated" in out and tcp >= 3   # NAPTR, SRV and A all came over TCP
    assert "1. udp:127.0.0.1:%d" % sip.port in out


def test_nxdomain_and_bad_replies_fail_with_a_reason():
    dns = FakeDns({})
    try:
        rc, out = _check(dns, "nowhere.test")
    finally:
        dns.close()
    assert rc == 1 and "404" in out and "NXDOMAIN" in out and "nowhere.test" in out
    for mode, word in (("wrong_id", "matches no query"), ("loop", "loop"), ("oversized", "oversized")):
        dns = FakeDns(_zone(5060, 5060), mode=mode)
        try:
            rc, out = _check(dns, "b.test")
        finally:
            dns.close()
        assert rc == 1 and "rejected" in out and word in out and "504" in out, (mode, out)


def test_bad_arguments():
    dns = FakeDns({})
    try:
        rc, out = _check(dns, "sip:")
        assert rc == 2 and "microwitch dns check" in out
        p = subprocess.run([sys.executable, MICROWITCH, "dns", "check", "b.test", "--server", "dns.example"],
                           capture_output=True, text=True, timeout=60, cwd=REPO)
        assert p.returncode == 2 and "--server dns.example: must be a numeric IP address" in p.stderr
        for bad in ("999.1.1.1", "10.0.0", "1.2.3.4:0"):
            p = subprocess.run([sys.executable, MICROWITCH, "dns", "check", "b.test", "--server", bad, "--no-probe"],
                               capture_output=True, text=True, timeout=60, cwd=REPO)
            assert p.returncode == 2 and ("--server %s: must" % bad) in p.stderr, (bad, p.stderr)
        rc, out = _check(dns, "sips:b.test")
        assert rc == 1 and "TLS" in out
    finally:
        dns.close()
