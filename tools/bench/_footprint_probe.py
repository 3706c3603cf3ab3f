"""Heap measurements inside wasm MicroPython 1.27 (run by tools/bench/footprint.py through tools/mptest.py --mpy).

Prints `FOOTPRINT key=value` lines. Every number is a gc.mem_alloc() difference after gc.collect(), so it counts
what the objects cost on a 32-bit MicroPython heap (wasm32, like an ESP32), not what the interpreter has.
The journals go to a backend that keeps nothing in RAM (on a device they are on flash).
Test functions run in name order: boot first, while nothing of microwitch is imported yet.
"""
import gc

from _fp_config import CONFIG, N_BINDINGS, N_CALLS, SCENARIO_USERS, SCENARIO_CALLS
from silent_net import Net

_BASE = [0]
_WALL = 1000000


async def _heap():
    """Live heap bytes. The wasm port only collects at top level (no C-stack roots), so gc.collect() merely
    asks for a collection: yielding to JS through asyncio lets it run before we read the count."""
    import asyncio
    for _ in range(2):
        gc.collect()
        await asyncio.sleep_ms(1)
    return gc.mem_alloc()


def _say(key, value):
    print("FOOTPRINT %s=%s" % (key, value))


class _FlashBackend:
    """A backend whose files live elsewhere (flash): appends are counted, nothing stays in RAM."""

    def __init__(self, users=None):
        self.written = 0
        self.users = users  # journal bytes to serve for users.journal (read once at load)

    def open_read(self, name):
        if name == "users.journal" and self.users is not None:
            import io
            return io.BytesIO(self.users)
        return None

    def append(self, name, data):
        self.written += len(data)

    def replace(self, name, chunks):
        for c in chunks:
            self.written += len(c)

    def stamp(self, name):
        return None


class _Rand:
    def __init__(self):
        self.c = 0

    def __call__(self, n):
        from microwitch.compat import sha256
        out = b""
        while len(out) < n:
            self.c += 1
            out += sha256(b"r%d" % self.c).digest()
        return out[:n]


def _user_journal(n):
    """users.journal bytes for n users, written through the real Users store into a RAM backend."""
    from microwitch.store.memory import MemoryBackend
    from microwitch.store.users import Users
    be = MemoryBackend()
    users = Users(be)
    users.load()
    for i in range(n):
        users.set_ha1("u%d@lan" % i, "lan", "%032x" % i, "%064x" % i)  # HA1 values: what a device stores
    f = be.open_read("users.journal")
    data = f.read(10 ** 7)
    f.close()
    return data


def _node(n_users, overrides=None):
    """The node as device.start builds it (stores, core, poll loop on a fake network)."""
    import json
    from microwitch import config
    from microwitch.log import Logger
    from microwitch.node.core import Node
    from microwitch.adapter.poll_loop import PollLoop
    from microwitch.store.users import Users
    from microwitch.store.bindings import Bindings
    from microwitch.store.pbx_accounts import PbxAccounts
    d = json.loads(CONFIG)
    d.update(overrides or {})
    cfg = config.validate(d, "footprint")
    be = _FlashBackend(_user_journal(n_users) if n_users else None)
    users = Users(be, read_only=True)
    users.load()
    be.users = None  # on a device the journal stays on flash once read
    bindings = Bindings(be, max_aors=cfg["max_aors"], max_contacts_per_aor=cfg["max_contacts_per_aor"])
    bindings.load(_WALL)
    accounts = PbxAccounts(be, read_only=True)
    accounts.load()
    listen = config.listen_addrs(cfg)
    node = Node(cfg, users, bindings, _Rand(), Logger("error", print), b"s" * 32, [h for _, h, _ in listen],
                accounts)
    loop = PollLoop(node, listen, node.log, cfg["max_tcp_connections"], cfg["max_tcp_per_source"],
                    cfg["tcp_idle_s"], Net(), lambda: 0, lambda: _WALL)
    node.set_listen(loop.bound)
    return node, loop


def _src(i):
    return ("udp", "10.%d.%d.%d" % (i >> 16 & 255, i >> 8 & 255, i & 255), 5060)


