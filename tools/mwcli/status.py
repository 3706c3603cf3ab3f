"""`microwitch status`: what a running node reports (bindings, transactions, PBX bridge registrations)."""
import json
import os

from mwcli.state import add_state_arg, status_path


def register(sub):
    p = sub.add_parser("status", help="show a running node's status (incl. PBX registrations)")
    add_state_arg(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def run(args):
    path = status_path(args.state)
    try:
        with open(path) as f:
            st = json.load(f)
    except (OSError, ValueError):
        print("no running node for state %s" % os.path.abspath(args.state))
        return 1
    if args.json:
        print(json.dumps(st))
        return 0
    print("node pid %d listening on %s" % (st["pid"], ", ".join(st["listen"])))
    print("%d users, %d registered AoRs, %d server / %d client transactions" %
          (st["users"], st["bindings"], st["server_transactions"], st["client_transactions"]))
    for p in st["pbx"]:
        print("PBX %-28s ext %-8s %s%s" % (p["user"], p["extension"], p["state"],
                                           " (" + p["reason"] + ")" if p["reason"] else ""))
    return 0
