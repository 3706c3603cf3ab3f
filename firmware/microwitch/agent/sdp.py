"""SDP (RFC 4566) offer/answer for one audio stream (RFC 3264), with a=zrtp-hash (RFC 6189 §8.1).

We offer PCMU and PCMA (RFC 3551 static types 0 and 8) and telephone-event (RFC 4733) on RTP/AVP, 20 ms
packets. The answerer takes the first codec of the offer it supports (§6.1: the offerer's order is a
preference), keeps the offerer's telephone-event payload type and refuses every other m= line with port 0.
RTCP shares the media port: we offer a=rtcp-mux (RFC 5761 §5.1.1) and always state a=rtcp:<media port>
(RFC 3605), so a peer that does not multiplex still sends its RTCP to the one socket we have; where we send
ours follows the peer: its port with rtcp-mux, else its a=rtcp port or port + 1 (the result's rtcp_* keys).
`parse()` raises SdpError with a reason; the user agent turns it into 488 Not Acceptable Here.
"""
from microwitch.compat import const

MAX_SDP = const(8192)        # bytes of SDP we parse; a bigger body is refused
_MAX_MEDIA = const(16)       # m= lines we look at
_CODECS = ("PCMU", "PCMA")   # what we can encode, in our order of preference
_STATIC = {0: "PCMU", 8: "PCMA"}
DTMF_PT = const(101)


class SdpError(Exception):
    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


class Media:
    """One m= section: kind, port, proto, payload types, rtpmap names (upper case, no rate), attributes."""

    def __init__(self, kind, port, proto, fmts):
        self.kind = kind
        self.port = port
        self.proto = proto
        self.fmts = fmts
        self.rtpmap = {}
        self.conn = None
        self.zrtp_hash = None
        self.direction = "sendrecv"
        self.rtcp_mux = False
        self.rtcp_port = None
        self.rtcp_addr = None
        self.attrs = []

    def codec(self, pt):
        """Encoding name of payload type `pt` (rtpmap first, then the RFC 3551 static table)."""
        name = self.rtpmap.get(pt)
        if name is not None:
            return name
        return _STATIC.get(pt)


class Session:
    def __init__(self):
        self.origin = None
        self.conn = None
        self.media = []
        self.zrtp_hash = None


def _conn(value):
    """`IN IP4 addr[/ttl]` -> addr."""
    p = value.split()
    if len(p) != 3 or p[0] != "IN" or p[1] not in ("IP4", "IP6"):
        raise SdpError("bad c= line")
    return p[2].split("/")[0]


def _split(s, sep):
    """(before, after) the first `sep`; after is "" without one (str.partition is optional on MicroPython)."""
    i = s.find(sep)
    if i < 0:
        return s, ""
    return s[:i], s[i + len(sep):]


def _int(s, what, top=65535):
    if not s or len(s) > 10 or s.strip("0123456789"):
        raise SdpError("bad " + what)
    n = int(s)
    if n > top:
        raise SdpError("bad " + what)
    return n


