"""Digest authentication (microwitch.sip.digest): RFC 7616 known answers, nonces, stale, replay, parsing."""
from microwitch.sip.digest import (DigestAuth, parse_credentials, ha1_hex, response_hex, ct_equal,
                                   h_hex, ALGORITHMS)

# RFC 7616 §3.9.1 (password "Circle of Life", lower-case "of" per erratum 4495)
KAT_USER = "Mufasa"
KAT_PASS = "Circle of Life"
KAT_REALM = "http-auth@example.org"
KAT_NONCE = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
KAT_CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
KAT_MD5 = "8ca523f5e9506fed4657c9700eebdbec"
KAT_SHA256 = "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"

REALM = "example.org"
URI = "sip:example.org"
PASSWORDS = {"alice": "wonder land", "bob": "b0b"}


class Counter:
    """Deterministic rand(n): distinct bytes every call."""

    def __init__(self):
        self.i = 0

    def __call__(self, n):
        out = bytearray(n)
        for k in range(n):
            self.i += 1
            out[k] = (self.i * 131 + 7) & 0xFF
        return bytes(out)


def get_ha1(user, alg):
    p = PASSWORDS.get(user)
    return None if p is None else ha1_hex(alg, user, REALM, p)


def nonce_of(challenge):
    c = parse_credentials(challenge)
    return c["nonce"]


def creds(nonce, user="alice", password=None, alg="SHA-256", nc=1, uri=URI, method="REGISTER", cnonce="abc123",
          realm=REALM):
    if password is None:
        password = PASSWORDS[user]
    ha1 = ha1_hex(alg, user, realm, password)
    nc_text = "%08x" % nc
    r = response_hex(alg, ha1, nonce, nc_text, cnonce, "auth", method, uri)
    return ('Digest username="%s", realm="%s", nonce="%s", uri="%s", response="%s", algorithm=%s, '
            'qop=auth, nc=%s, cnonce="%s"' % (user, realm, nonce, uri, r, alg, nc_text, cnonce))


def new_auth(ttl=300, max_nonces=64):
    return DigestAuth(REALM, b"node-secret", Counter(), ttl, max_nonces)


def check(auth, value, now_ms, uri=URI):
    return auth.check("REGISTER", uri, auth.pick([value]), get_ha1, now_ms)


def test_rfc7616_known_answers():
    for alg, want in (("MD5", KAT_MD5), ("SHA-256", KAT_SHA256)):
        ha1 = ha1_hex(alg, KAT_USER, KAT_REALM, KAT_PASS)
        got = response_hex(alg, ha1, KAT_NONCE, "00000001", KAT_CNONCE, "auth", "GET", "/dir/index.html")
        assert got == want, (alg, got)


def test_rfc7616_example_header_parses():
    v = ('Digest username="Mufasa",\n realm="http-auth@example.org",\n uri="/dir/index.html",\n'
         ' algorithm=SHA-256,\n nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",\n nc=00000001,\n'
         ' cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",\n qop=auth,\n'
         ' response="753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",\n'
         ' opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"').replace("\n", "")
    c = parse_credentials(v)
    assert c["username"] == "Mufasa" and c["algorithm"] == "SHA-256" and c["nc"] == "00000001"
    assert c["response"] == KAT_SHA256 and c["qop"] == "auth" and c["uri"] == "/dir/index.html"


