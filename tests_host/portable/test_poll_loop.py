"""The node's real poll loop (adapter/poll_loop.py) driven by an in-memory network (portable).

`Net` is a fake socket + select layer with the shape PollLoop expects (socket(), getaddrinfo(), poll(), the
constants) and a clock the test advances. Two simulated phones talk to the node through it: alice over UDP,
bob over TCP (his bytes dribble in small pieces, and the node's sends are accepted a few bytes at a time, so
framing and the POLLOUT path run). The whole call runs twice: with (host, port) tuples as CPython and the ESP32
port use, and with raw struct sockaddr bytes as MicroPython's unix port (OpenWrt) uses.
"""
import errno

from microwitch import config
from microwitch.compat import sha256
from microwitch.log import Logger
from microwitch.adapter.poll_loop import PollLoop
from microwitch.node.core import Node
from microwitch.sip.message import parse, frame
from microwitch.sip.digest import ha1_hex, response_hex
from microwitch.store.memory import MemoryBackend
from microwitch.store.users import Users
from microwitch.store.bindings import Bindings

NODE_IP = "192.0.2.1"
DOMAIN = "home.arpa"
ALICE = ("192.0.2.10", 5060)
BOB = ("192.0.2.20", 5070)
SDP_OFFER = b"v=0\r\no=alice 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
SDP_ANSWER = b"v=0\r\no=bob 2 2 IN IP4 192.0.2.20\r\ns=-\r\nc=IN IP4 192.0.2.20\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\n"
MAX_STEPS = 200  # poll rounds any one exchange may take


def _again():
    return OSError(errno.EAGAIN)


class Net:
    """The fake network: module-like (socket + select), addresses as tuples or raw sockaddr bytes."""
    AF_INET = 2
    AF_INET6 = 10
    SOCK_STREAM = 1
    SOCK_DGRAM = 2
    SOL_SOCKET = 1
    SO_REUSEADDR = 2
    SO_RCVBUF = None  # like MicroPython: the loop must not need it
    POLLIN = 1
    POLLOUT = 4
    POLLERR = 8
    POLLHUP = 16

    def __init__(self, raw):
        self.raw = raw
        self.t = 5000
        self.fds = 3
        self.udp = {}      # (host, port) -> bound UDP Sock
        self.listen = {}   # (host, port) -> listening TCP Sock
        self.phones = {}   # (host, port) -> Phone (UDP delivery)
        self.idle_ms = 0

    def ticks(self):
        return self.t

    def wall(self):
        return 1000000 + self.t // 1000

    def socket(self, fam, typ):
        return Sock(self, typ)

    def enc(self, addr):
        if not self.raw:
            return addr
        ip = [int(x) for x in addr[0].split(".")]
        return bytes([2, 0, addr[1] >> 8, addr[1] & 255] + ip + [0] * 8)  # sockaddr_in, family little-endian

    def dec(self, a):
        if not self.raw:
            if not isinstance(a, tuple):
                raise TypeError("tuple address expected")
            return a
        if isinstance(a, tuple):
            raise TypeError("this port takes raw sockaddr bytes")  # as MicroPython's unix port does
        return ("%d.%d.%d.%d" % (a[4], a[5], a[6], a[7]), (a[2] << 8) | a[3])

    def getaddrinfo(self, host, port, fam=0):
        return [(fam, 0, 0, "", self.enc((host, port)))]

    def poll(self):
        return Poll(self)


