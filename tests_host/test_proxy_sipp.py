"""Acceptance: the forwarding proxy (RFC 3261 §16) between real sipp user agents, real node processes.

Every test runs `tools/microwitch run` (tests_host/nodeproc.py) on loopback and drives sipp with the scenarios in
tests_host/sipp/proxy/. A callee is a sipp UAS: its port is first registered at the node by a tiny digest
client bound to that very port (the node routes to the address a REGISTER came from), then the socket is
closed and sipp takes the port over. Covered: record-routed calls whose ACK and BYE cross the node (a foreign
caller without auth, a local caller through 407), the callee hanging up along its route set, a TCP caller
and a UDP callee (double Record-Route, RFC 5658), CANCEL while ringing, a three-contact fork where one answers
and two are cancelled, an all-busy fork (486), Max-Forwards exhaustion (483), a real two-node loop (482), no
open relay (403), SDP bodies byte for byte, and a loopback capture showing that RTP never touches the node.
"""
import hashlib
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import pytest

import nodeproc

pytestmark = pytest.mark.skipif(not nodeproc.sipp_available(), reason="sipp (Debian sip-tester) not installed")

HOST = nodeproc.HOST
DOMAIN = nodeproc.DOMAIN
SCEN = os.path.join(nodeproc.SIPP_DIR, "proxy")
FOREIGN = "remote.example"        # a caller's domain the node does not serve: no auth asked
SIPP_TIMEOUT_S = 20               # bound on each sipp run
REG_TIMEOUT_S = 3.0               # bound on one REGISTER exchange
CALL_PAUSE_MS = 300               # the caller's pause between ACK and BYE
RTP_PAUSE_MS = 1500               # the same while RTP flows
USERS = [("alice", "alice-pw", DOMAIN), ("bob", "bob-pw", DOMAIN), ("carl", "carl-pw", DOMAIN),
         ("dora", "dora-pw", DOMAIN), ("erin", "erin-pw", DOMAIN), ("fred", "fred-pw", DOMAIN),
         ("loopy", "loopy-pw", DOMAIN)]
PASSWORDS = {u: p for u, p, _ in USERS}


# -- a digest REGISTER client bound to the callee's own port --------------------------------------------------
def _digest_fields(value):
    return dict((k.lower(), v1 or v2) for k, v1, v2 in re.findall(r'(\w+)=(?:"([^"]*)"|([^\s,]+))', value))


def _digest_answer(challenges, method, uri, user, password):
    """Authorization value for one of the offered challenges (MD5 preferred: any is fine for us)."""
    offers = [_digest_fields(c.split(" ", 1)[1]) for c in challenges]
    offers.sort(key=lambda f: 0 if f.get("algorithm", "MD5").upper() == "MD5" else 1)
    f = offers[0]
    alg = f.get("algorithm", "MD5").upper()
    h = hashlib.md5 if alg == "MD5" else hashlib.sha256
    ha1 = h(("%s:%s:%s" % (user, f["realm"], password)).encode()).hexdigest()
    ha2 = h(("%s:%s" % (method, uri)).encode()).hexdigest()
    cnonce, nc = "c0ffee%02x" % (len(user)), "00000001"
    resp = h(":".join((ha1, f["nonce"], nc, cnonce, "auth", ha2)).encode()).hexdigest()
    return ('Digest username="%s",realm="%s",nonce="%s",uri="%s",response="%s",algorithm=%s,cnonce="%s",'
            'qop=auth,nc=%s' % (user, f["realm"], f["nonce"], uri, resp, alg, cnonce, nc))


def _headers(data, name):
    return [v.strip() for n, v in re.findall(r"\r\n([A-Za-z-]+):([^\r\n]*)", data.decode("latin-1"))
            if n.lower() == name.lower()]


