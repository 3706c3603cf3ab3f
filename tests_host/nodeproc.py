"""Start the real node (`tools/microwitch run`) as a subprocess for tests and benchmarks, and drive sipp.

Node(workdir, config=None, users=()) writes a config file and a state directory under `workdir`, imports the
users with `microwitch user import`, starts `microwitch run` on loopback ports chosen by the kernel (port 0),
waits for its `listening PROTO:HOST:PORT` lines and keeps collecting its output in a thread so the pipe never
fills. `kill()` is SIGKILL, `stop()` is SIGTERM then SIGKILL, `restart()` starts again on the same ports and
state directory. `bindings()` calls `microwitch bindings --state DIR --json`.

run_sipp(...) runs sipp with a statistics file and returns a SippResult (exit code, successful/failed calls,
elapsed seconds, message log text). Every wait here is bounded by a deadline.
"""
import csv
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MICROWITCH = os.path.join(REPO, "tools", "microwitch")
SIPP_DIR = os.path.join(REPO, "tests_host", "sipp")
HOST = "127.0.0.1"
DOMAIN = "localhost"
MAX_OUTPUT_LINES = 200000   # lines of node output kept; older ones are dropped


def password_for(user):
    """The password rule shared with tools/bench/kamailio-registrar.cfg: user U has password 'pw-U'."""
    return "pw-" + user


def make_users(n, prefix="u", domain=DOMAIN, start=0):
    """[(user, password, domain)] for n users named PREFIX00000.. with the shared password rule."""
    return [("%s%05d" % (prefix, i), password_for("%s%05d" % (prefix, i)), domain) for i in range(start, start + n)]


def write_users(path, users, sipp=False):
    """Write `user;password;domain` lines; with sipp=True the first line is SEQUENTIAL (sipp -inf)."""
    with open(path, "w") as f:
        if sipp:
            f.write("SEQUENTIAL\n")
        for u in users:
            f.write("%s;%s;%s\n" % tuple(u))
    return path


_HANDED_OUT = set()  # ports this test process already gave to someone


def free_port(proto="udp", host=HOST):
    """A port the kernel just gave us for `proto`, never one handed out before in this process.

    The socket is closed again, so until the caller binds it the kernel may offer the same port to the next
    caller: two peers started together then shared one port (linphonec binds with SO_REUSEADDR, and a call to
    one phone rang the other). Remembering what was handed out closes that race.
    """
    for _ in range(100):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM)
        try:
            s.bind((host, 0))
            port = s.getsockname()[1]
        finally:
            s.close()
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port
    raise RuntimeError("no fresh %s port after 100 tries" % proto)


def free_port_run(n, host=HOST):
    """The first of `n` consecutive free UDP ports, the first one even, none handed out before: what a media
    peer binds from one base (sipp -mp: audio RTP, RTCP, video RTP, RTCP; linphonec's audio and video)."""
    for _ in range(100):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.bind((host, 0))
            base = s.getsockname()[1] & ~1
        finally:
            s.close()
        run = range(base, base + n)
        if base < 1024 or base + n > 65536 or any(p in _HANDED_OUT for p in run):
            continue
        socks = []
        try:
            for p in run:  # all bound at once: each is free right now
                t = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(t)
                t.bind((host, p))
        except OSError:
            continue
        finally:
            for t in socks:
                t.close()
        _HANDED_OUT.update(run)
        return base
    raise RuntimeError("no run of %d free UDP ports after 100 tries" % n)


