"""RFC 3261 §17 / RFC 6026 transaction layer: every state, timer and matching rule, on a fake clock."""
from microwitch.sip.message import parse
from microwitch.sip import transaction as tx
from microwitch.sip.transaction import (TransactionLayer, new_branch, CALLING, TRYING, PROCEEDING, COMPLETED,
                                        CONFIRMED, ACCEPTED, TERMINATED)

UDP_PEER = ("udp", "10.0.0.2", 5060)
TCP_PEER = ("tcp", "10.0.0.2", 40000)
BR = "z9hG4bKtest1"


def req(method="OPTIONS", branch=BR, uri="sip:bob@example.com", cseq=1, cseq_method=None, via_host="10.0.0.2",
        via_port=5060, via_params="", to_tag=None, from_tag="ft1", callid="call-1", extra=(), transport="UDP"):
    via = "SIP/2.0/%s %s" % (transport, via_host)
    if via_port is not None:
        via += ":%d" % via_port
    if branch is not None:
        via += ";branch=" + branch
    via += via_params
    lines = ["%s %s SIP/2.0" % (method, uri), "Via: " + via, "Max-Forwards: 70",
             "From: <sip:alice@example.com>;tag=" + from_tag,
             "To: <sip:bob@example.com>" + (";tag=" + to_tag if to_tag else ""),
             "Call-ID: " + callid, "CSeq: %d %s" % (cseq, cseq_method or method)]
    lines.extend(extra)
    lines.append("Content-Length: 0")
    return parse(("\r\n".join(lines) + "\r\n\r\n").encode())


def resp(request, status, reason="X", to_tag="tt1"):
    """A response to `request` as a server would build it (all Vias, From, To+tag, Call-ID, CSeq)."""
    lines = ["SIP/2.0 %d %s" % (status, reason)]
    for v in request.get_all("Via"):
        lines.append("Via: " + v)
    to = request.get("To")
    if to_tag and ";tag=" not in to and status > 100:
        to += ";tag=" + to_tag
    lines += ["From: " + request.get("From"), "To: " + to, "Call-ID: " + request.get("Call-ID"),
              "CSeq: " + request.get("CSeq"), "Content-Length: 0"]
    return parse(("\r\n".join(lines) + "\r\n\r\n").encode())


def sends(actions):
    return [a for a in actions if a[0] == "send"]


def kinds(events):
    return [e[0] for e in events]


def run_until(layer, end):
    """Fire timers in deadline order up to `end`; returns [(time, events, actions)] for each firing."""
    out = []
    for _ in range(200):
        t = layer.next_timer()
        if t is None or t > end:
            break
        ev, act = layer.tick(t)
        out.append((t, ev, act))
    return out


def send_times(layer, end, t0=0):
    times = []
    for t, ev, act in run_until(layer, end):
        for a in sends(act):
            times.append(t - t0)
    return times


# ---------------------------------------------------------------- helpers

def test_new_branch_uses_injected_rand():
    b = new_branch(lambda n: bytes(range(n)))
    assert b == "z9hG4bK0001020304050607"
    assert new_branch(lambda n: b"\xff" * n) != b


def test_constructor_rejects_bad_timers():
    for kw in ({"t1": 0}, {"t2": -1}, {"t4": "5"}, {"max_transactions": 0}, {"t1": 5000, "t2": 4000}):
        try:
            TransactionLayer(**kw)
        except ValueError:
            continue
        raise AssertionError("accepted %r" % (kw,))


# ---------------------------------------------------------------- non-INVITE client (§17.1.2)

def test_nict_udp_retransmissions_double_to_t2_then_timer_f():
    L = TransactionLayer()
    txn, act = L.send_request(req("OPTIONS"), UDP_PEER, 0)
    assert txn.state == TRYING and sends(act) == [("send", act[0][1], UDP_PEER)]
    assert L.next_timer() == 500
    times = []
    for t, ev, a in run_until(L, 40000):
        if sends(a):
            times.append(t)
            assert sends(a)[0][1] == act[0][1]           # the very same bytes
        if "timeout" in kinds(ev):
            assert t == 32000 and ev == [("timeout", txn), ("terminated", txn)]
    assert times == [500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]
    deltas = [b - a for a, b in zip([0] + times, times)]
    assert deltas == [500, 1000, 2000, 4000, 4000, 4000, 4000, 4000, 4000, 4000]
    assert txn.state == TERMINATED and L.client_count() == 0 and L.next_timer() is None


def test_nict_proceeding_retransmits_every_t2():
    L = TransactionLayer()
    r = req("REGISTER")
    txn, _ = L.send_request(r, UDP_PEER, 0)
    ev, act = L.on_response(resp(r, 100, "Trying"), UDP_PEER, 100)
    assert ev == [("response", txn, ev[0][2])] and txn.state == PROCEEDING and act == []
    assert send_times(L, 9000) == [500, 4500, 8500]     # E fired at 500 in Proceeding -> T2 from then on


