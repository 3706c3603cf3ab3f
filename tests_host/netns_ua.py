#!/usr/bin/env python3
"""A small SIP user agent for the federation tests, run inside a network namespace (stdlib only).

    netns_ua.py uas --bind IP:PORT --registrar IP:PORT --user bob --domain b.test --password PW
                    [--registrar IP:PORT ...] --rtp-port N
    netns_ua.py uac --bind IP:PORT --proxy IP:PORT --user alice --domain a.test --password PW
                    --to sip:bob@b.test --rtp-port N [--rtp-packets 20] [--timeout 60]

The UAS registers at every --registrar (digest, RFC 3261 §22), prints {"event": "registered", ...} per
registrar, then answers each INVITE with 180 and 200 (SDP naming its own address and --rtp-port), counts RTP
packets and their source addresses, answers BYE with 200 and prints {"event": "call", ...}. It runs until
killed. The UAC sends one INVITE through its outbound proxy (answering a 407 once), ACKs, sends RTP straight
to the address in the answer's SDP, hangs up with BYE along the route set (Record-Route) and prints one JSON
result: {"status": ..., "reason": ..., "bye": ..., "setup_ms": ...}. Every wait is bounded.
"""
import argparse
import hashlib
import json
import os
import re
import socket
import sys
import time

T1 = 0.5


def _addr(text):
    host, port = text.rsplit(":", 1)
    return (host, int(port))


def _now():
    return time.monotonic()


def _emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def parse(data):
    """(start line, [(name, value)], body) of a SIP message (compact names expanded for the few we read)."""
    text = data.decode("utf-8", "replace")
    head, _, body = text.partition("\r\n\r\n")
    lines = head.split("\r\n")
    hs = []
    compact = {"v": "Via", "f": "From", "t": "To", "i": "Call-ID", "m": "Contact", "l": "Content-Length",
               "c": "Content-Type"}
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and hs:
            hs[-1] = (hs[-1][0], hs[-1][1] + " " + line.strip())
            continue
        n, _, v = line.partition(":")
        n = n.strip()
        hs.append((compact.get(n.lower(), n), v.strip()))
    return lines[0], hs, body


def get(hs, name):
    for n, v in hs:
        if n.lower() == name.lower():
            return v
    return None


def get_all(hs, name):
    out = []
    for n, v in hs:
        if n.lower() == name.lower():
            out.extend([x.strip() for x in re.split(r",(?=\s*<)", v)])
    return out


def build(start, headers, body=""):
    out = start + "\r\n"
    for n, v in headers:
        out += "%s: %s\r\n" % (n, v)
    out += "Content-Length: %d\r\n\r\n" % len(body.encode())
    return (out + body).encode()


def digest(challenge, method, uri, user, password):
    f = dict((k.lower(), a or b) for k, a, b in re.findall(r'(\w+)=(?:"([^"]*)"|([^\s,]+))', challenge))
    alg = f.get("algorithm", "MD5").upper()
    h = hashlib.md5 if alg == "MD5" else hashlib.sha256
    ha1 = h(("%s:%s:%s" % (user, f["realm"], password)).encode()).hexdigest()
    ha2 = h(("%s:%s" % (method, uri)).encode()).hexdigest()
    cnonce, nc = os.urandom(4).hex(), "00000001"
    if "qop" in f:
        resp = h(":".join((ha1, f["nonce"], nc, cnonce, "auth", ha2)).encode()).hexdigest()
        return ('Digest username="%s", realm="%s", nonce="%s", uri="%s", response="%s", algorithm=%s, '
                'cnonce="%s", qop=auth, nc=%s' % (user, f["realm"], f["nonce"], uri, resp, alg, cnonce, nc))
    resp = h(":".join((ha1, f["nonce"], ha2)).encode()).hexdigest()
    return 'Digest username="%s", realm="%s", nonce="%s", uri="%s", response="%s", algorithm=%s' % (
        user, f["realm"], f["nonce"], uri, resp, alg)


