"""Acceptance (issue 9): a real linphonec provisioned only by the web page's one-time link.

The node runs with its web page; the test does the first run and adds two people through the page (the same
forms a browser posts). Alice's linphonec gets nothing but `[misc] config-uri=<link>` plus local socket settings:
her account, proxy, digest HA1, mandatory ZRTP and GRUU-off all come from the lpconfig XML. She registers, calls
Bob (a linphonec configured by hand), both report a fully encrypted call with the same SAS, the page lists her
device and the live call with ZRTP on both legs, and the link fetched a second time gets 404. Bounded waits.
"""
import os
import sys
import time
import urllib.request
import urllib.error

import pytest

import nodeproc
import linphone
from webclient import WebClient, wait_web

ENCRYPTED = r"Call (\d+) is (fully|not fully) encrypted(?: and auth token is (\w+))?"
ADMIN = "a long admin password"

pytestmark = pytest.mark.skipif(not linphone.available(), reason="needs linphonec (linphone-cli)")

PROVISIONED_RC = """[sip]
sip_port={sip_port}
sip_tcp_port=0
sip_tls_port=0
bind_address={host}
use_ipv6=0
ipv6_migration_done=1
register_only_when_network_is_up=0

[net]
firewall_policy=0

[rtp]
bind_address={host}
audio_rtp_port={rtp_port}
video_rtp_port={video_port}

[video]
enabled=0
capture=0
display=0

[sound]
echocancellation=0

[storage]
uri={home}/linphone.db
call_logs_db_uri={home}/call-history.db
zrtp_secrets_db_uri={home}/zrtp-secrets.db

[misc]
uuid=
config-uri={config_uri}
"""


class ProvisionedLinphone(linphone.Linphone):
    """A linphonec whose rc file names only the provisioning link (no account, no encryption settings)."""

    def __init__(self, workdir, name, config_uri, sip_port, rtp_port):
        super().__init__(workdir, name, "?", "?", "?", ("127.0.0.1", 1), sip_port, rtp_port)
        self.params["config_uri"] = config_uri

    def start(self):
        saved = linphone.RC_TEMPLATE
        linphone.RC_TEMPLATE = PROVISIONED_RC
        try:
            return super().start()
        finally:
            linphone.RC_TEMPLATE = saved


def _fetch(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_linphone_provisioned_by_link_registers_and_calls_with_zrtp(tmp_path):
    tmp = str(tmp_path)
    web_port = nodeproc.free_port("tcp")
    node = nodeproc.Node(tmp, config={"web": "127.0.0.1:%d" % web_port, "aliases": ["127.0.0.1"]},
                         transports=("udp",))
    phones = []
    try:
        node.start()
        wait_web(node)
        web = WebClient("127.0.0.1", web_port)
        web.setup_and_login(ADMIN, "localhost")
        assert web.post("/add", [("name", "alice"), ("password", "")]) == 200, web.text[-400:]
        web.get("/")
        assert web.post("/add", [("name", "bob"), ("password", "bob-secret-1")]) == 200
        link = web.provisioning_link("alice@localhost")
        assert link.startswith("http://127.0.0.1:%d/p/" % web_port)
        assert link not in node.output()  # the token is never logged
        alice = ProvisionedLinphone(tmp, "alice", link, nodeproc.free_port(), nodeproc.free_port_run(4))
        bob = linphone.Linphone(tmp, "bob", "bob", "bob-secret-1", "localhost", node.udp, nodeproc.free_port(), nodeproc.free_port_run(4))
        phones = [alice, bob]
        alice.start()
        bob.start()
        assert alice.wait_registered(), _explain(node, phones)
        assert bob.wait_registered(), _explain(node, phones)
        assert alice.wait_log(r"GET /p/[0-9a-f]{32} HTTP", 1) is not None  # she fetched the link
        # the link worked once: a second fetch gets nothing
        status, body = _fetch(link)
        assert status == 404 and b"sip:" not in body
        for p in phones:
            p.command("soundcard use files")
        alice.command("call sip:bob@localhost")
        ma = alice.wait_out(ENCRYPTED, linphone.CALL_S)
        mb = bob.wait_out(ENCRYPTED, 20)
        assert ma and mb, _explain(node, phones)
        assert ma.group(2) == "fully" and mb.group(2) == "fully", _explain(node, phones)
        assert ma.group(3) == mb.group(3)  # the same SAS on both phones
        # the page shows alice's device and the live call with ZRTP advertised on both legs
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            web.get("/")
            if 'id="calls"' in web.text and "alice@localhost" in web.text.split('id="calls"')[1]:
                break
            time.sleep(0.2)
        people = web.text.split('id="people"')[1].split("</table>")[0]
        alice_row = people.split("alice@localhost")[1].split("</tr>")[0]
        assert "udp:127.0.0.1:%d" % alice.sip_port in alice_row, people
        calls = web.text.split('id="calls"')[1].split("</table>")[0]
        assert "alice@localhost" in calls and "bob@localhost" in calls and ">yes<" in calls, calls
        alice.command("terminate")
        assert alice.wait_out(r"Call \d+ with sip:bob@localhost ended", 20), _explain(node, phones)
    finally:
        for p in phones:
            p.stop()
        node.stop()
    # linphonec saved what the XML set: the account and mandatory ZRTP came from the link alone
    with open(alice.rc) as f:
        rc = f.read()
    for line in ("media_encryption=zrtp", "media_encryption_mandatory=1", "reg_identity=<sip:alice@localhost>",
                 "supported=replaces"):
        assert line in rc, rc
    assert "passwd=" not in rc and "ha1=" in rc


def _explain(node, phones):
    out = ["node output:\n" + node.output()[-3000:]]
    for p in phones:
        out.append("%s stdout:\n%s\n%s log tail:\n%s" % (p.name, p.output()[-1500:], p.name, p.log()[-4000:]))
    return "\n".join(out)
