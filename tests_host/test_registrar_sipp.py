"""Acceptance: a real sipp registers users with digest auth against the real node (RFC 3261 §10, §22.4).

Each test runs sipp (Debian `sip-tester`) with a scenario from tests_host/sipp/ against `tools/microwitch run`
started by the test on loopback ports. Development switch: MICROWITCH_SIPP_PEER=kamailio runs the same
scenarios against Kamailio with tools/bench/kamailio-registrar.cfg instead (checks that need the node's
`bindings` command are skipped then), which is how the scenarios were validated before the node existed.
"""
import hashlib
import os
import re
import socket
import sys

import pytest

import nodeproc

pytestmark = pytest.mark.skipif(not nodeproc.sipp_available(), reason="sipp (Debian sip-tester) not installed")

PEER = os.environ.get("MICROWITCH_SIPP_PEER", "node")
NONCE_TTL_S = 1          # the stale test's node lets nonces live this long
BURST = 1000             # REGISTERs in the burst test
STALE_WAIT_MS = 2600     # > NONCE_TTL_S with margin for the node's second-granular timestamps


node_config = nodeproc.sipp_node_config


class Peer:
    """The registrar under test: the node (default) or Kamailio (development switch)."""

    def __init__(self, kind, server):
        self.kind = kind
        self.server = server

    @property
    def udp(self):
        return self.server.udp if self.kind == "node" else (nodeproc.HOST, self.server.port)

    @property
    def tcp(self):
        return self.server.tcp if self.kind == "node" else None

    def contacts(self, user):
        """Contact URIs bound to sip:USER@localhost, read with `microwitch bindings --json`; None for Kamailio."""
        if self.kind != "node":
            return None
        aor = "sip:%s@%s" % (user, nodeproc.DOMAIN)
        return [b["contact"] for b in self.server.bindings() if b.get("aor") == aor]


def _start(tmp, nonce_ttl=None):
    users = (nodeproc.make_users(10, "a") + nodeproc.make_users(BURST, "b") + nodeproc.make_users(5, "r")
             + nodeproc.make_users(5, "s") + nodeproc.make_users(5, "w") + nodeproc.make_users(3, "t"))
    if PEER == "kamailio":
        k = nodeproc.Kamailio(tmp, nonce_expire=nonce_ttl or 300)
        k.start()
        return Peer("kamailio", k)
    extra = {"nonce_ttl": nonce_ttl} if nonce_ttl else {}
    n = nodeproc.Node(tmp, config=node_config(**extra), users=users)
    n.start()
    return Peer("node", n)


@pytest.fixture(scope="module")
def peer(tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("sipp"))
    p = _start(tmp)
    yield p
    p.server.stop()


@pytest.fixture(scope="module")
def short_nonce_peer(tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("sipp-stale"))
    p = _start(tmp, nonce_ttl=NONCE_TTL_S)
    yield p
    p.server.stop()


@pytest.fixture
def work(tmp_path):
    return str(tmp_path)


def _explain(res, peer):
    text = repr(res)
    if peer.kind == "node":
        text += "\n--- node output (tail) ---\n" + peer.server.output()[-3000:]
    return text


def _received(res):
    return [m for d, m in nodeproc.sipp_messages(res.messages) if d == "received"]


def test_digest_success_udp(peer, work):
    users = nodeproc.make_users(3, "a")
    res = nodeproc.run_sipp(peer.udp, "register_auth.xml", work, users=users, count=3, timeout_s=20, trace=True)
    assert res.rc == 0 and res.successful == 3 and res.failed == 0, _explain(res, peer)
    statuses = [nodeproc.status_of(m.encode()) for m in _received(res)]
    assert statuses.count(401) == 3 and statuses.count(200) == 3, statuses
    for user, _, _ in users:
        contacts = peer.contacts(user)
        assert contacts is None or (len(contacts) == 1 and contacts[0].startswith("sip:%s@127.0.0.1:" % user)), \
            contacts


def test_digest_success_tcp(peer, work):
    if peer.tcp is None:
        pytest.skip("the Kamailio reference config listens on UDP only")
    users = nodeproc.make_users(3, "t")
    res = nodeproc.run_sipp(peer.tcp, "register_auth.xml", work, users=users, count=3, transport="tcp",
                            timeout_s=20)
    assert res.rc == 0 and res.successful == 3 and res.failed == 0, _explain(res, peer)
    assert peer.contacts("t00001") != [], "no binding after a TCP registration"


def test_wrong_password_never_200(peer, work):
    """The scenario expects 401 then 200: a wrong password must end as a failed call (proves the test can fail)."""
    users = [("a00005", "not-the-password", nodeproc.DOMAIN)]
    res = nodeproc.run_sipp(peer.udp, "register_auth.xml", work, users=users, count=1, timeout_s=15, trace=True)
    assert res.rc != 0 and res.failed == 1 and res.successful == 0, _explain(res, peer)
    statuses = [nodeproc.status_of(m.encode()) for m in _received(res)]
    assert 200 not in statuses, statuses
    assert statuses[:2] == [401, 401], statuses    # challenged, then refused with a fresh challenge
    assert peer.contacts("a00005") in (None, [])


