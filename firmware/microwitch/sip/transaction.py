"""SIP transaction layer: RFC 3261 §17 state machines with the RFC 6026 "Accepted" states, sans-I/O.

One class per state machine, states named as in the RFC:
  InviteClientTransaction     §17.1.1  Calling, Proceeding, Completed, Accepted (RFC 6026), Terminated
  NonInviteClientTransaction  §17.1.2  Trying, Proceeding, Completed, Terminated
  InviteServerTransaction     §17.2.1  Proceeding, Completed, Confirmed, Accepted (RFC 6026), Terminated
  NonInviteServerTransaction  §17.2.2  Trying, Proceeding, Completed, Terminated

`TransactionLayer` matches messages to transactions (§17.1.3, §17.2.3), creates and removes them and runs
every timer (A-M) from the injected clock. `now` is a monotonic, never-wrapping millisecond count (the adapter
accumulates ticks_diff; raw ticks_ms wraps and must not be passed in). Addresses are (proto, host, port) with
proto "udp" (unreliable) or anything else, e.g. "tcp" (reliable: no retransmission timers, Timers D/I/J/K zero).

Results are lists: actions ("send", data_bytes, addr) and events for the transaction user (TU):
  ("request", server_txn, msg, source)  a new request; server_txn is None for an ACK the layer does not absorb
                                        (ACK for a 2xx, ACK matching nothing): a UA core or proxy handles it
  ("response", client_txn, msg)         client_txn is None for a response matching no transaction (stray or
                                        late, e.g. 2xx retransmissions after Timer M): the TU decides
  ("timeout", txn)                      Timer B/F on a client transaction; Timer H (no ACK) on an INVITE server
  ("transport_error", txn)              after transport_error(addr, now)
  ("terminated", txn)                   exactly once per transaction, when it is removed; a termination caused
                                        by respond() (reliable transport) is reported by the next on_request,
                                        on_response or tick call
  ("overload", msg, source)             table full: no state was created; the TU answers 503 statelessly
                                        with stateless_response()
  ("malformed", msg, source, reason)    the request lacks what matching needs (Via, CSeq...): the TU may
                                        answer 400 statelessly (never to an ACK) or drop it

100 Trying: a retransmitted INVITE before any response is absorbed silently. The TU sends 100 itself through
respond(), or constructs the layer with auto_trying=True so the layer sends one (trying_response()) as soon as
an INVITE server transaction is created; INVITE retransmissions are then answered with it.

Received requests get "received"/"rport" stamped on their top Via (§18.2.1, RFC 3581) before the TU sees them.
Responses of server transactions go over the same connection on reliable transports and, on UDP, to the
source host at the rport (if asked for) or the sent-by port (§18.2.2); maddr is not honoured.
"""
from binascii import hexlify
from heapq import heappush, heappop

from microwitch.compat import const
from microwitch.sip.headers import ParseError, parse_via, parse_name_addr, parse_cseq
from microwitch.sip.message import Message

MAGIC_COOKIE = "z9hG4bK"
# Live transactions per side (server and client are bounded separately, so a proxy that accepted a request can
# still forward it). Boards with little RAM pass a smaller max_transactions.
MAX_TRANSACTIONS = const(1024)
_TIMER_D_MIN = const(32000)   # §17.1.1.2: "at least 32 seconds" for unreliable transports
_HEAP_SLACK = const(64)       # stale timer entries tolerated before the heap is rebuilt

CALLING = "Calling"
TRYING = "Trying"
PROCEEDING = "Proceeding"
COMPLETED = "Completed"
CONFIRMED = "Confirmed"
ACCEPTED = "Accepted"
TERMINATED = "Terminated"


def new_branch(rand):
    """A fresh Via branch with the RFC 3261 magic cookie (§8.1.1.7); `rand(n)` returns n random bytes."""
    return MAGIC_COOKIE + hexlify(rand(8)).decode()


def trying_response(request):
    """The 100 Trying for `request` (§8.2.6.1: Via, From, To, Call-ID, CSeq and Timestamp copied)."""
    h = []
    for v in request.get_all("Via"):
        h.append(["Via", v])
    for name in ("From", "To", "Call-ID", "CSeq", "Timestamp"):
        v = request.get(name)
        if v is not None:
            h.append([name, v])
    return Message.response(100, "Trying", h)


