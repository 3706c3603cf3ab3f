"""Interop of our ZRTP engine with Belledonne bzrtp 5.1 over real UDP (RFC 6189).

Each case runs two processes on loopback, our probe (`tools/microwitch zrtp-peer`) and the C peer
built on libbzrtp (`build/bzrtp/bzrtp-peer`, from tools/bzrtp/), with the relay of
tools/udp_lossy_relay.py between them so a test can drop or mutate chosen ZRTP messages and see
every packet. Both programs take the same options and print the same JSON lines.

The bzrtp<->bzrtp cases validate the C peer, the relay and the mutations on their own, so a failure
in an interop case points at our engine.

ZRTP_OURS_CMD (a shell-quoted command) replaces our probe on the "ours" side, to point these tests at
another ZRTP probe with the same CLI (ZRTP_OURS_CMD=build/bzrtp/bzrtp-peer checks the tests themselves).
"""
import hashlib
import json
import os
import shlex
import shutil
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

from nodeproc import free_port
from udp_lossy_relay import A2B, B2A, Relay, flip_crc_bit, message, tamper_confirm_mac

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BZRTP_DIR = os.path.join(ROOT, "tools", "bzrtp")
BZRTP_PEER = os.path.join(ROOT, "build", "bzrtp", "bzrtp-peer")
OURS = (shlex.split(os.environ["ZRTP_OURS_CMD"]) if os.environ.get("ZRTP_OURS_CMD")
        else [sys.executable, os.path.join(ROOT, "tools", "microwitch"), "zrtp-peer"])

OK_TIMEOUT_MS = 10000    # a handshake that should succeed; RFC timers converge far sooner
FAIL_TIMEOUT_MS = 3000   # a handshake that must not succeed: how long each side keeps trying
LOSS_TIMEOUT_MS = 12000
LOSS_BOUND_S = 10.0      # T1/T2 retransmission (RFC 6189 section 6) recovers 20 % loss well within this
PROC_GRACE_S = 8.0       # beyond --timeout-ms before a process is declared hung and killed
LONG_LINGER_MS = 3000    # a responder that outlives the initiator's Confirm2 retransmissions


# ---------------------------------------------------------------- build and availability

_build_lock = threading.Lock()


def _sources_newer(target):
    if not os.path.exists(target):
        return True
    t = os.path.getmtime(target)
    return any(os.path.getmtime(os.path.join(BZRTP_DIR, f)) > t for f in ("peer.c", "bench.c", "abi.h", "Makefile"))


def bzrtp_peer():
    """Path of the built C peer; builds it (make -C tools/bzrtp) if missing or stale."""
    with _build_lock:
        if _sources_newer(BZRTP_PEER):
            if shutil.which("pkg-config") is None or subprocess.run(
                    ["pkg-config", "--exists", "libbzrtp"]).returncode != 0:
                pytest.fail("libbzrtp-dev (5.1) is not installed: apt-get install libbzrtp-dev "
                            "libbctoolbox-dev libsqlite3-dev")
            r = subprocess.run(["make", "-C", BZRTP_DIR], capture_output=True, text=True, timeout=300)
            if r.returncode != 0:
                pytest.fail("building the bzrtp peer failed:\n%s\n%s" % (r.stdout, r.stderr))
    return BZRTP_PEER


_ours_state = {}


def ours_probe():
    """Our probe's argv prefix; skips the test while `tools/microwitch zrtp-peer` does not exist."""
    if "ok" not in _ours_state:
        try:
            r = subprocess.run(OURS + ["--help"], capture_output=True, text=True, timeout=60)
            _ours_state["ok"] = r.returncode == 0 and "--peer-hash" in (r.stdout + r.stderr)
            _ours_state["help"] = r.stdout + r.stderr
        except (OSError, subprocess.TimeoutExpired) as e:
            _ours_state["ok"] = False
            _ours_state["help"] = str(e)
    if not _ours_state["ok"]:
        pytest.skip("our probe `tools/microwitch zrtp-peer` is not available yet: %s"
                    % _ours_state["help"].strip()[-300:])
    return OURS


