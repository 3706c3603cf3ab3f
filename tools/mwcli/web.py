"""The node's web page on the host: `microwitch run` starts it when the config has `"web": "HOST:PORT"`.

microdot's asyncio server runs in a daemon thread beside the poll loop. The page has its own handles on the
state directory's journals (like the CLI), reads the node only through the snapshot the loop publishes, and
asks the loop to rebuild the node when its first run changes the domain.
"""
import asyncio
import json
import os
import threading

from microwitch import config
from microwitch.compat import random_bytes
from microwitch.store.files import FileBackend
from microwitch.store.users import Users
from microwitch.store.pbx_accounts import PbxAccounts
from microwitch.web.admin import AdminStore
from microwitch.web.app import WebApp
from microwitch.web.server import make_microdot, limit_requests  # needs microdot (requirements.txt)
from mwcli.state import config_path


def _domain_setter(cfg, path, reload):
    def set_domain(domain):
        try:
            with open(path) as f:
                raw = json.load(f)
            raw["domain"] = domain
            checked = config.validate(raw, path)
        except (OSError, ValueError, config.ConfigError) as e:
            return "could not save the config: %s" % e
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.write(json.dumps(raw, indent=2) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        cfg["domain"] = checked["domain"]
        cfg["realm"] = checked["realm"]
        reload[0] = True
        return None
    return set_domain


def start_web(cfg, args, log, get_view, reload, sip):
    """Serve the page for the node whose SIP UDP listener is `sip` (host, port); returns the WebApp."""
    host, _, port = cfg["web"].rpartition(":")
    host = host.strip("[]")
    port = int(port)
    backend = FileBackend(args.state)
    users = Users(backend)
    users.load()
    accounts = PbxAccounts(backend)
    accounts.load()
    admin = AdminStore(backend, random_bytes).load()
    wcfg = dict(cfg)
    app = WebApp(wcfg, users, admin, random_bytes, status=get_view, accounts=accounts,
                 set_domain=_domain_setter(wcfg, config_path(args.state, args.config), reload),
                 base_url="http://%s:%d" % ("[" + host + "]" if ":" in host else host, port), sip=sip)
    limit_requests()
    md = make_microdot(app)
    ready = threading.Event()
    failed = []

    def main():
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            srv = loop.run_until_complete(md.start_server(host, port, start_serving=False))
        except OSError as e:
            failed.append(e)
            ready.set()
            return
        ready.set()
        loop.run_until_complete(srv.serve_forever())
    threading.Thread(target=main, name="web", daemon=True).start()
    ready.wait(5)
    if failed:
        log.error("web page: cannot listen on %s: %s" % (cfg["web"], failed[0]))
        return None
    print("web http://%s:%d/" % (host, port), flush=True)
    if not admin.is_set():
        log.info("web page: first run: open http://%s:%d/ to set the admin password" % (host, port))
    return app
