"""Federation glue: park-and-resume routing over the resolver, failover bookkeeping, inbound rules."""
from microwitch.dns import message as dm
from microwitch.dns.resolver import Resolver
from microwitch.sip.uri import parse_uri
from microwitch.node import federation as fed
from microwitch.node.federation import Federation
from _dns_fake import Zone, serve
from _lcg import Lcg

DNS = ("10.9.0.1", 53)
ZONE = {
    "b.test": {dm.NAPTR: [(10, 10, "s", "SIP+D2U", "", "_sip._udp.b.test")]},
    "_sip._udp.b.test": {dm.SRV: [(10, 0, 5060, "n1.b.test"), (20, 0, 5060, "n2.b.test")]},
    "n1.b.test": {dm.A: ["10.0.2.1"]},
    "n2.b.test": {dm.A: ["10.0.2.2"]},
    "plain.test": {dm.A: ["10.0.3.1"]},
}


def _fed(cfg=None, lines=None):
    log = lines.append if lines is not None else (lambda t: None)
    r = Resolver([DNS], Lcg(1), log=log)
    return Federation(cfg or {}, r, Lcg(3), log)


def _route(f, zone, uri, now):
    res = f.route(parse_uri(uri), now)
    if res[0] != "wait":
        return res, None
    key = res[1]
    done = serve(f, zone, res[2], now)
    assert [k for k, _ in done] == [key]
    return done[0][1], key


def test_route_waits_then_completes_with_ordered_targets():
    f = _fed()
    z = Zone(ZONE, ttl=10)
    res, key = _route(f, z, "sip:bob@b.test", 0)
    assert key is not None
    assert res == ("targets", [("udp", "10.0.2.1", 5060), ("udp", "10.0.2.2", 5060)])
    assert z.queries == [("b.test", dm.NAPTR), ("_sip._udp.b.test", dm.SRV), ("n1.b.test", dm.A),
                         ("n2.b.test", dm.A)]


def test_cache_answers_within_ttl_and_asks_again_after():
    f = _fed()
    z = Zone(ZONE, ttl=10)
    _route(f, z, "sip:bob@b.test", 0)
    n = len(z.queries)
    res = f.route(parse_uri("sip:carol@b.test"), 9999)
    assert res[0] == "targets" and len(z.queries) == n  # no query within the TTL
    res = f.route(parse_uri("sip:bob@b.test"), 10000)
    assert res[0] == "wait" and len(res[2]) == 1
    assert dm.decode(res[2][0][1]).questions[0][:2] == ("b.test", dm.NAPTR)


def test_two_requests_share_one_lookup():
    f = _fed()
    a = f.route(parse_uri("sip:bob@b.test"), 0)
    b = f.route(parse_uri("sip:carol@b.test"), 1)
    assert a[0] == b[0] == "wait" and a[1] == b[1] and len(a[2]) == 1 and b[2] == []


def test_dead_target_goes_last_for_a_while():
    lines = []
    f = _fed({"dns_dead_s": 30}, lines)
    z = Zone(ZONE, ttl=300)
    _route(f, z, "sip:bob@b.test", 0)
    f.dead(("udp", "10.0.2.1", 5060), 1000)
    assert "marked dead" in lines[-1]
    assert f.route(parse_uri("sip:bob@b.test"), 2000) == \
        ("targets", [("udp", "10.0.2.2", 5060), ("udp", "10.0.2.1", 5060)])
    assert f.is_dead(("udp", "10.0.2.1", 5060), 30999)
    assert f.route(parse_uri("sip:bob@b.test"), 31000)[1][0] == ("udp", "10.0.2.1", 5060)
    assert not f.is_dead(("udp", "10.0.2.1", 5060), 31000)


