"""Acceptance: bindings answered 200 survive SIGKILL of the node in the middle of a registration storm.

sipp registers many users (register_auth.xml, one `REGISTERED user domain call-id` log line per 200 it
received, via -trace_logs); the node is killed with SIGKILL while the storm runs, sipp is stopped, the node is
restarted from the same state directory, and `microwitch bindings --state DIR --json` must list every binding
sipp saw acknowledged, with the contact it registered and a remaining lifetime.
"""
import os
import signal
import subprocess
import sys
import time

import pytest

import nodeproc

pytestmark = pytest.mark.skipif(not nodeproc.sipp_available(), reason="sipp (Debian sip-tester) not installed")

USERS = 2000          # more than the storm can finish before the kill
RATE = 400            # new registrations per second offered by sipp
IN_FLIGHT = 100
KILL_AFTER_200S = 300  # kill once the node has logged about this many successful REGISTERs...
KILL_DEADLINE_S = 2.5  # ...or this long after sipp started (the whole storm needs USERS/RATE = 5 s)
MIN_ACKED = 50         # the storm must have produced at least this many 200s before the kill


def _count_ok(text):
    n = 0
    for line in text.splitlines():
        if "REGISTER" in line and " 200" in line:
            n += 1
    return n


def test_bindings_survive_sigkill_mid_storm(tmp_path):
    work = str(tmp_path)
    users = nodeproc.make_users(USERS, "k")
    node = nodeproc.Node(work, config=nodeproc.sipp_node_config(), users=users)
    node.start()
    sipp = None
    try:
        inf = nodeproc.write_users(os.path.join(work, "storm_users.csv"), users, sipp=True)
        log_file = os.path.join(work, "storm_logs.log")
        sipp_port = nodeproc.free_port("udp")
        sipp = subprocess.Popen(
            ["sipp", "%s:%d" % node.udp, "-sf", os.path.join(nodeproc.SIPP_DIR, "register_auth.xml"),
             "-inf", inf, "-m", str(USERS), "-r", str(RATE), "-l", str(IN_FLIGHT), "-i", nodeproc.HOST,
             "-p", str(sipp_port), "-nostdin", "-auth_uri", nodeproc.DOMAIN, "-buff_size", "4194304",
             "-trace_logs", "-log_file", log_file, "-timeout", "60s"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=work)
        deadline = time.monotonic() + KILL_DEADLINE_S
        while time.monotonic() < deadline and _count_ok(node.output()) < KILL_AFTER_200S:
            if sipp.poll() is not None:
                break
            time.sleep(0.05)
        node.kill()
        killed_at = time.monotonic()
        assert sipp.poll() is None, "sipp ended before the kill: the storm was not interrupted"
        sipp.send_signal(signal.SIGINT)      # sipp writes its logs and exits
        sipp.wait(timeout=20)

        acked = {}
        with open(log_file) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3 and parts[0] == "REGISTERED":
                    acked[parts[1]] = parts[2]
        assert len(acked) >= MIN_ACKED, "only %d registrations answered before the kill" % len(acked)
        assert len(acked) < USERS, "the storm had finished before the kill"

        node.restart()
        bindings = node.bindings()
        by_aor = {}
        for b in bindings:
            by_aor.setdefault(b["aor"], []).append(b)
        lost = []
        for user, domain in sorted(acked.items()):
            got = by_aor.get("sip:%s@%s" % (user, domain), [])
            want = "sip:%s@%s:%d" % (user, nodeproc.HOST, sipp_port)
            if not any(b["contact"].startswith(want) and float(b["expires"]) > 0 for b in got):
                lost.append((user, got))
        assert lost == [], "%d of %d acknowledged bindings lost after SIGKILL, e.g. %r" % (
            len(lost), len(acked), lost[:5])
        # nothing that was never requested appears
        registered = {"sip:%s@%s" % (u, d) for u, _, d in users}
        assert set(by_aor) <= registered, sorted(set(by_aor) - registered)[:5]
        assert time.monotonic() - killed_at < 60

        # and the restarted node serves registrations normally
        res = nodeproc.run_sipp(node.udp, "register_auth.xml", work, users=users[:5], count=5, timeout_s=20,
                                tag="after")
        assert res.rc == 0 and res.successful == 5, repr(res)
    finally:
        if sipp is not None and sipp.poll() is None:
            sipp.kill()
            sipp.wait(timeout=10)
        node.stop()
