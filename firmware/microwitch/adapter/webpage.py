"""The node's web page beside its poll loop: one module for devices and the host.

`Page(cfg, state, sip, save_domain)` opens the page's own handles on the state directory's journals (like the
CLI, so the two never disagree) and builds the WebApp. `serve()` runs microdot's asyncio server and the node's
poll loop in one asyncio loop on one thread, on a device (adapter/device.py) and on the host (tools/mwcli/run.py)
alike. The page only ever reads `Page.view`, a snapshot the loop's side replaces whole.
"""
import asyncio

from microwitch import config
from microwitch.compat import const, random_bytes, wall_s
from microwitch.store.files import FileBackend
from microwitch.store.users import Users
from microwitch.store.pbx_accounts import PbxAccounts
from microwitch.web.admin import AdminStore
from microwitch.web.app import WebApp
from microwitch.web.calls import CallTable
from microwitch.web.nodeview import snapshot
from microwitch.web.server import make_microdot, limit_requests

_STEP_MS = const(20)  # longest the poll loop blocks before the page's sockets get their turn
_VIEW_EVERY_S = const(1)  # how often the page's snapshot of the node is refreshed
_BIND_WAITS = const(200)  # 10 ms turns for the server task to bind (2 s)


def web_addr(cfg):
    """(host, port) of the config's `web` key ("HOST:PORT", IPv6 hosts in brackets)."""
    host, _, port = cfg["web"].rpartition(":")
    return host.strip("[]"), int(port)


class Page:
    """The WebApp for the node whose SIP UDP listener is `sip` (host, port), plus what the loop's side feeds it.

    `calls.observe_msg` is the node's observe hook (live calls); `refresh(node, errors)` publishes a new snapshot
    at most once a second. `save_domain(domain)` stores the first run's domain where the board keeps its
    config (None or an error text, see device.json_domain_saver; without one the page cannot change the
    domain); `reload` then turns true and `cfg` is the running config with the new domain, to rebuild from.
    """

    def __init__(self, cfg, state, sip, save_domain=None, rand=random_bytes):
        backend = FileBackend(state)
        users = Users(backend)
        users.load()
        accounts = PbxAccounts(backend)
        accounts.load()
        self.admin = AdminStore(backend, rand).load()
        self.host, self.port = web_addr(cfg)
        self.view = None
        self.reload = False
        self.calls = CallTable()
        self._save = save_domain
        self.shown = 0
        self.cfg = dict(cfg)
        host = self.host
        if host in ("0.0.0.0", "::"):  # listening everywhere: links must name an address phones can reach
            host = cfg.get("advertise") or cfg["domain"]
        host = "[" + host + "]" if ":" in host else host
        self.app = WebApp(self.cfg, users, self.admin, rand, status=self._view, accounts=accounts,
                          set_domain=self._set_domain if save_domain else None,
                          base_url="http://%s:%d" % (host, self.port), sip=sip)

    def _view(self):
        return self.view

    def _set_domain(self, domain):
        new = dict(self.cfg)
        new["domain"] = domain
        if self.cfg.get("realm") == self.cfg.get("domain"):
            new["realm"] = domain  # a realm that followed the domain keeps following it
        try:
            new = config.validate(new, "web page")
        except config.ConfigError as e:
            return str(e)
        err = self._save(domain)
        if err is None:
            self.cfg.update(new)
            self.reload = True
        return err

    def refresh(self, node, errors, now):
        """Publish a fresh snapshot of `node` if the last one is a second old (wall seconds `now`)."""
        if now - self.shown >= _VIEW_EVERY_S:
            self.shown = now
            self.view = snapshot(node, self.calls, errors, now)  # replaced whole: the page only reads it

    def microdot(self):
        limit_requests()
        return make_microdot(self.app)


async def _server(md, host, port, failed):
    try:
        await md.start_server(host, port)
    except Exception as e:  # kept for _run to raise (an unretrieved task error would only be printed)
        failed.append(e)


async def _run(page, loop, errors, on_step, rebuild, on_ready, step_ms):
    md = page.microdot()
    failed = []
    server = asyncio.create_task(_server(md, page.host, page.port, failed))
    try:
        for _ in range(_BIND_WAITS):  # asyncio binds inside the task: give it its first turns
            if md.server is not None or failed:
                break
            await asyncio.sleep(0.01)
        if failed or md.server is None:
            raise failed[0] if failed else OSError("web page: no server on %s:%d" % (page.host, page.port))
        if on_ready is not None:
            on_ready()
        while loop.running:
            if page.reload:  # the first run saved a new domain: the same process serves it from now on
                page.reload = False
                page.shown = 0
                loop = rebuild(loop, page.cfg)
            loop.step(step_ms)
            page.refresh(loop.core, errors, wall_s())
            if on_step is not None:
                on_step(loop)
            await asyncio.sleep(0)
            if server.done():
                raise failed[0] if failed else OSError("web page: server stopped")
    finally:
        if md.server is not None:
            md.server.close()
        server.cancel()
        loop.close()


def serve(page, loop, errors, on_step=None, rebuild=None, on_ready=None, step_ms=_STEP_MS):
    """Run the node's poll `loop` and the page's server as two tasks of one asyncio loop until `loop.running`
    turns false; closes the loop. Each loop step blocks at most `step_ms`, then the page gets a turn;
    `on_step(loop)` runs after each step, `on_ready()` once the page listens. When the page's first run saves a
    new domain, `rebuild(loop, cfg)` closes the old loop and returns a new one for `cfg`. OSError if the page's
    address cannot be bound (or its server stops)."""
    asyncio.run(_run(page, loop, errors, on_step, rebuild, on_ready, step_ms))