def uri_addr(uri):
    """(host, port) of a SIP URI or name-addr."""
    m = re.search(r"sips?:(?:[^@;>]*@)?(\[[^\]]+\]|[^:;>]+)(?::(\d+))?", uri)
    return (m.group(1).strip("[]"), int(m.group(2) or 5060))


class Endpoint:
    def __init__(self, bind):
        self.bind = bind
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(bind)
        self.n = 0

    def branch(self):
        self.n += 1
        return "z9hG4bK-ua-%s-%d" % (os.urandom(4).hex(), self.n)

    def via(self, branch):
        return "SIP/2.0/UDP %s:%d;branch=%s;rport" % (self.bind[0], self.bind[1], branch)

    def send(self, data, dest):
        self.sock.sendto(data, dest)

    def recv(self, deadline):
        while True:
            left = deadline - _now()
            if left <= 0:
                return None, None
            self.sock.settimeout(left)
            try:
                data, src = self.sock.recvfrom(65535)
            except socket.timeout:
                return None, None
            except OSError:
                continue
            if data.strip():
                return data, src

    def transaction(self, data, dest, method, cseq, deadline, on_provisional=None):
        """Send a request (retransmitting on UDP until any response) and return the final (start, hs, body)."""
        nxt = _now() + T1
        interval = T1
        self.send(data, dest)
        got_any = False
        while _now() < deadline:
            msg, src = self.recv(min(deadline, nxt) if not got_any else deadline)
            if msg is None:
                if not got_any and _now() >= nxt:
                    interval = min(interval * 2, 4.0)
                    nxt = _now() + interval
                    self.send(data, dest)
                continue
            start, hs, body = parse(msg)
            if not start.startswith("SIP/2.0 "):
                self.stray(start, hs, src)
                continue
            cs = get(hs, "CSeq") or ""
            if cs.split()[:2] != [str(cseq), method]:
                continue
            code = int(start.split()[1])
            got_any = True
            if code < 200:
                if on_provisional:
                    on_provisional(code)
                continue
            return start, hs, body
        return None

    def stray(self, start, hs, src):
        """A request while waiting for a response (e.g. the peer's BYE): 200 OK it."""
        if start.split()[0] in ("BYE", "OPTIONS", "INFO", "NOTIFY"):
            self.respond(hs, 200, "OK", src)

    def respond(self, hs, code, reason, src, extra=(), body="", to_tag=None):
        out = []
        for n, v in hs:
            if n.lower() in ("via", "from", "call-id", "cseq", "record-route"):
                out.append((n, v))
            elif n.lower() == "to":
                out.append((n, v if (to_tag is None or ";tag=" in v) else v + ";tag=" + to_tag))
        out.extend(extra)
        # responses go back to where the request came from (the proxy), §18.2.2 with rport
        self.send(build("SIP/2.0 %d %s" % (code, reason), out, body), src)


def register(ep, registrar, user, domain, password, deadline):
    call_id = os.urandom(8).hex() + "@ua"
    tag = os.urandom(4).hex()
    ruri = "sip:" + domain
    auth = None
    for cseq in (1, 2):
        hs = [("Via", ep.via(ep.branch())), ("Max-Forwards", "70"),
              ("From", "<sip:%s@%s>;tag=%s" % (user, domain, tag)), ("To", "<sip:%s@%s>" % (user, domain)),
              ("Call-ID", call_id), ("CSeq", "%d REGISTER" % cseq),
              ("Contact", "<sip:%s@%s:%d>" % (user, ep.bind[0], ep.bind[1])), ("Expires", "600")]
        if auth:
            hs.append(("Authorization", auth))
        r = ep.transaction(build("REGISTER %s SIP/2.0" % ruri, hs), registrar, "REGISTER", cseq, deadline)
        if r is None:
            return 0
        code = int(r[0].split()[1])
        if code == 401 and auth is None:
            auth = digest(get(r[1], "WWW-Authenticate"), "REGISTER", ruri, user, password)
            continue
        return code
    return 0


