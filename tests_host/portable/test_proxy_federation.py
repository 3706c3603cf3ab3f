"""The proxy's use of the DNS federation (RFC 3263) through the node core, sans-I/O: a request parks while the
lookup runs and resumes on the answer, fails over to the next SRV target when an INVITE gets no answer for
4 s or a 503, and skips the dead one afterwards, NXDOMAIN is a 404 with the reason, CANCEL while parked ends
with 487, and requests from other domains are rate-limited and never relayed to a third domain."""
from microwitch import config
from microwitch.dns import message as dm
from microwitch.log import Logger
from microwitch.node.core import Node
from microwitch.sip.message import parse
from microwitch.sip.digest import ha1_hex, response_hex
from microwitch.store.memory import MemoryBackend
from microwitch.store.users import Users
from microwitch.store.bindings import Bindings, Binding
from _dns_fake import Zone
from _lcg import Lcg

ME = ("udp", "10.0.1.1", 5060)
ALICE = ("udp", "10.0.1.9", 5070)
DNS = ("10.0.1.53", 53)
B1 = ("udp", "10.0.2.1", 5060)
B2 = ("udp", "10.0.2.2", 5060)
WALL = 100000
ZONE = {
    "b.test": {dm.NAPTR: [(10, 10, "s", "SIP+D2U", "", "_sip._udp.b.test")]},
    "_sip._udp.b.test": {dm.SRV: [(10, 0, 5060, "b1.b.test"), (20, 0, 5060, "b2.b.test")]},
    "b1.b.test": {dm.A: ["10.0.2.1"]},
    "b2.b.test": {dm.A: ["10.0.2.2"]},
}


def _node(extra=""):
    cfg = config.load('{"domain": "a.test", "listen": ["udp:10.0.1.1:5060"], "dns_servers": ["10.0.1.53"]%s}'
                      % extra)
    be = MemoryBackend()
    users = Users(be)
    users.load()
    users.add("alice@a.test", "wonderland")
    users.add("dave@a.test", "pw")
    bindings = Bindings(be)
    bindings.update("sip:dave@a.test", [Binding("sip:dave@10.0.1.20:5060", WALL + 3600, 3600, "r", 1,
                                                ("udp", "10.0.1.20", 5060))], WALL)
    lines = []
    node = Node(cfg, users, bindings, Lcg(), Logger("debug", lines.append), b"s" * 32, ["10.0.1.1"])
    node.set_listen([ME])
    node.lines = lines
    return node


def _invite(to="sip:bob@b.test", frm="sip:alice@a.test", branch="inv1", extra=""):
    return ("INVITE %s SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.1.9:5070;branch=z9hG4bK%s;rport\r\nMax-Forwards: 70\r\n"
            "From: <%s>;tag=c1\r\nTo: <%s>\r\nCall-ID: call-%s\r\nCSeq: 1 INVITE\r\n"
            "Contact: <sip:alice@10.0.1.9:5070>\r\n%sContent-Length: 0\r\n\r\n"
            % (to, branch, frm, to, branch, extra)).encode()


def _authed(node, to="sip:bob@b.test", branch="inv1", now=0):
    """An INVITE from alice with valid proxy credentials; returns the node's actions for it."""
    resp = parse([a for a in node.receive(_invite(to, branch=branch + "x"), ALICE, now, WALL)
                  if a[0] == "send"][0][1])
    assert resp.status == 407
    chal = [v for v in resp.get_all("Proxy-Authenticate") if "MD5" in v][0]
    nonce = chal.split('nonce="')[1].split('"')[0]
    r = response_hex("MD5", ha1_hex("MD5", "alice", "a.test", "wonderland"), nonce, "00000001", "cn", "auth",
                     "INVITE", to)
    creds = ('Proxy-Authorization: Digest username="alice", realm="a.test", nonce="%s", uri="%s", '
             'response="%s", algorithm=MD5, qop=auth, nc=00000001, cnonce="cn"\r\n' % (nonce, to, r))
    return node.receive(_invite(to, branch=branch, extra=creds), ALICE, now, WALL)


