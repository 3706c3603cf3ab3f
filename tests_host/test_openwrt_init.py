"""OpenWrt glue on the host: the UCI -> JSON conversion (adapter/uci.py) and the procd init script
(board/openwrt/files/microwitch.init) run by /bin/sh with stub `uci`, `config_load`/`config_get` and
`procd_*` functions. The init script really runs the launcher (board/openwrt/files/microwitch-node), here on
CPython instead of the router's MicroPython, so the conversion it triggers is the real one.
"""
import json
import os
import subprocess
import sys

import pytest

from microwitch.adapter import uci

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FILES = os.path.join(REPO, "board", "openwrt", "files")
INIT = os.path.join(FILES, "microwitch.init")
LAUNCHER = os.path.join(FILES, "microwitch-node")

SHIPPED = """microwitch.main=microwitch
microwitch.main.enabled='1'
microwitch.main.state_dir='/etc/microwitch'
microwitch.main.log_level='info'
microwitch.main.max_aors='200'
microwitch.main.max_tcp_connections='64'
"""


def _uci_show_of_shipped_config():
    """What `uci show microwitch` prints for the shipped /etc/config/microwitch (options only; comments dropped)."""
    out = ["microwitch.main=microwitch"]
    with open(os.path.join(FILES, "microwitch.config")) as f:
        for line in f:
            parts = line.split(None, 2)
            if len(parts) == 3 and parts[0] == "option":
                out.append("microwitch.main.%s=%s" % (parts[1], parts[2].strip()))
    return "\n".join(out) + "\n"


# -- conversion --------------------------------------------------------------------------------------------

def test_shipped_config_serves_the_lan_out_of_the_box():
    assert _uci_show_of_shipped_config() == SHIPPED
    cfg = uci.convert(SHIPPED, "lan", "192.168.1.1")
    assert cfg["domain"] == "lan"
    assert cfg["listen"] == ["udp:192.168.1.1:5060", "tcp:192.168.1.1:5060"]
    assert "192.168.1.1" in cfg["aliases"]
    assert cfg["max_aors"] == 200 and cfg["max_tcp_connections"] == 64
    assert "enabled" not in cfg and "state_dir" not in cfg
    assert cfg["web"] == "192.168.1.1:8080"  # the page on the LAN, beside LuCI's port 80
    assert uci.convert(SHIPPED + "microwitch.main.web=''\n", "lan", "192.168.1.1")["web"] == ""  # page off


def test_lan_address_in_cidr_form_and_no_dns_domain():
    cfg = uci.convert(SHIPPED, "", "10.0.0.1/24 10.0.1.1/24")
    assert cfg["domain"] == "10.0.0.1"
    assert cfg["listen"][0] == "udp:10.0.0.1:5060"
    assert cfg["aliases"] == []  # the domain is already the address


def test_explicit_options_lists_pbx_and_short_dial():
    text = SHIPPED + """microwitch.main.domain='example.org'
microwitch.main.listen='udp:192.168.1.1:5060' 'tcp:[fd00::1]:5062'
microwitch.main.aliases='router.lan' 'sip.example.org'
microwitch.pbx=pbx
microwitch.pbx.address='udp:192.168.1.10:5060'
microwitch.pbx.domain='pbx.lan'
microwitch.pbx.expires='900'
microwitch.@short_dial[0]=short_dial
microwitch.@short_dial[0].number='11'
microwitch.@short_dial[0].user='alice'
"""
    cfg = uci.convert(text, "lan", "192.168.1.1")
    assert cfg["domain"] == "example.org"
    assert cfg["listen"] == ["udp:192.168.1.1:5060", "tcp:[fd00::1]:5062"]
    assert cfg["aliases"] == ["router.lan", "sip.example.org"]  # explicit listen: no LAN default added
    assert cfg["pbx"] == {"address": "udp:192.168.1.10:5060", "domain": "pbx.lan", "realm": "pbx.lan",
                          "expires": 900}
    assert cfg["short_dial"] == {"11": "alice"}


def test_quoted_values_as_uci_prints_them():
    words = uci._words("'a b' 'it'\\''s' plain", "x")
    assert words == ["a b", "it's", "plain"]


