"""A whole call without sockets (portable): two agent Endpoints register to the real node core and call each
other through it, everything in memory on a fake clock. Both end secure (ZRTP, mandatory) with the same SAS,
media flows only between the two endpoints, and the call ends with a BYE through the node. Then one
endpoint against a hand-played peer: re-INVITEs hold, resume, move, change codec, go inactive or get 488."""
from microwitch import config
from microwitch.log import Logger
from microwitch.node.core import Node
from microwitch.store.memory import MemoryBackend
from microwitch.store.users import Users
from microwitch.store.bindings import Bindings
from microwitch.agent.endpoint import Endpoint
from microwitch.sip.message import parse as sip_parse, make_response
from microwitch.agent import sdp as sdpmod
from microwitch.media import demux
from _lcg import Lcg

NODE = ("udp", "127.0.0.1", 5060)


def _node():
    cfg = config.load('{"domain": "localhost", "listen": ["udp:127.0.0.1:5060"]}')
    be = MemoryBackend()
    users = Users(be)
    users.load()
    users.add("alice@localhost", "pw-alice")
    users.add("bob@localhost", "pw-bob")
    node = Node(cfg, users, Bindings(be), Lcg(1), Logger("info", lambda line: None), b"k" * 32, ["127.0.0.1"])
    node.set_listen([NODE])
    return node


def _ep(user, sip_port, media_port, seed, **kw):
    opts = {"user": "sip:%s@localhost" % user, "password": "pw-" + user, "proxy": NODE,
            "sip_local": ("127.0.0.1", sip_port), "media_local": ("127.0.0.1", media_port), "zrtp": "mandatory"}
    opts.update(kw)
    return Endpoint(opts, Lcg(seed), None, 0)


def _run(node, eps, starts, ms):
    """Start each endpoint at its time in `starts`, deliver every action in memory in 5 ms steps; returns
    reports per endpoint, exit codes and media/SIP counts."""
    by_sip = {}
    by_media = {}
    for name in eps:
        ep = eps[name]
        by_sip[ep.o["sip_local"]] = name
        by_media[ep.o["media_local"]] = name
    reports = dict((n, []) for n in eps)
    exits = {}
    stats = {"media_via_node": 0, "media": 0, "sip_to_node": 0}
    queue = []

    def take(name, acts):
        for a in acts:
            if a[0] == "report":
                reports[name].append(a[1])
            elif a[0] == "exit":
                exits[name] = a[1]
            else:
                queue.append((name, a))

    started = {}
    now = 0
    while now < ms and len(exits) < len(eps):
        now += 5
        for n in eps:
            if n not in started and now >= starts[n]:
                started[n] = True
                take(n, eps[n].start(now))
            if n in started:
                take(n, eps[n].tick(now))
        for a in node.tick(now, 1000):
            queue.append(("node", ("sip", a[1], a[2])))
        budget = 500
        while queue and budget > 0:
            budget -= 1
            src, a = queue.pop(0)
            kind, data, dest = a
            if kind == "media":
                stats["media"] += 1
                to = by_media.get((dest[0], dest[1]))
                if to is None:
                    stats["media_via_node"] += 1
                    continue
                take(to, eps[to].receive_media(data, eps[src].o["media_local"], now))
                continue
            if src == "node":
                to = by_sip.get((dest[1], dest[2]))
                if to is not None:
                    take(to, eps[to].receive_sip(data, NODE, now))
                continue
            if (dest[1], dest[2]) == (NODE[1], NODE[2]):
                stats["sip_to_node"] += 1
                sip = eps[src].o["sip_local"]
                for b in node.receive(data, ("udp", sip[0], sip[1]), now, 1000):
                    queue.append(("node", ("sip", b[1], b[2])))
    return reports, exits, stats


def _first(reports, event):
    for r in reports:
        if r["event"] == event:
            return r
    return None