def test_dead_table_is_bounded():
    f = _fed()
    for k in range(fed.MAX_DEAD + 5):
        f.dead(("udp", "10.1.%d.%d" % (k // 200, k % 200), 5060), k)
    assert len(f._dead) == fed.MAX_DEAD
    assert not f.is_dead(("udp", "10.1.0.0", 5060), 100)  # the oldest went first
    assert f.is_dead(("udp", "10.1.0.%d" % (fed.MAX_DEAD + 4), 5060), 100)


def test_nxdomain_gives_404_with_reason():
    lines = []
    f = _fed(lines=lines)
    res, key = _route(f, Zone(ZONE), "sip:bob@nowhere.test", 0)
    assert res[0] == "fail" and res[1] == 404 and "nowhere.test" in res[2] and "NXDOMAIN" in res[2]
    assert any("NXDOMAIN" in l for l in lines)
    # negative caching: asked again at once, no query
    assert f.route(parse_uri("sip:bob@nowhere.test"), 5)[0] == "fail"


def test_timeout_completes_parked_request_with_failure():
    f = _fed()
    res = f.route(parse_uri("sip:bob@b.test"), 0)
    key = res[1]
    assert f.next_timer() == 500
    now, out = 0, []
    for _ in range(10):
        now = f.next_timer()
        if now is None:
            break
        done, acts = f.tick(now)
        out.extend(done)
    assert len(out) == 1 and out[0][0] == key
    st, code, reason = out[0][1]
    assert st == "fail" and code == 504 and "timeout" in reason


def test_numeric_and_a_only_domains():
    f = _fed()
    assert f.route(parse_uri("sip:bob@10.7.7.7:5070"), 0) == ("targets", [("udp", "10.7.7.7", 5070)])
    res, _ = _route(f, Zone(ZONE), "sip:bob@plain.test", 0)
    assert res == ("targets", [("udp", "10.0.3.1", 5060)])


def test_bad_reply_keeps_the_request_parked():
    lines = []
    f = _fed(lines=lines)
    res = f.route(parse_uri("sip:bob@b.test"), 0)
    wire = res[2][0][1]
    bad = wire[:2] + b"\x81\x80" + wire[4:12] + b"\xc0\x0c\x00\x23\x00\x01"
    done, acts = f.on_dns(bad, DNS, 1)
    assert done == [] and acts == [] and "loop" in lines[-1]
    z = Zone(ZONE)
    done = serve(f, z, [("dns_udp", wire, DNS)], 2)
    assert done and done[0][1][0] == "targets"


def test_too_many_lookups_in_progress():
    f = _fed()
    for k in range(fed.MAX_WAITING):
        assert f.route(parse_uri("sip:bob@d%d.test" % k), 0)[0] == "wait"
    res = f.route(parse_uri("sip:bob@one-more.test"), 0)
    assert res[0] == "fail" and res[1] == 503


def test_inbound_rules():
    f = _fed({"federation_rate": 2, "federation_burst": 3})
    src = ("udp", "10.0.1.1", 5060)
    assert f.inbound(src, True, False, False, 0) is None     # local caller: the proxy's auth applies
    assert f.inbound(src, False, False, True, 0) is None     # in-dialog
    st, reason, hdrs = f.inbound(src, False, False, False, 0)
    assert st == 403 and "only local users" in reason        # never relayed to a third domain
    for _ in range(3):
        assert f.inbound(src, False, True, False, 0) is None
    st, reason, hdrs = f.inbound(src, False, True, False, 0)
    assert st == 503 and "rate limit" in reason and ("Retry-After", "5") in hdrs
    assert f.inbound(("udp", "10.0.1.2", 5060), False, True, False, 0) is None  # other sources unaffected
    assert f.inbound(src, False, True, False, 499) is not None
    assert f.inbound(src, False, True, False, 500) is None     # 2/s refills one token in 500 ms


def test_inbound_source_table_is_bounded():
    f = _fed({"federation_rate": 1, "federation_burst": 2})
    for k in range(fed.MAX_SOURCES):
        assert f.inbound(("udp", "10.2.%d.%d" % (k // 250, k % 250), 5060), False, True, False, 0) is None
    st, reason, _ = f.inbound(("udp", "10.3.0.1", 5060), False, True, False, 0)
    assert st == 503 and "too many" in reason
    # once the old sources have been idle long enough to refill, they make room
    assert f.inbound(("udp", "10.3.0.1", 5060), False, True, False, 1000) is None
    assert len(f._buckets) <= fed.MAX_SOURCES


def test_no_resolver_fails_at_once():
    f = Federation({}, Resolver([], Lcg(1)), Lcg(3), lambda t: None)
    st, code, reason = f.route(parse_uri("sip:bob@b.test"), 0)
    assert st == "fail" and code == 504 and "no DNS resolver configured" in reason
    assert f.route(parse_uri("sip:bob@10.0.0.1"), 0)[0] == "targets"  # numeric hosts still work
