#!/usr/bin/env python3
"""Registrar benchmark: authenticated REGISTERs per second, microwitch (CPython) against Kamailio, same run.

sipp (tests_host/sipp/register_auth.xml) sends a fixed number of registrations over a set of users; every
call is a fresh challenge and its answer (REGISTER -> 401 -> REGISTER with credentials -> 200, new Call-ID
and nonce each time), with at most --in-flight calls outstanding. The same users file drives both servers:
microwitch gets the users imported with `microwitch user import`, Kamailio
(tools/bench/kamailio-registrar.cfg: auth with qop=auth + nonce_count, usrloc db_mode 0, stateful) derives
each password from the user name. reg/s = successful calls / wall-clock seconds of the sipp run; a run
with failed calls is reported as such. Resident memory is read from /proc after the run (every user bound):
VmRSS of the node; for Kamailio the sum of VmRSS over its processes (shared memory counted in every
process that touched it) and, fairer, the sum of Pss.

The last line printed is the contract:
    BENCH registrar microwitch=<reg/s> kamailio=<reg/s> ratio=<microwitch/kamailio>
"""
import argparse
import os
import sys
import tempfile
import time

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
for _p in (os.path.join(_ROOT, "tests_host"), os.path.join(_ROOT, "firmware")):
    if _p not in sys.path:
        sys.path.insert(0, _p)
import nodeproc  # noqa: E402

COUNT = 20000        # registrations per server
USERS = 10000        # distinct users (each registers COUNT/USERS times)
IN_FLIGHT = 100      # calls outstanding at once (sipp -l)
RATE = 100000        # sipp -r: high enough that IN_FLIGHT is the real bound
TIMEOUT_S = 300      # bound on each sipp run


def drive(target, users, work, tag, count, in_flight):
    res = nodeproc.run_sipp(target, "register_auth.xml", work, users=users, count=count, rate=RATE,
                            limit=in_flight, timeout_s=TIMEOUT_S, tag=tag)
    rate = res.successful / res.elapsed if res.elapsed > 0 else 0.0
    print("%s: %d ok, %d failed, %d retransmissions in %.2f s -> %.0f reg/s (sipp rc %s)" % (
        tag, res.successful, res.failed, res.count("Retransmissions(C)"), res.elapsed, rate, res.rc))
    if res.failed or res.rc != 0:
        print("%s: sipp errors (tail): %s" % (tag, res.errors[-800:].replace("\n", " | ")))
    return rate, res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--count", type=int, default=COUNT, help="registrations per server (default %d)" % COUNT)
    ap.add_argument("--users", type=int, default=USERS, help="distinct users (default %d)" % USERS)
    ap.add_argument("--in-flight", type=int, default=IN_FLIGHT, help="sipp -l (default %d)" % IN_FLIGHT)
    ap.add_argument("--kamailio-children", type=int, default=4, help="Kamailio UDP workers (default 4)")
    args = ap.parse_args(argv)
    if not nodeproc.sipp_available():
        print("sipp (Debian sip-tester) is not installed", file=sys.stderr)
        return 2
    users = nodeproc.make_users(args.users, "u")
    work = tempfile.mkdtemp(prefix="mw-bench-registrar-")
    print("registrar bench: %d authenticated REGISTERs over %d users, %d in flight, all on 127.0.0.1; "
          "node on CPython %s, Kamailio with %d workers" % (args.count, args.users, args.in_flight,
                                                            sys.version.split()[0], args.kamailio_children))

    node = nodeproc.Node(os.path.join(work, "node"), config=nodeproc.sipp_node_config(
        max_aors=max(args.users, 10000), log_level="warning"), users=users)
    t0 = time.monotonic()
    node.start(timeout=120)
    print("microwitch: %d users imported and node started in %.1f s" % (args.users, time.monotonic() - t0))
    try:
        mw_rate, mw_res = drive(node.udp, users, work, "microwitch", args.count, args.in_flight)
        mw_rss = node.rss_kb()
        mw_pss = nodeproc.pss_kb(node.pid)
    finally:
        node.stop()
    try:
        mw_bound = len({b["aor"] for b in node.bindings()})
    except Exception as e:  # the count is informative only
        print("microwitch: could not list bindings: %s" % e)
        mw_bound = -1

    kam = nodeproc.Kamailio(os.path.join(work, "kamailio"), children=args.kamailio_children)
    kam.start()
    try:
        k_rate, k_res = drive((nodeproc.HOST, kam.port), users, work, "kamailio", args.count, args.in_flight)
        pids = kam.pids()
        k_rss = kam.rss_kb()
        k_pss = sum(nodeproc.pss_kb(p) for p in pids)
    finally:
        kam.stop()

    ratio = mw_rate / k_rate if k_rate > 0 else 0.0
    print("RSS registrar microwitch=%dkB (Pss %dkB, %d AoRs bound) kamailio=%dkB summed over %d processes "
          "(Pss %dkB)" % (mw_rss, mw_pss, mw_bound, k_rss, len(pids), k_pss))
    print("BENCH registrar microwitch=%.0f kamailio=%.0f ratio=%.2f" % (mw_rate, k_rate, ratio))
    return 0 if (mw_res.failed == 0 and k_res.failed == 0) else 1


if __name__ == "__main__":
    sys.exit(main())
