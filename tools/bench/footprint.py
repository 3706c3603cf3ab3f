#!/usr/bin/env python3
"""Footprint of the firmware in flash and RAM, measured under wasm MicroPython 1.27 (./build.sh bench footprint).

Flash: the .mpy bytes of the node (the import closure of adapter/device.py), of its web page (what the closure
of adapter/webpage.py adds to the node's, plus microdot's two compiled files), of the agent (the closure of sip/,
zrtp/, crypto/, compat, agent/, media/ and the agent loop: see build_images.agent_entries) and of the ESP32 image
(`./build.sh build esp32`: node + page + agent). RAM, from gc.mem_alloc() differences in wasm
MicroPython (a 32-bit heap like an ESP32's) loading the compiled .mpy, with the ESP32 board's default config:
heap after boot, heap per registered binding (1,000 digest REGISTERs through the node), heap per live INVITE
(a call ringing through the proxy: server + client transaction + response context), and a whole scenario
(50 users registered + 10 calls ringing); for the agent role, the heap its code takes loaded from .mpy and an
endpoint registering. Goals: node <= 120 KB .mpy, <= 400 B per binding, the scenario
<= 100 KB. The last line is the contract:

BENCH footprint node_mpy_bytes=<n> agent_mpy_bytes=<n> bytes_per_binding=<n> bytes_per_call=<n> boot_heap=<n>
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import build_images  # noqa: E402

N_BINDINGS = 1000
N_CALLS = 50
SCENARIO_USERS = 50
SCENARIO_CALLS = 10
GOAL_NODE_MPY = 120 * 1024
GOAL_PER_BINDING = 400
GOAL_SCENARIO = 100 * 1024
PROBE = os.path.join(ROOT, "tools", "bench", "_footprint_probe.py")
SILENT_NET = os.path.join(ROOT, "tools", "mp", "silent_net.py")


def mpy_bytes(modules):
    return sum(os.path.getsize(os.path.join(build_images.OUT_ROOT, m[:-3] + ".mpy")) for m in modules)


def board_config():
    """The ESP32 board's default node config, with the address main.py would fill in."""
    with open(os.path.join(ROOT, "board", "esp32", "config.json")) as f:
        d = json.load(f)
    d.setdefault("domain", "lan")
    d.setdefault("listen", ["udp:192.0.2.1:5060", "tcp:192.0.2.1:5060"])
    return d


def run_probe():
    tmp = tempfile.mkdtemp(prefix="mw-footprint-")
    try:
        shutil.copyfile(PROBE, os.path.join(tmp, "test_footprint_probe.py"))
        shutil.copyfile(SILENT_NET, os.path.join(tmp, "silent_net.py"))
        with open(os.path.join(tmp, "_fp_config.py"), "w") as f:
            f.write("CONFIG = %r\nN_BINDINGS = %d\nN_CALLS = %d\nSCENARIO_USERS = %d\nSCENARIO_CALLS = %d\n"
                    % (json.dumps(board_config()), N_BINDINGS, N_CALLS, SCENARIO_USERS, SCENARIO_CALLS))
        p = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "mptest.py"), "--mpy",
                            os.path.join(tmp, "test_footprint_probe.py")], capture_output=True, text=True,
                           timeout=1200)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    vals = {}
    for line in p.stdout.splitlines():
        if line.startswith("FOOTPRINT "):
            k, _, v = line[10:].partition("=")
            vals[k] = v
    if p.returncode != 0:
        sys.stdout.write(p.stdout + p.stderr)
        raise SystemExit("footprint: the MicroPython probe failed")
    return vals


_AGENT_PROBE = '''
import gc


async def _heap():
    import asyncio
    for _ in range(2):  # the wasm port collects only at top level: yield to JS before reading the count
        gc.collect()
        await asyncio.sleep_ms(1)
    return gc.mem_alloc()


async def test_agent_heap():
    base = await _heap()
    from microwitch.adapter import agent_loop   # what the ESP32's agent role imports before its first call
    from microwitch.agent import endpoint
    from microwitch.zrtp import cache, cachefile
    import sys
    mods = len([m for m in sys.modules if m.startswith("microwitch")])
    code = await _heap() - base
    print("FOOTPRINT agent_code_heap=%d" % code)
    print("FOOTPRINT agent_modules=%d" % mods)
    n = [0]

    def rand(k):
        n[0] += 1
        return bytes([(n[0] * 7 + i) & 255 for i in range(k)])
    before = await _heap()
    ep = endpoint.Endpoint({"user": "sip:esp@lan", "password": "pw", "proxy": ("udp", "192.0.2.1", 5060),
                            "sip_local": ("192.0.2.50", 5060), "media_local": ("192.0.2.50", 4000),
                            "answer": True}, rand, None, 0, agent_loop.Tone(400), None)
    acts = ep.start(0)
    print("FOOTPRINT agent_registering_heap=%d" % (await _heap() - before))
    assert acts
'''