@pytest.mark.parametrize("line, option, text", [
    ("microwitch.main.max_aors='lots'", "microwitch.main.max_aors", "whole number"),
    ("microwitch.main.max_aors='0'", "microwitch.main.max_aors", "between 1 and"),
    ("microwitch.main.log_level='chatty'", "microwitch.main.log_level", "debug, info"),
    ("microwitch.main.listen='udp:192.168.1.1:99999'", "microwitch.main.listen", "0..65535"),
    ("microwitch.main.listen='sctp:192.168.1.1:5060'", "microwitch.main.listen", "udp:HOST:PORT"),
    ("microwitch.main.domain='bad domain!'", "microwitch.main.domain", "host name"),
    ("microwitch.main.min_expires='7200'", "microwitch.main.min_expires", "max_expires"),
    ("microwitch.main.colour='blue'", "microwitch.main.colour", "unknown option"),
    ("microwitch.main.max_aors='1' '2'", "microwitch.main.max_aors", "found a list"),
    ("microwitch.pbx=pbx\nmicrowitch.pbx.address='nowhere'", "microwitch.pbx.address", "udp:HOST:PORT"),
    ("microwitch.pbx=pbx\nmicrowitch.pbx.address='udp:1.2.3.4:5060'\nmicrowitch.pbx.domain='p.lan'\n"
     "microwitch.pbx.expires='5'", "microwitch.pbx.expires", "between 60"),
    ("microwitch.pbx=pbx\nmicrowitch.pbx.address='udp:1.2.3.4:5060'", "microwitch.pbx.domain", "required"),
    ("microwitch.x=short_dial\nmicrowitch.x.number='1'", "microwitch.x", "number and user"),
    ("microwitch.x=telephone", "microwitch.x", "unknown section type"),
    ("garbage", "garbage", "not a line"),
])
def test_bad_values_are_rejected_naming_the_uci_option(line, option, text):
    with pytest.raises(uci.UciError) as e:
        uci.convert(SHIPPED + line + "\n", "lan", "192.168.1.1")
    msg = str(e.value)
    assert msg.startswith(option + ":") or msg.startswith(option + " "), msg
    assert text in msg, msg


def test_no_lan_address_and_no_listen_names_what_to_set():
    with pytest.raises(uci.UciError) as e:
        uci.convert(SHIPPED, "lan", "")
    assert str(e.value).startswith("microwitch.main.listen:") and "network.lan.ipaddr" in str(e.value)


def test_launcher_uci2config_prints_json_or_one_error_line():
    env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "firmware"))
    ok = subprocess.run([sys.executable, LAUNCHER, "uci2config", "--lan-domain", "lan", "--lan-ip", "192.168.1.1"],
                        input=SHIPPED, capture_output=True, text=True, env=env, timeout=30)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["domain"] == "lan"
    bad = subprocess.run([sys.executable, LAUNCHER, "uci2config", "--lan-ip", "192.168.1.1"],
                         input=SHIPPED + "microwitch.main.nonce_ttl='-1'\n", capture_output=True, text=True,
                         env=env, timeout=30)
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.strip().startswith("microwitch: microwitch.main.nonce_ttl:")


# -- the procd init script -----------------------------------------------------------------------------

_HARNESS = r'''
set -u
# stubs for /lib/functions.sh and /lib/functions/procd.sh: options come from UCI_<section>_<option>
config_load() { echo "config_load $1" >>"$LOG"; }
config_get() { eval "_v=\${UCI_$2_$3-}"; [ -n "$_v" ] || _v="${4-}"; eval "$1=\$_v"; }
config_get_bool() {
    config_get "$@"
    eval "_b=\$$1"
    case "$_b" in 1|on|true|yes|enabled) eval "$1=1";; *) eval "$1=0";; esac
}
procd_open_instance() { echo "open_instance" >>"$LOG"; }
procd_set_param() { echo "set_param $*" >>"$LOG"; }
procd_close_instance() { echo "close_instance" >>"$LOG"; }
procd_add_reload_trigger() { echo "reload_trigger $*" >>"$LOG"; }
logger() { echo "logger $*" >>"$LOG"; }
. "$INIT"
start_service
rc=$?
service_triggers
exit $rc
'''


