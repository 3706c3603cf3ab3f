"""The PBX bridge, sans-I/O (portable): the node keeps a secure user's PBX extension registered while she has
a binding, answers the PBX's challenges with the stored HA1, takes it down when her last binding goes, rings
her devices for calls to the extension, and places her calls to PBX numbers under the PBX identity."""
from microwitch import config
from microwitch.log import Logger
from microwitch.node.core import Node
from microwitch.sip.message import parse
from microwitch.sip.digest import parse_credentials, ha1_hex, response_hex
from microwitch.store.memory import MemoryBackend
from microwitch.store.users import Users
from microwitch.store.bindings import Bindings, Binding
from microwitch.store.pbx_accounts import PbxAccounts

ME = ("udp", "127.0.0.1", 5060)
PBX = ("udp", "127.0.0.1", 5080)
PHONE = ("udp", "127.0.0.1", 40001)
PBXUSER = ("udp", "127.0.0.1", 5090)
WALL = 100000


def _rand(n):
    return b"\x33" * n


def _setup(registered=True):
    cfg = config.load('{"domain": "localhost", "listen": ["udp:127.0.0.1:5060"], '
                      '"pbx": {"address": "udp:127.0.0.1:5080", "domain": "pbx.test"}}')
    be = MemoryBackend()
    users = Users(be)
    users.load()
    users.add("alice@localhost", "wonderland")
    acc = PbxAccounts(be)
    acc.load()
    acc.set("alice@localhost", "201", "pbxsecret", "pbx.test")
    bindings = Bindings(be)
    if registered:
        bindings.update("sip:alice@localhost",
                        [Binding("sip:alice@10.0.0.5:5062", WALL + 3600, 3600, "r1", 1, PHONE)], WALL)
    lines = []
    node = Node(cfg, users, bindings, _rand, Logger("debug", lines.append), b"s" * 32, ["127.0.0.1"], acc)
    node.set_listen([ME])
    return node, bindings, acc, lines


def _sends(actions):
    return [(parse(a[1]), a[2]) for a in actions if a[0] == "send"]


def _reply(req, status, reason, extra=""):
    lines = ["SIP/2.0 %d %s" % (status, reason)]
    for v in req.get_all("Via"):
        lines.append("Via: " + v)
    for name in ("From", "Call-ID", "CSeq"):
        lines.append("%s: %s" % (name, req.get(name)))
    lines.append("To: " + req.get("To") + ";tag=pbx")
    return ("\r\n".join(lines) + "\r\n" + extra + "Content-Length: 0\r\n\r\n").encode()


def _check_digest(req, header, method, uri):
    c = parse_credentials(req.get(header))
    assert c["username"] == "201" and c["realm"] == "pbx.test"
    ha1 = ha1_hex(c.get("algorithm", "MD5"), "201", "pbx.test", "pbxsecret")
    assert c["response"] == response_hex(c.get("algorithm", "MD5"), ha1, c["nonce"], c["nc"], c["cnonce"],
                                         "auth", method, uri)


def test_cross_registration_follows_bindings():
    node, bindings, acc, lines = _setup()
    sends = _sends(node.tick(0, WALL))
    reg = [m for m, a in sends if a == PBX][0]
    assert reg.method == "REGISTER" and reg.uri == "sip:pbx.test"
    assert reg.get("To") == "<sip:201@pbx.test>"
    assert reg.get("Contact") == "<sip:201@127.0.0.1:5060>"  # calls to 201 come back to the node
    chal = 'WWW-Authenticate: Digest realm="pbx.test", nonce="n1", algorithm=MD5, qop="auth"\r\n'
    sends = _sends(node.receive(_reply(reg, 401, "Unauthorized", chal), PBX, 10, WALL))
    reg2 = [m for m, a in sends if a == PBX][0]
    _check_digest(reg2, "Authorization", "REGISTER", "sip:pbx.test")
    assert reg2.get("Call-ID") == reg.get("Call-ID")
    node.receive(_reply(reg2, 200, "OK", "Contact: <sip:201@127.0.0.1:5060>;expires=600\r\n"), PBX, 20, WALL)
    assert node.status(WALL)["pbx"][0]["state"] == "registered"
    # a refresh only when half the granted interval has passed
    assert [a for a in _sends(node.tick(100000, WALL)) if a[1] == PBX] == []
    sends = _sends(node.tick(301000, WALL))
    refresh = [m for m, a in sends if a == PBX][0]
    assert refresh.get("Expires") == "600"
    node.receive(_reply(refresh, 200, "OK", "Expires: 600\r\n"), PBX, 301010, WALL)
    # her last binding goes: the PBX registration is removed
    bindings.update("sip:alice@localhost", [], WALL)
    sends = _sends(node.tick(302000, WALL))
    unreg = [m for m, a in sends if a == PBX][0]
    assert unreg.get("Expires") == "0"
    node.receive(_reply(unreg, 200, "OK"), PBX, 302010, WALL)
    assert node.status(WALL)["pbx"][0]["state"] == "idle"