def run_agent_probe():
    """Heap of the agent role's code loaded from .mpy, and of an Endpoint registering (wasm MicroPython)."""
    tmp = tempfile.mkdtemp(prefix="mw-footprint-agent-")
    try:
        path = os.path.join(tmp, "test_agent_heap_probe.py")
        with open(path, "w") as f:
            f.write(_AGENT_PROBE)
        p = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "mptest.py"), "--mpy", path],
                           capture_output=True, text=True, timeout=600)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if p.returncode != 0:
        sys.stdout.write(p.stdout + p.stderr)
        raise SystemExit("footprint: the MicroPython agent probe failed")
    vals = {}
    for line in p.stdout.splitlines():
        if line.startswith("FOOTPRINT "):
            k, _, v = line[10:].partition("=")
            vals[k] = v
    return vals


def main():
    build_images.build_generic(quiet=True)
    node_mods = build_images.closure(build_images.NODE_ENTRIES)
    agent_entries = build_images.agent_entries()
    agent_mods = build_images.closure(agent_entries)
    node_b = mpy_bytes(node_mods)
    agent_b = mpy_bytes(agent_mods)
    by_pkg = {}
    for m in node_mods:
        pkg = m.split("/")[1] if m.count("/") > 1 else "(top)"
        by_pkg[pkg] = by_pkg.get(pkg, 0) + mpy_bytes([m])
    print("node .mpy: %d bytes in %d modules (%s)" % (node_b, len(node_mods), ", ".join(
        "%s %d" % kv for kv in sorted(by_pkg.items(), key=lambda kv: -kv[1]))))
    web_mods = [m for m in build_images.closure(build_images.NODE_ENTRIES + build_images.WEB_ENTRIES)
                if m not in node_mods]
    microdot_b = sum(r[2] for r in build_images.build_microdot(quiet=True))
    print("web page .mpy: %d bytes = %d in %d microwitch modules beyond the node's + %d microdot %s "
          "(loaded only when the config has \"web\")" % (mpy_bytes(web_mods) + microdot_b, mpy_bytes(web_mods),
                                                         len(web_mods), microdot_b, build_images.MICRODOT_VERSION))
    print("agent .mpy: %d bytes in %d modules, closure of %s" % (agent_b, len(agent_mods), " ".join(agent_entries)))
    esp32_b = mpy_bytes(build_images.board_modules("esp32")) + microdot_b
    print("esp32 image .mpy: %d bytes (node + web page + agent; /device.json \"role\" picks node or agent)"
          % esp32_b)
    av = run_agent_probe()
    print("agent role heap: %s bytes of code loaded from .mpy at start (%s microwitch modules; the crypto "
          "back-ends follow at the first call; frozen into an ESP32 firmware it stays in flash) + %s bytes for an "
          "endpoint registering" % (av["agent_code_heap"],
                                                                                  av["agent_modules"],
                                                                                  av["agent_registering_heap"]))
    v = run_probe()
    per_binding = int(v["bytes_per_binding"])
    per_call = int(v["bytes_per_call"])
    boot = int(v["boot_heap"])
    scenario = int(v["scenario_heap"])
    scenario_state = int(v["scenario_state"])
    print("heap after boot: %d bytes = %s code (%s microwitch modules loaded from .mpy; frozen into an ESP32 "
          "firmware it stays in flash) + %s state (%s)" % (boot, v["boot_code_heap"], v["boot_modules"],
                                                           v["boot_state_heap"], v["boot_notes"]))
    print("heap per binding: %d bytes (over %d digest REGISTERs: %s; of that the Binding object alone %s)"
          % (per_binding, N_BINDINGS, v["binding_parts"], v["binding_object"]))
    print("heap per live INVITE: %d bytes (over %d ringing calls; server/client transactions %s; a parsed "
          "Message costs %s, and a ringing call holds several)" % (per_call, N_CALLS, v["live_transactions"],
                                                                   v["parsed_message"]))
    print("scenario (ESP32 config): %d users registered + %d calls ringing = %d bytes of heap with the code "
          "loaded from .mpy, %d bytes of state alone (%s)"
          % (SCENARIO_USERS, SCENARIO_CALLS, scenario, scenario_state, v["scenario_parts"]))
    print("while they linger (Timer J, 32 s on UDP) each finished REGISTER transaction holds %s bytes: %d phones "
          "registering at once peak at about %d bytes more" % (v["lingering_register_txn"], SCENARIO_USERS,
                                                            2 * SCENARIO_USERS * int(v["lingering_register_txn"])))
    for name, got, goal in (("node .mpy", node_b, GOAL_NODE_MPY), ("bytes per binding", per_binding, GOAL_PER_BINDING),
                            ("50+10 heap, .mpy in RAM", scenario, GOAL_SCENARIO),
                            ("50+10 heap, code frozen", scenario_state, GOAL_SCENARIO)):
        print("goal %-26s %8d <= %-8d %s" % (name, got, goal, "met" if got <= goal else "MISSED"))
    print("BENCH footprint node_mpy_bytes=%d agent_mpy_bytes=%d bytes_per_binding=%d bytes_per_call=%d boot_heap=%d"
          % (node_b, agent_b, per_binding, per_call, boot))


if __name__ == "__main__":
    main()
