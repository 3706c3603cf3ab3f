"""`microwitch dns check DOMAIN`: what the node would resolve for a domain (RFC 3263 NAPTR -> SRV -> A/AAAA,
in the order it would try the targets) and whether each target answers a SIP OPTIONS.

It runs the firmware's own resolver and locator (microwitch.dns, microwitch.node.federation) over real
sockets, so what it prints is what the node does. The resolver is --server, else /etc/resolv.conf.
Exit status: 0 when at least one target answered OPTIONS, 1 when resolution failed or no target answered,
2 for bad arguments.
"""
import os
import select
import socket
import sys
import time

from microwitch.dns.resolver import Resolver, pick_servers, server_error
from microwitch.node.federation import Federation
from microwitch.sip.headers import ParseError
from microwitch.sip.message import parse
from microwitch.sip.uri import parse_uri

_RESOLV_CONF = "/etc/resolv.conf"
_MAX_ROUNDS = 200     # DNS exchanges before giving up (each is bounded by the resolver's own timeouts)


def register(sub):
    p = sub.add_parser("dns", help="check a domain's SIP DNS records (dns check example.org)")
    dsub = p.add_subparsers(dest="dns_command", metavar="ACTION")
    dsub.required = True
    c = dsub.add_parser("check", help="show the NAPTR/SRV/A targets the node would use and probe each")
    c.add_argument("target", help="a domain (example.org) or a SIP URI (sip:bob@example.org:5070)")
    c.add_argument("--server", action="append", metavar="IP[:PORT]",
                   help="DNS server to ask (repeatable; default: nameservers in /etc/resolv.conf)")
    c.add_argument("--timeout-ms", type=int, default=2000, metavar="N",
                   help="wait N ms for each OPTIONS answer (default 2000)")
    c.add_argument("--no-probe", action="store_true", help="only resolve, do not send OPTIONS")
    c.set_defaults(func=run)


def _ms():
    return int(time.monotonic() * 1000)


def _err(text):
    print("microwitch dns check: " + text, file=sys.stderr)


class _Net:
    """The sockets behind the resolver's dns_udp / dns_tcp actions (what the node's adapter does)."""

    def __init__(self):
        self.udp = {}
        self.tcp = {}

    def _udp(self, host):
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        s = self.udp.get(fam)
        if s is None:
            s = self.udp[fam] = socket.socket(fam, socket.SOCK_DGRAM)
            s.bind(("::" if fam == socket.AF_INET6 else "0.0.0.0", 0))
        return s

    def do(self, acts):
        for kind, data, addr in acts:
            try:
                if kind == "dns_udp":
                    self._udp(addr[0]).sendto(data, addr)
                elif kind == "dns_tcp":
                    s = self.tcp.get(addr)
                    if s is None:
                        fam = socket.AF_INET6 if ":" in addr[0] else socket.AF_INET
                        s = socket.socket(fam, socket.SOCK_STREAM)
                        s.settimeout(2)
                        s.connect(addr)
                        self.tcp[addr] = s
                    s.sendall(data)
            except OSError as e:
                print("  (DNS %s to %s:%d failed: %s)" % (kind, addr[0], addr[1], e.strerror or e))

    def wait(self, fed, until):
        socks = list(self.udp.values()) + list(self.tcp.values())
        r, _, _ = select.select(socks, [], [], max(0, until - _ms()) / 1000.0) if socks else ([], [], [])
        done, acts = [], []
        for s in r:
            now = _ms()
            if s.type == socket.SOCK_DGRAM:
                try:
                    data, src = s.recvfrom(65535)
                except OSError:
                    continue  # ICMP unreachable from an earlier send: the resolver's timeout handles it
                d, a = fed.on_dns(data, (src[0], src[1]), now)
            else:
                addr = [k for k, v in self.tcp.items() if v is s][0]
                try:
                    data = s.recv(65535)
                except OSError:
                    data = b""
                if not data:
                    s.close()
                    del self.tcp[addr]
                    fed.resolver.tcp_closed(addr)
                    continue
                d, a = fed.on_dns_tcp(data, addr, now)
            done.extend(d)
            acts.extend(a)
        return done, acts

    def close(self):
        for s in list(self.udp.values()) + list(self.tcp.values()):
            s.close()


