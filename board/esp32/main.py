# microwitch on ESP32, stage 2: start the node (or, later, the agent) on the address boot.py brought up.
#
# /config.json is the node's config (the same JSON as on every board); a missing `listen` means UDP and TCP
# port 5060 on this board's address, a missing `domain` means that address, a missing `web` means the page on
# port 80 of that address ("web": "" turns it off). The page's first run saves the domain into /config.json. State (users, bindings) lives in
# /state. The role switch is /device.json "role": "node" (the default) or "agent" (not built yet).
import gc
import json

import network
from microwitch import config
from microwitch.adapter import device

CONFIG_FILE = "/config.json"
DEVICE_FILE = "/device.json"
STATE_DIR = "/state"


def local_if():
    """(address, DNS server) of what boot.py brought up: the joined network's (the DNS server its DHCP lease
    gave, for calls to other domains), else the setup access point's (no DNS there)."""
    sta = network.WLAN(network.STA_IF)
    if sta.active() and sta.isconnected():
        ip, _, _, dns = sta.ifconfig()
        return ip, dns if dns and dns != "0.0.0.0" else None
    return network.WLAN(network.AP_IF).ifconfig()[0], None


def role():
    try:
        with open(DEVICE_FILE) as f:
            return json.load(f).get("role", "node")
    except (OSError, ValueError, AttributeError):
        return "node"


def node_config(ip):
    try:
        with open(CONFIG_FILE) as f:
            d = json.load(f)
    except OSError:
        d = {}
    if "listen" not in d:
        d["listen"] = ["udp:%s:5060" % ip, "tcp:%s:5060" % ip]
    if "web" not in d:
        d["web"] = "%s:80" % ip
    if "domain" not in d:
        d["domain"] = ip
    elif ip not in d.get("aliases", []):
        d["aliases"] = d.get("aliases", []) + [ip]
    return config.validate(d, CONFIG_FILE)


def run_node():
    ip, dns = local_if()
    cfg = node_config(ip)

    def started(node, loop):
        gc.collect()
        print("microwitch: free heap %d bytes after start" % gc.mem_free())  # `deploy` reports this line
    device.run(cfg, STATE_DIR, print, device.json_domain_saver(CONFIG_FILE), started, [dns] if dns else None)


def main():
    r = role()
    if r == "node":
        run_node()
    elif r == "agent":  # the switch for the agent (a phone on the board), which comes later
        print("microwitch: the agent role is not available yet; set \"role\": \"node\" in /device.json")
    else:
        print("microwitch: unknown role %r in /device.json (node or agent)" % r)


try:
    main()
except config.ConfigError as e:
    print("microwitch: %s" % e)