def _serve(node, zone, acts, now):
    """Answer the node's DNS actions from `zone`; returns every other action produced on the way."""
    out = []
    for _ in range(20):
        dns = [a for a in acts if a[0] == "dns_udp"]
        out.extend([a for a in acts if a[0] != "dns_udp"])
        if not dns:
            return out
        acts = []
        for a in dns:
            acts.extend(node.on_dns(zone.answer(a[1]), a[2], now, WALL))
    raise AssertionError("DNS did not settle")


def _sends(acts, addr=None):
    return [parse(a[1]) for a in acts if a[0] == "send" and (addr is None or a[2] == addr)]


def _answer(req, status, reason):
    lines = ["SIP/2.0 %d %s" % (status, reason)]
    for v in req.get_all("Via"):
        lines.append("Via: " + v)
    for rr in req.get_all("Record-Route"):
        lines.append("Record-Route: " + rr)
    for h in ("From", "Call-ID", "CSeq"):
        lines.append("%s: %s" % (h, req.get(h)))
    lines.append("To: " + req.get("To") + ";tag=b1")
    lines.append("Contact: <sip:bob@10.0.2.50:5060>")
    lines.append("Content-Length: 0")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def test_parked_invite_resumes_to_the_first_srv_target():
    node = _node()
    acts = _authed(node)
    assert [m.status for m in _sends(acts, ALICE)] == [100]       # Trying at once while DNS runs
    assert [a[0] for a in acts if a[0] != "send"] == ["dns_udp"] and acts[-1][2] == DNS
    zone = Zone(ZONE)
    out = _serve(node, zone, [a for a in acts if a[0] == "dns_udp"], 5)
    fwd = _sends(out, B1)
    assert len(fwd) == 1 and fwd[0].uri == "sip:bob@b.test" and fwd[0].get("Record-Route") is not None
    assert _sends(out, ALICE) == []                                # no second 100
    acts = node.receive(_answer(fwd[0], 200, "OK"), B1, 10, WALL)
    assert [m.status for m in _sends(acts, ALICE)] == [200]
    n = len(zone.queries)
    acts = _authed(node, branch="inv2", now=20)                   # cached: straight out
    assert len(_sends(acts, B1)) == 1 and len(zone.queries) == n


def _run_timers(node, now, until, stop=None):
    """Fire the node's timers up to `until` ms; every action, or those up to the first for which stop() holds."""
    out = []
    for _ in range(500):
        t = node.next_timer()
        if t is None or t > until:
            break
        now = max(now, t)
        acts = node.tick(now, WALL)
        out.extend(acts)
        if stop is not None and stop(acts):
            break
    return now, out


def test_a_silent_target_fails_over_in_4_s_and_is_skipped_next_time():
    node = _node()
    out = _serve(node, Zone(ZONE, ttl=300), _authed(node), 0)
    assert len(_sends(out, B1)) == 1
    now, acts = _run_timers(node, 0, 40000, lambda a: _sends(a, B2))
    got = _sends(acts, B2)
    assert got and got[0].method == "INVITE"
    assert 4000 <= now < 4500                                     # not one Timer B (32 s) later
    assert len(_sends(acts, B1)) == 3                             # Timer A's retransmissions at 0.5, 1.5, 3.5 s
    assert any("marked dead" in l for l in node.lines) and any("trying udp:10.0.2.2:5060" in l for l in node.lines)
    b2 = got[0]
    _, later = _run_timers(node, now, now + 3000)
    assert _sends(later, B1) == [] and len(_sends(later, B2)) >= 2  # b1 is left alone, b2 is retransmitted to
    rr = b2.get("Record-Route")
    acts = node.receive(_answer(b2, 200, "OK"), B2, now + 3001, WALL)
    ok = _sends(acts, ALICE)
    assert [m.status for m in ok] == [200] and ok[0].get("Record-Route") == rr
    acts = _authed(node, branch="inv2", now=now + 3100)
    assert len(_sends(acts, B2)) == 1 and _sends(acts, B1) == []  # b1 is dead: b2 first now