def sdp(ip, port, sess):
    return ("v=0\r\no=- %d 1 IN IP4 %s\r\ns=-\r\nc=IN IP4 %s\r\nt=0 0\r\nm=audio %d RTP/AVP 0\r\n"
            "a=rtpmap:0 PCMU/8000\r\n" % (sess, ip, ip, port))


def sdp_addr(body):
    c = re.search(r"c=IN IP4 ([0-9.]+)", body)
    m = re.search(r"m=audio (\d+)", body)
    return (c.group(1), int(m.group(1))) if c and m else None


def run_uas(args):
    ep = Endpoint(_addr(args.bind))
    rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rtp.bind((ep.bind[0], args.rtp_port))
    rtp.setblocking(False)
    for r in args.registrar:
        code = register(ep, _addr(r), args.user, args.domain, args.password, _now() + 10)
        _emit({"event": "registered" if code == 200 else "register_failed", "registrar": r, "status": code})
    calls = {}
    while True:
        ep.sock.settimeout(0.05)
        try:
            data, src = ep.sock.recvfrom(65535)
        except socket.timeout:
            data = None
        while True:  # drain RTP
            try:
                pkt, rsrc = rtp.recvfrom(2048)
            except OSError:
                break
            for c in calls.values():
                if c["state"] != "done":  # RTP may overtake the ACK, which crosses two proxies
                    c["rtp"] += 1
                    c["rtp_from"]["%s:%d" % rsrc] = 1
        if not data or not data.strip():
            continue
        start, hs, body = parse(data)
        if start.startswith("SIP/2.0"):
            continue
        method = start.split()[0]
        cid = get(hs, "Call-ID")
        if method == "INVITE":
            c = calls.get(cid)
            if c is None:
                c = calls[cid] = {"tag": os.urandom(4).hex(), "state": "ringing", "rtp": 0, "rtp_from": {},
                                  "from": get(hs, "From"), "ruri": start.split()[1], "offer": sdp_addr(body),
                                  "via": len(get_all(hs, "Via")), "rr": get_all(hs, "Record-Route")}
            contact = [("Contact", "<sip:%s@%s:%d>" % (args.user, ep.bind[0], ep.bind[1])),
                       ("Content-Type", "application/sdp")]
            ep.respond(hs, 180, "Ringing", src, to_tag=c["tag"])
            ep.respond(hs, 200, "OK", src, contact, sdp(ep.bind[0], args.rtp_port, 2), to_tag=c["tag"])
        elif method == "ACK":
            c = calls.get(cid)
            if c is not None:
                c["state"] = "up"
        elif method == "BYE":
            ep.respond(hs, 200, "OK", src)
            c = calls.get(cid)
            if c is not None and c["state"] != "done":
                c["state"] = "done"
                _emit({"event": "call", "from": c["from"], "ruri": c["ruri"], "rtp": c["rtp"],
                       "rtp_from": sorted(c["rtp_from"]), "offer": c["offer"], "vias": c["via"],
                       "record_route": c["rr"], "bye_from": "%s:%d" % src})
        elif method == "CANCEL":
            ep.respond(hs, 200, "OK", src)
        else:
            ep.respond(hs, 200 if method == "OPTIONS" else 405, "OK" if method == "OPTIONS" else "Not Allowed", src)