def test_wrong_pbx_password_backs_off():
    node, _, _, lines = _setup()
    reg = [m for m, a in _sends(node.tick(0, WALL)) if a == PBX][0]
    chal = 'WWW-Authenticate: Digest realm="pbx.test", nonce="n%d", qop="auth"\r\n'
    for i in range(3):
        sends = _sends(node.receive(_reply(reg, 401, "Unauthorized", chal % i), PBX, 10 + i, WALL))
        if not sends:
            break
        reg = sends[0][0]
    st = node.status(WALL)["pbx"][0]
    assert st["state"] == "failed" and "401" in st["reason"]
    assert _sends(node.tick(2000, WALL)) == []  # backing off, no storm
    assert [m.method for m, a in _sends(node.tick(6000, WALL)) if a == PBX] == ["REGISTER"]


def test_call_from_pbx_to_extension_rings_alice():
    node, _, _, _ = _setup()
    inv = ("INVITE sip:201@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bKp1\r\n"
           "Max-Forwards: 69\r\nFrom: <sip:202@pbx.test>;tag=x\r\nTo: <sip:201@pbx.test>\r\nCall-ID: pc1\r\n"
           "CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n").encode()
    sends = _sends(node.receive(inv, PBX, 0, WALL))
    ring = [m for m, a in sends if a == PHONE]
    assert [m.method for m in ring] == ["INVITE"] and ring[0].uri == "sip:alice@10.0.0.5:5062"


def test_call_to_pbx_number_goes_out_under_the_pbx_identity():
    node, _, _, _ = _setup()
    inv = ("INVITE sip:555123@localhost SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:40001;branch=z9hG4bKa1;rport\r\n"
           "Max-Forwards: 70\r\nFrom: \"Alice\" <sip:alice@localhost>;tag=al\r\nTo: <sip:555123@localhost>\r\n"
           "Call-ID: ac1\r\nCSeq: 7 INVITE\r\nContent-Length: 0\r\n\r\n")
    resp = _sends(node.receive(inv.encode(), PHONE, 0, WALL))[0][0]
    nonce = [v for v in resp.get_all("Proxy-Authenticate") if "MD5" in v][0].split('nonce="')[1].split('"')[0]
    ha1 = ha1_hex("MD5", "alice", "localhost", "wonderland")
    r = response_hex("MD5", ha1, nonce, "00000001", "q", "auth", "INVITE", "sip:555123@localhost")
    auth = ('Proxy-Authorization: Digest username="alice", realm="localhost", nonce="%s", '
            'uri="sip:555123@localhost", response="%s", algorithm=MD5, qop=auth, nc=00000001, cnonce="q"\r\n'
            % (nonce, r))
    inv2 = inv.replace("z9hG4bKa1", "z9hG4bKa2").replace("Content-Length", auth + "Content-Length")
    sends = _sends(node.receive(inv2.encode(), PHONE, 10, WALL))
    out = [m for m, a in sends if a == PBX][0]
    assert out.uri == "sip:555123@pbx.test"
    assert out.get("From") == '"Alice" <sip:201@pbx.test>;tag=al'
    chal = 'Proxy-Authenticate: Digest realm="pbx.test", nonce="pn", algorithm=MD5, qop="auth"\r\n'
    sends = _sends(node.receive(_reply(out, 407, "Proxy Authentication Required", chal), PBX, 20, WALL))
    again = [m for m, a in sends if a == PBX and m.method == "INVITE"]
    assert len(again) == 1 and again[0].get("CSeq") == "7 INVITE"
    _check_digest(again[0], "Proxy-Authorization", "INVITE", "sip:555123@pbx.test")
    assert [m for m, a in sends if a == PHONE and m.status == 407] == []  # the 407 never reaches alice
    sends = _sends(node.receive(_reply(again[0], 200, "OK"), PBX, 30, WALL))
    assert [m.status for m, a in sends if a == PHONE] == [200]