def test_two_endpoints_call_through_the_node_core():
    node = _node()
    bob = _ep("bob", 5080, 40002, 3, answer=True)
    alice = _ep("alice", 5070, 40000, 2, call="sip:bob@localhost", duration_ms=600)
    # bob registers first, then alice registers and calls
    reports, exits, stats = _run(node, {"alice": alice, "bob": bob}, {"bob": 0, "alice": 200}, 8000)
    ra, rb = reports["alice"], reports["bob"]
    names = [r["event"] for r in ra]
    assert names[:4] == ["registered", "ringing", "answered", "waiting"], ra  # mandatory: says why it is quiet
    assert names.count("waiting") == 1 and names.index("waiting") < names.index("secure")
    sa, sb = _first(ra, "secure"), _first(rb, "secure")
    assert sa is not None and sb is not None, (ra, rb)
    assert sa["sas"] == sb["sas"] and sa["cache"] == "new"
    ea, eb = _first(ra, "ended"), _first(rb, "ended")
    assert ea["reason"] == "local hangup (duration reached)" and eb["reason"] == "remote hangup"
    assert ea["secure"] and eb["secure"] and ea["srtp_received"] > 5 and eb["srtp_received"] > 5
    assert ea["rtp_sent"] == ea["srtp_sent"] and eb["rtp_sent"] == eb["srtp_sent"]
    assert _first(rb, "incoming")["from"] == "sip:alice@localhost"
    assert exits == {"alice": 0, "bob": 0}
    assert stats["media"] > 20 and stats["media_via_node"] == 0 and stats["sip_to_node"] >= 8


class _FullDisk:
    """A ZID cache backend on a filesystem that fills up once the ZID is written."""

    def __init__(self):
        self.data = b""
        self.full = False

    def read(self):
        return self.data

    def append(self, b):
        if self.full:
            raise OSError(28, "No space left on device")
        self.data += b

    def replace(self, b):
        self.append(b"")
        self.data = b


def test_a_cache_that_cannot_be_saved_is_reported_and_the_call_stays_secure():
    from microwitch.zrtp.cache import ZidCache
    disk = _FullDisk()
    cache = ZidCache(disk, Lcg(9))
    cache.zid()
    disk.full = True
    node = _node()
    bob = Endpoint({"user": "sip:bob@localhost", "password": "pw-bob", "proxy": NODE,
                    "sip_local": ("127.0.0.1", 5080), "media_local": ("127.0.0.1", 40002), "zrtp": "mandatory",
                    "answer": True}, Lcg(3), cache, 0)
    alice = _ep("alice", 5070, 40000, 2, call="sip:bob@localhost", duration_ms=600)
    reports, exits, stats = _run(node, {"alice": alice, "bob": bob}, {"bob": 0, "alice": 200}, 8000)
    rb = reports["bob"]
    names = [r["event"] for r in rb]
    assert "secure" in names and "cache_error" in names and names.index("secure") < names.index("cache_error"), rb
    assert "No space left" in _first(rb, "cache_error")["reason"]
    assert _first(rb, "ended")["secure"] and exits == {"alice": 0, "bob": 0}


# -- re-INVITE at the endpoint (RFC 3264 §8, RFC 3261 §14.2): one endpoint, the peer played by hand ----------

def _peer_sdp(direction, codecs="0 8 101", addr="192.0.2.30", port=4000, ver=1):
    return ("v=0\r\no=bob 9 %d IN IP4 %s\r\ns=-\r\nc=IN IP4 %s\r\nt=0 0\r\nm=audio %d RTP/AVP %s\r\n"
            "a=rtpmap:101 telephone-event/8000\r\na=rtpmap:96 opus/48000/2\r\n%s"
            % (ver, addr, addr, port, codecs, ("a=%s\r\n" % direction) if direction else "")).encode()


def _invite(cseq, body, tag=None, method="INVITE"):
    to = "<sip:alice@localhost>" + (";tag=" + tag if tag else "")
    return ("%s sip:alice@127.0.0.1:5070 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKr%d%s\r\n"
            "From: <sip:bob@localhost>;tag=bobtag\r\nTo: %s\r\nCall-ID: re1@bob\r\nCSeq: %d %s\r\n"
            "Contact: <sip:bob@192.0.2.30:5080>\r\nMax-Forwards: 70\r\nContent-Type: application/sdp\r\n"
            "Content-Length: %d\r\n\r\n" % (method, cseq, method, to, cseq, method, len(body))).encode() + body


def _split(acts):
    sip, rtp, reports = [], [], []
    for a in acts:
        if a[0] == "sip" and a[1].strip():
            sip.append(sip_parse(a[1]))
        elif a[0] == "media" and demux.classify(a[1]) == demux.RTP:
            rtp.append((a[1], a[2]))
        elif a[0] == "report":
            reports.append(a[1])
    return sip, rtp, reports