def _register(node, i, now):
    """A digest REGISTER (SHA-256) for user u<i> from its own address: 401, then 200."""
    from microwitch.sip.digest import response_hex
    src = _src(i)
    head = ("REGISTER sip:lan SIP/2.0\r\nVia: SIP/2.0/UDP %s:5060;branch=z9hG4bKr%da;rport\r\n"
            "From: <sip:u%d@lan>;tag=f%d\r\nTo: <sip:u%d@lan>\r\nCall-ID: reg%d@%s\r\nCSeq: 1 REGISTER\r\n"
            "Contact: <sip:u%d@%s:5060>\r\nExpires: 3600\r\nMax-Forwards: 70\r\n"
            % (src[1], i, i, i, i, i, src[1], i, src[1]))
    out = node.receive((head + "Content-Length: 0\r\n\r\n").encode(), src, now, _WALL)
    chal = out[0][1].decode()
    nonce = chal.split('algorithm=SHA-256')[0].split('nonce="')[-1].split('"')[0]
    ha1 = "%064x" % i
    r = response_hex("SHA-256", ha1, nonce, "00000001", "c%d" % i, "auth", "REGISTER", "sip:lan")
    auth = ('Authorization: Digest username="u%d", realm="lan", nonce="%s", uri="sip:lan", response="%s", '
            'algorithm=SHA-256, qop=auth, nc=00000001, cnonce="c%d"\r\n' % (i, nonce, r, i))
    head2 = head.replace("r%da;" % i, "r%db;" % i).replace("CSeq: 1 ", "CSeq: 2 ")
    out = node.receive((head2 + auth + "Content-Length: 0\r\n\r\n").encode(), src, now + 1, _WALL)
    if not out[0][1].startswith(b"SIP/2.0 200"):
        raise RuntimeError("REGISTER u%d: %s" % (i, out[0][1][:60]))


def _settle(node, now):
    """Let every finished transaction and nonce expire (Timer J, nonce TTL) so only state that lasts stays."""
    later = now + 400000
    node.tick(later, _WALL)
    node.tick(later + 1, _WALL)
    return later + 2


def _ring(node, k, callee, now):
    """An INVITE from a foreign caller (its own address, so no per-source limit applies) to u<callee>,
    answered 180 by the phone: one live call."""
    from microwitch.sip.message import parse
    ip = "198.51.%d.%d" % (100 + (k >> 8), k & 255)
    sdp = ("v=0\r\no=- 1 1 IN IP4 %s\r\ns=-\r\nc=IN IP4 %s\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
           % (ip, ip)).encode()
    inv = ("INVITE sip:u%d@lan SIP/2.0\r\nVia: SIP/2.0/UDP %s:5070;branch=z9hG4bKcall%d;rport\r\n"
           "Max-Forwards: 70\r\nFrom: <sip:carol%d@remote.example>;tag=c%d\r\nTo: <sip:u%d@lan>\r\n"
           "Call-ID: call%d@remote.example\r\nCSeq: 1 INVITE\r\nContact: <sip:carol%d@%s:5070>\r\n"
           "Content-Type: application/sdp\r\nContent-Length: %d\r\n\r\n"
           % (callee, ip, k, k, k, callee, k, k, ip, len(sdp)))
    out = node.receive(inv.encode() + sdp, ("udp", ip, 5070), now, _WALL)
    fwd = [a for a in out if a[2] == _src(callee)]
    if not fwd:
        raise RuntimeError("INVITE %d not forwarded: %r" % (k, [a[1][:40] for a in out]))
    req = parse(fwd[0][1])
    lines = ["SIP/2.0 180 Ringing"] + ["Via: " + v for v in req.get_all("Via")]
    lines += ["Record-Route: " + v for v in req.get_all("Record-Route")]
    lines += ["From: " + req.get("From"), "To: " + req.get("To") + ";tag=p%d" % k, "Call-ID: " + req.get("Call-ID"),
              "CSeq: " + req.get("CSeq"), "Contact: <%s>" % req.uri, "Content-Length: 0"]
    node.receive(("\r\n".join(lines) + "\r\n\r\n").encode(), _src(callee), now + 1, _WALL)


async def test_1_boot_heap():
    _BASE[0] = await _heap()
    # the code first (what freezing the modules into an ESP32 firmware keeps in flash), then the node's state
    from microwitch import config  # noqa: F401
    from microwitch.log import Logger  # noqa: F401
    from microwitch.node.core import Node  # noqa: F401
    from microwitch.adapter.poll_loop import PollLoop  # noqa: F401
    from microwitch.adapter import device  # noqa: F401
    from microwitch.store.users import Users  # noqa: F401
    from microwitch.store.bindings import Bindings  # noqa: F401
    from microwitch.store.pbx_accounts import PbxAccounts  # noqa: F401
    code = (await _heap()) - _BASE[0]
    node, loop = _node(0)
    total = (await _heap()) - _BASE[0]
    _say("boot_heap", total)
    _say("boot_code_heap", code)
    _say("boot_state_heap", total - code)
    import sys
    _say("boot_modules", len([m for m in sys.modules if m.startswith("microwitch")]))
    # where boot heap goes: the same node without its loaded code would be this much smaller
    big = []
    for name in ("auth", ):
        obj = getattr(node.registrar, name, None)
        if obj is not None and hasattr(obj, "_ring_k"):
            big.append("digest_nonce_rings=%d" % (8 * len(obj._ring_k)))
    _say("boot_notes", ",".join(big) or "-")
    del node, loop


