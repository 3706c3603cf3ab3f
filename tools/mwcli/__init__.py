"""Host-side CLI. Each subcommand lives in its own module with `register(subparsers)`."""
import argparse
import importlib

# module names under mwcli; each adds its own subparser(s)
COMMANDS = ("run", "user", "config_cmd", "bindings", "status", "zrtp_peer", "agent", "dns", "deploy")


def main(argv):
    p = argparse.ArgumentParser(prog="microwitch", description="secure calling node and tools")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        try:
            mod = importlib.import_module("mwcli." + name)
        except ImportError as e:
            if e.name == "mwcli." + name:
                continue  # a subcommand not built yet
            # one subsystem that cannot load must not take the others down; say why when it is used
            broken = sub.add_parser(name.replace("_", "-"), help="(unavailable: %s)" % e)
            broken.set_defaults(func=lambda args, e=e: _unavailable(args, e))
            continue
        mod.register(sub)
    args = p.parse_args(argv)
    try:
        return args.func(args) or 0
    except KeyboardInterrupt:
        return 130


def _unavailable(args, err):
    import sys
    print("microwitch %s: cannot load: %s" % (args.command, err), file=sys.stderr)
    return 2
