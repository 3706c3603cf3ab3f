"""`microwitch user add|remove|list|import`: manage the node's users (stored as digest HA1 only)."""
import getpass
import sys

from microwitch.store import ValidationError, StoreFull
from microwitch.store.files import FileBackend
from microwitch.store.users import Users
from microwitch.store.pbx_accounts import PbxAccounts
from mwcli.state import add_state_arg, load_config, fail


def register(sub):
    p = sub.add_parser("user", help="add, remove, list or import users")
    us = p.add_subparsers(dest="action", metavar="ACTION")
    us.required = True
    a = us.add_parser("add", help="add a user (or change a password)")
    a.add_argument("address", help="user@domain")
    a.add_argument("--password-stdin", action="store_true", help="read the password from stdin (scripts)")
    r = us.add_parser("remove", help="remove a user")
    r.add_argument("address")
    us.add_parser("list", help="list users")
    i = us.add_parser("import", help="add users from a file of 'user;password;domain' lines")
    i.add_argument("file")
    x = us.add_parser("pbx", help="give a user an insecure identity (extension) on the PBX beside the node")
    x.add_argument("address", help="user@domain (must exist)")
    x.add_argument("extension", nargs="?", help="PBX extension, e.g. 201 (omit with --remove)")
    x.add_argument("--password-stdin", action="store_true", help="read the PBX password from stdin")
    x.add_argument("--remove", action="store_true", help="remove the user's PBX identity")
    for q in (a, r, us.choices["list"], i, x):
        add_state_arg(q)
        q.set_defaults(func=run)


def _password(args):
    if args.password_stdin:
        pw = sys.stdin.readline().rstrip("\r\n")
    else:
        pw = getpass.getpass("password for %s: " % args.address)
        if getpass.getpass("again: ") != pw:
            fail("the two passwords differ; nothing changed")
    return pw


def run(args):
    cfg = load_config(args.state)
    backend = FileBackend(args.state)
    users = Users(backend)
    users.load()
    try:
        if args.action == "list":
            for addr in users.addresses():
                print(addr)
        elif args.action == "add":
            addr = users.add(args.address, _password(args), realm=cfg["realm"])
            print("added %s" % addr)
            served = [cfg["domain"]] + list(cfg["aliases"])
            if addr.rsplit("@", 1)[1] not in served:
                print("microwitch: warning: this node serves %s, so %s cannot register until its domain is "
                      "served here (config 'domain' or 'aliases')" % (", ".join(served), addr), file=sys.stderr)
        elif args.action == "remove":
            if not users.remove(args.address):
                fail("no user %s; nothing changed" % args.address)
            acc, be = _pbx(args.state)
            acc.remove(args.address)  # and her PBX identity, if any
            be.sync()
            print("removed %s" % args.address)
        elif args.action == "pbx":
            _set_pbx(args, cfg, users)
        else:
            n = _import(users, args.file, cfg["realm"])
            print("imported %d users" % n)
    except ValidationError as e:
        fail("%s: %s" % (getattr(args, "address", args.action), e))
    except StoreFull as e:
        fail(str(e) + "; nothing changed")
    finally:
        backend.sync()  # one fsync for the whole command (an import of thousands of users included)
    return 0


def _pbx(state):
    backend = FileBackend(state)
    acc = PbxAccounts(backend)
    acc.load()
    return acc, backend


def _set_pbx(args, cfg, users):
    if not cfg["pbx"]:
        fail("config has no 'pbx' section (address, domain): set it first")
    acc, backend = _pbx(args.state)
    try:
        _change_pbx(args, cfg, users, acc)
    finally:
        backend.sync()


def _change_pbx(args, cfg, users, acc):
    if args.remove:
        if not acc.remove(args.address):
            fail("%s has no PBX identity; nothing changed" % args.address)
        print("removed the PBX identity of %s" % args.address)
        return
    if users.get(args.address) is None:
        fail("no user %s: add the user first" % args.address)
    if not args.extension:
        fail("extension: give the PBX extension, e.g. 201")
    args.address = acc.set(args.address, args.extension, _password(args), cfg["pbx"]["realm"])
    print("%s is extension %s on the PBX %s" % (args.address, args.extension, cfg["pbx"]["domain"]))


def _import(users, path, realm):
    try:
        f = open(path)
    except OSError as e:
        fail("cannot read %s: %s" % (path, e.strerror))
    rows = []
    with f:
        for no, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#") or line in ("SEQUENTIAL", "RANDOM", "USER"):
                continue
            parts = line.split(";")
            if len(parts) != 3:
                fail("%s:%d: expected 'user;password;domain'" % (path, no))
            rows.append((no, parts[0] + "@" + parts[2], parts[1]))
    for no, addr, pw in rows:
        try:
            users.add(addr, pw, realm=realm)
        except (ValidationError, StoreFull) as e:
            fail("%s:%d: %s (users before this line were imported)" % (path, no, e))
    return len(rows)
