"""A bare SIP user agent over real loopback sockets, for tests that must see exactly which socket a message
arrives on: requests built by hand, digest answers computed here (RFC 7616 §3.4.1, MD5 or SHA-256, qop=auth),
framed reads over TCP (RFC 3261 §18.3, Content-Length) and UDP. Every read is bounded by a deadline.
"""
import hashlib
import re
import socket
import time

from nodeproc import status_of  # noqa: F401 (re-exported for the tests that use rawsip)

HOST = "127.0.0.1"
DOMAIN = "localhost"


def request(method, uri, via, frm, to, call_id, cseq, extra=(), body=b""):
    """Bytes of a request; `via`, `frm`, `to` are header values, `extra` more "Name: value" lines."""
    lines = ["%s %s SIP/2.0" % (method, uri), "Via: " + via, "Max-Forwards: 70", "From: " + frm, "To: " + to,
             "Call-ID: " + call_id, "CSeq: %d %s" % (cseq, method)]
    lines += list(extra)
    lines.append("Content-Length: %d" % len(body))
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def response_to(req, status, reason, to_tag, extra=(), body=b""):
    """Bytes of a UAS response to parsed request `req` (bytes): Via, Record-Route, From, Call-ID, CSeq copied."""
    lines = ["SIP/2.0 %d %s" % (status, reason)]
    for name in ("Via", "Record-Route"):
        lines += ["%s: %s" % (name, v) for v in headers(req, name)]
    lines.append("From: " + headers(req, "From")[0])
    lines.append("To: " + headers(req, "To")[0] + (";tag=" + to_tag if to_tag else ""))
    lines.append("Call-ID: " + headers(req, "Call-ID")[0])
    lines.append("CSeq: " + headers(req, "CSeq")[0])
    lines += list(extra)
    lines.append("Content-Length: %d" % len(body))
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def headers(data, name):
    """Values of header `name` (full name, any case) in a message's head, in order."""
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    return [v.strip() for n, v in re.findall(r"\r\n([A-Za-z-]+):([^\r\n]*)", head) if n.lower() == name.lower()]


def start_line(data):
    return data.split(b"\r\n", 1)[0].decode("latin-1")


def fields(value):
    """The parameters of a Digest challenge or credentials value as a dict (names lower-cased)."""
    return dict((k.lower(), a or b) for k, a, b in re.findall(r'(\w+)=(?:"([^"]*)"|([^\s,]+))', value))


def ha1(user, realm, password, algorithm="MD5"):
    h = hashlib.md5 if algorithm == "MD5" else hashlib.sha256
    return h(("%s:%s:%s" % (user, realm, password)).encode()).hexdigest()


def authorization(challenges, method, uri, user, password, nc="00000001", cnonce="0a4f113b", algorithm="MD5"):
    """(header value, nonce, response) answering the challenge of `algorithm` among `challenges`."""
    offers = [fields(c.split(" ", 1)[1]) for c in challenges]
    f = [o for o in offers if o.get("algorithm", "MD5").upper() == algorithm][0]
    h = hashlib.md5 if algorithm == "MD5" else hashlib.sha256
    a1 = ha1(user, f["realm"], password, algorithm)
    a2 = h(("%s:%s" % (method, uri)).encode()).hexdigest()
    resp = h(":".join((a1, f["nonce"], nc, cnonce, "auth", a2)).encode()).hexdigest()
    value = ('Digest username="%s", realm="%s", nonce="%s", uri="%s", response="%s", algorithm=%s, '
             'cnonce="%s", qop=auth, nc=%s' % (user, f["realm"], f["nonce"], uri, resp, algorithm, cnonce, nc))
    return value, f["nonce"], resp


class TcpReader:
    """Framed SIP messages from one connected TCP socket (CRLF keep-alives skipped)."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def read(self, timeout=3.0):
        """The next whole message, or None when `timeout` seconds pass or the peer closes."""
        deadline = time.monotonic() + timeout
        while True:
            self.buf = self.buf.lstrip(b"\r\n")
            end = self.buf.find(b"\r\n\r\n")
            if end >= 0:
                m = re.search(rb"\r\n(?:Content-Length|l)[ \t]*:[ \t]*(\d+)", self.buf[:end + 2], re.I)
                total = end + 4 + (int(m.group(1)) if m else 0)
                if len(self.buf) >= total:
                    msg, self.buf = self.buf[:total], self.buf[total:]
                    return msg
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return None
            if not chunk:
                return None
            self.buf += chunk


def udp_read(sock, timeout=3.0, final_only=False):
    """The next datagram on `sock` (skipping provisional responses with final_only), or None after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        sock.settimeout(left)
        try:
            data = sock.recv(65535)
        except socket.timeout:
            return None
        st = status_of(data)
        if final_only and st is not None and st < 200:
            continue
        return data


def register(send, read, user, password, contact, via, expires=300, call_id=None, log=None):
    """REGISTER sip:USER@localhost through `send(bytes)` / `read() -> bytes|None`, answering one 401 with
    `password`. Returns the final status (None on silence). `log` collects (nonce, response) pairs sent."""
    call_id = call_id or "reg-%s-%x" % (user, int(time.monotonic() * 1e6))
    uri = "sip:" + DOMAIN
    auth = None
    for cseq in (1, 2):
        extra = ["Contact: <%s>" % contact, "Expires: %d" % expires]
        if auth:
            extra.append("Authorization: " + auth)
        send(request("REGISTER", uri, via % cseq, "<sip:%s@%s>;tag=r%s" % (user, DOMAIN, cseq),
                     "<sip:%s@%s>" % (user, DOMAIN), call_id, cseq, extra))
        while True:
            data = read()
            if data is None:
                return None
            st = status_of(data)
            if st is not None and st >= 200:
                break
        if st != 401 or cseq == 2:
            return st
        auth, nonce, resp = authorization(headers(data, "WWW-Authenticate"), "REGISTER", uri, user, password)
        if log is not None:
            log.append((nonce, resp))
    return None
