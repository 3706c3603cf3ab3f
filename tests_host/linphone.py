"""A small driver for headless linphonec instances (Debian `linphone-cli`, liblinphone 5.1) in tests.

Linphone(workdir, name, user, password, domain, proxy=(host, port), sip_port, rtp_port) writes a fresh rc file
and HOME per instance (liblinphone 5.1 silently never opens a SIP socket when it cannot open its database, and
the ZRTP cache lives in $HOME: see ../shared/notes/peers.md), starts `linphonec -c RC -d 6 -l LOG` with stdin
a pipe we keep open (at end-of-file linphonec spins instead of exiting), and collects stdout in a thread.
`command(text)` sends one console command; `wait_out(regex)` / `wait_log(regex)` wait (bounded) for a line on
stdout or in the log; `stop()` sends `terminate` and `quit`, then SIGTERM/SIGKILL if it lingers.

Evidence lines (stdout): "Call N with sip:... connected.", "Call N is fully encrypted and auth token is XXXX."
(failure: "is not fully encrypted"); log: "... to [LinphoneRegistrationOk]".
"""
import math
import os
import re
import signal
import struct
import subprocess
import threading
import time
import wave

RC_TEMPLATE = """[sip]
sip_port={sip_port}
sip_tcp_port=0
sip_tls_port=0
bind_address={host}
use_ipv6=0
ipv6_migration_done=1
supported=replaces
default_proxy=0
media_encryption={encryption}
media_encryption_mandatory={mandatory}
register_only_when_network_is_up=0

[net]
firewall_policy=0

[rtp]
bind_address={host}
audio_rtp_port={rtp_port}
video_rtp_port={video_port}
audio_jitt_comp=60

[video]
enabled=0
capture=0
display=0

[sound]
echocancellation=0

[storage]
uri={home}/linphone.db
call_logs_db_uri={home}/call-history.db
zrtp_secrets_db_uri={home}/zrtp-secrets.db

[misc]
uuid=

[proxy_0]
reg_proxy=<sip:{proxy_host}:{proxy_port};transport=udp>
reg_route=<sip:{proxy_host}:{proxy_port};transport=udp;lr>
reg_identity=sip:{user}@{domain}
reg_expires={expires}
reg_sendregister=1
publish=0
dial_escape_plus=0

[auth_info_0]
username={user}
passwd={password}
realm={realm}
domain={domain}
"""


def write_tone(path, seconds=3.0, rate=8000, hz=440.0):
    """A mono 16-bit 8 kHz sine WAV for `play` (so SRTP actually flows during the call)."""
    n = int(seconds * rate)
    frames = b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * hz * i / rate))) for i in range(n))
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(frames)
    return path


def available():
    return subprocess.run(["sh", "-c", "command -v linphonec"], capture_output=True).returncode == 0


# Bounded waits that return as soon as the line comes. Start to registration takes under 1 s on an idle machine;
# a loaded CI host once took 10 s (7 s before linphonec wrote its first log line), so the budgets are generous.
START_S = 60.0
CALL_S = 60.0  # dial to "fully encrypted"

RUNNING = set()  # started and not stopped: conftest stops what a failed test left behind


def stop_leftovers():
    """Stop every linphonec a test started and did not stop (each one spins a CPU core)."""
    for ph in list(RUNNING):
        ph.stop(timeout=2.0)


class Linphone:
    """One linphonec process. See the module docstring."""

    def __init__(self, workdir, name, user, password, domain, proxy, sip_port, rtp_port, realm=None,
                 host="127.0.0.1", expires=600, auto_answer=True, encryption="zrtp", mandatory=True):
        self.name = name
        self.dir = os.path.join(workdir, name)
        self.home = os.path.join(self.dir, "home")
        self.rc = os.path.join(self.dir, "linphonerc")
        self.log_path = os.path.join(self.dir, "linphone.log")
        self.user = user
        self.domain = domain
        self.sip_port = sip_port
        self.rtp_port = rtp_port
        self.auto_answer = auto_answer
        self.params = dict(sip_port=sip_port, rtp_port=rtp_port, video_port=rtp_port + 2, host=host,
                           home=self.home, proxy_host=proxy[0], proxy_port=proxy[1], user=user, password=password,
                           domain=domain, realm=realm or domain, expires=expires, encryption=encryption,
                           mandatory=1 if mandatory else 0)
        self.proc = None
        self.lines = []
        self._lock = threading.Lock()
        self._reader = None

    def start(self):
        os.makedirs(os.path.join(self.home, ".local", "share", "linphone"), exist_ok=True)
        with open(self.rc, "w") as f:  # fresh every run: linphonec rewrites the file on exit
            f.write(RC_TEMPLATE.format(**self.params))
        if os.path.exists(self.log_path):
            os.unlink(self.log_path)
        env = dict(os.environ, HOME=self.home)
        env.pop("DISPLAY", None)
        cmd = ["linphonec", "-c", self.rc, "-d", "6", "-l", self.log_path] + (["-a"] if self.auto_answer else [])
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     cwd=self.dir, env=env, text=True, bufsize=1, start_new_session=True)
        RUNNING.add(self)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        return self

    def _read(self):
        for line in self.proc.stdout:
            with self._lock:
                self.lines.append(line.rstrip("\n"))

    def command(self, text):
        if self.proc is None or self.proc.poll() is not None:
            raise RuntimeError("linphonec %s is not running" % self.name)
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()

    def output(self):
        with self._lock:
            return "\n".join(self.lines)

    def log(self):
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def _wait(self, source, pattern, timeout):
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(source())
            if m:
                return m
            if time.monotonic() >= deadline:
                return None
            if self.proc.poll() is not None:
                m = rx.search(source())
                return m
            time.sleep(0.05)

    def wait_out(self, pattern, timeout=10.0):
        """The first match of `pattern` in stdout, waiting up to `timeout` s; None if it never came."""
        return self._wait(self.output, pattern, timeout)

    def wait_log(self, pattern, timeout=10.0):
        return self._wait(self.log, pattern, timeout)

    def wait_registered(self, timeout=START_S):
        return self.wait_log(r"to \[LinphoneRegistrationOk\]", timeout) is not None

    def stop(self, timeout=5.0):
        """terminate + quit; SIGTERM then SIGKILL to its own process group if it lingers."""
        RUNNING.discard(self)
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                self.command("terminate all")
                self.command("quit")
            except (OSError, RuntimeError, ValueError):
                pass
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGTERM)
                try:
                    self.proc.wait(timeout=3)
                except subprocess.TimeoutExpired:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                    self.proc.wait(timeout=5)
        try:
            self.proc.stdin.close()
        except (OSError, ValueError):
            pass
        if self._reader is not None:
            self._reader.join(timeout=5)
        return self.proc.returncode
