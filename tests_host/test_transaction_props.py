"""Property tests for the transaction layer (CPython only, hypothesis): random event sequences keep the
RFC 3261 §17 / RFC 6026 state graphs, the timer heap agrees with a brute-force minimum, every transaction
terminates exactly once, and retransmission schedules follow T1/T2 for any timer values."""
from hypothesis import given, settings, strategies as st

from microwitch.sip.message import parse, make_response
from microwitch.sip.transaction import TransactionLayer

# legal state changes per machine (from the RFC figures; Terminated reachable where a timer/transport ends it)
EDGES = {
    "InviteClientTransaction": {("Calling", "Proceeding"), ("Calling", "Completed"), ("Calling", "Accepted"),
                                ("Calling", "Terminated"), ("Proceeding", "Completed"),
                                ("Proceeding", "Accepted"), ("Completed", "Terminated"),
                                ("Accepted", "Terminated"), ("Proceeding", "Terminated")},
    "NonInviteClientTransaction": {("Trying", "Proceeding"), ("Trying", "Completed"), ("Trying", "Terminated"),
                                   ("Proceeding", "Completed"), ("Proceeding", "Terminated"),
                                   ("Completed", "Terminated")},
    "InviteServerTransaction": {("Proceeding", "Completed"), ("Proceeding", "Accepted"),
                                ("Completed", "Confirmed"), ("Completed", "Terminated"),
                                ("Confirmed", "Terminated"), ("Accepted", "Terminated"),
                                ("Proceeding", "Terminated")},
    "NonInviteServerTransaction": {("Trying", "Proceeding"), ("Trying", "Completed"),
                                   ("Proceeding", "Completed"), ("Completed", "Terminated"),
                                   ("Trying", "Terminated"), ("Proceeding", "Terminated")},
}

# timers running in each state (unreliable, reliable): RFC 3261 §17 figures 5-8, RFC 6026 Timers L and M
TIMERS = {
    ("InviteClientTransaction", "Calling"): ({"A", "B"}, {"B"}),
    ("InviteClientTransaction", "Proceeding"): (set(), set()),
    ("InviteClientTransaction", "Completed"): ({"D"}, set()),
    ("InviteClientTransaction", "Accepted"): ({"M"}, {"M"}),
    ("NonInviteClientTransaction", "Trying"): ({"E", "F"}, {"F"}),
    ("NonInviteClientTransaction", "Proceeding"): ({"E", "F"}, {"F"}),
    ("NonInviteClientTransaction", "Completed"): ({"K"}, set()),
    ("InviteServerTransaction", "Proceeding"): (set(), set()),
    ("InviteServerTransaction", "Completed"): ({"G", "H"}, {"H"}),
    ("InviteServerTransaction", "Confirmed"): ({"I"}, set()),
    ("InviteServerTransaction", "Accepted"): ({"L"}, {"L"}),
    ("NonInviteServerTransaction", "Trying"): (set(), set()),
    ("NonInviteServerTransaction", "Proceeding"): (set(), set()),
    ("NonInviteServerTransaction", "Completed"): ({"J"}, set()),
}

PEERS = {"udp": ("udp", "10.0.0.2", 5060), "tcp": ("tcp", "10.0.0.2", 40000)}


def request(method, n, proto, cookie=True):
    branch = ("z9hG4bK%d" if cookie else "old%d") % n
    text = ("%s sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/%s 10.0.0.2:5060;branch=%s\r\n"
            "From: <sip:alice@example.com>;tag=f%d\r\nTo: <sip:bob@example.com>\r\nCall-ID: c%d\r\n"
            "CSeq: %d %s\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
            % (method, proto.upper(), branch, n, n, n, method))
    return parse(text.encode())


def live(txns):
    """Prefer transactions still running (so random operations reach the later states)."""
    return [t for t in txns if t.state != "Terminated"] or txns


