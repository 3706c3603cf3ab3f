"""The web page's request handling, sans-I/O: `WebApp.handle(Request, now_ms, wall_s) -> Response`.

Routes (all HTML unless noted; every POST carries a CSRF token bound to the caller's cookie):
  GET/POST /setup     first run: admin password + domain, then the DNS records to publish
  GET/POST /login     admin password, per-source back-off on wrong passwords
  POST /logout
  GET /               people and their devices, add form, live calls, PBX bridge, last errors
  POST /add, /remove  change the user store (the same journal the CLI writes; the node sees it within 1 s)
  POST /provision     a one-time link and its QR code for one user
  GET /dns            the DNS records to publish for the domain
  GET /p/<token>      the lpconfig XML for Linphone, once per token (no login: the token is the secret)

A request from an address outside loopback, RFC 1918, link-local or IPv6 ULA ranges gets 403 unless the app was
made with `lan_only=False`. Every check runs before anything is stored, so a bad request changes nothing.
"""
from microwitch.compat import const
from microwitch.store import ValidationError, StoreFull
from microwitch.store.users import split_address
from microwitch.web import pages
from microwitch.web.forms import parse_form, parse_cookies, FormError, MAX_BODY
from microwitch.web.security import Security, cookie_header, SESSION_COOKIE, PRE_COOKIE
from microwitch.web.admin import password_error
from microwitch.web.provision import Tokens, lpconfig
from microwitch.web.qr import qr_svg
from microwitch.sip.uri import is_ip_literal

_MIN_SIP_PASSWORD = const(8)
_MAX_SIP_PASSWORD = const(128)
_GEN_PASSWORD = const(12)   # random bytes of a generated SIP password (16 base64-ish characters)
_MAX_PATH = const(256)
_PW_ALPHABET = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"

