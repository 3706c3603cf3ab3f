"""`microwitch config check [FILE]` and `microwitch config show`: validate a node config."""
import json
import sys

from microwitch import config
from mwcli.state import add_state_arg, config_path


def register(sub):
    p = sub.add_parser("config", help="validate or show a node config")
    p.add_argument("action", choices=("check", "show"))
    p.add_argument("file", nargs="?", help="config file (default: STATE/config.json)")
    add_state_arg(p)
    p.set_defaults(func=run)


def run(args):
    path = config_path(args.state, args.file)
    try:
        with open(path) as f:
            cfg = config.load(f.read(), path)
    except OSError as e:
        print("microwitch: cannot read %s: %s" % (path, e.strerror), file=sys.stderr)
        return 2
    except config.ConfigError as e:
        print("microwitch: " + str(e), file=sys.stderr)
        return 2
    if args.action == "show":
        print(json.dumps(cfg, indent=2))
    else:
        print("%s: ok" % path)
    return 0