def register(registrar, user, port, contact=None, path=None, expires=300, sock=None, password=None):
    """REGISTER sip:USER@localhost from (HOST, port) with digest auth; returns the final status.

    `contact` defaults to sip:USER@HOST:port; `path` adds a Path header (RFC 3327); `password` defaults to the
    user's in USERS. The socket is closed on return unless one was passed in, so a sipp UAS can bind the port
    right after. Also used by tools/bench/proxy.py (against the node and Kamailio)."""
    password = password or PASSWORDS[user]
    own = sock is None
    if own:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((HOST, port))
    sock.settimeout(REG_TIMEOUT_S)
    contact = contact or "sip:%s@%s:%d" % (user, HOST, port)
    call_id = "reg-%s-%d-%x" % (user, port, int(time.monotonic() * 1e6))
    uri = "sip:" + DOMAIN
    try:
        auth = None
        for cseq in (1, 2):
            extra = ["Contact: " + (contact if contact == "*" else "<%s>" % contact), "Expires: %d" % expires]
            if path:
                extra.append("Path: <%s>" % path)
            if auth:
                extra.append("Authorization: " + auth)
            msg = nodeproc.sip_request("REGISTER", uri, "z9hG4bKreg%d%x" % (cseq, port), call_id, cseq,
                                       (HOST, port), extra, from_user=user)
            sock.sendto(msg, registrar)
            deadline = time.monotonic() + REG_TIMEOUT_S
            while time.monotonic() < deadline:
                data = sock.recv(65535)
                st = nodeproc.status_of(data)
                if st is not None and st >= 200:
                    break
            else:
                return None
            if st != 401 or cseq == 2:
                return st
            auth = _digest_answer(_headers(data, "WWW-Authenticate"), "REGISTER", uri, user, password)
        return None
    finally:
        if own:
            sock.close()


def unregister_all(registrar, user, password=None):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((HOST, 0))
    try:
        return register(registrar, user, s.getsockname()[1], contact="*", expires=0, sock=s, password=password)
    finally:
        s.close()


def _free_udp_ports(n):
    """n distinct free UDP ports."""
    return [nodeproc.free_port() for _ in range(n)]


# -- sipp processes -------------------------------------------------------------------------------------------
class Sipp:
    """One sipp process (UAS in the background or UAC in the foreground) with its message log."""

    def __init__(self, work, tag, scenario, target, port, keys=None, extra=(), users=None, count=1):
        self.tag = tag
        self.msg_path = os.path.join(work, tag + "_msg.log")
        self.err_path = os.path.join(work, tag + "_err.log")
        self.stf_path = os.path.join(work, tag + "_stat.csv")
        self.port = port
        self.media_port = nodeproc.free_port_run(4)  # sipp binds audio RTP/RTCP and video RTP/RTCP from here
        self.cmd = ["sipp", "%s:%d" % target, "-sf", os.path.join(SCEN, scenario), "-m", str(count),
                    "-i", HOST, "-p", str(port), "-mi", HOST, "-mp", str(self.media_port), "-nostdin",
                    "-default_behaviors", "all,-bye", "-timeout", "%ds" % SIPP_TIMEOUT_S, "-timeout_error",
                    "-max_retrans", "5", "-trace_msg", "-message_file", self.msg_path,
                    "-trace_err", "-error_file", self.err_path, "-trace_stat", "-stf", self.stf_path, "-fd", "1"]
        for k, v in (keys or {}).items():
            self.cmd += ["-key", k, str(v)]
        if users is not None:
            self.cmd += ["-inf", nodeproc.write_users(os.path.join(work, tag + "_users.csv"), users, sipp=True)]
        self.cmd += list(extra)
        self.work = work
        self.proc = None
        self.rc = None
        self.out = ""

    def start(self):
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, cwd=self.work)
        return self

    def wait(self, timeout=SIPP_TIMEOUT_S + 10):
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate(timeout=10)
            out += b"\n(killed after %.0f s)" % timeout
        self.rc = self.proc.returncode
        self.out = out.decode("latin-1")[-2000:]
        return self

    def run(self):
        return self.start().wait()

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate(timeout=10)

    @property
    def stats(self):
        return nodeproc.read_stats(self.stf_path)

    def count(self, column):
        try:
            return int(self.stats.get(column, "0") or 0)
        except ValueError:
            return 0

    @property
    def ok(self):
        return self.rc == 0 and self.count("SuccessfulCall(C)") >= 1 and self.count("FailedCall(C)") == 0

    def messages(self):
        """[(direction, raw bytes)] in log order (sipp writes each message's bytes verbatim)."""
        try:
            with open(self.msg_path, "rb") as f:
                text = f.read()
        except OSError:
            return []
        out = []
        for block in re.split(rb"\n----------------------------------------------- [^\n]*\n", b"\n" + text)[1:]:
            head, _, raw = block.partition(b"\n")
            direction = "sent" if b" sent" in head else "received"
            raw = raw.lstrip(b"\n")
            out.append((direction, _trim(raw)))
        return out

    def received(self):
        return [m for d, m in self.messages() if d == "received"]

    def sent(self):
        return [m for d, m in self.messages() if d == "sent"]

    def explain(self):
        try:
            with open(self.err_path, encoding="latin-1") as f:
                err = f.read()[-1500:]
        except OSError:
            err = ""
        return "%s rc=%s stats ok=%s failed=%s\nerrors: %s\nstdout: %s" % (
            self.tag, self.rc, self.stats.get("SuccessfulCall(C)"), self.stats.get("FailedCall(C)"), err,
            self.out[-800:])