class Watcher:
    """Records every transaction's state changes and terminated events."""

    def __init__(self, layer):
        self.layer = layer
        self.txns = []
        self.last = {}
        self.terminated = {}

    def add(self, txn):
        if txn is not None and id(txn) not in self.last:
            self.txns.append(txn)
            self.last[id(txn)] = txn.state

    def after(self, events):
        for e in events:
            if e[0] == "terminated":
                self.terminated[id(e[1])] = self.terminated.get(id(e[1]), 0) + 1
            if e[0] in ("request", "response") and e[1] is not None:
                self.add(e[1])
        for t in self.txns:
            old = self.last[id(t)]
            if t.state != old:
                assert (old, t.state) in EDGES[type(t).__name__], (type(t).__name__, old, t.state)
                self.last[id(t)] = t.state
        for t in self.txns:
            if t.state == "Terminated":
                assert t.timers == {}
            else:
                assert set(t.timers) == TIMERS[(type(t).__name__, t.state)][t.reliable], (t, t.timers)
        # heap agrees with a brute-force minimum over live timers
        live = [d for tt in self.txns if tt.state != "Terminated" for (d, _s) in tt.timers.values()]
        assert self.layer.next_timer() == (min(live) if live else None)
        assert self.layer.timer_entries() <= 4 * (self.layer.server_count() + self.layer.client_count()) + 64


op = st.one_of(
    st.tuples(st.just("send"), st.sampled_from(["INVITE", "OPTIONS"]), st.integers(0, 3), st.sampled_from(["udp", "tcp"])),
    st.tuples(st.just("resp"), st.integers(0, 7), st.sampled_from([100, 180, 200, 202, 302, 486, 603])),
    st.tuples(st.just("recv"), st.sampled_from(["INVITE", "OPTIONS", "CANCEL"]), st.integers(0, 3),
              st.sampled_from(["udp", "tcp"]), st.booleans()),
    st.tuples(st.just("answer"), st.integers(0, 7), st.sampled_from([100, 180, 200, 404, 486])),
    st.tuples(st.just("ack"), st.integers(0, 7), st.booleans()),
    st.tuples(st.just("advance"), st.one_of(st.sampled_from([1, 500, 1000, 4000, 5000, 32000]),
                                            st.integers(0, 40000))),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(op, max_size=40), st.sampled_from([(500, 4000, 5000), (100, 400, 1000), (250, 8000, 2000)]),
       st.integers(1, 6))
def test_random_sequences_keep_the_rfc_state_graphs(ops, timers, cap):
    t1, t2, t4 = timers
    L = TransactionLayer(t1=t1, t2=t2, t4=t4, max_transactions=cap)
    w = Watcher(L)
    now = 0
    clients = {}
    servers = []
    for o in ops:
        kind = o[0]
        ev = []
        if kind == "send":
            _, method, n, proto = o
            r = request(method, n, proto)
            if ("c", "z9hG4bK%d" % n, method) in L._client:
                continue
            txn, act = L.send_request(r, PEERS[proto], now)
            if txn is None:
                assert act == [] and L.client_count() == cap
                continue
            assert len(act) == 1
            w.add(txn)
            clients[(n, method)] = (r, proto, txn)
        elif kind == "resp":
            _, i, code = o
            if not clients:
                continue
            keys = list(clients)
            alive = [k for k in keys if clients[k][2].state != "Terminated"]
            keys = alive or keys
            r, proto, _ = clients[keys[i % len(keys)]]
            ev, act = L.on_response(make_response(r, code, "R", to_tag="t"), PEERS[proto], now)
        elif kind == "recv":
            _, method, n, proto, cookie = o
            ev, act = L.on_request(request(method, n, proto, cookie), PEERS[proto], now)
            assert L.server_count() <= cap
            for e in ev:
                if e[0] == "request" and e[1] is not None:
                    servers.append(e[1])
                if e[0] == "overload":
                    assert L.server_count() == cap
        elif kind == "answer":
            _, i, code = o
            if not servers:
                continue
            pick = live(servers)
            s = pick[i % len(pick)]
            L.respond(s, make_response(s.request, code, "R", to_tag="s"), now)
            w.after([])
        elif kind == "ack":
            _, i, same_branch = o
            invites = live([s for s in servers if s.method == "INVITE"])
            answered = [s for s in invites if s.state in ("Completed", "Confirmed", "Accepted")]
            invites = answered or invites
            if not invites:
                continue
            s = invites[i % len(invites)]
            ack = make_response(s.request, 200, "R", to_tag="s")      # Via/From/To+tag/Call-ID/CSeq to copy
            a = request("ACK", 1, "udp")
            for name in ("Via", "From", "To", "Call-ID"):
                a.set(name, ack.get(name))
            a.set("CSeq", s.request.get("CSeq").split()[0] + " ACK")
            a.uri = s.request.uri
            if not same_branch:
                a.set("Via", a.get("Via").replace("branch=", "branch=z9hG4bKnew"))
            ev, act = L.on_request(a, s.source, now)
            for e in ev:
                if e[0] == "request":
                    assert e[1] is None                   # an ACK never creates a transaction
        else:
            now += o[1]
            ev, act = L.tick(now)
        w.after(ev)
    # answer everything still waiting for the TU, then let every timer run out
    for s in servers:
        L.respond(s, make_response(s.request, 500, "R", to_tag="s"), now)
    for k in clients:
        r, proto, _ = clients[k]
        ev, _ = L.on_response(make_response(r, 500, "R", to_tag="t"), PEERS[proto], now)
        w.after(ev)
    for _ in range(500):
        t = L.next_timer()
        if t is None:
            break
        now = max(now, t)
        ev, _ = L.tick(now)
        w.after(ev)
    ev, _ = L.tick(now)
    w.after(ev)
    assert L.server_count() == 0 and L.client_count() == 0 and L.next_timer() is None
    for t in w.txns:
        assert t.state == "Terminated" and w.terminated.get(id(t)) == 1, t


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 2000), st.integers(1, 20000), st.sampled_from(["OPTIONS", "INVITE"]),
       st.integers(0, 10 ** 9))
