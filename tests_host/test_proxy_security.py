"""Acceptance: the forwarding proxy's security rules against the real node subprocess, with raw UDP (issue 5).

- never an open relay: an unauthenticated request for a non-local destination gets 403 (or 407 when From
  claims a local identity) and nothing reaches the foreign host;
- the From of an authenticated request must be the authenticated user (403 otherwise);
- a replayed nonce count is challenged again (407), as are credentials for another Request-URI;
- a request from a foreign domain to a local user needs no auth and reaches her device with its body intact;
- too many requests in progress from one source get 503 with Retry-After, and the source recovers.
The "foreign" host is 127.0.0.2 (loopback, but not one of the node's addresses).
"""
import hashlib
import os
import socket
import sys
import time

import pytest

import nodeproc
from microwitch.node.proxy import MAX_PER_SOURCE

FOREIGN = "127.0.0.2"
DOMAIN = nodeproc.DOMAIN
PASSWORDS = {"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw", "dave": "dave-pw", "erin": "erin-pw"}
QUIET_S = 0.5        # how long a listener must stay silent to count as "nothing forwarded"
SDP = (b"v=0\r\no=mallory 7 7 IN IP4 127.0.0.2\r\ns=-\r\nc=IN IP4 127.0.0.2\r\nt=0 0\r\n"
       b"m=audio 49170 RTP/SAVP 0\r\na=zrtp-hash:1.10 0123456789abcdef\r\n")


# -- a raw SIP endpoint ----------------------------------------------------------------------------------------
class Msg:
    def __init__(self, data):
        self.raw = data
        head, _, self.body = data.partition(b"\r\n\r\n")
        lines = head.decode("utf-8", "replace").split("\r\n")
        self.start = lines[0]
        self.headers = []
        for line in lines[1:]:
            name, _, value = line.partition(":")
            self.headers.append((name.strip().lower(), value.strip()))
        self.status = int(self.start[8:11]) if self.start.startswith("SIP/2.0 ") else None
        self.method = None if self.status else self.start.split(" ", 1)[0]

    def get(self, name):
        for n, v in self.headers:
            if n == name.lower():
                return v
        return None

    def get_all(self, name):
        return [v for n, v in self.headers if n == name.lower()]

    def __repr__(self):
        return self.raw.decode("utf-8", "replace")


class Endpoint:
    """A UDP socket that speaks just enough SIP for these tests."""
    count = 0

    def __init__(self, host="127.0.0.1"):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.sock.bind((host, 0))
        self.addr = self.sock.getsockname()
        self.inbox = []

    def close(self):
        self.sock.close()

    def new_branch(self):
        Endpoint.count += 1
        return "z9hG4bKsec%d.%d" % (os.getpid(), Endpoint.count)

    def request(self, method, uri, frm, to, call_id, cseq=1, extra=(), body=b"", branch=None):
        lines = ["%s %s SIP/2.0" % (method, uri),
                 "Via: SIP/2.0/UDP %s:%d;rport;branch=%s" % (self.addr[0], self.addr[1], branch or self.new_branch()),
                 "Max-Forwards: 70", "From: %s" % frm, "To: %s" % to, "Call-ID: %s" % call_id,
                 "CSeq: %d %s" % (cseq, method), "Contact: <sip:ep@%s:%d>" % self.addr]
        lines += list(extra)
        if body:
            lines.append("Content-Type: application/sdp")
        lines.append("Content-Length: %d" % len(body))
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body

    def send(self, data, dest):
        self.sock.sendto(data, dest)

    def recv(self, timeout):
        """One message within `timeout` s, or None."""
        self.sock.settimeout(max(timeout, 0.001))
        try:
            data, src = self.sock.recvfrom(65535)
        except socket.timeout:
            return None
        m = Msg(data)
        m.source = src
        return m

    def wait(self, pred, timeout=5.0):
        """The first message (new or already seen) matching pred within `timeout` s, or None."""
        for m in self.inbox:
            if pred(m):
                self.inbox.remove(m)
                return m
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            m = self.recv(left)
            if m is None:
                return None
            if pred(m):
                return m
            self.inbox.append(m)

    def final(self, call_id, cseq_method="INVITE", timeout=5.0):
        return self.wait(lambda m: m.status is not None and m.status >= 200 and m.get("call-id") == call_id
                         and m.get("cseq").endswith(cseq_method), timeout)

    def drain(self, timeout):
        """Everything that arrives within `timeout` s (plus what was kept)."""
        out = list(self.inbox)
        self.inbox = []
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return out
            m = self.recv(left)
            if m is None:
                return out
            out.append(m)


