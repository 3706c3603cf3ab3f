"""`microwitch agent`: a command-line softphone. Registers to a node, places or answers one call, runs ZRTP with
the peer, shows the SAS and whether the call is secure, plays a WAV file into the call and records what arrives.

Human output by default; --json prints one JSON object per line (registered, incoming, ringing, answered, waiting,
secure, insecure, cache_mismatch, cache_error, dtmf, ended, error). `waiting` (with reason) follows `answered` once
under --zrtp mandatory: no media is sent until ZRTP succeeds (then `secure`, or `insecure` and a hang-up). `dtmf`
(with digit) is a telephone-event (RFC 4733) the peer sent. `ended` carries the packet counts and an "rtcp" object
(null if media never started): reports sent/received, dropped (dropped_auth: failed SRTCP checks), withheld, mux,
rtt_ms and rtt_max_ms (null until a report answered one of our SRs), "in" (the stream we received: expected, lost,
loss_pct, jitter_ms) and "out" (ours as the peer's latest report saw it: lost, fraction_pct, jitter_ms; null
without a report). Exit code 0 after a call that ended normally (and was secure under --zrtp mandatory), 2 bad
arguments, 3 registration failed, 4 the call failed or was not secure, 5 no call came in, 6 overall time limit.
"""
import argparse
import json
import os
import socket
import sys

from microwitch.agent.endpoint import Endpoint
from microwitch.adapter.agent_loop import AgentLoop
from microwitch.compat import sockaddr
from microwitch.media.wav import WavReader, WavWriter, WavError
from microwitch.zrtp.cache import ZidCache
from microwitch.zrtp.cachefile import FileBackend

_FRAME_BYTES = 320                   # 20 ms of 8 kHz 16-bit PCM
_MAX_RECORD_SAMPLES = 8000 * 3600
_MAX_PLAY_S = 600                    # --play holds the whole file in memory: 10 min of 8 kHz 16-bit mono, 9.6 MB
_MAX_PLAY_SAMPLES = 8000 * _MAX_PLAY_S
_WAITING = "zrtp=mandatory: no media is sent until ZRTP succeeds"


def register(sub):
    p = sub.add_parser("agent", help="a softphone: register, call or answer, ZRTP, play/record WAV")
    p.add_argument("--user", required=True, metavar="sip:alice@DOMAIN", help="our address-of-record")
    p.add_argument("--password", required=True, help="digest password")
    p.add_argument("--proxy", required=True, metavar="HOST[:PORT]", help="the node (registrar and proxy), UDP")
    p.add_argument("--listen", metavar="ADDR:PORT", help="SIP address to bind (default: an ephemeral port on "
                                                         "the address that reaches the proxy)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--call", metavar="sip:bob@DOMAIN", help="call this address once registered")
    g.add_argument("--answer", action="store_true", help="answer the first incoming call")
    p.add_argument("--play", metavar="IN.wav", help="send this 8 kHz mono 16-bit WAV file into the call")
    p.add_argument("--record", metavar="OUT.wav", help="write the received audio (8 kHz mono 16-bit)")
    p.add_argument("--duration", type=float, metavar="S", help="hang up S seconds after the call is answered")
    p.add_argument("--zrtp", choices=("mandatory", "optional", "off"), default="mandatory",
                   help="mandatory: never send media in clear (default); optional: clear until ZRTP succeeds; "
                        "off: no ZRTP")
    p.add_argument("--cache", metavar="FILE", help="ZID cache file (key continuity between calls)")
    p.add_argument("--json", action="store_true", help="one JSON object per line instead of text")
    p.add_argument("--timeout", type=float, default=None, metavar="S", help=argparse.SUPPRESS)
    p.set_defaults(func=run)


def _fail(msg):
    print("microwitch agent: " + msg, file=sys.stderr)
    return 2


def _hostport(text, default_port, what):
    t = text.strip()
    if t.startswith("["):
        end = t.find("]")
        if end < 0:
            raise ValueError("%s: unterminated [ in %r" % (what, text))
        host, rest = t[1:end], t[end + 1:]
        port = rest[1:] if rest.startswith(":") else None
    elif t.count(":") == 1:
        host, port = t.split(":")
    else:
        host, port = t, None
    if not host:
        raise ValueError("%s: missing host in %r" % (what, text))
    if port is None or port == "":
        if default_port is None:
            raise ValueError("%s: missing port in %r (ADDR:PORT)" % (what, text))
        return host, default_port
    if not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError("%s: bad port %r" % (what, port))
    return host, int(port)


def read_pcm(path):
    """All PCM of an 8 kHz mono 16-bit WAV file; ValueError naming the file and what is wrong."""
    try:
        with open(path, "rb") as f:
            r = WavReader(f)
            data = r.read(_MAX_PLAY_SAMPLES + 1)     # one sample more tells a file that is too long
    except OSError as e:
        raise ValueError("--play %s: cannot read (%s)" % (path, e.strerror or e))
    except WavError as e:
        raise ValueError("--play %s: %s" % (path, e.reason))
    if len(data) > 2 * _MAX_PLAY_SAMPLES:
        raise ValueError("--play %s: longer than the limit of %d s (%d samples at 8 kHz)"
                         % (path, _MAX_PLAY_S, _MAX_PLAY_SAMPLES))
    return data


