"""Helpers for the DNS tests: a scripted DNS server answering resolver actions."""
from microwitch.dns import message as dm
from microwitch.dns.message import Message, Record


SOA = ("ns.test", "hostmaster.test", 1, 3600, 600, 86400, 30)


class Zone:
    """name -> type -> [data]; answers queries like an authoritative server for everything under `suffix`."""

    def __init__(self, records, ttl=10, suffix="test"):
        self.records = records
        self.ttl = ttl
        self.suffix = suffix
        self.queries = []

    def answer(self, wire):
        q = dm.decode(wire, False)
        name, qtype, _ = q.questions[0]
        self.queries.append((name, qtype))
        types = self.records.get(name)
        flags = 0x8580
        ans, auth = [], []
        if types is None:
            flags |= dm.NXDOMAIN
            auth.append(Record(self.suffix, dm.SOA, self.ttl, SOA))
        else:
            for d in types.get(qtype, ()):
                ans.append(Record(name, qtype, self.ttl, d))
            if not ans:
                auth.append(Record(self.suffix, dm.SOA, self.ttl, SOA))
        return dm.encode(Message(q.id, flags, q.questions, ans, auth))


def serve(target, zone, actions, now, limit=50):
    """Answer every dns_udp action with `zone` and feed the replies to target.on_dns (a Federation) or
    target.on_udp (a Resolver) until no query is left; returns all completions."""
    out = []
    feed = getattr(target, "on_dns", None) or target.on_udp
    for _ in range(limit):
        if not actions:
            return out
        nxt = []
        for a in actions:
            if a[0] != "dns_udp":
                raise ValueError("unexpected action %r" % (a[0],))
            done, acts = feed(zone.answer(a[1]), a[2], now)
            out.extend(done)
            nxt.extend(acts)
        actions = nxt
    raise ValueError("DNS exchange did not settle")
