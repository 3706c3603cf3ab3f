"""Host-side CLI. Each subcommand lives in its own module with `register(subparsers)`."""
import argparse
import importlib

# module names under mwcli; each adds its own subparser(s)
COMMANDS = ("run", "user", "config_cmd", "bindings", "status", "zrtp_peer")


def main(argv):
    p = argparse.ArgumentParser(prog="microwitch", description="secure calling node and tools")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        try:
            mod = importlib.import_module("mwcli." + name)
        except ImportError as e:
            if e.name != "mwcli." + name:
                raise
            continue  # a subcommand not built yet
        mod.register(sub)
    args = p.parse_args(argv)
    try:
        return args.func(args) or 0
    except KeyboardInterrupt:
        return 130
