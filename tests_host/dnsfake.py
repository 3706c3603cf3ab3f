"""A scriptable DNS server on real sockets for host tests (UDP and TCP on one port).

It answers from a `_dns_fake.Zone` or, with `forward=(ip, port)`, relays every query to a real server (dnsmasq)
and passes its answer back. Per name suffix it can misbehave on UDP: "truncate" (TC set, the real answer only
over TCP), "wrong_id", "loop" (a compression pointer to itself), "oversized" (a 600-octet datagram). Threads
serve both transports; `close()` stops them. Run as a script (inside a namespace) it serves until killed:

    dnsfake.py --listen IP [--port 53] --forward IP:PORT [--misbehave SUFFIX=MODE ...]
"""
import argparse
import os
import socket
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "firmware"))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "portable"))

from microwitch.dns import message as dm  # noqa: E402
from _dns_fake import Zone  # noqa: E402

MODES = ("ok", "truncate", "wrong_id", "loop", "oversized")


class FakeDns:
    def __init__(self, records=None, host="127.0.0.1", ttl=10, mode="ok", port=0, forward=None, misbehave=None):
        self.zone = Zone(records or {}, ttl)
        self.mode = mode
        self.forward = forward
        self.misbehave = dict(misbehave or {})
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind((host, port))
        self.port = self.udp.getsockname()[1]
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.tcp.bind((host, self.port))
        self.tcp.listen(8)
        self.addr = (host, self.port)
        self.udp_queries = 0
        self.tcp_queries = 0
        self._stop = False
        self._threads = [threading.Thread(target=self._serve_udp, daemon=True),
                         threading.Thread(target=self._serve_tcp, daemon=True)]
        for t in self._threads:
            t.start()

    def answer(self, query, tcp):
        if self.forward is None:
            return self.zone.answer(query)
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM if tcp else socket.SOCK_DGRAM)
        s.settimeout(2)
        try:
            s.connect(self.forward)
            if tcp:
                s.sendall(dm.tcp_frame(query))
                buf = b""
                while len(buf) < 2 or len(buf) < 2 + ((buf[0] << 8) | buf[1]):
                    chunk = s.recv(65535)
                    if not chunk:
                        return None
                    buf += chunk
                return buf[2:]
            s.send(query)
            return s.recv(65535)
        except OSError:
            return None
        finally:
            s.close()

    def _mode_for(self, query):
        if self.mode != "ok":
            return self.mode
        try:
            name = dm.decode(query, False).questions[0][0]
        except (dm.DnsError, IndexError):
            return "ok"
        for suffix, mode in self.misbehave.items():
            if name == suffix or name.endswith("." + suffix):
                return mode
        return "ok"

    def _bad(self, mode, query, good):
        if mode == "truncate":
            q = dm.decode(query, False)
            return dm.encode(dm.Message(q.id, 0x8380, q.questions))
        if mode == "wrong_id":
            return bytes([good[0] ^ 0xFF, good[1]]) + good[2:]
        if mode == "loop":
            return good[:4] + b"\x00\x01\x00\x00\x00\x00\x00\x00" + b"\xc0\x0c\x00\x01\x00\x01"
        if mode == "oversized":
            return good + b"\x00" * (600 - len(good))
        return good

    def _serve_udp(self):
        self.udp.settimeout(0.2)
        while not self._stop:
            try:
                data, src = self.udp.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            self.udp_queries += 1
            try:
                good = self.answer(data, False)
                if good is None:
                    continue
                mode = self._mode_for(data)
                self.udp.sendto(self._bad(mode, data, good), src)
            except dm.DnsError:
                continue
            except OSError:
                if self._stop:
                    return

    def _serve_tcp(self):
        self.tcp.settimeout(0.2)
        while not self._stop:
            try:
                c, _ = self.tcp.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            c.settimeout(2)
            try:
                buf = b""
                while True:
                    chunk = c.recv(4096)
                    if not chunk:
                        break
                    buf += chunk
                    while len(buf) >= 2 and len(buf) >= 2 + ((buf[0] << 8) | buf[1]):
                        n = (buf[0] << 8) | buf[1]
                        self.tcp_queries += 1
                        reply = self.answer(buf[2:2 + n], True)
                        if reply is not None:
                            c.sendall(dm.tcp_frame(reply))
                        buf = buf[2 + n:]
            except (OSError, dm.DnsError):
                pass
            finally:
                c.close()

    def close(self):
        self._stop = True
        self.udp.close()
        self.tcp.close()
        for t in self._threads:
            t.join(2)


def main(argv):
    p = argparse.ArgumentParser()
    p.add_argument("--listen", required=True)
    p.add_argument("--port", type=int, default=53)
    p.add_argument("--forward", required=True, metavar="IP:PORT")
    p.add_argument("--misbehave", action="append", default=[], metavar="SUFFIX=MODE")
    args = p.parse_args(argv)
    host, port = args.forward.rsplit(":", 1)
    bad = {}
    for m in args.misbehave:
        suffix, mode = m.split("=")
        if mode not in MODES:
            p.error("mode must be one of %s" % ", ".join(MODES))
        bad[suffix] = mode
    srv = FakeDns(host=args.listen, port=args.port, forward=(host, int(port)), misbehave=bad)
    print("serving %s:%d" % srv.addr, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        srv.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
