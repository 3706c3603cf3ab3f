"""The web page's microdot glue under wasm MicroPython 1.27: the real microdot (the pinned pip package's
microdot.py, copied next to a probe; nothing of it is committed) parses raw HTTP requests from in-memory streams,
hands them to WebApp through web/server.py, and writes the answers. No sockets (the wasm port has none):
a stream object stands in for the connection, so this checks the code a device runs between its socket and
the page logic."""
import mpprobe

PROBE = r'''
import asyncio
from microwitch.store.memory import MemoryBackend
from microwitch.store.users import Users
from microwitch.web.admin import AdminStore
from microwitch.web.app import WebApp
from microwitch.web.server import make_microdot, limit_requests
from microwitch.compat import sha256
from _http_stream import http

_c = [0]


def _rand(n):
    out = b""
    while len(out) < n:
        _c[0] += 1
        out += sha256(str(_c[0]).encode()).digest()
    return out[:n]


async def test_microdot_glue():
    limit_requests()
    be = MemoryBackend()
    users = Users(be)
    users.load()
    admin = AdminStore(be, _rand, iterations=10).load()
    cfg = {"domain": "example.org", "realm": "example.org", "listen": ["udp:192.168.1.1:5060"]}
    app = WebApp(cfg, users, admin, _rand, base_url="http://192.168.1.1:8080")
    md = make_microdot(app)
    st, hdrs, body = await http(md, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert st == 303 and "Location: /setup" in hdrs, (st, hdrs)
    st, hdrs, body = await http(md, b"GET /setup HTTP/1.1\r\nHost: x\r\n\r\n")
    assert st == 200 and b"Set up this node" in body
    pre = [h for h in hdrs if h.startswith("Set-Cookie: mw_pre=")][0].split("=", 1)[1].split(";")[0]
    i = body.find(b'name="csrf" value="') + 19
    csrf = body[i:i + 32]
    form = b"password=a+long+admin+pw&password2=a+long+admin+pw&domain=example.org&csrf=" + csrf
    raw = (b"POST /setup HTTP/1.1\r\nHost: x\r\nCookie: mw_pre=" + pre.encode() +
           b"\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: " + str(len(form)).encode() +
           b"\r\n\r\n" + form)
    st, hdrs, body = await http(md, raw)
    assert st == 303 and "Location: /dns" in hdrs, (st, hdrs, body)
    cookies = [h for h in hdrs if h.startswith("Set-Cookie: ")]
    assert len(cookies) == 2 and "HttpOnly" in cookies[0] and "SameSite=Strict" in cookies[0]
    assert admin.is_set()
    st, hdrs, body = await http(md, b"GET /login HTTP/1.1\r\nHost: x\r\n\r\n", ("203.0.113.5", 1))
    assert st == 403  # not the LAN
    big = b"x" * 9000
    st, hdrs, body = await http(md, b"POST /login HTTP/1.1\r\nContent-Length: 9000\r\n\r\n" + big)
    assert st == 413
    # the unix port (OpenWrt) hands out raw struct sockaddr bytes: AF_INET 2, port 40000, 192.168.1.20
    raw_lan = bytes([2, 0, 0x9c, 0x40, 192, 168, 1, 20, 0, 0, 0, 0, 0, 0, 0, 0])
    st, hdrs, body = await http(md, b"GET /login HTTP/1.1\r\nHost: x\r\n\r\n", raw_lan)
    assert st == 200, st
    raw_wan = bytes([2, 0, 0x9c, 0x40, 8, 8, 8, 8, 0, 0, 0, 0, 0, 0, 0, 0])
    st, hdrs, body = await http(md, b"GET /login HTTP/1.1\r\nHost: x\r\n\r\n", raw_wan)
    assert st == 403, st
    print("MICRODOT-MP OK")
'''


def test_microdot_glue_under_wasm_micropython(tmp_path):
    p = mpprobe.run(tmp_path, "microdot", PROBE, microdot=True)
    assert p.returncode == 0 and "MICRODOT-MP OK" in p.stdout, p.stdout[-4000:] + p.stderr[-2000:]