class Sock:
    def __init__(self, net, typ, peer=None):
        self.net = net
        self.typ = typ
        self.fd = net.fds
        net.fds += 1
        self.name = None
        self.inq = []             # UDP: [(data, raw addr)]; listener: [server-side Sock]
        self.inbuf = bytearray()  # TCP connection: bytes from the phone
        self.peer = peer          # TCP connection: the Phone
        self.closed = False
        self.peer_closed = False

    def fileno(self):
        return -1 if self.closed else self.fd

    def setsockopt(self, level, opt, value):
        if opt is None:
            raise TypeError("setsockopt with a missing constant")

    def setblocking(self, flag):
        pass

    def bind(self, addr):
        self.name = self.net.dec(addr)
        (self.net.udp if self.typ == Net.SOCK_DGRAM else self.net.listen)[self.name] = self

    def listen(self, backlog):
        pass

    def accept(self):
        if not self.inq:
            raise _again()
        conn = self.inq.pop(0)
        return conn, self.net.enc(conn.peer.addr)

    def recvfrom(self, n):
        if not self.inq:
            raise _again()
        data, addr = self.inq.pop(0)
        return data, addr

    def sendto(self, data, addr):
        self.net.phones[self.net.dec(addr)].got_udp(bytes(data))
        return len(data)

    def recv(self, n):
        if self.inbuf:
            data = bytes(self.inbuf[:n])
            self.inbuf[:n] = b""
            return data
        if self.peer_closed:
            return b""
        raise _again()

    def send(self, data):
        n = min(len(data), 300)  # a slow reader: the loop must queue the rest and wait for POLLOUT
        self.peer.got_tcp(bytes(data[:n]))
        return n

    def connect(self, addr):
        raise OSError(errno.ECONNREFUSED)

    def close(self):
        self.closed = True

    def ready(self):
        if self.typ == Net.SOCK_DGRAM or self.name is not None:
            return bool(self.inq)
        return bool(self.inbuf) or self.peer_closed


class Poll:
    """select.poll over fake sockets; returns (object, flags) like MicroPython. An idle poll advances time."""

    def __init__(self, net):
        self.net = net
        self.reg = {}

    def register(self, s, flags):
        self.reg[s] = flags

    def modify(self, s, flags):
        if s not in self.reg:
            raise OSError(errno.ENOENT)
        self.reg[s] = flags

    def unregister(self, s):
        del self.reg[s]

    def poll(self, ms):
        out = []
        for s, want in self.reg.items():
            got = 0
            if want & Net.POLLIN and s.ready():
                got |= Net.POLLIN
            if want & Net.POLLOUT:
                got |= Net.POLLOUT
            if got:
                out.append((s, got))
        if not out:
            self.net.t += ms
            self.net.idle_ms += ms
        return out


class Phone:
    """A scripted SIP phone: builds requests, answers digest challenges, collects what it receives."""

    def __init__(self, net, user, password, addr, proto):
        self.net = net
        self.user = user
        self.password = password
        self.addr = addr
        self.proto = proto
        self.got = []             # parsed messages, in arrival order
        self.stream = bytearray()
        self.conn = None
        self.cseq = 0
        self.n = 0
        if proto == "udp":
            net.phones[addr] = self
        else:
            self.conn = Sock(net, Net.SOCK_STREAM, self)
            net.listen[(NODE_IP, 5060)].inq.append(self.conn)

    def got_udp(self, data):
        self.got.append(parse(data))

    def got_tcp(self, data):
        self.stream += data
        while True:
            n = frame(self.stream)
            if not n:
                return
            self.got.append(parse(bytes(self.stream[:n]), True))
            self.stream[:n] = b""

    def send(self, data):
        if self.proto == "udp":
            self.net.udp[(NODE_IP, 5060)].inq.append((data, self.net.enc(self.addr)))
            return
        for i in range(0, len(data), 97):  # dribble: the node must reassemble by Content-Length
            self.conn.inbuf += data[i:i + 97]

    def via(self):
        self.n += 1
        return "SIP/2.0/%s %s:%d;branch=z9hG4bK%s%d;rport" % (self.proto.upper(), self.addr[0], self.addr[1],
                                                           self.user, self.n)

    def contact(self):
        tail = ";transport=tcp" if self.proto == "tcp" else ""
        return "<sip:%s@%s:%d%s>" % (self.user, self.addr[0], self.addr[1], tail)

    def request(self, method, uri, to, call_id, cseq, extra=(), body=b"", frm_tag="ft"):
        lines = ["%s %s SIP/2.0" % (method, uri), "Via: " + self.via(), "Max-Forwards: 70",
                 "From: <sip:%s@%s>;tag=%s%s" % (self.user, DOMAIN, self.user, frm_tag), "To: " + to,
                 "Call-ID: " + call_id, "CSeq: %d %s" % (cseq, method), "Contact: " + self.contact()]
        lines.extend(extra)
        if body:
            lines.append("Content-Type: application/sdp")
        lines.append("Content-Length: %d" % len(body))
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body

    def answer(self, req, status, reason, tag, body=b""):
        lines = ["SIP/2.0 %d %s" % (status, reason)]
        lines += ["Via: " + v for v in req.get_all("Via")]
        lines += ["Record-Route: " + v for v in req.get_all("Record-Route")]
        to = req.get("To")
        lines += ["From: " + req.get("From"), "To: " + (to if ";tag=" in to else to + ";tag=" + tag),
                  "Call-ID: " + req.get("Call-ID"), "CSeq: " + req.get("CSeq"), "Contact: " + self.contact()]
        if body:
            lines.append("Content-Type: application/sdp")
        lines.append("Content-Length: %d" % len(body))
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body

    def credentials(self, challenge, header, method, uri):
        nonce = challenge.split('nonce="')[1].split('"')[0]
        realm = challenge.split('realm="')[1].split('"')[0]
        ha1 = ha1_hex("MD5", self.user, realm, self.password)
        r = response_hex("MD5", ha1, nonce, "00000001", "c0ffee", "auth", method, uri)
        return ('%s: Digest username="%s", realm="%s", nonce="%s", uri="%s", response="%s", algorithm=MD5, '
                'qop=auth, nc=00000001, cnonce="c0ffee"' % (header, self.user, realm, nonce, uri, r))