def parse(body):
    """Parse an SDP body (bytes or str) into a Session; SdpError on anything we cannot use."""
    if isinstance(body, (bytes, bytearray)):
        if len(body) > MAX_SDP:
            raise SdpError("SDP too large")
        try:
            body = bytes(body).decode()
        except (UnicodeError, ValueError):
            raise SdpError("SDP is not UTF-8")
    s = Session()
    cur = None
    seen_v = False
    for line in body.replace("\r\n", "\n").split("\n"):
        if not line:
            continue
        if len(line) < 2 or line[1] != "=":
            raise SdpError("bad SDP line")
        t = line[0]
        v = line[2:].strip()
        if t == "v":
            if v != "0":
                raise SdpError("unsupported SDP version")
            seen_v = True
        elif t == "o":
            s.origin = v
        elif t == "c":
            if cur is None:
                s.conn = _conn(v)
            else:
                cur.conn = _conn(v)
        elif t == "m":
            p = v.split()
            if len(p) < 4:
                raise SdpError("bad m= line")
            if len(s.media) >= _MAX_MEDIA:
                raise SdpError("too many m= lines")
            fmts = []
            for f in p[3:]:
                fmts.append(_int(f, "payload type", 127) if p[2].startswith("RTP/") else f)
            cur = Media(p[0], _int(p[1].split("/")[0], "media port"), p[2], fmts)
            s.media.append(cur)
        elif t == "a":
            name, val = _split(v, ":")
            if cur is None:
                if name == "zrtp-hash":
                    s.zrtp_hash = val.strip()
                continue
            cur.attrs.append((name, val))
            if name == "rtpmap":
                pt, enc = _split(val, " ")
                try:
                    cur.rtpmap[_int(pt.strip(), "rtpmap", 127)] = enc.strip().split("/")[0].upper()
                except SdpError:
                    pass  # a broken rtpmap only hides that payload type
            elif name == "zrtp-hash":
                cur.zrtp_hash = val.strip()
            elif name in ("sendrecv", "sendonly", "recvonly", "inactive"):
                cur.direction = name
            elif name == "rtcp-mux":
                cur.rtcp_mux = True
            elif name == "rtcp":
                _rtcp_attr(cur, val)
    if not seen_v:
        raise SdpError("missing v= line")
    return s


def _rtcp_attr(m, val):
    """a=rtcp:port [IN IP4 addr] (RFC 3605 2.1); a broken one is ignored (RTCP then goes to port + 1)."""
    p = val.split()
    try:
        port = _int(p[0] if p else "", "a=rtcp port")
        addr = _conn(" ".join(p[1:])) if len(p) > 1 else None
    except SdpError:
        return
    if port > 0:
        m.rtcp_port = port
        m.rtcp_addr = addr


def _audio(session):
    for m in session.media:
        if m.kind == "audio":
            return m
    return None


def _session(addr, sess_id, sess_ver):
    fam = "IP6" if ":" in addr else "IP4"
    return ["v=0", "o=- %d %d IN %s %s" % (sess_id, sess_ver, fam, addr), "s=microwitch",
            "c=IN %s %s" % (fam, addr), "t=0 0"]


def _audio_lines(port, pts, rtpmap, dtmf_pt, zrtp_hash, direction, rtcp_mux):
    fmts = [str(p) for p in pts]
    if dtmf_pt is not None:
        fmts.append(str(dtmf_pt))
    lines = ["m=audio %d RTP/AVP %s" % (port, " ".join(fmts))]
    for p in pts:
        lines.append("a=rtpmap:%d %s/8000" % (p, rtpmap[p]))
    if dtmf_pt is not None:
        lines.append("a=rtpmap:%d telephone-event/8000" % dtmf_pt)
        lines.append("a=fmtp:%d 0-15" % dtmf_pt)
    lines.append("a=ptime:20")
    lines.append("a=rtcp:%d" % port)
    if rtcp_mux:
        lines.append("a=rtcp-mux")
    if zrtp_hash:
        lines.append("a=zrtp-hash:" + zrtp_hash)
    lines.append("a=" + direction)
    return lines


def _join(lines):
    return ("\r\n".join(lines) + "\r\n").encode()


def _pts(codecs):
    """([payload types], {pt: name}) for our codec names (ValueError on one we cannot encode)."""
    pts = []
    names = {}
    for c in codecs:
        pt = 0 if c == "PCMU" else 8 if c == "PCMA" else None
        if pt is None:
            raise ValueError("unknown codec " + str(c))
        pts.append(pt)
        names[pt] = c
    return pts, names


def offer(addr, port, sess_id, sess_ver, zrtp_hash=None, codecs=_CODECS):
    """Our offer: audio on `addr`:`port` with `codecs` (PCMU/PCMA names) and telephone-event."""
    pts, names = _pts(codecs)
    return _join(_session(addr, sess_id, sess_ver) + _audio_lines(port, pts, names, DTMF_PT, zrtp_hash,
                                                                   "sendrecv", True))


