"""The web page end to end without sockets (portable): requests in, responses out, through WebApp.handle.

First run, login with per-source back-off, CSRF on every form, field-level errors that change nothing, the
user store shared with the CLI, one-time provisioning links, LAN-only answers."""
from microwitch import config
from microwitch.compat import sha256
from microwitch.store.memory import MemoryBackend
from microwitch.store.users import Users
from microwitch.store.pbx_accounts import PbxAccounts
from microwitch.web.admin import AdminStore
from microwitch.web.app import WebApp, Request, is_lan
from microwitch.web.forms import MAX_BODY

ADMIN_PW = "correct horse battery"
_ctr = [0]


def _rand(n):
    out = b""
    while len(out) < n:
        _ctr[0] += 1
        out += sha256(b"r" + str(_ctr[0]).encode()).digest()
    return out[:n]


def _q(s):
    out = ""
    for ch in s:
        if ch.isalpha() or ch.isdigit() or ch in "-_.":
            out += ch
        else:
            for b in ch.encode():
                out += "%%%02X" % b
    return out


def _enc(fields):
    return "&".join(_q(k) + "=" + _q(v) for k, v in fields).encode()


class Env:
    """A WebApp on an in-memory state dir, with a fake clock."""

    def __init__(self, setup=True, status=None, cfg='{"domain": "example.org", "listen": ["udp:192.168.1.1:5060"]}'):
        self.cfg = config.load(cfg)
        self.be = MemoryBackend()
        self.users = Users(self.be)
        self.users.load()
        self.accounts = PbxAccounts(self.be)
        self.accounts.load()
        self.admin = AdminStore(self.be, _rand, iterations=20).load()
        self.domains = []
        self.now = 10000
        self.wall = 1700000000
        self.view = status
        self.app = WebApp(self.cfg, self.users, self.admin, _rand, status=lambda: self.view, accounts=self.accounts,
                          set_domain=self._set_domain, base_url="http://192.168.1.1:8080")
        if setup:
            self.admin.set_password(ADMIN_PW)

    def _set_domain(self, d):
        self.domains.append(d)
        self.cfg["domain"] = d
        self.cfg["realm"] = d
        return None

    def req(self, method, path, body=b"", cookies=None, source="192.168.1.20", headers=None):
        h = dict(headers or {})
        if cookies:
            h["cookie"] = "; ".join(k + "=" + v for k, v in cookies.items())
        if body:
            h["content-type"] = "application/x-www-form-urlencoded"
        return self.app.handle(Request(method, path, h, body, source), self.now, self.wall)


class Browser:
    """Keeps cookies like a browser and finds the CSRF token in the last page."""

    def __init__(self, env, source="192.168.1.20"):
        self.env = env
        self.source = source
        self.cookies = {}
        self.last = None

    def _keep(self, r):
        for c in r.cookies():
            nv = c.split(";")[0]
            k, _, v = nv.partition("=")
            if v:
                self.cookies[k] = v
            else:
                self.cookies.pop(k, None)
        self.last = r
        return r

    def get(self, path):
        return self._keep(self.env.req("GET", path, cookies=self.cookies, source=self.source))

    def post(self, path, fields, csrf=True):
        f = list(fields)
        if csrf:
            f.append(("csrf", self.csrf()))
        return self._keep(self.env.req("POST", path, _enc(f), self.cookies, self.source))

    def csrf(self):
        t = self.last.body.decode()
        i = t.find('name="csrf" value="')
        return t[i + 19:i + 51]

    def text(self):
        return self.last.body.decode()


def _login(env, source="192.168.1.20"):
    b = Browser(env, source)
    b.get("/login")
    r = b.post("/login", [("password", ADMIN_PW)])
    assert r.status == 303 and r.header("Location") == "/", r.status
    b.get("/")
    return b


def _err(html, field):
    """The text of the error shown next to `field`, or None."""
    i = html.find('id="e_' + field + '">')
    if i < 0:
        return None
    j = html.find("<", i)
    return html[i + len('id="e_' + field + '">'):j]