def _md5_challenge(msg, header):
    return [v for v in msg.get_all(header) if "MD5" in v][0]


class Rand:
    def __init__(self):
        self.c = 0

    def __call__(self, n):
        out = b""
        while len(out) < n:
            self.c += 1
            out += sha256(b"rand%d" % self.c).digest()
        return out[:n]


def _setup(raw):
    net = Net(raw)
    cfg = config.load('{"domain": "%s", "listen": ["udp:%s:5060", "tcp:%s:5060"]}' % (DOMAIN, NODE_IP, NODE_IP))
    be = MemoryBackend()
    users = Users(be)
    users.load()
    users.add("alice@" + DOMAIN, "wonderland")
    users.add("bob@" + DOMAIN, "builder")
    node = Node(cfg, users, Bindings(be), Rand(), Logger("error", lambda s: None), b"k" * 32, [NODE_IP])
    loop = PollLoop(node, config.listen_addrs(cfg), node.log, net=net, ticks=net.ticks, wall=net.wall)
    node.set_listen(loop.bound)
    return net, loop, node


def _until(loop, phone, count):
    """Run poll rounds until `phone` has received `count` messages in all; return the new ones."""
    before = len(phone.got)
    for _ in range(MAX_STEPS):
        if len(phone.got) >= count:
            break
        loop.step(50)
    assert len(phone.got) >= count, "phone %s got %r" % (phone.user, [_label(m) for m in phone.got[before:]])
    return phone.got[before:]


def _label(m):
    return m.method if m.method else m.status


def _register(loop, phone):
    aor = "sip:%s@%s" % (phone.user, DOMAIN)
    phone.send(phone.request("REGISTER", "sip:" + DOMAIN, "<%s>" % aor, "reg-" + phone.user, 1,
                             ["Expires: 600"]))
    resp = _until(loop, phone, len(phone.got) + 1)[-1]
    assert resp.status == 401
    auth = phone.credentials(_md5_challenge(resp, "WWW-Authenticate"), "Authorization", "REGISTER", "sip:" + DOMAIN)
    phone.send(phone.request("REGISTER", "sip:" + DOMAIN, "<%s>" % aor, "reg-" + phone.user, 2,
                             ["Expires: 600", auth]))
    resp = _until(loop, phone, len(phone.got) + 1)[-1]
    assert resp.status == 200, resp.reason
    assert phone.contact()[1:-1] in resp.get("Contact")