def _registered(node, extra_200="Contact: <sip:201@127.0.0.1:5060>;expires=600\r\n"):
    """Drive the first cross-registration to 200 (challenge answered); returns the last REGISTER."""
    reg = [m for m, a in _sends(node.tick(0, WALL)) if a == PBX][0]
    chal = 'WWW-Authenticate: Digest realm="pbx.test", nonce="n1", algorithm=MD5, qop="auth"\r\n'
    reg2 = [m for m, a in _sends(node.receive(_reply(reg, 401, "Unauthorized", chal), PBX, 10, WALL)) if a == PBX][0]
    node.receive(_reply(reg2, 200, "OK", extra_200), PBX, 20, WALL)
    return reg2


def _pbx_registers(actions):
    return [m for m, a in _sends(actions) if a == PBX and m.method == "REGISTER"]


def test_granted_interval_is_read_from_our_own_contact():
    # regression: the 200 lists every binding of the extension (alice's desk phone registered directly at the
    # PBX too); the first Contact's expires was taken, so the node refreshed far too late and lapsed at the PBX
    node, _, _, _ = _setup()
    _registered(node, "Contact: <sip:201@192.0.2.9:5060>;expires=3600\r\n"
                      "Contact: <sip:201@127.0.0.1:5060>;expires=60\r\n")
    assert _pbx_registers(node.tick(29000, WALL)) == []
    assert len(_pbx_registers(node.tick(31000, WALL))) == 1  # refreshed at half of *our* 60 s
    # Kamailio's form: one Contact header, a comma-separated list, ours last
    node, _, _, _ = _setup()
    _registered(node, "Contact: <sip:201@192.0.2.9:5060>;expires=3600, <sip:201@127.0.0.1:5060>;expires=120\r\n")
    assert _pbx_registers(node.tick(59000, WALL)) == []
    assert len(_pbx_registers(node.tick(61000, WALL))) == 1


def test_removed_pbx_account_takes_its_extension_down():
    # regression: after `user pbx --remove` the unregistration named the secure user ("alice@pbx.test") and
    # could not answer the PBX's challenge, so extension 201 stayed registered at the PBX pointing at the node
    node, _, acc, _ = _setup()
    _registered(node)
    acc.remove("alice@localhost")
    unreg = _pbx_registers(node.tick(5000, WALL))
    assert len(unreg) == 1 and unreg[0].get("To") == "<sip:201@pbx.test>" and unreg[0].get("Expires") == "0"
    chal = 'WWW-Authenticate: Digest realm="pbx.test", nonce="n2", algorithm=MD5, qop="auth"\r\n'
    again = _pbx_registers(node.receive(_reply(unreg[0], 401, "Unauthorized", chal), PBX, 5010, WALL))
    assert len(again) == 1 and again[0].get("Expires") == "0"
    _check_digest(again[0], "Authorization", "REGISTER", "sip:pbx.test")
    node.receive(_reply(again[0], 200, "OK"), PBX, 5020, WALL)
    assert _pbx_registers(node.tick(7000, WALL)) == []
    assert node.bridge.regs == {}


def test_changed_extension_moves_the_registration():
    # regression: a new extension for alice was registered under the old Call-ID and 201 was never removed
    node, _, acc, _ = _setup()
    _registered(node)
    acc.set("alice@localhost", "205", "pbxsecret", "pbx.test")
    unreg = _pbx_registers(node.tick(5000, WALL))
    assert [(m.get("To"), m.get("Expires")) for m in unreg] == [("<sip:201@pbx.test>", "0")]
    node.receive(_reply(unreg[0], 200, "OK"), PBX, 5010, WALL)
    node.tick(6000, WALL)  # the old registration is gone ...
    new = _pbx_registers(node.tick(7000, WALL))  # ... and the new extension is registered afresh
    assert [(m.get("To"), m.get("Expires")) for m in new] == [("<sip:205@pbx.test>", "600")]
    assert new[0].get("CSeq") == "1 REGISTER"  # a registration of its own (the test RNG repeats Call-IDs)
    assert new[0].get("Contact") == "<sip:205@127.0.0.1:5060>"


