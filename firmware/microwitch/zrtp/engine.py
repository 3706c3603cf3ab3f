"""The ZRTP state machine (RFC 6189 4-6, 8.1), sans-I/O.

    s = ZrtpSession(role_hint, config, rand, cache, now)
    s.hello_hash()                      # "1.10 <hex>" for the SDP a=zrtp-hash (8.1)
    actions = s.tick(now)               # first call sends the Hello; drives T1/T2 retransmissions
    actions = s.receive(packet, now)    # one ZRTP packet (bytes) from the peer

Actions: ("send", packet), ("secure", info), ("failed", reason), ("cache_mismatch", info),
("clear", info) after an allowed GoClear, ("sas_relay", info) for an (untrusted) SASrelay,
("cache_error", reason) when the ZID cache could not be written (the session is secure all the same).

What ends a handshake and what is only dropped (RFC 6189 5.9, 10). Anyone can compute a CRC, so only what
the RFC makes fatal is fatal, and mostly after the hash chain has authenticated the sender:
- dropped and counted in `dropped`: a bad CRC or framing, a malformed message, a message the current state
  does not expect, a message whose hash-chain MAC or hash image does not check, a second different Hello,
  GoClear/SASrelay before the secure state;
- fatal during the handshake (Error sent with the 5.9 code): unsupported version (0x30), equal ZIDs (0x90)
  and no common algorithm (0x5x) in the Hello; a Commit choosing what we did not offer (0x5x), Mult without a
  first stream (0x53) or with a reused nonce (0x80); a bad public value (0x61) or hvi (0x62); a confirm_mac
  mismatch (0x70); T1/T2 running out or the peer going quiet (0xB0, once the peer's Hello was seen); a
  received Error (answered with ErrorACK); a Hello that does not match a=zrtp-hash (no Error: the sender is
  not the peer we expect);
- once secure (or clear) nothing received changes the state except an authenticated GoClear; Error,
  malformed and unexpected handshake packets are dropped and counted.

role_hint: "initiator" sends Commit as soon as it has the peer's Hello (the Commit acknowledges it,
4.1); "auto" sends HelloACK and commits once its own Hello is acknowledged (commit contention, 4.2,
settles who leads); "responder" never commits. config keys (all optional): ka, hash, cipher, auth, sas
(preference lists of 4-character names), client_id, ssrc, zid (when cache is None), allow_clear,
cache_expiry (seconds, 0xFFFFFFFF forever), preshared (try Prsh mode when a secret is cached),
multistream (the dict from a secure session's multistream_params()), peer_hello_hash, idle_ms.
"""
import binascii
from microwitch.compat import const, sha256, aes_ecb
from microwitch.crypto.modes import cfb_encrypt, cfb_decrypt
from microwitch.zrtp import packet, messages as M, keyagreement, kdf, sas as sasmod
from microwitch.zrtp import errors as E
from microwitch.zrtp.errors import ZrtpError

# timers (RFC 6189 6): T1 for Hello, T2 for Commit, DHPart2, Confirm2, Error, GoClear
T1_START = const(50)
T1_CAP = const(200)
T1_MAX = const(20)
T2_START = const(150)
T2_CAP = const(1200)
T2_MAX = const(10)
IDLE_MS = const(30000)      # a waiting state with no timer of its own gives up after this long
MAX_MS_NONCES = const(16)   # Multistream Commit nonces remembered per first stream (4.4.3 nonce reuse)

_DISCOVERY = const(0)
_I_COMMIT = const(1)        # initiator: Commit sent
_R_DHPART1 = const(2)       # responder: DHPart1 sent
_I_DHPART2 = const(3)       # initiator: DHPart2 sent
_R_CONFIRM1 = const(4)      # responder: Confirm1 sent
_I_CONFIRM2 = const(5)      # initiator: Confirm2 sent
_SECURE = const(6)
_CLEAR = const(7)
_FAILED = const(8)

_VERSION = b"1.10"
_MANDATORY = {"hash": [b"S256"], "cipher": [b"AES1"], "auth": [b"HS32", b"HS80"], "ka": [b"DH3k"],
              "sas": [b"B32 "]}
_DEFAULTS = {"hash": [b"S256", b"S384"], "cipher": [b"AES1", b"AES3"], "auth": [b"HS32", b"HS80"],
             "ka": [b"X255", b"E255", b"DH3k", b"DH2k", b"EC25", b"Mult"], "sas": [b"B32 ", b"B256"]}
# when the two first choices differ both sides take the faster one (4.1.2; same order as bzrtp, GNU ZRTP)
_FAST_ORDER = [b"DH2k", b"X255", b"E255", b"EC25", b"DH3k"]
_KNOWN = {"hash": kdf.HASHES, "cipher": kdf.CIPHERS, "auth": (b"HS32", b"HS80"),
          "ka": (b"X255", b"E255", b"DH3k", b"DH2k", b"EC25", b"Mult", b"Prsh"), "sas": (b"B32 ", b"B256")}
