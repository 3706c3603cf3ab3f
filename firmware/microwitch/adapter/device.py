"""The device entry point: build the node from a config file and a state directory, run it on the poll loop.

Used by every board that runs MicroPython (ESP32 main.py, the OpenWrt launcher) and usable on CPython:

    device.main(["run", "--config", "/etc/microwitch.json", "--state", "/var/lib/microwitch"])
    device.main(["user", "add", "alice@lan", "--state", DIR])   # password from stdin (or as the next word)
    device.main(["user", "remove", "alice@lan", "--state", DIR]); device.main(["user", "list", "--state", DIR])

The state directory holds the journals (users, bindings, PBX accounts; store/files.py is the only code that
touches them). `start()` does the work without parsing arguments, so a board script or a test can pass its
own network (`net`), clocks and logger.
"""
import json
import os

from microwitch import config
from microwitch.compat import random_bytes, wall_s, fsync
from microwitch.log import Logger
from microwitch.node.core import Node
from microwitch.adapter.poll_loop import PollLoop
from microwitch.store.files import FileBackend
from microwitch.store.users import Users
from microwitch.store.bindings import Bindings
from microwitch.store.pbx_accounts import PbxAccounts

_SECRET_BYTES = 32
_USAGE = ("usage: run --config FILE --state DIR | user add USER@DOMAIN [PASSWORD] --state DIR | "
          "user remove USER@DOMAIN --state DIR | user list --state DIR")


class UsageError(Exception):
    pass


def read_config(path):
    """The validated node config from a JSON file; config.ConfigError naming the file (and the field)."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError as e:  # MicroPython's OSError text has no file name: say which file
        raise config.ConfigError("%s: cannot read (%s)" % (path, e))
    return config.load(text, path)


def json_domain_saver(path):
    """save_domain for a JSON config file at `path`: domain -> None or an error text for the page. The file is
    validated with the new domain first and replaced whole, never half-written."""
    def save(domain):
        try:
            try:
                with open(path) as f:
                    raw = json.load(f)
            except OSError:  # no file yet (an ESP32 runs on defaults): it holds the domain from now on
                raw = {}
            raw["domain"] = domain
            config.validate(raw, path)
            tmp = path + ".tmp"
            with open(tmp, "w") as f:
                # one key per line, sorted (MicroPython's json has no indent, and its dicts no order)
                f.write("{\n" + ",\n".join("  %s: %s" % (json.dumps(k), json.dumps(raw[k])) for k in sorted(raw))
                        + "\n}\n")
                fsync(f)
            os.rename(tmp, path)  # atomic on POSIX and littlefs, and MicroPython has no os.replace
        except (OSError, ValueError, config.ConfigError) as e:
            return "could not save the config: %s" % e
        return None
    return save


def _resolv_conf():
    """/etc/resolv.conf's text where there is one (OpenWrt, a Pi), else None (an ESP32: DHCP or the config)."""
    try:
        with open("/etc/resolv.conf") as f:
            return f.read()
    except OSError:
        return None


def start(cfg, state, log, net=None, ticks=None, wall=None, rand=random_bytes, observe=None, dhcp_dns=None):
    """Open the stores in `state`, build the node, bind its sockets. Returns (node, loop); OSError if a
    listen address cannot be bound. `observe(msg, wall)` sees every message the node parses (the page's
    live calls); `dhcp_dns` lists the DNS servers the board's DHCP lease gave (used when neither the config
    nor /etc/resolv.conf names one)."""
    backend = FileBackend(state)
    users = Users(backend, read_only=True)
    users.load()
    bindings = Bindings(backend, max_aors=cfg["max_aors"], max_contacts_per_aor=cfg["max_contacts_per_aor"])
    restored = bindings.load((wall or wall_s)())
    accounts = PbxAccounts(backend, read_only=True)
    accounts.load()
    listen = config.listen_addrs(cfg)
    node = Node(cfg, users, bindings, rand, log, rand(_SECRET_BYTES), [h for _, h, _ in listen], accounts,
                _resolv_conf(), dhcp_dns)
    if observe is not None:
        node.observe = observe
    loop = PollLoop(node, listen, log, cfg["max_tcp_connections"], cfg["max_tcp_per_source"], cfg["tcp_idle_s"],
                    net, ticks, wall)
    node.set_listen(loop.bound)
    log.info("microwitch node for %s: %d users, %d bindings restored, state %s" %
             (cfg["domain"], len(users), restored, state))
    if not len(users):
        log.warning("no users yet: add one with `user add alice@%s PASSWORD`" % cfg["domain"])
    for b in loop.bound:
        log.info("listening %s:%s:%d" % b)
    return node, loop


