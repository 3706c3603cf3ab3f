"""Run a benchmark's measuring code under the wasm MicroPython 1.27 of tools/mptest.py."""
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MPTEST = os.path.join(ROOT, "tools", "mptest.py")


def run(module, test_source, pattern, use_mpy, timeout_s):
    """Copy `module` (a path) beside a test file holding `test_source`, run it under MicroPython and return the
    match of regex `pattern` on its output; RuntimeError with the output when the run fails or prints none."""
    if not os.path.exists(MPTEST):
        raise RuntimeError("tools/mptest.py is missing")
    tmp = tempfile.mkdtemp(prefix="mw-bench-mp-")
    try:
        shutil.copy(module, os.path.join(tmp, os.path.basename(module)))
        test = os.path.join(tmp, "test_bench_mp.py")
        with open(test, "w") as f:
            f.write(test_source)
        argv = [sys.executable, MPTEST, "--timeout", str(timeout_s)] + (["--mpy"] if use_mpy else []) + [test]
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s + 60)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    m = re.search(pattern, r.stdout)
    if r.returncode != 0 or not m:
        raise RuntimeError("MicroPython run failed (exit %d):\n%s%s" % (r.returncode, r.stdout[-3000:],
                                                                        r.stderr[-1000:]))
    return m
