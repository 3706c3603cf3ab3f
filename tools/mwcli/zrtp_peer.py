"""`microwitch zrtp-peer`: run the firmware ZRTP engine (RFC 6189) over UDP on 127.0.0.1.

One raw ZRTP packet per datagram. JSON lines on stdout: first {"event":"hello_hash","value":"1.10 <hex>"},
then {"event":"secure",...} (exit 0 after lingering to answer retransmissions) or
{"event":"failed","reason":...} (exit 2; also, alone, when the --cache file cannot be read or created).
A secure session whose retained secret could not be saved adds {"event":"cache_error","file":...,"reason":...}
after "secure". Packet traces go to stderr.
"""
import binascii
import json
import os
import select
import socket
import sys
import time

from microwitch.zrtp import packet
from microwitch.zrtp.engine import ZrtpSession
from microwitch.zrtp.cache import ZidCache
from microwitch.zrtp.cachefile import FileBackend

KAS = ("X255", "E255", "DH3k", "DH2k", "EC25")
_TICK_S = 0.005      # engine timers are 50 ms and up; 5 ms keeps them accurate


def register(sub):
    p = sub.add_parser("zrtp-peer", help="run a ZRTP handshake with a peer over UDP on 127.0.0.1")
    p.add_argument("--local", type=int, required=True, metavar="PORT", help="UDP port to bind on 127.0.0.1")
    p.add_argument("--peer", type=int, required=True, metavar="PORT", help="peer's UDP port on 127.0.0.1")
    p.add_argument("--ka", choices=KAS, help="key agreement to offer first (DH3k is always offered too)")
    p.add_argument("--role", choices=("initiator", "responder", "auto"), default="auto",
                   help="initiator commits at once, responder never commits, auto lets contention decide")
    p.add_argument("--cache", metavar="FILE", help="ZID cache file (key continuity across runs)")
    p.add_argument("--peer-hash", metavar="'1.10 HEX'", help="the peer's a=zrtp-hash to check its Hello against")
    p.add_argument("--timeout-ms", type=int, default=10000, metavar="N", help="give up after N ms (default 10000)")
    p.add_argument("--linger-ms", type=int, default=300, metavar="N",
                   help="stay N ms after secure to answer retransmissions (default 300)")
    p.add_argument("--sas", choices=("B32", "B256"), help="SAS rendering to offer first")
    p.add_argument("--quiet", action="store_true", help="no packet trace on stderr")
    p.set_defaults(func=run)


def _emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def _hex(b):
    return binascii.hexlify(b).decode()


def _oserror(e):
    return e.strerror or str(e) or type(e).__name__


def _ms():
    return int(time.monotonic() * 1000)


def run(args):
    for name, port in (("--local", args.local), ("--peer", args.peer)):
        if not 0 < port < 65536:
            print("microwitch zrtp-peer: %s must be a UDP port (1-65535), got %d" % (name, port), file=sys.stderr)
            return 2
    if args.timeout_ms <= 0:
        print("microwitch zrtp-peer: --timeout-ms must be positive", file=sys.stderr)
        return 2
    config = {}
    if args.ka:
        config["ka"] = [args.ka, "DH3k"]
    if args.sas:
        config["sas"] = [args.sas, "B32", "B256"]
    cache = None
    if args.cache:
        try:
            cache = ZidCache(FileBackend(args.cache), rand=os.urandom)
            cache.zid()     # a new cache writes our ZID now: a read-only place fails here, not mid-call
        except OSError as e:
            _emit({"event": "failed", "reason": "cannot use ZID cache file %s: %s" % (args.cache, _oserror(e))})
            return 2
    try:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", args.local))
    except OSError as e:
        print("microwitch zrtp-peer: cannot bind 127.0.0.1:%d: %s" % (args.local, e.strerror), file=sys.stderr)
        return 2
    peer = ("127.0.0.1", args.peer)
    t0 = _ms()
    s = ZrtpSession(args.role, config, os.urandom, cache, 0)
    _emit({"event": "hello_hash", "value": s.hello_hash()})
    if args.peer_hash:
        try:
            early = s.set_peer_hello_hash(args.peer_hash)
        except ValueError as e:
            print("microwitch zrtp-peer: --peer-hash: %s" % e, file=sys.stderr)
            return 2
    else:
        early = []
    trace = (lambda *a: None) if args.quiet else (lambda *a: print(*a, file=sys.stderr, flush=True))
    result = {"rc": None, "until": None}

    def handle(actions, now):
        for act in actions:
            if act[0] == "send":
                trace("%6d -> %s" % (now, act[1][16:24].decode("ascii", "replace")))
                try:
                    sock.sendto(act[1], peer)
                except OSError as e:
                    trace("send failed: %s" % e)
            elif act[0] == "secure" and result["rc"] is None:
                i = act[1]
                ev = {"event": "secure", "role": i["role"], "ka": i["ka"], "sas": i["sas"],
                      "self_key": _hex(i["self_key"]), "self_salt": _hex(i["self_salt"]),
                      "peer_key": _hex(i["peer_key"]), "peer_salt": _hex(i["peer_salt"]),
                      "cache": i["cache"], "verified": i["verified"], "hash": i["hash"], "cipher": i["cipher"],
                      "auth": i["auth"], "sas_type": i["sas_type"]}
                rs1 = s.retained_secret()
                if rs1 is not None:
                    ev["rs1"] = _hex(rs1)
                _emit(ev)
                result["rc"] = 0
                result["until"] = now + args.linger_ms
            elif act[0] == "failed" and result["rc"] is None:
                _emit({"event": "failed", "reason": act[1]})
                result["rc"] = 2
                result["until"] = now + 50     # let an Error message leave
            elif act[0] == "cache_error":
                _emit({"event": "cache_error", "file": args.cache, "reason": act[1]})
            elif act[0] == "cache_mismatch":
                trace("cache mismatch with peer ZID %s: compare the SAS" % act[1]["peer_zid"])

    handle(early, 0)
    handle(s.tick(0), 0)
    try:
        while True:
            now = _ms() - t0
            if result["rc"] is not None and now >= result["until"]:
                return result["rc"]
            if result["rc"] is None and now >= args.timeout_ms:
                _emit({"event": "failed", "reason": "timeout after %d ms in state %s" % (args.timeout_ms, s.state)})
                return 2
            r, _, _ = select.select([sock], [], [], _TICK_S)
            now = _ms() - t0
            if r:
                try:
                    data = sock.recv(4096)
                except OSError:
                    data = None     # ICMP port unreachable from an earlier send: the peer is not up yet
                if data:
                    if packet.looks_like_zrtp(data) and len(data) >= 24:
                        trace("%6d <- %s" % (now, data[16:24].decode("ascii", "replace")))
                    handle(s.receive(data, now), now)
            handle(s.tick(now), now)
    finally:
        sock.close()