def resolve(uri, servers, log):
    """(result, trace) after running the lookup to completion over real sockets."""
    fed = Federation({}, Resolver(servers, os.urandom, log=log), os.urandom, log)
    net = _Net()
    try:
        res = fed.route(uri, _ms())
        if res[0] == "wait":
            net.do(res[2])
            for _ in range(_MAX_ROUNDS):
                nt = fed.next_timer()
                done, acts = net.wait(fed, nt if nt is not None else _ms() + 1000)
                net.do(acts)
                d, acts = fed.tick(_ms())
                net.do(acts)
                done.extend(d)
                if done:
                    res = done[0][1]
                    break
            else:
                res = ("fail", 504, "DNS lookups did not finish")
        final, trace = fed.explain(uri, _ms())  # everything is cached now: the same answer, with the steps
        if res[0] == "targets" and final[0] == "targets":
            res = final
        return res, trace
    finally:
        net.close()


def options(target, domain, timeout_ms):
    """Send one OPTIONS to (proto, host, port); the status line of the answer, or why there is none."""
    proto, host, port = target
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    tag = os.urandom(6).hex()
    req = ("OPTIONS sip:%s SIP/2.0\r\nVia: SIP/2.0/%s %s:%d;branch=z9hG4bK-mwdns-%s;rport\r\n"
           "Max-Forwards: 70\r\nFrom: <sip:dns-check@invalid>;tag=%s\r\nTo: <sip:%s>\r\nCall-ID: %s@mwdns\r\n"
           "CSeq: 1 OPTIONS\r\nAccept: application/sdp\r\nContent-Length: 0\r\n\r\n")
    s = socket.socket(fam, socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM)
    t0 = _ms()
    try:
        s.settimeout(timeout_ms / 1000.0)
        s.connect((host, port))
        me = s.getsockname()
        wire = (req % (domain, proto.upper(), me[0] if fam == socket.AF_INET else "[%s]" % me[0], me[1], tag, tag,
                       domain, tag)).encode()
        s.sendall(wire) if proto == "tcp" else s.send(wire)
        deadline = t0 + timeout_ms
        buf = b""
        while _ms() < deadline:
            s.settimeout(max(1, deadline - _ms()) / 1000.0)
            chunk = s.recv(65535)
            if not chunk:
                return "connection closed without an answer"
            buf = chunk if proto == "udp" else buf + chunk
            try:
                msg = parse(buf, proto != "udp")
            except ParseError as e:
                if proto == "tcp":
                    continue
                return "unparseable answer (%s)" % e.reason
            if msg.is_request or msg.status < 200:
                buf = b""
                continue
            return "%d %s (%d ms)" % (msg.status, msg.reason, _ms() - t0)
        return "no answer within %d ms" % timeout_ms
    except socket.timeout:
        return "no answer within %d ms" % timeout_ms
    except OSError as e:
        return "unreachable (%s)" % (e.strerror or e)
    finally:
        s.close()


def run(args):
    text = args.target.strip()
    if not text.startswith(("sip:", "sips:")):
        text = "sip:" + text
    try:
        uri = parse_uri(text)
    except ParseError as e:
        _err("%r is not a domain or SIP URI (%s)" % (args.target, e.reason))
        return 2
    if not uri.host:
        _err("%r names no host" % args.target)
        return 2
    if args.timeout_ms <= 0:
        _err("--timeout-ms must be positive")
        return 2
    conf = None
    if not args.server:
        try:
            with open(_RESOLV_CONF) as f:
                conf = f.read()
        except OSError:
            conf = None
    for spec in args.server or ():
        err = server_error(spec)
        if err:
            _err("--server %s: %s" % (spec, err))
            return 2
    servers = pick_servers(args.server, conf, None)
    if not servers:
        _err("no DNS server: give --server or a nameserver line in %s" % _RESOLV_CONF)
        return 1
    print("%s via DNS server %s" % (uri.to_str(), ", ".join(["%s:%d" % s for s in servers])))
    notes = []
    res, trace = resolve(uri, servers, notes.append)
    for line in trace:
        print("  " + line)
    for line in notes:
        if "rejected" in line or "truncated" in line:
            print("  (" + line + ")")
    if res[0] != "targets":
        print("cannot reach %s: %d %s" % (uri.host, res[1], res[2]))
        return 1
    print("targets, in the order the node tries them:")
    answered = 0
    for k, t in enumerate(res[1]):
        line = "  %d. %s:%s:%d" % (k + 1, t[0], "[%s]" % t[1] if ":" in t[1] else t[1], t[2])
        if not args.no_probe:
            outcome = options(t, uri.host, args.timeout_ms)
            if outcome[:1].isdigit():
                answered += 1
            line += "  OPTIONS -> " + outcome
        print(line)
    if args.no_probe:
        return 0
    return 0 if answered else 1