def _call(raw):
    net, loop, node = _setup(raw)
    assert [b[0] for b in loop.bound] == ["udp", "tcp"]
    alice = Phone(net, "alice", "wonderland", ALICE, "udp")
    bob = Phone(net, "bob", "builder", BOB, "tcp")
    _register(loop, alice)
    _register(loop, bob)
    assert len(node.registrar.bindings) == 2
    bob_uri = "sip:bob@" + DOMAIN

    # INVITE: challenged by the proxy (a local caller must authenticate), ACKed, sent again with credentials
    invite = alice.request("INVITE", bob_uri, "<%s>" % bob_uri, "call-1", 1, body=SDP_OFFER)
    alice.send(invite)
    got = _until(loop, alice, len(alice.got) + 1)
    assert got[-1].status == 407
    ch = got[-1]
    ack = ("ACK %s SIP/2.0\r\nVia: %s\r\nMax-Forwards: 70\r\nFrom: %s\r\nTo: %s\r\nCall-ID: call-1\r\n"
           "CSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n" % (bob_uri, ch.get("Via"), ch.get("From"), ch.get("To")))
    alice.send(ack.encode())
    auth = alice.credentials(_md5_challenge(ch, "Proxy-Authenticate"), "Proxy-Authorization", "INVITE", bob_uri)
    alice.send(alice.request("INVITE", bob_uri, "<%s>" % bob_uri, "call-1", 2, [auth], SDP_OFFER))
    inv = _until(loop, bob, len(bob.got) + 1)[-1]
    assert inv.method == "INVITE"
    assert inv.body == SDP_OFFER  # media description untouched
    assert inv.uri == bob.contact()[1:-1]
    assert inv.get("Proxy-Authorization") is None  # our credentials are not passed on
    assert inv.get("Record-Route") is not None
    assert inv.get_all("Via")[0].startswith("SIP/2.0/TCP %s:5060" % NODE_IP)
    trying = [m for m in alice.got if m.status == 100]
    assert trying

    # 180 then 200 from bob over TCP reach alice over UDP
    bob.send(bob.answer(inv, 180, "Ringing", "bobtag"))
    ring = _until(loop, alice, len(alice.got) + 1)[-1]
    assert ring.status == 180 and len(ring.get_all("Via")) == 1
    bob.send(bob.answer(inv, 200, "OK", "bobtag", SDP_ANSWER))
    ok = _until(loop, alice, len(alice.got) + 1)[-1]
    assert ok.status == 200 and ok.body == SDP_ANSWER
    route = ok.get("Record-Route")
    to = ok.get("To")
    assert ";tag=bobtag" in to

    # ACK and BYE follow the Record-Route through the node to bob's TCP flow
    alice.send(alice.request("ACK", inv.uri, to, "call-1", 2, ["Route: " + route]))
    got = _until(loop, bob, len(bob.got) + 1)
    assert got[-1].method == "ACK" and got[-1].get("Route") is None
    alice.send(alice.request("BYE", inv.uri, to, "call-1", 3, ["Route: " + route]))
    bye = _until(loop, bob, len(bob.got) + 1)[-1]
    assert bye.method == "BYE"
    bob.send(bob.answer(bye, 200, "OK", "bobtag"))
    done = _until(loop, alice, len(alice.got) + 1)[-1]
    assert done.status == 200 and done.get("CSeq") == "3 BYE"

    # what each phone saw, in order
    assert [_label(m) for m in bob.got] == [401, 200, "INVITE", "ACK", "BYE"]
    seen = [_label(m) for m in alice.got]
    assert seen[:3] == [401, 200, 407] and seen[-3:] == [180, 200, 200] and 100 in seen
    # the node's TCP sends were throttled to 300 bytes a call: everything still arrived in order, nothing queued
    assert not any(c.outbuf for c in loop.conns.values())
    return net, loop, node


def test_call_through_poll_loop_tuple_addresses():
    _call(False)


def test_call_through_poll_loop_raw_sockaddr():
    _call(True)


