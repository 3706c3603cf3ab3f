#!/usr/bin/env python3
"""Proxy benchmark: record-routed calls per second through microwitch (CPython) and through Kamailio, same run.

Each call is INVITE (with SDP) -> 100 -> 180 -> 200 -> ACK along the Record-Route -> a short pause -> BYE along
the Route set -> 200 (tests_host/sipp/proxy/uac_call.xml against a sipp UAS running uas_answer.xml). The
callee is registered with digest auth first, from the UAS's own port (both servers route to the address a
REGISTER came from), and its old bindings are cleared so no stale contact doubles the forks. The caller is
from a foreign domain (neither server authenticates it). sipp sends a fixed number of calls with at most
--in-flight outstanding; calls/s = successful calls / wall-clock seconds of the sipp run. Kamailio runs
tools/bench/kamailio-proxy.cfg (record_route, loose_route, usrloc db_mode 0, t_relay) with its default
4 worker processes on the same 2 cores. The servers alternate for --rounds rounds, each on a fresh process;
the best round without failed calls counts for each (the machine is shared with other work). Any failed
call makes the exit status non-zero.

Memory: CONCURRENT calls established at once (sipp -l with a long pause) through a fresh node with its default
config: its VmRSS idle and with all of them up; for Kamailio the sum of Pss over its processes.

The last line printed is the contract:
    BENCH proxy microwitch=<calls/s> kamailio=<calls/s> ratio=<microwitch/kamailio>
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
for _p in (os.path.join(_ROOT, "tests_host"), os.path.join(_ROOT, "firmware")):
    if _p not in sys.path:
        sys.path.insert(0, _p)
import nodeproc  # noqa: E402
from test_proxy_sipp import register, unregister_all, _free_udp_ports, _wait_bound  # noqa: E402

HOST = nodeproc.HOST
DOMAIN = nodeproc.DOMAIN
SCEN = os.path.join(nodeproc.SIPP_DIR, "proxy")
CALLEE = "callee"
PASSWORD = nodeproc.password_for(CALLEE)    # "pw-callee": the rule kamailio-proxy.cfg derives passwords by
COUNT = 10000          # calls per server
IN_FLIGHT = 50         # sipp -l for the throughput run
RATE = 100000          # sipp -r: high enough that IN_FLIGHT is the real bound
PAUSE_MS = 10          # between ACK and BYE
CONCURRENT = 1000      # calls held at once for the memory reading
HOLD_MS = 12000        # their pause
HOLD_RATE = 400        # their arrival rate (calls/s): no burst at t=0
TIMEOUT_S = 300        # bound on each sipp run
ROUNDS = 2             # alternating microwitch/Kamailio rounds (the machine is shared: best of each counts)
CFG = os.path.join(_ROOT, "tools", "bench", "kamailio-proxy.cfg")
# The bench's caller is a foreign domain (no digest round trip in the measured path) sending every call from one
# address: the node's inbound federation rate limit (20/s, burst 40 by default, there to blunt floods from
# other domains) is raised so the run measures forwarding, not the limiter. Everything else is the default
# config (the transaction tables end lingering Completed/Accepted entries when full).
NODE_CONFIG = {"log_level": "warning", "federation_rate": 100000, "federation_burst": 100000}


class KamailioProxy(nodeproc.Kamailio):
    """nodeproc.Kamailio with the proxy config."""

    def start(self, timeout=20.0):
        os.makedirs(self.workdir, exist_ok=True)
        self.port = nodeproc.free_port("udp")
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            ["kamailio", "-f", CFG, "-DD", "-E", "-m", str(self.shm_mb), "-M", "32",
             "-l", "udp:%s:%d" % (HOST, self.port), "-P", os.path.join(self.workdir, "kamailio.pid"),
             "-Y", self.workdir, "-A", "CHILDREN=%d" % self.children],
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.workdir,
            start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise nodeproc.NodeError("kamailio exited: " + open(self.log_path).read()[-3000:])
            if nodeproc.options_ping(("udp", HOST, self.port), timeout=0.2) == 200:
                return self
        self.stop()
        raise nodeproc.NodeError("kamailio did not answer OPTIONS")


class Callee:
    """A sipp UAS (uas_answer.xml) on a port registered as CALLEE at `target`; runs until stop()."""

    def __init__(self, target, work, tag):
        unregister_all(target, CALLEE, password=PASSWORD)
        self.port, mport = _free_udp_ports(1)[0], nodeproc.free_port_run(4)
        st = register(target, CALLEE, self.port, password=PASSWORD, expires=3600)
        if st != 200:
            raise RuntimeError("%s: REGISTER of the callee answered %r" % (tag, st))
        self.stf = os.path.join(work, tag + "_uas_stat.csv")
        self.err = os.path.join(work, tag + "_uas_err.log")
        self.proc = subprocess.Popen(
            ["sipp", "%s:%d" % target, "-sf", os.path.join(SCEN, "uas_answer.xml"), "-i", HOST,
             "-p", str(self.port), "-mi", HOST, "-mp", str(mport), "-nostdin", "-default_behaviors", "all,-bye",
             "-buff_size", "4194304", "-max_retrans", "7", "-trace_stat", "-stf", self.stf, "-fd", "1",
             "-trace_err", "-error_file", self.err],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, cwd=work)
        try:
            _wait_bound([self.port])
        except AssertionError:
            self.stop()
            raise RuntimeError("%s: sipp UAS did not bind port %d" % (tag, self.port))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def uac_cmd(pause_ms):
    """The sipp options every caller run shares (scenario keys, pause, media port)."""
    mport = nodeproc.free_port_run(4)  # sipp binds audio and video RTP/RTCP from here
    return ["-key", "caller", "bench", "-key", "caller_domain", "remote.example", "-key", "callee", CALLEE,
            "-key", "domain", DOMAIN, "-d", str(pause_ms), "-mi", HOST, "-mp", str(mport)]


def throughput(target, work, tag, count, in_flight):
    res = nodeproc.run_sipp(target, os.path.join(SCEN, "uac_call.xml"), work, count=count, rate=RATE,
                            limit=in_flight, timeout_s=TIMEOUT_S, tag=tag,
                            extra=uac_cmd(PAUSE_MS))
    rate = res.successful / res.elapsed if res.elapsed > 0 else 0.0
    print("%s: %d ok, %d failed, %d retransmissions in %.2f s -> %.0f calls/s (sipp rc %s)" % (
        tag, res.successful, res.failed, res.count("Retransmissions(C)"), res.elapsed, rate, res.rc))
    if res.failed or res.rc != 0:
        print("%s: sipp errors (tail): %s" % (tag, res.errors[-800:].replace("\n", " | ")))
    return rate, res


def hold(target, work, tag, rss):
    """CONCURRENT calls established at once (long pause); returns (kB read by rss() while all are up, result)."""
    stf = os.path.join(work, tag + "_hold_stat.csv")
    cmd = ["sipp", "%s:%d" % target, "-sf", os.path.join(SCEN, "uac_call.xml"), "-m", str(CONCURRENT),
           "-l", str(CONCURRENT), "-r", str(HOLD_RATE), "-i", HOST, "-p", str(nodeproc.free_port("udp")),
           "-nostdin", "-default_behaviors", "all,-bye", "-timeout", "%ds" % TIMEOUT_S, "-timeout_error",
           "-max_retrans", "7", "-buff_size", "4194304", "-trace_stat", "-stf", stf, "-fd", "1"]
    cmd += uac_cmd(HOLD_MS)
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                         cwd=work)
    try:
        # all calls are up from CONCURRENT / HOLD_RATE seconds on until HOLD_MS after the first one
        time.sleep(CONCURRENT / HOLD_RATE + 1.5)
        kb = rss()
        p.wait(timeout=TIMEOUT_S)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(timeout=10)
    st = nodeproc.read_stats(stf)
    ok, failed = int(st.get("SuccessfulCall(C)", 0) or 0), int(st.get("FailedCall(C)", 0) or 0)
    print("%s: %d calls held at once (%d ok, %d failed, %.1f s)" % (tag, CONCURRENT, ok, failed,
                                                                  time.monotonic() - t0))
    return kb, ok, failed


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--count", type=int, default=COUNT, help="calls per server and round (default %d)" % COUNT)
    ap.add_argument("--in-flight", type=int, default=IN_FLIGHT, help="sipp -l (default %d)" % IN_FLIGHT)
    ap.add_argument("--rounds", type=int, default=ROUNDS, help="alternating rounds; the best of each server "
                    "counts (default %d)" % ROUNDS)
    ap.add_argument("--no-hold", action="store_true", help="skip the %d-concurrent-calls memory run" % CONCURRENT)
    ap.add_argument("--kamailio-children", type=int, default=4, help="Kamailio UDP workers (default 4)")
    ap.add_argument("--profile", metavar="FILE", help="run the node under cProfile, stats to FILE")
    ap.add_argument("--node-prelude", metavar="PY", help="Python run in the node process before it starts, for "
                    "experiments (e.g. \"import gc; gc.set_threshold(100000, 50, 1000)\"); not for the BENCH line")
    args = ap.parse_args(argv)
    if not nodeproc.sipp_available():
        print("sipp (Debian sip-tester) is not installed", file=sys.stderr)
        return 2
    if args.profile or args.node_prelude:
        node_cmd_profile(args.profile, args.node_prelude)
    work = tempfile.mkdtemp(prefix="mw-bench-proxy-")
    print("proxy bench: %d record-routed calls per server and round (INVITE/100/180/200/ACK, %d ms, BYE/200), "
          "%d in flight, %d round(s), all on 127.0.0.1" % (args.count, PAUSE_MS, args.in_flight, args.rounds))
    failures = 0
    mw, k = [], []     # (failed, rate) per round
    for rnd in range(args.rounds):
        mw.append(microwitch_round(work, "microwitch-%d" % rnd, args))
        k.append(kamailio_round(work, "kamailio-%d" % rnd, args))
    failures += sum(f for f, _ in mw) + sum(f for f, _ in k)
    if not args.no_hold:
        failures += memory(work, args)
    mw_best, k_best = best(mw), best(k)
    ratio = mw_best / k_best if k_best > 0 else 0.0
    if failures:
        print("FAILED: %d failed calls or sipp errors (see above); figures are not valid" % failures)
    print("BENCH proxy microwitch=%.0f kamailio=%.0f ratio=%.2f" % (mw_best, k_best, ratio))
    return 0 if failures == 0 else 1


def best(rounds):
    """The best rate among rounds without failed calls (a round with failures is not a valid figure), or the
    best of all when every round had some."""
    clean = [r for f, r in rounds if f == 0]
    return max(clean or [r for _, r in rounds] or [0.0])


def microwitch_round(work, tag, args):
    node = nodeproc.Node(os.path.join(work, tag), config=dict(NODE_CONFIG),
                         users=[(CALLEE, PASSWORD, DOMAIN)], transports=("udp",))
    node.start()
    try:
        callee = Callee(node.udp, work, tag)
        try:
            rate, res = throughput(node.udp, work, tag, args.count, args.in_flight)
        finally:
            callee.stop()
        print("%s: node VmRSS %d kB after the run (transactions linger for Timer M/L)" % (tag, node.rss_kb()))
    finally:
        node.stop()
    return res.failed + (res.rc != 0), rate


def kamailio_round(work, tag, args):
    kam = KamailioProxy(os.path.join(work, tag), children=args.kamailio_children)
    kam.start()
    try:
        callee = Callee((HOST, kam.port), work, tag)
        try:
            rate, res = throughput((HOST, kam.port), work, tag, args.count, args.in_flight)
        finally:
            callee.stop()
    finally:
        kam.stop()
    return res.failed + (res.rc != 0), rate


def memory(work, args):
    """CONCURRENT calls up at once through a fresh node with its default config, then through Kamailio."""
    failures = 0
    node = nodeproc.Node(os.path.join(work, "microwitch-hold"), config=dict(NODE_CONFIG),
                         users=[(CALLEE, PASSWORD, DOMAIN)], transports=("udp",))
    node.start()
    try:
        idle_kb = node.rss_kb()
        callee = Callee(node.udp, work, "microwitch-hold")
        try:
            kb, ok, failed = hold(node.udp, work, "microwitch-hold", node.rss_kb)
            failures += failed + (ok != CONCURRENT)
        finally:
            callee.stop()
    finally:
        node.stop()
    kam = KamailioProxy(os.path.join(work, "kamailio-hold"), children=args.kamailio_children)
    kam.start()
    try:
        k_idle = sum(nodeproc.pss_kb(p) for p in kam.pids())
        callee = Callee((HOST, kam.port), work, "kamailio-hold")
        try:
            k_kb, ok, failed = hold((HOST, kam.port), work, "kamailio-hold",
                                    lambda: sum(nodeproc.pss_kb(p) for p in kam.pids()))
            failures += failed + (ok != CONCURRENT)
        finally:
            callee.stop()
        n = len(kam.pids())
    finally:
        kam.stop()
    print("MEM proxy microwitch VmRSS idle=%dkB with %d concurrent calls=%dkB (%.1f kB/call); kamailio Pss over "
          "%d processes idle=%dkB with %d calls=%dkB" % (idle_kb, CONCURRENT, kb, (kb - idle_kb) / CONCURRENT, n,
                                                      k_idle, CONCURRENT, k_kb))
    return failures


def node_cmd_profile(out, prelude=None):
    """Make nodeproc start the node under cProfile (stats written when it stops on SIGTERM), or after running
    `prelude` (a line of Python, for experiments such as GC settings)."""
    real = nodeproc.subprocess.Popen

    def popen(cmd, *a, **kw):
        if len(cmd) > 2 and cmd[1] == nodeproc.MICROWITCH and cmd[2] == "run":
            if prelude:
                cmd = [cmd[0], "-c", "%s; import runpy, sys; sys.argv = %r; runpy.run_path(%r, run_name='__main__')"
                       % (prelude, cmd[1:], cmd[1])]
            elif out:
                cmd = [cmd[0], "-m", "cProfile", "-o", out] + cmd[1:]
        return real(cmd, *a, **kw)
    nodeproc.subprocess.Popen = popen


if __name__ == "__main__":
    sys.exit(main())
