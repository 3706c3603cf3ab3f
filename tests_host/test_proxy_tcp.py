"""A phone registered over TCP is called over the connection it registered on (RFC 5626 §5.3 idea, RFC 3261
§18.2.2 / §18.1.1): the real node (nodeproc.Node), a raw TCP phone and a UDP caller, all on loopback.

The phone keeps its REGISTER connection open and also listens, on the port its Contact names, with a TCP
listener and a UDP socket. The call must arrive on the registration connection: an INVITE on the listener (a new
connection to the Contact) or on UDP would work on loopback but not behind NAT, so either fails the test.
"""
import shutil
import socket
import tempfile

import pytest

import nodeproc
import rawsip

HOST = nodeproc.HOST
DOMAIN = nodeproc.DOMAIN
WAIT_S = 3.0            # bound on each expected message
QUIET_S = 0.3           # how long nothing must arrive where nothing should
PASSWORD = "tcp-phone-pw"


@pytest.fixture
def node():
    work = tempfile.mkdtemp(prefix="mw-proxy-tcp-")
    n = nodeproc.Node(work, users=[("bob", PASSWORD, DOMAIN)])
    n.start()
    yield n
    n.stop()
    shutil.rmtree(work, ignore_errors=True)


class Phone:
    """bob: a TCP connection to the node (the flow), plus a TCP listener and a UDP socket on his Contact port."""

    def __init__(self, node):
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind((HOST, 0))
        self.listener.listen(4)
        self.port = self.listener.getsockname()[1]
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind((HOST, self.port))
        self.conn = socket.create_connection(node.tcp, timeout=WAIT_S)
        self.reader = rawsip.TcpReader(self.conn)
        self.contact = "sip:bob@%s:%d;transport=tcp" % (HOST, self.port)

    def register(self):
        via = "SIP/2.0/TCP %s:%d;rport;branch=z9hG4bKtreg%%d" % (HOST, self.port)
        return rawsip.register(self.conn.sendall, lambda: self.reader.read(WAIT_S), "bob", PASSWORD,
                               self.contact, via)

    def nothing_elsewhere(self):
        """No connection on the listener and no datagram on the UDP socket."""
        self.listener.settimeout(QUIET_S)
        try:
            extra, _ = self.listener.accept()
            extra.close()
            return "a new TCP connection to the Contact port"
        except socket.timeout:
            pass
        if rawsip.udp_read(self.udp, QUIET_S) is not None:
            return "a UDP datagram on the Contact port"
        return None

    def close(self):
        for s in (self.conn, self.listener, self.udp):
            s.close()


def test_call_to_a_tcp_registered_phone_reuses_its_registration_connection(node):
    phone = Phone(node)
    caller = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    caller.bind((HOST, 0))
    cport = caller.getsockname()[1]
    try:
        assert phone.register() == 200
        src = phone.conn.getsockname()
        # the binding remembers the connection's far end (our ephemeral port), not the Contact's port
        assert [b["source"] for b in node.bindings() if b["aor"] == "sip:bob@localhost"] == ["tcp:%s:%d" % src]
        sdp = b"v=0\r\no=carol 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
        invite = rawsip.request("INVITE", "sip:bob@%s" % DOMAIN,
                                "SIP/2.0/UDP %s:%d;rport;branch=z9hG4bKtcpcall1" % (HOST, cport),
                                "<sip:carol@remote.example>;tag=car1", "<sip:bob@%s>" % DOMAIN, "tcp-call-1", 1,
                                ["Contact: <sip:carol@%s:%d>" % (HOST, cport), "Content-Type: application/sdp"],
                                sdp)
        caller.sendto(invite, node.udp)
        got = phone.reader.read(WAIT_S)
        assert got is not None, "no INVITE on the registration connection; node:\n" + node.output()[-2000:]
        assert rawsip.start_line(got) == "INVITE %s SIP/2.0" % phone.contact
        assert got.endswith(sdp)
        vias = rawsip.headers(got, "Via")
        assert vias[0].startswith("SIP/2.0/TCP ") and len(vias) == 2
        rr = rawsip.headers(got, "Record-Route")
        assert len(rr) == 2 and rr[0].endswith(";transport=tcp;lr>") and "transport" not in rr[1]  # RFC 5658
        assert phone.nothing_elsewhere() is None
        # bob answers on the same connection; the 200 reaches carol over UDP
        phone.conn.sendall(rawsip.response_to(got, 200, "OK", "bob1", ["Contact: <%s>" % phone.contact]))
        ok = rawsip.udp_read(caller, WAIT_S, final_only=True)
        assert ok is not None and rawsip.status_of(ok) == 200
        # carol's ACK and BYE, along her route set (the reversed Record-Route), arrive on the same connection
        route = ["Route: " + r for r in reversed(rawsip.headers(ok, "Record-Route"))]
        for method, cseq, branch in (("ACK", 1, "z9hG4bKtcpack1"), ("BYE", 2, "z9hG4bKtcpbye1")):
            caller.sendto(rawsip.request(method, phone.contact,
                                         "SIP/2.0/UDP %s:%d;rport;branch=%s" % (HOST, cport, branch),
                                         "<sip:carol@remote.example>;tag=car1", "<sip:bob@%s>;tag=bob1" % DOMAIN,
                                         "tcp-call-1", cseq, route), node.udp)
            got = phone.reader.read(WAIT_S)
            assert got is not None and rawsip.start_line(got) == "%s %s SIP/2.0" % (method, phone.contact), got
        phone.conn.sendall(rawsip.response_to(got, 200, "OK", None))
        assert rawsip.status_of(rawsip.udp_read(caller, WAIT_S, final_only=True) or b"") == 200
        assert phone.nothing_elsewhere() is None
    finally:
        caller.close()
        phone.close()