def test_stale_nonce_recovery(short_nonce_peer, work):
    """Past nonce_ttl the old nonce gets 401 stale=true (the scenario checks it); the re-auth then succeeds."""
    peer = short_nonce_peer
    users = nodeproc.make_users(1, "s")
    res = nodeproc.run_sipp(peer.udp, "register_stale.xml", work, users=users, count=1, timeout_s=20, trace=True,
                            extra=["-d", str(STALE_WAIT_MS)])
    assert res.rc == 0 and res.successful == 1, _explain(res, peer)
    got = _received(res)
    statuses = [nodeproc.status_of(m.encode()) for m in got]
    assert statuses == [401, 200, 401, 200], statuses
    assert re.search(r'stale="?true', got[2], re.I) and not re.search(r'stale="?true', got[0], re.I)


def _digest_fields(auth_value):
    return dict(re.findall(r'(\w+)="?([^",]*)"?', auth_value.split(" ", 1)[1]))


def _send_udp(target, data, timeout=3.0):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind((nodeproc.HOST, 0))
        s.settimeout(timeout)
        s.sendto(data, target)
        while True:   # skip provisional answers; bounded by the socket timeout
            st = nodeproc.status_of(s.recv(65535))
            if st is not None and st >= 200:
                return st
    except socket.timeout:
        return None
    finally:
        s.close()


def test_replayed_nc_rejected(peer, work):
    """RFC 7616 §3.4: the Authorization sipp sent (nonce, nc, response) replayed in a new transaction is not
    accepted; the same nonce with the next nc and a correct response is (control)."""
    user, password, domain = nodeproc.make_users(1, "r")[0]
    res = nodeproc.run_sipp(peer.udp, "register_auth.xml", work, users=[(user, password, domain)], count=1,
                            timeout_s=15, trace=True)
    assert res.rc == 0 and res.successful == 1, _explain(res, peer)
    sent = [m for d, m in nodeproc.sipp_messages(res.messages) if d == "sent" and "\r\nAuthorization:" in m][-1]

    def variant(branch, cseq, authorization=None):
        m = re.sub(r"branch=[^;\r\n]+", "branch=" + branch, sent)
        m = re.sub(r"CSeq: \d+", "CSeq: %d" % cseq, m)
        if authorization:
            m = re.sub(r"Authorization: [^\r\n]+", "Authorization: " + authorization, m)
        return m.encode()

    for i in range(2):   # twice: neither the first nor a second replay gets through
        st = _send_udp(peer.udp, variant("z9hG4bKreplay%d" % i, 3 + i))
        assert st is not None and st != 200, "replayed nc answered %r" % st
        assert st == 401, st

    # control: same nonce, nc=2, correct response -> accepted (so the rejection above was the replay)
    auth = re.search(r"Authorization: ([^\r\n]+)", sent).group(1)
    f = _digest_fields(auth)
    ha1 = hashlib.md5(("%s:%s:%s" % (user, f["realm"], password)).encode()).hexdigest()
    ha2 = hashlib.md5(("REGISTER:%s" % f["uri"]).encode()).hexdigest()
    cnonce = "0a4f113b"
    resp = hashlib.md5(":".join((ha1, f["nonce"], "00000002", cnonce, "auth", ha2)).encode()).hexdigest()
    fresh = ('Digest username="%s",realm="%s",nonce="%s",uri="%s",response="%s",algorithm=MD5,'
             'cnonce="%s",qop=auth,nc=00000002' % (user, f["realm"], f["nonce"], f["uri"], resp, cnonce))
    assert _send_udp(peer.udp, variant("z9hG4bKfresh", 9, fresh)) == 200


def test_wildcard_contact_removes_all(peer, work):
    """Two contacts bound, then `Contact: *` + `Expires: 0`: the query answer (checked in the scenario) and the
    node's binding table both list none."""
    users = nodeproc.make_users(1, "w")
    res = nodeproc.run_sipp(peer.udp, "register_unregister.xml", work, users=users, count=1, timeout_s=20,
                            trace=True)
    assert res.rc == 0 and res.successful == 1, _explain(res, peer)
    got = _received(res)
    assert [nodeproc.status_of(m.encode()) for m in got] == [401, 200, 200, 200, 200]
    assert "w00000-a@" in got[2] and "w00000-b@" in got[2]
    assert peer.contacts("w00000") in (None, [])


def test_burst_of_1000_registers(peer, work):
    users = nodeproc.make_users(BURST, "b")
    res = nodeproc.run_sipp(peer.udp, "register_auth.xml", work, users=users, count=BURST, rate=1000, limit=100,
                            timeout_s=60, tag="burst")
    assert res.rc == 0 and res.successful == BURST and res.failed == 0, _explain(res, peer)
    if peer.kind == "node":
        bound = {b["aor"] for b in peer.server.bindings()}
        missing = [u for u, _, _ in users if "sip:%s@%s" % (u, nodeproc.DOMAIN) not in bound]
        assert missing == [], missing[:10]
