"""The agent's real I/O loop (adapter/agent_loop.py) driven by an in-memory network (portable).

`Net` is a fake socket + select layer with the shape AgentLoop wants (getaddrinfo, socket, poll, SOCK_DGRAM,
POLLIN) and a clock that idle polls advance. Behind it a scripted node at 192.0.2.1:5060 challenges the
agent's REGISTER with a 401, checks the digest answer, registers it, then sends it an INVITE from a caller
whose media address collects what the agent sends. After enough media the node sends BYE; the agent hangs up,
unregisters and its loop returns. Also run_agent(), the ESP32's agent role, for one round, and the validation
of /device.json's "agent" fields.
"""
import errno

from microwitch.adapter import agent_loop
from microwitch.adapter.agent_loop import AgentLoop, Tone, agent_settings, AgentConfigError, run_agent
from microwitch.agent.endpoint import Endpoint
from microwitch.media import g711
from microwitch.sip.message import parse, make_response
from microwitch.sip.digest import parse_credentials, ha1_hex, response_hex
from _lcg import Lcg

NODE = ("192.0.2.1", 5060)
BOARD_IP = "192.0.2.50"
CALLER_MEDIA = ("192.0.2.30", 7000)
DOMAIN = "home.arpa"
PASSWORD = "tone-pw"
MAX_POLLS = 20000      # poll rounds any one run may take (the loop's own limits end it long before)
MEDIA_BEFORE_BYE = 25  # media datagrams the caller collects before the node sends BYE


class Sock:
    def __init__(self, net):
        self.net = net
        self.name = None
        self.inq = []
        self.closed = False
        self.blocking = True

    def bind(self, addr):
        if addr in self.net.socks:
            raise OSError(errno.EADDRINUSE)
        self.name = addr
        self.net.socks[addr] = self

    def setblocking(self, flag):
        self.blocking = flag

    def recvfrom(self, n):
        if not self.inq:
            raise OSError(errno.EAGAIN)
        return self.inq.pop(0)

    def sendto(self, data, addr):
        self.net.deliver(bytes(data), self.name, addr)
        return len(data)

    def close(self):
        self.closed = True


class Poll:
    def __init__(self, net):
        self.net = net
        self.reg = []

    def register(self, s, flags):
        self.reg.append(s)

    def poll(self, ms):
        self.net.polls += 1
        if self.net.polls > MAX_POLLS:
            raise AssertionError("the agent loop ran more than %d poll rounds" % MAX_POLLS)
        out = [(s, Net.POLLIN) for s in self.reg if s.inq]
        if not out:
            self.net.t += max(ms, 1)   # idle: time passes (a zero wait still moves the clock on)
        return out


class Net:
    SOCK_DGRAM = 2
    POLLIN = 1

    def __init__(self):
        self.t = 7000
        self.polls = 0
        self.socks = {}     # (host, port) -> Sock bound by the agent
        self.peers = {}     # (host, port) -> callable(data, source) for the scripted side

    def ticks(self):
        return self.t

    def getaddrinfo(self, host, port, fam=0, typ=0):
        return [(2, typ, 0, "", (host, port))]

    def socket(self, fam, typ):
        if typ != Net.SOCK_DGRAM:
            raise OSError(errno.EPROTONOSUPPORT)
        return Sock(self)

    def poll(self):
        return Poll(self)

    def deliver(self, data, src, dst):
        if dst in self.socks:
            self.socks[dst].inq.append((data, src))
        elif dst in self.peers:
            self.peers[dst](data, src)
        # else: lost, as on a real network

    def to_agent(self, data, src, dst):
        self.socks[dst].inq.append((data, src))


def _offer():
    return ("v=0\r\no=caller 1 1 IN IP4 %s\r\ns=-\r\nc=IN IP4 %s\r\nt=0 0\r\nm=audio %d RTP/AVP 0 8\r\n"
            "a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n" % (CALLER_MEDIA[0], CALLER_MEDIA[0],
                                                                   CALLER_MEDIA[1])).encode()


