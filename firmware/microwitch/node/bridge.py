"""The bridge to an insecure PBX beside the node (the GNU SIP Witch model).

Each secure user may have an insecure identity on the PBX (an extension with its own PBX password, kept as HA1
in store/pbx_accounts.py). While the user has a live binding here, the node keeps that extension registered at
the PBX on her behalf: a REGISTER of its own with Contact pointing back at the node, refreshed before expiry,
removed (Expires: 0) when her last binding goes. Calls the PBX sends to the extension then reach the node,
which rings all her devices (proxy.py maps the extension to her AoR). Calls she places to anything the node
cannot reach securely go to the PBX under this identity (proxy.py answers the PBX's challenge with the HA1).

Sans-I/O: `tick(now, wall)` and `on_response()` return actions; timing comes from the injected clock.
"""
from binascii import hexlify
from microwitch.compat import const
from microwitch.sip.message import Message
from microwitch.sip.headers import ParseError, parse_name_addr, split_list
from microwitch.sip.uri import parse_uri
from microwitch.sip.transaction import new_branch
from microwitch.sip.digest_client import pick_challenge, authorization

_CHECK_MS = const(1000)        # how often live bindings are compared with PBX registrations
_RETRY_MIN_MS = const(5000)    # after a failed REGISTER: back off from here ...
_RETRY_MAX_MS = const(300000)  # ... doubling up to here
_REFRESH_PCT = const(50)       # refresh when this share of the granted interval has passed
_MAX_AUTH_TRIES = const(2)     # challenges answered per REGISTER before giving up (wrong PBX password)
_MAX_INTERVAL_S = const(86400)  # the most a 423's Min-Expires may make us ask for

IDLE = "idle"
REGISTERING = "registering"
REGISTERED = "registered"
UNREGISTERING = "unregistering"
FAILED = "failed"


def parse_addr(spec):
    proto, rest = spec.split(":", 1)
    host, port = rest.rsplit(":", 1)
    return (proto, host.strip("[]"), int(port))


class _Reg:
    __slots__ = ("address", "rec", "ext", "ask", "contact", "call_id", "cseq", "state", "txn", "refresh_at",
                 "retry_at", "backoff", "auth_tries", "granted", "reason", "wanted")

    def __init__(self, address, rec, ask, call_id):
        self.address = address
        # the account as it was when this registration began: taking it down after the account was removed or
        # its extension changed must still name the old extension and answer with its credentials
        self.rec = rec
        self.ext = rec["ext"]
        self.ask = ask             # the interval we ask for (raised by a 423's Min-Expires, RFC 3261 §10.2.8)
        self.contact = None        # the Contact URI we registered (to find our binding in the 200)
        self.call_id = call_id
        self.cseq = 0
        self.state = IDLE
        self.txn = None
        self.refresh_at = 0
        self.retry_at = 0
        self.backoff = _RETRY_MIN_MS
        self.auth_tries = 0
        self.granted = 0
        self.reason = ""
        self.wanted = False