def test_first_run_sets_password_and_domain_then_shows_dns():
    env = Env(setup=False)
    b = Browser(env)
    r = b.get("/")
    assert r.status == 303 and r.header("Location") == "/setup"
    assert b.get("/login").header("Location") == "/setup"  # nothing else before the first run
    r = b.get("/setup")
    assert r.status == 200 and "mw_pre" in b.cookies
    # bad fields: each gets its own message, nothing is stored
    r = b.post("/setup", [("password", "short"), ("password2", "short"), ("domain", "bad domain!")])
    assert r.status == 400
    assert "at least 10" in _err(b.text(), "password")
    assert "not allowed" in _err(b.text(), "domain")
    r = b.post("/setup", [("password", ADMIN_PW), ("password2", ADMIN_PW + "x"), ("domain", "home.example")])
    assert r.status == 400 and "differ" in _err(b.text(), "password2")
    assert not env.admin.is_set() and env.domains == [] and env.be.syncs == 0
    r = b.post("/setup", [("password", ADMIN_PW), ("password2", ADMIN_PW), ("domain", "Home.Example")])
    assert r.status == 303 and r.header("Location") == "/dns"
    cookie = [c for c in r.cookies() if c.startswith("mw_s=")][0]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert env.domains == ["home.example"]
    again = AdminStore(env.be, _rand).load()  # stored through the journal
    assert again.is_set() and again.check(ADMIN_PW)
    r = b.get("/dns")
    t = b.text()
    assert r.status == 200
    assert "_sip._udp.home.example.  3600 IN SRV 10 0 5060 node.home.example." in t
    assert "node.home.example.  300 IN A &lt;the public address of your connection&gt;" in t
    assert 'id="private"' in t and "192.168.1.1" in t  # a LAN address is not what other domains can reach
    env.app.sip = ("198.51.100.7", 5070)
    b.get("/dns")
    assert "_sip._tcp.home.example.  3600 IN SRV 10 0 5070 node.home.example." in b.text()
    assert "node.home.example.  300 IN A 198.51.100.7" in b.text() and 'id="private"' not in b.text()
    assert b.get("/setup").header("Location") == "/login"  # first run happens once


def test_login_backoff_slows_one_address_not_another():
    env = Env()
    bad = Browser(env, "192.168.1.66")
    bad.get("/login")
    statuses = []
    for _ in range(4):
        statuses.append(bad.post("/login", [("password", "guess")]).status)
    # 1st wrong: no wait; 2nd: wrong, now wait 1 s; 3rd and 4th: refused unchecked during the wait
    assert statuses == [401, 401, 429, 429], statuses
    assert "wait" in _err(bad.text(), "password")
    assert bad.last.header("Retry-After") == "1"
    # even the right password is not checked from that address during its wait
    assert bad.post("/login", [("password", ADMIN_PW)]).status == 429
    # the owner on another address logs in at once
    owner = _login(env, "192.168.1.20")
    assert "People and devices" in owner.text()
    # after the wait the address may try again (fake clock: no sleeping)
    env.now += 1000
    assert bad.post("/login", [("password", ADMIN_PW)]).status == 303


def test_csrf_required_on_every_form():
    env = Env()
    b = _login(env)
    for path, fields in (("/add", [("name", "mallory"), ("password", "12345678")]),
                         ("/remove", [("user", "x@example.org")]), ("/provision", [("user", "x@example.org")]),
                         ("/logout", [])):
        r = b.post(path, fields, csrf=False)
        assert r.status == 403 and "nothing was changed" in b.text(), path
        b.get("/")
        r = b.post(path, fields + [("csrf", "0" * 32)], csrf=False)
        assert r.status == 403, path
        b.get("/")
    assert env.users.addresses() == [] and env.be.syncs == 1  # only the admin password
    # login and first-run forms too
    anon = Browser(env)
    anon.get("/login")
    assert anon.post("/login", [("password", ADMIN_PW)], csrf=False).status == 403
    # a cross-site post is refused even with a token
    r = env.req("POST", "/add", _enc([("name", "eve"), ("csrf", b.csrf())]), b.cookies,
                headers={"sec-fetch-site": "cross-site"})
    assert r.status == 403 and env.users.addresses() == []
    # logged out: a post with an old token changes nothing
    b.get("/")
    tok = b.csrf()
    assert b.post("/logout", []).status == 303
    r = env.req("POST", "/add", _enc([("name", "eve"), ("csrf", tok)]), b.cookies)
    assert r.status == 403 and env.users.addresses() == []