class Node:
    """The scripted registrar/proxy: digest challenge, registration, one INVITE to the agent, BYE after media."""

    def __init__(self, net, user, call_board=True):
        self.net = net
        self.user = user
        self.call_board = call_board  # send the board an INVITE once it registered
        self.got = []           # every SIP message the agent sent, parsed
        self.registers = []     # (expires, authorized) per REGISTER
        self.nonce = "c0ffee01"
        self.contact = None     # (host, port) the agent registered
        self.invite = None
        self.ok = None          # the agent's 200 to our INVITE
        self.bye_sent = False
        self.bye_ok = None
        self.agent_bye = None   # a BYE the agent sent (it hung up)
        self.board_invite = None
        self.acks = []
        self.rtp = []           # RTP datagrams at the caller's media address
        self.zrtp = []
        net.peers[NODE] = self.sip
        net.peers[CALLER_MEDIA] = self.media

    def send(self, msg, dst):
        self.net.to_agent(msg.to_bytes(), NODE, dst)

    def _check_auth(self, m):
        h = m.get("Authorization")
        if h is None:
            return False
        c = parse_credentials(h)
        ha1 = ha1_hex("MD5", c["username"], DOMAIN, PASSWORD)
        want = response_hex("MD5", ha1, c["nonce"], c["nc"], c["cnonce"], c["qop"], m.method, c["uri"])
        return c["nonce"] == self.nonce and c["response"] == want and c["username"] == self.user

    def sip(self, data, src):
        if data.strip() == b"":
            return                   # a CRLF keep-alive
        m = parse(data)
        self.got.append(m)
        if m.method == "REGISTER":
            exp = m.get("Expires")
            exp = int(exp) if exp is not None else None
            ok = self._check_auth(m)
            self.registers.append((exp, ok))
            if not ok:
                r = make_response(m, 401, "Unauthorized", "reg")
                r.add("WWW-Authenticate", 'Digest realm="%s", nonce="%s", algorithm=MD5, qop="auth"'
                      % (DOMAIN, self.nonce))
                self.send(r, src)
                return
            r = make_response(m, 200, "OK", "reg")
            r.add("Contact", m.get("Contact").split(";expires")[0] + ";expires=%d" % (exp or 0))
            self.send(r, src)
            if exp and self.invite is None and self.call_board:
                self.contact = src
                self._send_invite(src)
        elif m.method == "ACK":
            self.acks.append(m)
        elif m.method == "INVITE":   # the board calls: the callee answers at once with our media address
            self.board_invite = m
            r = make_response(m, 200, "OK", "callee1")
            r.add("Contact", "<sip:callee@%s:%d>" % NODE)
            r.add("Content-Type", "application/sdp")
            r.body = _offer()
            self.send(r, src)
        elif m.method == "BYE":
            self.agent_bye = m
            self.send(make_response(m, 200, "OK"), src)
        elif m.method is None and m.get("CSeq").endswith("INVITE"):
            if m.status == 200:
                self.ok = m
                ack = ("ACK sip:%s@%s:%d SIP/2.0\r\nVia: SIP/2.0/UDP %s:%d;branch=z9hG4bKack1\r\n"
                       "Max-Forwards: 70\r\nFrom: %s\r\nTo: %s\r\nCall-ID: call-1\r\nCSeq: 1 ACK\r\n"
                       "Content-Length: 0\r\n\r\n" % (self.user, src[0], src[1], NODE[0], NODE[1],
                                                      m.get("From"), m.get("To")))
                self.net.to_agent(ack.encode(), NODE, src)
        elif m.method is None and m.get("CSeq").endswith("BYE"):
            self.bye_ok = m

    def _send_invite(self, dst):
        inv = ("INVITE sip:%s@%s:%d SIP/2.0\r\nVia: SIP/2.0/UDP %s:%d;branch=z9hG4bKinv1\r\nMax-Forwards: 69\r\n"
               "From: <sip:caller@%s>;tag=caller1\r\nTo: <sip:%s@%s>\r\nCall-ID: call-1\r\nCSeq: 1 INVITE\r\n"
               "Record-Route: <sip:%s:%d;lr>\r\nContact: <sip:caller@192.0.2.30:5062>\r\n"
               "Content-Type: application/sdp\r\n"
               % (self.user, dst[0], dst[1], NODE[0], NODE[1], DOMAIN, self.user, DOMAIN, NODE[0], NODE[1]))
        body = _offer()
        self.invite = inv + "Content-Length: %d\r\n\r\n" % len(body)
        self.net.to_agent(self.invite.encode() + body, NODE, dst)

    def media(self, data, src):
        if len(data) >= 12 and data[4:8] == b"ZRTP":
            self.zrtp.append((data, src))
        elif len(data) >= 12 and data[0] >> 6 == 2 and data[1] & 0x7F in (0, 8):
            self.rtp.append((data, src))
        if len(self.rtp) + len(self.zrtp) >= MEDIA_BEFORE_BYE and not self.bye_sent and self.call_board:
            self.bye_sent = True
            to = self.ok.get("To") if self.ok is not None else "<sip:%s@%s>" % (self.user, DOMAIN)
            bye = ("BYE sip:%s@%s:%d SIP/2.0\r\nVia: SIP/2.0/UDP %s:%d;branch=z9hG4bKbye1\r\nMax-Forwards: 69\r\n"
                   "From: <sip:caller@%s>;tag=caller1\r\nTo: %s\r\nCall-ID: call-1\r\nCSeq: 2 BYE\r\n"
                   "Content-Length: 0\r\n\r\n" % (self.user, self.contact[0], self.contact[1], NODE[0], NODE[1],
                                                  DOMAIN, to))
            self.net.to_agent(bye.encode(), NODE, self.contact)