def ack_for(invite, response):
    """The ACK for a non-2xx final response (§17.1.1.3): same Request-URI, Call-ID, From and CSeq number as the
    INVITE, To from the response (with its tag), a single Via equal to the INVITE's top Via, its Route set."""
    h = [["Via", invite.get("Via")]]
    for r in invite.get_all("Route"):
        h.append(["Route", r])
    h.append(["Max-Forwards", invite.get("Max-Forwards") or "70"])
    h.append(["From", invite.get("From")])
    h.append(["To", response.get("To")])
    h.append(["Call-ID", invite.get("Call-ID")])
    h.append(["CSeq", str(parse_cseq(invite.get("CSeq"))[0]) + " ACK"])
    return Message.request("ACK", invite.uri, h)


def response_addr(via, source):
    """Where a response to a request from `source` with top Via `via` goes (§18.2.2 with RFC 3581 rport)."""
    if source[0] != "udp":
        return source
    if "rport" in via.params:
        return ("udp", source[1], source[2])
    return ("udp", source[1], via.port or 5060)


def _bare(host):
    if host.startswith("[") and host.endswith("]"):
        return host[1:-1]
    return host


def _tag(value):
    if value is None:
        return ""
    return parse_name_addr(value).tag or ""


class _Transaction:
    """What all four machines share: identity, the request, the peer address and timer bookkeeping."""
    is_invite = False
    is_server = False

    def __init__(self, layer, key, request, addr, branch):
        self.layer = layer
        self.key = key
        self.request = request
        self.method = request.method
        self.addr = addr          # client: destination; server: where responses go
        self.branch = branch
        self.reliable = addr[0] != "udp"
        self.state = None
        self.timers = {}          # name -> (deadline, seq); a heap entry is live while its seq is here
        layer._ids += 1
        self.id = layer._ids

    def _start_timer(self, name, delay, now):
        self.layer._set_timer(self, name, now + delay)

    def _stop_timer(self, name):
        self.timers.pop(name, None)

    def _terminate(self, ev):
        self.state = TERMINATED
        self.timers.clear()
        self.layer._remove(self, ev)

    def __repr__(self):
        return "<%s %d %s %s>" % (self.__class__.__name__, self.id, self.method, self.state)


class InviteClientTransaction(_Transaction):
    """§17.1.1 with RFC 6026 §7.2: a 2xx moves Calling/Proceeding to Accepted (Timer M), where further 2xx
    (other forks, retransmissions) go to the TU; non-2xx finals are ACKed here and absorbed in Completed."""
    is_invite = True

    def start(self, now, ev, act):
        self.state = CALLING
        self.data = self.request.to_bytes()
        self.ack = None
        act.append(("send", self.data, self.addr))
        t1 = self.layer.t1
        if not self.reliable:
            self.interval = t1
            self._start_timer("A", t1, now)
        self._start_timer("B", 64 * t1, now)

    def on_response(self, msg, now, ev, act):
        code = msg.status
        st = self.state
        if st == CALLING or st == PROCEEDING:
            self._stop_timer("A")
            if code >= 200:
                self.data = None                          # never retransmitted again: free it early
            if code < 200:
                # §17.1.1.2: no retransmissions in Proceeding, and Timer B only guards Calling
                self._stop_timer("B")
                self.state = PROCEEDING
                ev.append(("response", self, msg))
            elif code < 300:
                self._stop_timer("B")
                self.state = ACCEPTED
                self._start_timer("M", 64 * self.layer.t1, now)
                ev.append(("response", self, msg))
            else:
                self._stop_timer("B")
                self.state = COMPLETED
                self.ack = ack_for(self.request, msg).to_bytes()
                act.append(("send", self.ack, self.addr))
                ev.append(("response", self, msg))
                if self.reliable:
                    self._terminate(ev)
                else:
                    d = 64 * self.layer.t1
                    self._start_timer("D", d if d > _TIMER_D_MIN else _TIMER_D_MIN, now)
        elif st == COMPLETED:
            if code >= 300:
                act.append(("send", self.ack, self.addr))   # retransmitted final: ACK again, absorb
        elif st == ACCEPTED:
            if 200 <= code < 300:
                ev.append(("response", self, msg))

    def on_timer(self, name, now, ev, act):
        st = self.state
        if name == "A" and st == CALLING:
            act.append(("send", self.data, self.addr))
            self.interval *= 2                            # §17.1.1.2: INVITE doubling is not capped at T2
            self._start_timer("A", self.interval, now)
        elif name == "B" and st == CALLING:
            ev.append(("timeout", self))
            self._terminate(ev)
        elif (name == "D" and st == COMPLETED) or (name == "M" and st == ACCEPTED):
            self._terminate(ev)


