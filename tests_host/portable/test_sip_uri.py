"""SIP/SIPS/tel URIs (RFC 3261 §19.1, RFC 3966) and address-of-record keys."""
from microwitch.sip.uri import URI, parse_uri, aor_key, unescape, escape
from microwitch.sip.headers import ParseError


def _bad(s):
    try:
        parse_uri(s)
    except ParseError as e:
        return e
    raise AssertionError("accepted URI %r" % (s,))


def test_basic_sip_uri():
    u = parse_uri("sip:alice@Atlanta.Example.COM")
    assert u.scheme == "sip" and u.user == "alice" and u.host == "atlanta.example.com"
    assert u.port is None and u.password is None and u.params == {} and u.headers == {}
    assert u.to_str() == "sip:alice@atlanta.example.com"


def test_full_sip_uri():
    u = parse_uri("SIPS:alice:secretword@gateway.com:5061;Transport=TCP;lr;maddr=239.255.255.1?subject=project%20x&priority=urgent")
    assert u.scheme == "sips" and u.user == "alice" and u.password == "secretword"
    assert u.host == "gateway.com" and u.port == 5061
    assert u.params == {"transport": "TCP", "lr": None, "maddr": "239.255.255.1"}
    assert u.headers == {"subject": "project%20x", "priority": "urgent"}
    assert parse_uri(u.to_str()) == u


def test_host_only_and_ip():
    u = parse_uri("sip:192.0.2.4:5070")
    assert u.user is None and u.host == "192.0.2.4" and u.port == 5070
    u = parse_uri("sip:[2001:DB8::1]:5060;transport=udp")
    assert u.host == "[2001:db8::1]" and u.port == 5060 and u.params["transport"] == "udp"
    u = parse_uri("sip:bob@[::1]")
    assert u.host == "[::1]" and u.port is None
    assert parse_uri(u.to_str()) == u
    u = parse_uri("sip:example.com.")
    assert u.host == "example.com."


def test_escaped_user():
    u = parse_uri("sip:%61lice%20smith@example.com")
    assert u.user == "alice smith"
    assert u.to_str() == "sip:alice%20smith@example.com"
    u = parse_uri("sip:user;par=u%40example.net@example.com")
    assert u.user == "user;par=u@example.net" and u.host == "example.com"
    assert parse_uri(u.to_str()) == u
    u = parse_uri("sip:%E2%82%AC@example.com")
    assert u.user == "\u20ac"
    assert parse_uri(u.to_str()) == u
    assert unescape("a%2fb%2F") == "a/b/"
    assert escape("a b@c", "abc") == "a%20b%40c"
    for bad in ("sip:%4@example.com", "sip:%zz@example.com", "sip:%FF@example.com", "sip:a%@example.com"):
        assert "escape" in _bad(bad).reason or "UTF-8" in _bad(bad).reason


def test_tel_uri():
    u = parse_uri("tel:+1-201-555-0123")
    assert u.scheme == "tel" and u.user == "+1-201-555-0123" and u.host is None and u.params == {}
    u = parse_uri("tel:7042;phone-context=example.com")
    assert u.user == "7042" and u.params == {"phone-context": "example.com"}
    assert parse_uri(u.to_str()) == u
    assert aor_key("tel:+1-201-555-0123") == "tel:+12015550123"
    for bad in ("tel:", "tel:+1 201", "tel:xyz;x", "tel:12;=a", "tel:12;;a"):
        _bad(bad)


def test_unsupported_and_bad():
    assert "scheme" in _bad("http://example.com/").reason
    assert "scheme" in _bad("urn:isbn:123").reason
    for bad in ("", "sip:", "sip", ":x", "1sip:a@b", "sip:a@", "sip:@example.com", "sip:a@b:",
                "sip:a@b:65536", "sip:a@b:-1", "sip:a@b:5x", "sip:a b@c", "sip:a@b c", "<sip:a@b>",
                "sip:a@[::1", "sip:a@[zz::1]", "sip:a@exa_mple.com", "sip:a@b;", "sip:a@b;;lr",
                "sip:a@b?", "sip:a@b?=x", "sip:a@-b.com", "sip:a@b..com", "sip:a\"b@c", "sip:a@b\r\n"):
        _bad(bad)
    assert "not text" in _bad(b"sip:a@b").reason


def test_aor_key():
    assert aor_key("sip:Alice@Example.COM:5060;transport=tcp?x=y") == "sip:Alice@example.com"
    assert aor_key("sips:alice@example.com") == "sip:alice@example.com"
    assert aor_key("sip:%61lice@example.com") == aor_key("sip:alice@example.com")
    assert aor_key("sip:alice:pw@example.com") == "sip:alice@example.com"
    assert aor_key(parse_uri("sip:example.com")) == "sip:example.com"
    assert aor_key("sip:a%40b@example.com") == "sip:a%40b@example.com"
    assert aor_key("sip:bob@[2001:DB8::2]") == "sip:bob@[2001:db8::2]"
    try:
        aor_key("mailto:a@b")
    except ParseError:
        pass
    else:
        raise AssertionError("mailto accepted")


def test_constructed_uri():
    u = URI("sip", "bob smith", "example.com", 5080, {"transport": "tcp", "lr": None}, {"h": "v"})
    assert u.to_str() == "sip:bob%20smith@example.com:5080;transport=tcp;lr?h=v"
    assert parse_uri(u.to_str()) == u
    assert u != parse_uri("sip:bob@example.com")


def test_host_forms():
    for good, host in (("sip:a@192.0.2.255", "192.0.2.255"), ("sip:a@Mail-1.Example.com", "mail-1.example.com"),
                       ("sip:a@x", "x"), ("sip:a@[::ffff:192.0.2.1]", "[::ffff:192.0.2.1]"),
                       ("sip:a@[1:2:3:4:5:6:7:8]:1", "[1:2:3:4:5:6:7:8]"), ("sip:a@[::]", "[::]"),
                       ("sip:a@3com.example", "3com.example")):
        assert parse_uri(good).host == host, good
    for bad in ("sip:a@999.1.1.1", "sip:a@1.2.3", "sip:a@1.2.3.4.5", "sip:a@123", "sip:a@-x.com",
                "sip:a@x-.com", "sip:a@example.3com", "sip:a@[1::2::3]", "sip:a@[12345::]", "sip:a@[1:2]",
                "sip:a@[::1.2.3.256]", "sip:a@1.2.3.4.", "sip:a@[]", "sip:a@.example.com", "sip:a@caf\u00e9.example"):
        _bad(bad)