def _events(reports):
    return [r["event"] for r in reports]


def test_agent_loop_registers_answers_and_sends_media():
    """REGISTER (401, then digest), an INVITE answered with 200 + SDP, tone RTP and ZRTP Hellos to the caller's
    media address (zrtp optional: clear RTP is allowed until ZRTP succeeds), BYE, unregister, exit 0."""
    net = Net()
    node = Node(net, "tone")
    sip = agent_loop.bind_udp(net, BOARD_IP, 5060)
    media = agent_loop.bind_udp(net, BOARD_IP, 4000)
    tone = Tone(1000)
    opts = {"user": "sip:tone@" + DOMAIN, "password": PASSWORD, "proxy": ("udp",) + NODE,
            "sip_local": (BOARD_IP, 5060), "media_local": (BOARD_IP, 4000), "answer": True, "zrtp": "optional"}
    ep = Endpoint(opts, Lcg(), None, 0, tone, None)
    reports = []
    loop = AgentLoop(ep, sip, media, reports.append, None, net.ticks, net)
    code = loop.run(60000)
    assert code == 0, reports
    assert not sip.blocking and not media.blocking
    # registration: challenged once, then accepted; at the end the binding is removed (Expires: 0)
    assert node.registers[0] == (600, False) and node.registers[1] == (600, True), node.registers
    assert node.registers[-1] == (0, True)
    names = _events(reports)
    assert names[:3] == ["registered", "incoming", "answered"], reports
    assert reports[0]["aor"] == "sip:tone@" + DOMAIN and reports[1]["from"] == "sip:caller@" + DOMAIN
    assert "insecure" in names and names[-1] == "ended", reports
    end = reports[-1]
    assert end["reason"] == "remote hangup" and not end["secure"], end
    # the 200 answered our offer with PCMU and the agent's media address
    ok = node.ok
    assert ok is not None and ok.get("CSeq") == "1 INVITE"
    body = ok.body.decode()
    assert "c=IN IP4 %s" % BOARD_IP in body and "m=audio 4000 RTP/AVP 0" in body, body
    assert "a=zrtp-hash:" in body
    assert node.bye_ok is not None and node.bye_ok.status == 200
    # media left the media socket for the offered address: ZRTP Hellos and the tone as PCMU
    assert node.zrtp and node.rtp
    assert all(src == (BOARD_IP, 4000) for _, src in node.zrtp + node.rtp)
    assert node.zrtp[0][0][12:14] == b"PZ" and node.zrtp[0][0][16:24] == b"Hello   "  # RFC 6189 §5.2
    pcmu = g711.ulaw_encode(tone())
    assert all(d[1] & 0x7F == 0 and d[12:] == pcmu for d, _ in node.rtp)
    seqs = [(d[2] << 8) | d[3] for d, _ in node.rtp]
    assert seqs == [(seqs[0] + i) & 0xFFFF for i in range(len(seqs))]
    assert end["rtp_sent"] >= len(node.rtp)
    # the loop's clock is the injected one: the call took fake time, not wall time
    assert 7000 < net.t < 7000 + 60000