class NonInviteClientTransaction(_Transaction):
    """§17.1.2: Timer E retransmits (T1 doubling up to T2, T2 once Proceeding), Timer F times out,
    Timer K absorbs response retransmissions in Completed."""

    def start(self, now, ev, act):
        self.state = TRYING
        self.data = self.request.to_bytes()
        act.append(("send", self.data, self.addr))
        t1 = self.layer.t1
        if not self.reliable:
            self.interval = t1
            self._start_timer("E", t1, now)
        self._start_timer("F", 64 * t1, now)

    def on_response(self, msg, now, ev, act):
        st = self.state
        if st != TRYING and st != PROCEEDING:
            return                                        # Completed: retransmitted finals absorbed
        if msg.status < 200:
            self.state = PROCEEDING
            ev.append(("response", self, msg))
            return
        self._stop_timer("E")
        self._stop_timer("F")
        self.data = None
        self.state = COMPLETED
        ev.append(("response", self, msg))
        if self.reliable:
            self._terminate(ev)
        else:
            self._start_timer("K", self.layer.t4, now)

    def on_timer(self, name, now, ev, act):
        st = self.state
        if name == "E" and (st == TRYING or st == PROCEEDING):
            act.append(("send", self.data, self.addr))
            t2 = self.layer.t2
            if st == PROCEEDING:
                self.interval = t2
            else:
                self.interval = self.interval * 2 if self.interval * 2 < t2 else t2
            self._start_timer("E", self.interval, now)
        elif name == "F" and (st == TRYING or st == PROCEEDING):
            ev.append(("timeout", self))
            self._terminate(ev)
        elif name == "K" and st == COMPLETED:
            self._terminate(ev)


class _ServerTransaction(_Transaction):
    is_server = True

    def __init__(self, layer, key, request, addr, branch, source):
        _Transaction.__init__(self, layer, key, request, addr, branch)
        self.source = source
        self.last_response = None     # the Message most recently sent
        self._last = None             # its bytes, resent on request retransmissions

    def _send(self, msg, act):
        self.last_response = msg
        self._last = msg.to_bytes()
        act.append(("send", self._last, self.addr))


class InviteServerTransaction(_ServerTransaction):
    """§17.2.1 with RFC 6026 §7.1: a 2xx from the TU moves Proceeding to Accepted (Timer L); the TU retransmits
    its 2xx through respond() and receives the ACK for it. Non-2xx finals are retransmitted here (Timer G) until
    the ACK (Confirmed, Timer I) or Timer H."""
    is_invite = True

    def start(self, now, ev, act):
        self.state = PROCEEDING
        if self.layer.auto_trying:
            self._send(trying_response(self.request), act)
        ev.append(("request", self, self.request, self.source))

    def on_retransmit(self, now, ev, act):
        if (self.state == PROCEEDING or self.state == COMPLETED) and self._last is not None:
            act.append(("send", self._last, self.addr))
        # Confirmed/Accepted (and Proceeding before any response): absorbed

    def on_ack(self, msg, source, now, ev, act):
        st = self.state
        if st == COMPLETED:
            self._stop_timer("G")
            self._stop_timer("H")
            self.state = CONFIRMED
            if self.reliable:
                self._terminate(ev)
            else:
                self._start_timer("I", self.layer.t4, now)
        elif st == ACCEPTED:
            ev.append(("request", None, msg, source))     # RFC 6026: ACK for the 2xx belongs to the TU
        # Confirmed: ACK retransmission absorbed; Proceeding: an ACK before any final is bogus, dropped

    def respond(self, msg, now, ev, act):
        st = self.state
        code = msg.status
        if st == PROCEEDING:
            self._send(msg, act)
            if code < 200:
                return
            t1 = self.layer.t1
            if code < 300:
                self.state = ACCEPTED
                self._start_timer("L", 64 * t1, now)
            else:
                self.state = COMPLETED
                if not self.reliable:
                    self.interval = t1
                    self._start_timer("G", t1, now)
                self._start_timer("H", 64 * t1, now)
        elif st == ACCEPTED and 200 <= code < 300:
            self._send(msg, act)                          # the TU's own 2xx retransmission
        # anything else after a final response is discarded

    def on_timer(self, name, now, ev, act):
        st = self.state
        if name == "G" and st == COMPLETED:
            act.append(("send", self._last, self.addr))
            t2 = self.layer.t2
            self.interval = self.interval * 2 if self.interval * 2 < t2 else t2
            self._start_timer("G", self.interval, now)
        elif name == "H" and st == COMPLETED:
            ev.append(("timeout", self))                  # the ACK never came
            self._terminate(ev)
        elif (name == "I" and st == CONFIRMED) or (name == "L" and st == ACCEPTED):
            self._terminate(ev)


