"""Registrar (microwitch.node.registrar): RFC 3261 §10.3 rules, digest auth, bounds, and what is written."""
from microwitch.sip.message import parse
from microwitch.sip.digest import parse_credentials, ha1_hex, response_hex
from microwitch.node.registrar import Registrar, http_date
from microwitch.store.memory import MemoryBackend
from microwitch.store.users import Users
from microwitch.store.bindings import Bindings, Binding, LEASE_FACTOR
from microwitch.store import StoreFull
from microwitch.store.journal import MAX_RECORD

DOMAIN = "example.org"
SRC = ("udp", "198.51.100.7", 5062)
T0 = 1700000000  # wall clock (s)
PASSWORDS = {"alice": "alice-pw", "bob": "bob-pw"}


class Counter:
    def __init__(self):
        self.i = 0

    def __call__(self, n):
        out = bytearray(n)
        for k in range(n):
            self.i += 1
            out[k] = (self.i * 151 + 3) & 0xFF
        return bytes(out)


def config(**kw):
    cfg = {"domain": DOMAIN, "aliases": ["sip.example.org"], "listen": ["udp:192.0.2.1:5060", "tcp:[2001:db8::1]:5060"],
           "realm": "", "min_expires": 60, "max_expires": 3600, "default_expires": 1800, "max_aors": 100,
           "max_contacts_per_aor": 10, "nonce_ttl": 300}
    for k in kw:
        cfg[k] = kw[k]
    return cfg


class World:
    """A registrar over in-memory stores, a fake clock and a phone-like client that answers challenges."""

    def __init__(self, **kw):
        self.be = MemoryBackend()
        self.cfg = config(**kw)
        self.users = Users(self.be)
        self.users.load()
        for u in PASSWORDS:
            self.users.add(u + "@" + DOMAIN, PASSWORDS[u])
        self.bindings = Bindings(self.be, max_aors=self.cfg["max_aors"],
                                 max_contacts_per_aor=self.cfg["max_contacts_per_aor"])
        self.bindings.load(T0)
        self.logs = []
        self.reg = Registrar(self.cfg, self.users, self.bindings, Counter(), b"secret", self.logs.append)
        self.now_ms = 10000
        self.wall = T0
        self.nonce = {}
        self.nc = {}

    def advance(self, s):
        self.now_ms += s * 1000
        self.wall += s

    def raw(self, user="alice", contacts=("<sip:alice@198.51.100.7:5062>",), expires=None, call_id="cid-1",
            cseq=1, ruri="sip:" + DOMAIN, to=None, extra=(), auth=None):
        to = to or "<sip:%s@%s>" % (user, DOMAIN)
        lines = ["REGISTER %s SIP/2.0" % ruri,
                 "Via: SIP/2.0/UDP 198.51.100.7:5062;branch=z9hG4bK-%d-%s" % (cseq, call_id),
                 "Max-Forwards: 70", "From: %s;tag=ft1" % to, "To: " + to, "Call-ID: " + call_id,
                 "CSeq: %d REGISTER" % cseq]
        for c in contacts:
            lines.append("Contact: " + c)
        if expires is not None:
            lines.append("Expires: %s" % expires)
        for e in extra:
            lines.append(e)
        if auth:
            lines.append("Authorization: " + auth)
        return parse(("\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n").encode())

    def send(self, msg, source=SRC):
        return self.reg.handle(msg, source, self.now_ms, self.wall)

    def authorization(self, user, ruri, alg="SHA-256", password=None):
        nonce = self.nonce[user]
        self.nc[user] = self.nc.get(user, 0) + 1
        nc = "%08x" % self.nc[user]
        ha1 = ha1_hex(alg, user, DOMAIN, password or PASSWORDS[user])
        r = response_hex(alg, ha1, nonce, nc, "cn0nce", "auth", "REGISTER", ruri)
        return ('Digest username="%s", realm="%s", nonce="%s", uri="%s", response="%s", algorithm=%s, '
                'qop=auth, nc=%s, cnonce="cn0nce"' % (user, DOMAIN, nonce, ruri, r, alg, nc))

    def register(self, user="alice", source=SRC, alg="SHA-256", password=None, auth_user=None, **kw):
        """Send like a phone: reuse the last nonce with the next nc; on 401 take the new nonce and retry once."""
        au = auth_user or user
        ruri = kw.get("ruri", "sip:" + DOMAIN)
        if au in self.nonce:
            resp = self.send(self.raw(user, auth=self.authorization(au, ruri, alg, password), **kw), source)
            if resp.status != 401:
                return resp
        else:
            resp = self.send(self.raw(user, **kw), source)
            assert resp.status == 401, resp.status
        self.nonce[au] = parse_credentials(resp.get("WWW-Authenticate"))["nonce"]
        self.nc[au] = 0
        kw["cseq"] = kw.get("cseq", 1) + 1
        return self.send(self.raw(user, auth=self.authorization(au, ruri, alg, password), **kw), source)


