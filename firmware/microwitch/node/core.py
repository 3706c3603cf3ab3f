"""The node's sans-I/O core: one path for every packet (architecture.md).

`Node.receive(data, source, now, wall)` takes one datagram or one framed TCP message from `source`
(`(proto, host, port)`), with `now` a monotonic never-wrapping clock in ms and `wall` wall-clock seconds, and
returns a list of actions `("send", bytes, addr)`. `Node.tick(now, wall)` runs timers. Nothing here does I/O.
"""
from microwitch.compat import const
from microwitch.sip.message import parse, ParseError, make_response
from microwitch.sip.transaction import TransactionLayer
from microwitch.node.registrar import Registrar

_ALLOW = "REGISTER, OPTIONS"
_USERS_RECHECK_MS = const(1000)  # a CLI change to the user store is seen within this time
_MAX_REASON = const(80)


def _addr_text(addr):
    return "%s:%s:%d" % addr


class Node:
    """Registrar node: parse -> transaction -> registrar/OPTIONS -> response actions."""

    def __init__(self, cfg, users, bindings, rand, log, node_secret, local_hosts=()):
        self.cfg = cfg
        self.users = users
        self.log = log
        self.txl = TransactionLayer()
        self.registrar = Registrar(cfg, users, bindings, rand, node_secret, log.info, local_hosts)
        self._users_checked = None

    def receive(self, data, source, now, wall):
        if source[0] == "udp" and not data.strip(b"\r\n"):
            return []  # RFC 5626 §4.4.1: CRLF keep-alives on UDP are ignored
        try:
            msg = parse(data, source[0] != "udp")
        except ParseError as e:
            return self._unparseable(e.message, source, e.reason)
        if msg.is_request:
            events, actions = self.txl.on_request(msg, source, now)
        else:
            events, actions = self.txl.on_response(msg, source, now)
        for ev in events:
            actions.extend(self._event(ev, now, wall))
        return actions

    def tick(self, now, wall):
        if self._users_checked is None or now - self._users_checked >= _USERS_RECHECK_MS:
            self._users_checked = now
            self.users.refresh()
        events, actions = self.txl.tick(now)
        for ev in events:
            actions.extend(self._event(ev, now, wall))
        return actions

    def next_timer(self):
        return self.txl.next_timer()

    def _unparseable(self, partial, source, reason):
        """RFC 3261 §16.3/§8.2: 400 with the reason when enough parsed to answer; otherwise drop."""
        reason = reason[:_MAX_REASON]
        if partial is None or not partial.is_request or partial.method == "ACK":
            self.log.info("DROP %s unparseable: %s" % (_addr_text(source), reason))
            return []
        resp = make_response(partial, 400, "Bad Request")
        resp.add("Warning", '399 %s "%s"' % (self.cfg["domain"], reason.replace('"', "'")))
        self.log.info("%s %s %s 400 %s" % (partial.method, partial.uri[:_MAX_REASON], _addr_text(source), reason))
        return self.txl.stateless_response(resp, source)

    def _event(self, ev, now, wall):
        kind = ev[0]
        if kind == "request":
            txn, msg, source = ev[1], ev[2], ev[3]
            if txn is None:
                return []  # ACK for a 2xx or a stray ACK: nothing to forward on a registrar
            if msg.method == "REGISTER":
                resp = self.registrar.handle(msg, source, now, wall)  # logs its own outcome
            else:
                resp = self._other(msg)
                self.log.info("%s %s %s %d %s" % (msg.method, msg.uri[:_MAX_REASON], _addr_text(source),
                                                  resp.status, resp.reason))
            return self.txl.respond(txn, resp, now)
        if kind == "malformed":
            return self._unparseable(ev[1], ev[2], ev[3])
        if kind == "overload":
            msg, source = ev[1], ev[2]
            self.log.warning("%s %s %s 503 transaction table full" % (msg.method, msg.uri[:_MAX_REASON],
                                                                      _addr_text(source)))
            if msg.method == "ACK":
                return []
            resp = make_response(msg, 503, "Service Unavailable")
            resp.set("Retry-After", "5")
            return self.txl.stateless_response(resp, source)
        return []

    def _other(self, msg):
        if msg.method == "OPTIONS":
            resp = make_response(msg, 200, "OK", self.registrar._tag())
            resp.set("Allow", _ALLOW)
            resp.set("Accept", "application/sdp")
            return resp
        if msg.method == "CANCEL":
            return make_response(msg, 481, "Call/Transaction Does Not Exist")
        # calls arrive with the forwarder (issue 5); until then say so instead of pretending
        return make_response(msg, 501, "Not Implemented (no call forwarding on this node yet)",
                             self.registrar._tag())