class Bridge:
    """Bridge(pbx_cfg, accounts, registrar, txl, rand, log); `me(proto)` -> (host, port) for Contact/Via."""

    def __init__(self, pbx, accounts, registrar, txl, rand, log, me):
        self.dest = parse_addr(pbx["address"])
        self.domain = pbx["domain"]
        self.realm = pbx["realm"]
        self.expires = pbx["expires"]
        self.accounts = accounts
        self.registrar = registrar
        self.txl = txl
        self.rand = rand
        self.log = log
        self.me = me
        self.regs = {}
        self._by_txn = {}
        self._checked = None

    # -- identities the proxy uses ---------------------------------------------------------------------
    def identity(self, address):
        """(ext, account record) of a local user's PBX identity, or None."""
        rec = self.accounts.get(address)
        return (rec["ext"], rec) if rec is not None else None

    def credentials(self, rec, chal_values, method, uri):
        """An Authorization value answering the PBX's challenge for account `rec`, or None."""
        chal = pick_challenge(chal_values)
        if chal is None or chal["realm"] != rec["realm"]:
            return None
        ha1 = rec["sha256"] if chal.get("algorithm", "MD5").upper() == "SHA-256" else rec["md5"]
        return authorization(chal, rec["ext"], ha1, method, uri, self.rand(8))

    # -- registrations -----------------------------------------------------------------------------------
    def tick(self, now, wall):
        if self._checked is not None and now - self._checked < _CHECK_MS:
            return []
        self._checked = now
        acts = []
        present = set(self.accounts.addresses())
        for address in present:
            acts.extend(self._check(address, now, wall))
        for address in list(self.regs):
            if address not in present:  # account removed: take its registration down
                reg = self.regs[address]
                reg.wanted = False
                acts.extend(self._drive(reg, now))
                if reg.state == IDLE:
                    del self.regs[address]
        return acts

    def touch(self, address, now, wall):
        """A REGISTER of `address` was just accepted: follow her bindings at once rather than at the next
        periodic check (a short registration must not come and go unseen)."""
        if self.accounts.get(address) is None:
            return []
        return self._check(address, now, wall)

    def _check(self, address, now, wall):
        """Bring the PBX registration of one account in line with her bindings here."""
        rec = self.accounts.get(address)
        reg = self.regs.get(address)
        if reg is not None and reg.ext != rec["ext"]:
            # the extension changed: take the old one down (its own credentials), then start afresh
            reg.wanted = False
            acts = self._drive(reg, now)
            if reg.state == IDLE and reg.txn is None:
                del self.regs[address]
            return acts
        live = bool(self.registrar.lookup("sip:" + address, wall))
        if reg is None:
            if not live:
                return []
            reg = self.regs[address] = _Reg(address, rec, self.expires, hexlify(self.rand(12)).decode())
        else:
            reg.rec = rec  # a changed PBX password applies from the next REGISTER on
        reg.wanted = live
        return self._drive(reg, now)

    def _drive(self, reg, now):
        if reg.txn is not None:
            return []
        if reg.wanted:
            if reg.state == REGISTERED and now < reg.refresh_at:
                return []
            if reg.state == FAILED and now < reg.retry_at:
                return []
            reg.auth_tries = 0
            return self._send(reg, reg.ask, None, now)
        if reg.state in (REGISTERED, REGISTERING, FAILED) and reg.granted:
            reg.auth_tries = 0
            return self._send(reg, 0, None, now)
        reg.state = IDLE
        return []

    def _send(self, reg, expires, auth, now):
        ext = reg.ext
        proto = self.dest[0]
        host, port = self.me(proto)
        if ":" in host:
            host = "[" + host + "]"
        aor = "sip:%s@%s" % (ext, self.domain)
        reg.contact = "sip:%s@%s:%d%s" % (ext, host, port, ";transport=tcp" if proto == "tcp" else "")
        reg.cseq += 1
        branch = new_branch(self.rand) + "r%d" % reg.cseq  # unique even if the RNG repeated itself
        h = [["Via", "SIP/2.0/%s %s:%d;branch=%s;rport" % (proto.upper(), host, port, branch)],
             ["Max-Forwards", "70"],
             ["From", "<%s>;tag=%s" % (aor, reg.call_id[:10])],
             ["To", "<%s>" % aor],
             ["Call-ID", reg.call_id],
             ["CSeq", "%d REGISTER" % reg.cseq],
             ["Contact", "<%s>" % reg.contact],
             ["Expires", str(expires)],
             ["User-Agent", "microwitch bridge"]]
        if auth is not None:
            h.append(auth)
        msg = Message.request("REGISTER", "sip:" + self.domain, h)
        txn, acts = self.txl.send_request(msg, self.dest, now)
        if txn is None:
            reg.state = FAILED
            reg.reason = "transaction table full"
            reg.retry_at = now + reg.backoff
            return []
        reg.txn = txn
        reg.state = REGISTERING if expires else UNREGISTERING
        self._by_txn[txn.id] = (reg, expires)
        return acts

    def owns(self, txn):
        return txn is not None and txn.id in self._by_txn

    def on_response(self, txn, msg, now):
        ent = self._by_txn.get(txn.id)
        if ent is None or msg.status < 200:
            return []
        del self._by_txn[txn.id]
        reg, expires = ent
        reg.txn = None
        st = msg.status
        if st in (401, 407) and reg.auth_tries < _MAX_AUTH_TRIES:
            name = "WWW-Authenticate" if st == 401 else "Proxy-Authenticate"
            value = self.credentials(reg.rec, msg.get_all(name), "REGISTER", "sip:" + self.domain)
            if value is not None:
                reg.auth_tries += 1
                return self._send(reg, expires, [("Authorization" if st == 401 else "Proxy-Authorization"),
                                                 value], now)
        if st == 423 and expires:
            # RFC 3261 §10.2.8: ask again with at least Min-Expires (strictly more each time, so bounded)
            m = (msg.get("Min-Expires") or "").strip()
            if m.isdigit() and reg.ask < int(m) <= _MAX_INTERVAL_S:
                reg.ask = int(m)
                reg.auth_tries = 0
                return self._send(reg, reg.ask, None, now)
        if 200 <= st < 300:
            reg.backoff = _RETRY_MIN_MS
            reg.reason = ""
            if expires == 0:
                reg.state = IDLE
                reg.granted = 0
            else:
                reg.granted = self._granted(msg, expires, reg.contact)
                reg.state = REGISTERED
                reg.refresh_at = now + reg.granted * 10 * _REFRESH_PCT
            self.log("PBX %s %s -> %d %s" % ("REGISTER" if expires else "UNREGISTER", reg.address, st, msg.reason))
            return self._drive(reg, now) if reg.wanted != (reg.state == REGISTERED) else []
        return self._failed(reg, "%d %s" % (st, msg.reason), now)

    def on_timeout(self, txn, now):
        ent = self._by_txn.pop(txn.id, None) if txn is not None else None
        if ent is None:
            return []
        reg = ent[0]
        reg.txn = None
        return self._failed(reg, "no answer from the PBX", now)

    def _failed(self, reg, reason, now):
        reg.reason = reason[:80]
        self.log("PBX REGISTER %s failed: %s (retry in %d s)" % (reg.address, reg.reason, reg.backoff // 1000))
        reg.state = FAILED if reg.wanted else IDLE
        if not reg.wanted:
            reg.granted = 0
        reg.retry_at = now + reg.backoff
        reg.backoff = min(reg.backoff * 2, _RETRY_MAX_MS)
        return []

    def _granted(self, msg, asked, contact):
        """The interval the PBX granted: the expires param of *our* Contact (the 200 lists every binding of
        the extension, e.g. a desk phone's too, often in one comma-separated header; RFC 3261 §10.2.4), else
        Expires, else what we asked."""
        try:
            mine = parse_uri(contact)
        except ParseError:
            mine = None
        for value in msg.get_all("Contact"):
            try:
                elems = split_list(value)
            except ParseError:
                continue
            for c in elems:
                try:
                    na = parse_name_addr(c)
                    u = parse_uri(na.uri)
                except ParseError:
                    continue
                if mine is None or u.user != mine.user or u.host != mine.host or \
                        (u.port or 5060) != (mine.port or 5060):
                    continue
                e = na.params.get("expires")
                if e is not None and e.isdigit():
                    return max(1, int(e))
        e = msg.get("Expires")
        if e is not None and e.strip().isdigit():
            return max(1, int(e.strip()))
        return asked

    def status(self):
        """One dict per PBX account: address, extension, state, reason."""
        out = []
        for address in self.accounts.addresses():
            reg = self.regs.get(address)
            out.append({"user": address, "extension": self.accounts.get(address)["ext"],
                        "state": reg.state if reg else IDLE, "reason": reg.reason if reg else ""})
        return out
