"""`microwitch run`: start the node on this host (the same poll loop a device runs)."""
import json
import os
import signal
import sys

from microwitch import config
from microwitch.compat import random_bytes, wall_s, gc_settle
from microwitch.log import Logger
from microwitch.node.core import Node
from microwitch.adapter.poll_loop import PollLoop
from microwitch.store.files import FileBackend
from microwitch.store.users import Users
from microwitch.store.bindings import Bindings
from microwitch.store.pbx_accounts import PbxAccounts
from microwitch.web.calls import CallTable
from microwitch.web.nodeview import ErrorRing, snapshot
from mwcli.state import add_state_arg, load_config, fail, status_path

_STATUS_EVERY_S = 2
_VIEW_EVERY_S = 1  # how often the web page's snapshot of the node is refreshed


def register(sub):
    p = sub.add_parser("run", help="run the node (registrar, proxy, web page) in the foreground")
    add_state_arg(p)
    p.add_argument("--config", help="config file (default: STATE/config.json, created on first run)")
    p.set_defaults(func=run)


def _line(text):
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _build(cfg, args, log, calls):
    """The node and its poll loop for `cfg` (again after the web page's first run changed the domain)."""
    backend = FileBackend(args.state)
    users = Users(backend, read_only=True)
    users.load()
    bindings = Bindings(backend, max_aors=cfg["max_aors"], max_contacts_per_aor=cfg["max_contacts_per_aor"])
    restored = bindings.load(wall_s())
    listen = config.listen_addrs(cfg)
    accounts = PbxAccounts(backend, read_only=True)
    accounts.load()
    try:
        with open("/etc/resolv.conf") as f:
            resolv_conf = f.read()
    except OSError:
        resolv_conf = None
    node = Node(cfg, users, bindings, random_bytes, log, random_bytes(32), [h for _, h, _ in listen], accounts,
                resolv_conf)
    if calls is not None:
        node.observe = calls.observe_msg  # the web page's live-call view (read-only)
    try:
        loop = PollLoop(node, listen, log, cfg["max_tcp_connections"], cfg["max_tcp_per_source"],
                        cfg["tcp_idle_s"])
    except OSError as e:
        fail("cannot listen on %s: %s" % (", ".join(cfg["listen"]), e.strerror or e))
    node.set_listen(loop.bound)
    log.info("microwitch node for %s: %d users, %d bindings restored, state %s" %
             (cfg["domain"], len(users), restored, os.path.abspath(args.state)))
    if not len(users):
        log.warning("no users yet: add one with `tools/microwitch user add alice@%s`" % cfg["domain"])
    for b in loop.bound:
        _line("listening %s:%s:%d" % b)
    return node, loop


def run(args):
    cfg = load_config(args.state, args.config)
    errors = ErrorRing(_line, wall_s)
    log = Logger(cfg["log_level"], errors.write, cfg["log_format"] == "syslog")
    calls = CallTable() if cfg["web"] else None
    node, loop = _build(cfg, args, log, calls)
    gc_settle()
    view = [None]
    reload = [False]
    if cfg["web"]:
        try:
            from mwcli.web import start_web
        except ImportError as e:  # microdot missing: say so rather than run without the page asked for
            fail("config 'web' is set but the web page cannot load (%s): pip install -r requirements.txt" % e)
        udp = [(h, p) for proto, h, p in loop.bound if proto == "udp"] or [(h, p) for _, h, p in loop.bound]
        start_web(cfg, args, log, lambda: view[0], reload, udp[0])

    def stop(signum, frame):
        loop.running = False
        reload[0] = False
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    status_file = status_path(args.state)
    last = [None, 0, 0]

    def publish():
        now = wall_s()
        if calls is not None and now - last[2] >= _VIEW_EVERY_S:
            last[2] = now
            view[0] = snapshot(node, calls, errors, now)  # replaced whole: the web thread only reads it
        if now - last[1] < _STATUS_EVERY_S:
            return
        last[1] = now
        st = node.status(now)
        st["listen"] = ["%s:%s:%d" % b for b in loop.bound]
        st["pid"] = os.getpid()
        text = json.dumps(st, sort_keys=True)
        if text != last[0]:
            last[0] = text
            tmp = status_file + ".tmp"
            with open(tmp, "w") as f:
                f.write(text)
            os.replace(tmp, status_file)
    try:
        while True:
            while loop.running and not reload[0]:
                loop.step()
                publish()
            if not reload[0]:
                break
            # the web page's first run wrote a new domain: the same process serves it from now on
            reload[0] = False
            bound = loop.bound
            loop.close()
            cfg = load_config(args.state, args.config)
            cfg["listen"] = ["%s:%s:%d" % b for b in bound]  # the same sockets (a port 0 stays the port it got)
            node, loop = _build(cfg, args, log, calls)
            last[2] = 0
    finally:
        loop.close()
        try:
            os.remove(status_file)
        except OSError:
            pass
    log.info("stopped")
    return 0