def test_tone_frame_is_whole_cycles():
    f = Tone(400)()
    assert len(f) == 320 and f == Tone(400).frame
    s = [int.from_bytes(f[i:i + 2], "little") for i in range(0, 320, 2)]
    s = [v - 65536 if v >= 32768 else v for v in s]
    assert s[0] == 0 and max(s) > 7000 and min(s) < -7000
    assert abs(s[20]) < 50   # 400 Hz: a cycle is 20 samples, 8 cycles in the frame
    assert Tone(1000)() != f


def _settings(**kw):
    d = {"user": "tone@" + DOMAIN, "password": PASSWORD, "proxy": NODE[0], "cache": ""}
    d.update(kw)
    return agent_settings(d)


def test_run_agent_one_round_mandatory_zrtp_sends_no_clear_audio():
    """The ESP32's agent role for one round with the default zrtp=mandatory: registered, answered, only ZRTP
    goes out; the caller never answers its Hello, so the agent hangs up itself (ZRTP failed) and the call ends
    not secure (exit 4); the console shows each step."""
    net = Net()
    node = Node(net, "tone")
    lines = []
    started = []
    pauses = []
    s = _settings()
    code = run_agent(s, BOARD_IP, Lcg(), lines.append, net, net.ticks, rounds=1, pause=pauses.append,
                     started=lambda: started.append(net.t))
    assert code == 4, lines
    assert started and not pauses
    assert node.zrtp and not node.rtp
    text = "\n".join(lines)
    for want in ("answers calls", "registered as sip:tone@home.arpa", "incoming call from sip:caller@home.arpa",
                 "call answered (PCMU)", "NOT SECURE: ZRTP failed", "no media was sent in clear",
                 "call ended: ZRTP failed", "RTP sent 0 "):
        assert want in text, text
    assert all(l.startswith("microwitch agent: ") for l in lines)
    bye = node.agent_bye   # through the node (Record-Route), to the caller's Contact
    assert bye is not None and bye.get("Call-ID") == "call-1" and bye.uri == "sip:caller@192.0.2.30:5062"
    assert net.socks[(BOARD_IP, 5060)].closed and net.socks[(BOARD_IP, 4000)].closed
    assert node.registers[-1] == (0, True)