def test_add_user_field_errors_change_nothing():
    env = Env()
    b = _login(env)
    before = (env.be.appends, env.be.syncs)
    cases = [("al ice", "name", "not allowed"), ("a<b>", "name", "not allowed"), ("", "name", "enter a name"),
             ("bob@evil.example", "name", "part before @"), ("x" * 300, "name", "longer than 64"),
             ("\u00e9mile", "name", "not allowed")]
    for name, field, text in cases:
        b.get("/")
        r = b.post("/add", [("name", name), ("password", "")])
        assert r.status == 400, name
        e = _err(b.text(), field)
        assert e is not None and text in e, (name, e)
        assert "<b>" not in b.text().split("<h2>Add a person")[1]  # input echoed escaped
    b.get("/")
    r = b.post("/add", [("name", "carol"), ("password", "short")])
    assert r.status == 400 and "at least 8" in _err(b.text(), "password")
    b.get("/")
    r = b.post("/add", [("name", "carol"), ("password", "p" * 200)])
    assert r.status == 400 and "at most 128" in _err(b.text(), "password")
    assert env.users.addresses() == [] and (env.be.appends, env.be.syncs) == before
    # an oversized or malformed body is refused as a whole
    b.get("/")
    r = env.req("POST", "/add", b"name=" + b"a" * MAX_BODY + b"&csrf=" + b.csrf().encode(), b.cookies)
    assert r.status == 413
    r = env.req("POST", "/add", b"name=%zz&csrf=" + b.csrf().encode(), b.cookies)
    assert r.status == 400
    assert env.users.addresses() == [] and (env.be.appends, env.be.syncs) == before


def test_add_user_shares_the_cli_store_and_shows_devices():
    env = Env(status={"devices": {"alice@example.org": [{"contact": "sip:alice@192.168.1.30:5062",
                                                         "source": "udp:192.168.1.30:5062", "expires_in": 3000}]},
                      "calls": [{"caller": "alice@example.org", "callee": "bob@example.org", "state": "up",
                                 "duration_s": 75, "zrtp": True, "zrtp_caller": True, "zrtp_callee": True}],
                      "pbx": [{"user": "alice@example.org", "extension": "201", "state": "registered",
                               "reason": ""}],
                      "errors": [(1, "WARN something <odd>")]})
    b = _login(env)
    r = b.post("/add", [("name", "alice"), ("password", "wonderland1")])
    assert r.status == 200 and "Added alice@example.org" in b.text()
    assert "password" not in b.text().split("Added")[1].split("</p>")[1]  # a chosen password is not shown
    assert env.be.syncs >= 2
    cli = Users(env.be, read_only=True)  # what the node and the CLI read
    cli.load()
    assert cli.addresses() == ["alice@example.org"]
    from microwitch.sip.digest import ha1_hex
    assert cli.get("alice@example.org")["md5"] == ha1_hex("MD5", "alice", "example.org", "wonderland1")
    # a user the CLI adds shows up on the page
    other = Users(env.be)
    other.load()
    other.add("bob@example.org", "builder12")
    b.get("/")
    t = b.text()
    assert "bob@example.org" in t and "alice@example.org" in t
    assert "udp:192.168.1.30:5062 (50 min)" in t
    assert "<td>75 s</td>" in t and '<span class="ok">yes</span>' in t
    assert "registered" in t and "&lt;odd&gt;" in t and "<odd>" not in t
    # adding an existing user is refused
    r = b.post("/add", [("name", "bob"), ("password", "")])
    assert r.status == 400 and "already exists" in _err(b.text(), "name")
    # a generated password is shown once
    b.get("/")
    r = b.post("/add", [("name", "dave"), ("password", "")])
    assert r.status == 200 and 'id="password"' in b.text()
    # remove
    b.get("/")
    r = b.post("/remove", [("user", "bob@example.org")])
    assert r.status == 200 and "Removed bob@example.org" in b.text()
    other.refresh()
    assert other.addresses() == ["alice@example.org", "dave@example.org"]
    r = b.post("/remove", [("user", "nobody@example.org")])
    assert r.status == 400 and "no such person" in b.text()


def _provisioning_xml(env, user):
    b = _login(env)
    b.post("/provision", [("user", user)])
    t = b.text()
    i = t.find('id="link">') + len('id="link">')
    return env.req("GET", t[i:t.find("<", i)][len("http://192.168.1.1:8080"):]).body.decode()


