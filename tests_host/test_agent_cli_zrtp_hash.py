"""The peer's a=zrtp-hash (RFC 6189 8.1) binds its SDP to its ZRTP Hello: two agent processes call through a
real node, with the caller's SIP going through a small UDP relay that changes one hex digit of the hash in
the SDP answer. The caller must then fail ZRTP (zrtp=mandatory): no media in clear, a hang-up, exit code 4.
The same relay without the change gives a secure call, so the change is what fails it."""
import select
import socket
import threading
import time


from agentproc import START_S, Agent, node  # noqa: F401 (node: the module's fixture)

MARK = b"a=zrtp-hash:1.10 "


def _headers(data, old, new):
    """`data` with `old` replaced by `new` in the SIP headers only (Content-Length counts the body)."""
    i = data.find(b"\r\n\r\n")
    if i < 0:
        return data.replace(old, new)
    return data[:i].replace(old, new) + data[i:]


class Relay:
    """UDP between one SIP client and the node; with tamper=True, flips a digit of every zrtp-hash that the
    node sends to the client (same length: Content-Length stays right)."""

    def __init__(self, node_addr, tamper, seconds=40):
        self.node = node_addr
        self.tamper = tamper
        self.changed = 0
        self.seen = 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.addr = self.sock.getsockname()
        self.client = None
        # the node's Record-Route is rewritten to point at the relay (and the client's Route back), so that the
        # ACK and BYE also come from the address the client registered from
        self._node_b = ("%s:%d" % node_addr).encode()
        self._relay_b = ("%s:%d" % self.addr).encode()
        self.stop_at = time.monotonic() + seconds
        self.done = threading.Event()
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        while not self.done.is_set() and time.monotonic() < self.stop_at:
            r, _, _ = select.select([self.sock], [], [], 0.05)
            if not r:
                continue
            data, src = self.sock.recvfrom(65535)
            if src == self.node:
                if self.client is not None:
                    self.sock.sendto(self._change(_headers(data, self._node_b, self._relay_b)), self.client)
            else:
                self.client = src
                self.sock.sendto(_headers(data, self._relay_b, self._node_b), self.node)

    def _change(self, data):
        i = data.find(MARK)
        if i < 0:
            return data
        self.seen += 1
        if not self.tamper:
            return data
        j = i + len(MARK)
        b = bytearray(data)
        b[j] = ord("1") if b[j] == ord("0") else ord("0")
        self.changed += 1
        return bytes(b)

    def close(self):
        self.done.set()
        self.t.join(timeout=5)
        self.sock.close()


def _call(node, tamper):
    relay = Relay(node.udp, tamper)
    bob = Agent("sip:bob@localhost", "pw-bob", node.udp, "--answer", timeout=30)
    try:
        assert bob.wait_event("registered", START_S) is not None, bob.describe()
        alice = Agent("sip:alice@localhost", "pw-alice", relay.addr, "--call", "sip:bob@localhost",
                      "--duration", 2, timeout=30)
        alice.wait()
        bob.wait()
    finally:
        bob.kill()
        relay.close()
    return alice, bob, relay


def test_untouched_hash_through_the_relay_gives_a_secure_call(node):
    alice, bob, relay = _call(node, tamper=False)
    info = alice.describe() + "\n" + bob.describe()
    assert relay.seen >= 1 and relay.changed == 0, info
    assert alice.first("secure") and bob.first("secure"), info
    assert alice.first("secure")["sas"] == bob.first("secure")["sas"], info
    assert alice.rc == 0 and bob.rc == 0 and bob.first("ended")["reason"] == "remote hangup", info


def test_tampered_hash_fails_zrtp_and_no_media_is_sent(node):
    alice, bob, relay = _call(node, tamper=True)
    info = alice.describe() + "\n" + bob.describe()
    assert relay.changed >= 1, info                        # the 200 OK's SDP reached alice changed
    names = [e["event"] for e in alice.events()]
    assert "answered" in names and "secure" not in names, info
    why = [e["reason"] for e in alice.events() if e["event"] == "insecure"]
    assert len(why) == 1 and "zrtp-hash mismatch" in why[0] and "no media was sent in clear" in why[0], info
    ended = alice.first("ended")
    assert ended["secure"] is False and ended["rtp_sent"] == 0 and ended["srtp_sent"] == 0, info
    assert ended["reason"].startswith("ZRTP failed"), info      # hung up at once, not at --duration
    assert alice.rc == 4, info
    assert bob.first("secure") is None, info
