"""A whole call without sockets (portable): two agent Endpoints register to the real node core and call each
other through it, everything in memory on a fake clock. Both end secure (ZRTP, mandatory) with the same SAS,
media flows only between the two endpoints, and the call ends with a BYE through the node."""
from microwitch import config
from microwitch.log import Logger
from microwitch.node.core import Node
from microwitch.store.memory import MemoryBackend
from microwitch.store.users import Users
from microwitch.store.bindings import Bindings
from microwitch.agent.endpoint import Endpoint
from _lcg import Lcg

NODE = ("udp", "127.0.0.1", 5060)


def _node():
    cfg = config.load('{"domain": "localhost", "listen": ["udp:127.0.0.1:5060"]}')
    be = MemoryBackend()
    users = Users(be)
    users.load()
    users.add("alice@localhost", "pw-alice")
    users.add("bob@localhost", "pw-bob")
    node = Node(cfg, users, Bindings(be), Lcg(1), Logger("info", lambda line: None), b"k" * 32, ["127.0.0.1"])
    node.set_listen([NODE])
    return node


def _ep(user, sip_port, media_port, seed, **kw):
    opts = {"user": "sip:%s@localhost" % user, "password": "pw-" + user, "proxy": NODE,
            "sip_local": ("127.0.0.1", sip_port), "media_local": ("127.0.0.1", media_port), "zrtp": "mandatory"}
    opts.update(kw)
    return Endpoint(opts, Lcg(seed), None, 0)


def _run(node, eps, starts, ms):
    """Start each endpoint at its time in `starts`, deliver every action in memory in 5 ms steps; returns
    reports per endpoint, exit codes and media/SIP counts."""
    by_sip = {}
    by_media = {}
    for name in eps:
        ep = eps[name]
        by_sip[ep.o["sip_local"]] = name
        by_media[ep.o["media_local"]] = name
    reports = dict((n, []) for n in eps)
    exits = {}
    stats = {"media_via_node": 0, "media": 0, "sip_to_node": 0}
    queue = []

    def take(name, acts):
        for a in acts:
            if a[0] == "report":
                reports[name].append(a[1])
            elif a[0] == "exit":
                exits[name] = a[1]
            else:
                queue.append((name, a))

    started = {}
    now = 0
    while now < ms and len(exits) < len(eps):
        now += 5
        for n in eps:
            if n not in started and now >= starts[n]:
                started[n] = True
                take(n, eps[n].start(now))
            if n in started:
                take(n, eps[n].tick(now))
        for a in node.tick(now, 1000):
            queue.append(("node", ("sip", a[1], a[2])))
        budget = 500
        while queue and budget > 0:
            budget -= 1
            src, a = queue.pop(0)
            kind, data, dest = a
            if kind == "media":
                stats["media"] += 1
                to = by_media.get((dest[0], dest[1]))
                if to is None:
                    stats["media_via_node"] += 1
                    continue
                take(to, eps[to].receive_media(data, eps[src].o["media_local"], now))
                continue
            if src == "node":
                to = by_sip.get((dest[1], dest[2]))
                if to is not None:
                    take(to, eps[to].receive_sip(data, NODE, now))
                continue
            if (dest[1], dest[2]) == (NODE[1], NODE[2]):
                stats["sip_to_node"] += 1
                sip = eps[src].o["sip_local"]
                for b in node.receive(data, ("udp", sip[0], sip[1]), now, 1000):
                    queue.append(("node", ("sip", b[1], b[2])))
    return reports, exits, stats


def _first(reports, event):
    for r in reports:
        if r["event"] == event:
            return r
    return None


def test_two_endpoints_call_through_the_node_core():
    node = _node()
    bob = _ep("bob", 5080, 40002, 3, answer=True)
    alice = _ep("alice", 5070, 40000, 2, call="sip:bob@localhost", duration_ms=600)
    # bob registers first, then alice registers and calls
    reports, exits, stats = _run(node, {"alice": alice, "bob": bob}, {"bob": 0, "alice": 200}, 8000)
    ra, rb = reports["alice"], reports["bob"]
    names = [r["event"] for r in ra]
    assert names[:3] == ["registered", "ringing", "answered"], ra
    sa, sb = _first(ra, "secure"), _first(rb, "secure")
    assert sa is not None and sb is not None, (ra, rb)
    assert sa["sas"] == sb["sas"] and sa["cache"] == "new"
    ea, eb = _first(ra, "ended"), _first(rb, "ended")
    assert ea["reason"] == "local hangup (duration reached)" and eb["reason"] == "remote hangup"
    assert ea["secure"] and eb["secure"] and ea["srtp_received"] > 5 and eb["srtp_received"] > 5
    assert ea["rtp_sent"] == ea["srtp_sent"] and eb["rtp_sent"] == eb["srtp_sent"]
    assert _first(rb, "incoming")["from"] == "sip:alice@localhost"
    assert exits == {"alice": 0, "bob": 0}
    assert stats["media"] > 20 and stats["media_via_node"] == 0 and stats["sip_to_node"] >= 8


class _FullDisk:
    """A ZID cache backend on a filesystem that fills up once the ZID is written."""

    def __init__(self):
        self.data = b""
        self.full = False

    def read(self):
        return self.data

    def append(self, b):
        if self.full:
            raise OSError(28, "No space left on device")
        self.data += b

    def replace(self, b):
        self.append(b"")
        self.data = b


def test_a_cache_that_cannot_be_saved_is_reported_and_the_call_stays_secure():
    from microwitch.zrtp.cache import ZidCache
    disk = _FullDisk()
    cache = ZidCache(disk, Lcg(9))
    cache.zid()
    disk.full = True
    node = _node()
    bob = Endpoint({"user": "sip:bob@localhost", "password": "pw-bob", "proxy": NODE,
                    "sip_local": ("127.0.0.1", 5080), "media_local": ("127.0.0.1", 40002), "zrtp": "mandatory",
                    "answer": True}, Lcg(3), cache, 0)
    alice = _ep("alice", 5070, 40000, 2, call="sip:bob@localhost", duration_ms=600)
    reports, exits, stats = _run(node, {"alice": alice, "bob": bob}, {"bob": 0, "alice": 200}, 8000)
    rb = reports["bob"]
    names = [r["event"] for r in rb]
    assert "secure" in names and "cache_error" in names and names.index("secure") < names.index("cache_error"), rb
    assert "No space left" in _first(rb, "cache_error")["reason"]
    assert _first(rb, "ended")["secure"] and exits == {"alice": 0, "bob": 0}