def test_provisioning_hands_out_the_ha1_of_an_offered_algorithm_and_the_advertised_address():
    from microwitch.sip.digest import ha1_hex
    env = Env(cfg='{"domain": "example.org", "listen": ["udp:0.0.0.0:5060"], "advertise": "192.168.1.5", '
                  '"digest_algorithms": ["SHA-256"]}')
    env.users.add("alice@example.org", "wonderland1")
    xml = _provisioning_xml(env, "alice@example.org")
    sha = ha1_hex("SHA-256", "alice", "example.org", "wonderland1")
    assert '"algorithm" overwrite="true">SHA-256<' in xml and ('"ha1" overwrite="true">%s<' % sha) in xml
    assert "&lt;sip:192.168.1.5:5060;transport=udp&gt;" in xml and "0.0.0.0" not in xml
    env = Env()  # MD5 offered (the default, first): the MD5 HA1, which every Linphone understands
    env.users.add("bob@example.org", "builder12")
    xml = _provisioning_xml(env, "bob@example.org")
    md5 = ha1_hex("MD5", "bob", "example.org", "builder12")
    assert '"algorithm" overwrite="true">MD5<' in xml and ('"ha1" overwrite="true">%s<' % md5) in xml


def test_provisioning_link_once_and_expiring():
    env = Env()
    env.users.add("alice@example.org", "wonderland1")
    b = _login(env)
    r = b.post("/provision", [("user", "alice@example.org")])
    t = b.text()
    assert r.status == 200 and "<svg" in t
    i = t.find('id="link">') + len('id="link">')
    link = t[i:t.find("<", i)]
    assert link.startswith("http://192.168.1.1:8080/p/") and len(link) == len("http://192.168.1.1:8080/p/") + 32
    path = link[len("http://192.168.1.1:8080"):]
    x = env.req("GET", path, source="192.168.1.30")  # the phone: no cookies, no login
    assert x.status == 200 and x.header("Content-Type") == "application/xml"
    xml = x.body.decode()
    assert "&lt;sip:alice@example.org&gt;" in xml and "&lt;sip:192.168.1.1:5060;transport=udp&gt;" in xml
    assert ">zrtp<" in xml and "media_encryption_mandatory" in xml and "wonderland1" not in xml
    assert env.req("GET", path, source="192.168.1.30").status == 404  # served once
    # expiry
    b.get("/")
    b.post("/provision", [("user", "alice@example.org")])
    t = b.text()
    i = t.find('id="link">') + len('id="link">')
    path = t[i:t.find("<", i)][len("http://192.168.1.1:8080"):]
    env.wall += 901
    assert env.req("GET", path).status == 404
    # removing the user revokes her link
    env.wall -= 901
    b.get("/")
    b.post("/provision", [("user", "alice@example.org")])
    t = b.text()
    i = t.find('id="link">') + len('id="link">')
    path = t[i:t.find("<", i)][len("http://192.168.1.1:8080"):]
    b.get("/")
    b.post("/remove", [("user", "alice@example.org")])
    assert env.req("GET", path).status == 404
    # a user the CLI removes after her link was made gets no XML either
    env.users.add("bob@example.org", "builder12")
    b.get("/")
    b.post("/provision", [("user", "bob@example.org")])
    t = b.text()
    i = t.find('id="link">') + len('id="link">')
    path = t[i:t.find("<", i)][len("http://192.168.1.1:8080"):]
    cli = Users(env.be)
    cli.load()
    cli.remove("bob@example.org")
    assert env.req("GET", path).status == 404
    for junk in ("/p/", "/p/../../etc/passwd", "/p/" + "a" * 32, "/p/" + "z" * 32):
        assert env.req("GET", junk).status == 404
    assert env.req("POST", "/p/" + "a" * 32).status == 405


def test_lan_only_and_session_expiry():
    env = Env()
    assert env.req("GET", "/login", source="203.0.113.9").status == 403
    assert env.req("GET", "/p/" + "a" * 32, source="8.8.8.8").status == 403
    for ok in ("127.0.0.1", "10.1.2.3", "172.16.0.1", "172.31.9.9", "192.168.0.1", "169.254.1.1", "::1",
               "fe80::1", "fd00::5", "::ffff:192.168.1.2"):
        assert is_lan(ok), ok
    for bad in ("172.32.0.1", "11.0.0.1", "2001:db8::1", "::ffff:8.8.8.8", "junk", "1.2.3"):
        assert not is_lan(bad), bad
    b = _login(env)
    assert b.get("/").status == 200
    env.now += 1800001
    assert b.get("/").header("Location") == "/login"
    assert env.req("GET", "/nope", cookies=b.cookies).status in (303, 404)
    assert env.req("DELETE", "/").status == 405
