# Runs inside wasm MicroPython (loaded by run.mjs); not meant for CPython.
# Imports each test module, calls every module-level test_* function and prints
# "PASS label" / "FAIL label" plus the traceback. Lines starting with TAG are for
# tools/mptest.py only (progress and the final tally); it hides them.
import gc
import io
import sys
import time

TAG = "\x01MPTEST "
_SLOW_MS = 500  # tests slower than this get their duration printed


def _tag(*words):
    print(TAG + " ".join(words))


def _traceback(exc):
    buf = io.StringIO()
    sys.print_exception(exc, buf)
    for line in buf.getvalue().rstrip("\n").split("\n"):
        if "mptest_driver.py" not in line:  # the driver's own frame is noise
            print("    " + line)


def _is_awaitable(r):
    # an `async def` test returns a generator on MicroPython
    return r is not None and hasattr(r, "send") and hasattr(r, "throw")


async def main(modules, kfilter):
    """modules: list of [module name, label]; kfilter: substring a test label must contain ('' = all)."""
    passed = 0
    failed = 0
    for modname, label in modules:
        _tag("MODULE", label)
        try:
            mod = __import__(modname)
        except KeyboardInterrupt:
            raise
        except BaseException as e:  # SystemExit and friends in a test module are failures too
            failed += 1
            print("FAIL %s (import error)" % label)
            _traceback(e)
            continue
        names = []
        for n in dir(mod):
            if n.startswith("test_") and callable(getattr(mod, n)):
                names.append(n)
        names.sort()
        for n in names:
            full = label + "::" + n
            if kfilter and kfilter not in full:
                continue
            _tag("START", full)
            t0 = time.ticks_ms()
            try:
                r = getattr(mod, n)()
                if _is_awaitable(r):
                    await r
            except KeyboardInterrupt:
                raise
            except BaseException as e:
                failed += 1
                print("FAIL " + full)
                _traceback(e)
            else:
                passed += 1
                dt = time.ticks_diff(time.ticks_ms(), t0)
                if dt >= _SLOW_MS:
                    print("PASS %s (%d ms)" % (full, dt))
                else:
                    print("PASS " + full)
            gc.collect()
        # drop the module so the next file starts from a clean heap
        del mod
        try:
            del sys.modules[modname]
        except KeyError:
            pass
        gc.collect()
    _tag("DONE", str(passed), str(failed))
    return failed