def run_uac(args):
    ep = Endpoint(_addr(args.bind))
    proxy = _addr(args.proxy)
    rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rtp.bind((ep.bind[0], args.rtp_port))
    t0 = _now()
    deadline = t0 + args.timeout
    call_id = os.urandom(8).hex() + "@ua"
    tag = os.urandom(4).hex()
    frm = "<sip:%s@%s>;tag=%s" % (args.user, args.domain, tag)
    auth = None
    result = {"status": 0, "reason": "no final response within %d s" % args.timeout}
    provisional = []
    for cseq in (1, 2):
        inv_branch = ep.branch()
        hs = [("Via", ep.via(inv_branch)), ("Max-Forwards", "70"), ("From", frm), ("To", "<%s>" % args.to),
              ("Call-ID", call_id), ("CSeq", "%d INVITE" % cseq),
              ("Contact", "<sip:%s@%s:%d>" % (args.user, ep.bind[0], ep.bind[1])),
              ("Content-Type", "application/sdp")]
        if auth:
            hs.append(("Proxy-Authorization", auth))
        r = ep.transaction(build("INVITE %s SIP/2.0" % args.to, hs, sdp(ep.bind[0], args.rtp_port, 1)), proxy,
                           "INVITE", cseq, deadline, provisional.append)
        if r is None:
            break
        start, rhs, body = r
        code = int(start.split()[1])
        result = {"status": code, "reason": start.split(" ", 2)[2] if start.count(" ") >= 2 else "",
                  "setup_ms": int((_now() - t0) * 1000), "provisional": provisional}
        if code >= 300:
            # ACK for a non-2xx: same branch, hop by hop (§17.1.1.3)
            ack = [("Via", ep.via(inv_branch)), ("Max-Forwards", "70"), ("From", frm), ("To", get(rhs, "To")),
                   ("Call-ID", call_id), ("CSeq", "%d ACK" % cseq)]
            ep.send(build("ACK %s SIP/2.0" % args.to, ack), proxy)
            if code == 407 and auth is None:
                auth = digest(get(rhs, "Proxy-Authenticate"), "INVITE", args.to, args.user, args.password)
                continue
            break
        # 2xx: dialog with the route set from Record-Route (reversed at the UAC, §12.1.2)
        to = get(rhs, "To")
        remote = get(rhs, "Contact").strip("<>").split(">")[0]
        routes = list(reversed(get_all(rhs, "Record-Route")))
        nxt = uri_addr(routes[0]) if routes else uri_addr(remote)
        def in_dialog(method, n):
            h = [("Via", ep.via(ep.branch())), ("Max-Forwards", "70"), ("From", frm), ("To", to),
                 ("Call-ID", call_id), ("CSeq", "%d %s" % (n, method))]
            for rr in routes:
                h.append(("Route", rr))
            return build("%s %s SIP/2.0" % (method, remote), h)
        ep.send(in_dialog("ACK", cseq), nxt)
        media = sdp_addr(body)
        result["answer"] = media
        result["record_route"] = routes
        sent = 0
        if media:
            for k in range(args.rtp_packets):
                pkt = bytes([0x80, 0x00, 0, k & 0xFF, 0, 0, 0, k, 1, 2, 3, 4]) + b"\xff" * 160
                rtp.sendto(pkt, media)
                sent += 1
                time.sleep(0.02)
        result["rtp_sent"] = sent
        r = ep.transaction(in_dialog("BYE", cseq + 1), nxt, "BYE", cseq + 1, _now() + 10)
        result["bye"] = int(r[0].split()[1]) if r else 0
        break
    _emit(result)
    return 0


def main(argv):
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="mode", required=True)
    s = sub.add_parser("uas")
    s.add_argument("--bind", required=True)
    s.add_argument("--registrar", action="append", required=True)
    s.add_argument("--user", required=True)
    s.add_argument("--domain", required=True)
    s.add_argument("--password", required=True)
    s.add_argument("--rtp-port", type=int, required=True)
    c = sub.add_parser("uac")
    c.add_argument("--bind", required=True)
    c.add_argument("--proxy", required=True)
    c.add_argument("--user", required=True)
    c.add_argument("--domain", required=True)
    c.add_argument("--password", required=True)
    c.add_argument("--to", required=True)
    c.add_argument("--rtp-port", type=int, required=True)
    c.add_argument("--rtp-packets", type=int, default=20)
    c.add_argument("--timeout", type=float, default=60)
    args = p.parse_args(argv)
    return run_uas(args) if args.mode == "uas" else run_uac(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