def test_retransmission_schedule_for_any_timer_values(t1, t2_extra, method, start):
    t2 = t1 + t2_extra
    L = TransactionLayer(t1=t1, t2=t2)
    txn, _ = L.send_request(request(method, 1, "udp"), PEERS["udp"], start)
    times = []
    for _ in range(1000):
        t = L.next_timer()
        if t is None:
            break
        ev, act = L.tick(t)
        times += [t - start] * len(act)
        if ev:
            assert ev == [("timeout", txn), ("terminated", txn)] and t - start == 64 * t1
    expect = []
    at, interval = 0, t1
    while at + interval < 64 * t1:
        at += interval
        expect.append(at)
        interval = interval * 2 if method == "INVITE" else min(interval * 2, t2)
    assert times == expect


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 50), st.sampled_from(["udp", "tcp"])), max_size=60))
def test_terminated_transactions_never_match_again(reqs):
    """A request arriving after its server transaction ended starts a fresh one; late responses go to the TU."""
    L = TransactionLayer()
    now = 0
    for n, proto in reqs:
        r = request("OPTIONS", n, proto)
        ev, act = L.on_request(r, PEERS[proto], now)
        for e in ev:
            if e[0] == "request":
                L.respond(e[1], make_response(r, 200, "OK", to_tag="x"), now)
        now += 33000
        L.tick(now)
        assert L.server_count() == 0


server_op = st.one_of(
    st.tuples(st.just("again")),
    st.tuples(st.just("answer"), st.sampled_from([100, 180, 200, 404, 486, 603])),
    st.tuples(st.just("ack"), st.booleans()),
    st.tuples(st.just("advance"), st.one_of(st.sampled_from([1, 500, 4000, 5000, 32000]), st.integers(0, 40000))),
)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["INVITE", "OPTIONS"]), st.sampled_from(["udp", "tcp"]), st.booleans(),
       st.lists(server_op, max_size=25))