def test_nict_final_response_completed_timer_k_absorbs_retransmissions():
    L = TransactionLayer()
    r = req("OPTIONS")
    txn, _ = L.send_request(r, UDP_PEER, 0)
    L.tick(500)                                         # one retransmission
    ok = resp(r, 200, "OK")
    ev, act = L.on_response(ok, UDP_PEER, 700)
    assert ev == [("response", txn, ok)] and act == [] and txn.state == COMPLETED
    ev, act = L.on_response(resp(r, 200, "OK"), UDP_PEER, 800)
    assert ev == [] and act == []                       # retransmitted final absorbed
    assert L.next_timer() == 700 + 5000                 # Timer K = T4, no more E/F
    assert L.tick(5699) == ([], [])
    ev, act = L.tick(5700)
    assert ev == [("terminated", txn)] and act == [] and L.client_count() == 0


def test_nict_late_response_after_termination_goes_to_tu_without_txn():
    L = TransactionLayer()
    r = req("OPTIONS")
    txn, _ = L.send_request(r, TCP_PEER, 0)
    late = resp(r, 200, "OK")
    ev, _ = L.on_response(late, TCP_PEER, 10)
    assert kinds(ev) == ["response", "terminated"]      # reliable: Timer K is zero
    ev, act = L.on_response(late, TCP_PEER, 20)
    assert ev == [("response", None, late)] and act == []


def test_nict_tcp_no_retransmissions_timer_f():
    L = TransactionLayer()
    txn, act = L.send_request(req("OPTIONS"), TCP_PEER, 0)
    assert len(sends(act)) == 1 and L.next_timer() == 32000
    ev, act = L.tick(31999)
    assert ev == [] and act == []
    ev, act = L.tick(32000)
    assert ev == [("timeout", txn), ("terminated", txn)] and act == []


def test_nict_provisional_then_final_then_ignores_more():
    L = TransactionLayer()
    r = req("SUBSCRIBE")
    txn, _ = L.send_request(r, UDP_PEER, 0)
    L.on_response(resp(r, 100, "Trying"), UDP_PEER, 1)
    ev, _ = L.on_response(resp(r, 180, "Ringing"), UDP_PEER, 2)
    assert kinds(ev) == ["response"] and txn.state == PROCEEDING
    ev, _ = L.on_response(resp(r, 404, "Not Found"), UDP_PEER, 3)
    assert kinds(ev) == ["response"] and txn.state == COMPLETED
    ev, _ = L.on_response(resp(r, 180, "Ringing"), UDP_PEER, 4)
    assert ev == []


def test_client_matching_needs_branch_and_cseq_method():
    L = TransactionLayer()
    r = req("OPTIONS")
    txn, _ = L.send_request(r, UDP_PEER, 0)
    other = resp(req("OPTIONS", branch="z9hG4bKother"), 200)
    ev, _ = L.on_response(other, UDP_PEER, 1)
    assert ev == [("response", None, other)] and txn.state == TRYING
    wrong_method = resp(req("OPTIONS"), 200)
    wrong_method.set("CSeq", "1 INFO")
    ev, _ = L.on_response(wrong_method, UDP_PEER, 1)
    assert ev == [("response", None, wrong_method)] and txn.state == TRYING


def test_send_request_refuses_missing_cookie_and_duplicates():
    L = TransactionLayer()
    for bad in (req("OPTIONS", branch="1234"), req("OPTIONS", branch=None)):
        try:
            L.send_request(bad, UDP_PEER, 0)
        except ValueError:
            continue
        raise AssertionError("accepted a request without a z9hG4bK branch")
    L.send_request(req("OPTIONS"), UDP_PEER, 0)
    try:
        L.send_request(req("OPTIONS"), UDP_PEER, 0)
    except ValueError:
        pass
    else:
        raise AssertionError("two client transactions with one key")


def test_send_request_ack_creates_no_transaction():
    L = TransactionLayer()
    ack = req("ACK", branch="z9hG4bKack2xx")
    txn, act = L.send_request(ack, UDP_PEER, 0)
    assert txn is None and act == [("send", ack.to_bytes(), UDP_PEER)] and L.client_count() == 0


# ---------------------------------------------------------------- INVITE client (§17.1.1, RFC 6026)

def test_ict_udp_timer_a_doubles_uncapped_and_timer_b():
    L = TransactionLayer()
    txn, act = L.send_request(req("INVITE"), UDP_PEER, 1000)
    assert txn.state == CALLING and len(sends(act)) == 1
    times = []
    for t, ev, a in run_until(L, 50000):
        times += [t - 1000] * len(sends(a))
        if ev:
            assert t == 1000 + 32000 and ev == [("timeout", txn), ("terminated", txn)]
    assert times == [500, 1500, 3500, 7500, 15500, 31500]
    assert txn.state == TERMINATED and L.client_count() == 0