def _in_call_endpoint():
    """An answering endpoint (zrtp optional: clear media we can watch, ZRTP running) in a confirmed call
    with a peer at 192.0.2.30:4000."""
    ep = Endpoint({"user": "sip:alice@localhost", "password": "pw-alice", "proxy": NODE,
                   "sip_local": ("127.0.0.1", 5070), "media_local": ("127.0.0.1", 40000), "zrtp": "optional",
                   "answer": True}, Lcg(5), None, 0)
    (reg,), _, _ = _split(ep.start(0))
    ok = make_response(reg, 200, "OK", "regtag")
    ok.add("Contact", reg.get("Contact") + ";expires=600")
    ep.receive_sip(ok.to_bytes(), NODE, 1)
    sip, _, reports = _split(ep.receive_sip(_invite(1, _peer_sdp(None)), NODE, 10))
    assert [m.status for m in sip] == [180, 200] and reports[1]["event"] == "answered"
    tag = sip[1].get("To").split("tag=")[1]
    ack = _invite(1, b"", tag, "ACK")
    ep.receive_sip(ack, NODE, 20)
    return ep, tag, sip[1]


def _ticks(ep, t0, ms):
    sip, rtp, rep = [], [], []
    t = t0
    while t < t0 + ms:
        t += 10
        s, r, p = _split(ep.tick(t))
        sip += s
        rtp += r
        rep += p
    return sip, rtp, rep, t


def _reinvite(ep, tag, cseq, body, now):
    """Send a re-INVITE, ACK its final response; (response, its SDP or None, reports)."""
    sip, rtp, reports = _split(ep.receive_sip(_invite(cseq, body, tag), NODE, now))
    (resp,) = sip
    ack = _invite(cseq, b"", tag, "ACK")
    ep.receive_sip(ack, NODE, now + 1)
    return resp, (sdpmod.parse(resp.body) if resp.body else None), reports


def test_reinvite_hold_resume_new_address_codec_inactive_and_488():
    ep, tag, ok = _in_call_endpoint()
    first = sdpmod.parse(ok.body)
    media, zrtp, ssrc = ep.media, ep.media.zrtp, ep.media.ssrc
    _, rtp, _, t = _ticks(ep, 20, 200)
    assert len(rtp) >= 8 and all(d == ("192.0.2.30", 4000) and p[1] & 0x7F == 0 for p, d in rtp)
    last_seq = int.from_bytes(rtp[-1][0][2:4], "big")
    # hold: the peer offers sendonly; we answer recvonly (RFC 3264 §8.4) and stop sending
    resp, ans, rep = _reinvite(ep, tag, 2, _peer_sdp("sendonly", ver=2), t)
    assert resp.status == 200 and ans.media[0].direction == "recvonly" and ans.media[0].fmts == [0, 101]
    assert ans.origin.split()[1] == first.origin.split()[1] and ans.origin.split()[2] == "2"
    assert ans.media[0].port == 40000 and ans.media[0].zrtp_hash == first.media[0].zrtp_hash
    assert rep[-1]["event"] == "media" and not rep[-1]["sending"] and rep[-1]["receiving"]
    _, rtp, _, t = _ticks(ep, t + 1, 300)
    assert rtp == []
    # resume on a new address with PCMA first: sendrecv, media follows; SSRC, sequence and ZRTP carry on
    resp, ans, rep = _reinvite(ep, tag, 3, _peer_sdp("sendrecv", "8 0 101", "192.0.2.31", 4002, 3), t)
    assert resp.status == 200 and ans.media[0].direction == "sendrecv" and ans.media[0].fmts == [8, 101]
    assert ans.origin.split()[2] == "3" and rep[-1]["sending"] and rep[-1]["codec"] == "PCMA"
    _, rtp, _, t = _ticks(ep, t + 1, 200)
    assert len(rtp) >= 8 and all(d == ("192.0.2.31", 4002) and p[1] & 0x7F == 8 for p, d in rtp)
    assert int.from_bytes(rtp[0][0][8:12], "big") == ssrc
    assert int.from_bytes(rtp[0][0][2:4], "big") == (last_seq + 1) & 0xFFFF
    assert ep.media is media and ep.media.zrtp is zrtp and ep.call.state == "confirmed"
    # an offer with no codec we take: 488 (RFC 3261 §14.2), the call keeps its session and keeps sending
    before = ep.call.remote_sdp
    resp, ans, rep = _reinvite(ep, tag, 4, _peer_sdp("sendrecv", "96", "192.0.2.40", 6000, 4), t)
    assert resp.status == 488 and ans is None and rep[-1]["event"] == "reoffer_refused"
    assert "codec" in rep[-1]["reason"] and ep.call.remote_sdp == before and ep.call.state == "confirmed"
    _, rtp, _, t = _ticks(ep, t + 1, 200)
    assert len(rtp) >= 8 and all(d == ("192.0.2.31", 4002) and p[1] & 0x7F == 8 for p, d in rtp)
    # inactive: a=inactive, nothing sent; the version counts only changes (the 488 changed nothing)
    resp, ans, rep = _reinvite(ep, tag, 5, _peer_sdp("inactive", "8 0 101", "192.0.2.31", 4002, 5), t)
    assert resp.status == 200 and ans.media[0].direction == "inactive" and ans.origin.split()[2] == "4"
    assert not rep[-1]["sending"] and not rep[-1]["receiving"]
    _, rtp, _, t = _ticks(ep, t + 1, 200)
    assert rtp == []
    # the same offer again: the same answer, same version (RFC 3264 §8)
    resp, ans2, rep = _reinvite(ep, tag, 6, _peer_sdp("inactive", "8 0 101", "192.0.2.31", 4002, 5), t)
    assert resp.status == 200 and resp.body == ep.call.local_sdp and ans2.origin == ans.origin
    # resume to sendrecv: media comes back
    resp, ans, rep = _reinvite(ep, tag, 7, _peer_sdp(None, "8 101", "192.0.2.31", 4002, 6), t + 10)
    assert resp.status == 200 and ans.media[0].direction == "sendrecv"
    _, rtp, _, t = _ticks(ep, t + 11, 100)
    assert len(rtp) >= 4 and ep.media.zrtp is zrtp