def _challenge(value):
    """{param: value} of a Digest challenge."""
    out = {}
    rest = value.split(None, 1)[1]
    while rest:
        k, _, rest = rest.partition("=")
        rest = rest.lstrip()
        if rest.startswith('"'):
            v, _, rest = rest[1:].partition('"')
        else:
            v, _, rest = rest.partition(",")
        out[k.strip().strip(",").strip()] = v
        rest = rest.lstrip(", ")
    return out


def _h(alg, text):
    return (hashlib.sha256 if alg == "SHA-256" else hashlib.md5)(text.encode()).hexdigest()


def credentials(challenge_values, user, password, method, uri, nc=1, cnonce="c0ffee", alg="SHA-256"):
    """An Authorization value (RFC 7616 §3.4, qop=auth) answering the challenge for algorithm `alg`."""
    chal = [_challenge(v) for v in challenge_values]
    c = [x for x in chal if x.get("algorithm", "MD5") == alg][0]
    ha1 = _h(alg, "%s:%s:%s" % (user, c["realm"], password))
    ha2 = _h(alg, "%s:%s" % (method, uri))
    ncs = "%08x" % nc
    resp = _h(alg, "%s:%s:%s:%s:auth:%s" % (ha1, c["nonce"], ncs, cnonce, ha2))
    return ('Digest username="%s", realm="%s", nonce="%s", uri="%s", response="%s", algorithm=%s, qop=auth, '
            'nc=%s, cnonce="%s"' % (user, c["realm"], c["nonce"], uri, resp, alg, ncs, cnonce))


def aor(user, domain=DOMAIN):
    return "<sip:%s@%s>" % (user, domain)


