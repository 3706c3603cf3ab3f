"""DNS cache: TTLs honoured, negative caching per RFC 2308, bounded with a stated eviction rule."""
from microwitch.dns import cache as dc
from microwitch.dns.cache import Cache


def test_positive_entry_lives_for_its_ttl():
    c = Cache()
    c.put_records("b.test", 1, ["10.0.0.1"], 10, 1000)
    assert c.get("b.test", 1, 1000) == (dc.POSITIVE, ["10.0.0.1"])
    assert c.get("b.test", 1, 10999) == (dc.POSITIVE, ["10.0.0.1"])
    assert c.get("b.test", 1, 11000) is None
    assert len(c) == 0  # expired entries are removed when seen


def test_ttl_clamped():
    c = Cache()
    c.put_records("a", 1, ["x"], 0, 0)         # TTL 0 still outlives the event that brought it
    assert c.get("a", 1, 999) is not None and c.get("a", 1, 1000) is None
    c.put_records("b", 1, ["x"], 10 ** 9, 0)
    assert c.ttl_left("b", 1, 0) == dc.MAX_TTL_S * 1000


def test_negative_caching_uses_soa_minimum_and_caps():
    c = Cache()
    c.put_negative("nx.test", 33, True, 30, 0)
    assert c.get("nx.test", 33, 29999) == (dc.NEGATIVE, None)
    assert c.get("nx.test", 33, 30000) is None
    c.put_negative("b.test", 35, False, 10 ** 6, 0)
    assert c.get("b.test", 35, 0) == (dc.NODATA, None)
    assert c.ttl_left("b.test", 35, 0) == dc.MAX_NEGATIVE_S * 1000
    c.put_negative("c.test", 35, False, None, 0)
    assert c.ttl_left("c.test", 35, 0) == dc.DEFAULT_NEGATIVE_S * 1000


def test_failure_is_remembered_briefly():
    c = Cache()
    c.put_failure("b.test", 1, "timeout", 0)
    assert c.get("b.test", 1, dc.FAIL_S * 1000 - 1) == (dc.FAILED, "timeout")
    assert c.get("b.test", 1, dc.FAIL_S * 1000) is None


def test_bounded_sweeps_expired_then_drops_soonest():
    c = Cache(max_entries=4)
    c.put_records("short", 1, ["x"], 5, 0)
    c.put_records("long1", 1, ["x"], 100, 0)
    c.put_records("long2", 1, ["x"], 200, 0)
    c.put_records("mid", 1, ["x"], 50, 0)
    c.put_records("new", 1, ["x"], 300, 6000)  # 'short' has expired by now: swept
    assert len(c) == 4 and c.get("short", 1, 6000) is None and c.get("mid", 1, 6000) is not None
    c.put_records("newer", 1, ["x"], 300, 7000)  # full, nothing expired: the soonest to expire ('mid') goes
    assert len(c) == 4
    assert c.get("mid", 1, 7000) is None
    for n in ("long1", "long2", "new", "newer"):
        assert c.get(n, 1, 7000) is not None
    c.put_records("long1", 1, ["y"], 300, 7000)  # replacing an entry never evicts
    assert len(c) == 4 and c.get("long2", 1, 7000) is not None