def ours_supports(option):
    ours_probe()
    return option in _ours_state["help"]


# ---------------------------------------------------------------- processes

class Peer:
    """One ZRTP peer process; JSON lines from stdout are collected by a thread."""

    def __init__(self, name, argv, timeout_ms, stderr_path):
        self.name = name
        self.argv = argv
        self.timeout_s = timeout_ms / 1000.0 + PROC_GRACE_S
        self.events = []
        self.raw = []
        self._cv = threading.Condition()
        self._stderr = open(stderr_path, "w+")
        self.t0 = time.monotonic()
        self.t_end = None
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self._stderr, text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            line = line.strip()
            if not line:
                continue
            with self._cv:
                self.raw.append(line)
                try:
                    self.events.append(json.loads(line))
                except ValueError:
                    self.events.append({"event": "unparsable", "line": line})
                self._cv.notify_all()
        with self._cv:
            self._cv.notify_all()

    def first_event(self, timeout_s=30.0):
        deadline = time.monotonic() + timeout_s
        with self._cv:
            while not self.events:
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    break
                self._cv.wait(min(left, 0.1))
            if not self.events:
                raise AssertionError("%s printed nothing%s" % (self.name, self.diag()))
            return self.events[0]

    def hello_hash(self):
        ev = self.first_event()
        assert ev.get("event") == "hello_hash", "%s: first line is not hello_hash: %r%s" % (self.name, ev, self.diag())
        value = ev["value"]
        assert value.startswith("1.10 ") and len(value) == 69, value
        int(value[5:], 16)
        return value

    def wait(self):
        """Waits for exit (bounded); returns (exit code, final event)."""
        try:
            rc = self.proc.wait(timeout=self.timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("%s did not exit within %.1f s%s" % (self.name, self.timeout_s, self.diag()))
        self._reader.join(timeout=5)
        if self.t_end is None:
            self.t_end = time.monotonic()
        final = [e for e in self.events if e.get("event") in ("secure", "failed")]
        return rc, (final[-1] if final else None)

    def secure_event(self):
        final = [e for e in self.events if e.get("event") == "secure"]
        return final[-1] if final else None

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()  # our own child, by handle
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass

    def diag(self):
        self._stderr.flush()
        self._stderr.seek(0)
        err = self._stderr.read()
        return "\n--- %s argv: %s\n--- stdout:\n%s\n--- stderr (tail):\n%s" % (
            self.name, " ".join(self.argv), "\n".join(self.raw), err[-4000:])

    def close(self):
        self.kill()
        self._stderr.close()


@pytest.fixture
def lab(tmp_path):
    """Starts peers and relays; everything is killed/stopped at teardown."""
    class Lab:
        def __init__(self):
            self.peers = []
            self.relays = []
            self.n = 0

        def relay(self, a_port, b_port, **kw):
            r = Relay(a_port, b_port, **kw).start()
            self.relays.append(r)
            return r

        def start(self, kind, local, peer, ka=None, role=None, cache=None, peer_hash=None,
                  timeout_ms=OK_TIMEOUT_MS, extra=()):
            self.n += 1
            argv = list(ours_probe() if kind == "ours" else [bzrtp_peer()])
            argv += ["--local", str(local), "--peer", str(peer), "--timeout-ms", str(timeout_ms)]
            if ka:
                argv += ["--ka", ka]
            if role:
                argv += ["--role", role]
            if cache:
                argv += ["--cache", str(cache)]
            if peer_hash:
                argv += ["--peer-hash", peer_hash]
            argv += list(extra)
            p = Peer("%s#%d" % (kind, self.n), argv, timeout_ms, str(tmp_path / ("%s-%d.stderr" % (kind, self.n))))
            self.peers.append(p)
            return p

    lab = Lab()
    yield lab
    for p in lab.peers:
        p.close()
    for r in lab.relays:
        r.stop()


def session(lab, a_kind, b_kind, a_opts=None, b_opts=None, relay_kw=None, first="a",
            pass_hash=True, timeout_ms=OK_TIMEOUT_MS):
    """Runs peer A (kind a_kind) and peer B through a relay; returns (A, B, relay).

    The peer started first prints its hello hash before the other starts; with pass_hash the second
    gets it as --peer-hash (the a=zrtp-hash binding of RFC 6189 section 8.1).
    """
    a_opts = dict(a_opts or {})
    b_opts = dict(b_opts or {})
    pa, pb = free_port(), free_port()
    relay = lab.relay(pa, pb, **(relay_kw or {}))
    a_opts.setdefault("timeout_ms", timeout_ms)
    b_opts.setdefault("timeout_ms", timeout_ms)
    if first == "a":
        a = lab.start(a_kind, pa, relay.a_side, **a_opts)
        h = a.hello_hash()
        if pass_hash:
            b_opts.setdefault("peer_hash", h)
        b = lab.start(b_kind, pb, relay.b_side, **b_opts)
        b.hello_hash()
    else:
        b = lab.start(b_kind, pb, relay.b_side, **b_opts)
        h = b.hello_hash()
        if pass_hash:
            a_opts.setdefault("peer_hash", h)
        a = lab.start(a_kind, pa, relay.a_side, **a_opts)
        a.hello_hash()
    return a, b, relay


def expect_secure(*peers):
    out = []
    for p in peers:
        rc, ev = p.wait()
        assert ev is not None and ev["event"] == "secure", "%s did not get secure: %r%s" % (p.name, ev, p.diag())
        assert rc == 0, "%s exit %r after secure%s" % (p.name, rc, p.diag())
        out.append(ev)
    return out


def expect_failed(*peers):
    out = []
    for p in peers:
        rc, ev = p.wait()
        assert p.secure_event() is None, "%s reached secure despite the fault%s" % (p.name, p.diag())
        assert ev is not None and ev["event"] == "failed", "%s: no failed event: %r%s" % (p.name, ev, p.diag())
        assert isinstance(ev.get("reason"), str) and ev["reason"], ev
        assert rc == 2, "%s exit %r after failed%s" % (p.name, rc, p.diag())
        out.append(ev)
    return out


HEX = set("0123456789abcdef")


def assert_agree(ea, eb, ka):
    """Same SAS and algorithms, crossed SRTP keys and salts, complementary roles."""
    for e in (ea, eb):
        for k in ("self_key", "self_salt", "peer_key", "peer_salt"):
            assert isinstance(e[k], str) and set(e[k]) <= HEX, (k, e)
        assert len(e["self_key"]) in (32, 64) and len(e["self_salt"]) == 28, e
        assert e["cache"] in ("match", "new", "mismatch"), e
    assert ea["ka"] == eb["ka"] == ka, (ea, eb)
    assert ea["sas"] == eb["sas"] and ea["sas"], (ea["sas"], eb["sas"])
    assert ea["self_key"] == eb["peer_key"] and ea["peer_key"] == eb["self_key"], (ea, eb)
    assert ea["self_salt"] == eb["peer_salt"] and ea["peer_salt"] == eb["self_salt"], (ea, eb)
    assert ea["self_key"] != ea["peer_key"], ea
    assert {ea["role"], eb["role"]} == {"initiator", "responder"}, (ea["role"], eb["role"])
    for k in ("hash", "cipher", "auth", "sas_type"):
        assert ea.get(k) == eb.get(k), (k, ea.get(k), eb.get(k))


def assert_wire(relay, a_hash, b_hash):
    """Every packet both sides sent had a valid CRC-32C, and each hello hash is SHA-256 of its Hello."""
    for direction, ztype, action, pkt, ok in relay.packets():
        assert ztype is not None, "non-ZRTP datagram %s %r" % (direction, pkt[:16])
        assert ok, "bad CRC sent %s %s" % (direction, ztype)
    for direction, h in ((A2B, a_hash), (B2A, b_hash)):
        hellos = relay.packets(direction, "Hello   ")
        assert hellos, "no Hello seen %s" % direction
        assert hashlib.sha256(message(hellos[0][3])).hexdigest() == h[5:], (direction, h)


# ---------------------------------------------------------------- the C peer itself

def test_bzrtp_peer_is_pinned_to_51():
    out = subprocess.run([bzrtp_peer(), "--version"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert "libbzrtp 5.1." in out.stdout, out.stdout
    assert "X255=0x42 DH3k=0x45 DH2k=0x41 B32=0x51" in out.stdout, out.stdout


def test_bzrtp_peer_rejects_bad_arguments():
    p = bzrtp_peer()
    for argv in (["--local", "0", "--peer", "5"], ["--local", "5000"],
                 ["--local", "5000", "--peer", "5001", "--ka", "EC99"],
                 ["--local", "5000", "--peer", "5001", "--role", "boss"],
                 ["--local", "5000", "--peer", "5001", "--hash", "MD5"]):
        r = subprocess.run([p] + argv, capture_output=True, text=True, timeout=30)
        assert r.returncode == 64, (argv, r.returncode)
        assert r.stdout == "", (argv, r.stdout)
        assert "--" in r.stderr, (argv, r.stderr)  # names the field


@pytest.mark.parametrize("ka", ["X255", "DH3k"])
def test_bzrtp_to_bzrtp_sanity(lab, ka):
    a, b, relay = session(lab, "bzrtp", "bzrtp", {"ka": ka, "role": "initiator"}, {"ka": ka, "role": "responder"})
    ea, eb = expect_secure(a, b)
    assert_agree(ea, eb, ka)
    assert (ea["role"], eb["role"]) == ("initiator", "responder")
    assert_wire(relay, a.hello_hash(), b.hello_hash())
    # the responder never committed (role pinning) and the flow was the plain one
    assert not relay.packets(B2A, "Commit  ")
    assert relay.packets(A2B, "DHPart2 ") and relay.packets(B2A, "DHPart1 ")


def test_bzrtp_to_bzrtp_cache_continuity(lab, tmp_path):
    ca, cb = tmp_path / "a.db", tmp_path / "b.db"
    opts_a = {"role": "initiator", "cache": ca}
    opts_b = {"role": "responder", "cache": cb}
    e1 = expect_secure(*session(lab, "bzrtp", "bzrtp", opts_a, opts_b)[:2])
    assert [e["cache"] for e in e1] == ["new", "new"]
    assert e1[0]["rs1"] == e1[1]["rs1"] and len(e1[0]["rs1"]) == 64
    e2 = expect_secure(*session(lab, "bzrtp", "bzrtp", opts_a, opts_b)[:2])
    assert [e["cache"] for e in e2] == ["match", "match"]
    assert e2[0]["rs1"] == e2[1]["rs1"] != e1[0]["rs1"]
    _spoil_bzrtp_cache(cb)
    e3 = expect_secure(*session(lab, "bzrtp", "bzrtp", opts_a, opts_b)[:2])
    assert [e["cache"] for e in e3] == ["mismatch", "mismatch"]


@pytest.mark.parametrize("ztype", ["Confirm1", "Confirm2"])
def test_bzrtp_to_bzrtp_tampered_confirm_mac(lab, ztype):
    # validates the relay's confirm_mac offset: bzrtp must name the MAC, not the CRC
    mutate = lambda d, t, pkt, nth: tamper_confirm_mac(pkt) if t == ztype else pkt  # noqa: E731
    a, b, relay = session(lab, "bzrtp", "bzrtp", {"role": "initiator"}, {"role": "responder"},
                          relay_kw={"mutate": mutate}, timeout_ms=FAIL_TIMEOUT_MS)
    ea, eb = expect_failed(a, b)
    receiver = ea if ztype == "Confirm1" else eb
    assert receiver["reason"] == "confirm_mac", receiver
    assert relay.packets(None, ztype, "mutated")


def test_bzrtp_to_bzrtp_lossy(lab):
    a, b, relay = session(lab, "bzrtp", "bzrtp", {"role": "initiator"},
                          {"role": "responder", "extra": ["--linger-ms", str(LONG_LINGER_MS)]},
                          relay_kw={"loss": 0.2, "seed": 6189}, timeout_ms=LOSS_TIMEOUT_MS)
    t0 = time.monotonic()
    ea, eb = expect_secure(a, b)
    assert_agree(ea, eb, ea["ka"])
    assert relay.packets(action="drop"), "the relay dropped nothing"
    assert a.t_end - t0 < LOSS_BOUND_S + LONG_LINGER_MS / 1000.0


def _spoil_bzrtp_cache(path):
    """Replaces bzrtp's retained secrets with random ones, keeping its ZID: the next session must
    report a cache mismatch (RFC 6189 section 4.3.2)."""
    db = sqlite3.connect(str(path))
    try:
        n = db.execute("UPDATE zrtp SET rs1 = randomblob(32), rs2 = randomblob(32)").rowcount
        db.commit()
    finally:
        db.close()
    assert n == 1, n


# ---------------------------------------------------------------- ours <-> bzrtp

ROLES = [("initiator", "responder"), ("responder", "initiator")]


@pytest.mark.parametrize("ka", ["X255", "DH3k"])
@pytest.mark.parametrize("ours_role,bz_role", ROLES)
def test_interop(lab, ka, ours_role, bz_role):
    # the initiator starts first, and the other side checks its Hello against the hash it printed
    first = "a" if ours_role == "initiator" else "b"
    ours, bz, relay = session(lab, "ours", "bzrtp", {"ka": ka, "role": ours_role}, {"ka": ka, "role": bz_role},
                              first=first)
    eo, eb = expect_secure(ours, bz)
    assert_agree(eo, eb, ka)
    assert (eo["role"], eb["role"]) == (ours_role, bz_role)
    assert eo["cache"] == "new" and eb["cache"] == "new"
    assert_wire(relay, ours.hello_hash(), bz.hello_hash())
    dh2_dir = A2B if ours_role == "initiator" else B2A
    assert relay.packets(dh2_dir, "DHPart2 "), "the initiator sent no DHPart2"


@pytest.mark.parametrize("ka", ["X255", "DH3k"])
def test_interop_auto_roles_settle(lab, ka):
    # neither side is told its role: both usually commit and hvi decides (RFC 6189 section 4.2);
    # either side may win, but both must agree on who did
    for first in "abab":
        ours, bz, relay = session(lab, "ours", "bzrtp", {"ka": ka, "role": "auto"}, {"ka": ka, "role": "auto"},
                                  pass_hash=False, first=first)
        eo, eb = expect_secure(ours, bz)
        assert_agree(eo, eb, ka)


def test_interop_strong_algorithms_chosen_by_bzrtp(lab):
    # bzrtp as initiator offers S384/AES3/HS80/B256 first and picks them (its mandatory ones follow)
    strong = ["--hash", "S384", "--cipher", "AES3", "--auth", "HS80", "--sas", "B256"]
    for ka in ("X255", "DH3k"):
        ours, bz, relay = session(lab, "ours", "bzrtp", {"role": "responder"},
                                  {"role": "initiator", "ka": ka, "extra": strong}, first="b")
        eo, eb = expect_secure(ours, bz)
        assert_agree(eo, eb, ka)
        assert (eb["hash"], eb["cipher"], eb["auth"], eb["sas_type"]) == ("S384", "AES3", "HS80", "B256"), eb
        assert len(eo["self_key"]) == 64 and ":" in eo["sas"], eo


def test_interop_b256_chosen_by_ours(lab):
    ours, bz, relay = session(lab, "ours", "bzrtp", {"role": "initiator", "extra": ["--sas", "B256"]},
                              {"role": "responder", "extra": ["--hash", "S384", "--cipher", "AES3", "--auth", "HS80"]})
    eo, eb = expect_secure(ours, bz)
    assert_agree(eo, eb, eo["ka"])
    assert eb["sas_type"] == "B256" and ":" in eb["sas"], eb


def test_interop_cache_continuity(lab, tmp_path):
    co, cb = tmp_path / "ours.cache", tmp_path / "bzrtp.db"
    oo = {"role": "initiator", "cache": co}
    ob = {"role": "responder", "cache": cb}
    eo1, eb1 = expect_secure(*session(lab, "ours", "bzrtp", oo, ob)[:2])
    assert eo1["cache"] == "new" and eb1["cache"] == "new", (eo1, eb1)
    # both sides report the rs1 they stored after the session (RFC 6189 section 4.6.1)
    assert eo1.get("rs1") is not None and len(eo1["rs1"]) == 64, eo1
    assert eo1["rs1"] == eb1["rs1"], (eo1["rs1"], eb1["rs1"])

    # second session, both caches kept, roles swapped: rs1 from session 1 must match on both sides
    oo2 = {"role": "responder", "cache": co}
    ob2 = {"role": "initiator", "cache": cb}
    eo2, eb2 = expect_secure(*session(lab, "ours", "bzrtp", oo2, ob2, first="b")[:2])
    assert_agree(eo2, eb2, eo2["ka"])
    assert eo2["cache"] == "match", eo2
    assert eb2["cache"] == "match", eb2
    assert eb2["rs1"] is not None and eb2["rs1"] != eb1["rs1"]
    assert eo2["rs1"] == eb2["rs1"], (eo2["rs1"], eb2["rs1"])

    # bzrtp loses its retained secrets but keeps its ZID: ours must report the mismatch
    _spoil_bzrtp_cache(cb)
    eo3, eb3 = expect_secure(*session(lab, "ours", "bzrtp", oo, ob)[:2])
    assert eo3["cache"] == "mismatch", eo3
    assert eb3["cache"] == "mismatch", eb3


@pytest.mark.parametrize("ours_role,bz_role", ROLES)
def test_wrong_peer_hash_on_our_side(lab, ours_role, bz_role):
    # bzrtp starts first; ours is told a hash that differs from bzrtp's Hello in one nibble
    pb, po = free_port(), free_port()
    relay = lab.relay(po, pb)
    bz = lab.start("bzrtp", pb, relay.b_side, role=bz_role, timeout_ms=FAIL_TIMEOUT_MS)
    h = bz.hello_hash()
    wrong = h[:-1] + ("0" if h[-1] != "0" else "1")
    ours = lab.start("ours", po, relay.a_side, role=ours_role, peer_hash=wrong, timeout_ms=FAIL_TIMEOUT_MS)
    ours.hello_hash()
    expect_failed(ours, bz)
    assert relay.packets(B2A, "Hello   "), "bzrtp's Hello never reached ours"


def test_wrong_peer_hash_on_bzrtp_side(lab):
    po, pb = free_port(), free_port()
    relay = lab.relay(po, pb)
    ours = lab.start("ours", po, relay.a_side, role="initiator", timeout_ms=FAIL_TIMEOUT_MS)
    h = ours.hello_hash()
    wrong = h[:-1] + ("0" if h[-1] != "0" else "1")
    bz = lab.start("bzrtp", pb, relay.b_side, role="responder", peer_hash=wrong, timeout_ms=FAIL_TIMEOUT_MS)
    _, eb = expect_failed(ours, bz)
    assert eb["reason"] == "hello_hash_mismatch", eb


@pytest.mark.parametrize("direction", [A2B, B2A])
def test_flipped_crc_bit_is_rejected(lab, direction):
    # every packet in one direction carries a CRC with one bit flipped: the receiver must drop them all
    mutate = lambda d, t, pkt, nth: flip_crc_bit(pkt) if d == direction else pkt  # noqa: E731
    ours, bz, relay = session(lab, "ours", "bzrtp", {"role": "initiator"}, {"role": "responder"},
                              relay_kw={"mutate": mutate}, timeout_ms=FAIL_TIMEOUT_MS)
    expect_failed(ours, bz)
    assert relay.packets(direction, action="mutated")
    # what went the other way had a valid CRC, and nothing in it shows the receiver saw the bad ones
    if direction == B2A:
        assert not relay.packets(A2B, "Commit  "), "ours committed on a Hello with a bad CRC"
    else:
        assert not relay.packets(B2A, "DHPart1 ")


@pytest.mark.parametrize("ours_role", ["initiator", "responder"])
def test_one_bad_crc_is_recovered_by_retransmission(lab, ours_role):
    # only the first Commit is corrupted: the responder drops it, the initiator's T2 timer resends
    mutate = lambda d, t, pkt, nth: flip_crc_bit(pkt) if t == "Commit  " and nth == 0 else pkt  # noqa: E731
    bz_role = "responder" if ours_role == "initiator" else "initiator"
    ours, bz, relay = session(lab, "ours", "bzrtp", {"role": ours_role}, {"role": bz_role},
                              relay_kw={"mutate": mutate})
    eo, eb = expect_secure(ours, bz)
    assert_agree(eo, eb, eo["ka"])
    assert len(relay.packets(None, "Commit  ")) >= 2


@pytest.mark.parametrize("ours_role,ztype", [("initiator", "Confirm1"), ("responder", "Confirm2"),
                                             ("responder", "Confirm1"), ("initiator", "Confirm2")])
def test_tampered_confirm_mac(lab, ours_role, ztype):
    """A confirm_mac with one bit flipped (CRC re-sealed) must stop the handshake on both ends.

    (initiator, Confirm1) and (responder, Confirm2): our engine is the one that must notice.
    The other two: bzrtp notices, and our side must not have declared itself secure early.
    """
    mutate = lambda d, t, pkt, nth: tamper_confirm_mac(pkt) if t == ztype else pkt  # noqa: E731
    bz_role = "responder" if ours_role == "initiator" else "initiator"
    ours, bz, relay = session(lab, "ours", "bzrtp", {"role": ours_role}, {"role": bz_role},
                              relay_kw={"mutate": mutate}, timeout_ms=FAIL_TIMEOUT_MS)
    _, eb = expect_failed(ours, bz)
    assert relay.packets(None, ztype, "mutated"), "no %s passed the relay" % ztype
    bz_receives = (ztype == "Confirm1") == (bz_role == "initiator")
    if bz_receives:
        assert eb["reason"] == "confirm_mac", eb


@pytest.mark.parametrize("ka", ["X255", "DH3k"])
def test_lossy_link_converges_ours_initiator(lab, ka):
    ours, bz, relay = session(lab, "ours", "bzrtp", {"ka": ka, "role": "initiator"},
                              {"ka": ka, "role": "responder", "extra": ["--linger-ms", str(LONG_LINGER_MS)]},
                              relay_kw={"loss": 0.2, "seed": 6189}, timeout_ms=LOSS_TIMEOUT_MS)
    t0 = ours.t0
    eo, eb = expect_secure(ours, bz)
    assert_agree(eo, eb, ka)
    assert relay.packets(action="drop"), "the relay dropped nothing"
    assert ours.t_end - t0 < LOSS_BOUND_S + 1.0, ours.t_end - t0


def test_lossy_link_converges_ours_responder(lab):
    # our responder must outlive the initiator's Confirm2 retransmissions when Conf2ACK is lost
    if not ours_supports("--linger-ms"):
        pytest.skip("our probe has no --linger-ms; a 300 ms linger cannot cover a lost Conf2ACK")
    ours, bz, relay = session(lab, "ours", "bzrtp",
                              {"role": "responder", "extra": ["--linger-ms", str(LONG_LINGER_MS)]},
                              {"role": "initiator"}, first="b",
                              relay_kw={"loss": 0.2, "seed": 3}, timeout_ms=LOSS_TIMEOUT_MS)
    eo, eb = expect_secure(ours, bz)
    assert_agree(eo, eb, eo["ka"])
    assert relay.packets(action="drop"), "the relay dropped nothing"
    assert bz.t_end - bz.t0 < LOSS_BOUND_S + 1.0
