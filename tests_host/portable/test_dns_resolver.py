"""Stub resolver with a fake clock: IDs from the injected RNG, retransmission and timeout, server choice,
TCP fallback on TC, and refusal (with a log line) of replies that are not answers to our query."""
from microwitch.dns import message as dm
from microwitch.dns.message import Message, Record
from microwitch.dns.cache import POSITIVE, NEGATIVE, NODATA, FAILED
from microwitch.dns.resolver import Resolver, pick_servers, parse_resolv_conf, server_error, MAX_PENDING
from _dns_fake import Zone
from _lcg import Lcg

S1 = ("10.9.0.1", 53)
S2 = ("10.9.0.2", 53)


def _resolver(servers=(S1,), log=None, rand=None):
    return Resolver(list(servers), rand or Lcg(1), log=log)


def _reply_to(wire, answers=(), flags=0x8180, authority=()):
    q = dm.decode(wire, False)
    return dm.encode(Message(q.id, flags, q.questions, list(answers), list(authority)))


def test_server_choice_config_resolv_conf_dhcp():
    text = "# comment\nsearch lan\nnameserver 10.0.0.53\nnameserver fe80::1%eth0\noptions ndots:1\n"
    assert parse_resolv_conf(text) == [("10.0.0.53", 53), ("fe80::1", 53)]
    assert pick_servers(["127.0.0.1:5353", "[::1]:53", "9.9.9.9"], text, ["1.1.1.1"]) == \
        [("127.0.0.1", 5353), ("::1", 53), ("9.9.9.9", 53)]
    assert pick_servers([], text, ["1.1.1.1"]) == [("10.0.0.53", 53), ("fe80::1", 53)]
    assert pick_servers(None, "search lan\n", ["192.168.1.1"]) == [("192.168.1.1", 53)]
    assert pick_servers(None, None, None) == []
    for ok in ("10.0.0.1", "10.0.0.1:5353", "[fd00::1]:53", "fd00::1"):
        assert server_error(ok) is None
    for bad in ("dns.example", "10.0.0.1:x", "10.0.0.1:0", "[fd00::1]:99999", ""):
        assert server_error(bad) is not None


def test_answer_goes_to_cache_and_query_id_comes_from_rand():
    r = _resolver()
    acts = r.query("B.test", dm.A, 0)
    assert len(acts) == 1 and acts[0][0] == "dns_udp" and acts[0][2] == S1
    q = dm.decode(acts[0][1])
    expect = Lcg(1)(2)
    assert q.id == (expect[0] << 8) | expect[1]
    assert q.questions == [("b.test", dm.A, dm.IN)]
    assert r.query("b.test", dm.A, 1) == []   # one query in flight per (name, type)
    done, more = r.on_udp(_reply_to(acts[0][1], [Record("b.test", dm.A, 30, "10.0.0.7")]), S1, 5)
    assert done == [("b.test", dm.A)] and more == []
    assert r.lookup("b.test", dm.A, 5) == (POSITIVE, ["10.0.0.7"])
    assert r.lookup("b.test", dm.A, 30004) == (POSITIVE, ["10.0.0.7"])
    assert r.lookup("b.test", dm.A, 30005) is None
    assert r.next_timer() is None


def test_cname_chain_inside_answer():
    r = _resolver()
    acts = r.query("sip.b.test", dm.A, 0)
    ans = [Record("sip.b.test", dm.CNAME, 60, "host.b.test"), Record("host.b.test", dm.A, 20, "10.0.0.8"),
           Record("other.b.test", dm.A, 60, "6.6.6.6")]
    r.on_udp(_reply_to(acts[0][1], ans), S1, 0)
    assert r.lookup("sip.b.test", dm.A, 0) == (POSITIVE, ["10.0.0.8"])
    assert r.lookup("other.b.test", dm.A, 0) is None  # records for names we did not ask about are not cached


def test_nxdomain_and_nodata_are_cached_negatively():
    z = Zone({"b.test": {dm.A: ["10.0.0.1"]}}, ttl=10)
    r = _resolver()
    acts = r.query("nx.test", dm.NAPTR, 0)
    r.on_udp(z.answer(acts[0][1]), S1, 0)
    assert r.lookup("nx.test", dm.NAPTR, 9999) == (NEGATIVE, None)
    assert r.lookup("nx.test", dm.NAPTR, 10000) is None  # min(SOA TTL 10, MINIMUM 30) = 10 s
    acts = r.query("b.test", dm.NAPTR, 0)
    r.on_udp(z.answer(acts[0][1]), S1, 0)
    assert r.lookup("b.test", dm.NAPTR, 0) == (NODATA, None)


def test_retransmit_rotates_servers_then_times_out():
    lines = []
    r = _resolver((S1, S2), lines.append)
    acts = r.query("b.test", dm.SRV, 0)
    assert acts[0][2] == S1 and r.next_timer() == 500
    assert r.tick(499) == ([], [])
    done, acts = r.tick(500)
    assert done == [] and acts[0][2] == S2 and r.next_timer() == 1500
    done, acts = r.tick(1500)
    assert acts[0][2] == S1 and r.next_timer() == 3500
    done, acts = r.tick(3500)
    assert acts[0][2] == S2 and r.next_timer() == 5500
    assert r.sent == 4
    done, acts = r.tick(5500)
    assert done == [("b.test", dm.SRV)] and acts == []
    kind, reason = r.lookup("b.test", dm.SRV, 5500)
    assert kind == FAILED and "timeout" in reason
    assert any("no answer" in l for l in lines)
    assert r.next_timer() is None


