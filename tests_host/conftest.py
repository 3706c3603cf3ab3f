"""pytest setup for tests_host/.

Puts firmware/ (the microwitch package), tools/, tests_host/ and tests_host/portable/ on sys.path,
so tests import `microwitch.…`, host tools, host helpers (`nodeproc`) and portable helper modules
(e.g. `import _vectors`) the same way tools/mptest.py makes them importable under MicroPython.

Portable and CPython-only tests may share a file name (portable/test_sip.py, test_sip.py): run
pytest with --import-mode=importlib (./build.sh test does) so both are collected.
"""
import os
import sys

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for _p in (os.path.join(_ROOT, "tests_host"), os.path.join(_ROOT, "tests_host", "portable"),
           os.path.join(_ROOT, "tools"), os.path.join(_ROOT, "firmware")):
    if _p not in sys.path:
        sys.path.insert(0, _p)


import pytest  # noqa: E402


@pytest.fixture
def fat_rename(monkeypatch):
    """fat_rename() is a context manager inside which os.rename refuses to replace an existing file, as on
    FAT (a device's flash), so the store's remove-then-rename path runs."""
    import contextlib
    real = os.rename

    def refusing(src, dst):
        if os.path.exists(dst):
            raise OSError(17, "File exists")
        real(src, dst)

    @contextlib.contextmanager
    def on():
        monkeypatch.setattr(os, "rename", refusing)
        try:
            yield
        finally:
            monkeypatch.setattr(os, "rename", real)
    return on


@pytest.fixture(autouse=True)
def _no_leftover_phones():
    """A test that fails between starting a linphonec and stopping it must not leave it loading the machine."""
    yield
    linphone = sys.modules.get("linphone")
    if linphone is not None and getattr(linphone, "RUNNING", None):
        linphone.stop_leftovers()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under `./build.sh test` (MICROWITCH_NO_SKIP=1) a skip is a failure: set-up installed sipp, Kamailio,
    linphonec, tshark, bzrtp, libsrtp, dnsmasq and wasm MicroPython, so a skip means a check did not run."""
    outcome = yield
    rep = outcome.get_result()
    if rep.skipped and os.environ.get("MICROWITCH_NO_SKIP") and not hasattr(rep, "wasxfail"):
        reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
        rep.outcome = "failed"
        rep.longrepr = "skipped under ./build.sh test, where nothing may skip: %s" % reason
