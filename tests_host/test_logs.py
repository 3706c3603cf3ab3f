"""Logs a user can read and nothing a thief can use (issue #3 scope 10): the real node (nodeproc.Node) at debug
level goes through registrations with wrong and right passwords and an authenticated call, and its whole output
must hold none of the passwords, HA1 values (hex, MD5 and SHA-256, RFC 7616 §3.4.2), nonces or digest responses
of that exchange, while still saying what happened (one line per outcome). `log_format` "syslog" prefixes every
log line with its `<priority>` (journald/procd read it); "plain" writes the level name instead.
"""
import os
import re
import shutil
import socket
import tempfile

import pytest

import nodeproc
import rawsip

HOST = nodeproc.HOST
DOMAIN = nodeproc.DOMAIN
WAIT_S = 3.0
PASSWORDS = {"alice": "Al1ce-Tr0ub4dor-pw", "bob": "B0b-C0rrect-H0rse"}
WRONG = "Wr0ng-Gu3ss-pw"


@pytest.fixture
def work():
    d = tempfile.mkdtemp(prefix="mw-logs-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _start(work, log_format):
    users = [(u, p, DOMAIN) for u, p in sorted(PASSWORDS.items())]
    return nodeproc.Node(work, config={"log_level": "debug", "log_format": log_format}, users=users).start()


class _Phone:
    def __init__(self, node, user):
        self.node = node
        self.user = user
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, 0))
        self.port = self.sock.getsockname()[1]
        self.contact = "sip:%s@%s:%d" % (user, HOST, self.port)

    def send(self, data):
        self.sock.sendto(data, self.node.udp)

    def read(self, final_only=True):
        return rawsip.udp_read(self.sock, WAIT_S, final_only)

    def register(self, password, seen):
        via = "SIP/2.0/UDP %s:%d;rport;branch=z9hG4bKlr%s%d%%d" % (HOST, self.port, self.user, len(seen))
        return rawsip.register(self.send, self.read, self.user, password, self.contact, via, log=seen,
                               call_id="logreg-%s-%d" % (self.user, len(seen)))

    def close(self):
        self.sock.close()


