"""`microwitch deploy esp32 --port /dev/ttyUSB0`: put the ESP32 image on a board over USB with mpremote.

Builds build/esp32/ (tools/build_images.py), replaces the board's lib/microwitch and lib/microdot with it,
copies boot.py and main.py, installs /config.json only the first time (or when --config is given: the board's
own is kept otherwise), sets the Wi-Fi in /device.json when --wifi-ssid is given (keeping the rest of it),
copies the user journal from --state, resets the board and prints what it reports until its "free heap" line (main.py prints it once the node is listening).
"""
import getpass
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time

from mwcli.state import fail

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_BAUD = 115200
_HEAP_MARK = "free heap"
_STATE_FILES = ("users.journal", "pbx_accounts.journal")
# runs on the board before the copy: remove the packages the image brings (tolerating their absence), make
# sure lib/ exists
_PREPARE = """import os
def _rm(p):
    try:
        for e in os.ilistdir(p):
            if e[1] == 0x4000:
                _rm(p + '/' + e[0])
            else:
                os.remove(p + '/' + e[0])
        os.rmdir(p)
    except OSError:
        pass
_rm('/lib/microwitch')
_rm('/lib/microdot')
try:
    os.mkdir('/lib')
except OSError:
    pass
"""
# what the board already has: its /config.json (kept), and its /device.json (role, agent settings, the setup
# access point's password: kept when --wifi-ssid only changes the Wi-Fi)
_HAVE_CONFIG = """import os
try:
    os.stat('/config.json')
    print('HAVE')
except OSError:
    print('NONE')
try:
    with open('/device.json') as f:
        print('DEVICE ' + f.read().replace('\\n', ' '))
except OSError:
    pass
"""


def _board_device(probe_out):
    """The board's /device.json as a dict (from the probe's DEVICE line), {} if it has none or it is broken."""
    for line in probe_out.splitlines():
        if line.startswith("DEVICE "):
            try:
                d = json.loads(line[7:])
            except ValueError:
                return {}
            return d if isinstance(d, dict) else {}
    return {}


def register(sub):
    p = sub.add_parser("deploy", help="copy the board image onto a device (esp32: over USB with mpremote)")
    p.add_argument("board", choices=["esp32"], help="target board")
    p.add_argument("--port", required=True, help="serial port of the board, e.g. /dev/ttyUSB0")
    p.add_argument("--config", help="node config JSON to install as /config.json (default: keep the board's; "
                                    "board/esp32/config.json on first deploy)")
    p.add_argument("--wifi-ssid", help="Wi-Fi to join (the password is asked for, or read from stdin)")
    p.add_argument("--state", help="host state directory whose users.journal goes to the board's /state")
    p.add_argument("--timeout", type=float, default=40.0, help="seconds to wait for the board after reset")
    p.set_defaults(func=deploy)


def _mpremote(port, args, runner):
    cmd = [sys.executable, "-m", "mpremote", "connect", port] + args
    p = runner(cmd)
    if p.returncode != 0:
        text = ((p.stderr or "") + (p.stdout or "")).strip().splitlines()
        fail("mpremote %s failed on %s: %s" % (args[0], port, text[-1] if text else "exit status %d" % p.returncode))
    return p.stdout or ""


def _run(cmd):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=os.path.join(_ROOT, "build", "esp32"))


def _open_serial(port):
    import serial  # pyserial, installed with mpremote
    return serial.Serial(port, _BAUD, timeout=0.5)


def _wifi_password():
    if sys.stdin.isatty():
        return getpass.getpass("Wi-Fi password: ")
    return sys.stdin.readline().rstrip("\r\n")