def test_timers_run_from_the_loop_clock():
    """An INVITE to a phone that never answers: Timer A retransmits and Timer B/C end it, all driven by the
    loop's own clock reading the injected ticks (the idle polls advance it)."""
    net, loop, node = _setup(False)
    alice = Phone(net, "alice", "wonderland", ALICE, "udp")
    bob = Phone(net, "bob", "builder", ("192.0.2.30", 5060), "udp")
    _register(loop, alice)
    _register(loop, bob)
    bob_uri = "sip:bob@" + DOMAIN
    alice.send(alice.request("INVITE", bob_uri, "<%s>" % bob_uri, "call-2", 1, body=SDP_OFFER))
    ch = _until(loop, alice, len(alice.got) + 1)[-1]
    auth = alice.credentials(_md5_challenge(ch, "Proxy-Authenticate"), "Proxy-Authorization", "INVITE", bob_uri)
    alice.send(alice.request("INVITE", bob_uri, "<%s>" % bob_uri, "call-2", 2, [auth], SDP_OFFER))
    for _ in range(MAX_STEPS):
        if [m for m in alice.got if m.status and m.status >= 400 and m.get("CSeq") == "2 INVITE"]:
            break
        loop.step(1000)
    invites = [m for m in bob.got if m.method == "INVITE"]
    assert len(invites) >= 3  # Timer A retransmissions over UDP
    final = [m for m in alice.got if m.status and m.status >= 400 and m.get("CSeq") == "2 INVITE"]
    assert final and final[0].status == 408
    assert net.idle_ms >= 32000  # Timer B fired at 64*T1 of loop time, not wall time


def test_unparseable_tcp_stream_closes_only_that_connection():
    net, loop, node = _setup(True)
    alice = Phone(net, "alice", "wonderland", ALICE, "udp")
    bad = Phone(net, "mallory", "x", ("192.0.2.66", 6000), "tcp")
    bad.send(b"OPTIONS sip:x SIP/2.0\r\nContent-Length: banana\r\n\r\n")
    for _ in range(5):
        loop.step(10)
    assert bad.conn.closed and not loop.conns
    _register(loop, alice)  # the node still serves


def test_sockaddr_shapes_of_every_port():
    from microwitch.compat import sockaddr, sock_name
    assert sockaddr(("192.0.2.1", 5060)) == ("192.0.2.1", 5060)
    assert sockaddr(("2001:db8::1", 5060, 0, 0)) == ("2001:db8::1", 5060)  # CPython IPv6 4-tuple
    le = bytes([2, 0, 0x13, 0xC4, 192, 0, 2, 7]) + bytes(8)   # sockaddr_in, little-endian sa_family
    be = bytes([0, 2, 0x13, 0xC4, 10, 1, 2, 3]) + bytes(8)    # big-endian MIPS router
    assert sockaddr(le) == ("192.0.2.7", 5060)
    assert sockaddr(bytearray(be)) == ("10.1.2.3", 5060)
    six = bytes([10, 0, 0x16, 0x2E, 0, 0, 0, 0, 0x20, 0x01, 0x0D, 0xB8] + [0] * 10 + [0, 1, 0, 0, 0, 0])
    assert sockaddr(six) == ("2001:db8::1", 5678)
    mapped = bytes([10, 0, 0, 80, 0, 0, 0, 0] + [0] * 10 + [0xFF, 0xFF, 198, 51, 100, 7] + [0] * 4)
    assert sockaddr(mapped) == ("::ffff:198.51.100.7", 80)
    full = bytes([10, 0, 0, 80, 0, 0, 0, 0] + [0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 0, 0, 4] + [0] * 4)
    assert sockaddr(full) == ("1:0:2:0:3::4", 80)  # the longer zero run is the one compressed
    for bad in (b"\x02\x00\x13", bytes([7, 0, 0, 1, 1, 2, 3, 4])):
        try:
            sockaddr(bad)
        except ValueError:
            pass
        else:
            raise AssertionError("accepted %r" % bad)

    class NoName:
        pass

    class Named:
        def getsockname(self):
            return bytes([2, 0, 0x13, 0xC5, 127, 0, 0, 1]) + bytes(8)
    assert sock_name(NoName(), "192.0.2.1", 5060) == ("192.0.2.1", 5060)
    assert sock_name(Named(), "127.0.0.1", 0) == ("127.0.0.1", 5061)