# -- the node --------------------------------------------------------------------------------------------------
class Env:
    def __init__(self, tmp):
        # the inbound federation rate limit (tested in portable/test_dns_federation.py) is raised here so the
        # per-source transaction limit is what the burst test meets
        self.node = nodeproc.Node(tmp, config={"federation_rate": 10000, "federation_burst": 10000},
                                  users=[(u, p, DOMAIN) for u, p in sorted(PASSWORDS.items())]).start()
        self.n = 0
        self.eps = []

    def endpoint(self, host="127.0.0.1"):
        ep = Endpoint(host)
        self.eps.append(ep)
        return ep

    def call_id(self, what):
        self.n += 1
        return "%s-%d-%d@sec" % (what, os.getpid(), self.n)

    def close(self):
        for ep in self.eps:
            ep.close()
        self.node.stop()

    def register(self, ep, user):
        """Register `ep` as `user`'s device (401 -> credentials -> 200)."""
        cid = self.call_id("reg-" + user)
        ep.send(ep.request("REGISTER", "sip:" + DOMAIN, aor(user) + ";tag=r1", aor(user), cid,
                           extra=["Expires: 600"]), self.node.udp)
        r = ep.final(cid, "REGISTER")
        assert r is not None and r.status == 401, r
        auth = credentials(r.get_all("www-authenticate"), user, PASSWORDS[user], "REGISTER", "sip:" + DOMAIN)
        ep.send(ep.request("REGISTER", "sip:" + DOMAIN, aor(user) + ";tag=r1", aor(user), cid, cseq=2,
                           extra=["Expires: 600", "Authorization: " + auth]), self.node.udp)
        r = ep.final(cid, "REGISTER")
        assert r is not None and r.status == 200, r

    def invite(self, ep, uri, frm, to=None, extra=(), cseq=1, call_id=None, body=SDP):
        cid = call_id or self.call_id("inv")
        ep.send(ep.request("INVITE", uri, frm, to or "<%s>" % uri, cid, cseq=cseq, extra=extra, body=body),
                self.node.udp)
        return cid

    def ack(self, ep, resp, uri):
        """ACK for a non-2xx final response (same branch as the INVITE, §17.1.1.3)."""
        via = resp.get("via")
        branch = via.split("branch=")[1].split(";")[0]
        ep.send(ep.request("ACK", uri, resp.get("from"), resp.get("to"), resp.get("call-id"),
                           cseq=int(resp.get("cseq").split()[0]), branch=branch), self.node.udp)

    def authed_invite(self, ep, user, uri, frm=None, password=None, nc=1, cnonce="c0ffee"):
        """INVITE -> 407 -> INVITE with user's proxy credentials; returns (call-id, final response, credentials)."""
        frm = frm or aor(user) + ";tag=f" + user
        cid = self.invite(ep, uri, frm)
        r = ep.final(cid)
        assert r is not None and r.status == 407, r
        self.ack(ep, r, uri)
        cred = credentials(r.get_all("proxy-authenticate"), user, password or PASSWORDS[user], "INVITE", uri,
                           nc=nc, cnonce=cnonce)
        self.invite(ep, uri, frm, extra=["Proxy-Authorization: " + cred], cseq=2, call_id=cid)
        r = ep.final(cid)
        assert r is not None, "no final response to the authenticated INVITE\n" + self.node.output()[-2000:]
        self.ack(ep, r, uri)
        return cid, r, cred


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    e = Env(str(tmp_path_factory.mktemp("sec")))
    yield e
    e.close()


# -- tests -----------------------------------------------------------------------------------------------------
def test_unauthenticated_request_to_foreign_destination_is_refused_and_not_forwarded(env):
    victim = env.endpoint(FOREIGN)
    caller = env.endpoint()
    target = "sip:victim@%s:%d" % victim.addr
    cases = [
        (target, "<sip:mallory@evil.test>;tag=m1", 403),   # stranger -> stranger: relaying denied
        ("sip:victim@evil.test", "<sip:mallory@evil.test>;tag=m2", 403),
        (target, aor("alice") + ";tag=m3", 407),            # claims a local identity without proving it
    ]
    for uri, frm, want in cases:
        cid = env.invite(caller, uri, frm)
        r = caller.final(cid)
        assert r is not None and r.status == want, (uri, frm, r)
        env.ack(caller, r, uri)
        # MESSAGE (non-INVITE) is refused the same way
        mid = env.call_id("msg")
        caller.send(caller.request("MESSAGE", uri, frm, "<%s>" % uri, mid, body=b"hi"), env.node.udp)
        r = caller.final(mid, "MESSAGE")
        assert r is not None and r.status == want, (uri, frm, r)
    assert victim.drain(QUIET_S) == []


def test_preloaded_route_or_fake_dialog_does_not_make_an_open_relay(env):
    """An out-of-dialog request with a preloaded Route to a foreign host, or a request that only pretends to
    be in a dialog (To tag, no Route to the node), is still an unauthenticated request for a non-local
    destination: it must be refused (403), never forwarded."""
    victim = env.endpoint(FOREIGN)
    caller = env.endpoint()
    target = "sip:victim@%s:%d" % victim.addr
    got = []
    for case, extra, to in (("preloaded Route", ["Route: <sip:%s:%d;lr>" % victim.addr], None),
                            ("To tag, no Route", [], "<%s>;tag=fake" % target)):
        cid = env.invite(caller, target, "<sip:mallory@evil.test>;tag=m-" + case[:2], extra=extra, to=to)
        r = caller.final(cid, timeout=1.0)
        leaked = [m.start for m in victim.drain(QUIET_S) if m.method and m.get("call-id") == cid]
        got.append((case, r.status if r else None, len(leaked)))
        if r is not None:
            env.ack(caller, r, target)
    assert got == [("preloaded Route", 403, 0), ("To tag, no Route", 403, 0)], got


