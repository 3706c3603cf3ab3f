"""RFC 3263 server location and RFC 2782 ordering against a cache filled by hand."""
from microwitch.dns import message as dm
from microwitch.dns.cache import Cache
from microwitch.dns.locate import locate, order_srv
from _lcg import Lcg


def _cache(entries, nx=(), nodata=(), failed=(), why="timeout"):
    c = Cache()
    for (name, t), vals in entries.items():
        c.put_records(name, t, vals, 60, 0)
    for name, t in nx:
        c.put_negative(name, t, True, 60, 0)
    for name, t in nodata:
        c.put_negative(name, t, False, 60, 0)
    for name, t in failed:
        c.put_failure(name, t, why, 0)
    return lambda name, t: c.get(name, t, 0)


FULL = {
    ("b.test", dm.NAPTR): [(20, 10, "s", "SIP+D2T", "", "_sip._tcp.b.test"),
                           (10, 10, "s", "SIP+D2U", "", "_sip._udp.b.test"),
                           (5, 10, "s", "SIPS+D2T", "", "_sips._tcp.b.test"),
                           (5, 10, "u", "E2U+SIP", "!^.*$!sip:x@y!", "")],
    ("_sip._udp.b.test", dm.SRV): [(20, 0, 5070, "n2.b.test"), (10, 0, 5060, "n1.b.test")],
    ("_sip._tcp.b.test", dm.SRV): [(10, 0, 5061, "n1.b.test")],
    ("n1.b.test", dm.A): ["10.0.0.1"],
    ("n2.b.test", dm.A): ["10.0.0.2"],
}


def test_naptr_srv_a_in_order():
    trace = []
    res = locate("sip:bob@b.test", _cache(FULL), Lcg(1), trace)
    assert res == ("targets", [("udp", "10.0.0.1", 5060), ("udp", "10.0.0.2", 5070), ("tcp", "10.0.0.1", 5061)])
    assert trace[0].startswith("NAPTR b.test 20 10")
    assert "SRV _sip._udp.b.test 20 0 5070 n2.b.test" in trace and "A n1.b.test 10.0.0.1" in trace


def test_missing_records_are_asked_for_step_by_step():
    entries = {}
    need = locate("sip:bob@b.test", _cache(entries), Lcg(1))
    assert need == ("need", [("b.test", dm.NAPTR)])
    entries[("b.test", dm.NAPTR)] = FULL[("b.test", dm.NAPTR)]
    assert locate("sip:bob@b.test", _cache(entries), Lcg(1)) == \
        ("need", [("_sip._udp.b.test", dm.SRV), ("_sip._tcp.b.test", dm.SRV)])
    entries[("_sip._udp.b.test", dm.SRV)] = FULL[("_sip._udp.b.test", dm.SRV)]
    entries[("_sip._tcp.b.test", dm.SRV)] = FULL[("_sip._tcp.b.test", dm.SRV)]
    assert locate("sip:bob@b.test", _cache(entries), Lcg(1)) == \
        ("need", [("n1.b.test", dm.A), ("n2.b.test", dm.A)])


def test_no_naptr_uses_srv_udp_then_tcp():
    look = _cache({("_sip._udp.b.test", dm.SRV): [(10, 0, 5060, "n1.b.test")],
                   ("_sip._tcp.b.test", dm.SRV): [(10, 0, 5060, "n1.b.test")],
                   ("n1.b.test", dm.A): ["10.0.0.1"]}, nodata=[("b.test", dm.NAPTR)])
    assert locate("sip:bob@b.test", look, Lcg(1)) == \
        ("targets", [("udp", "10.0.0.1", 5060), ("tcp", "10.0.0.1", 5060)])


def test_unusable_naptr_and_failed_naptr_fall_back_to_srv():
    for look in (_cache({("b.test", dm.NAPTR): [(10, 10, "s", "SIPS+D2T", "", "_sips._tcp.b.test")],
                         ("_sip._udp.b.test", dm.SRV): [(10, 0, 5060, "n1.b.test")],
                         ("n1.b.test", dm.A): ["10.0.0.1"]}, nodata=[("_sip._tcp.b.test", dm.SRV)]),
                 _cache({("_sip._udp.b.test", dm.SRV): [(10, 0, 5060, "n1.b.test")],
                         ("n1.b.test", dm.A): ["10.0.0.1"]}, failed=[("b.test", dm.NAPTR)],
                        nodata=[("_sip._tcp.b.test", dm.SRV)], why="SERVFAIL from 10.0.0.53")):
        assert locate("sip:bob@b.test", look, Lcg(1)) == ("targets", [("udp", "10.0.0.1", 5060)])


