"""A tiny HTTP client for the node's web page in tests: keeps cookies, finds CSRF tokens, posts forms.
Every request has a timeout; redirects are not followed (tests look at them)."""
import http.client
import re
import time
import urllib.parse


class WebClient:
    def __init__(self, host, port, timeout=10.0):
        self.host = host
        self.port = port
        self.timeout = timeout
        self.cookies = {}
        self.status = None
        self.headers = {}
        self.text = ""

    def request(self, method, path, body=None, headers=None):
        c = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        h = dict(headers or {})
        if self.cookies:
            h["Cookie"] = "; ".join("%s=%s" % kv for kv in self.cookies.items())
        if body is not None:
            h["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            data = r.read()
            self.status = r.status
            self.headers = {k.lower(): v for k, v in r.getheaders()}
            for k, v in r.getheaders():
                if k.lower() == "set-cookie":
                    name, _, value = v.split(";")[0].partition("=")
                    if value:
                        self.cookies[name] = value
                    else:
                        self.cookies.pop(name, None)
        finally:
            c.close()
        self.text = data.decode("utf-8", "replace")
        return self.status

    def get(self, path):
        return self.request("GET", path)

    def csrf(self):
        m = re.search(r'name="csrf" value="([0-9a-f]{32})"', self.text)
        return m.group(1) if m else None

    def post(self, path, fields, csrf=True):
        f = list(fields)
        if csrf:
            f.append(("csrf", self.csrf()))
        return self.request("POST", path, urllib.parse.urlencode(f).encode())

    def field_error(self, field):
        m = re.search(r'id="e_%s">([^<]*)<' % re.escape(field), self.text)
        return m.group(1) if m else None

    def setup_and_login(self, password, domain):
        """First run (or login when it already ran); ends logged in on the people page."""
        self.get("/setup")
        if self.status == 200:
            self.post("/setup", [("password", password), ("password2", password), ("domain", domain)])
            if self.status != 303:
                raise AssertionError("first run failed: %d %s" % (self.status, self.text[-500:]))
        else:
            self.get("/login")
            self.post("/login", [("password", password)])
            if self.status != 303:
                raise AssertionError("login failed: %d" % self.status)
        self.get("/")
        return self

    def provisioning_link(self, user):
        self.get("/")
        self.post("/provision", [("user", user)])
        m = re.search(r'id="link">([^<]+)<', self.text)
        if self.status != 200 or not m:
            raise AssertionError("no provisioning link: %d %s" % (self.status, self.text[-500:]))
        return m.group(1)


def wait_web(node, timeout=10.0):
    """The node prints `web http://HOST:PORT/` once the page is listening (after its SIP sockets)."""
    deadline = time.monotonic() + timeout
    while "web http://" not in node.output():
        if time.monotonic() > deadline or not node.alive():
            raise AssertionError("web page did not start:\n" + node.output()[-3000:])
        time.sleep(0.02)