def contacts_of(resp):
    out = {}
    for c in resp.get_all("Contact"):
        uri = c[c.find("<") + 1:c.find(">")]
        params = {}
        for p in c[c.find(">") + 1:].split(";")[1:]:
            k, _, v = p.partition("=")
            params[k] = v
        out[uri] = params
    return out


# -- authentication -------------------------------------------------------------------------------------
def test_no_credentials_401_with_sha256_then_md5():
    w = World()
    resp = w.send(w.raw())
    assert resp.status == 401
    ch = resp.get_all("WWW-Authenticate")
    assert len(ch) == 2
    a, b = parse_credentials(ch[0]), parse_credentials(ch[1])
    assert a["algorithm"] == "SHA-256" and b["algorithm"] == "MD5"
    assert a["realm"] == DOMAIN and a["qop"] == "auth" and "stale" not in a
    assert ";tag=" in resp.get("To")
    assert resp.get("Call-ID") == "cid-1" and resp.get("CSeq") == "1 REGISTER"
    assert w.bindings.lookup("sip:alice@" + DOMAIN, w.wall) == []
    assert w.be.writes == 2  # the two users added by World(); a challenge writes nothing
    assert len(w.logs) == 1 and " 401 " in w.logs[0]


def test_register_both_algorithms_and_200_lists_contacts():
    for alg in ("SHA-256", "MD5"):
        w = World()
        resp = w.register(alg=alg, contacts=("<sip:alice@198.51.100.7:5062>;q=0.7",), expires=600)
        assert resp.status == 200 and resp.reason == "OK", (alg, resp.status, resp.reason)
        c = contacts_of(resp)
        assert c == {"sip:alice@198.51.100.7:5062": {"expires": "600", "q": "0.7"}}, c
        assert resp.get("Date") == http_date(T0)
        assert ";tag=" in resp.get("To")
        b = w.reg.lookup("sip:alice@" + DOMAIN, w.wall)
        assert len(b) == 1 and b[0].expires == T0 + 600 and b[0].source == SRC and b[0].q == 700


def test_wrong_password_is_401_again():
    w = World()
    resp = w.register(password="wrong")
    assert resp.status == 401 and "stale" not in parse_credentials(resp.get("WWW-Authenticate"))
    assert w.reg.lookup("sip:alice@" + DOMAIN, w.wall) == []


def test_stale_nonce_gets_stale_true_and_phone_recovers():
    w = World()
    assert w.register().status == 200
    w.advance(301)
    resp = w.send(w.raw(auth=w.authorization("alice", "sip:" + DOMAIN), cseq=5))
    assert resp.status == 401
    assert parse_credentials(resp.get("WWW-Authenticate"))["stale"] == "true"
    assert w.register(cseq=6).status == 200  # the helper retries with the fresh nonce


def test_replayed_request_is_refused():
    w = World()
    msg = None
    assert w.register().status == 200
    msg = w.raw(auth=w.authorization("alice", "sip:" + DOMAIN), cseq=3)
    assert w.send(msg).status == 200
    assert w.send(msg).status == 401  # same nonce and nc again


def test_authenticated_user_must_own_the_aor():
    w = World()
    resp = w.register(user="alice", auth_user="bob")  # bob's credentials, alice's To
    assert resp.status == 403 and resp.reason == "Not the owner of this address"
    assert w.reg.lookup("sip:alice@" + DOMAIN, w.wall) == []


def test_unknown_user_cannot_register():
    w = World()
    resp = w.send(w.raw(user="mallory"))
    assert resp.status == 401
    w.nonce["mallory"] = parse_credentials(resp.get("WWW-Authenticate"))["nonce"]
    resp = w.send(w.raw(user="mallory", auth=w.authorization("mallory", "sip:" + DOMAIN, password="x"), cseq=2))
    assert resp.status == 401