def test_ict_provisional_stops_retransmissions_and_timer_b():
    L = TransactionLayer()
    r = req("INVITE")
    txn, _ = L.send_request(r, UDP_PEER, 0)
    L.tick(500)
    ev, act = L.on_response(resp(r, 180, "Ringing"), UDP_PEER, 600)
    assert kinds(ev) == ["response"] and txn.state == PROCEEDING and act == []
    assert L.next_timer() is None                       # waits for the final (the TU runs Timer C)
    ev, act = L.on_response(resp(r, 183, "Session Progress"), UDP_PEER, 90000)
    assert kinds(ev) == ["response"] and txn.state == PROCEEDING


def test_ict_non2xx_acked_by_layer_and_absorbed_timer_d():
    L = TransactionLayer()
    r = req("INVITE", uri="sip:bob@10.0.0.9;transport=udp",
            extra=("Route: <sip:p1.example.com;lr>", "Route: <sip:p2.example.com;lr>", "Subject: x"))
    txn, _ = L.send_request(r, UDP_PEER, 0)
    L.on_response(resp(r, 100, "Trying"), UDP_PEER, 10)
    busy = resp(r, 486, "Busy Here", to_tag="callee7")
    ev, act = L.on_response(busy, UDP_PEER, 50)
    assert ev == [("response", txn, busy)] and txn.state == COMPLETED
    assert len(act) == 1 and act[0][0] == "send" and act[0][2] == UDP_PEER
    ack = parse(act[0][1])
    assert ack.method == "ACK" and ack.uri == "sip:bob@10.0.0.9;transport=udp"
    assert ack.get_all("Via") == [r.get("Via")]
    assert "tag=callee7" in ack.get("To") and ack.get("From") == r.get("From")
    assert ack.get("Call-ID") == r.get("Call-ID") and ack.get("CSeq") == "1 ACK"
    assert ack.get_all("Route") == ["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"]
    assert ack.get("Subject") is None and ack.body == b""
    # retransmitted 486: the same ACK again, nothing for the TU
    ev, act2 = L.on_response(resp(r, 486, "Busy Here", to_tag="callee7"), UDP_PEER, 900)
    assert ev == [] and act2 == act
    assert L.next_timer() == 50 + 32000                 # Timer D
    ev, act = L.tick(32050)
    assert ev == [("terminated", txn)] and act == [] and L.client_count() == 0


def test_ict_non2xx_over_tcp_acks_and_terminates_at_once():
    L = TransactionLayer()
    r = req("INVITE", transport="TCP")
    txn, act = L.send_request(r, TCP_PEER, 0)
    assert L.next_timer() == 32000                      # Timer B only, no Timer A
    ev, act = L.on_response(resp(r, 603, "Decline"), TCP_PEER, 5)
    assert kinds(ev) == ["response", "terminated"] and parse(act[0][1]).method == "ACK"
    assert act[0][2] == TCP_PEER and L.next_timer() is None


def test_ict_2xx_goes_to_accepted_and_passes_retransmissions_timer_m():
    L = TransactionLayer()
    r = req("INVITE")
    txn, _ = L.send_request(r, UDP_PEER, 0)
    ok = resp(r, 200, "OK", to_tag="a")
    ev, act = L.on_response(ok, UDP_PEER, 100)
    assert ev == [("response", txn, ok)] and act == [] and txn.state == ACCEPTED   # the TU ACKs 2xx
    ok2 = resp(r, 200, "OK", to_tag="b")                # other fork
    ev, act = L.on_response(ok2, UDP_PEER, 200)
    assert ev == [("response", txn, ok2)] and act == []
    ev, _ = L.on_response(resp(r, 180, "Ringing"), UDP_PEER, 250)
    assert ev == []                                     # provisional after 2xx: dropped
    assert send_times(L, 32099) == []                   # Timer A stopped
    ev, act = L.tick(32100)                             # Timer M = 64*T1
    assert ev == [("terminated", txn)]
    ev, _ = L.on_response(ok, UDP_PEER, 33000)          # late 2xx: the TU (or proxy core) gets it
    assert ev == [("response", None, ok)]


def test_ict_proceeding_then_2xx():
    L = TransactionLayer()
    r = req("INVITE")
    txn, _ = L.send_request(r, UDP_PEER, 0)
    L.on_response(resp(r, 180, "Ringing"), UDP_PEER, 10)
    ev, _ = L.on_response(resp(r, 200, "OK"), UDP_PEER, 20000)
    assert kinds(ev) == ["response"] and txn.state == ACCEPTED and L.next_timer() == 52000