def watch_boot(port, timeout, open_serial=_open_serial, clock=time.monotonic, out=print):
    """Print the board's output after reset until its free-heap line; returns the free heap in bytes."""
    deadline = clock() + timeout
    ser = None
    while ser is None:  # a board with native USB re-enumerates after reset: retry opening for a while
        try:
            ser = open_serial(port)
        except OSError:
            if clock() > deadline:
                fail("cannot open %s after the reset" % port)
            time.sleep(0.5)
    seen = []
    buf = b""
    try:
        while clock() < deadline:
            buf += ser.read(256)
            while b"\n" in buf:
                raw, _, buf = buf.partition(b"\n")
                line = raw.decode("utf-8", "replace").rstrip("\r")
                seen.append(line)
                out("board: " + line)
                if _HEAP_MARK in line:
                    for word in line.split():
                        if word.isdigit():
                            return int(word)
    finally:
        ser.close()
    fail("the board did not report its free heap within %d s%s" % (
        timeout, "; last output: " + " | ".join(seen[-5:]) if seen else " (no output at all)"))


def deploy(args, runner=_run, open_serial=_open_serial):
    if not os.path.exists(args.port):
        fail("no board at %s: nothing is attached there (plug the ESP32 in; `mpremote devs` lists serial ports)"
             % args.port)
    if importlib.util.find_spec("mpremote") is None:
        fail("mpremote is not installed for %s: run ./build.sh setup (it installs mpremote into .venv)"
             % sys.executable)
    if args.config:
        from microwitch import config
        try:
            with open(args.config) as f:
                d = json.load(f)
            d.setdefault("listen", ["udp:192.0.2.1:5060"])  # main.py fills in the board's address
            d.setdefault("domain", "192.0.2.1")
            config.validate(d, args.config)
        except (OSError, ValueError) as e:
            fail("cannot use %s: %s" % (args.config, e))
        except config.ConfigError as e:
            fail(str(e))
    state_files = []
    if args.state:
        state_files = [n for n in _STATE_FILES if os.path.exists(os.path.join(args.state, n))]
        if "users.journal" not in state_files:
            fail("no users.journal in %s (add users first: tools/microwitch user add … --state %s)"
                 % (args.state, args.state))
    sys.path.insert(0, os.path.join(_ROOT, "tools"))
    import build_images
    try:
        report = build_images.build_board("esp32", quiet=True)
    except build_images.BuildError as e:
        fail("build failed: %s" % e)
    image = os.path.join(_ROOT, "build", "esp32")
    print("deploying %d files (%d bytes) to %s" % (len(report), sum(r[1] for r in report), args.port))

    have = _mpremote(args.port, ["exec", _HAVE_CONFIG], runner)
    # the old package goes first, so no module the new image dropped stays importable on the board
    steps = ["exec", _PREPARE, "+", "fs", "cp", "-r", "lib/microwitch", ":lib/",
             "+", "fs", "cp", "-r", "lib/microdot", ":lib/",
             "+", "fs", "cp", "boot.py", ":boot.py", "+", "fs", "cp", "main.py", ":main.py"]
    if args.config:
        steps += ["+", "fs", "cp", os.path.abspath(args.config), ":config.json"]
    elif "NONE" in have.splitlines():
        steps += ["+", "fs", "cp", "config.json", ":config.json"]
    tmp = None
    if args.wifi_ssid:
        tmp = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
        dev = _board_device(have)
        dev["wifi"] = {"ssid": args.wifi_ssid, "password": _wifi_password()}
        dev.setdefault("role", "node")
        json.dump(dev, tmp)
        tmp.close()
        steps += ["+", "fs", "cp", tmp.name, ":device.json"]
    if state_files:
        steps += ["+", "exec", "import os\ntry:\n os.mkdir('/state')\nexcept OSError:\n pass\n"]
        for n in state_files:
            steps += ["+", "fs", "cp", os.path.join(os.path.abspath(args.state), n), ":state/" + n]
    try:
        _mpremote(args.port, steps, runner)
    finally:
        if tmp is not None:
            os.remove(tmp.name)
    _mpremote(args.port, ["reset"], runner)
    heap = watch_boot(args.port, args.timeout, open_serial)
    print("deployed: the node runs on %s with %d bytes of heap free (image %s)" % (args.port, heap, image))
    return 0