def test_log_lines_never_carry_secrets():
    w = World()
    w.register()
    w.register(password="wrong", cseq=9)
    text = "\n".join(w.logs)
    assert "REGISTER sip:alice@example.org udp:198.51.100.7:5062 200 OK" in text
    for secret in [w.nonce["alice"], PASSWORDS["alice"], w.users.get("alice@" + DOMAIN)["md5"],
                   w.users.get("alice@" + DOMAIN)["sha256"], "response="]:
        assert secret not in text, secret
    for line in w.logs:
        assert "\n" not in line


# -- domain, Require, To ----------------------------------------------------------------------------------
def test_request_uri_domain_check():
    w = World()
    resp = w.send(w.raw(ruri="sip:elsewhere.net"))
    assert resp.status == 403 and resp.reason == "Domain not served here"
    for ruri in ("sip:sip.example.org", "sip:192.0.2.1:5060", "sip:[2001:db8::1]", "sips:EXAMPLE.org"):
        w2 = World()
        resp = w2.register(ruri=ruri)
        assert resp.status == 200, (ruri, resp.status, resp.reason)
    assert w.send(w.raw(ruri="tel:+123")).status == 416


def test_to_not_local_is_404_and_alias_to_is_same_aor():
    w = World()
    resp = w.register(to="<sip:alice@elsewhere.net>")
    assert resp.status == 404
    resp = w.register(to="<sip:alice@sip.example.org>", cseq=10)
    assert resp.status == 200
    assert len(w.reg.lookup("sip:alice@example.org", w.wall)) == 1
    assert len(w.reg.lookup("sip:alice@192.0.2.1", w.wall)) == 1  # the forwarder may ask by any local host
    assert w.reg.lookup("sip:alice@elsewhere.net", w.wall) == []


def test_require_unsupported_is_420():
    w = World()
    resp = w.send(w.raw(extra=("Require: foo, path",)))
    assert resp.status == 420 and resp.get_all("Unsupported") == ["foo"]
    assert w.register(extra=("Require: path", "Supported: path", "Path: <sip:edge.example.org;lr>")).status == 200


def test_path_is_stored_and_echoed():
    w = World()
    resp = w.register(extra=("Supported: path", "Path: <sip:edge.example.org;lr>"))
    assert resp.status == 200 and resp.get_all("Path") == ["<sip:edge.example.org;lr>"]
    assert w.reg.lookup("sip:alice@" + DOMAIN, w.wall)[0].path == ["<sip:edge.example.org;lr>"]