def test_cancel_client_is_its_own_transaction():
    L = TransactionLayer()
    inv = req("INVITE")
    itx, _ = L.send_request(inv, UDP_PEER, 0)
    ctx, _ = L.send_request(req("CANCEL"), UDP_PEER, 10)
    assert itx is not ctx and L.client_count() == 2
    ev, _ = L.on_response(resp(req("CANCEL"), 200, "OK"), UDP_PEER, 20)
    assert ev[0][1] is ctx and ctx.state == COMPLETED and itx.state == CALLING
    ev, act = L.on_response(resp(inv, 487, "Request Terminated"), UDP_PEER, 30)
    assert ev[0][1] is itx and itx.state == COMPLETED and parse(act[0][1]).method == "ACK"


# ---------------------------------------------------------------- non-INVITE server (§17.2.2)

def test_nist_states_retransmissions_and_timer_j():
    L = TransactionLayer()
    r = req("OPTIONS")
    ev, act = L.on_request(r, UDP_PEER, 0)
    assert kinds(ev) == ["request"] and act == []
    txn = ev[0][1]
    assert txn.state == TRYING and ev[0][2] is r and ev[0][3] == UDP_PEER and L.server_count() == 1
    assert L.on_request(req("OPTIONS"), UDP_PEER, 100) == ([], [])        # Trying: retransmission dropped
    act = L.respond(txn, resp(r, 100, "Trying"), 200)
    assert len(act) == 1 and txn.state == PROCEEDING and act[0][2] == UDP_PEER
    ev, act2 = L.on_request(req("OPTIONS"), UDP_PEER, 300)
    assert ev == [] and act2 == act                                      # resend the provisional
    ok = resp(r, 200, "OK")
    act = L.respond(txn, ok, 400)
    assert act == [("send", ok.to_bytes(), UDP_PEER)] and txn.state == COMPLETED
    assert txn.last_response is ok
    ev, act2 = L.on_request(req("OPTIONS"), UDP_PEER, 500)
    assert ev == [] and act2 == act                                      # resend the final
    assert L.respond(txn, resp(r, 500, "Oops"), 600) == []               # a second final is discarded
    assert L.next_timer() == 400 + 32000                                 # Timer J = 64*T1
    ev, act = L.tick(32400)
    assert ev == [("terminated", txn)] and L.server_count() == 0
    assert L.respond(txn, ok, 32500) == []
    ev, _ = L.on_request(req("OPTIONS"), UDP_PEER, 32600)                # now a new transaction
    assert kinds(ev) == ["request"] and ev[0][1] is not txn


def test_nist_tcp_terminates_on_final_and_reports_it_next_call():
    L = TransactionLayer()
    r = req("OPTIONS", transport="TCP")
    ev, _ = L.on_request(r, TCP_PEER, 0)
    txn = ev[0][1]
    act = L.respond(txn, resp(r, 200, "OK"), 10)
    assert act[0][2] == TCP_PEER and txn.state == TERMINATED and L.server_count() == 0
    assert L.next_timer() is None                                        # Timer J is zero
    ev, act = L.tick(20)
    assert ev == [("terminated", txn)] and act == []
    assert L.tick(30) == ([], [])                                        # reported exactly once


def test_server_response_address_rport_and_received():
    L = TransactionLayer()
    r = req("OPTIONS", via_host="192.168.1.5", via_port=5062, via_params=";rport")
    src = ("udp", "203.0.113.7", 31000)
    ev, _ = L.on_request(r, src, 0)
    txn = ev[0][1]
    assert txn.addr == src                                               # RFC 3581: back to the source port
    v = r.get("Via")
    assert "received=203.0.113.7" in v and "rport=31000" in v and "branch=" + BR in v
    ok = resp(r, 200, "OK")
    assert "rport=31000" in ok.get("Via")                                # the TU copies the stamped Via
    # no rport: source host, sent-by port; received only when the host differs
    r2 = req("OPTIONS", branch="z9hG4bKn2", via_host="192.168.1.5", via_port=5062)
    ev, _ = L.on_request(r2, ("udp", "203.0.113.7", 31000), 0)
    assert ev[0][1].addr == ("udp", "203.0.113.7", 5062) and "received=203.0.113.7" in r2.get("Via")
    r3 = req("OPTIONS", branch="z9hG4bKn3", via_host="10.0.0.2", via_port=None)
    ev, _ = L.on_request(r3, UDP_PEER, 0)
    assert ev[0][1].addr == ("udp", "10.0.0.2", 5060) and "received" not in r3.get("Via")
    # rport asks for received even when the host is the same (RFC 3581 §4); IPv6 without brackets
    r5 = req("OPTIONS", branch="z9hG4bKn5", via_params=";rport")
    L.on_request(r5, ("udp", "10.0.0.2", 7000), 0)
    assert r5.get("Via") == "SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bKn5;rport=7000;received=10.0.0.2"
    r6 = req("OPTIONS", branch="z9hG4bKn6", via_host="[2001:db8::1]")
    ev, _ = L.on_request(r6, ("udp", "2001:db8::9", 5060), 0)
    assert "received=2001:db8::9" in r6.get("Via") and ev[0][1].addr == ("udp", "2001:db8::9", 5060)
    r7 = req("OPTIONS", branch="z9hG4bKn7", via_host="[2001:db8::1]")
    L.on_request(r7, ("udp", "2001:db8::1", 5060), 0)
    assert "received" not in r7.get("Via")
    # reliable: the connection it came on
    r4 = req("OPTIONS", branch="z9hG4bKn4", transport="TCP")
    ev, _ = L.on_request(r4, TCP_PEER, 0)
    assert ev[0][1].addr == TCP_PEER