def _exchange(node):
    """Wrong then right REGISTER for alice, bob registers, alice calls bob (407, a wrong then a right answer),
    bob answers, ACK, BYE. Returns every nonce and digest response that crossed the wire."""
    seen = []       # (nonce, response) pairs we sent
    nonces = []     # every nonce the node handed out
    alice, bob = _Phone(node, "alice"), _Phone(node, "bob")
    try:
        assert alice.register(WRONG, seen) == 401        # a wrong password never gets a 200
        assert alice.register(PASSWORDS["alice"], seen) == 200
        assert bob.register(PASSWORDS["bob"], seen) == 200
        uri = "sip:bob@" + DOMAIN
        frm = "<sip:alice@%s>;tag=al1" % DOMAIN
        via = "SIP/2.0/UDP %s:%d;rport;branch=z9hG4bKlinv%%d" % (HOST, alice.port)
        body = (b"v=0\r\no=alice 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                b"m=audio 4002 RTP/AVP 0\r\n")
        extra = ["Contact: <%s>" % alice.contact, "Content-Type: application/sdp"]
        auth = None
        for cseq, password in ((1, None), (2, WRONG), (3, PASSWORDS["alice"])):
            more = extra + (["Proxy-Authorization: " + auth] if auth else [])
            alice.send(rawsip.request("INVITE", uri, via % cseq, frm, "<%s>" % uri, "logcall-1", cseq, more, body))
            resp = alice.read()
            if cseq < 3:
                assert resp is not None and rawsip.status_of(resp) == 407, resp
                chal = rawsip.headers(resp, "Proxy-Authenticate")
                nonces += [rawsip.fields(c)["nonce"] for c in chal]
                pw = WRONG if cseq == 1 else PASSWORDS["alice"]
                auth, nonce, r = rawsip.authorization(chal, "INVITE", uri, "alice", pw, nc="%08x" % cseq)
                seen.append((nonce, r))
                alice.send(rawsip.request("ACK", uri, via % cseq, frm, rawsip.headers(resp, "To")[0], "logcall-1",
                                          cseq))
        inv = bob.read(final_only=False)
        assert inv is not None and rawsip.start_line(inv).startswith("INVITE "), inv
        assert not rawsip.headers(inv, "Proxy-Authorization")
        bob.send(rawsip.response_to(inv, 200, "OK", "bo1", ["Contact: <%s>" % bob.contact]))
        ok = alice.read()
        assert ok is not None and rawsip.status_of(ok) == 200
        route = ["Route: " + r for r in reversed(rawsip.headers(ok, "Record-Route"))]
        to = rawsip.headers(ok, "To")[0]
        alice.send(rawsip.request("ACK", bob.contact, via % 99, frm, to, "logcall-1", 3, route))
        alice.send(rawsip.request("BYE", bob.contact, via % 4, frm, to, "logcall-1", 4, route))
        bye = bob.read(final_only=False)
        while bye is not None and not rawsip.start_line(bye).startswith("BYE "):  # the ACK first
            bye = bob.read(final_only=False)
        assert bye is not None
        bob.send(rawsip.response_to(bye, 200, "OK", None))
        assert rawsip.status_of(alice.read() or b"") == 200
    finally:
        alice.close()
        bob.close()
    return [n for n, _ in seen] + nonces, [r for _, r in seen]


def test_log_never_holds_passwords_ha1_nonces_or_responses(work):
    node = _start(work, "plain")
    try:
        nonces, responses = _exchange(node)
    finally:
        node.stop()
    out = node.output()
    secrets = []
    for user, pw in list(PASSWORDS.items()) + [("alice", WRONG)]:
        secrets.append(pw)
        for alg in ("MD5", "SHA-256"):
            secrets.append(rawsip.ha1(user, DOMAIN, pw, alg))
    assert len(nonces) >= 5 and len(responses) >= 5
    secrets += nonces + responses
    low = out.lower()
    leaked = [s for s in secrets if s.lower() in low]
    assert leaked == [], "secrets in the node's log: %r" % leaked
    # the log still tells the story: a refused and an accepted REGISTER, the challenged and the forwarded INVITE
    assert re.search(r"^INFO REGISTER \S*alice@localhost\S* udp:127\.0\.0\.1:\d+ 401 ", out, re.M), out
    assert re.search(r"^INFO REGISTER \S*alice@localhost\S* udp:127\.0\.0\.1:\d+ 200 ", out, re.M), out
    assert re.search(r"^INFO INVITE sip:bob@localhost udp:127\.0\.0\.1:\d+ 407 ", out, re.M), out  # who asked
    assert re.search(r"^INFO INVITE sip:bob@localhost udp:127\.0\.0\.1:\d+ 200 OK", out, re.M), out  # answered


def _log_lines(out):
    """The lines the node's Logger wrote (the launcher's own `listening`/`web` lines are not log lines)."""
    return [ln for ln in out.splitlines() if ln and not ln.startswith(("listening ", "web "))]


def test_syslog_format_prefixes_priorities_and_plain_does_not(work):
    lines = {}
    for fmt in ("syslog", "plain"):
        sub = os.path.join(work, fmt)
        os.makedirs(sub)
        node = _start(sub, fmt)
        phone = _Phone(node, "alice")
        try:
            seen = []  # (its length also keeps the two REGISTERs' branches and Call-IDs apart)
            assert phone.register(WRONG, seen) == 401
            assert phone.register(PASSWORDS["alice"], seen) == 200
        finally:
            phone.close()
            node.stop()
        lines[fmt] = _log_lines(node.output())
    syslog, plain = lines["syslog"], lines["plain"]
    assert syslog and plain
    # syslog: `<N>` then the text, no level word; REGISTER outcomes are informational (<6>)
    assert all(re.match(r"<[0-7]>\S", ln) for ln in syslog), syslog
    assert [ln for ln in syslog if re.match(r"<6>REGISTER \S*alice@localhost\S* udp:127\.0\.0\.1:\d+ 401 ", ln)]
    assert [ln for ln in syslog if re.match(r"<6>REGISTER \S*alice@localhost\S* udp:127\.0\.0\.1:\d+ 200 ", ln)]
    assert not [ln for ln in syslog if re.match(r"<\d>(INFO|DEBUG|WARN|ERROR) ", ln)]
    # plain: the level name and a space, never a priority prefix
    assert not [ln for ln in plain if re.match(r"<\d+>", ln)], plain
    assert all(re.match(r"(DEBUG|INFO|WARN|ERROR) \S", ln) for ln in plain), plain
    assert [ln for ln in plain if re.match(r"INFO REGISTER \S*alice@localhost\S* udp:127\.0\.0\.1:\d+ 200 ", ln)]
    # the same events either way
    assert len(syslog) == len(plain)
