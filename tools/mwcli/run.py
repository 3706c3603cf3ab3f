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
from microwitch.adapter.device import sip_addr, json_domain_saver
from microwitch.web.nodeview import ErrorRing
from mwcli.state import add_state_arg, load_config, fail, status_path, config_path

_STATUS_EVERY_S = 2


def register(sub):
    p = sub.add_parser("run", help="run the node (registrar, proxy, web page) in the foreground")
    add_state_arg(p)
    p.add_argument("--config", help="config file (default: STATE/config.json, created on first run)")
    p.set_defaults(func=run)


def _line(text):
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _build(cfg, args, log):
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
    page = None
    if cfg["web"]:
        try:
            from microwitch.adapter import webpage
        except ImportError as e:  # microdot missing: say so rather than run without the page asked for
            fail("config 'web' is set but the web page cannot load (%s): pip install -r requirements.txt" % e)
    node, loop = _build(cfg, args, log)
    if cfg["web"]:
        page = webpage.Page(cfg, args.state, sip_addr(loop.bound),
                            json_domain_saver(config_path(args.state, args.config)))
        node.observe = page.calls.observe_msg  # the page's live-call view (read-only)
    gc_settle()

    def stop(signum, frame):
        loop_now[0].running = False
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    status_file = status_path(args.state)
    last = [None, 0]
    loop_now = [loop]

    def publish(loop):
        loop_now[0] = loop
        now = wall_s()
        if now - last[1] < _STATUS_EVERY_S:
            return
        last[1] = now
        st = loop.core.status(now)
        st["listen"] = ["%s:%s:%d" % b for b in loop.bound]
        st["pid"] = os.getpid()
        text = json.dumps(st, sort_keys=True)
        if text != last[0]:
            last[0] = text
            tmp = status_file + ".tmp"
            with open(tmp, "w") as f:
                f.write(text)
            os.replace(tmp, status_file)

    def rebuild(old, new_cfg):
        new_cfg["listen"] = ["%s:%s:%d" % b for b in old.bound]  # the same sockets (a port 0 keeps its port)
        old.close()
        n, new = _build(new_cfg, args, log)
        n.observe = page.calls.observe_msg
        return new

    def ready():
        print("web http://%s:%d/" % (page.host, page.port), flush=True)
        if not page.admin.is_set():
            log.info("web page: first run: open http://%s:%d/ to set the admin password" % (page.host, page.port))
    try:
        if page is None:
            while loop.running:
                loop.step()
                publish(loop)
        else:
            try:
                webpage.serve(page, loop, errors, publish, rebuild, ready)
            except OSError as e:
                fail("web page: cannot listen on %s: %s" % (cfg["web"], e))
    finally:
        loop_now[0].close()
        try:
            os.remove(status_file)
        except OSError:
            pass
    log.info("stopped")
    return 0