def test_server_matching_uses_sent_by_and_method():
    L = TransactionLayer()
    ev1, _ = L.on_request(req("OPTIONS", via_host="10.0.0.2"), UDP_PEER, 0)
    ev2, _ = L.on_request(req("OPTIONS", via_host="10.0.0.3"), ("udp", "10.0.0.3", 5060), 0)
    ev3, _ = L.on_request(req("INFO"), UDP_PEER, 0)
    ev4, _ = L.on_request(req("OPTIONS", via_port=5070), UDP_PEER, 0)
    assert [kinds(e) for e in (ev1, ev2, ev3, ev4)] == [["request"]] * 4
    assert L.server_count() == 4


# ---------------------------------------------------------------- INVITE server (§17.2.1, RFC 6026)

def test_ist_retransmitted_invite_before_response_absorbed():
    L = TransactionLayer()
    ev, act = L.on_request(req("INVITE"), UDP_PEER, 0)
    txn = ev[0][1]
    assert txn.state == PROCEEDING and act == []
    assert L.on_request(req("INVITE"), UDP_PEER, 500) == ([], [])
    act = L.respond(txn, resp(txn.request, 180, "Ringing"), 600)
    ev, act2 = L.on_request(req("INVITE"), UDP_PEER, 1500)
    assert ev == [] and act2 == act                                      # resend the latest provisional


def test_ist_auto_trying():
    L = TransactionLayer(auto_trying=True)
    r = req("INVITE", extra=("Timestamp: 54",))
    ev, act = L.on_request(r, UDP_PEER, 0)
    assert kinds(ev) == ["request"] and len(act) == 1
    t = parse(act[0][1])
    assert t.status == 100 and t.get("CSeq") == "1 INVITE" and t.get("Timestamp") == "54"
    assert t.get_all("Via") == r.get_all("Via") and t.get("Call-ID") == "call-1"
    assert "tag=" not in t.get("To")
    ev, act2 = L.on_request(req("INVITE"), UDP_PEER, 500)
    assert ev == [] and act2 == act
    ev, act = L.on_request(req("OPTIONS"), UDP_PEER, 0)
    assert act == []                                                     # only INVITE gets the automatic 100


def test_ist_non2xx_timer_g_until_ack_then_confirmed_timer_i():
    L = TransactionLayer()
    r = req("INVITE")
    ev, _ = L.on_request(r, UDP_PEER, 0)
    txn = ev[0][1]
    busy = resp(r, 486, "Busy Here", to_tag="me")
    act = L.respond(txn, busy, 1000)
    assert txn.state == COMPLETED and len(act) == 1
    # Timer G intervals 500, 1000, 2000, 4000, 4000 (min(2G, T2)), from the final at t=1000
    assert send_times(L, 12600, 1000) == [500, 1500, 3500, 7500, 11500]
    assert L.next_timer() == 16500
    ev, act2 = L.on_request(req("INVITE"), UDP_PEER, 12700)
    assert ev == [] and act2 == act                                      # INVITE retransmission: resend final
    ack = req("ACK", to_tag="me")                                        # same branch: part of this txn
    ev, act = L.on_request(ack, UDP_PEER, 12800)
    assert ev == [] and act == [] and txn.state == CONFIRMED
    assert L.next_timer() == 12800 + 5000                                # Timer I = T4; G and H stopped
    assert L.on_request(req("ACK", to_tag="me"), UDP_PEER, 13000) == ([], [])   # absorbed again
    assert L.on_request(req("INVITE"), UDP_PEER, 13100) == ([], [])      # Confirmed: absorbed
    assert L.tick(17799) == ([], [])
    ev, act = L.tick(17800)
    assert ev == [("terminated", txn)] and act == [] and L.server_count() == 0


