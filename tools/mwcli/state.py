"""The state directory shared by `microwitch run` and the other subcommands.

Layout: `config.json` (created with defaults on first use), `users.journal`, `bindings.journal`.
Default: `$MICROWITCH_STATE` or `.state/` in the repository (what `./build.sh run` uses).
"""
import json
import os
import sys

from microwitch import config

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_STATE = os.environ.get("MICROWITCH_STATE") or os.path.join(_ROOT, ".state")
DEFAULT_CONFIG = os.path.join(_ROOT, "board", "unix", "config.json")


def add_state_arg(p):
    p.add_argument("--state", default=DEFAULT_STATE, help="state directory (default: %(default)s)")


def fail(text):
    print("microwitch: " + text, file=sys.stderr)
    sys.exit(2)


def config_path(state, explicit=None):
    return explicit or os.path.join(state, "config.json")


def load_config(state, explicit=None, create=True):
    """Read and validate the config; on first use copy the board default into the state dir."""
    path = config_path(state, explicit)
    if not os.path.exists(path):
        if explicit or not create:
            fail("config file %s does not exist" % path)
        os.makedirs(state, exist_ok=True)
        with open(DEFAULT_CONFIG) as f:
            text = f.read()
        with open(path, "w") as f:
            f.write(text)
        print("created default config %s" % path, file=sys.stderr)
    try:
        with open(path) as f:
            return config.load(f.read(), path)
    except config.ConfigError as e:
        fail(str(e))
    except OSError as e:
        fail("cannot read %s: %s" % (path, e))


def write_json(obj):
    print(json.dumps(obj))


def status_path(state):
    """Where a running node publishes its status: RAM-backed /tmp (never the flash the state dir is on),
    one file per state directory."""
    import hashlib
    tag = hashlib.sha256(os.path.abspath(state).encode()).hexdigest()[:12]
    return os.path.join(os.environ.get("MICROWITCH_RUN") or "/tmp", "microwitch-status-%s.json" % tag)
