"""Config validation: defaults, and errors that name the field (portable)."""
from microwitch import config


def _err(text):
    try:
        config.load(text, "f.json")
    except config.ConfigError as e:
        return str(e)
    return None


def test_defaults_fill_in():
    c = config.load("{}")
    assert c["domain"] == "localhost"
    assert c["realm"] == "localhost"
    assert c["listen"] == ["udp:127.0.0.1:5060", "tcp:127.0.0.1:5060"]
    assert config.listen_addrs(c) == [("udp", "127.0.0.1", 5060), ("tcp", "127.0.0.1", 5060)]


def test_realm_follows_domain():
    c = config.load('{"domain": "example.org"}')
    assert c["realm"] == "example.org"


def test_errors_name_file_and_field():
    assert _err('{"domain": "a b"}').startswith("f.json: field 'domain'")
    assert "field 'listen[1]'" in _err('{"listen": ["udp:127.0.0.1:5060", "sctp:x:1"]}')
    assert "field 'listen[0]'" in _err('{"listen": ["udp:127.0.0.1:99999"]}')
    assert "field 'max_aors': must be a whole number" in _err('{"max_aors": "10"}')
    assert "field 'max_aors'" in _err('{"max_aors": true}')
    assert "field 'bogus': unknown field" in _err('{"bogus": 1}')
    assert "not valid JSON" in _err("{")
    assert "top level" in _err("[]")
    assert "field 'min_expires'" in _err('{"min_expires": 7200}')
    assert "field 'default_expires'" in _err('{"default_expires": 10}')
    assert "field 'log_level'" in _err('{"log_level": "loud"}')
    assert "field 'listen'" in _err('{"listen": []}')


def test_host_names_and_addresses_are_checked():
    assert "field 'listen[0]': host must be an IPv4 address" in _err('{"listen": ["udp:999.1.1.1:5060"]}')
    assert "field 'domain': must be an IPv4 address" in _err('{"domain": "10.0.0"}')
    assert "field 'domain': must be a host name" in _err('{"domain": "-bad.example.org"}')
    assert "field 'domain': must be a host name" in _err('{"domain": "a..example.org"}')
    assert "field 'advertise': brackets" in _err('{"advertise": "[192.168.1.1]"}')
    assert "field 'web'" in _err('{"web": "300.1.1.1:8080"}')
    for good in ('"domain": "sip-1.example.org"', '"domain": "192.168.1.1"', '"advertise": "fd00::1"',
                 '"listen": ["udp:[fd00::1]:5060", "tcp:0.0.0.0:5060"]', '"web": "[fd00::1]:8080"'):
        assert _err("{%s}" % good) is None, good


def test_ipv6_listen():
    c = config.load('{"listen": ["udp:[::1]:5070"]}')
    assert config.listen_addrs(c) == [("udp", "::1", 5070)]


def test_digest_algorithms():
    assert config.load("{}")["digest_algorithms"] == ["MD5", "SHA-256"]
    assert config.load('{"digest_algorithms": ["SHA-256"]}')["digest_algorithms"] == ["SHA-256"]
    assert "field 'digest_algorithms[0]'" in _err('{"digest_algorithms": ["SHA-1"]}')
    assert "field 'digest_algorithms'" in _err('{"digest_algorithms": []}')
    assert "field 'digest_algorithms'" in _err('{"digest_algorithms": ["MD5", "MD5"]}')
