# microwitch on ESP32, stage 2: start the node or the agent on the address boot.py brought up.
#
# /config.json is the node's config (the same JSON as on every board); a missing `listen` means UDP and TCP
# port 5060 on this board's address, a missing `domain` means that address, a missing `web` means the page on
# port 80 of that address ("web": "" turns it off). The page's first run saves the domain into /config.json.
# State (users, bindings) lives in /state. The role switch is /device.json "role": "node" (the default) or
# "agent": then the board is a phone that registers to a node and answers (or places) calls, with its settings
# in /device.json "agent" (README.md).
import gc
import json

import network

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


def device_config():
    try:
        with open(DEVICE_FILE) as f:
            d = json.load(f)
        return d if isinstance(d, dict) else {}
    except (OSError, ValueError):
        return {}


def free_heap():
    gc.collect()
    print("microwitch: free heap %d bytes after start" % gc.mem_free())  # `deploy` reports this line


def node_config(ip):
    from microwitch import config
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
    # imported here, not at the top: an agent board never loads the node's code into its heap
    from microwitch import config
    from microwitch.adapter import device
    ip, dns = local_if()
    try:
        cfg = node_config(ip)

        def started(node, loop):
            free_heap()
        device.run(cfg, STATE_DIR, print, device.json_domain_saver(CONFIG_FILE), started, [dns] if dns else None)
    except config.ConfigError as e:
        print("microwitch: %s" % e)


def run_agent(dev):
    """The agent role: /device.json "agent" validated (a message naming the field, and nothing runs, when
    something is wrong), then rounds of register / answer or call for as long as the board runs."""
    import time
    from microwitch.adapter import agent_loop  # only the agent role pays for the agent's code
    from microwitch.compat import random_bytes
    try:
        s = agent_loop.agent_settings(dev.get("agent"), DEVICE_FILE)
    except agent_loop.AgentConfigError as e:
        print("microwitch: %s" % e)
        return
    ip, _ = local_if()
    try:
        agent_loop.run_agent(s, ip, random_bytes, print, pause=time.sleep_ms, started=free_heap)
    except OSError as e:  # a port that cannot be bound, a cache file that cannot be written
        print("microwitch: agent stopped: %s" % e)


def main():
    dev = device_config()
    r = dev.get("role", "node")
    if r == "node":
        run_node()
    elif r == "agent":
        run_agent(dev)
    else:
        print("microwitch: unknown role %r in /device.json (node or agent)" % r)


main()