def _ack_sdp(cseq, tag, body):
    return _invite(cseq, body, tag, "ACK")


def test_reinvite_without_sdp_gets_our_offer_and_the_ack_answer_is_applied():
    ep, tag, ok = _in_call_endpoint()
    zrtp, ssrc = ep.media.zrtp, ep.media.ssrc
    resp, ans, rep = _reinvite(ep, tag, 2, _peer_sdp("sendonly", ver=2), 300)
    assert ans.media[0].direction == "recvonly"
    _, rtp, _, t = _ticks(ep, 301, 200)
    assert rtp == []
    # a re-INVITE without SDP: the 2xx carries our offer, sendrecv with all our codecs, a new version
    sip, _, rep = _split(ep.receive_sip(_invite(3, b"", tag), NODE, t))
    (resp,) = sip
    offer = sdpmod.parse(resp.body)
    assert resp.status == 200 and rep == []
    assert offer.media[0].direction == "sendrecv" and offer.media[0].fmts == [0, 8, 101]
    assert offer.origin.split()[2] == "3" and offer.media[0].zrtp_hash == ans.media[0].zrtp_hash
    # still held until the answer arrives in the ACK; then media follows it (PCMA, new port)
    _, rtp, _, t = _ticks(ep, t, 100)
    assert rtp == []
    answer = _peer_sdp("sendrecv", "8 101", "192.0.2.30", 4010, 3)
    _, _, rep = _split(ep.receive_sip(_ack_sdp(3, tag, answer), NODE, t + 1))
    assert rep[-1]["event"] == "media" and rep[-1]["sending"] and rep[-1]["codec"] == "PCMA"
    _, rtp, _, t = _ticks(ep, t + 1, 200)
    assert len(rtp) >= 8 and all(d == ("192.0.2.30", 4010) and p[1] & 0x7F == 8 for p, d in rtp)
    assert int.from_bytes(rtp[0][0][8:12], "big") == ssrc and ep.media.zrtp is zrtp
    # an ACK answer we cannot use ends the call with a BYE and says why
    sip, _, _ = _split(ep.receive_sip(_invite(4, b"", tag), NODE, t))
    assert sip[0].status == 200
    sip, _, rep = _split(ep.receive_sip(_ack_sdp(4, tag, _peer_sdp(None, "96", ver=4)), NODE, t + 1))
    # the BYE, then the unregister of an agent whose call is over
    assert [m.method for m in sip] == ["BYE", "REGISTER"] and "unusable SDP answer in the ACK" in rep[0]["reason"]
    assert rep[-1]["event"] == "ended"
