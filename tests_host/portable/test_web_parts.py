"""The web page's building blocks without HTTP (portable): PBKDF2, form parsing, login back-off, sessions,
provisioning tokens and lpconfig, the live-call view."""
from binascii import unhexlify

from microwitch.compat import sha256

from microwitch.store.memory import MemoryBackend
from microwitch.web.pbkdf2 import pbkdf2_sha256
from microwitch.web.forms import parse_form, parse_cookies, FormError, esc, MAX_BODY
from microwitch.web.security import Security, BACKOFF_MAX_MS, SESSION_IDLE_MS, MAX_SESSIONS
from microwitch.web.admin import AdminStore
from microwitch.web.provision import Tokens, lpconfig, TOKEN_TTL_S
from microwitch.web.calls import CallTable

_ctr = [0]


def _rand(n):
    from microwitch.compat import sha256
    out = b""
    while len(out) < n:
        _ctr[0] += 1
        out += sha256(b"t" + str(_ctr[0]).encode()).digest()
    return out[:n]


def test_pbkdf2_rfc7914_vector():
    # RFC 7914 §11: PBKDF2-HMAC-SHA256 P="passwd" S="salt" c=1, first 32 bytes of the 64-byte output
    want = unhexlify("55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc")
    assert pbkdf2_sha256(b"passwd", b"salt", 1) == want
    assert pbkdf2_sha256(b"passwd", b"salt", 2) != want


def test_pbkdf2_long_password_hashed_first():
    assert pbkdf2_sha256(b"p" * 100, b"s", 3) == pbkdf2_sha256(sha256(b"p" * 100).digest(),
                                                              b"s", 3)


def test_admin_password_round_trip_and_journal():
    be = MemoryBackend()
    a = AdminStore(be, _rand, iterations=50).load()
    assert not a.is_set()
    try:
        a.set_password("short")
        assert False, "short password accepted"
    except ValueError:
        pass
    assert not a.is_set() and be.syncs == 0
    a.set_password("correct horse battery")
    assert be.syncs == 1  # durable before the page answers
    b = AdminStore(be, _rand, iterations=50).load()
    assert b.is_set()
    assert b.check("correct horse battery")
    assert not b.check("correct horse batterY")
    assert not b.check("")
    rec = b._state["admin"]
    assert rec["iter"] == 50 and len(rec["salt"]) == 32 and "correct" not in str(rec)


def test_form_parsing_limits():
    f = parse_form(b"a=1&b=x+y%21&a=2&c=")
    assert f == {"a": "1", "b": "x y!", "c": ""}
    assert parse_form(b"n=%C3%A9")["n"] == "\u00e9"
    for bad in (b"a=%zz", b"a=%4", b"a=%ff%fe", b"x=" + b"y" * (MAX_BODY + 1), b"&".join([b"a=1"] * 40)):
        try:
            parse_form(bad)
            assert False, bad[:20]
        except FormError:
            pass
    assert parse_cookies("mw_s=abc; other=1;junk") == {"mw_s": "abc", "other": "1", "junk": ""}
    assert esc('<a href="x">&\'') == "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"


def test_backoff_per_source_not_per_account():
    s = Security(_rand)
    now = 1000
    assert s.wait_ms("10.0.0.9", now) == 0
    s.failed("10.0.0.9", now)  # one free mistake
    assert s.wait_ms("10.0.0.9", now) == 0
    waits = []
    for _ in range(10):
        waits.append(s.failed("10.0.0.9", now))
    assert waits[:4] == [1000, 2000, 4000, 8000]
    assert max(waits) == BACKOFF_MAX_MS
    assert s.wait_ms("10.0.0.9", now + 100) > 0
    assert s.wait_ms("10.0.0.5", now + 100) == 0  # the owner's address is not slowed
    assert s.wait_ms("10.0.0.9", now + BACKOFF_MAX_MS) == 0
    s.succeeded("10.0.0.9")
    assert s.wait_ms("10.0.0.9", now) == 0


