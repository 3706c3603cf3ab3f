"""Network namespaces for federation tests (root and `ip netns` needed; see ../shared/notes/peers.md).

`Lab(prefix, members)` creates one hub namespace holding a bridge and one namespace per member, each joined to the
bridge by a veth pair created directly inside the namespaces, with addresses from a private /24 that exists only
in there (the root namespace gets no links or addresses). `members` maps a short name to its list of IPv4
addresses (the first is the primary). `resolv(name, ip)` writes /etc/netns/NS/resolv.conf, which `ip netns exec`
bind-mounts over /etc/resolv.conf for processes started with `popen`/`run`. Every process started here is
tracked and stopped by its pid in `close()`, which also deletes the namespaces and /etc/netns entries.

The lab refuses to start when any namespace with its prefix already exists (someone else's run, or a leftover):
it never deletes what it did not create. Use it as a context manager.
"""
import os
import shutil
import signal
import subprocess
import time

PREFIX = "mwfed"
NETMASK = 24


class LabError(Exception):
    pass


def available():
    """(ok, reason): can this process build namespaces?"""
    if os.geteuid() != 0:
        return False, "needs root (ip netns)"
    if shutil.which("ip") is None:
        return False, "iproute2 (ip) not installed"
    try:
        subprocess.run(["ip", "netns", "list"], check=True, capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError) as e:
        return False, "ip netns unusable: %s" % e
    return True, ""


def _ip(*args, check=True):
    p = subprocess.run(["ip"] + list(args), capture_output=True, text=True, timeout=20)
    if check and p.returncode != 0:
        raise LabError("ip %s: %s" % (" ".join(args), p.stderr.strip()))
    return p


def existing(prefix=PREFIX):
    out = _ip("netns", "list").stdout
    return [line.split()[0] for line in out.splitlines() if line.split() and line.split()[0].startswith(prefix + "-")]


class Lab:
    def __init__(self, members, prefix=PREFIX):
        self.prefix = prefix
        self.members = dict(members)
        self.hub = prefix + "-hub"
        self.created = []
        self.etc = []
        self.procs = []

    def ns(self, name):
        return "%s-%s" % (self.prefix, name)

    # -- life cycle ------------------------------------------------------------------------------------------
    def up(self):
        left = existing(self.prefix)
        if left:
            raise LabError("namespaces %s already exist: another run or a leftover; refusing to touch them "
                           "(remove them with `ip netns del NAME` if they are yours)" % ", ".join(left))
        try:
            self._add(self.hub)
            _ip("-n", self.hub, "link", "add", "br0", "type", "bridge")
            _ip("-n", self.hub, "link", "set", "br0", "up")
            _ip("-n", self.hub, "link", "set", "lo", "up")
            for k, (name, addrs) in enumerate(self.members.items()):
                ns = self.ns(name)
                self._add(ns)
                port = "v%d" % k
                _ip("-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", port, "netns", self.hub)
                _ip("-n", self.hub, "link", "set", port, "master", "br0")
                _ip("-n", self.hub, "link", "set", port, "up")
                for a in addrs:
                    _ip("-n", ns, "addr", "add", "%s/%d" % (a, NETMASK), "dev", "eth0")
                _ip("-n", ns, "link", "set", "eth0", "up")
                _ip("-n", ns, "link", "set", "lo", "up")
            self._wait_links()
        except Exception:
            self.close()
            raise
        return self

    def _add(self, ns):
        _ip("netns", "add", ns)
        self.created.append(ns)

    def _wait_links(self, timeout=10.0):
        """Wait until every member's addresses are usable (IPv4 has no DAD, but links come up asynchronously)."""
        deadline = time.monotonic() + timeout
        for name in self.members:
            while True:
                out = _ip("-n", self.ns(name), "-o", "link", "show", "eth0").stdout
                if "LOWER_UP" in out or "state UP" in out:
                    break
                if time.monotonic() > deadline:
                    raise LabError("eth0 in %s did not come up" % self.ns(name))
                time.sleep(0.05)

    def resolv(self, name, nameserver):
        d = os.path.join("/etc/netns", self.ns(name))
        os.makedirs(d, exist_ok=True)
        self.etc.append(d)
        with open(os.path.join(d, "resolv.conf"), "w") as f:
            f.write("nameserver %s\n" % nameserver)

    def close(self):
        for p in reversed(self.procs):
            stop(p)
        self.procs = []
        for ns in reversed(self.created):
            _ip("netns", "del", ns, check=False)
        self.created = []
        for d in self.etc:
            shutil.rmtree(d, ignore_errors=True)
        self.etc = []

    def __enter__(self):
        return self.up()

    def __exit__(self, *exc):
        self.close()
        return False

    # -- processes -------------------------------------------------------------------------------------------
    def cmd(self, name, argv):
        return ["ip", "netns", "exec", self.ns(name)] + list(argv)

    def popen(self, name, argv, **kw):
        kw.setdefault("stdin", subprocess.DEVNULL)
        p = subprocess.Popen(self.cmd(name, argv), **kw)
        self.procs.append(p)
        return p

    def run(self, name, argv, timeout=60, **kw):
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        return subprocess.run(self.cmd(name, argv), timeout=timeout, **kw)

    def forget(self, p):
        if p in self.procs:
            self.procs.remove(p)


def stop(p, timeout=5.0):
    """SIGTERM, then SIGKILL, by pid; returns the exit code."""
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.send_signal(signal.SIGKILL)
            p.wait(timeout=timeout)
    return p.returncode


def dnsmasq_argv(listen, records, log_file, ttl, naptr=(), srv=(), hosts=()):
    """An authoritative-only dnsmasq for the .test zone (peers.md recipe). hosts: [(name, ip)];
    srv: [(service_name, target, port, prio, weight)]; naptr: [(domain, order, pref, flags, service, repl)]."""
    argv = ["dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--pid-file=", "--no-resolv",
            "--no-hosts", "--no-poll", "--bind-interfaces", "--listen-address=" + listen, "--local=/test/",
            "--local-ttl=%d" % ttl, "--log-queries", "--log-facility=" + log_file, "--user=root"]
    for name, ip in hosts:
        argv.append("--host-record=%s,%s" % (name, ip))
    for name, target, port, prio, weight in srv:
        argv.append("--srv-host=%s,%s,%d,%d,%d" % (name, target, port, prio, weight))
    for domain, order, pref, flags, service, repl in naptr:
        argv.append("--naptr-record=%s,%d,%d,%s,%s,,%s" % (domain, order, pref, flags, service, repl))
    return argv + list(records)


def count_queries(log_file, name=None):
    """Queries dnsmasq logged (`query[TYPE] NAME from ...`), optionally only for one name."""
    try:
        with open(log_file) as f:
            text = f.read()
    except OSError:
        return 0
    n = 0
    for line in text.splitlines():
        if "query[" in line and (name is None or (" %s " % name) in line):
            n += 1
    return n