class NonInviteServerTransaction(_ServerTransaction):
    """§17.2.2: retransmissions are ignored in Trying and answered with the last response afterwards;
    Timer J keeps the final response for retransmitted requests."""

    def start(self, now, ev, act):
        self.state = TRYING
        ev.append(("request", self, self.request, self.source))

    def on_retransmit(self, now, ev, act):
        if self.state == PROCEEDING or self.state == COMPLETED:
            act.append(("send", self._last, self.addr))

    def respond(self, msg, now, ev, act):
        st = self.state
        if st != TRYING and st != PROCEEDING:
            return
        self._send(msg, act)
        if msg.status < 200:
            self.state = PROCEEDING
            return
        self.state = COMPLETED
        if self.reliable:
            self._terminate(ev)
        else:
            self._start_timer("J", 64 * self.layer.t1, now)

    def on_timer(self, name, now, ev, act):
        if name == "J" and self.state == COMPLETED:
            self._terminate(ev)


class TransactionLayer:
    """Matches, creates, drives and removes transactions; see the module docstring for events and actions."""

    def __init__(self, t1=500, t2=4000, t4=5000, max_transactions=MAX_TRANSACTIONS, auto_trying=False):
        for name, v in (("t1", t1), ("t2", t2), ("t4", t4), ("max_transactions", max_transactions)):
            if not isinstance(v, int) or v <= 0:
                raise ValueError(name + " must be a positive integer")
        if t2 < t1:
            raise ValueError("t2 must not be below t1")
        self.t1 = t1
        self.t2 = t2
        self.t4 = t4
        self.max_transactions = max_transactions
        self.auto_trying = auto_trying
        self._server = {}       # match key -> server transaction
        self._client = {}       # ("c", branch, method) -> client transaction
        self._heap = []         # (deadline, seq, txn, timer name), lazily invalidated
        self._seq = 0
        self._ids = 0
        self._pending = []      # "terminated" events caused by respond(), delivered on the next call
        self.evicted = 0        # lingering server transactions ended early to make room (see _evict_soft)

    # -- introspection -------------------------------------------------------------------------------------
    def server_count(self):
        return len(self._server)

    def client_count(self):
        return len(self._client)

    def timer_entries(self):
        """Heap size, live and stale entries together (bounded; for tests and diagnostics)."""
        return len(self._heap)

    # -- received requests ---------------------------------------------------------------------------------
    def on_request(self, msg, source, now):
        """A request from the transport; returns (events, actions)."""
        ev = self._take_pending()
        act = []
        method = msg.method
        top = msg.get("Via")
        if top is None:
            ev.append(("malformed", msg, source, "missing Via"))
            return ev, act
        try:
            via = parse_via(top)
            if method == "ACK":
                txn = self._match_ack(msg, top, via)
            else:
                key = self._server_key(msg, method, top, via)
                if key is None:
                    ev.append(("malformed", msg, source, "missing CSeq or Call-ID"))
                    return ev, act
                txn = self._server.get(key)
        except ParseError as e:
            ev.append(("malformed", msg, source, e.reason))
            return ev, act
        if method == "ACK":
            if txn is None:
                self._stamp(msg, via, source)
                ev.append(("request", None, msg, source))
            else:
                txn.on_ack(msg, source, now, ev, act)
            return ev, act
        if txn is not None:
            txn.on_retransmit(now, ev, act)
            return ev, act
        self._stamp(msg, via, source)
        if len(self._server) >= self.max_transactions and not self._evict_soft(ev, self._server):
            ev.append(("overload", msg, source))
            return ev, act
        cls = InviteServerTransaction if method == "INVITE" else NonInviteServerTransaction
        txn = cls(self, key, msg, response_addr(via, source), via.branch, source)
        self._server[key] = txn
        txn.start(now, ev, act)
        return ev, act

    def _server_key(self, msg, method, top, via, to_tag=None):
        """§17.2.3. With the magic cookie: branch + sent-by + method (ACK counts as INVITE). Without it (RFC
        2543): Request-URI, To tag, From tag, Call-ID, CSeq and the top Via. None if CSeq/Call-ID are missing."""
        branch = via.branch
        if branch and branch.startswith(MAGIC_COOKIE):
            return ("b", branch, via.host, via.port, method)
        cseq = msg.get("CSeq")
        callid = msg.get("Call-ID")
        if cseq is None or callid is None:
            return None
        num = parse_cseq(cseq)[0]
        if to_tag is None:
            to_tag = _tag(msg.get("To"))
        return ("r", msg.uri, to_tag, _tag(msg.get("From")), callid, num, method, top)

    def _match_ack(self, msg, top, via):
        """The INVITE server transaction an ACK belongs to, or None."""
        branch = via.branch
        if branch and branch.startswith(MAGIC_COOKIE):
            return self._server.get(self._server_key(msg, "INVITE", top, via))
        # RFC 2543: the ACK's To tag is the one of the response the transaction sent; the INVITE itself may
        # have had no To tag (initial INVITE) or the same one (re-INVITE).
        ack_tag = _tag(msg.get("To"))
        for tag in ("", ack_tag):
            k = self._server_key(msg, "INVITE", top, via, tag)
            txn = self._server.get(k) if k is not None else None
            if txn is not None and txn.last_response is not None and txn.last_response.status >= 200 \
                    and _tag(txn.last_response.get("To")) == ack_tag:
                return txn
        return None

    def invite_for_cancel(self, cancel):
        """The INVITE server transaction a CANCEL refers to (§9.2), or None."""
        top = cancel.get("Via")
        if top is None:
            return None
        try:
            via = parse_via(top)
            key = self._server_key(cancel, "INVITE", top, via)
        except ParseError:
            return None
        return self._server.get(key) if key is not None else None

    def _stamp(self, msg, via, source):
        """§18.2.1 / RFC 3581: note the source address in the top Via when it differs or rport asks for it."""
        host = source[1]
        params = via.params
        changed = False
        if "rport" in params and params["rport"] is None:
            params["rport"] = str(source[2])
            changed = True
        if changed or _bare(via.host or "").lower() != _bare(host).lower():
            params["received"] = _bare(host)
            changed = True
        if changed:
            hs = msg.headers
            for i in range(len(hs)):
                if hs[i][0] == "Via":
                    hs[i] = ["Via", via.to_str()]
                    break

    # -- TU actions ----------------------------------------------------------------------------------------
    def respond(self, txn, response, now):
        """Send `response` on server transaction `txn`; returns actions ([] if the transaction is over or the
        response is not allowed in its state, e.g. a second final)."""
        act = []
        if txn is None or txn.state == TERMINATED:
            return act
        txn.respond(response, now, self._pending, act)
        del self._pending[self.max_transactions * 2:]      # bounded even if the TU never drains
        return act

    def stateless_response(self, response, source):
        """Actions sending `response` outside any transaction (503 on overload, 400 on malformed), to the
        address §18.2.2 gives for a request from `source` with the response's top Via."""
        top = response.get("Via")
        if top is None:
            return []
        try:
            via = parse_via(top)
        except ParseError:
            return []
        return [("send", response.to_bytes(), response_addr(via, source))]

    def send_request(self, msg, dest, now):
        """Start a client transaction for `msg` (whose top Via the TU gave a new_branch()) towards `dest`.
        Returns (txn, actions). An ACK creates no transaction: (None, [send]). When the client table is full:
        (None, []) and nothing is sent; the TU treats it as a 503 (§16.7 / §8.1.3.1)."""
        if msg.method == "ACK":
            return None, [("send", msg.to_bytes(), dest)]
        top = msg.get("Via")
        branch = parse_via(top).branch if top is not None else None
        if not branch or not branch.startswith(MAGIC_COOKIE):
            raise ValueError("send_request needs a top Via with a z9hG4bK branch")
        key = ("c", branch, msg.method)
        if key in self._client:
            raise ValueError("a client transaction with this branch and method exists")
        if len(self._client) >= self.max_transactions and not self._evict_soft(self._pending, self._client):
            return None, []
        cls = InviteClientTransaction if msg.method == "INVITE" else NonInviteClientTransaction
        txn = cls(self, key, msg, dest, branch)
        self._client[key] = txn
        act = []
        txn.start(now, self._pending, act)
        return txn, act

    # -- received responses --------------------------------------------------------------------------------
    def on_response(self, msg, source, now):
        """A response from the transport; matched by top Via branch + CSeq method (§17.1.3)."""
        ev = self._take_pending()
        act = []
        top = msg.get("Via")
        cseq = msg.get("CSeq")
        if top is None or cseq is None:
            return ev, act                                 # unroutable: dropped (§18.1.2)
        try:
            key = ("c", parse_via(top).branch, parse_cseq(cseq)[1])
        except ParseError:
            return ev, act
        txn = self._client.get(key)
        if txn is None:
            ev.append(("response", None, msg))
        else:
            txn.on_response(msg, now, ev, act)
        return ev, act

    def transport_error(self, addr, now):
        """The transport could not reach `addr` (e.g. TCP connect failed): every transaction sending there is
        told to the TU and removed (§17.1.1.2, §17.1.2.2, §17.2.4)."""
        ev = self._take_pending()
        hit = []
        for table in (self._client, self._server):
            for txn in table.values():
                if txn.addr == addr:
                    hit.append(txn)
        for txn in hit:
            ev.append(("transport_error", txn))
            txn._terminate(ev)
        return ev, []

    def abandon(self, txn):
        """§9.1: give up on a client transaction whose final response never came (64·T1 after its CANCEL).
        It is removed without sending anything; its "terminated" event comes with the next call's events."""
        if txn.state != TERMINATED:
            txn._terminate(self._pending)

    # -- timers --------------------------------------------------------------------------------------------
    def next_timer(self):
        """Absolute deadline (ms, same clock as `now`) of the earliest live timer, or None."""
        h = self._heap
        while h:
            e = h[0]
            t = e[2].timers.get(e[3])
            if t is not None and t[1] == e[1]:
                return e[0]
            heappop(h)
        return None

    def tick(self, now):
        """Fire every timer due at `now`; returns (events, actions)."""
        ev = self._take_pending()
        act = []
        h = self._heap
        budget = len(h) + 4 * (len(self._server) + len(self._client)) + 8
        while h and h[0][0] <= now and budget > 0:
            budget -= 1
            deadline, seq, txn, name = heappop(h)
            t = txn.timers.get(name)
            if t is None or t[1] != seq:
                continue                                   # cancelled or replaced
            del txn.timers[name]
            txn.on_timer(name, now, ev, act)
        return ev, act

    def _set_timer(self, txn, name, deadline):
        self._seq += 1
        txn.timers[name] = (deadline, self._seq)
        heappush(self._heap, (deadline, self._seq, txn, name))
        if len(self._heap) > 4 * (len(self._server) + len(self._client)) + _HEAP_SLACK:
            self._compact()

    def _compact(self):
        """Drop stale heap entries (cancelled timers, removed transactions); a sorted list is a valid heap."""
        live = []
        for table in (self._server, self._client):
            for txn in table.values():
                for name in txn.timers:
                    t = txn.timers[name]
                    live.append((t[0], t[1], txn, name))
        live.sort()
        self._heap[:] = live        # in place: tick() and next_timer() may hold a reference

    # -- bookkeeping ---------------------------------------------------------------------------------------
    def _evict_soft(self, ev, table):
        """Table full: end a batch of transactions that only linger to absorb retransmissions, so a burst is
        not refused for Timer J/K/M's seconds of memory (Kamailio's tm shortens its wait timer for the same
        reason). Server side: non-INVITE Completed, INVITE Confirmed/Accepted (the final response is sent and
        needs no more retransmitting); losing one means a late retransmission is processed again (a REGISTER
        replay is then refused by its nonce count). Client side: non-INVITE Completed and INVITE Accepted;
        a late 2xx then arrives as a stray, which a proxy forwards statelessly. Returns True if room was made."""
        want = self.max_transactions // 8 + 1
        gone = []
        for txn in table.values():
            st = txn.state
            if st == CONFIRMED or st == ACCEPTED or (st == COMPLETED and not txn.is_invite):
                gone.append(txn)
                if len(gone) >= want:
                    break
        for txn in gone:
            txn._terminate(ev)
        self.evicted += len(gone)
        return bool(gone)

    def _remove(self, txn, ev):
        table = self._server if txn.is_server else self._client
        if table.get(txn.key) is txn:
            del table[txn.key]
        ev.append(("terminated", txn))

    def _take_pending(self):
        if not self._pending:
            return []
        ev = self._pending
        self._pending = []
        return ev