def test_run_agent_calls_and_hangs_up_after_duration():
    """A calling board (agent.call, duration_s, zrtp optional, no redial): one round, INVITE with its SDP offer,
    ACK for the 200, the tone out, BYE after the duration on the loop's clock, unregister, exit 0."""
    net = Net()
    node = Node(net, "tone", call_board=False)
    lines = []
    pauses = []
    s = _settings(call="callee@" + DOMAIN, duration_s=1, zrtp="optional", tone_hz=1000)
    code = run_agent(s, BOARD_IP, Lcg(), lines.append, net, net.ticks, rounds=3, pause=pauses.append)
    assert code == 0, lines
    assert not pauses            # one round: no redial
    inv = node.board_invite
    assert inv is not None and inv.uri == "sip:callee@" + DOMAIN
    offer = inv.body.decode()
    assert "c=IN IP4 %s" % BOARD_IP in offer and "m=audio 4000 RTP/AVP" in offer and "a=zrtp-hash:" in offer
    assert node.acks and node.acks[0].get("CSeq").endswith("ACK")
    bye = node.agent_bye
    assert bye is not None and bye.uri == "sip:callee@%s:%d" % NODE
    pcmu = g711.ulaw_encode(Tone(1000)())
    assert 40 <= len(node.rtp) <= 55 and all(d[12:] == pcmu for d, _ in node.rtp), len(node.rtp)  # ~1 s of 20 ms
    assert node.zrtp
    text = "\n".join(lines)
    assert "calls sip:callee@home.arpa" in text and "call ended: local hangup (duration reached)" in text, text
    assert node.registers[-1] == (0, True)


def test_run_agent_pauses_after_a_refused_registration():
    net = Net()
    node = Node(net, "tone")
    node.nonce = "other"      # every answer is for a nonce the node no longer knows: 401 again
    node._check_auth = lambda m: False
    lines = []
    pauses = []
    code = run_agent(_settings(), BOARD_IP, Lcg(), lines.append, net, net.ticks, rounds=2,
                     pause=pauses.append)
    assert code == 3
    assert pauses == [30000]   # between the two rounds, not after the last
    assert "registration failed" in "\n".join(lines)
    assert node.invite is None


def _refused(d, field):
    try:
        agent_settings(d)
    except AgentConfigError as e:
        assert ("'agent.%s'" % field) in str(e), str(e)
        assert str(e).startswith("/device.json: field ")
        return str(e)
    raise AssertionError("accepted %r" % (d,))


def test_agent_settings_defaults_and_errors_naming_the_field():
    s = agent_settings({"user": "esp@lan", "password": "x"})
    assert s["user"] == "sip:esp@lan" and s["proxy"] == ("lan", 5060) and s["answer"] is True
    assert s["play"] == "tone" and s["tone_hz"] == 400 and s["record"] is None and s["zrtp"] == "mandatory"
    assert (s["sip_port"], s["media_port"], s["cache"]) == (5060, 4000, "/zid.cache")
    s = agent_settings({"user": "sip:esp@lan", "password": "x", "proxy": "192.168.1.1:5070",
                        "call": "alice@lan", "duration_s": 12.5, "redial_s": 60})
    assert s["proxy"] == ("192.168.1.1", 5070) and s["call"] == "sip:alice@lan" and s["answer"] is False
    ok = {"user": "esp@lan", "password": "x"}
    for extra, field in (({"pasword": "y"}, "pasword"), ({"proxy": "h:99999"}, "proxy"),
                         ({"proxy": ""}, "proxy"), ({"call": "nobody"}, "call"),
                         ({"call": "a@lan", "answer": True}, "answer"), ({"answer": False}, "answer"),
                         ({"redial_s": 5}, "redial_s"), ({"duration_s": 0}, "duration_s"),
                         ({"play": "music"}, "play"), ({"tone_hz": 440}, "tone_hz"),
                         ({"tone_hz": "400"}, "tone_hz"), ({"record": "rec.wav"}, "record"),
                         ({"record_s": 3600}, "record_s"), ({"zrtp": "yes"}, "zrtp"),
                         ({"cache": "zid"}, "cache"), ({"media_port": 5060}, "media_port"),
                         ({"sip_port": 0}, "sip_port"), ({"expires": 10}, "expires"),
                         ({"play": "/no/such.wav"}, "play")):
        d = dict(ok)
        d.update(extra)
        _refused(d, field)
    _refused({"password": "x"}, "user")
    assert "missing" in _refused({"user": "esp@lan"}, "password")
    assert "unknown field" in _refused({"user": "esp@lan", "password": "x", "pasword": "y"}, "pasword")