def test_late_answer_to_an_earlier_attempt_is_accepted_from_the_same_server():
    r = _resolver()
    first = r.query("b.test", dm.A, 0)
    r.tick(500)  # retransmitted, same ID
    done, _ = r.on_udp(_reply_to(first[0][1], [Record("b.test", dm.A, 30, "10.0.0.1")]), S1, 600)
    assert done == [("b.test", dm.A)]


def test_bad_replies_are_rejected_with_a_log_line_and_the_query_keeps_waiting():
    lines = []
    r = _resolver(log=lines.append)
    acts = r.query("b.test", dm.A, 0)
    wire = acts[0][1]
    good = _reply_to(wire, [Record("b.test", dm.A, 30, "10.0.0.1")])
    wrong_id = bytes([good[0] ^ 0x55, good[1]]) + good[2:]
    assert r.on_udp(wrong_id, S1, 1) == ([], [])
    assert "matches no query" in lines[-1] and "10.9.0.1:53" in lines[-1]
    assert r.on_udp(good, ("10.6.6.6", 53), 1) == ([], [])   # from a server we did not ask
    assert "did not ask" in lines[-1]
    other = dm.encode(Message(dm.decode(good).id, 0x8180, [("c.test", dm.A, dm.IN)]))
    assert r.on_udp(other, S1, 1) == ([], [])
    assert "question" in lines[-1]
    loop = good[:12] + b"\xc0\x0c" + good[-4:]
    assert r.on_udp(loop, S1, 1) == ([], [])
    assert "loop" in lines[-1]
    assert r.on_udp(good + b"\x00" * 600, S1, 1) == ([], [])
    assert "oversized" in lines[-1]
    assert r.rejected == 5
    done, _ = r.on_udp(good, S1, 2)
    assert done == [("b.test", dm.A)]


def test_truncated_reply_falls_back_to_tcp():
    lines = []
    r = _resolver(log=lines.append)
    acts = r.query("b.test", dm.SRV, 0)
    tc = _reply_to(acts[0][1], flags=0x8380)
    done, acts2 = r.on_udp(tc, S1, 3)
    assert done == [] and acts2[0][0] == "dns_tcp" and acts2[0][2] == S1
    assert "truncated" in lines[-1]
    framed = acts2[0][1]
    assert (framed[0] << 8) | framed[1] == len(framed) - 2
    recs = [Record("b.test", dm.SRV, 60, (10, 1, 5060, "n%d.b.test" % k)) for k in range(30)]
    reply = dm.tcp_frame(_reply_to(framed[2:], recs))
    assert len(reply) > 512
    # a late UDP copy is refused now that the query went to TCP
    assert r.on_udp(tc, S1, 4) == ([], [])
    # the stream arrives in odd pieces
    done, _ = r.on_tcp(reply[:1], S1, 5)
    assert done == []
    done, _ = r.on_tcp(reply[1:100], S1, 5)
    assert done == []
    done, _ = r.on_tcp(reply[100:], S1, 6)
    assert done == [("b.test", dm.SRV)] and len(r.lookup("b.test", dm.SRV, 6)[1]) == 30


def test_truncated_name_is_what_we_asked():
    r = _resolver()
    acts = r.query("_sip._udp.b.test", dm.SRV, 0)
    done, acts2 = r.on_udp(_reply_to(acts[0][1], flags=0x8380), S1, 0)
    recs = [Record("_sip._udp.b.test", dm.SRV, 60, (10, 1, 5060, "n%d.b.test" % k)) for k in range(30)]
    r.on_tcp(dm.tcp_frame(_reply_to(acts2[0][1][2:], recs)), S1, 1)
    kind, value = r.lookup("_sip._udp.b.test", dm.SRV, 1)
    assert kind == POSITIVE and len(value) == 30


def test_tcp_timeout_fails_the_query():
    r = _resolver()
    acts = r.query("b.test", dm.SRV, 0)
    r.on_udp(_reply_to(acts[0][1], flags=0x8380), S1, 0)
    done, acts = r.tick(3999)
    assert done == []
    done, acts = r.tick(4000)
    assert done == [("b.test", dm.SRV)] and r.lookup("b.test", dm.SRV, 4000)[0] == FAILED


def test_servfail_tries_next_server_then_fails():
    r = _resolver((S1, S2))
    acts = r.query("b.test", dm.A, 0)
    done, acts = r.on_udp(_reply_to(acts[0][1], flags=0x8182), S1, 1)
    assert done == [] and acts[0][2] == S2
    r2 = _resolver((S1,))
    acts = r2.query("b.test", dm.A, 0)
    done, acts = r2.on_udp(_reply_to(acts[0][1], flags=0x8182), S1, 1)
    assert done == [("b.test", dm.A)]
    kind, reason = r2.lookup("b.test", dm.A, 1)
    assert kind == FAILED and "SERVFAIL" in reason


def test_no_server_and_full_table_fail_at_once():
    r = Resolver([], Lcg(1))
    assert r.query("b.test", dm.A, 0) == []
    assert r.lookup("b.test", dm.A, 0)[1] == "no DNS resolver configured"
    r = _resolver()
    for k in range(MAX_PENDING):
        assert len(r.query("n%d.test" % k, dm.A, 0)) == 1
    assert r.query("one-more.test", dm.A, 0) == []
    assert r.lookup("one-more.test", dm.A, 0)[0] == FAILED