def sip_addr(bound):
    """(host, port) phones use for SIP: the first UDP listener, else the first of any kind."""
    udp = [(h, p) for proto, h, p in bound if proto == "udp"]
    return udp[0] if udp else (bound[0][1], bound[0][2])


def run(cfg, state, write=print, save_domain=None, started=None, dhcp_dns=None):
    """Start the node and serve until its loop stops (a device's main loop).

    With `web` in the config the page runs beside the loop (adapter/webpage.py); its first run may store a new
    domain with `save_domain(domain)` (None or an error text; see json_domain_saver), and the node is
    then rebuilt on the same sockets. `started(node, loop)` runs once the node's sockets are bound; `dhcp_dns`
    as for start()."""
    if not cfg["web"]:
        log = Logger(cfg["log_level"], write, cfg["log_format"] == "syslog")
        node, loop = start(cfg, state, log, dhcp_dns=dhcp_dns)
        if started is not None:
            started(node, loop)
        try:
            loop.run()
        finally:
            loop.close()
        return
    from microwitch.adapter import webpage  # only a node with a page pays for its code
    from microwitch.web.nodeview import ErrorRing
    errors = ErrorRing(write, wall_s)
    log = Logger(cfg["log_level"], errors.write, cfg["log_format"] == "syslog")
    node, loop = start(cfg, state, log, dhcp_dns=dhcp_dns)
    page = webpage.Page(cfg, state, sip_addr(loop.bound), save_domain)
    node.observe = page.calls.observe_msg
    if started is not None:
        started(node, loop)

    def rebuild(old, new_cfg):
        new_cfg["listen"] = ["%s:%s:%d" % b for b in old.bound]  # the same sockets (a port 0 keeps its port)
        old.close()
        return start(new_cfg, state, log, observe=page.calls.observe_msg, dhcp_dns=dhcp_dns)[1]

    def ready():
        log.info("web page http://%s:%d/%s" % (page.host, page.port,
                                               "" if page.admin.is_set() else " (first run: set the password)"))
    webpage.serve(page, loop, errors, rebuild=rebuild, on_ready=ready)


def _options(args, names):
    """Split `args` into positionals and the values of the --NAME options in `names`."""
    pos = []
    opts = {}
    i = 0
    while i < len(args):
        a = args[i]
        if a[:2] == "--":
            if a[2:] not in names or i + 1 >= len(args):
                raise UsageError("unknown option or missing value: " + a)
            opts[a[2:]] = args[i + 1]
            i += 2
        else:
            pos.append(a)
            i += 1
    return pos, opts


def _user(pos, state, write, read_line):
    users = Users(FileBackend(state))
    users.load()
    if pos[:1] == ["add"] and len(pos) in (2, 3):
        # a password on the command line shows in `ps` and shell history: stdin is the better way
        password = pos[2] if len(pos) == 3 else read_line().rstrip("\r\n")
        write("added " + users.add(pos[1], password))
    elif pos[:1] == ["remove"] and len(pos) == 2:
        write(("removed " if users.remove(pos[1]) else "no such user ") + pos[1])
    elif pos == ["list"]:
        for a in users.addresses():
            write(a)
    else:
        raise UsageError(_USAGE)


def _stdin_line():
    import sys
    return sys.stdin.readline()


def main(argv, write=print, read_line=_stdin_line, save_domain=None):
    """Command line of a device (see the module docstring); returns an exit status, errors as one line.
    `save_domain`: where the page's first run stores the domain (default: into the --config JSON file)."""
    try:
        pos, opts = _options(argv, ("config", "state"))
        if not pos or "state" not in opts:
            raise UsageError(_USAGE)
        if pos[0] == "run":
            if "config" not in opts:
                raise UsageError(_USAGE)
            run(read_config(opts["config"]), opts["state"], write, save_domain or json_domain_saver(opts["config"]))
        elif pos[0] == "user":
            _user(pos[1:], opts["state"], write, read_line)
        else:
            raise UsageError(_USAGE)
    except UsageError as e:
        write("microwitch: %s" % e)
        return 2
    except config.ConfigError as e:
        write("microwitch: %s" % e)
        return 2
    except ValueError as e:  # store validation (names the field)
        write("microwitch: %s" % e)
        return 2
    except OSError as e:  # a listen address that cannot be bound, a state directory that cannot be written
        write("microwitch: %s" % e)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0