def test_no_srv_uses_a_on_5060_then_aaaa():
    look = _cache({("b.test", dm.A): ["10.0.0.9"]},
                  nodata=[("b.test", dm.NAPTR), ("_sip._udp.b.test", dm.SRV), ("_sip._tcp.b.test", dm.SRV)])
    assert locate("sip:bob@b.test", look, Lcg(1)) == ("targets", [("udp", "10.0.0.9", 5060)])
    look = _cache({("b.test", dm.AAAA): ["fd00::9"]},
                  nodata=[("b.test", dm.NAPTR), ("_sip._udp.b.test", dm.SRV), ("_sip._tcp.b.test", dm.SRV),
                          ("b.test", dm.A)])
    assert locate("sip:bob@b.test", look, Lcg(1)) == ("targets", [("udp", "fd00::9", 5060)])


def test_numeric_hosts_and_explicit_port_or_transport():
    nothing = _cache({})
    assert locate("sip:bob@10.1.2.3", nothing, Lcg(1)) == ("targets", [("udp", "10.1.2.3", 5060)])
    assert locate("sip:bob@10.1.2.3:5080;transport=tcp", nothing, Lcg(1)) == \
        ("targets", [("tcp", "10.1.2.3", 5080)])
    assert locate("sip:bob@[fd00::1]:5062", nothing, Lcg(1)) == ("targets", [("udp", "fd00::1", 5062)])
    assert locate("sip:bob@b.test:5070", nothing, Lcg(1)) == ("need", [("b.test", dm.A)])  # A only, no SRV
    look = _cache({("b.test", dm.A): ["10.0.0.1"]})
    assert locate("sip:bob@b.test:5070", look, Lcg(1)) == ("targets", [("udp", "10.0.0.1", 5070)])
    assert locate("sip:bob@b.test;transport=tcp", nothing, Lcg(1)) == ("need", [("_sip._tcp.b.test", dm.SRV)])
    assert locate("sip:bob@x.test;maddr=10.0.0.5", nothing, Lcg(1)) == ("targets", [("udp", "10.0.0.5", 5060)])


def test_sips_and_unsupported_transport_fail_cleanly():
    st, code, reason = locate("sips:bob@b.test", _cache({}), Lcg(1))
    assert st == "fail" and code == 416 and "TLS" in reason
    st, code, reason = locate("sip:bob@b.test;transport=sctp", _cache({}), Lcg(1))
    assert st == "fail" and code == 502 and "sctp" in reason


def test_nxdomain_and_nothing_and_lookup_failure():
    st, code, reason = locate("sip:bob@nx.test", _cache({}, nx=[("nx.test", dm.NAPTR)]), Lcg(1))
    assert (st, code) == ("fail", 404) and "nx.test" in reason and "NXDOMAIN" in reason
    look = _cache({}, nodata=[("b.test", dm.NAPTR), ("_sip._udp.b.test", dm.SRV), ("_sip._tcp.b.test", dm.SRV),
                              ("b.test", dm.A), ("b.test", dm.AAAA)])
    st, code, reason = locate("sip:bob@b.test", look, Lcg(1))
    assert (st, code) == ("fail", 404) and "no SIP server" in reason
    look = _cache({("_sip._udp.b.test", dm.SRV): [(10, 0, 5060, "n1.b.test")]},
                  nodata=[("b.test", dm.NAPTR), ("_sip._tcp.b.test", dm.SRV)], failed=[("n1.b.test", dm.A)])
    st, code, reason = locate("sip:bob@b.test", look, Lcg(1))
    assert (st, code) == ("fail", 504) and "n1.b.test" in reason


def test_srv_dot_target_means_no_service():
    look = _cache({("_sip._udp.b.test", dm.SRV): [(0, 0, 0, "")]},
                  nodata=[("b.test", dm.NAPTR), ("_sip._tcp.b.test", dm.SRV)])
    st, code, reason = locate("sip:bob@b.test", look, Lcg(1))
    assert st == "fail" and code == 404


def test_order_srv_priority_first_and_weights_respected():
    recs = [(20, 100, 1, "late"), (10, 10, 2, "light"), (10, 90, 3, "heavy"), (10, 0, 4, "zero")]
    rand = Lcg(7)
    firsts = {}
    for _ in range(300):
        out = order_srv(list(recs), rand)
        assert out[-1][3] == "late" and len(out) == 4
        firsts[out[0][3]] = firsts.get(out[0][3], 0) + 1
    assert firsts.get("heavy", 0) > 200 and firsts.get("light", 0) > 10
    assert firsts.get("zero", 0) < 15 and "late" not in firsts


def test_naptr_timeout_fails_fast():
    look = _cache({}, failed=[("b.test", dm.NAPTR)])
    st, code, reason = locate("sip:bob@b.test", look, Lcg(1))
    assert (st, code) == ("fail", 504) and "NAPTR b.test: timeout" in reason