def test_backoff_table_bounded():
    s = Security(_rand)
    for i in range(600):
        s.failed("10.1.%d.%d" % (i // 250, i % 250), 5000)
    assert len(s.failures) <= 256


def test_sessions_and_csrf():
    s = Security(_rand)
    sid = s.login(0)
    assert s.session({"mw_s": sid}, 1000) == sid
    tok = s.csrf_for(sid)
    assert s.csrf_ok(sid, tok)
    assert not s.csrf_ok(sid, tok[:-1] + ("0" if tok[-1] != "0" else "1"))
    assert not s.csrf_ok(sid, None) and not s.csrf_ok(sid, "")
    other = s.login(0)
    assert not s.csrf_ok(other, tok)  # a token is bound to its cookie
    assert s.session({"mw_s": sid}, 1000 + SESSION_IDLE_MS + 1) is None  # idle timeout
    assert s.session({"mw_s": "../etc"}, 0) is None
    for i in range(MAX_SESSIONS + 3):
        s.login(10 + i)
    assert len(s.sessions) == MAX_SESSIONS


def test_tokens_single_use_expiring():
    t = Tokens(_rand)
    tok = t.issue("alice@example.org", 100)
    assert len(tok) == 32 and tok not in str(t._t)  # only its hash is kept
    assert t.take(tok, 101) == "alice@example.org"
    assert t.take(tok, 101) is None  # once only
    tok = t.issue("alice@example.org", 100)
    assert t.take(tok, 100 + TOKEN_TTL_S) is None  # expired
    a = t.issue("bob@example.org", 100)
    b = t.issue("bob@example.org", 100)  # a new link cancels the old one
    assert t.take(a, 101) is None and t.take(b, 101) == "bob@example.org"
    for i in range(200):
        t.issue("u%d@example.org" % i, 200)
    assert len(t) == t.max_tokens
    assert t.take("not-a-token", 200) is None


def test_lpconfig_has_account_zrtp_mandatory_no_gruu():
    x = lpconfig("alice", "example.org", "example.org", "0" * 32, "192.168.1.1", 5060)
    assert x.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    assert '<entry name="media_encryption" overwrite="true">zrtp</entry>' in x
    assert '<entry name="media_encryption_mandatory" overwrite="true">1</entry>' in x
    assert '<entry name="supported" overwrite="true">replaces</entry>' in x  # no "gruu"
    assert "gruu" not in x
    assert "&lt;sip:192.168.1.1:5060;transport=udp&gt;" in x
    assert "&lt;sip:alice@example.org&gt;" in x
    assert '<entry name="ha1" overwrite="true">' + "0" * 32 + "</entry>" in x
    assert "passwd" not in x


def _sip(first, cid, from_, to, cseq, body=b""):
    h = (first + "\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-" + cid + "\r\nFrom: <sip:" + from_ +
         ">;tag=a\r\nTo: <sip:" + to + ">" + ("" if first.startswith("INVITE") else ";tag=b") +
         "\r\nCall-ID: " + cid + "\r\nCSeq: " + cseq + "\r\nContent-Length: %d\r\n\r\n" % len(body))
    return h.encode() + body


_ZSDP = b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 7078 RTP/AVP 0\r\n" \
        b"a=zrtp-hash:1.10 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\r\n"
_PSDP = b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 7080 RTP/AVP 0\r\n"



def _msg(*args):
    from microwitch.sip.message import parse
    return parse(_sip(*args))

def test_calls_zrtp_both_legs_duration_and_end():
    c = CallTable()
    c.observe_msg(_msg("INVITE sip:bob@example.org SIP/2.0", "c1", "alice@example.org", "bob@example.org",
                   "1 INVITE", _ZSDP), 1000)
    v = c.view(1001)
    assert v[0]["state"] == "ringing" and v[0]["caller"] == "alice@example.org"
    assert v[0]["callee"] == "bob@example.org"
    c.observe_msg(_msg("SIP/2.0 180 Ringing", "c1", "alice@example.org", "bob@example.org", "1 INVITE"), 1002)
    c.observe_msg(_msg("SIP/2.0 200 OK", "c1", "alice@example.org", "bob@example.org", "1 INVITE", _ZSDP), 1005)
    v = c.view(1065)
    assert v[0]["state"] == "up" and v[0]["duration_s"] == 60 and v[0]["zrtp"]
    c.observe_msg(_msg("BYE sip:alice@127.0.0.1 SIP/2.0", "c1", "bob@example.org", "alice@example.org", "2 BYE"), 1070)
    assert c.view(1070) == []


def test_calls_one_leg_without_zrtp_and_failed_call():
    c = CallTable()
    c.observe_msg(_msg("INVITE sip:bob@example.org SIP/2.0", "c2", "alice@example.org", "bob@example.org",
                   "1 INVITE", _ZSDP), 0)
    c.observe_msg(_msg("SIP/2.0 200 OK", "c2", "alice@example.org", "bob@example.org", "1 INVITE", _PSDP), 1)
    v = c.view(2)
    assert v[0]["zrtp_caller"] and not v[0]["zrtp_callee"] and not v[0]["zrtp"]
    c.observe_msg(_msg("INVITE sip:carol@example.org SIP/2.0", "c3", "alice@example.org", "carol@example.org",
                   "1 INVITE", _ZSDP), 0)
    c.observe_msg(_msg("SIP/2.0 486 Busy Here", "c3", "alice@example.org", "carol@example.org", "1 INVITE"), 1)
    assert len(c.view(2)) == 1


def test_calls_table_bounded():
    c = CallTable(max_calls=8)
    for i in range(20):
        c.observe_msg(_msg("INVITE sip:bob@example.org SIP/2.0", "x%d" % i, "a@example.org", "bob@example.org",
                       "1 INVITE"), 0)
    assert len(c.calls) == 8
    # a ringing call older than the ring limit makes room
    c.observe_msg(_msg("INVITE sip:bob@example.org SIP/2.0", "late", "a@example.org", "bob@example.org", "1 INVITE"),
              100000)
    assert "late" in c.calls and len(c.calls) == 1


def test_config_web_key():
    from microwitch import config
    assert config.load("{}")["web"] == ""  # off unless configured
    assert config.load('{"web": "192.168.1.1:8080"}')["web"] == "192.168.1.1:8080"
    assert config.load('{"web": "[fd00::1]:80"}')["web"] == "[fd00::1]:80"
    for bad in ('"8080"', '"host:port"', '"1.2.3.4:0"', '"a b:80"', '8080'):
        try:
            config.load('{"web": %s}' % bad)
            assert False, bad
        except config.ConfigError as e:
            assert "'web'" in str(e), str(e)