_HEADERS = [("Cache-Control", "no-store"), ("X-Content-Type-Options", "nosniff"),
            ("X-Frame-Options", "DENY"), ("Referrer-Policy", "no-referrer"),
            ("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
                                        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")]


class Request:
    """One HTTP request: method, path (with any query), headers with lower-case names, body bytes, source host."""

    def __init__(self, method, path, headers=None, body=b"", source="127.0.0.1"):
        self.method = method
        self.path = path.split("?", 1)[0]
        self.headers = headers or {}
        self.body = body or b""
        self.source = source
        self.cookies = parse_cookies(self.headers.get("cookie"))


class Response:
    def __init__(self, status, body=b"", ctype="text/html; charset=utf-8", headers=None):
        self.status = status
        self.body = body.encode() if isinstance(body, str) else body
        self.headers = [("Content-Type", ctype)] + list(_HEADERS) + (headers or [])

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def cookies(self):
        return [v for k, v in self.headers if k == "Set-Cookie"]


def _redirect(location, headers=None):
    return Response(303, b"", headers=[("Location", location)] + (headers or []))


def is_lan(host):
    """Loopback, RFC 1918, link-local (IPv4 and IPv6), IPv6 ULA or an IPv4-mapped one of those."""
    h = host.lower()
    if h.startswith("::ffff:") and "." in h:
        h = h[7:]
    if ":" in h:
        return h == "::1" or h[:2] in ("fc", "fd") or h[:3] in ("fe8", "fe9", "fea", "feb")
    parts = h.split(".")
    if len(parts) != 4:
        return False
    try:
        a, b = int(parts[0]), int(parts[1])
    except ValueError:
        return False
    return a == 127 or a == 10 or (a == 172 and 16 <= b <= 31) or (a == 192 and b == 168) or \
        (a == 169 and b == 254)


class WebApp:
    """WebApp(cfg, users, admin, rand, status=None, accounts=None, set_domain=None, base_url=..., sip=None).

    users/accounts: writable stores sharing the CLI's journals; admin: AdminStore; status(): the node's latest
    snapshot dict (web/nodeview.py) or None; set_domain(domain) -> None or an error text (writes the config);
    base_url: how phones reach this page (for the provisioning link); sip: (host, port) of the node's SIP UDP
    listener (default: the first udp entry of cfg['listen'])."""

    def __init__(self, cfg, users, admin, rand, status=None, accounts=None, set_domain=None,
                 base_url="http://127.0.0.1:8080", sip=None, lan_only=True, security=None, tokens=None):
        self.cfg = cfg
        self.users = users
        self.accounts = accounts
        self.admin = admin
        self.rand = rand
        self.status = status
        self.set_domain = set_domain
        self.base_url = base_url.rstrip("/")
        self.lan_only = lan_only
        self.sec = security or Security(rand)
        self.tokens = tokens or Tokens(rand)
        if sip is None:
            sip = self._sip_from_cfg()
        if cfg.get("advertise") or sip[0] in ("0.0.0.0", "::"):
            sip = (cfg.get("advertise") or cfg["domain"], sip[1])  # where phones reach us, as Via/RR say
        self.sip = sip

    def _sip_from_cfg(self):
        for spec in self.cfg.get("listen") or ():
            proto, rest = spec.split(":", 1)
            host, port = rest.rsplit(":", 1)
            if proto == "udp":
                return host.strip("[]"), int(port)
        return "127.0.0.1", 5060

    # -- entry point ---------------------------------------------------------------------------------------
    def handle(self, req, now, wall):
        if self.lan_only and not is_lan(req.source):
            return Response(403, pages.message("Forbidden", "This page answers only on the local network."))
        if len(req.path) > _MAX_PATH:
            return Response(414, pages.message("Not found", "That address is too long."))
        if req.path.startswith("/p/"):
            if req.method != "GET":
                return Response(405, b"", headers=[("Allow", "GET")])
            return self._provisioning_xml(req.path[3:], wall)
        m = req.method
        form = None
        if m == "POST":
            if len(req.body) > MAX_BODY:
                return Response(413, pages.message("Too large", "The form is larger than %d bytes; nothing was "
                                                   "changed." % MAX_BODY))
            try:
                form = parse_form(req.body)
            except FormError as e:
                return Response(400, pages.message("Bad request", "The form could not be read (%s); nothing was "
                                                   "changed." % e))
            if req.headers.get("sec-fetch-site") == "cross-site":
                return self._csrf_refused()
        elif m not in ("GET", "HEAD"):
            return Response(405, b"", headers=[("Allow", "GET, POST")])
        for users in (self.users, self.accounts):
            if users is not None:
                users.refresh()  # what the CLI changed meanwhile
        p = req.path
        if not self.admin.is_set():
            if p == "/setup":
                return self._setup(req, form, now)
            return _redirect("/setup")
        if p == "/setup":
            return _redirect("/login")
        if p == "/login":
            return self._login(req, form, now)
        sid = self.sec.session(req.cookies, now)
        if sid is None:
            if m == "POST":
                return Response(403, pages.message("Logged out", "Your session ended; log in again. Nothing was "
                                                   "changed.", back="/login"))
            return _redirect("/login")
        csrf = self.sec.csrf_for(sid)
        if m == "POST" and not self.sec.csrf_ok(sid, form.get("csrf")):
            return self._csrf_refused()
        if p == "/" and m != "POST":
            return self._dashboard(csrf, wall)
        if p == "/dns" and m != "POST":
            return self._dns(csrf)
        if m == "POST":
            if p == "/logout":
                self.sec.logout(sid)
                return _redirect("/login", [("Set-Cookie", cookie_header(SESSION_COOKIE, "", 0))])
            if p == "/add":
                return self._add(csrf, form, wall)
            if p == "/remove":
                return self._remove(csrf, form, wall)
            if p == "/provision":
                return self._provision(csrf, form, wall)
        return Response(404, pages.message("Not found", "There is no such page."))

    def _csrf_refused(self):
        return Response(403, pages.message("Refused", "This form did not come from this page or has expired. "
                                           "Reload the page and try again; nothing was changed."))

    # -- first run and login -------------------------------------------------------------------------------
    def _pre(self, req):
        """(pre-session cookie value, Set-Cookie headers): the cookie that CSRF tokens before login bind to."""
        v = self.sec.pre_value(req.cookies)
        if v is not None:
            return v, []
        v = self.sec.new_cookie_value()
        return v, [("Set-Cookie", cookie_header(PRE_COOKIE, v))]

    def _setup(self, req, form, now):
        pre, hdrs = self._pre(req)
        if form is None:
            return Response(200, pages.setup(self.sec.csrf_for(pre), self.cfg.get("domain", "")), headers=hdrs)
        if not self.sec.csrf_ok(pre, form.get("csrf")):
            return self._csrf_refused()
        errors = {}
        pw = form.get("password", "")
        domain = form.get("domain", "").strip().lower()
        err = password_error(pw)
        if err:
            errors["password"] = err
        elif form.get("password2", "") != pw:
            errors["password2"] = "the two passwords differ"
        derr = domain_error(domain)
        if derr:
            errors["domain"] = derr
        if errors:
            return Response(400, pages.setup(self.sec.csrf_for(pre), domain if "domain" not in errors else
                                             form.get("domain", "")[:253], errors), headers=hdrs)
        if domain != self.cfg.get("domain") and self.set_domain is not None:
            err = self.set_domain(domain)
            if err:
                return Response(400, pages.setup(self.sec.csrf_for(pre), domain, {"domain": err}), headers=hdrs)
        self.admin.set_password(pw)
        sid = self.sec.login(now)
        return _redirect("/dns", [("Set-Cookie", cookie_header(SESSION_COOKIE, sid)),
                                  ("Set-Cookie", cookie_header(PRE_COOKIE, "", 0))])

    def _login(self, req, form, now):
        pre, hdrs = self._pre(req)
        if form is None:
            if self.sec.session(req.cookies, now) is not None:
                return _redirect("/")
            return Response(200, pages.login(self.sec.csrf_for(pre)), headers=hdrs)
        if not self.sec.csrf_ok(pre, form.get("csrf")):
            return self._csrf_refused()
        wait = self.sec.wait_ms(req.source, now)
        if wait > 0:
            s = (wait + 999) // 1000
            return Response(429, pages.login(self.sec.csrf_for(pre), {
                "password": "too many wrong passwords from your address: wait %d s and try again" % s}),
                headers=hdrs + [("Retry-After", str(s))])
        if not self.admin.check(form.get("password", "")):
            wait = self.sec.failed(req.source, now)
            text = "wrong password"
            if wait > 0:
                text += "; the next try from your address is possible in %d s" % ((wait + 999) // 1000)
            return Response(401, pages.login(self.sec.csrf_for(pre), {"password": text}), headers=hdrs)
        self.sec.succeeded(req.source)
        sid = self.sec.login(now)
        return _redirect("/", [("Set-Cookie", cookie_header(SESSION_COOKIE, sid)),
                               ("Set-Cookie", cookie_header(PRE_COOKIE, "", 0))])

    # -- pages behind the login ----------------------------------------------------------------------------
    def _snapshot(self):
        return self.status() if self.status is not None else None

    def _dashboard(self, csrf, wall, values=None, errors=None, status=200, notice=""):
        body = pages.dashboard(csrf, self.cfg["domain"], self.users.addresses(), self.accounts, self._snapshot(),
                               values, errors, notice)
        return Response(status, body)

    def _dns(self, csrf):
        host, port = self.sip
        domain = self.cfg["domain"]
        if is_ip_literal(host):
            target, addr = "node." + domain, host
        else:
            target, addr = host, None
        if addr in ("0.0.0.0", "::"):
            addr = None
        # a LAN address in DNS is reachable only from the LAN: say what to publish instead
        private = addr is None or is_lan(addr)
        return Response(200, pages.dns(csrf, domain, target, addr, port, private))

    def _add(self, csrf, form, wall):
        name = form.get("name", "").strip()
        pw = form.get("password", "")
        errors = {}
        address = None
        if not name:
            errors["name"] = "enter a name"
        elif "@" in name:
            errors["name"] = "give only the part before @ (the domain is %s)" % self.cfg["domain"]
        else:
            try:
                user, _ = split_address(name + "@" + self.cfg["domain"])
                address = user + "@" + self.cfg["domain"]
            except ValidationError as e:
                errors["name"] = str(e).split(": ", 1)[-1]
        if address is not None and self.users.get(address) is not None:
            errors["name"] = "%s already exists" % address
        generated = None
        if pw:
            if len(pw) < _MIN_SIP_PASSWORD:
                errors["password"] = "use at least %d characters (or leave it empty)" % _MIN_SIP_PASSWORD
            elif len(pw) > _MAX_SIP_PASSWORD:
                errors["password"] = "use at most %d characters" % _MAX_SIP_PASSWORD
        elif not errors:
            generated = pw = self._gen_password()
        if errors:
            return self._dashboard(csrf, wall, {"name": name[:64]}, errors, 400)
        try:
            self.users.add(address, pw, realm=self.cfg.get("realm") or self.cfg["domain"])
        except ValidationError as e:
            fld = "password" if e.field == "password" else "name"
            return self._dashboard(csrf, wall, {"name": name[:64]}, {fld: str(e).split(": ", 1)[-1]}, 400)
        except StoreFull as e:
            return self._dashboard(csrf, wall, {"name": name[:64]}, {"form": str(e) + "; nothing was changed"}, 507)
        finally:
            self.users.journal.backend.sync()
        return Response(200, pages.added(csrf, address, generated))

    def _known(self, form):
        a = form.get("user", "")
        if not a or len(a) > 320 or self.users.get(a) is None:
            return None
        return a

    def _remove(self, csrf, form, wall):
        a = self._known(form)
        if a is None:
            return self._dashboard(csrf, wall, None, {"form": "no such person; nothing was changed"}, 400)
        self.users.remove(a)
        self.users.journal.backend.sync()
        if self.accounts is not None:
            self.accounts.remove(a)  # and her PBX identity, like `microwitch user remove`
            self.accounts.journal.backend.sync()
        self.tokens.revoke_user(a)
        return self._dashboard(csrf, wall, notice="Removed " + pages.esc(a) + ".")

    def _provision(self, csrf, form, wall):
        a = self._known(form)
        if a is None:
            return self._dashboard(csrf, wall, None, {"form": "no such person"}, 400)
        token = self.tokens.issue(a, wall)
        link = self.base_url + "/p/" + token
        return Response(200, pages.provision(csrf, a, link, qr_svg(link, 4), self.tokens.ttl_s // 60))

    def _provisioning_xml(self, token, wall):
        a = self.tokens.take(token, wall)
        if a is not None:
            self.users.refresh()  # a user the CLI removed meanwhile gets no XML
        rec = self.users.get(a) if a is not None else None
        if rec is None:
            return Response(404, b"", "text/plain")
        user, domain = a.rsplit("@", 1)
        host, port = self.sip
        # the phone answers the node's first challenge: hand it the HA1 of an algorithm the node offers
        algo = "MD5" if "MD5" in self.cfg.get("digest_algorithms", ("MD5",)) else "SHA-256"
        xml = lpconfig(user, domain, rec["realm"], rec["md5" if algo == "MD5" else "sha256"], host, port,
                       expires=self.cfg.get("default_expires", 3600), algorithm=algo)
        return Response(200, xml, "application/xml")

    def _gen_password(self):
        b = self.rand(_GEN_PASSWORD)
        n = len(_PW_ALPHABET)
        return "".join(_PW_ALPHABET[x % n] for x in b)


def domain_error(domain):
    """Why `domain` cannot be the node's domain, or None."""
    if not domain:
        return "enter the domain name"
    if len(domain) > 253:
        return "longer than 253 characters"
    try:
        split_address("x@" + domain)
    except ValidationError as e:
        return str(e).split(": ", 1)[-1]
    return None