def test_spoofed_from_is_refused(env):
    carol = env.endpoint()
    env.register(carol, "carol")
    bob = env.endpoint()
    uri = "sip:carol@" + DOMAIN
    # bob proves he is bob, but the From says alice
    cid, r, _ = env.authed_invite(bob, "bob", uri, frm=aor("alice") + ";tag=spoof")
    assert r.status == 403 and "From" in r.start, r
    assert [m for m in carol.drain(QUIET_S) if m.method == "INVITE"] == []
    # control: bob as himself gets through to carol's device
    cid = env.invite(bob, uri, aor("bob") + ";tag=ctl")
    r = bob.final(cid)
    assert r.status == 407
    env.ack(bob, r, uri)
    cred = credentials(r.get_all("proxy-authenticate"), "bob", PASSWORDS["bob"], "INVITE", uri)
    env.invite(bob, uri, aor("bob") + ";tag=ctl", extra=["Proxy-Authorization: " + cred], cseq=2, call_id=cid)
    inv = carol.wait(lambda m: m.method == "INVITE" and m.get("call-id") == cid, 5)
    assert inv is not None and inv.body == SDP
    assert "bob-pw" not in inv.raw.decode("latin-1") and inv.get("proxy-authorization") is None  # consumed
    _answer(carol, inv, 486, "Busy Here")
    r = bob.final(cid)
    assert r is not None and r.status == 486
    env.ack(bob, r, uri)


def _answer(ep, inv, status, reason):
    lines = ["SIP/2.0 %d %s" % (status, reason)] + ["Via: " + v for v in inv.get_all("via")]
    lines += ["From: " + inv.get("from"), "To: " + inv.get("to") + ";tag=dev", "Call-ID: " + inv.get("call-id"),
              "CSeq: " + inv.get("cseq"), "Content-Length: 0"]
    ep.send(("\r\n".join(lines) + "\r\n\r\n").encode(), inv.source)


def test_replayed_nonce_count_is_challenged_again(env):
    alice = env.endpoint()
    uri = "sip:bob@" + DOMAIN   # bob has no binding here: an accepted INVITE ends with 480
    cid, r, cred = env.authed_invite(alice, "alice", uri)
    assert r.status == 480, r  # authenticated and routed
    # the very same credentials (nonce, nc=1, cnonce) again, in a new transaction
    cid2 = env.invite(alice, uri, aor("alice") + ";tag=replay", extra=["Proxy-Authorization: " + cred])
    r = alice.final(cid2)
    assert r is not None and r.status == 407, r
    env.ack(alice, r, uri)
    # the next count on the same nonce is fine
    cred2 = cred.replace("nc=00000001", "nc=00000002")
    resp_old = cred.split('response="')[1].split('"')[0]
    c = _challenge(cred)
    ha1 = _h("SHA-256", "alice:%s:%s" % (c["realm"], PASSWORDS["alice"]))
    resp_new = _h("SHA-256", "%s:%s:00000002:%s:auth:%s" % (ha1, c["nonce"], c["cnonce"],
                                                           _h("SHA-256", "INVITE:" + uri)))
    cred2 = cred2.replace(resp_old, resp_new)
    cid3 = env.invite(alice, uri, aor("alice") + ";tag=nc2", extra=["Proxy-Authorization: " + cred2])
    r = alice.final(cid3)
    assert r is not None and r.status == 480, r
    env.ack(alice, r, uri)
    # credentials computed for one Request-URI do not authorize another
    other = "sip:carol@" + DOMAIN
    cid4 = env.invite(alice, other, aor("alice") + ";tag=uri", extra=["Proxy-Authorization: " + cred2])
    r = alice.final(cid4)
    assert r is not None and r.status == 407, r
    env.ack(alice, r, other)