def microwitch_cli(args, state=None, input_text=None, timeout=60, check=True):
    """Run `tools/microwitch ARGS [--state DIR]`; returns CompletedProcess (text)."""
    cmd = [sys.executable, MICROWITCH] + list(args)
    if state is not None:
        cmd += ["--state", state]
    p = subprocess.run(cmd, input=input_text, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    if check and p.returncode != 0:
        raise RuntimeError("microwitch %s failed (%d): %s%s" % (" ".join(args), p.returncode, p.stdout, p.stderr))
    return p


def pss_kb(pid):
    """Proportional set size of one process in kB (shared pages split between sharers), 0 if it is gone."""
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_kb(pid):
    """Resident set size of one process in kB (VmRSS from /proc), 0 if it is gone."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class NodeError(Exception):
    pass


class Node:
    """The real node as a child process. See the module docstring."""

    def __init__(self, workdir, config=None, users=(), transports=("udp", "tcp"), host=HOST, domain=DOMAIN):
        self.workdir = workdir
        self.state = os.path.join(workdir, "state")
        self.config_path = os.path.join(workdir, "node.json")
        self.host = host
        self.transports = tuple(transports)
        self.config = {"domain": domain, "log_level": "info"}
        self.config.update(config or {})
        self.users = list(users)
        self.ports = {p: 0 for p in self.transports}   # 0: let the kernel choose on first start
        self.proc = None
        self.lines = []
        self._lock = threading.Lock()
        self._reader = None
        self.starts = 0

    # -- life cycle ------------------------------------------------------------------------------------
    def start(self, timeout=30.0):
        os.makedirs(self.state, exist_ok=True)
        cfg = dict(self.config)
        cfg["listen"] = ["%s:%s:%d" % (p, self.host, self.ports[p]) for p in self.transports]
        with open(self.config_path, "w") as f:
            json.dump(cfg, f, indent=1)
        if self.users and self.starts == 0:
            path = write_users(os.path.join(self.workdir, "users.csv"), self.users)
            microwitch_cli(["user", "import", path], state=self.state, timeout=max(60, len(self.users) / 50))
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [sys.executable, MICROWITCH, "run", "--config", self.config_path, "--state", self.state],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True, cwd=REPO,
            env=env, bufsize=1)
        self.starts += 1
        mark = len(self.lines)
        self._reader = threading.Thread(target=self._read, args=(self.proc,), daemon=True)
        self._reader.start()
        deadline = time.monotonic() + timeout
        seen = {}
        while time.monotonic() < deadline:
            with self._lock:
                new = self.lines[mark:]
            for line in new:
                parts = line.split()
                if len(parts) >= 2 and parts[0] == "listening":
                    spec = parts[1].split(":")
                    if spec[0] in self.ports:
                        seen[spec[0]] = int(spec[-1])
            if len(seen) == len(self.transports):
                self.ports.update(seen)
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        out = self.output()
        self.kill()
        raise NodeError("node did not report listening on %s within %.0fs; output:\n%s"
                        % (", ".join(self.transports), timeout, out[-4000:]))

    def _read(self, proc):
        for line in proc.stdout:
            with self._lock:
                self.lines.append(line.rstrip("\n"))
                if len(self.lines) > MAX_OUTPUT_LINES:
                    del self.lines[:len(self.lines) - MAX_OUTPUT_LINES]
        proc.stdout.close()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        """SIGKILL, as a power cut would; waits for the process to be gone."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        rc = self.proc.wait(timeout=10)
        self._join()
        return rc

    def stop(self, timeout=10.0):
        """SIGTERM, then SIGKILL after `timeout`; returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGKILL)
                self.proc.wait(timeout=10)
        self._join()
        return self.proc.returncode

    def restart(self, timeout=30.0):
        """Start again from the same state directory and on the same ports."""
        if self.alive():
            self.stop()
        return self.start(timeout=timeout)

    def _join(self):
        if self._reader is not None:
            self._reader.join(timeout=5)
            self._reader = None

    def __enter__(self):
        return self.start() if self.proc is None else self

    def __exit__(self, *exc):
        self.stop()
        return False

    # -- views -----------------------------------------------------------------------------------------
    @property
    def udp(self):
        return (self.host, self.ports["udp"])

    @property
    def tcp(self):
        return (self.host, self.ports["tcp"])

    @property
    def pid(self):
        return self.proc.pid

    def output(self):
        with self._lock:
            return "\n".join(self.lines)

    def rss_kb(self):
        return rss_kb(self.proc.pid) if self.alive() else 0

    def cli(self, *args, input_text=None, check=True, timeout=60):
        return microwitch_cli(list(args), state=self.state, input_text=input_text, check=check, timeout=timeout)

    def bindings(self):
        """[{"aor", "contact", "expires", "source", ...}] from `microwitch bindings --state DIR --json`."""
        p = self.cli("bindings", "--json")
        return json.loads(p.stdout)


def sipp_node_config(**extra):
    """Node config overrides for sipp runs. sipp 3.6.1 aborts ("createAuthHeader: authentication must use MD5
    or AKAv1-MD5") when the first WWW-Authenticate of a 401 is SHA-256, so when the node lets the challenge
    order be configured (`digest_algorithms`), MD5 goes first for sipp (SHA-256 is still offered)."""
    cfg = dict(extra)
    try:
        from microwitch.config import SCHEMA
    except ImportError:
        SCHEMA = {}
    if "digest_algorithms" in SCHEMA:
        cfg["digest_algorithms"] = ["MD5", "SHA-256"]
    return cfg


# -- sipp ------------------------------------------------------------------------------------------------
class SippResult:
    def __init__(self, rc, stats, elapsed, messages, errors, stdout):
        self.rc = rc
        self.stats = stats            # last row of the -stf file as {column: text}
        self.elapsed = elapsed        # wall-clock seconds of the sipp run
        self.messages = messages      # -message_file text ("" unless trace=True)
        self.errors = errors          # -error_file text
        self.stdout = stdout

    def count(self, column):
        try:
            return int(self.stats.get(column, "0") or 0)
        except ValueError:
            return 0

    @property
    def successful(self):
        return self.count("SuccessfulCall(C)")

    @property
    def failed(self):
        return self.count("FailedCall(C)")

    def __repr__(self):
        return "SippResult(rc=%s, ok=%d, failed=%d, elapsed=%.2fs, errors=%r)" % (
            self.rc, self.successful, self.failed, self.elapsed, self.errors[-1500:])


def sipp_available():
    return subprocess.run(["sh", "-c", "command -v sipp"], capture_output=True).returncode == 0


def run_sipp(target, scenario, workdir, users=None, count=1, rate=None, limit=None, transport="udp",
             extra=(), timeout_s=60, trace=False, auth_uri=DOMAIN, tag="sipp"):
    """Run sipp against target=(host, port) with a scenario file (name in tests_host/sipp or a path).

    `users` is a list of (user, password, domain) written as the injection file; `count` is -m; `rate` -r
    (calls/s); `limit` -l (calls in flight); `timeout_s` bounds the whole run (-timeout) and the process.
    """
    path = scenario if os.sep in scenario else os.path.join(SIPP_DIR, scenario)
    stf = os.path.join(workdir, tag + "_stat.csv")
    err = os.path.join(workdir, tag + "_err.log")
    msg = os.path.join(workdir, tag + "_msg.log")
    for f in (stf, err, msg):
        if os.path.exists(f):
            os.unlink(f)
    cmd = ["sipp", "%s:%d" % target, "-sf", path, "-m", str(count), "-i", HOST,
           "-p", str(free_port("tcp" if transport == "tcp" else "udp")), "-nostdin", "-default_behaviors", "all,-bye",
           "-timeout", "%ds" % timeout_s, "-timeout_error", "-max_retrans", "7", "-buff_size", "4194304",
           "-trace_stat", "-stf", stf, "-fd", "1", "-trace_err", "-error_file", err]
    if transport == "tcp":
        cmd += ["-t", "t1"]
    if auth_uri:
        cmd += ["-auth_uri", auth_uri]
    if users is not None:
        cmd += ["-inf", write_users(os.path.join(workdir, tag + "_users.csv"), users, sipp=True)]
    if rate is not None:
        cmd += ["-r", str(rate)]
    if limit is not None:
        cmd += ["-l", str(limit)]
    if trace:
        cmd += ["-trace_msg", "-message_file", msg]
    cmd += list(extra)
    t0 = time.monotonic()
    try:
        p = subprocess.run(cmd, capture_output=True, timeout=timeout_s + 15, cwd=workdir)
        rc, out = p.returncode, p.stdout.decode("latin-1")
    except subprocess.TimeoutExpired as e:
        rc, out = None, (e.stdout or b"").decode("latin-1")
    elapsed = time.monotonic() - t0
    return SippResult(rc, read_stats(stf), elapsed, _read(msg), _read(err), out[-3000:])


def read_stats(path):
    """Last row of a sipp -stf statistics file as a dict (empty if there is none)."""
    try:
        with open(path, newline="") as f:
            rows = [r for r in csv.reader(f, delimiter=";") if r]
    except OSError:
        return {}
    if len(rows) < 2:
        return {}
    return dict(zip(rows[0], rows[-1]))


def _read(path):
    try:
        with open(path, encoding="latin-1") as f:
            return f.read()
    except OSError:
        return ""


def sipp_messages(text):
    """Split a sipp -message_file into [(direction 'sent'|'received', message text with CRLF line ends)].

    Only for messages without a body (the log does not keep the exact bytes)."""
    out = []
    for block in text.split("----------------------------------------------- ")[1:]:
        head, _, rest = block.partition("\n")
        kind, _, body = rest.partition("\n")
        direction = "sent" if " sent" in kind else "received"
        text = body.replace("\r\n", "\n").strip("\n")
        out.append((direction, text.replace("\n", "\r\n") + "\r\n\r\n"))
    return out


# -- Kamailio (the reference registrar) -------------------------------------------------------------------
KAMAILIO_CFG = os.path.join(REPO, "tools", "bench", "kamailio-registrar.cfg")


class Kamailio:
    """Kamailio with tools/bench/kamailio-registrar.cfg on a loopback UDP port, in the foreground."""

    def __init__(self, workdir, nonce_expire=300, children=4, shm_mb=1024, stateless=False):
        self.workdir = workdir
        self.port = 0
        self.nonce_expire = nonce_expire
        self.children = children
        self.shm_mb = shm_mb
        self.stateless = stateless
        self.proc = None
        self.log_path = os.path.join(workdir, "kamailio.log")

    def start(self, timeout=20.0):
        os.makedirs(self.workdir, exist_ok=True)
        self.port = free_port("udp")
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            ["kamailio", "-f", KAMAILIO_CFG, "-DD", "-E", "-m", str(self.shm_mb), "-M", "32",
             "-l", "udp:%s:%d" % (HOST, self.port), "-P", os.path.join(self.workdir, "kamailio.pid"),
             "-Y", self.workdir, "-A", "NONCE_EXPIRE=%d" % self.nonce_expire, "-A", "CHILDREN=%d" % self.children]
            + (["-A", "STATELESS"] if self.stateless else []),
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.workdir,
            start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise NodeError("kamailio exited: " + _read(self.log_path)[-3000:])
            if options_ping(("udp", HOST, self.port), timeout=0.2) == 200:
                return self
        self.stop()
        raise NodeError("kamailio did not answer OPTIONS: " + _read(self.log_path)[-3000:])

    def pids(self):
        """The main process and its children (Kamailio forks its workers)."""
        out = [self.proc.pid]
        try:
            with open("/proc/%d/task/%d/children" % (self.proc.pid, self.proc.pid)) as f:
                out += [int(x) for x in f.read().split()]
        except OSError:
            pass
        return out

    def rss_kb(self):
        return sum(rss_kb(p) for p in self.pids())

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)   # its own session: only the processes we started
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        if getattr(self, "_log", None):
            self._log.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False


# -- a bare SIP client for probes -------------------------------------------------------------------------
def sip_request(method, uri, branch, call_id, cseq, local, extra=(), body=b"", transport="UDP", from_user="probe"):
    """Bytes of a minimal request; `local` is the (host, port) written in Via/Contact."""
    lines = ["%s %s SIP/2.0" % (method, uri),
             "Via: SIP/2.0/%s %s:%d;rport;branch=%s" % (transport, local[0], local[1], branch),
             "Max-Forwards: 70",
             "From: <sip:%s@%s>;tag=t%s" % (from_user, DOMAIN, branch[-8:]),
             "To: <sip:%s@%s>" % (from_user, DOMAIN),
             "Call-ID: %s" % call_id,
             "CSeq: %d %s" % (cseq, method)]
    lines += list(extra)
    lines.append("Content-Length: %d" % len(body))
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def status_of(data):
    """Status code of a response (bytes), or None."""
    if not data.startswith(b"SIP/2.0 "):
        return None
    try:
        return int(data[8:11])
    except ValueError:
        return None


def options_ping(addr, timeout=1.0):
    """Send one OPTIONS over addr=(proto, host, port); return the final status code or None."""
    proto, host, port = addr
    n = "%08x" % (int(time.monotonic() * 1e6) & 0xffffffff)
    if proto == "udp":
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.bind((HOST, 0))
            s.settimeout(timeout)
            s.sendto(sip_request("OPTIONS", "sip:%s" % DOMAIN, "z9hG4bK" + n, "ping-" + n, 1, s.getsockname()),
                     (host, port))
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                try:
                    data = s.recv(65535)
                except OSError:
                    return None
                st = status_of(data)
                if st is not None and st >= 200:
                    return st
            return None
        finally:
            s.close()
    s = socket.create_connection((host, port), timeout=timeout)
    try:
        s.settimeout(timeout)
        s.sendall(sip_request("OPTIONS", "sip:%s" % DOMAIN, "z9hG4bK" + n, "ping-" + n, 1, s.getsockname(),
                              transport="TCP"))
        buf = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65535)
            except OSError:
                return None
            if not chunk:
                return None
            buf += chunk
            st = status_of(buf)
            if st is not None and st >= 200 and b"\r\n\r\n" in buf:
                return st
        return None
    finally:
        s.close()
