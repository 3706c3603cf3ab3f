"""adapter/webpage.py's scheduling under wasm MicroPython 1.27 (the asyncio a device has): the node's loop and
the page's server as two tasks. wasm has no sockets, so the poll loop and microdot's server are stand-ins
here (unit test); the real pair runs on CPython in test_device_web.py and test_web_*.py."""
import mpprobe

PROBE = '''
import asyncio
from microwitch.adapter import webpage

CFG = {"domain": "lan", "realm": "lan", "web": "192.168.1.1:8080", "listen": ["udp:192.168.1.1:5060"]}


class Loop:
    def __init__(self, name, steps):
        self.name = name
        self.left = steps
        self.running = True
        self.core = name
        self.bound = [("udp", "192.168.1.1", 5060)]
        self.waits = []
        self.closed = 0

    def step(self, ms):
        self.waits.append(ms)
        self.left -= 1
        if self.left <= 0:
            self.running = False

    def close(self):
        self.closed += 1


class Server:
    closed = 0

    def close(self):
        Server.closed += 1


class Md:
    def __init__(self, fail):
        self.server = None
        self.fail = fail

    async def start_server(self, host, port):
        if self.fail:
            raise OSError(98)  # EADDRINUSE
        self.server = Server()
        while True:
            await asyncio.sleep(1)


def _page(state, fail=False, saved=None):
    saved = [] if saved is None else saved

    def save(domain):
        saved.append(domain)
    page = webpage.Page(CFG, state, ("192.168.1.1", 5060), save)
    page.microdot = lambda: Md(fail)
    seen = []
    page.refresh = lambda node, errors, now: seen.append(node)
    return page, seen


async def test_loop_steps_beside_the_server_and_rebuilds_on_a_new_domain():
    saved = []
    page, seen = _page("wp_state1", saved=saved)
    first = Loop("first", 1000)
    second = Loop("second", 3)
    rebuilt = []
    ready = []

    def rebuild(old, cfg):
        rebuilt.append((old.name, cfg["domain"], cfg["realm"]))
        old.close()
        return second

    def on_step(loop):
        if loop is first and len(first.waits) == 5:
            assert page.app.set_domain("home.example.org") is None  # what the first-run form calls
    await webpage._run(page, first, None, on_step, rebuild, lambda: ready.append(1), 20)
    assert ready == [1] and saved == ["home.example.org"]
    assert rebuilt == [("first", "home.example.org", "home.example.org")] and not page.reload
    assert first.waits == [20] * 5 and second.waits == [20] * 3  # never blocks the page longer than step_ms
    assert seen == ["first"] * 5 + ["second"] * 3
    assert first.closed == 1 and second.closed == 1 and Server.closed == 1


async def test_a_bad_domain_is_refused_before_anything_is_saved():
    saved = []
    page, _ = _page("wp_state2", saved=saved)
    err = page.app.set_domain("not a domain!")
    assert err and "domain" in err and saved == [] and not page.reload and page.cfg["domain"] == "lan"


async def test_a_server_that_cannot_bind_ends_the_loop_with_its_error():
    page, _ = _page("wp_state3", fail=True)
    loop = Loop("only", 1000)
    try:
        await webpage._run(page, loop, None, None, None, None, 20)
    except OSError as e:
        assert e.args[0] == 98
    else:
        raise AssertionError("no OSError")
    assert loop.waits == [] and loop.closed == 1
'''


def test_webpage_scheduling_under_wasm_micropython(tmp_path):
    p = mpprobe.run(tmp_path, "webpage", PROBE, microdot=True)
    assert p.returncode == 0 and "3 passed, 0 failed" in p.stdout, p.stdout[-4000:] + p.stderr[-2000:]