def _run_init(tmp_path, uci_show, enabled="1", lan_domain="lan", lan_ip="192.168.1.1"):
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    (tmp_path / "uci_show.txt").write_text(uci_show)
    stub = bindir / "uci"
    stub.write_text('#!/bin/sh\n'
                    'case "$*" in\n'
                    '  "-q show microwitch") cat "%s" ;;\n'
                    '  "-q get dhcp.@dnsmasq[0].domain") [ -n "%s" ] && echo "%s" ;;\n'
                    '  "-q get network.lan.ipaddr") [ -n "%s" ] && echo "%s" ;;\n'
                    '  *) echo "uci stub: unexpected: $*" >&2; exit 1 ;;\n'
                    'esac\n' % (tmp_path / "uci_show.txt", lan_domain, lan_domain, lan_ip, lan_ip))
    stub.chmod(0o755)
    log = tmp_path / "procd.log"
    if log.exists():
        log.unlink()
    run_cfg = tmp_path / "var" / "etc" / "microwitch.json"
    env = dict(os.environ, PATH="%s:%s" % (bindir, os.environ["PATH"]), LOG=str(log), INIT=INIT,
               MICROPYTHON=sys.executable, LAUNCHER=LAUNCHER, RUN_CONFIG=str(run_cfg),
               PYTHONPATH=os.path.join(REPO, "firmware"), UCI_main_enabled=enabled,
               UCI_main_state_dir=str(tmp_path / "state"))
    p = subprocess.run(["/bin/sh", "-c", _HARNESS], env=env, capture_output=True, text=True, timeout=60)
    lines = log.read_text().splitlines() if log.exists() else []
    return p, lines, run_cfg


def test_init_starts_node_under_procd_with_respawn(tmp_path):
    p, lines, run_cfg = _run_init(tmp_path, SHIPPED)
    assert p.returncode == 0, p.stderr
    assert lines[0] == "config_load microwitch"
    assert lines[1] == "open_instance" and "close_instance" in lines
    cmd = [l for l in lines if l.startswith("set_param command ")]
    assert cmd == ["set_param command %s %s run --config %s --state %s"
                   % (sys.executable, LAUNCHER, run_cfg, tmp_path / "state")]
    assert "set_param respawn 3600 5 5" in lines
    assert "set_param file /etc/config/microwitch" in lines
    assert "reload_trigger microwitch" in lines
    cfg = json.loads(run_cfg.read_text())
    assert cfg["domain"] == "lan" and cfg["listen"] == ["udp:192.168.1.1:5060", "tcp:192.168.1.1:5060"]
    assert (tmp_path / "state").is_dir()
    assert not os.path.exists(str(run_cfg) + ".tmp")


def test_init_bad_uci_value_refuses_to_start_and_says_which_option(tmp_path):
    p, lines, run_cfg = _run_init(tmp_path, SHIPPED + "microwitch.main.max_expires='soon'\n")
    assert p.returncode == 1
    assert "open_instance" not in lines
    assert "microwitch.main.max_expires: must be a whole number" in p.stderr
    assert any(l.startswith("logger -t microwitch not started") for l in lines)
    assert not run_cfg.exists()


def test_init_disabled_does_nothing(tmp_path):
    p, lines, run_cfg = _run_init(tmp_path, SHIPPED, enabled="0")
    assert p.returncode == 0
    assert "open_instance" not in lines and not run_cfg.exists()


def test_init_without_lan_domain_serves_the_lan_address(tmp_path):
    p, lines, run_cfg = _run_init(tmp_path, SHIPPED, lan_domain="", lan_ip="192.168.8.1/24")
    assert p.returncode == 0, p.stderr
    cfg = json.loads(run_cfg.read_text())
    assert cfg["domain"] == "192.168.8.1" and cfg["listen"][1] == "tcp:192.168.8.1:5060"


def test_launcher_runs_user_commands_on_the_state_dir(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "firmware"))
    state = str(tmp_path / "st")
    add = subprocess.run([sys.executable, LAUNCHER, "user", "add", "alice@lan", "pw", "--state", state],
                         capture_output=True, text=True, env=env, timeout=30)
    assert add.returncode == 0 and "added alice@lan" in add.stdout, add.stdout + add.stderr
    ls = subprocess.run([sys.executable, LAUNCHER, "user", "list", "--state", state], capture_output=True,
                        text=True, env=env, timeout=30)
    assert ls.stdout.split() == ["alice@lan"]
    bad = subprocess.run([sys.executable, LAUNCHER, "user", "add", "al ice@lan", "pw", "--state", state],
                         capture_output=True, text=True, env=env, timeout=30)
    assert bad.returncode == 2 and "user" in bad.stdout