def test_ist_timer_h_without_ack():
    L = TransactionLayer()
    r = req("INVITE")
    ev, _ = L.on_request(r, UDP_PEER, 0)
    txn = ev[0][1]
    L.respond(txn, resp(r, 404, "Not Found"), 0)
    last = None
    for t, ev, act in run_until(L, 40000):
        if ev:
            last = (t, ev)
    assert last == (32000, [("timeout", txn), ("terminated", txn)])


def test_ist_tcp_no_timer_g_and_ack_terminates():
    L = TransactionLayer()
    r = req("INVITE", transport="TCP")
    ev, _ = L.on_request(r, TCP_PEER, 0)
    txn = ev[0][1]
    L.respond(txn, resp(r, 480, "Unavailable", to_tag="x"), 10)
    assert L.next_timer() == 10 + 32000                                  # only Timer H
    ev, act = L.on_request(req("ACK", to_tag="x", transport="TCP"), TCP_PEER, 20)
    assert ev == [("terminated", txn)] and act == []                     # Timer I zero


def test_ist_2xx_accepted_ack_to_tu_timer_l():
    L = TransactionLayer()
    r = req("INVITE")
    ev, _ = L.on_request(r, UDP_PEER, 0)
    txn = ev[0][1]
    L.respond(txn, resp(r, 180, "Ringing"), 5)
    ok = resp(r, 200, "OK", to_tag="me")
    act = L.respond(txn, ok, 10)
    assert len(act) == 1 and txn.state == ACCEPTED
    assert L.next_timer() == 10 + 32000                                  # Timer L; no layer retransmissions
    assert L.on_request(req("INVITE"), UDP_PEER, 500) == ([], [])        # INVITE retransmission absorbed
    act = L.respond(txn, ok, 510)                                        # the TU retransmits its 2xx
    assert act == [("send", ok.to_bytes(), UDP_PEER)]
    assert L.respond(txn, resp(r, 486, "Busy"), 520) == []               # non-2xx after 2xx: discarded
    ack = req("ACK", branch="z9hG4bKackfor2xx", to_tag="me")             # ACK for 2xx: new branch
    ev, act = L.on_request(ack, UDP_PEER, 600)
    assert ev == [("request", None, ack, UDP_PEER)] and act == []
    same = req("ACK", to_tag="me")                                       # even with the INVITE's branch
    ev, act = L.on_request(same, UDP_PEER, 700)
    assert ev == [("request", None, same, UDP_PEER)] and txn.state == ACCEPTED
    ev, act = L.tick(32010)
    assert ev == [("terminated", txn)] and L.server_count() == 0
    ev, _ = L.on_request(req("ACK", branch="z9hG4bKlate", to_tag="me"), UDP_PEER, 40000)
    assert kinds(ev) == ["request"] and ev[0][1] is None


def test_ist_ack_before_final_is_dropped():
    L = TransactionLayer()
    ev, _ = L.on_request(req("INVITE"), UDP_PEER, 0)
    txn = ev[0][1]
    assert L.on_request(req("ACK"), UDP_PEER, 5) == ([], []) and txn.state == PROCEEDING


def test_cancel_server_is_its_own_transaction():
    L = TransactionLayer()
    inv = req("INVITE")
    ev, _ = L.on_request(inv, UDP_PEER, 0)
    itx = ev[0][1]
    cancel = req("CANCEL")
    ev, act = L.on_request(cancel, UDP_PEER, 100)
    assert kinds(ev) == ["request"] and act == []
    ctx = ev[0][1]
    assert ctx is not itx and isinstance(ctx, tx.NonInviteServerTransaction) and L.server_count() == 2
    assert L.invite_for_cancel(cancel) is itx
    assert L.invite_for_cancel(req("CANCEL", branch="z9hG4bKnone")) is None
    L.respond(ctx, resp(cancel, 200, "OK"), 110)
    assert ctx.state == COMPLETED and itx.state == PROCEEDING
    L.respond(itx, resp(inv, 487, "Request Terminated"), 120)
    assert itx.state == COMPLETED
    ev, _ = L.on_request(req("CANCEL"), UDP_PEER, 130)                   # CANCEL retransmission: its own 200
    assert ev == []


# ---------------------------------------------------------------- RFC 2543 matching (§17.2.3)

