"""microdot glue: serve a WebApp over HTTP. The only module of the web page that does I/O.

adapter/webpage.py serves it beside the node's poll loop, in one asyncio loop, on devices and the host alike.
microdot is pip-installed at build time (requirements.txt) and compiled into board images; it is never part of
this source tree.
"""
from microdot import Microdot, Response as MdResponse

from microwitch.compat import const, ticks_ms, ticks_diff, wall_s, sockaddr
from microwitch.web.app import Request

MAX_REQUEST = const(8192)  # microdot refuses larger bodies with 413 before the app sees them
_REASONS = {200: "OK", 303: "See Other", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
            404: "Not Found", 405: "Method Not Allowed", 413: "Content Too Large", 414: "URI Too Long",
            429: "Too Many Requests", 507: "Insufficient Storage"}


class MonoClock:
    """A never-wrapping millisecond clock from the port's wrapping ticks (sessions and back-off need one)."""

    def __init__(self):
        self._last = ticks_ms()
        self._now = 0

    def __call__(self):
        t = ticks_ms()
        self._now += max(0, ticks_diff(t, self._last))
        self._last = t
        return self._now


async def _handle(request, path=""):
    """The one microdot route. Module level on purpose: microdot awaits a handler only when
    inspect.iscoroutinefunction() says so, and on MicroPython that is true for plain module-level `async def`
    functions only (not closures or bound methods); anything else it would try to run in an executor."""
    md = request.app
    headers = {}
    for k, v in request.headers.items():
        headers[k.lower()] = v
    try:
        host = sockaddr(request.client_addr)[0]  # a tuple, or raw sockaddr bytes on the unix port (OpenWrt)
    except (ValueError, TypeError, IndexError):
        host = ""  # unknown source: not the LAN, so the page refuses it
    req = Request(request.method, request.path, headers, request.body or b"", host)
    resp = md.webapp.handle(req, md.clock(), md.wall())
    out = {}
    for k, v in resp.headers:
        if k == "Set-Cookie":
            out.setdefault(k, []).append(v)
        else:
            out[k] = v
    return MdResponse(body=resp.body, status_code=resp.status, headers=out, reason=_REASONS.get(resp.status))


def make_microdot(webapp, clock=None, wall=None):
    """A microdot app serving `webapp` at every path; `clock` ms (monotonic), `wall` s."""
    md = Microdot()
    md.webapp = webapp
    md.clock = clock or MonoClock()
    md.wall = wall or wall_s
    md.route("/", methods=["GET", "POST", "HEAD"])(_handle)
    md.route("/<path:path>", methods=["GET", "POST", "HEAD"])(_handle)
    return md


def limit_requests():
    from microdot import Request as MdRequest
    MdRequest.max_content_length = MAX_REQUEST
    MdRequest.max_body_length = MAX_REQUEST


async def serve(webapp, host, port):
    """Serve until the task is cancelled (or the microdot app is shut down): what a device's main runs."""
    limit_requests()
    await make_microdot(webapp).start_server(host, port)