_ALGO_ERROR = {"hash": E.BAD_HASH, "cipher": E.BAD_CIPHER, "auth": E.BAD_AUTH, "ka": E.BAD_KA,
               "sas": E.BAD_SAS}
# what a secure (or clear) session still answers: retransmissions whose answer was lost, GoClear,
# SASrelay and their ACKs; anything else is dropped (RFC 6189 10)
_AFTER_SECURE = (M.HELLO, M.COMMIT, M.CONFIRM2, M.GOCLEAR, M.CLEARACK, M.SASRELAY, M.RELAYACK, M.PINGACK)
_FLAG_V = const(4)
_FLAG_A = const(2)


def _b(x):
    return x.encode() if isinstance(x, str) else bytes(x)


def _name(x):
    """A 4-character algorithm name as bytes ("B32" -> b"B32 ")."""
    return (_b(x) + b"    ")[:4]


def _hex(b):
    return binascii.hexlify(b).decode()


def _s(b):
    return b.decode().strip() if isinstance(b, bytes) else b


def _sha(x):
    return sha256(x).digest()


class ZrtpSession:
    """One ZRTP stream (RFC 6189). Memory per session is bounded: a handful of stored messages of at
    most packet.MAX_PACKET bytes and two timers."""

    def __init__(self, role_hint, config, rand, cache, now):
        if role_hint not in ("initiator", "responder", "auto"):
            raise ValueError("role_hint must be initiator, responder or auto")
        cfg = config or {}
        self.role_hint = role_hint
        self._rand = rand
        self._cache = cache
        self._cfg = cfg
        self._offer = {}
        for fam in ("hash", "cipher", "auth", "ka", "sas"):
            lst = [_name(x) for x in cfg.get(fam, _DEFAULTS[fam])]
            lst = [x for x in lst if x in _KNOWN[fam] and x != b"Prsh"]
            for m in _MANDATORY[fam]:
                if m not in lst:
                    lst.append(m)
            if fam == "ka" and b"Mult" not in lst:
                lst.append(b"Mult")
            self._offer[fam] = lst[:7]
        if cache is not None:
            self.zid = cache.zid()
        else:
            self.zid = _b(cfg.get("zid") or rand(12))
        if len(self.zid) != 12:
            raise ValueError("ZID must be 12 bytes")
        self.ssrc = cfg.get("ssrc")
        if self.ssrc is None:
            self.ssrc = int.from_bytes(rand(4), "big")
        # sequence numbers start low and random so the first ones cannot wrap (some peers drop seq <= last)
        self._seq = (int.from_bytes(rand(2), "big") & 0x0FFF) + 1
        self._h0 = rand(32)
        self._h1 = _sha(self._h0)
        self._h2 = _sha(self._h1)
        self._h3 = _sha(self._h2)
        o = self._offer
        self._hello = M.hello(_VERSION, _b(cfg.get("client_id", b"microwitch 0.1")), self._h3, self.zid, 0,
                              o["hash"], o["cipher"], o["auth"], o["ka"], o["sas"], self._h2)
        self._ms = cfg.get("multistream")
        self._expected_hello = None
        self._state = _DISCOVERY
        self._started = False
        self._t1 = None             # [deadline, interval, count]
        self._t2 = None             # [deadline, interval, count, message]
        self._last_progress = now
        self._peer_hello = None     # decoded peer Hello
        self._hello_acked = False   # the peer has our Hello
        self._role = None
        self._commit = None         # decoded Commit in use (ours or the peer's)
        self._my_commit = None      # our Commit message, when we sent one
        self._dh1 = None            # decoded DHPart1
        self._dh2 = None            # decoded DHPart2
        self._my_dh2 = None
        self._ka = None
        self._ka_name = None
        self._ka_len = 0
        self._psk = None
        self._my_dh1 = None
        self._hsh = None
        self._keys = None
        self._ctx = None
        self._cache_state = "new"
        self._verified = False
        self._pending_rs1 = None
        self._peer_expiry = 0xFFFFFFFF
        self._peer_flags = 0
        self._sent_confirm = None   # Confirm1 we answer retransmissions with
        self._sas = None
        self._info = None
        self.failure = None
        self.last_internal_error = None
        self.dropped = 0
        self.last_dropped = None    # why the last packet was dropped (for logs and failure reasons)
        self._ms_nonces = []        # nonces of Multistream Commits under our ZRTPSess (shared by reference)
        if cfg.get("peer_hello_hash"):
            self.set_peer_hello_hash(cfg["peer_hello_hash"])

    # ---------------------------------------------------------------- public API
    def hello_hash(self):
        """The a=zrtp-hash value for SDP (RFC 6189 8.1): version, space, SHA-256 of our Hello in hex."""
        return "1.10 " + _hex(_sha(self._hello))

    def set_peer_hello_hash(self, value):
        """Bind the peer's Hello to the hash from its SDP (8.1). Returns actions (a mismatch fails)."""
        parts = str(value).strip().split(" ")
        try:
            digest = binascii.unhexlify(parts[-1])
        except ValueError:
            digest = b""
        if len(parts) != 2 or len(digest) != 32:
            raise ValueError("zrtp-hash must look like '1.10 <64 hex digits>'")
        self._expected_hello = digest
        if self._peer_hello is not None and _sha(self._peer_hello["raw"]) != digest:
            out = []
            self._fail(out, "zrtp-hash mismatch", 0)
            return out
        return []

    def start(self, now):
        return self.tick(now)

    @property
    def state(self):
        return ("discovery", "commit-sent", "dhpart1-sent", "dhpart2-sent", "confirm1-sent",
                "confirm2-sent", "secure", "clear", "failed")[self._state]

    @property
    def secure(self):
        return self._state == _SECURE

    def info(self):
        return self._info

    def tick(self, now):
        out = []
        try:
            self._tick(now, out)
        except Exception as e:  # never let a bug take the caller down; keep it for the tests
            self.last_internal_error = e
        return out

    def receive(self, data, now):
        """Feed one received packet. Never raises; malformed or unauthentic input is dropped."""
        out = []
        try:
            self._receive(data, now, out)
        except ZrtpError as e:
            if e.code and self._state < _SECURE:
                self._fail(out, e.reason, e.code, now)
            else:
                self.dropped += 1
                self.last_dropped = e.reason
        except Exception as e:
            self.last_internal_error = e
            self.dropped += 1
            self.last_dropped = "internal error"
        return out

    def set_sas_verified(self, flag):
        """The users compared the SAS (flag True) or found it wrong / reset it (False) (4.6.1.1)."""
        if self._peer_hello is None or self._cache is None:
            return
        zid = self._peer_hello["zid"]
        if flag and self._pending_rs1 is not None:
            # after a cache mismatch the new secret is only kept once the SAS was checked
            self._cache.store(zid, self._pending_rs1[0], self._pending_rs1[1], True)
            self._pending_rs1 = None
        else:
            self._cache.set_verified(zid, flag)
        if self._info is not None:
            self._info["verified"] = bool(flag)

    def retained_secret(self):
        """The rs1 this session derived (4.6.1), or None before secure and in Multistream mode."""
        if self._info is None or self._commit["ka"] == b"Mult":
            return None
        return self._keys["rs1"]

    def multistream_params(self):
        """What a second stream of the same call needs to run in Multistream mode (4.4.3)."""
        if self._info is None or self._keys is None:
            return None
        i = self._info
        if self._ms is not None:
            return self._ms     # a stream of a stream: the same first stream's parameters
        return {"zrtpsess": self._keys["zrtpsess"], "hash": self._commit["hash"], "cipher": self._commit["cipher"],
                "auth": self._commit["auth"], "sas_type": self._commit["sas"], "sas": i["sas"],
                "peer_zid": self._peer_hello["zid"], "cache": i["cache"], "verified": i["verified"],
                "nonces": self._ms_nonces}

    def go_clear(self, now):
        """Ask the peer to stop SRTP (5.11); only in the secure state."""
        out = []
        if self._state == _SECURE:
            mk = self._keys["mackeyi" if self._role == "initiator" else "mackeyr"]
            self._start_t2(out, M.goclear(self._hsh.mac(mk, M.GOCLEAR)[:8]), now)
        return out

    # ---------------------------------------------------------------- sending and timers
    def _send(self, out, msg):
        out.append(("send", packet.build(self._seq, self.ssrc, msg)))
        self._seq = (self._seq + 1) & 0xFFFF

    def _start_t2(self, out, msg, now):
        self._send(out, msg)
        self._t2 = [now + T2_START, T2_START, 0, msg]

    def _tick(self, now, out):
        if not self._started:
            self._started = True
            self._send(out, self._hello)
            self._t1 = [now + T1_START, T1_START, 0]
            self._last_progress = now
            return
        t = self._t1
        if t is not None and now - t[0] >= 0:
            if t[2] >= T1_MAX:
                self._t1 = None
                if not self._hello_acked:
                    self._fail(out, "timeout: no answer to Hello", self._timeout_code(), now)
                    return
            else:
                self._send(out, self._hello)
                t[2] += 1
                t[1] = min(t[1] * 2, T1_CAP)
                t[0] = now + t[1]
        t = self._t2
        if t is not None and now - t[0] >= 0:
            if t[2] >= T2_MAX:
                self._t2 = None
                if self._state < _SECURE:
                    self._fail(out, "timeout: no answer to " + _s(t[3][4:12]).strip(), E.TIMEOUT, now)
                    return
            else:
                self._send(out, t[3])
                t[2] += 1
                t[1] = min(t[1] * 2, T2_CAP)
                t[0] = now + t[1]
        if self._state < _SECURE and self._t1 is None and self._t2 is None and \
                now - self._last_progress > self._cfg.get("idle_ms", IDLE_MS):
            self._fail(out, "timeout: peer went quiet", self._timeout_code(), now)

    def _timeout_code(self):
        # 5.9 Timeout (0xB0) goes to a peer that has spoken ZRTP; a silent address gets nothing
        return E.TIMEOUT if self._peer_hello is not None else 0

    def _fail(self, out, reason, code, now=0):
        if self._state == _FAILED:
            return
        self._state = _FAILED
        self.failure = reason
        self._t1 = None
        self._t2 = None
        if code:
            self._start_t2(out, M.error(code), now)
        out.append(("failed", reason))

    # ---------------------------------------------------------------- receiving
    def _receive(self, data, now, out):
        seq, ssrc, raw = packet.parse(data)
        try:
            m = M.decode(raw)
        except ZrtpError as e:
            # a valid CRC proves nothing (anyone can compute it): malformed input is dropped (RFC 6189 10)
            raise ZrtpError(0, e.reason)
        t = m["type"]
        if t == M.PING:
            self._send(out, M.pingack(_sha(self.zid)[:8], m["endpoint_hash"], ssrc))
            return
        if t == M.ERROR:
            if self._state >= _SECURE and self._state != _FAILED:
                # 5.9: Error ends an exchange in progress, never an established SRTP session
                raise ZrtpError(0, "Error 0x%x after the exchange completed" % m["code"])
            self._send(out, M.simple(M.ERRORACK))
            if self._state != _FAILED:
                self._fail(out, "peer sent Error 0x%x" % m["code"], 0)
            return
        if t == M.ERRORACK:
            if self._state == _FAILED:
                self._t2 = None
            return
        if self._state == _FAILED:
            raise ZrtpError(0, "session failed")
        if self._state >= _SECURE and t not in _AFTER_SECURE:
            raise ZrtpError(0, "unexpected message after the exchange completed")
        if t == M.HELLO:
            self._on_hello(m, out, now)
        elif t == M.HELLOACK:
            self._hello_acked = True
            self._t1 = None
            self._maybe_commit(out, now)
        elif t == M.COMMIT:
            self._on_commit(m, out, now)
        elif t == M.DHPART1:
            self._on_dhpart1(m, out, now)
        elif t == M.DHPART2:
            self._on_dhpart2(m, out, now)
        elif t == M.CONFIRM1:
            self._on_confirm1(m, out, now)
        elif t == M.CONFIRM2:
            self._on_confirm2(m, out, now)
        elif t == M.CONF2ACK:
            if self._state == _I_CONFIRM2:
                self._go_secure(out, now)
        elif t == M.GOCLEAR:
            self._on_goclear(m, out, now)
        elif t == M.CLEARACK:
            if self._state == _SECURE and self._t2 is not None and self._t2[3][4:12] == M.GOCLEAR:
                self._t2 = None
                self._state = _CLEAR
                out.append(("clear", {"by": "self"}))
        elif t == M.SASRELAY:
            self._on_sasrelay(m, out)
        # PingACK, RelayACK: nothing to do

    def _progress(self, now):
        self._last_progress = now

    # -- discovery (4.1)
    def _on_hello(self, m, out, now):
        if m["version"][:3] != b"1.1":
            raise ZrtpError(E.UNSUPPORTED_VERSION, "unsupported ZRTP version")
        if m["zid"] == self.zid:
            raise ZrtpError(E.EQUAL_ZID, "peer uses our ZID")
        ph = self._peer_hello
        if ph is not None:
            if ph["raw"] != m["raw"]:
                raise ZrtpError(0, "a different Hello in the same session")
        else:
            if self._expected_hello is not None and _sha(m["raw"]) != self._expected_hello:
                self._fail(out, "zrtp-hash mismatch", 0)
                return
            for fam in ("hash", "cipher", "auth", "sas"):
                if not self._common(fam, m):
                    raise ZrtpError(_ALGO_ERROR[fam], "no common " + fam)
            self._peer_hello = m
            self._progress(now)
        if self._state == _DISCOVERY and self.role_hint == "initiator" and self._my_commit is None:
            self._send_commit(out, now)     # Commit in place of HelloACK (4.1)
        elif self._state == _DISCOVERY or self._state == _SECURE or self._role == "responder":
            self._send(out, M.simple(M.HELLOACK))
            self._maybe_commit(out, now)

    def _common(self, fam, hello):
        theirs = hello[fam] + _MANDATORY[fam]
        return [a for a in self._offer[fam] if a in theirs]

    def _choose_ka(self, hello):
        mine = [a for a in self._common("ka", hello) if a not in M.NON_DH]
        theirs = [a for a in hello["ka"] + _MANDATORY["ka"] if a in self._offer["ka"] and a not in M.NON_DH]
        if not mine:
            raise ZrtpError(E.BAD_KA, "no common key agreement")
        if mine[0] == theirs[0]:
            return mine[0]
        a, b = mine[0], theirs[0]
        ia = _FAST_ORDER.index(a) if a in _FAST_ORDER else 99
        ib = _FAST_ORDER.index(b) if b in _FAST_ORDER else 99
        return a if ia <= ib else b

    def _maybe_commit(self, out, now):
        if self._state == _DISCOVERY and self._peer_hello is not None and self._hello_acked and \
                self.role_hint != "responder" and self._my_commit is None:
            self._send_commit(out, now)

    # -- Commit (4.1.2, 4.2, 4.4)
    def _secrets(self):
        if self._cache is None:
            return None
        return self._cache.lookup(self._peer_hello["zid"])

    def _rs_ids(self, hsh, label):
        c = self._secrets()
        ids = []
        for k in ("rs1", "rs2"):
            s = c[k] if c else None
            ids.append(hsh.mac(s, label)[:8] if s else self._rand(8))
        return ids

    def _send_commit(self, out, now, force_dh=False):
        ph = self._peer_hello
        self._role = "initiator"
        self._progress(now)
        ms = self._ms
        if ms is not None:
            hsh = kdf.Hash(_name(ms["hash"]))
            algos = (_name(ms["hash"]), _name(ms["cipher"]), _name(ms["auth"]), b"Mult", _name(ms["sas_type"]))
            nonce = self._rand(16)
            self._use_nonce(nonce)
            commit = M.commit(self._h2, self.zid, algos[0], algos[1], algos[2], algos[3], algos[4],
                              nonce, None, self._h1)
        else:
            h, c, a, s = (self._common(f, ph)[0] for f in ("hash", "cipher", "auth", "sas"))
            hsh = kdf.Hash(h)
            secrets = self._secrets() if self._cfg.get("preshared") and not force_dh else None
            if secrets and secrets["rs1"]:
                psk = kdf.preshared_key(hsh, secrets["rs1"], None, None)
                commit = M.commit(self._h2, self.zid, h, c, a, b"Prsh", s, self._rand(16),
                                  hsh.mac(psk, b"Prsh")[:8], self._h1)
                self._psk = psk
            else:
                ka_name = self._choose_ka(ph)
                self._new_ka(ka_name, kdf.CIPHERS[c])
                rs1id, rs2id = self._rs_ids(hsh, b"Initiator")
                dh2 = M.dhpart(M.DHPART2, self._h1, rs1id, rs2id, self._rand(8), self._rand(8),
                               self._ka.public, self._h0)
                hvi = hsh.h(dh2, ph["raw"])[:32]
                commit = M.commit(self._h2, self.zid, h, c, a, ka_name, s, hvi, None, self._h1)
                self._my_dh2 = dh2
        self._hsh = hsh
        self._my_commit = commit
        self._commit = M.decode(commit)
        self._state = _I_COMMIT
        self._start_t2(out, commit, now)

    def _use_nonce(self, nonce):
        """4.4.3: a Multistream nonce is never used twice under one ZRTPSess (the keys would repeat)."""
        used = self._ms.get("nonces")
        if used is None:
            return
        if nonce in used:
            raise ZrtpError(E.NONCE_REUSE, "Multistream nonce reused")
        used.append(nonce)
        if len(used) > MAX_MS_NONCES:
            used.pop(0)

    def _new_ka(self, name, key_len):
        if self._ka is None or self._ka_name != name or self._ka_len != key_len:
            self._ka = keyagreement.make(name, self._rand, key_len)
            self._ka_name = name
            self._ka_len = key_len

    def _on_commit(self, m, out, now):
        ph = self._peer_hello
        if ph is None or m["zid"] != ph["zid"]:
            raise ZrtpError(0, "Commit before the peer's Hello")
        self._hello_acked = True
        self._t1 = None
        if self._role == "responder":
            if self._commit is not None and m["raw"] == self._commit["raw"]:
                # a retransmitted Commit: our answer was lost
                if self._state == _R_DHPART1:
                    self._send(out, self._my_dh1)
                elif self._state == _R_CONFIRM1 and self._sent_confirm is not None:
                    self._send(out, self._sent_confirm)
            return
        if self._state == _I_COMMIT:
            if not self._peer_wins(m):
                return      # we stay initiator; the peer yields when it sees our Commit
            self._t2 = None
        elif self._state != _DISCOVERY:
            return
        # the hash chain: H2 from the Commit must hash to the H3 of the Hello, and key the Hello's MAC
        if _sha(m["h2"]) != ph["h3"] or not M.mac_ok(ph["raw"], m["h2"]):
            raise ZrtpError(0, "Commit does not match the peer's Hello")
        for fam in ("hash", "cipher", "auth", "sas", "ka"):
            # Mult and Prsh are modes rather than algorithms: accepted whenever the keys for them exist
            if m[fam] not in self._offer[fam] + _MANDATORY[fam] and not (fam == "ka" and m[fam] in M.NON_DH):
                raise ZrtpError(_ALGO_ERROR[fam], "Commit chose an algorithm we did not offer")
        self._role = "responder"
        self._commit = m
        self._progress(now)
        self._hsh = hsh = kdf.Hash(m["hash"])
        key_len = kdf.CIPHERS[m["cipher"]]
        ka = m["ka"]
        if ka == b"Mult":
            ms = self._ms
            if ms is None or _b(ms["peer_zid"]) != ph["zid"] or _name(ms["hash"]) != m["hash"]:
                raise ZrtpError(E.BAD_KA, "Multistream without a secure first stream")
            self._use_nonce(m["nonce"])
            self._non_dh_keys(hsh, ms["zrtpsess"], b"ZRTP MSK", key_len)
            self._send_confirm1(out, now)
        elif ka == b"Prsh":
            psk = None
            c = self._secrets()
            for k in ("rs1", "rs2"):
                s = c[k] if c else None
                if s and hsh.mac(kdf.preshared_key(hsh, s, None, None), b"Prsh")[:8] == m["key_id"]:
                    psk = kdf.preshared_key(hsh, s, None, None)
                    break
            if psk is None:
                # no matching secret: answer with a DH Commit, which wins the contention (4.2)
                self._role = None
                self._commit = None
                self._send_commit(out, now, True)
                return
            self._cache_state = "match"
            self._non_dh_keys(hsh, psk, b"ZRTP PSK", key_len)
            self._send_confirm1(out, now)
        else:
            self._new_ka(ka, key_len)
            rs1id, rs2id = self._rs_ids(hsh, b"Responder")
            self._my_dh1 = M.dhpart(M.DHPART1, self._h1, rs1id, rs2id, self._rand(8), self._rand(8),
                                    self._ka.public, self._h0)
            self._state = _R_DHPART1
            self._send(out, self._my_dh1)

    def _peer_wins(self, m):
        """Commit contention (4.2): True when the peer's Commit beats ours."""
        mine = self._commit
        mine_dh = mine["ka"] not in M.NON_DH
        theirs_dh = m["ka"] not in M.NON_DH
        if mine_dh != theirs_dh:
            return theirs_dh
        if mine_dh:
            a, b = mine["hvi"], m["hvi"]
        else:
            a, b = mine["nonce"], m["nonce"]
        return int.from_bytes(b, "big") > int.from_bytes(a, "big")

    # -- DH exchange (4.4.1)
    def _match_secrets(self, peer_dh):
        """s1 from the retained secrets (4.3.1); also sets the cache state."""
        c = self._secrets()
        have = c is not None and (c["rs1"] is not None or c["rs2"] is not None)
        if not have:
            self._cache_state = "new"
            return None
        hsh = self._hsh
        rs1, rs2 = c["rs1"], c["rs2"]
        if self._role == "initiator":
            order = ((rs1, "rs1id"), (rs1, "rs2id"), (rs2, "rs1id"), (rs2, "rs2id"))
            label = b"Responder"
        else:
            order = ((rs1, "rs1id"), (rs2, "rs1id"), (rs1, "rs2id"), (rs2, "rs2id"))
            label = b"Initiator"
        for s, field in order:
            if s is not None and hsh.mac(s, label)[:8] == peer_dh[field]:
                self._cache_state = "match"
                self._verified = c["verified"]
                return s
        self._cache_state = "mismatch"
        return None

    def _dh_keys(self, dh1, dh2):
        ph = self._peer_hello
        hsh = self._hsh
        peer = dh1 if self._role == "initiator" else dh2
        want = M.PV_LEN[self._commit["ka"]]
        if len(peer["pv"]) != want:
            raise ZrtpError(E.BAD_PV, "public value of the wrong length")
        dh_result = self._ka.shared(peer["pv"])
        s1 = self._match_secrets(peer)
        resp_hello = ph["raw"] if self._role == "initiator" else self._hello
        total = hsh.h(resp_hello, self._commit["raw"], dh1["raw"], dh2["raw"])
        zidi, zidr = (self.zid, ph["zid"]) if self._role == "initiator" else (ph["zid"], self.zid)
        self._ctx = zidi + zidr + total
        s0 = kdf.s0_dh(hsh, dh_result, zidi, zidr, total, s1, None, None)
        self._keys = kdf.derive(hsh, s0, self._ctx, kdf.CIPHERS[self._commit["cipher"]])

    def _non_dh_keys(self, hsh, key, label, key_len):
        ph = self._peer_hello
        resp_hello = ph["raw"] if self._role == "initiator" else self._hello
        total = hsh.h(resp_hello, self._commit["raw"])
        zidi, zidr = (self.zid, ph["zid"]) if self._role == "initiator" else (ph["zid"], self.zid)
        self._ctx = zidi + zidr + total
        s0 = hsh.kdf(key, label, self._ctx, hsh.size)
        self._keys = kdf.derive(hsh, s0, self._ctx, key_len)

    def _on_dhpart1(self, m, out, now):
        if self._state != _I_COMMIT or self._role != "initiator" or self._commit["ka"] in M.NON_DH:
            raise ZrtpError(0, "unexpected DHPart1")
        ph = self._peer_hello
        h2 = _sha(m["h1"])
        if _sha(h2) != ph["h3"] or not M.mac_ok(ph["raw"], h2):
            raise ZrtpError(0, "DHPart1 does not match the peer's Hello")
        self._hello_acked = True
        self._t1 = None
        self._dh1 = m
        self._dh2 = M.decode(self._my_dh2)
        self._dh_keys(m, self._dh2)
        self._state = _I_DHPART2
        self._progress(now)
        self._start_t2(out, self._my_dh2, now)

    def _on_dhpart2(self, m, out, now):
        if self._role != "responder":
            raise ZrtpError(0, "unexpected DHPart2")
        if self._state == _R_CONFIRM1 and self._dh2 is not None and m["raw"] == self._dh2["raw"]:
            self._send(out, self._sent_confirm)
            return
        if self._state != _R_DHPART1:
            raise ZrtpError(0, "unexpected DHPart2")
        c = self._commit
        if _sha(m["h1"]) != c["h2"] or not M.mac_ok(c["raw"], m["h1"]):
            raise ZrtpError(0, "DHPart2 does not match the Commit")
        if self._hsh.h(m["raw"], self._hello)[:32] != c["hvi"]:
            raise ZrtpError(E.BAD_HVI, "hvi does not match DHPart2")
        self._dh1 = M.decode(self._my_dh1)
        self._dh2 = m
        self._dh_keys(self._dh1, m)
        self._send_confirm1(out, now)

    # -- Confirm (4.6, 5.7)
    def _confirm(self, mtype, mine):
        k = self._keys
        flags = _FLAG_A if self._cfg.get("allow_clear") else 0
        if self._verified and self._cache_state == "match":
            flags |= _FLAG_V
        expiry = self._cfg.get("cache_expiry", 0xFFFFFFFF)
        plain = M.confirm_plain(self._h0, flags, expiry)
        iv = self._rand(16)
        enc = cfb_encrypt(aes_ecb(k["zrtpkey" + mine]), iv, plain)
        return M.confirm(mtype, self._hsh.mac(k["mackey" + mine], enc)[:8], iv, enc)

    def _open_confirm(self, m, theirs):
        k = self._keys
        if self._hsh.mac(k["mackey" + theirs], m["encrypted"])[:8] != m["confirm_mac"]:
            raise ZrtpError(E.BAD_CONFIRM_MAC, "confirm_mac mismatch")
        f = M.confirm_fields(cfb_decrypt(aes_ecb(k["zrtpkey" + theirs]), m["iv"], m["encrypted"]))
        self._peer_flags = f["flags"]
        self._peer_expiry = f["expiry"]
        return f["h0"]

    def _send_confirm1(self, out, now):
        self._sent_confirm = self._confirm(M.CONFIRM1, "r")
        self._state = _R_CONFIRM1
        self._progress(now)
        self._send(out, self._sent_confirm)

    def _on_confirm1(self, m, out, now):
        if self._state == _I_CONFIRM2:
            return      # Confirm2 is on its timer already
        if self._role != "initiator" or not (self._state == _I_DHPART2 or
                                             (self._state == _I_COMMIT and self._commit["ka"] in M.NON_DH)):
            raise ZrtpError(0, "unexpected Confirm1")
        if self._keys is None:
            hsh = self._hsh
            key_len = kdf.CIPHERS[self._commit["cipher"]]
            if self._commit["ka"] == b"Mult":
                self._non_dh_keys(hsh, self._ms["zrtpsess"], b"ZRTP MSK", key_len)
            else:
                self._non_dh_keys(hsh, self._psk, b"ZRTP PSK", key_len)
                self._cache_state = "match"
        h0 = self._open_confirm(m, "r")
        h1 = _sha(h0)
        ph = self._peer_hello
        if self._dh1 is not None:
            ok = h1 == self._dh1["h1"] and M.mac_ok(self._dh1["raw"], h0)
        else:
            h2 = _sha(h1)
            ok = _sha(h2) == ph["h3"] and M.mac_ok(ph["raw"], h2)
        if not ok:
            raise ZrtpError(0, "Confirm1 H0 does not match the hash chain")
        self._hello_acked = True
        self._t1 = None
        self._state = _I_CONFIRM2
        self._progress(now)
        self._start_t2(out, self._confirm(M.CONFIRM2, "i"), now)

    def _on_confirm2(self, m, out, now):
        if self._state in (_SECURE, _CLEAR) and self._role == "responder":
            self._send(out, M.simple(M.CONF2ACK))
            return
        if self._state != _R_CONFIRM1:
            raise ZrtpError(0, "unexpected Confirm2")
        h0 = self._open_confirm(m, "i")
        h1 = _sha(h0)
        if self._dh2 is not None:
            ok = h1 == self._dh2["h1"] and M.mac_ok(self._dh2["raw"], h0)
        else:
            ok = _sha(h1) == self._commit["h2"] and M.mac_ok(self._commit["raw"], h1)
        if not ok:
            raise ZrtpError(0, "Confirm2 H0 does not match the hash chain")
        self._send(out, M.simple(M.CONF2ACK))
        self._go_secure(out, now)

    # -- secure (4.6.1, 4.7)
    def _go_secure(self, out, now):
        self._state = _SECURE
        self._t2 = None
        self._t1 = None
        self._progress(now)
        c = self._commit
        k = self._keys
        cache_error = None
        ms = self._ms if c["ka"] == b"Mult" else None
        peer_zid = self._peer_hello["zid"]
        if ms is not None:
            sas, cache_state, verified = ms["sas"], ms["cache"], ms["verified"]
        else:
            sas = sasmod.render(c["sas"], k["sashash"])
            cache_state = self._cache_state
            verified = self._verified and cache_state == "match" and bool(self._peer_flags & _FLAG_V)
            if self._cache is not None:
                interval = min(self._cfg.get("cache_expiry", 0xFFFFFFFF), self._peer_expiry)
                if cache_state == "mismatch":
                    # 4.6.1.1: the users must compare the SAS before the cache takes the new secret
                    self._pending_rs1 = (k["rs1"], interval)
                try:
                    if cache_state == "mismatch":
                        self._cache.set_verified(peer_zid, False)
                    else:
                        self._cache.store(peer_zid, k["rs1"], interval)
                except Exception as e:
                    # the keys are agreed whether or not the secret reached storage: report both
                    cache_error = "ZID cache not saved: " + (str(e) or type(e).__name__)
        i = "i" if self._role == "initiator" else "r"
        j = "r" if i == "i" else "i"
        self._sas = sas
        self._info = {"role": self._role, "ka": _s(c["ka"]), "cipher": _s(c["cipher"]), "hash": _s(c["hash"]),
                      "auth": _s(c["auth"]), "sas_type": _s(c["sas"]), "sas": sas,
                      "self_key": k["srtpkey" + i], "self_salt": k["srtpsalt" + i],
                      "peer_key": k["srtpkey" + j], "peer_salt": k["srtpsalt" + j],
                      "cache": cache_state, "verified": verified, "peer_zid": peer_zid,
                      "peer_allows_clear": bool(self._peer_flags & _FLAG_A)}
        if cache_state == "mismatch":
            out.append(("cache_mismatch", {"peer_zid": _hex(peer_zid), "sas": sas}))
        out.append(("secure", self._info))
        if cache_error is not None:
            out.append(("cache_error", cache_error))

    def _on_goclear(self, m, out, now):
        if self._state == _CLEAR:
            self._send(out, M.simple(M.CLEARACK))
            return
        if self._state != _SECURE:
            raise ZrtpError(0, "GoClear outside the secure state")
        theirs = "mackeyr" if self._role == "initiator" else "mackeyi"
        if self._hsh.mac(self._keys[theirs], M.GOCLEAR)[:8] != m["clear_mac"]:
            raise ZrtpError(0, "bad clear_mac")
        if not self._cfg.get("allow_clear"):
            self._send(out, M.error(E.GOCLEAR_NOT_ALLOWED))
            return
        self._state = _CLEAR
        self._send(out, M.simple(M.CLEARACK))
        out.append(("clear", {"by": "peer"}))

    def _on_sasrelay(self, m, out):
        if self._state != _SECURE:
            raise ZrtpError(0, "SASrelay outside the secure state")
        theirs = "r" if self._role == "initiator" else "i"
        k = self._keys
        if self._hsh.mac(k["mackey" + theirs], m["encrypted"])[:8] != m["mac"]:
            raise ZrtpError(0, "bad SASrelay MAC")
        f = M.sasrelay_fields(cfb_decrypt(aes_ecb(k["zrtpkey" + theirs]), m["iv"], m["encrypted"]))
        # we enrolled with no trusted MiTM (4.7.2), so a relayed SAS is never shown in place of ours
        self._send(out, M.simple(M.RELAYACK))
        out.append(("sas_relay", {"trusted": False, "scheme": _s(f["scheme"])}))
