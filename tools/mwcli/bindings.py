"""`microwitch bindings`: who is registered, from where, until when (reads the state dir, node running or not).

Contacts are exact; for a running node `expires` is the stored upper bound (refreshes that only move the expiry
are not written to flash, see store/bindings.py)."""
import json
import os
import time

from microwitch.store.files import FileBackend
from microwitch.store.bindings import Bindings
from mwcli.state import add_state_arg, fail


def register(sub):
    p = sub.add_parser("bindings", help="show current registrations")
    add_state_arg(p)
    p.add_argument("--json", action="store_true", help="one JSON array (aor, contact, expires, source)")
    p.set_defaults(func=run)


def run(args):
    if not os.path.isdir(args.state):  # a mistyped --state must not look like a node without bindings
        fail("state directory %s does not exist (give the node's --state)" % args.state)
    now = int(time.time())
    b = Bindings(FileBackend(args.state), max_aors=10 ** 6, max_contacts_per_aor=100)
    b.load(now, repair=False)
    rows = []
    for aor in sorted(b.aors()):
        for bd in b.lookup(aor, now):
            rows.append({"aor": aor, "contact": bd.uri, "expires": bd.expires - now,
                         "source": "%s:%s:%d" % tuple(bd.source), "instance": bd.instance})
    if args.json:
        print(json.dumps(rows))
        return 0
    if not rows:
        print("no bindings")
    for r in rows:
        print("%-32s %-48s %5ds  from %s" % (r["aor"], r["contact"], r["expires"], r["source"]))
    return 0