def _trim(raw):
    """One logged message: its bytes up to the end of the body its Content-Length announces."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    m = re.search(rb"\r\n(?:Content-Length|l)\s*:\s*(\d+)", head, re.I)
    n = int(m.group(1)) if m else 0
    return head + sep + body[:n]


def body_of(raw):
    return raw.partition(b"\r\n\r\n")[2]


def first_line(raw):
    return raw.split(b"\r\n", 1)[0].decode("latin-1")


def status(raw):
    return nodeproc.status_of(raw)


def find(msgs, start):
    return [m for m in msgs if m.startswith(start.encode())]


# -- fixtures -------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def node():
    work = tempfile.mkdtemp(prefix="mw-proxy-sipp-")
    n = nodeproc.Node(work, config=nodeproc.sipp_node_config(), users=USERS)
    n.start()
    yield n
    n.stop()
    shutil.rmtree(work, ignore_errors=True)


@pytest.fixture
def work(tmp_path):
    return str(tmp_path)


def _keys(callee, caller="carol", caller_domain=FOREIGN, **more):
    k = {"caller": caller, "caller_domain": caller_domain, "callee": callee, "domain": DOMAIN}
    k.update(more)
    return k


def _callees(node, work, user, scenarios, extra=()):
    """Register one contact of `user` per scenario (each from its own port), then start a sipp UAS on it."""
    ports = _free_udp_ports(len(scenarios))
    out = []
    for i, (port, scen) in enumerate(zip(ports, scenarios)):
        st = register(node.udp, user, port, contact="sip:%s-%d@%s:%d" % (user, i, HOST, port))
        assert st == 200, "REGISTER of %s from port %d answered %r\n%s" % (user, port, st, node.output()[-2000:])
    try:
        for i, (port, scen) in enumerate(zip(ports, scenarios)):
            out.append(Sipp(work, "uas%d" % i, scen, node.udp, port, extra=extra).start())
        _wait_bound(ports)
    except Exception:
        for u in out:
            u.stop()
        raise
    return out


def _udp_bound(port):
    """True once some socket is bound to UDP `port` on 127.0.0.1 (read from /proc: probing with bind() could
    race with sipp's own bind)."""
    want = ":%04X" % port
    try:
        with open("/proc/net/udp") as f:
            return any(line.split()[1].endswith(want) for line in list(f)[1:])
    except OSError:
        return True   # cannot tell: carry on, sipp reports its own bind errors


def _wait_bound(ports, timeout=5.0):
    """Until sipp has bound each UAS port, bounded."""
    deadline = time.monotonic() + timeout
    pending = list(ports)
    while pending and time.monotonic() < deadline:
        if _udp_bound(pending[0]):
            pending.pop(0)
            continue
        time.sleep(0.02)
    assert not pending, "sipp did not bind ports %r" % pending


def _finish(node, user, uac, uases):
    """Wait for the callees (briefly if the caller already failed), clear the user's bindings, and return
    the text that explains a failure."""
    for u in uases:
        u.wait(SIPP_TIMEOUT_S if uac.rc == 0 else 2)
    unregister_all(node.udp, user)
    why = "\n".join([uac.explain()] + [u.explain() for u in uases]) + "\n--- node ---\n" + node.output()[-3000:]
    return why


def _node_via(node):
    return ("Via: SIP/2.0/UDP %s:%d;branch=z9hG4bKmw" % node.udp).encode()


def _caller(work, scenario, node, keys, extra=(), users=None, tag="uac"):
    return Sipp(work, tag, scenario, node.udp, _free_udp_ports(1)[0], keys=keys, extra=extra, users=users)


# -- calls ----------------------------------------------------------------------------------------------------
def _check_dialog_through_node(node, uac, uas, why):
    """ACK and BYE reached the callee via the node (its Via on top) along the Record-Route the caller got; the
    SDP each side received is byte for byte what the other sent."""
    got = uas.received()
    sent = uac.sent()
    inv_in = find(got, "INVITE ")[0]
    inv_out = find(sent, "INVITE ")[-1]
    ok_in = [m for m in uac.received() if status(m) == 200 and b"INVITE\r\n" in m][0]
    ok_out = [m for m in uas.sent() if status(m) == 200 and b"INVITE\r\n" in m][0]
    assert body_of(inv_out) and body_of(inv_in) == body_of(inv_out), why
    assert body_of(ok_out) and body_of(ok_in) == body_of(ok_out), why
    rr = _headers(ok_in, "Record-Route")
    assert rr and ("@%s:%d;lr>" % node.udp) in rr[0], rr
    for method in ("ACK", "BYE"):
        out = find(sent, method + " ")[-1]   # the ACK for the 2xx (after a 407 the first ACK is hop by hop)
        assert _headers(out, "Route") == rr, (method, out)       # the caller honoured Record-Route
        into = find(got, method + " ")
        assert len(into) >= 1, why
        assert into[0].split(b"\r\n")[1].startswith(_node_via(node)), into[0]   # ... and it crossed the node
        assert not _headers(into[0], "Route"), into[0]            # the node consumed its own Route entry
    return inv_in


def test_call_from_foreign_domain_record_routed(node, work):
    """carol@remote.example (no auth asked of outsiders calling a local user) calls bob: INVITE/180/200,
    then ACK and BYE along the Route set through the node; SDP untouched both ways."""
    uases = _callees(node, work, "bob", ["uas_answer.xml"])
    uac = _caller(work, "uac_call.xml", node, _keys("bob"), extra=["-d", str(CALL_PAUSE_MS)]).run()
    why = _finish(node, "bob", uac, uases)
    assert uac.ok and uases[0].ok, why
    assert [status(m) for m in uac.received()] [:1] == [100], why
    inv = _check_dialog_through_node(node, uac, uases[0], why)
    assert first_line(inv) == "INVITE sip:bob-0@%s:%d SIP/2.0" % (HOST, uases[0].port)
    assert _headers(inv, "Max-Forwards") == ["69"]


def test_call_from_local_user_after_407(node, work):
    """alice@localhost must prove who she is: 407, ACK, INVITE with Proxy-Authorization, then the call; the
    callee never sees her credentials."""
    uases = _callees(node, work, "carl", ["uas_answer.xml"])
    uac = _caller(work, "uac_call_auth.xml", node, {"callee": "carl", "domain": DOMAIN},
                  extra=["-d", str(CALL_PAUSE_MS), "-auth_uri", "carl@" + DOMAIN],
                  users=[("alice", PASSWORDS["alice"], DOMAIN)]).run()
    why = _finish(node, "carl", uac, uases)
    assert uac.ok and uases[0].ok, why
    codes = [status(m) for m in uac.received()]
    assert 407 in codes and codes.index(407) < codes.index(200), codes
    inv = _check_dialog_through_node(node, uac, uases[0], why)
    assert not _headers(inv, "Proxy-Authorization"), inv
    assert _headers(inv, "From")[0].startswith("<sip:alice@%s>" % DOMAIN)


def test_cancel_while_ringing(node, work):
    uases = _callees(node, work, "dora", ["uas_ring_cancel.xml"])
    uac = _caller(work, "uac_cancel.xml", node, _keys("dora")).run()
    why = _finish(node, "dora", uac, uases)
    assert uac.ok and uases[0].ok, why
    assert [status(m) for m in uac.received() if status(m) != 100] == [180, 200, 487], why
    got = [first_line(m).split()[0] for m in uases[0].received()]
    assert got == ["INVITE", "CANCEL", "ACK"], got
    cancel = find(uases[0].received(), "CANCEL ")[0]
    inv = find(uases[0].received(), "INVITE ")[0]
    assert _headers(cancel, "Via") == _headers(inv, "Via")[:1]    # §9.1: the CANCEL's branch is the INVITE's


def test_three_contacts_one_answers_others_cancelled(node, work):
    uases = _callees(node, work, "erin", ["uas_answer.xml", "uas_ring_cancel.xml", "uas_ring_cancel.xml"])
    uac = _caller(work, "uac_call.xml", node, _keys("erin"), extra=["-d", str(CALL_PAUSE_MS)]).run()
    why = _finish(node, "erin", uac, uases)
    assert uac.ok and all(u.ok for u in uases), why
    for u in uases[1:]:
        assert [first_line(m).split()[0] for m in u.received()] == ["INVITE", "CANCEL", "ACK"], why
        assert not find(u.received(), "BYE ")
    _check_dialog_through_node(node, uac, uases[0], why)
    # one 200 reached the caller, no 487 from the cancelled branches
    assert [status(m) for m in uac.received() if status(m) and status(m) >= 200] == [200, 200], why


def test_all_contacts_busy_gives_486(node, work):
    uases = _callees(node, work, "fred", ["uas_busy.xml", "uas_busy.xml"])
    uac = _caller(work, "uac_reject.xml", node, _keys("fred", mf=70)).run()
    why = _finish(node, "fred", uac, uases)
    assert uac.ok and all(u.ok for u in uases), why
    finals = [status(m) for m in uac.received() if status(m) >= 200]
    assert finals == [486], why
    for u in uases:
        assert [first_line(m).split()[0] for m in u.received()] == ["INVITE", "ACK"], why


def test_max_forwards_exhausted_gives_483(node, work):
    uac = _caller(work, "uac_reject.xml", node, _keys("bob", mf=0)).run()
    why = uac.explain() + node.output()[-2000:]
    assert uac.ok, why
    assert [status(m) for m in uac.received()] == [483], why


def test_two_node_loop_gives_482(work):
    """Two nodes serving the same domain, each holding a binding for `loopy` whose Path (RFC 3327) is the other
    node: a call bounces A -> B -> A -> B until a node finds its own Via with this request's loop hash
    (RFC 3261 §16.3 item 4, RFC 5393) and answers 482, which travels back to the caller."""
    a = nodeproc.Node(os.path.join(work, "a"), config=nodeproc.sipp_node_config(), users=USERS, transports=("udp",))
    b = nodeproc.Node(os.path.join(work, "b"), config=nodeproc.sipp_node_config(), users=USERS, transports=("udp",))
    a.start()
    try:
        b.start()
        try:
            for here, there in ((a, b), (b, a)):
                port = _free_udp_ports(1)[0]
                st = register(here.udp, "loopy", port, contact="sip:loopy@%s" % DOMAIN,
                              path="sip:%s:%d;lr" % there.udp)
                assert st == 200, (st, here.output()[-1500:])
            uac = _caller(work, "uac_reject.xml", a, _keys("loopy", mf=70)).run()
            why = uac.explain() + "\n--- A ---\n" + a.output()[-2000:] + "\n--- B ---\n" + b.output()[-2000:]
        finally:
            b.stop()
    finally:
        a.stop()
    assert uac.ok, why
    finals = [status(m) for m in uac.received() if status(m) >= 200]
    assert finals == [482], why
    hops = sum(1 for line in (a.output() + b.output()).splitlines() if " 482 " in line)
    assert 2 <= hops <= 6, why     # answered after one or two laps, not after Max-Forwards ran out


# -- media never touches the node -----------------------------------------------------------------------------
def _tshark_available():
    return shutil.which("dumpcap") is not None and shutil.which("tshark") is not None


def _udp_packets(pcap_path):
    """[(src_port, dst_port, payload)] of the IPv4/UDP packets in a classic pcap file (Ethernet or Linux
    cooked link type), parsed here so the check does not depend on a dissector's heuristics."""
    import struct
    with open(pcap_path, "rb") as f:
        data = f.read()
    magic = data[:4]
    endian = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    linktype = struct.unpack(endian + "I", data[20:24])[0]
    skip = {1: 14, 113: 16, 276: 20}.get(linktype)
    assert skip is not None, "link type %d" % linktype
    out = []
    pos = 24
    while pos + 16 <= len(data):
        incl = struct.unpack(endian + "I", data[pos + 8:pos + 12])[0]
        pkt = data[pos + 16:pos + 16 + incl]
        pos += 16 + incl
        ip = pkt[skip:]
        if len(ip) < 28 or ip[0] >> 4 != 4 or ip[9] != 17:
            continue
        ihl = (ip[0] & 15) * 4
        sport, dport = struct.unpack(">HH", ip[ihl:ihl + 4])
        out.append((sport, dport, ip[ihl + 8:]))
    return out


_SIP_START = re.compile(rb"^(SIP/2\.0 \d{3} |[A-Z]+ sips?:[^ ]+ SIP/2\.0\r\n)")


@pytest.mark.skipif(not _tshark_available(), reason="tshark/dumpcap not installed")
def test_rtp_flows_phone_to_phone_never_via_the_node(node, work):
    """During a call with RTP both ways (the caller plays sip-tester's G.711 capture, the callee echoes it), a
    loopback capture of the node's port and both media ports shows RTP between the two media ports and only SIP
    to and from the node."""
    uases = _callees(node, work, "bob", ["uas_answer.xml"], extra=["-rtp_echo"])
    uac = _caller(work, "uac_call_rtp.xml", node, _keys("bob"), extra=["-d", str(RTP_PAUSE_MS)])
    m_uac, m_uas = uac.media_port, uases[0].media_port
    pcap = os.path.join(work, "call.pcap")
    filt = "udp port %d or udp port %d or udp port %d" % (node.udp[1], m_uac, m_uas)
    cap = subprocess.Popen(["dumpcap", "-q", "-i", "lo", "-f", filt, "-P", "-w", pcap],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        line = b""
        while time.monotonic() < deadline and b"Capturing on" not in line:   # dumpcap says so once armed
            line = cap.stderr.readline()
            if not line and cap.poll() is not None:
                break
        assert b"Capturing on" in line, "dumpcap did not start: %r" % line
        uac.run()
    finally:
        cap.terminate()
        try:
            cap.wait(timeout=10)
        except subprocess.TimeoutExpired:
            cap.kill()
            cap.wait(timeout=10)
    why = _finish(node, "bob", uac, uases)
    assert uac.ok and uases[0].ok, why
    pkts = _udp_packets(pcap)
    nport = node.udp[1]
    at_node = [p for p in pkts if nport in (p[0], p[1])]
    not_sip = [p[2][:40] for p in at_node if not _SIP_START.match(p[2])]
    assert len(at_node) >= 9 and not_sip == [], (len(at_node), not_sip[:5])
    fwd = [p for p in pkts if (p[0], p[1]) == (m_uac, m_uas)]
    back = [p for p in pkts if (p[0], p[1]) == (m_uas, m_uac)]
    assert len(fwd) >= 20 and len(back) >= 20, (len(fwd), len(back), len(pkts))
    # the dissector agrees: RTP only on the media ports, SIP only on the node's
    out = subprocess.run(["tshark", "-r", pcap, "-d", "udp.port==%d,sip" % nport, "-d", "udp.port==%d,rtp" % m_uac,
                          "-d", "udp.port==%d,rtp" % m_uas, "-T", "fields", "-e", "udp.srcport", "-e",
                          "udp.dstport", "-e", "frame.protocols"], capture_output=True, text=True, timeout=30)
    rows = [line.split("\t") for line in out.stdout.splitlines() if line.strip()]
    rtp_rows = [r for r in rows if ":rtp" in r[2]]
    assert rtp_rows and all(str(nport) not in r[:2] for r in rtp_rows), rtp_rows[:3]
    assert all(":sip" in r[2] for r in rows if str(nport) in r[:2]), [r for r in rows if str(nport) in r[:2]][:3]


def test_tcp_caller_udp_callee_double_record_route(node, work):
    """RFC 5658: a caller on TCP, a callee on UDP. The node record-routes twice, the entry facing the callee on
    top: the callee's route set starts at the node's UDP address, the caller's (the reversed list, as sipp
    builds it) at its TCP address; ACK and BYE cross over the TCP connection and reach the callee on UDP."""
    uases = _callees(node, work, "bob", ["uas_answer.xml"])
    uac = Sipp(work, "uac", "uac_call.xml", node.tcp, nodeproc.free_port("tcp"), keys=_keys("bob"),
               extra=["-t", "t1", "-d", str(CALL_PAUSE_MS)]).run()
    why = _finish(node, "bob", uac, uases)
    assert uac.ok and uases[0].ok, why
    inv = find(uases[0].received(), "INVITE ")[0]
    rr = _headers(inv, "Record-Route")
    assert len(rr) == 2, rr
    assert rr[0].endswith("@%s:%d;lr>" % node.udp), rr
    assert rr[1].endswith("@%s:%d;transport=tcp;lr>" % node.tcp), rr
    ack = find(uac.sent(), "ACK ")[-1]
    routes = ", ".join(_headers(ack, "Route")).split(", ")
    assert routes == [rr[1], rr[0]], routes
    for method in ("ACK", "BYE"):
        assert find(uases[0].received(), method + " ")[0].split(b"\r\n")[1].startswith(_node_via(node))


def test_no_open_relay_for_outsiders(node, work):
    """An unauthenticated caller from outside asking the node to reach an address that is not local gets 403;
    nothing is forwarded (the node's log shows no branch, only the refusal)."""
    uac = _caller(work, "uac_reject.xml", node, dict(_keys("x", mf=70), domain="127.0.0.2:5060")).run()
    why = uac.explain() + node.output()[-2000:]
    assert uac.ok, why
    assert [status(m) for m in uac.received()] == [403], why
    assert "Relaying denied" in uac.received()[0].split(b"\r\n")[0].decode(), why


def test_callee_hangs_up_through_the_node(node, work):
    """The callee's BYE follows its route set (the Record-Route list in order, first entry the node) to the
    caller's Contact; the node sends it down the caller's flow and the 200 comes back the same way."""
    uases = _callees(node, work, "bob", ["uas_hangup.xml"], extra=["-d", str(CALL_PAUSE_MS)])
    uac = _caller(work, "uac_call_hungup.xml", node, _keys("bob")).run()
    why = _finish(node, "bob", uac, uases)
    assert uac.ok and uases[0].ok, why
    uas = uases[0]
    rr = _headers(find(uas.received(), "INVITE ")[0], "Record-Route")
    bye_out = find(uas.sent(), "BYE ")[0]
    assert ", ".join(_headers(bye_out, "Route")).split(", ") == rr, bye_out
    assert first_line(bye_out) == "BYE sip:carol@%s:%d SIP/2.0" % (HOST, uac.port)
    bye_in = find(uac.received(), "BYE ")[0]
    assert bye_in.split(b"\r\n")[1].startswith(_node_via(node)) and not _headers(bye_in, "Route"), bye_in
    assert [status(m) for m in uas.received() if status(m)][-1] == 200