def test_interval_too_brief_retries_with_min_expires():
    # regression: a 423 (RFC 3261 §10.2.8) was treated as a failure and the same interval retried forever
    node, _, _, _ = _setup()
    reg = _pbx_registers(node.tick(0, WALL))[0]
    again = _pbx_registers(node.receive(_reply(reg, 423, "Interval Too Brief", "Min-Expires: 900\r\n"),
                                        PBX, 10, WALL))
    assert len(again) == 1 and again[0].get("Expires") == "900" and again[0].get("CSeq") == "2 REGISTER"
    # a second 423 that does not raise the bound ends the attempt (no loop)
    assert _pbx_registers(node.receive(_reply(again[0], 423, "Interval Too Brief", "Min-Expires: 900\r\n"),
                                       PBX, 20, WALL)) == []
    st = node.status(WALL)["pbx"][0]
    assert st["state"] == "failed" and "423" in st["reason"]


def test_wildcard_listen_advertises_a_real_address():
    """Listening on 0.0.0.0 must not put 0.0.0.0 into the PBX contact (or Via/Record-Route)."""
    cfg = config.load('{"domain": "node.lan", "advertise": "192.0.2.10", "listen": ["udp:0.0.0.0:5060"], '
                      '"pbx": {"address": "udp:127.0.0.1:5080", "domain": "pbx.test"}}')
    be = MemoryBackend()
    users = Users(be)
    users.load()
    users.add("alice@node.lan", "wonderland")
    acc = PbxAccounts(be)
    acc.load()
    acc.set("alice@node.lan", "201", "pbxsecret", "pbx.test")
    bindings = Bindings(be)
    bindings.update("sip:alice@node.lan", [Binding("sip:alice@10.0.0.5", WALL + 3600, 3600, "r1", 1, PHONE)], WALL)
    node = Node(cfg, users, bindings, _rand, Logger("error", print), b"s" * 32, ["0.0.0.0"], acc)
    node.set_listen([("udp", "0.0.0.0", 5060)])
    reg = [m for m, a in _sends(node.tick(0, WALL)) if a == PBX][0]
    assert reg.get("Contact") == "<sip:201@192.0.2.10:5060>"
    assert reg.get("Via").startswith("SIP/2.0/UDP 192.0.2.10:5060;")


def test_a_two_second_registration_reaches_the_pbx_before_the_periodic_check():
    """The bridge follows an accepted REGISTER at once: a short-lived binding cannot come and go unseen."""
    node, bindings, _, _ = _setup(registered=False)
    node.tick(0, WALL)  # the periodic check ran: nothing to do yet
    ha1 = ha1_hex("MD5", "alice", "localhost", "wonderland")
    req = ("REGISTER sip:localhost SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:40001;branch=z9hG4bKr%d;rport\r\n"
           "Max-Forwards: 70\r\nFrom: <sip:alice@localhost>;tag=a\r\nTo: <sip:alice@localhost>\r\n"
           "Call-ID: reg-1\r\nCSeq: %d REGISTER\r\nContact: <sip:alice@10.0.0.5:5062>;expires=2\r\n%s"
           "Content-Length: 0\r\n\r\n")
    chal = _sends(node.receive((req % (1, 1, "")).encode(), PHONE, 10, WALL))[0][0]
    nonce = [v for v in chal.get_all("WWW-Authenticate") if "MD5" in v][0].split('nonce="')[1].split('"')[0]
    r = response_hex("MD5", ha1, nonce, "00000001", "c", "auth", "REGISTER", "sip:localhost")
    auth = ('Authorization: Digest username="alice", realm="localhost", nonce="%s", uri="sip:localhost", '
            'response="%s", algorithm=MD5, qop=auth, nc=00000001, cnonce="c"\r\n' % (nonce, r))
    cfg_min = node.registrar.min_expires
    node.registrar.min_expires = 1
    sends = _sends(node.receive((req % (2, 2, auth)).encode(), PHONE, 20, WALL))
    node.registrar.min_expires = cfg_min
    assert [m.status for m, a in sends if a == PHONE] == [200]
    assert [m.method for m, a in sends if a == PBX] == ["REGISTER"]  # within the same step, not a second later