def test_one_server_transaction_random_walk(method, proto, cookie, ops):
    """Retransmissions are answered with exactly the last response sent, ACKs never reach the TU while the
    transaction absorbs them, and the machine stays on its RFC graph."""
    L = TransactionLayer()
    w = Watcher(L)
    peer = PEERS[proto]
    r = request(method, 7, proto, cookie)
    ev, act = L.on_request(r, peer, 0)
    w.after(ev)
    s = ev[0][1]
    now = 0
    sent = []
    for o in ops:
        ev = []
        if o[0] == "again":
            ev, act = L.on_request(request(method, 7, proto, cookie), peer, now)
            if s.state == "Terminated":
                assert [e[0] for e in ev if e[0] != "terminated"] == ["request"]   # a new transaction
                assert ev[-1][1] is not s
                w.after(ev[:-1])
                break
            assert ev == [] and act == ([("send", sent[-1], peer)] if sent and s.state in
                                        ("Proceeding", "Completed") else [])
        elif o[0] == "answer":
            before = s.state
            resp = make_response(s.request, o[1], "R", to_tag="s")
            act = L.respond(s, resp, now)
            if act:
                assert act == [("send", resp.to_bytes(), peer)]
                sent.append(act[0][1])
            else:
                assert before in ("Completed", "Confirmed", "Terminated") or \
                    (before == "Accepted" and not 200 <= o[1] < 300)
        elif o[0] == "ack":
            if method != "INVITE":
                continue
            a = request("ACK", 7, proto, cookie)
            a.set("To", "<sip:bob@example.com>;tag=s")
            if not o[1]:
                a.set("Via", a.get("Via").replace("branch=", "branch=z9hG4bKnew"))
            before = s.state
            ev, act = L.on_request(a, peer, now)
            assert act == []
            to_tu = [e for e in ev if e[0] == "request"]
            if before == "Completed" and o[1]:
                assert to_tu == [] and s.state in ("Confirmed", "Terminated")
            elif (before == "Confirmed" or (before == "Proceeding" and cookie)) and o[1]:
                assert to_tu == []                                # absorbed (RFC 2543 ACKs need the final's tag)
            else:
                assert len(to_tu) == 1 and to_tu[0][1] is None
        else:
            now += o[1]
            before = s.state
            ev, act = L.tick(now)
            for a in act:                                         # only Timer G resends, only on UDP
                assert a == ("send", sent[-1], peer) and before == "Completed" and proto == "udp"
        w.after(ev)


client_op = st.one_of(
    st.tuples(st.just("resp"), st.sampled_from([100, 180, 200, 202, 302, 486, 603])),
    st.tuples(st.just("advance"), st.one_of(st.sampled_from([1, 500, 4000, 5000, 32000]), st.integers(0, 40000))),
)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["INVITE", "OPTIONS"]), st.sampled_from(["udp", "tcp"]), st.lists(client_op, max_size=25))
def test_one_client_transaction_random_walk(method, proto, ops):
    """The TU sees each provisional/final once (2xx to INVITE: every one), the layer only ever resends the
    request (before a response, UDP) or the one ACK for a non-2xx final, and nothing after termination."""
    L = TransactionLayer()
    w = Watcher(L)
    peer = PEERS[proto]
    r = request(method, 3, proto)
    c, act = L.send_request(r, peer, 0)
    w.add(c)
    data = act[0][1]
    acks = set()
    finals = 0
    now = 0
    for o in ops:
        before = c.state
        if o[0] == "resp":
            code = o[1]
            resp = make_response(r, code, "R", to_tag="t")
            ev, act = L.on_response(resp, peer, now)
            mine = [e for e in ev if e[0] == "response" and e[1] is c]
            if before == "Terminated":
                assert ev == [("response", None, resp)] and act == []
            elif before in ("Calling", "Trying", "Proceeding"):
                assert mine == [("response", c, resp)]
                if code >= 200:
                    finals += 1
            elif before == "Accepted":
                assert mine == ([("response", c, resp)] if 200 <= code < 300 else [])
            else:
                assert mine == []                                 # Completed absorbs
            for a in act:
                assert a[0] == "send" and a[2] == peer and method == "INVITE" and code >= 300
                assert parse(a[1]).method == "ACK"
                acks.add(a[1])
        else:
            now += o[1]
            ev, act = L.tick(now)
            for a in act:
                assert a == ("send", data, peer) and proto == "udp" and before in ("Calling", "Trying", "Proceeding")
                assert not (method == "INVITE" and before == "Proceeding")
        w.after(ev)
    assert len(acks) <= 1 and finals <= 1