class _Player:
    """20 ms frames of the --play file, then None (silence)."""

    def __init__(self, pcm):
        self.pcm = pcm
        self.pos = 0

    def __call__(self):
        if self.pos >= len(self.pcm):
            return None
        f = self.pcm[self.pos:self.pos + _FRAME_BYTES]
        self.pos += _FRAME_BYTES
        return f


class _Recorder:
    """Received frames into the --record file (bounded: at most an hour of audio)."""

    def __init__(self, path):
        self.f = open(path, "wb")
        self.w = WavWriter(self.f)

    def __call__(self, pcm):
        if self.w.samples < _MAX_RECORD_SAMPLES:
            self.w.write(pcm)

    def close(self):
        self.w.close()
        self.f.close()


class _Human:
    def __init__(self, out):
        self.out = out

    def __call__(self, ev):
        e = ev["event"]
        w = self.out.write
        if e == "registered":
            w("registered as %s (contact %s, expires %d s)\n" % (ev["aor"], ev["contact"], ev["expires"]))
        elif e == "incoming":
            w("incoming call from %s%s\n" % (ev["from"], " (rejected: busy)" if ev.get("rejected") else ""))
        elif e == "ringing":
            w("ringing\n")
        elif e == "answered":
            w("answered (%s); media starting\n" % ev.get("codec"))
        elif e == "waiting":
            w("WAITING for ZRTP: %s\n" % ev["reason"])
        elif e == "secure":
            w("SECURE  SAS: %s   (%s/%s, %s, %s, cache %s)\n" % (ev["sas"], ev["cipher"], ev["auth"], ev["ka"],
                                                              ev["hash"], ev["cache"]))
            w("        read the SAS to your peer; if it differs, someone is in the middle\n")
        elif e == "cache_mismatch":
            w("*** WARNING: ZRTP CACHE MISMATCH with peer ZID %s ***\n" % ev["peer_zid"])
            w("*** %s; SAS is %s ***\n" % (ev["reason"], ev["sas"]))
        elif e == "insecure":
            w("NOT SECURE: %s\n" % ev["reason"])
        elif e == "cache_error":
            w("WARNING: %s\n" % ev["reason"])
        elif e == "ended":
            w("call ended: %s (%s; RTP sent %d, received %d; SRTP sent %d, received %d)\n"
              % (ev["reason"], "was secure" if ev.get("secure") else "was NOT secure", ev.get("rtp_sent", 0),
                 ev.get("rtp_received", 0), ev.get("srtp_sent", 0), ev.get("srtp_received", 0)))
            r = ev.get("rtcp")
            if r:
                w("        %s\n" % _rtcp_line(r))
        elif e == "dtmf":
            w("DTMF %s\n" % ev["digit"])
        elif e == "error":
            w("error: %s\n" % ev["reason"])
        else:
            w("%s\n" % json.dumps(ev))
        self.out.flush()


def _rtcp_line(r):
    """One line of RTCP figures from the `ended` event's "rtcp" object."""
    parts = ["RTCP: %d reports sent, %d received" % (r.get("sent", 0), r.get("received", 0))]
    if r.get("dropped"):
        parts.append("%d refused" % r["dropped"])
    parts.append("rtt %s ms" % r["rtt_ms"] if r.get("rtt_ms") is not None else "rtt unknown")
    i = r.get("in") or {}
    parts.append("in: lost %d of %d (%.2f%%), jitter %.1f ms" % (i.get("lost", 0), i.get("expected", 0),
                                                                   i.get("loss_pct", 0.0), i.get("jitter_ms", 0.0)))
    o = r.get("out")
    if o:
        parts.append("out (peer's view): lost %d (%.2f%% last interval), jitter %.1f ms"
                     % (o["lost"], o["fraction_pct"], o["jitter_ms"]))
    else:
        parts.append("out: no report from the peer")
    return "; ".join(parts)


def _json(ev):
    sys.stdout.write(json.dumps(ev) + "\n")
    sys.stdout.flush()