def test_rfc2543_matching_without_magic_cookie():
    L = TransactionLayer()
    r = req("INVITE", branch="old1")
    ev, _ = L.on_request(r, UDP_PEER, 0)
    txn = ev[0][1]
    assert L.on_request(req("INVITE", branch="old1"), UDP_PEER, 100) == ([], [])
    ev, _ = L.on_request(req("INVITE", branch=None), UDP_PEER, 100)      # top Via differs
    assert kinds(ev) == ["request"]
    for k in ({"cseq": 2}, {"callid": "other"}, {"from_tag": "f9"}, {"uri": "sip:carol@example.com"},
              {"to_tag": "zz"}):
        ev, _ = L.on_request(req("INVITE", branch="old1", **k), UDP_PEER, 100)
        assert kinds(ev) == ["request"] and ev[0][1] is not txn, k
    L.respond(txn, resp(r, 486, "Busy Here", to_tag="srv"), 200)
    ev, act = L.on_request(req("INVITE", branch="old1"), UDP_PEER, 300)
    assert len(act) == 1 and parse(act[0][1]).status == 486
    wrong = req("ACK", branch="old1", to_tag="bogus")
    ev, _ = L.on_request(wrong, UDP_PEER, 400)
    assert ev == [("request", None, wrong, UDP_PEER)] and txn.state == COMPLETED
    ev, act = L.on_request(req("ACK", branch="old1", to_tag="srv"), UDP_PEER, 500)
    assert ev == [] and act == [] and txn.state == CONFIRMED


def test_rfc2543_reinvite_ack_and_non_invite():
    L = TransactionLayer()
    r = req("INVITE", branch=None, to_tag="dlg", cseq=5)
    ev, _ = L.on_request(r, UDP_PEER, 0)
    txn = ev[0][1]
    L.respond(txn, resp(r, 488, "Not Acceptable Here"), 10)
    ev, _ = L.on_request(req("ACK", branch=None, to_tag="dlg", cseq=5), UDP_PEER, 20)
    assert ev == [] and txn.state == CONFIRMED
    b = req("BYE", branch=None, to_tag="dlg", cseq=6)
    ev, _ = L.on_request(b, UDP_PEER, 30)
    btx = ev[0][1]
    assert btx is not None and L.on_request(req("BYE", branch=None, to_tag="dlg", cseq=6), UDP_PEER, 40) == ([], [])
    ev, _ = L.on_request(req("INFO", branch=None, to_tag="dlg", cseq=6), UDP_PEER, 50)   # method differs
    assert kinds(ev) == ["request"] and ev[0][1] is not btx


# ---------------------------------------------------------------- bounds, errors, bookkeeping

def test_server_table_full_reports_overload_without_state():
    L = TransactionLayer(max_transactions=2)
    a, _ = L.on_request(req("OPTIONS", branch="z9hG4bKa"), UDP_PEER, 0)
    L.on_request(req("OPTIONS", branch="z9hG4bKb"), UDP_PEER, 0)
    c = req("OPTIONS", branch="z9hG4bKc", via_params=";rport")
    ev, act = L.on_request(c, ("udp", "10.0.0.2", 6000), 0)
    assert ev == [("overload", c, ("udp", "10.0.0.2", 6000))] and act == [] and L.server_count() == 2
    busy = resp(c, 503, "Service Unavailable")
    act = L.stateless_response(busy, ev[0][2])
    assert act == [("send", busy.to_bytes(), ("udp", "10.0.0.2", 6000))]
    assert L.on_request(req("OPTIONS", branch="z9hG4bKa"), UDP_PEER, 1) == ([], [])   # still absorbed
    ack = req("ACK", branch="z9hG4bKd")
    ev, _ = L.on_request(ack, UDP_PEER, 2)
    assert ev == [("request", None, ack, UDP_PEER)]                       # ACK never needs a slot
    L.respond(a[0][1], resp(req("OPTIONS", branch="z9hG4bKa"), 200, "OK"), 3)
    L.tick(3 + 32000)
    ev, _ = L.on_request(req("OPTIONS", branch="z9hG4bKc"), UDP_PEER, 40000)
    assert kinds(ev) == ["request"] and L.server_count() == 2


def test_full_table_ends_lingering_completed_transactions_first():
    L = TransactionLayer(max_transactions=4)
    done = []
    for b in ("z9hG4bKa", "z9hG4bKb", "z9hG4bKc"):
        ev, _ = L.on_request(req("REGISTER", branch=b), UDP_PEER, 0)
        L.respond(ev[0][1], resp(ev[0][2], 200, "OK"), 1)   # Completed: only absorbing retransmissions now
        done.append(ev[0][1])
    busy, _ = L.on_request(req("REGISTER", branch="z9hG4bKd"), UDP_PEER, 2)    # still Trying
    ev, _ = L.on_request(req("REGISTER", branch="z9hG4bKe"), UDP_PEER, 3)
    assert kinds(ev)[-1] == "request" and ("terminated", done[0]) in ev         # room made, not refused
    assert busy[0][1].state == TRYING and L.server_count() <= 4 and L.evicted >= 1
    # only Trying transactions left to lose: then it is a real overload
    for b in ("z9hG4bKf", "z9hG4bKg", "z9hG4bKh", "z9hG4bKi"):
        ev, _ = L.on_request(req("REGISTER", branch=b), UDP_PEER, 4)
    assert kinds(ev) == ["overload"]