UCI_FILE = """# microwitch
config microwitch 'main'
\toption enabled '1'
\toption domain 'lan'
\t# option domain 'example.org'
\toption log_level 'info'

config pbx 'pbx'
\toption domain 'pbx.lan'
"""


def test_set_option_replaces_the_option_in_its_section_only():
    out = uci.set_option(UCI_FILE, "main", "domain", "home.example.org")
    assert out.count("option domain 'home.example.org'") == 1
    assert "option domain 'lan'" not in out
    assert "\t# option domain 'example.org'" in out and "option domain 'pbx.lan'" in out  # comments, other sections
    assert out.replace("\toption domain 'home.example.org'\n", "").replace("\toption domain 'lan'\n", "") == \
        UCI_FILE.replace("\toption domain 'lan'\n", "")
    added = uci.set_option("config microwitch main\n\toption enabled 1\n", "main", "domain", "x.org")
    assert added == "config microwitch main\n\toption domain 'x.org'\n\toption enabled 1\n"
    with pytest.raises(uci.UciError) as e:
        uci.set_option("config pbx 'pbx'\n", "main", "domain", "x.org")
    assert str(e.value) == "microwitch.main: no such section"


def test_domain_saver_writes_uci_whole_and_keeps_it_on_error(tmp_path):
    path = tmp_path / "microwitch"
    path.write_text(UCI_FILE)
    assert uci.domain_saver(str(path))("home.example.org") is None
    assert "\toption domain 'home.example.org'" in path.read_text() and not (tmp_path / "microwitch.tmp").exists()
    bad = tmp_path / "other"
    bad.write_text("config pbx 'pbx'\n")
    err = uci.domain_saver(str(bad))("home.example.org")
    assert err.startswith("could not save %s: microwitch.main: no such section" % bad)
    assert bad.read_text() == "config pbx 'pbx'\n"
    assert "could not save" in uci.domain_saver(str(tmp_path / "missing"))("x.org")


_MP_PROBE = '''
def test_uci_under_micropython():
    from microwitch.adapter import uci
    text = %r
    cfg = uci.convert(text, "lan", "192.168.1.1/24")
    assert cfg["domain"] == "lan" and cfg["listen"][0] == "udp:192.168.1.1:5060", cfg
    assert uci._words("'a b' 'it'\\\\''s'", "x") == ["a b", "it's"]
    out, err = [], []
    assert uci.main(["--lan-ip", "192.168.1.1"], text + "microwitch.main.max_aors='0'\\n", out.append, err.append) == 2
    assert err[0].startswith("microwitch: microwitch.main.max_aors: must be between"), err
    with open("uci_probe", "w") as f:
        f.write("config microwitch 'main'\\n\\toption domain 'lan'\\n")
    assert uci.domain_saver("uci_probe")("home.example.org") is None
    with open("uci_probe") as f:
        assert f.read() == "config microwitch 'main'\\n\\toption domain 'home.example.org'\\n"
    print("UCI-MP-OK")
'''


@pytest.mark.skipif(not os.path.exists(os.path.join(REPO, "tools", "mp", "node_modules")), reason="wasm MicroPython missing")
def test_conversion_runs_on_micropython(tmp_path):
    """The converter runs on the router's MicroPython: check it in wasm MicroPython 1.27 from the .mpy build."""
    import shutil
    import build_images
    build_images.build_generic(quiet=True)
    probe = tmp_path / "probe_uci.py"
    probe.write_text(_MP_PROBE % SHIPPED)
    cfg = {"lib": build_images.OUT_ROOT, "ext": ".mpy", "tests": [[str(probe), "probe_uci", "probe_uci"]],
           "extras": [], "filter": ""}
    run_mjs = os.path.join(REPO, "tools", "mp", "run.mjs")
    p = subprocess.run([shutil.which("node"), run_mjs, json.dumps(cfg)], cwd=os.path.dirname(run_mjs),
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and "UCI-MP-OK" in p.stdout, p.stdout + p.stderr