def run(args):
    try:
        proxy = _hostport(args.proxy, 5060, "--proxy")
        listen = _hostport(args.listen, None, "--listen") if args.listen else None
    except ValueError as e:
        return _fail(str(e))
    if not args.user.startswith("sip:") or "@" not in args.user:
        return _fail("--user must look like sip:alice@DOMAIN, got %r" % args.user)
    if args.call is not None and (not args.call.startswith(("sip:", "sips:")) or "@" not in args.call):
        return _fail("--call must look like sip:bob@DOMAIN, got %r" % args.call)
    if args.duration is not None and not 0 < args.duration <= 86400:
        return _fail("--duration must be between 0 and 86400 seconds")
    player = None
    if args.play:
        try:
            player = _Player(read_pcm(args.play))
        except ValueError as e:
            return _fail(str(e))
    cache = None
    if args.cache:
        cache, err = open_cache(args.cache)
        if err:
            return _fail(err)
    recorder = None
    if args.record:
        try:
            recorder = _Recorder(args.record)
        except OSError as e:
            return _fail("--record %s: cannot write (%s)" % (args.record, e.strerror or e))
    try:
        pai = socket.getaddrinfo(proxy[0], proxy[1], 0, socket.SOCK_DGRAM)[0]
    except OSError as e:
        return _fail("--proxy %s: cannot resolve (%s)" % (proxy[0], e))
    if listen is None:
        probe = socket.socket(pai[0], socket.SOCK_DGRAM)
        try:
            probe.connect(pai[4])
            host = probe.getsockname()[0]
        except OSError as e:
            return _fail("--proxy %s: no route (%s)" % (args.proxy, e))
        finally:
            probe.close()
        listen = (host, 0)
    try:
        lai = socket.getaddrinfo(listen[0], listen[1], 0, socket.SOCK_DGRAM)[0]
        sip_sock = socket.socket(lai[0], socket.SOCK_DGRAM)
        sip_sock.bind(lai[4])
        media_sock = socket.socket(lai[0], socket.SOCK_DGRAM)
        media_sock.bind((lai[4][0], 0) + tuple(lai[4][2:]))
    except OSError as e:
        return _fail("--listen %s:%d: cannot bind (%s)" % (listen[0], listen[1], e.strerror or e))
    sip_local = sockaddr(sip_sock.getsockname())
    media_local = sockaddr(media_sock.getsockname())
    opts = {"user": args.user, "password": args.password, "proxy": ("udp", pai[4][0], pai[4][1]),
            "sip_local": sip_local, "media_local": media_local, "call": args.call, "answer": args.answer,
            "duration_ms": int(args.duration * 1000) if args.duration else None, "zrtp": args.zrtp}
    report = _json if args.json else _Human(sys.stdout)
    ep = Endpoint(opts, os.urandom, cache, 0, player, recorder)
    loop = AgentLoop(ep, sip_sock, media_sock, report,
                     log=lambda m: print("microwitch agent: " + m, file=sys.stderr, flush=True))
    if args.timeout is not None:
        limit = args.timeout
    else:
        limit = (args.duration or 3600) + (150 if args.answer else 90)
    try:
        code = loop.run(int(limit * 1000))
    finally:
        sip_sock.close()
        media_sock.close()
        if recorder is not None:
            recorder.close()
    return code


def open_cache(path):
    """(ZidCache, None) for --cache FILE, or (None, one line naming the file and what is wrong). The cache is
    loaded, our ZID settled (FILE.id) and FILE opened for appending here, so that a missing directory, a
    directory given as FILE or a file we cannot write is a bad argument now; a write that fails later, mid-call,
    is the endpoint's cache_error event."""
    if os.path.isdir(path):
        return None, "--cache %s: is a directory; give a file name inside it (e.g. %s)" % (
            path, os.path.join(path, "agent.zid"))
    try:
        cache = ZidCache(FileBackend(path), rand=os.urandom)
    except OSError as e:
        where = ": " + e.filename if e.strerror and e.filename and e.filename != path else ""
        return None, "--cache %s: cannot open the ZID cache (%s%s)" % (path, e.strerror or e, where)
    err = _identity(path + ".id", cache, path)
    if err:
        return None, err
    try:
        open(path, "ab").close()
    except OSError as e:
        return None, "--cache %s: cannot write the ZID cache (%s)" % (path, e.strerror or e)
    return cache, None


def _identity(path, cache, cache_file):
    """Our ZID lives in FILE.id beside the cache FILE. Losing the cache (the retained secrets) must not
    silently make the device a stranger with a new ZID: the peer then sees the same ZID without the shared
    secret and reports a cache mismatch (RFC 6189 §4.6.1.1), which is what a user has to be told."""
    try:
        with open(path) as f:
            text = f.read().strip()
    except FileNotFoundError:
        text = None
    except (OSError, UnicodeError) as e:
        return "--cache: cannot read our ZID from %s (%s)" % (path, getattr(e, "strerror", None) or e)
    try:
        if text is not None:
            try:
                zid = bytes.fromhex(text)
                cache.set_zid(zid)
            except ValueError:
                return "--cache: %s is not a ZID (24 hex digits); remove it to start a new identity" % path
            return None
        zid = cache.zid()
    except OSError as e:
        return "--cache %s: cannot write the ZID cache (%s)" % (cache_file, e.strerror or e)
    tmp = path + ".tmp"
    try:
        with open(tmp, "w") as f:
            f.write(zid.hex() + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        return "--cache: cannot write our ZID to %s (%s)" % (path, e.strerror or e)
    return None