def reoffer(remote_session, addr, port, sess_id, sess_ver, zrtp_hash=None, codecs=_CODECS):
    """A new offer in an existing session (RFC 3264 §8, e.g. for a re-INVITE without SDP): the same m= lines
    in the same order as the session's last SDP from the peer (`remote_session`), our audio sendrecv with all
    our codecs in place of its audio stream, every other stream refused with port 0 as before."""
    pts, names = _pts(codecs)
    lines = _session(addr, sess_id, sess_ver)
    done = False
    for m in remote_session.media:
        if not done and _usable(m):
            done = True
            lines += _audio_lines(port, pts, names, DTMF_PT, zrtp_hash, "sendrecv", m.rtcp_mux)
        else:
            lines.append("m=%s 0 %s %s" % (m.kind, m.proto, " ".join([str(f) for f in m.fmts])))
    if not done:
        raise SdpError("the session has no audio stream")
    return _join(lines)


def _direction_answer(d):
    return {"sendonly": "recvonly", "recvonly": "sendonly", "inactive": "inactive"}.get(d, "sendrecv")


def _result(session, m, pt, dtmf_pt):
    addr = m.conn or session.conn
    if addr is None:
        raise SdpError("no connection address")
    return {"addr": addr, "port": m.port, "pt": pt, "codec": m.codec(pt), "dtmf_pt": dtmf_pt,
            "zrtp_hash": m.zrtp_hash or session.zrtp_hash, "direction": m.direction,
            "rtcp_mux": m.rtcp_mux, "rtcp_port": m.rtcp_port, "rtcp_addr": m.rtcp_addr or addr}


def _usable(m):
    return m.kind == "audio" and m.port != 0 and m.proto in ("RTP/AVP", "RTP/AVPF")


def answer(offer_session, addr, port, sess_id, sess_ver, zrtp_hash=None, codecs=_CODECS):
    """Answer a parsed offer (RFC 3264 §6). Returns (body, result) where result describes the remote side:
    addr, port, pt, codec, dtmf_pt, zrtp_hash, direction, rtcp_mux, rtcp_port (None: port + 1), rtcp_addr.
    rtcp-mux is accepted when offered (RFC 5761 §5.1.1). SdpError when no audio stream is acceptable.
    Every offered m= line is answered in its place; all but the chosen audio stream with port 0."""
    chosen = None
    for m in offer_session.media:
        if _usable(m):
            for pt in m.fmts:
                if m.codec(pt) in codecs:
                    chosen = (m, pt)
                    break
            if chosen is not None:
                break
    if chosen is None:
        raise SdpError("no common audio codec (we take PCMU or PCMA on RTP/AVP)")
    cm, pt = chosen
    dtmf = None
    for f in cm.fmts:
        if cm.codec(f) == "TELEPHONE-EVENT":
            dtmf = f
            break
    res = _result(offer_session, cm, pt, dtmf)
    lines = _session(addr, sess_id, sess_ver)
    for m in offer_session.media:
        if m is cm:
            lines += _audio_lines(port, [pt], {pt: cm.codec(pt)}, dtmf, zrtp_hash, _direction_answer(cm.direction),
                                  cm.rtcp_mux)
        else:
            lines.append("m=%s 0 %s %s" % (m.kind, m.proto, " ".join([str(f) for f in m.fmts])))
    return _join(lines), res


def answer_result(answer_session, offered=_CODECS):
    """What the answerer chose (RFC 3264 §7): result dict like answer()'s; SdpError if it refused audio.
    rtcp_mux is True only when the answer has a=rtcp-mux (RFC 5761 §5.1.1)."""
    m = _audio(answer_session)
    if m is None or m.port == 0:
        raise SdpError("the answer refuses the audio stream")
    if not m.proto.startswith("RTP/"):
        raise SdpError("the answer uses transport " + m.proto)
    dtmf = None
    pt = None
    for f in m.fmts:
        c = m.codec(f)
        if c == "TELEPHONE-EVENT":
            if dtmf is None:
                dtmf = f
        elif pt is None and c in offered:
            pt = f
    if pt is None:
        raise SdpError("the answer has no codec we offered")
    return _result(answer_session, m, pt, dtmf)