def test_full_client_table_ends_completed_transactions_first():
    L = TransactionLayer(max_transactions=2)
    t1, _ = L.send_request(req("MESSAGE", branch="z9hG4bKc1"), UDP_PEER, 0)
    L.on_response(resp(t1.request, 200, "OK"), UDP_PEER, 1)            # Completed (Timer K)
    t2, _ = L.send_request(req("MESSAGE", branch="z9hG4bKc2"), UDP_PEER, 2)  # Trying
    t3, act = L.send_request(req("MESSAGE", branch="z9hG4bKc3"), UDP_PEER, 3)
    assert t3 is not None and act and t1.state == TERMINATED and t2.state == TRYING
    assert L.send_request(req("MESSAGE", branch="z9hG4bKc4"), UDP_PEER, 4) == (None, [])


def test_client_table_full_refuses_without_sending():
    L = TransactionLayer(max_transactions=1)
    t1, _ = L.send_request(req("OPTIONS", branch="z9hG4bKa"), UDP_PEER, 0)
    t2, act = L.send_request(req("OPTIONS", branch="z9hG4bKb"), UDP_PEER, 0)
    assert t1 is not None and t2 is None and act == [] and L.client_count() == 1


def test_malformed_requests_are_reported_not_raised():
    L = TransactionLayer()
    r = req("OPTIONS")
    r.remove("Via")
    ev, act = L.on_request(r, UDP_PEER, 0)
    assert ev == [("malformed", r, UDP_PEER, "missing Via")] and act == []
    r = req("OPTIONS", branch="nocookie")
    r.remove("CSeq")
    ev, act = L.on_request(r, UDP_PEER, 0)
    assert kinds(ev) == ["malformed"] and L.server_count() == 0
    r = req("OPTIONS")
    r.set("Via", "garbage")
    ev, _ = L.on_request(r, UDP_PEER, 0)
    assert kinds(ev) == ["malformed"]
    resp_no_via = resp(req("OPTIONS"), 200)
    resp_no_via.remove("Via")
    assert L.on_response(resp_no_via, UDP_PEER, 0) == ([], [])


def test_transport_error_informs_tu_and_removes():
    L = TransactionLayer()
    t1, _ = L.send_request(req("INVITE", transport="TCP"), TCP_PEER, 0)
    t2, _ = L.send_request(req("OPTIONS", branch="z9hG4bKz"), UDP_PEER, 0)
    ev, act = L.transport_error(TCP_PEER, 10)
    assert ev == [("transport_error", t1), ("terminated", t1)] and act == []
    assert L.client_count() == 1 and t2.state == TRYING


def test_timer_heap_stays_bounded_with_many_short_transactions():
    L = TransactionLayer()
    for i in range(300):
        r = req("OPTIONS", branch="z9hG4bK%d" % i, transport="TCP")
        L.send_request(r, TCP_PEER, i)
        L.on_response(resp(r, 200, "OK"), TCP_PEER, i)                  # leaves a stale Timer F entry
        assert L.timer_entries() <= 64 + 4 * (L.client_count() + 1)
    assert L.client_count() == 0 and L.next_timer() is None and L.timer_entries() == 0


def test_timers_fire_in_deadline_order_across_transactions():
    L = TransactionLayer()
    a, _ = L.send_request(req("OPTIONS", branch="z9hG4bKa"), UDP_PEER, 0)
    b, _ = L.send_request(req("OPTIONS", branch="z9hG4bKb"), UDP_PEER, 200)
    ev, act = L.tick(10000)                                             # late tick: everything due fires once
    assert len(act) == 2                                                # one retransmission each (reset from now)
    assert L.next_timer() == 11000


def test_every_transaction_terminates_exactly_once():
    L = TransactionLayer()
    seen = []
    for i in range(6):
        r = req("INVITE" if i % 2 else "OPTIONS", branch="z9hG4bKt%d" % i)
        txn, _ = L.send_request(r, UDP_PEER, 0)
        ev, _ = L.on_response(resp(r, 200 + 100 * (i % 3), "R"), UDP_PEER, 10)
        seen += [e[1] for e in ev if e[0] == "terminated"]
        ev, _ = L.on_request(req("OPTIONS" if i % 2 else "INVITE", branch="z9hG4bKs%d" % i), UDP_PEER, 10)
        s = ev[0][1]
        L.respond(s, resp(s.request, 200 + 200 * (i % 2), "R"), 10)
    for t, ev, act in run_until(L, 100000):
        seen += [e[1] for e in ev if e[0] == "terminated"]
    assert len(seen) == 12 and len(set([id(x) for x in seen])) == 12
    assert L.server_count() == 0 and L.client_count() == 0 and L.next_timer() is None