def test_foreign_caller_reaches_local_user_without_auth(env):
    dave = env.endpoint()
    env.register(dave, "dave")
    stranger = env.endpoint(FOREIGN)
    uri = "sip:dave@" + DOMAIN
    cid = env.invite(stranger, uri, "<sip:friend@elsewhere.test>;tag=x1")
    inv = dave.wait(lambda m: m.method == "INVITE" and m.get("call-id") == cid, 5)
    assert inv is not None, env.node.output()[-2000:]
    assert inv.body == SDP                                   # byte for byte
    assert inv.start == "INVITE sip:ep@%s:%d SIP/2.0" % dave.addr   # her registered contact
    assert inv.get("record-route") and ";lr" in inv.get("record-route")
    assert len(inv.get_all("via")) == 2
    _answer(dave, inv, 486, "Busy Here")
    r = stranger.final(cid)
    assert r is not None and r.status == 486, r
    assert stranger.wait(lambda m: m.status == 407, 0.01) is None
    env.ack(stranger, r, uri)


def test_per_source_limit_answers_503_with_retry_after(env):
    phone = env.endpoint()          # answers nothing until told to: requests pile up at the node
    env.register(phone, "erin")
    flood = env.endpoint(FOREIGN)
    uri = "sip:erin@" + DOMAIN
    n = MAX_PER_SOURCE + 12
    cids = [env.invite(flood, uri, "<sip:flood@evil.test>;tag=f%d" % i, body=b"") for i in range(n)]
    finals = {}
    deadline = time.monotonic() + 10
    while len(finals) < n - MAX_PER_SOURCE and time.monotonic() < deadline:
        m = flood.recv(deadline - time.monotonic())
        if m is not None and m.status is not None and m.status >= 200:
            finals[m.get("call-id")] = m
    busy = [m for m in finals.values() if m.status == 503]
    assert len(finals) == n - MAX_PER_SOURCE and len(busy) == len(finals), \
        ([(m.status, m.start) for m in finals.values()][:5], len(finals))
    for m in busy:
        ra = m.get("retry-after")
        assert ra is not None and ra.strip().isdigit() and int(ra) > 0, m
        env.ack(flood, m, uri)
    # the ones accepted were forwarded; answering them frees the source's slots
    seen = {}
    deadline = time.monotonic() + 10
    while len(seen) < MAX_PER_SOURCE and time.monotonic() < deadline:
        m = phone.recv(deadline - time.monotonic())
        if m is not None and m.method == "INVITE" and m.get("call-id") not in seen:
            seen[m.get("call-id")] = m
            _answer(phone, m, 486, "Busy Here")
    assert len(seen) == MAX_PER_SOURCE and not set(seen) & set(finals)
    deadline = time.monotonic() + 10
    done = 0
    while done < MAX_PER_SOURCE and time.monotonic() < deadline:
        m = flood.recv(deadline - time.monotonic())
        if m is not None and m.status == 486 and m.get("call-id") in seen:
            done += 1
            env.ack(flood, m, uri)
    assert done == MAX_PER_SOURCE
    # and the source is served again
    cid = env.invite(flood, uri, "<sip:flood@evil.test>;tag=after")
    inv = phone.wait(lambda m: m.method == "INVITE" and m.get("call-id") == cid, 5)
    assert inv is not None
    _answer(phone, inv, 486, "Busy Here")
    r = flood.final(cid)
    assert r is not None and r.status == 486
    env.ack(flood, r, uri)