def test_hash_helpers():
    assert h_hex("MD5", "") == "d41d8cd98f00b204e9800998ecf8427e"
    assert h_hex("SHA-256", "abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert ct_equal("abc", "abc") and not ct_equal("abc", "abd") and not ct_equal("abc", "ab")
    assert ct_equal(b"\x00\x01", b"\x00\x01")


def test_parse_quoted_commas_escapes_and_case():
    c = parse_credentials('digest  USERNAME="a,b\\"c" ,realm="r, s",  nonce=x,uri="sip:a;b=c,d"')
    assert c == {"username": 'a,b"c', "realm": "r, s", "nonce": "x", "uri": "sip:a;b=c,d"}, c


def test_parse_bad_input_is_none_not_exception():
    bad = ["", "Basic dXNlcjpwYXNz", "Digest", 'Digest username="open', "Digest username=",
           'Digest username="a" realm="b"', "Digest =x", 'Digest a=1, a=2', 'Digest a="\\',
           "Digest " + ", ".join("p%d=1" % i for i in range(40)), "Digest x" * 2000, None, 42,
           'Digest username="a",,, realm', 'Digest a=b c=d']
    for v in bad:
        assert parse_credentials(v) is None, v
    assert parse_credentials('Digest username="a",') == {"username": "a"}


def test_challenges_sha256_first_then_md5_same_nonce():
    auth = new_auth()
    ch = auth.challenges(1000)
    assert len(ch) == 2
    a = parse_credentials(ch[0])
    b = parse_credentials(ch[1])
    assert a["algorithm"] == "SHA-256" and b["algorithm"] == "MD5" and ALGORITHMS[0] == "SHA-256"
    assert a["qop"] == "auth" and a["realm"] == REALM and a["nonce"] == b["nonce"]
    assert "stale" not in a
    assert 'qop="auth"' in ch[0]
    assert parse_credentials(auth.challenges(1000, stale=True)[1])["stale"] == "true"
    assert auth.challenges(1000)[0] != ch[0]  # a fresh random part every time
    assert len(a["nonce"]) == 32


def test_good_credentials_both_algorithms():
    auth = new_auth()
    for alg in ALGORITHMS:
        n = nonce_of(auth.challenges(5000)[0])
        r = check(auth, creds(n, alg=alg), 6000)
        assert r.ok and r.username == "alice" and r.algorithm == alg, r.reason
    # algorithm absent means MD5 (RFC 7616 §3.3)
    n = nonce_of(auth.challenges(5000)[0])
    v = creds(n, alg="MD5").replace(", algorithm=MD5", "")
    assert check(auth, v, 6000).ok


def test_wrong_password_unknown_user_same_answer():
    auth = new_auth()
    n = nonce_of(auth.challenges(0)[0])
    r1 = check(auth, creds(n, password="nope"), 10)
    r2 = check(auth, creds(n, user="mallory", password="x"), 10)
    assert not r1.ok and not r2.ok and not r1.stale and not r2.stale
    assert r1.reason == r2.reason == "bad credentials"
    # a failed attempt does not use up the nonce: the right answer still works with nc=1
    assert check(auth, creds(n), 10).ok


def test_response_case_insensitive_hex():
    auth = new_auth()
    n = nonce_of(auth.challenges(0)[0])
    v = creds(n)
    i = v.find('response="') + 10
    v = v[:i] + v[i:i + 64].upper() + v[i + 64:]
    assert check(auth, v, 10).ok


def test_nonce_expiry_is_stale():
    auth = new_auth(ttl=300)
    n = nonce_of(auth.challenges(1000000)[0])
    assert check(auth, creds(n, nc=1), 1000000 + 300 * 1000).ok  # exactly at the TTL: still fresh
    r = check(auth, creds(n, nc=2), 1000000 + 301 * 1000)
    assert not r.ok and r.stale and r.reason == "nonce expired"
    # a nonce from the future (clock went backwards / wrapped) is stale too
    n2 = nonce_of(auth.challenges(9000000)[0])
    r = check(auth, creds(n2), 8000000)
    assert not r.ok and r.stale


def test_stale_only_when_password_right():
    auth = new_auth(ttl=10)
    n = nonce_of(auth.challenges(0)[0])
    r = check(auth, creds(n, password="bad"), 60000)
    assert not r.ok and not r.stale


def test_forged_or_foreign_nonce_rejected():
    auth = new_auth()
    rnd = Counter()
    rnd.i = 5000
    other = DigestAuth(REALM, b"node-secret", rnd, 300, 64)  # same secret, another process (boot salt)
    n = nonce_of(other.challenges(0)[0])
    r = check(auth, creds(n), 10)
    assert not r.ok and r.reason == "nonce not ours"
    good = nonce_of(auth.challenges(0)[0])
    flipped = ("A" if good[5] != "A" else "B").join((good[:5], good[6:]))
    assert not check(auth, creds(flipped), 10).ok
    for junk in ("", "abc", "!" * 32, good[:-1] + "*", good + "AAAA"):
        r = check(auth, creds(junk), 10)
        assert not r.ok, junk


def test_replay_and_nc_ordering():
    auth = new_auth()
    n = nonce_of(auth.challenges(0)[0])
    assert check(auth, creds(n, nc=1), 10).ok
    r = check(auth, creds(n, nc=1), 20)
    assert not r.ok and r.stale and r.reason == "nonce count replayed"
    assert check(auth, creds(n, nc=3), 30).ok  # gaps are fine (RFC 7616 §3.4: nc only increases)
    assert not check(auth, creds(n, nc=2), 40).ok  # lower than seen
    assert check(auth, creds(n, nc=4), 50).ok
    assert not check(auth, creds(n, nc=0), 50).ok


def test_nonce_table_bounded_evicted_nonce_refused():
    auth = new_auth(max_nonces=4)
    first = nonce_of(auth.challenges(1000)[0])  # ts 1 s
    unused_same_second = nonce_of(auth.challenges(1500)[0])  # ts 1 s, never used before the eviction
    issued_late = nonce_of(auth.challenges(2000)[0])  # ts 2 s, used only after the eviction
    assert check(auth, creds(first, nc=1), 1000).ok
    later = []
    for i in range(4):  # ts 3..6: the fourth evicts `first` (ts 1) -> watermark 1
        n = nonce_of(auth.challenges(3000 + i * 1000)[0])
        assert check(auth, creds(n, nc=1), 3000 + i * 1000).ok
        later.append(n)
    assert len(auth._nc) == 4  # bounded
    assert auth._watermark == 1
    # `first` was evicted: even a higher nc is refused (its count is forgotten, so it could be a replay)
    r = check(auth, creds(first, nc=2), 8000)
    assert not r.ok and r.stale and r.reason == "nonce count replayed"
    # a never-seen nonce at or below the watermark is indistinguishable from an evicted one: refused
    assert not check(auth, creds(unused_same_second, nc=1), 8000).ok
    # one above the watermark is accepted on first use, and the table stays bounded
    assert check(auth, creds(issued_late, nc=1), 8000).ok
    assert len(auth._nc) == 4
    # the entries still in the table keep counting
    assert check(auth, creds(later[-1], nc=2), 8000).ok
    assert not check(auth, creds(later[-1], nc=2), 8000).ok


def test_uri_must_match_request_uri():
    auth = new_auth()
    n = nonce_of(auth.challenges(0)[0])
    r = check(auth, creds(n, uri="sip:other.org"), 10)
    assert not r.ok and r.reason == "uri does not match Request-URI"
    # the same URI written differently (host case) is accepted
    n = nonce_of(auth.challenges(0)[0])
    assert check(auth, creds(n, uri="sip:EXAMPLE.org"), 10, uri="sip:example.org").ok


def test_required_fields_qop_algorithm_realm():
    auth = new_auth()
    n = nonce_of(auth.challenges(0)[0])
    good = creds(n)
    assert not check(auth, good.replace("qop=auth, ", ""), 10).ok  # RFC 2069 form refused
    assert not check(auth, good.replace("qop=auth", "qop=auth-int"), 10).ok
    assert not check(auth, good.replace("algorithm=SHA-256", "algorithm=SHA-256-sess"), 10).ok
    assert not check(auth, good.replace("nc=00000001", "nc=1"), 10).ok
    assert not check(auth, good.replace("nc=00000001", "nc=0000000g"), 10).ok
    assert not check(auth, good.replace('cnonce="abc123"', 'cnonce=""'), 10).ok
    assert check(auth, good.replace('realm="example.org"', 'realm="elsewhere"'), 10).reason == \
        "no credentials for realm"
    r = auth.check("REGISTER", URI, None, get_ha1, 10)
    assert not r.ok and not r.stale
    assert check(auth, good, 10).ok


def test_pick_chooses_our_realm_among_several():
    auth = new_auth()
    n = nonce_of(auth.challenges(0)[0])
    other = creds(n, realm="other.net")
    c = auth.pick(["garbage", other, creds(n)])
    assert c["realm"] == REALM
    assert auth.check("REGISTER", URI, c, get_ha1, 5).ok


def test_configured_algorithm_order_and_subset():
    auth = DigestAuth(REALM, b"s", Counter(), 300, 16, algorithms=("MD5", "SHA-256"))
    ch = auth.challenges(0)
    assert [parse_credentials(c)["algorithm"] for c in ch] == ["MD5", "SHA-256"]
    only = DigestAuth(REALM, b"s", Counter(), 300, 16, algorithms=("SHA-256",))
    ch = only.challenges(0)
    assert len(ch) == 1
    n = nonce_of(ch[0])
    r = only.check("REGISTER", URI, only.pick([creds(n, alg="MD5")]), get_ha1, 0)
    assert not r.ok and r.reason == "unsupported algorithm"
    assert only.check("REGISTER", URI, only.pick([creds(n)]), get_ha1, 0).ok
    for bad in ((), ("SHA-512-256",), ("md5",)):
        try:
            DigestAuth(REALM, b"s", Counter(), 300, 16, algorithms=bad)
            raise AssertionError("accepted %r" % (bad,))
        except ValueError:
            pass


def test_replay_table_key_collision_only_refuses():
    auth = new_auth(max_nonces=8)
    # two different nonces whose table keys collide share one counter: the later one's low nc is refused
    # (the phone would get stale=true and a fresh nonce), nothing is ever accepted twice
    assert auth._seen(77, 1, 1)
    assert auth._seen(77, 1, 5)
    assert not auth._seen(77, 2, 1)  # the colliding nonce's first use
    assert not auth._seen(77, 1, 5)
    assert auth._seen(77, 2, 6)
    assert len(auth._nc) == 1