async def test_3_bytes_per_binding():
    node, loop = _node(N_BINDINGS, {"max_aors": N_BINDINGS})
    now = _settle(node, 1000)
    before = await _heap()
    for i in range(N_BINDINGS):
        _register(node, i, now + 10 * i)
    now = _settle(node, now + 10 * N_BINDINGS)
    after = await _heap()
    if len(node.registrar.bindings) != N_BINDINGS:
        raise RuntimeError("expected %d bindings, have %d" % (N_BINDINGS, len(node.registrar.bindings)))
    _say("bytes_per_binding", (after - before) // N_BINDINGS)
    # where a binding's bytes go: drop each table in turn and see what comes back
    parts = []
    reg = node.registrar
    h = after
    for name, drop in (("nonce_table", lambda: setattr(reg.auth, "_nc", {})),
                       ("journal_sizes", lambda: setattr(reg.bindings.journal, "_sizes", {})),
                       ("aors_and_bindings", lambda: setattr(reg.bindings, "_aors", {}))):
        drop()
        h2 = await _heap()
        parts.append("%s=%d" % (name, (h - h2) // N_BINDINGS))
        h = h2
    parts.append("other=%d" % ((h - before) // N_BINDINGS))
    _say("binding_parts", ",".join(parts))
    from microwitch.store.bindings import Binding
    src = [("udp", "10.9.%d.%d" % (i >> 8, i & 255), 5060) for i in range(200)]
    uris = ["sip:u%d@%s:5060" % (i, src[i][1]) for i in range(200)]
    cids = ["reg%d@%s" % (i, src[i][1]) for i in range(200)]
    h0 = await _heap()
    objs = [Binding(uris[i], 5000, 3600, cids[i], 2, src[i]) for i in range(200)]
    h1 = await _heap()
    _say("binding_object", (h1 - h0) // 200)  # the object alone: its attribute table plus the "<uri>" it builds
    del objs


async def test_4_bytes_per_call():
    node, loop = _node(N_CALLS, {"max_aors": max(N_CALLS, 50), "max_transactions": 4096})
    now = 1000
    for i in range(N_CALLS):
        _register(node, i, now + 10 * i)
    now = _settle(node, now + 10 * N_CALLS)
    before = await _heap()
    for k in range(N_CALLS):
        _ring(node, k, k, now + 10 * k)
    after = await _heap()
    _say("bytes_per_call", (after - before) // N_CALLS)
    from microwitch.sip.message import parse
    inv = ("INVITE sip:u1@lan SIP/2.0\r\nVia: SIP/2.0/UDP 198.51.100.9:5070;branch=z9hG4bKx;rport\r\n"
           "Max-Forwards: 70\r\nFrom: <sip:carol@remote.example>;tag=c1\r\nTo: <sip:u1@lan>\r\n"
           "Call-ID: call1@remote.example\r\nCSeq: 1 INVITE\r\nContact: <sip:carol@198.51.100.9:5070>\r\n"
           "Content-Length: 0\r\n\r\n").encode()
    h0 = await _heap()
    msgs = [parse(inv) for _ in range(100)]
    h1 = await _heap()
    _say("parsed_message", "%d heap bytes for a %d-byte INVITE" % ((h1 - h0) // 100, len(inv)))
    del msgs
    _say("live_transactions", "%d/%d" % (node.txl.server_count(), node.txl.client_count()))


async def test_2_scenario():
    # warm-up: whatever code the first REGISTER and INVITE import lazily counts as code, not as state
    warm, _ = _node(1)
    _register(warm, 0, 1000)
    _ring(warm, 0, 0, 2000)
    del warm, _
    h0 = await _heap()
    node, loop = _node(SCENARIO_USERS)
    h1 = await _heap()
    now = 1000
    for i in range(SCENARIO_USERS):
        _register(node, i, now + 10 * i)
    hpeak = await _heap()  # the REGISTER transactions still linger (Timer J, 32 s on UDP)
    now = _settle(node, now + 10 * SCENARIO_USERS)
    h2 = await _heap()
    _say("lingering_register_txn", (hpeak - h2) // (2 * SCENARIO_USERS))
    for k in range(SCENARIO_CALLS):
        _ring(node, k, k, now + 10 * k)
    h3 = await _heap()
    _say("scenario_heap", h3 - _BASE[0])
    _say("scenario_state", h3 - h0)  # without the code: what a firmware with the modules frozen needs
    _say("scenario_parts", "code=%d,node_with_users=%d,bindings=%d,calls=%d"
         % (h0 - _BASE[0], h1 - h0, h2 - h1, h3 - h2))
