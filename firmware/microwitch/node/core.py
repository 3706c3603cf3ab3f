"""The node's sans-I/O core: one path for every packet (architecture.md).

`Node.receive(data, source, now, wall)` takes one datagram or one framed TCP message from `source`
(`(proto, host, port)`), with `now` a monotonic never-wrapping clock in ms and `wall` wall-clock seconds, and
returns a list of actions `("send", bytes, addr)`. `Node.tick(now, wall)` runs timers. Nothing here does I/O.
"""
from microwitch.compat import const
from microwitch.sip.message import parse, ParseError, make_response
from microwitch.sip.transaction import TransactionLayer
from microwitch.sip.uri import parse_uri
from microwitch.sip.headers import parse_name_addr
from microwitch.node.registrar import Registrar
from microwitch.node.proxy import Proxy
from microwitch.node.bridge import Bridge
from microwitch.node.federation import Federation
from microwitch.dns.resolver import Resolver, pick_servers

_ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, UPDATE, PRACK, INFO, MESSAGE, REFER, SUBSCRIBE, NOTIFY"
_USERS_RECHECK_MS = const(1000)  # a CLI change to the user store is seen within this time
_MAX_REASON = const(80)


def _addr_text(addr):
    return "%s:%s:%d" % addr


class Node:
    """The node: parse -> transaction -> registrar | proxy | OPTIONS for the node itself -> actions."""

    def __init__(self, cfg, users, bindings, rand, log, node_secret, local_hosts=(), accounts=None,
                 resolv_conf=None, dhcp_dns=None):
        self.cfg = cfg
        self.users = users
        self.accounts = accounts
        self.log = log
        self.txl = TransactionLayer(max_transactions=cfg.get("max_transactions", 4096))
        if cfg.get("advertise"):
            local_hosts = list(local_hosts) + [cfg["advertise"]]
        self.registrar = Registrar(cfg, users, bindings, rand, node_secret, log.info, local_hosts)
        self.bridge = None
        if cfg.get("pbx") and accounts is not None:
            self.bridge = Bridge(cfg["pbx"], accounts, self.registrar, self.txl, rand, log.info, self._me)
        # DNS federation (RFC 3263): resolver from config, else resolv.conf text, else the DHCP-given servers
        servers = pick_servers(cfg.get("dns_servers"), resolv_conf, dhcp_dns)
        self.federation = Federation(cfg, Resolver(servers, rand, log=log.warning), rand, log.info)
        self.proxy = Proxy(cfg, self.txl, self.registrar, users, rand, node_secret, log.info, self.bridge,
                           accounts, self.federation)
        self._users_checked = None
        self.observe = None  # optional callable(msg, wall) shown every parsed message

    def _me(self, proto):
        return self.proxy.me.get(proto) or next(iter(self.proxy.me.values()))

    def set_listen(self, bound):
        """The adapter's bound (proto, host, port) list: what goes into our Via and Record-Route."""
        self.proxy.set_listen(bound)

    def receive(self, data, source, now, wall):
        if source[0] == "udp" and not data.strip(b"\r\n"):
            return []  # RFC 5626 §4.4.1: CRLF keep-alives on UDP are ignored
        try:
            msg = parse(data, source[0] != "udp")
        except ParseError as e:
            return self._unparseable(e.message, source, e.reason, getattr(e, "status", 400))
        if self.observe is not None:
            self.observe(msg, wall)  # read-only watchers (the web page's live calls); never alters routing
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
            if self.accounts is not None:
                self.accounts.refresh()
        events, actions = self.txl.tick(now)
        for ev in events:
            actions.extend(self._event(ev, now, wall))
        actions.extend(self.proxy.tick(now))
        done, acts = self.federation.tick(now)
        actions.extend(acts)
        actions.extend(self.proxy.on_dns_done(done, now))
        if self.bridge is not None:
            actions.extend(self.bridge.tick(now, wall))
        return actions

    def status(self, wall):
        """What `microwitch status` shows of a running node (no secrets)."""
        return {"bindings": len(self.registrar.bindings), "users": len(self.users),
                "server_transactions": self.txl.server_count(), "client_transactions": self.txl.client_count(),
                "pbx": self.bridge.status() if self.bridge is not None else []}

    def transport_error(self, addr, now, wall):
        """The adapter could not reach `addr` (TCP connect refused, ...): its transactions end with 503."""
        events, actions = self.txl.transport_error(addr, now)
        for ev in events:
            actions.extend(self._event(ev, now, wall))
        return actions

    def dirty(self):
        """True while journal records written for handled requests are not yet durable (see commit)."""
        return self.registrar.bindings.journal.backend.dirty()

    def commit(self):
        """Make every journal record of the requests handled so far durable (one fsync for the batch). The
        adapter calls this before it sends any response, so nothing is acknowledged before it is stored."""
        self.registrar.bindings.journal.backend.sync()

    def next_timer(self):
        best = None
        for t in (self.txl.next_timer(), self.proxy.next_timer(), self.federation.next_timer()):
            if t is not None and (best is None or t < best):
                best = t
        return best

    def on_dns(self, data, source, now, wall):
        """A datagram on the adapter's DNS socket from `source` (host, port)."""
        done, acts = self.federation.on_dns(data, source, now)
        return acts + self.proxy.on_dns_done(done, now)

    def on_dns_tcp(self, data, source, now, wall):
        """Bytes from the adapter's TCP connection to DNS server `source` (host, port) (truncation fallback)."""
        done, acts = self.federation.on_dns_tcp(data, source, now)
        return acts + self.proxy.on_dns_done(done, now)

    def _unparseable(self, partial, source, reason, status=400):
        """RFC 3261 §16.3/§8.2: 400 (505 for another SIP version) with the reason when enough parsed to answer;
        otherwise drop."""
        reason = reason[:_MAX_REASON]
        if partial is None or not partial.is_request or partial.method == "ACK":
            self.log.info("DROP %s unparseable: %s" % (_addr_text(source), reason))
            return []
        resp = make_response(partial, status, "Bad Request" if status == 400 else "Version Not Supported")
        resp.add("Warning", '399 %s "%s"' % (self.cfg["domain"], reason.replace('"', "'")))
        self.log.info("%s %s %s %d %s" % (partial.method, partial.uri[:_MAX_REASON], _addr_text(source), status,
                                          reason))
        return self.txl.stateless_response(resp, source)

    def _event(self, ev, now, wall):
        kind = ev[0]
        if kind == "request":
            txn, msg, source = ev[1], ev[2], ev[3]
            if txn is None:
                return self.proxy.on_ack(msg, source, now, wall)  # ACK for a 2xx: end to end (§16.11)
            if msg.method == "REGISTER":
                resp = self.registrar.handle(msg, source, now, wall)  # logs its own outcome
                if self.bridge is not None and resp.status == 200:
                    return self.txl.respond(txn, resp, now) + self._bridge_touch(msg, now, wall)
            elif self._for_me(msg):
                resp = self._own(msg)
                self.log.info("%s %s %s %d %s" % (msg.method, msg.uri[:_MAX_REASON], _addr_text(source),
                                                  resp.status, resp.reason))
            else:
                return self.proxy.on_request(txn, msg, source, now, wall)
            return self.txl.respond(txn, resp, now)
        if kind == "response":
            if self.bridge is not None and self.bridge.owns(ev[1]):
                return self.bridge.on_response(ev[1], ev[2], now)
            return self.proxy.on_response(ev[1], ev[2], now)
        if kind == "timeout" or kind == "transport_error":
            txn = ev[1]
            if txn.is_server:
                return []
            if self.bridge is not None and self.bridge.owns(txn):
                return self.bridge.on_timeout(txn, now)
            if kind == "timeout":
                return self.proxy.on_timeout(txn, now)
            return self.proxy.on_timeout(txn, now, "Service Unavailable", 503)
        if kind == "terminated":
            self.proxy.on_terminated(ev[1])
            return []
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

    def _bridge_touch(self, register, now, wall):
        """Let the PBX bridge follow a registration change at once."""
        try:
            aor = self.registrar.aor_for(parse_name_addr(register.get("To")).uri)
        except (ParseError, TypeError):
            return []
        return self.bridge.touch(aor[4:], now, wall) if aor else []

    def _for_me(self, msg):
        """A request addressed to the node itself: no user part, one of our hosts, no Route onward."""
        if msg.get("Route") is not None:
            return False
        try:
            u = parse_uri(msg.uri)
        except ParseError:
            return False
        return u.user is None and u.host is not None and self.registrar.is_local(u.host.strip("[]"))

    def _own(self, msg):
        if msg.method == "OPTIONS":
            resp = make_response(msg, 200, "OK", self.registrar._tag())
            resp.set("Allow", _ALLOW)
            resp.set("Accept", "application/sdp")
            return resp
        return make_response(msg, 405 if msg.method != "CANCEL" else 481,
                             "Method Not Allowed" if msg.method != "CANCEL" else "Call/Transaction Does Not Exist",
                             self.registrar._tag())