def test_a_target_that_answers_100_is_not_failed_over_and_the_last_target_waits_timer_b():
    node = _node()
    out = _serve(node, Zone(ZONE, ttl=300), _authed(node), 0)
    fwd = _sends(out, B1)[0]
    node.receive(_answer(fwd, 100, "Trying"), B1, 300, WALL)
    _, acts = _run_timers(node, 300, 60000)
    assert _sends(acts, B2) == []                                  # alive: it said Trying, so no failover
    node = _node()
    out = _serve(node, Zone(ZONE, ttl=300), _authed(node), 0)
    now, acts = _run_timers(node, 0, 40000, lambda a: _sends(a, B2))
    assert 4000 <= now < 4500

    def finals(acts):  # the call's final answers (not the retransmitted 407 of the unauthenticated try)
        return [m for m in _sends(acts, ALICE) if m.status >= 200 and "branch=z9hG4bKinv1;" in m.get("Via")]
    now, acts = _run_timers(node, now, 4000 + 40000, finals)
    assert [m.status for m in finals(acts)] == [408] and now >= 4000 + 32000  # the last target: Timer B, then 408


def test_503_fails_over_at_once():
    node = _node()
    out = _serve(node, Zone(ZONE), _authed(node), 0)
    fwd = _sends(out, B1)[0]
    acts = node.receive(_answer(fwd, 503, "Service Unavailable"), B1, 5, WALL)
    assert len(_sends(acts, B2)) == 1 and _sends(acts, ALICE) == []


def test_all_targets_fail_gives_the_caller_a_final_answer():
    node = _node()
    out = _serve(node, Zone(ZONE), _authed(node), 0)
    acts = node.receive(_answer(_sends(out, B1)[0], 503, "Service Unavailable"), B1, 5, WALL)
    acts = node.receive(_answer(_sends(acts, B2)[0], 503, "Service Unavailable"), B2, 6, WALL)
    finals = [m for m in _sends(acts, ALICE) if m.status >= 200]
    assert len(finals) == 1 and finals[0].status == 500  # §16.7: a 503 is not passed upstream as such


def test_nxdomain_is_404_with_reason():
    node = _node()
    out = _serve(node, Zone(ZONE), _authed(node, to="sip:bob@nowhere.test"), 0)
    final = [m for m in _sends(out, ALICE) if m.status >= 200][0]
    assert final.status == 404 and "nowhere.test" in final.reason and "NXDOMAIN" in final.reason


def test_sips_fails_cleanly():
    node = _node()
    final = [m for m in _sends(_authed(node, to="sips:bob@b.test"), ALICE) if m.status >= 200][0]
    assert final.status == 416 and "TLS" in final.reason


def test_cancel_while_parked():
    node = _node()
    acts = _authed(node)
    cancel = ("CANCEL sip:bob@b.test SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.1.9:5070;branch=z9hG4bKinv1;rport\r\n"
              "Max-Forwards: 70\r\nFrom: <sip:alice@a.test>;tag=c1\r\nTo: <sip:bob@b.test>\r\n"
              "Call-ID: call-inv1\r\nCSeq: 1 CANCEL\r\nContent-Length: 0\r\n\r\n").encode()
    got = _sends(node.receive(cancel, ALICE, 1, WALL), ALICE)
    assert sorted(m.status for m in got) == [200, 487]
    out = _serve(node, Zone(ZONE), acts, 2)                       # the late DNS answer sends nothing
    assert _sends(out, B1) == []


def test_inbound_from_another_domain_is_rate_limited_and_never_relayed():
    node = _node(', "federation_rate": 1, "federation_burst": 2')
    peer = ("udp", "10.0.2.1", 5060)
    codes = []
    for k in range(3):
        acts = node.receive(_invite(to="sip:dave@a.test", frm="sip:bob@b.test", branch="in%d" % k), peer, 0,
                            WALL)
        codes.append(sorted(m.status for m in _sends(acts, peer)))
    assert codes[0] == [100] and codes[1] == [100] and codes[2] == [503]
    acts = node.receive(_invite(to="sip:carol@c.test", frm="sip:bob@b.test", branch="relay"), peer, 5000, WALL)
    assert [m.status for m in _sends(acts, peer)] == [403] and [a for a in acts if a[0] == "dns_udp"] == []


def test_config_checks_dns_servers():
    for bad in ('"dns.example"', '"10.0.0.1:x"'):
        try:
            config.load('{"dns_servers": [%s]}' % bad, "node.json")
            err = None
        except config.ConfigError as e:
            err = str(e)
        assert err is not None and "node.json: field 'dns_servers[0]'" in err
    assert config.load('{"dns_servers": ["10.0.0.1:5353", "[fd00::53]:53"]}')["dns_servers"] == \
        ["10.0.0.1:5353", "[fd00::53]:53"]
