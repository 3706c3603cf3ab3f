"""Run a probe, the text of a test module written on the fly, under wasm MicroPython with tools/mptest.py."""
import os
import shutil
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(tmp_path, name, text, microdot=False, timeout=120):
    """CompletedProcess of mptest over `text` saved as test_NAME_probe.py in tmp_path. microdot=True puts the
    pinned pip package's microdot.py and the portable in-memory HTTP stream (_http_stream.py) beside it."""
    if not os.path.exists(os.path.join(REPO, "tools", "mp", "node_modules")):
        pytest.skip("wasm MicroPython not installed (./build.sh setup)")
    if microdot:
        try:
            import microdot as md
        except ImportError:
            pytest.skip("microdot not installed (pip install -r requirements.txt)")
        shutil.copyfile(os.path.join(os.path.dirname(md.__file__), "microdot.py"), tmp_path / "microdot.py")
        shutil.copyfile(os.path.join(REPO, "tests_host", "portable", "_http_stream.py"), tmp_path / "_http_stream.py")
    probe = tmp_path / ("test_%s_probe.py" % name)
    probe.write_text(text)
    return subprocess.run([sys.executable, os.path.join(REPO, "tools", "mptest.py"), str(probe)],
                          capture_output=True, text=True, timeout=timeout, cwd=REPO)