def test_non_register_is_405():
    w = World()
    m = parse(b"OPTIONS sip:example.org SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\nFrom: <sip:a@b>;tag=1\r\n"
              b"To: <sip:a@b>\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
    resp = w.send(m)
    assert resp.status == 405 and resp.get("Allow") == "REGISTER"


# -- contacts and expiry ----------------------------------------------------------------------------------
def test_expires_param_header_default_cap_and_423():
    w = World()
    resp = w.register(contacts=("<sip:a1@1.1.1.1>;expires=120", "<sip:a2@1.1.1.1>", "<sip:a3@1.1.1.1>;expires=99999"),
                      expires=300)
    assert resp.status == 200
    c = contacts_of(resp)
    assert c["sip:a1@1.1.1.1"]["expires"] == "120"
    assert c["sip:a2@1.1.1.1"]["expires"] == "300"  # Expires header
    assert c["sip:a3@1.1.1.1"]["expires"] == "3600"  # capped at max_expires
    w = World()
    resp = w.register(contacts=("<sip:a1@1.1.1.1>",))
    assert contacts_of(resp)["sip:a1@1.1.1.1"]["expires"] == "1800"  # default_expires
    resp = w.register(contacts=("<sip:a1@1.1.1.1>;expires=30",), cseq=20)
    assert resp.status == 423 and resp.get("Min-Expires") == "60"
    resp = w.register(contacts=("<sip:a1@1.1.1.1>",), expires=59, cseq=21)
    assert resp.status == 423
    # the 423 changed nothing
    assert w.reg.lookup("sip:alice@" + DOMAIN, w.wall)[0].expires == T0 + 1800


def test_remaining_expires_counts_down_and_binding_expires():
    w = World()
    w.register(contacts=("<sip:a1@1.1.1.1>",), expires=600)
    w.advance(100)
    resp = w.register(contacts=(), cseq=10)  # query
    assert resp.status == 200 and contacts_of(resp)["sip:a1@1.1.1.1"]["expires"] == "500"
    w.advance(500)
    assert w.reg.lookup("sip:alice@" + DOMAIN, w.wall) == []
    resp = w.register(contacts=(), cseq=11)
    assert resp.status == 200 and resp.get_all("Contact") == []


def test_q_values():
    w = World()
    resp = w.register(contacts=("<sip:a@1.1.1.1>;q=1.0", "<sip:b@1.1.1.1>;q=0.25", "<sip:c@1.1.1.1>;q=0",
                                "<sip:d@1.1.1.1>"))
    assert resp.status == 200
    c = contacts_of(resp)
    assert c["sip:a@1.1.1.1"]["q"] == "1" and c["sip:b@1.1.1.1"]["q"] == "0.25"
    assert c["sip:c@1.1.1.1"]["q"] == "0" and "q" not in c["sip:d@1.1.1.1"]
    order = [b.uri for b in w.reg.lookup("sip:alice@" + DOMAIN, w.wall)]
    assert order[-2:] == ["sip:b@1.1.1.1", "sip:c@1.1.1.1"] and set(order[:2]) == {"sip:a@1.1.1.1", "sip:d@1.1.1.1"}
    for bad in ("1.5", "0.1234", "abc", "-1", "0.", "2"):
        resp = w.register(contacts=("<sip:e@1.1.1.1>;q=" + bad,), cseq=30)
        assert resp.status == 400 and resp.reason == "Bad q value", bad


def test_bad_contact_and_expires_values():
    w = World()
    assert w.register(contacts=("<sip:a@1.1.1.1>;expires=soon",)).status == 400
    assert w.register(contacts=("<mailto:a@b.c>",), cseq=10).status == 400
    assert w.register(contacts=("<sip:a@1.1.1.1>;+sip.instance=\"<urn:uuid:1>\";reg-id=x",), cseq=11).status == 400
    assert w.reg.lookup("sip:alice@" + DOMAIN, w.wall) == []
    # a reg-id without an instance is ignored (a plain RFC 3261 contact)
    assert w.register(contacts=("<sip:a@1.1.1.1>;reg-id=1",), cseq=12).status == 200
    assert w.reg.lookup("sip:alice@" + DOMAIN, w.wall)[0].reg_id is None


def test_oversized_values_are_400_and_a_full_aor_fits_one_record():
    w = World(max_contacts_per_aor=100)
    assert w.register(contacts=("<sip:a@1.1.1.1>;x=" + "y" * 600,)).status == 400
    assert w.register(call_id="c" * 200, cseq=10).status == 400
    assert w.register(extra=("Path: <sip:%s.example.org;lr>" % ("p" * 600),), cseq=11).status == 400
    # the largest accepted AoR still fits one journal record
    one = '<sip:u%03d@1.1.1.1>;+sip.instance="<urn:uuid:%03d>";x=' + "y" * 440
    contacts = tuple(", ".join(one % (i, i) for i in range(k, k + 5)) for k in range(0, 100, 5))
    resp = w.register(contacts=contacts, call_id="c" * 128, cseq=12,
                      extra=("Path: <sip:%s.example.org;lr>" % ("p" * 480),))
    assert resp.status == 200, resp.reason
    assert len(w.reg.lookup("sip:alice@" + DOMAIN, w.wall)) == 100
    assert 50000 < w.bindings.journal.live < MAX_RECORD  # the one AoR's record
    b2 = Bindings(w.be, max_contacts_per_aor=100)
    assert b2.load(w.wall) == 100


def test_remove_one_contact_with_expires_zero():
    w = World()
    w.register(contacts=("<sip:a@1.1.1.1>", "<sip:b@1.1.1.1>"))
    resp = w.register(contacts=("<sip:a@1.1.1.1>;expires=0",), cseq=10)
    assert resp.status == 200 and list(contacts_of(resp)) == ["sip:b@1.1.1.1"]
    resp = w.register(contacts=("<sip:zz@1.1.1.1>",), expires=0, cseq=11)  # unknown contact: nothing to do
    assert resp.status == 200 and list(contacts_of(resp)) == ["sip:b@1.1.1.1"]


def test_wildcard_rules():
    w = World()
    w.register(contacts=("<sip:a@1.1.1.1>", "<sip:b@1.1.1.1>"), call_id="phone-1")
    assert w.register(contacts=("*",), expires=60, cseq=10, call_id="phone-2").status == 400
    assert w.register(contacts=("*",), cseq=11, call_id="phone-2").status == 400  # no Expires header
    resp = w.register(contacts=("*", "<sip:c@1.1.1.1>"), expires=0, cseq=12, call_id="phone-2")
    assert resp.status == 400
    assert len(w.reg.lookup("sip:alice@" + DOMAIN, w.wall)) == 2
    resp = w.register(contacts=("*",), expires=0, cseq=13, call_id="phone-2")
    assert resp.status == 200 and resp.get_all("Contact") == []
    assert w.reg.lookup("sip:alice@" + DOMAIN, w.wall) == []
    b2 = Bindings(w.be)
    b2.load(w.wall)
    assert b2.lookup("sip:alice@" + DOMAIN, w.wall) == []  # the removal was written


def test_wildcard_with_old_cseq_same_call_id_is_500():
    w = World()
    w.register(contacts=("<sip:a@1.1.1.1>",), call_id="phone-1", cseq=50)
    resp = w.register(contacts=("*",), expires=0, call_id="phone-1", cseq=10)
    assert resp.status == 500 and resp.reason == "CSeq out of order"
    assert len(w.reg.lookup("sip:alice@" + DOMAIN, w.wall)) == 1


def test_call_id_cseq_ordering():
    w = World()
    assert w.register(contacts=("<sip:a@1.1.1.1>",), call_id="c1", cseq=10).status == 200  # stored CSeq 11
    resp = w.register(contacts=("<sip:a@1.1.1.1>;expires=0",), call_id="c1", cseq=10)  # (authorized) CSeq 11 again
    assert resp.status == 500 and resp.reason == "CSeq out of order"
    assert len(w.reg.lookup("sip:alice@" + DOMAIN, w.wall)) == 1
    # another Call-ID (phone rebooted) may use any CSeq
    assert w.register(contacts=("<sip:a@1.1.1.1>",), call_id="c2", cseq=1).status == 200
    assert w.register(contacts=("<sip:a@1.1.1.1>",), call_id="c2", cseq=7).status == 200


def test_instance_and_reg_id_replace_old_contact():
    w = World()
    inst = '"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>"'
    assert w.register(contacts=("<sip:alice@10.0.0.5:5060>;+sip.instance=%s;reg-id=1" % inst,)).status == 200
    # the phone moved (new IP/port): same instance and reg-id -> the binding is replaced, not added
    resp = w.register(contacts=("<sip:alice@10.0.0.9:5070>;+sip.instance=%s;reg-id=1" % inst,), cseq=10)
    assert resp.status == 200
    c = contacts_of(resp)
    assert list(c) == ["sip:alice@10.0.0.9:5070"]
    assert c["sip:alice@10.0.0.9:5070"]["+sip.instance"] == inst and c["sip:alice@10.0.0.9:5070"]["reg-id"] == "1"
    # a second flow (reg-id 2) of the same instance is a second binding
    resp = w.register(contacts=("<sip:alice@10.0.0.9:5071>;+sip.instance=%s;reg-id=2" % inst,), cseq=20)
    assert len(contacts_of(resp)) == 2
    b = w.reg.lookup("sip:alice@" + DOMAIN, w.wall)
    assert sorted(x.reg_id for x in b) == [1, 2] and b[0].instance == inst


def test_never_a_gruu():
    w = World()
    inst = '"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>"'
    resp = w.register(contacts=("<sip:alice@10.0.0.5>;+sip.instance=%s" % inst,), extra=("Supported: gruu, outbound",))
    assert resp.status == 200
    data = resp.to_bytes().lower()
    assert b"gruu" not in data and b"require:" not in data


def test_nat_source_remembered_and_change_is_written():
    w = World()
    w.register(contacts=("<sip:alice@10.0.0.5:5060>",))
    b = w.reg.lookup("sip:alice@" + DOMAIN, w.wall)[0]
    assert b.source == SRC
    writes = w.be.writes
    new_src = ("tcp", "203.0.113.9", 40000)
    w.register(contacts=("<sip:alice@10.0.0.5:5060>",), source=new_src, cseq=10)
    assert w.reg.lookup("sip:alice@" + DOMAIN, w.wall)[0].source == new_src
    assert w.be.writes == writes + 1
    b2 = Bindings(w.be)
    b2.load(w.wall)
    assert b2.lookup("sip:alice@" + DOMAIN, w.wall)[0].source == new_src


# -- persistence: what is written, what survives ----------------------------------------------------------
def test_refresh_does_not_write():
    w = World()
    base = w.be.writes
    assert w.register(contacts=("<sip:alice@10.0.0.5>",), expires=600).status == 200
    assert w.be.writes == base + 1  # the new contact
    for i in range(2 * (LEASE_FACTOR - 1)):  # refreshes every granted/2, up to the end of the lease
        w.advance(300)
        resp = w.register(contacts=("<sip:alice@10.0.0.5>",), expires=600, cseq=10 + 2 * i)
        assert resp.status == 200 and contacts_of(resp)["sip:alice@10.0.0.5"]["expires"] == "600"
        assert w.reg.lookup("sip:alice@" + DOMAIN, w.wall)[0].expires == w.wall + 600
    assert w.be.writes == base + 1
    # a query and a nonce renewal do not write either
    w.register(contacts=(), cseq=500)
    assert w.be.writes == base + 1
    # the refresh that would outrun the stored lease is written (once)
    w.advance(300)
    w.register(contacts=("<sip:alice@10.0.0.5>",), expires=600, cseq=600)
    assert w.be.writes == base + 2


def test_writes_per_hour_at_min_expires():
    w = World()
    w.register(contacts=("<sip:alice@10.0.0.5>",), expires=60)
    base = w.be.writes
    for i in range(120):  # one hour of refreshes every 30 s
        w.advance(30)
        assert w.register(contacts=("<sip:alice@10.0.0.5>",), expires=60, cseq=10 + 2 * i).status == 200
    # at most one write per (LEASE_FACTOR - 1) * 60 s = 20 per hour (here every 210 s: the first refresh
    # past 180 s)
    n = w.be.writes - base
    assert 3600 // ((LEASE_FACTOR - 1) * 60 + 30) <= n <= 3600 // ((LEASE_FACTOR - 1) * 60), n


def test_expiry_restored_as_absolute_time_never_early():
    w = World()
    w.register(contacts=("<sip:alice@10.0.0.5>",), expires=600)
    for i in range(3):
        w.advance(300)
        w.register(contacts=("<sip:alice@10.0.0.5>",), expires=600, cseq=10 + 2 * i)
    real_expiry = w.wall + 600
    # crash now, restart 100 s later: the binding is back, expiring no earlier than the real expiry
    b2 = Bindings(w.be)
    assert b2.load(w.wall + 100) == 1
    got = b2.lookup("sip:alice@" + DOMAIN, w.wall + 100)[0]
    assert got.expires >= real_expiry and got.expires <= w.wall + 100 + 600
    assert got.source == SRC and got.call_id == "cid-1"
    # restart after the lease passed: dropped
    lease = got.lease
    b3 = Bindings(w.be)
    assert b3.load(lease) == 0 and b3.lookup("sip:alice@" + DOMAIN, lease) == []


def test_storage_error_is_500_and_changes_nothing():
    w = World()
    w.register(contacts=("<sip:a@1.1.1.1>",))
    w.be.fail = True
    resp = w.register(contacts=("<sip:b@1.1.1.1>",), cseq=10)
    assert resp.status == 500 and resp.reason == "Storage error"
    assert [b.uri for b in w.reg.lookup("sip:alice@" + DOMAIN, w.wall)] == ["sip:a@1.1.1.1"]


# -- bounds -----------------------------------------------------------------------------------------------
def test_max_contacts_per_aor():
    w = World(max_contacts_per_aor=2)
    assert w.register(contacts=("<sip:a@1.1.1.1>", "<sip:b@1.1.1.1>")).status == 200
    writes = w.be.writes
    resp = w.register(contacts=("<sip:c@1.1.1.1>",), cseq=10)
    assert resp.status == 403 and resp.reason == "Too many contacts"
    assert sorted(b.uri for b in w.reg.lookup("sip:alice@" + DOMAIN, w.wall)) == ["sip:a@1.1.1.1", "sip:b@1.1.1.1"]
    assert w.be.writes == writes
    # replacing within the bound is fine
    resp = w.register(contacts=("<sip:a@1.1.1.1>;expires=0", "<sip:c@1.1.1.1>"), cseq=20)
    assert resp.status == 200 and sorted(contacts_of(resp)) == ["sip:b@1.1.1.1", "sip:c@1.1.1.1"]


def test_max_aors_full_then_room_after_expiry():
    w = World(max_aors=1)
    assert w.register(user="alice", contacts=("<sip:a@1.1.1.1>",), expires=120).status == 200
    resp = w.register(user="bob", contacts=("<sip:b@1.1.1.1>",))
    assert resp.status == 503 and resp.reason == "Registrar full" and resp.get("Retry-After")
    assert len(w.reg.lookup("sip:alice@" + DOMAIN, w.wall)) == 1
    assert w.reg.lookup("sip:bob@" + DOMAIN, w.wall) == []
    # alice's refresh still works when full
    assert w.register(user="alice", contacts=("<sip:a@1.1.1.1>",), expires=120, cseq=10).status == 200
    w.advance(121)
    assert w.register(user="bob", contacts=("<sip:b@1.1.1.1>",), cseq=20).status == 200


def test_http_date():
    assert http_date(0) == "Thu, 01 Jan 1970 00:00:00 GMT"
    assert http_date(784111777) == "Sun, 06 Nov 1994 08:49:37 GMT"  # RFC 7231 §7.1.1.1 example
    assert http_date(951782400) == "Tue, 29 Feb 2000 00:00:00 GMT"
    assert http_date(4102444799) == "Thu, 31 Dec 2099 23:59:59 GMT"


# -- the bindings store directly ----------------------------------------------------------------------------
def _b(uri, exp, granted=600, src=("udp", "10.0.0.1", 5060), **kw):
    return Binding(uri, exp, granted, "cid", 1, src, **kw)


def test_bindings_bounds_raise_and_change_nothing():
    be = MemoryBackend()
    b = Bindings(be, max_aors=2, max_contacts_per_aor=2)
    b.load(T0)
    assert b.update("sip:a@x", [_b("sip:1@h", T0 + 600)], T0)
    assert b.update("sip:b@x", [_b("sip:2@h", T0 + 60, granted=60)], T0)
    w = be.writes
    for aor, new in (("sip:c@x", [_b("sip:3@h", T0 + 600)]),
                     ("sip:a@x", [_b("sip:4@h", T0 + 600), _b("sip:5@h", T0 + 600), _b("sip:6@h", T0 + 600)])):
        try:
            b.update(aor, new, T0)
            raise AssertionError("no StoreFull")
        except StoreFull:
            pass
    assert be.writes == w and sorted(b.aors()) == ["sip:a@x", "sip:b@x"]
    assert [x.uri for x in b.lookup("sip:a@x", T0)] == ["sip:1@h"]
    # removing from a full table is always possible; an expired AoR makes room
    assert not b.update("sip:zz@x", [], T0)
    assert b.update("sip:c@x", [_b("sip:3@h", T0 + 700)], T0 + 61)
    assert sorted(b.aors()) == ["sip:a@x", "sip:c@x"]


def test_bindings_load_skips_malformed_and_over_bound():
    be = MemoryBackend()
    b = Bindings(be)
    b.load(T0)
    b.update("sip:a@x", [_b("sip:%d@h" % i, T0 + 600) for i in range(3)], T0)
    b.update("sip:b@x", [_b("sip:9@h", T0 + 600)], T0)
    b.journal.put("sip:c@x", [{"u": "sip:x@h"}, "junk", {"u": "sip:y@h", "x": T0 + 999, "g": 60, "i": "c", "s": 1,
                                                         "a": ["udp", "1.2.3.4", 5060]}])
    b.journal.put("sip:d@x", "not a list")
    small = Bindings(be, max_aors=2, max_contacts_per_aor=2)
    n = small.load(T0 + 1)
    assert len(small) == 2
    assert n == sum(len(small.lookup(a, T0 + 1)) for a in small.aors()) and n <= 4
    assert small.skipped >= 3  # one over the contact bound, two malformed records
    c = Bindings(be)
    c.load(T0 + 1)
    got = c.lookup("sip:c@x", T0 + 1)
    assert [x.uri for x in got] == ["sip:y@h"] and got[0].expires == T0 + 1 + 60
