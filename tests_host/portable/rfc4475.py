"""Torture messages in the families of RFC 4475 §3.1.1 (valid) and §3.1.2 (invalid).

Written for this project from the RFC's descriptions of each family (not copies of its messages).
VALID: (name, bytes, check(msg) or None). INVALID: (name, bytes, answerable) where answerable is
True when the parser must hand back a partial message so the node can answer 400/505, False when the
message must be dropped (no partial message), None for responses (never answered, either is fine).
"""
from microwitch.sip.message import parse_via, parse_name_addr, parse_cseq
from microwitch.sip.uri import parse_uri
from microwitch.sip.headers import ParseError


def _m(*lines, body=b""):
    out = []
    for ln in lines:
        out.append(ln if isinstance(ln, bytes) else ln.encode())
    return b"\r\n".join(out) + b"\r\n\r\n" + body


_CORE = ("Via: SIP/2.0/UDP client.example.net:5060;branch=z9hG4bK.tt1",
         "Max-Forwards: 70",
         "From: <sip:carol@example.net>;tag=tt1",
         "To: <sip:dave@example.org>",
         "Call-ID: torture-1@client.example.net")


def _req(method, uri, *extra, body=b"", cseq=None):
    cs = "CSeq: 11 " + (method if cseq is None else cseq)
    return _m(method + " " + uri + " SIP/2.0", *(_CORE + (cs,) + extra), body=body)


# --- §3.1.1.1 short tortuous INVITE: odd LWS, folding, compact + mixed-case names, escapes ---------
_TORTUOUS = _m(
    "INVITE sip:dave%2Bfwd@Example.ORG;User=Phone SIP/2.0",
    "tO  :",
    "   Dave  Jones   <sip:dave%2Bfwd@example.org>",
    "    ; tag = x1Y2 ",
    "f: \"Carol \\\"The Tester\\\" \\\\ C\" <sip:carol@example.net> ;tag=9zz",
    "mAx-FoRwArDs: 068",
    "Call-ID: 4Q.a-b%c!d*e_f+g`h'i~j@client.example.net",
    "cseq:  0009",
    "\tINVITE",
    "V  :  SIP  /  2.0",
    "  /  UDP",
    "     client.example.net  ;  branch  =  z9hG4bK.tor1 , SIP/2.0/TCP relay.example.net:5061",
    "  ;branch=z9hG4bK.tor0;received=192.0.2.44",
    "NewFangled-Header:   odd value,  with  , commas",
    "   and a folded tail",
    "Unknown-Param-Header: x;some-Param=\"quoted ; \\\" value\";flag",
    "m: <sip:carol@192.0.2.7:5062;transport=udp> ; q=0.3 ; expires=600",
    "c: application/sdp",
    "CONTENT-LENGTH:   11   ",
    body=b"v=0\r\no=- 0\r\n")


def _check_tortuous(m):
    assert m.method == "INVITE"
    assert m.get("To") == "Dave  Jones   <sip:dave%2Bfwd@example.org> ; tag = x1Y2"
    to = parse_name_addr(m.get("To"))
    assert to.display == "Dave Jones" and to.tag == "x1Y2"
    fr = parse_name_addr(m.get("From"))
    assert fr.display == "Carol \"The Tester\" \\ C" and fr.tag == "9zz"
    assert parse_cseq(m.get("CSeq")) == (9, "INVITE")
    vias = m.get_all("Via")
    assert len(vias) == 2
    v0 = parse_via(vias[0])
    assert v0.transport == "UDP" and v0.branch == "z9hG4bK.tor1" and v0.port is None
    v1 = parse_via(vias[1])
    assert v1.port == 5061 and v1.params["received"] == "192.0.2.44"
    assert m.get("newfangled-header") == "odd value,  with  , commas and a folded tail"
    assert m.get("Max-Forwards") == "068"
    assert m.body == b"v=0\r\no=- 0\r\n"[:11]
    u = parse_uri(m.uri)
    assert u.user == "dave+fwd" and u.host == "example.org" and u.params == {"user": "Phone"}


# --- §3.1.1.2 wide range of valid characters ------------------------------------------------------
_METHOD = "!odd-Method0123456789_*+`.%'~"
_WIDE_URI = "sip:1_odd.URI~(so!sure)&isn't+it$/wild?,/;;*@example.com"
_WIDE = _m(
    _METHOD + " " + _WIDE_URI + " SIP/2.0",
    "Via: SIP/2.0/UDP host1.example.com;branch=z9hG4bK-.!%66*_+`'~",
    "To: \"BEL:\\\x07 NUL:\\\x00 DEL:\\\x7f\" <sip:1_odd.URI~(so!sure)&isn't+it$/wild?,/;;*@example.com>"
    .replace("\x00", "x"),
    "From: token1~` token2'+_ token3*%!.- <sip:mundane@example.com>;fromParam''~+*_!.-%=\"\u0440\u0430\u0431\";tag=_token~1'+`*%!-.",
    "Call-ID: intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{",
    "CSeq: 139122385 " + _METHOD,
    "Max-Forwards: 255",
    "extensionHeader-!.%*+_`'~: \ufeff\u5927\u505c\u96fb",
    "Content-Length: 0")


def _check_wide(m):
    assert m.method == _METHOD and m.uri == _WIDE_URI
    assert parse_cseq(m.get("CSeq")) == (139122385, _METHOD)
    u = parse_uri(m.uri)
    assert u.user == "1_odd.URI~(so!sure)&isn't+it$/wild?,/;;*" and u.host == "example.com"
    fr = parse_name_addr(m.get("From"))
    assert fr.display == "token1~` token2'+_ token3*%!.-" and fr.tag == "_token~1'+`*%!-."
    assert fr.params["fromparam''~+*_!.-%"] == "\"\u0440\u0430\u0431\""
    assert m.get("EXTENSIONHEADER-!.%*+_`'~") == "\ufeff\u5927\u505c\u96fb"
    assert parse_name_addr(m.get("To")).display.startswith("BEL:\x07")


# --- §3.1.1.3/4/5 escapes: escaped URI user, escaped NUL, '%' that is not an escape ---------------
_ESC = _req("INVITE", "sip:sips%3Auser%40example.com@example.net",
            "Contact: <sip:c%61rol@client.example.net>",
            "Subject: 100% sure %zz",
            "Content-Length: 0")


def _check_esc(m):
    u = parse_uri(m.uri)
    assert u.user == "sips:user@example.com" and u.host == "example.net"
    assert parse_uri(u.to_str()) == u
    assert parse_uri(parse_name_addr(m.get("Contact")).uri).user == "carol"
    assert m.get("Subject") == "100% sure %zz"


_ESCNULL = _req("REGISTER", "sip:example.com",
                "Contact: <sip:%00@192.0.2.9>",
                "Content-Length: 0", cseq="REGISTER")


def _check_escnull(m):
    assert parse_uri(m.uri).user is None
    assert parse_uri(parse_name_addr(m.get("Contact")).uri).user == "\x00"


_PCTMETHOD = _req("RE%47IST%45R", "sip:registrar.example.com", "Content-Length: 0")


def _check_pctmethod(m):
    assert m.method == "RE%47IST%45R" and m.method != "REGISTER"


# --- §3.1.1.6 no LWS between display name and < ----------------------------------------------
_NOLWS = _m("OPTIONS sip:dave@example.org SIP/2.0",
            "Via: SIP/2.0/UDP client.example.net;branch=z9hG4bK.nl",
            "To: Dave<sip:dave@example.org>",
            "From: \"Carol\"<sip:carol@example.net>;tag=a",
            "Call-ID: nolws", "CSeq: 1 OPTIONS", "l: 0")


def _check_nolws(m):
    assert parse_name_addr(m.get("To")).display == "Dave"
    assert parse_name_addr(m.get("From")).display == "Carol"


# --- §3.1.1.7 long values -----------------------------------------------------------------------
_LONGTAG = "t" * 900
_LONG = _m(*(["INVITE sip:" + "u" * 300 + "@" + ("a" * 60 + ".") * 4 + "example.com SIP/2.0"]
             + ["Via: SIP/2.0/TCP relay%d.example.com;branch=z9hG4bK%s" % (i, "b" * 100) for i in range(20)]
             + ["To: \"" + "D" * 700 + "\" <sip:dave@example.org>",
                "From: <sip:carol@example.net>;tag=" + _LONGTAG,
                "Call-ID: " + "c" * 1000,
                "CSeq: 1 INVITE",
                "X-" + "h" * 200 + ": " + "v" * 3000,
                "Route: " + ", ".join(["<sip:r%d.example.com;lr>" % i for i in range(40)]),
                "Content-Length: 0"]))


def _check_long(m):
    assert len(m.get_all("Via")) == 20 and len(m.get_all("Route")) == 40
    assert parse_name_addr(m.get("From")).tag == _LONGTAG
    assert len(parse_name_addr(m.get("To")).display) == 700
    assert m.get("x-" + "H" * 200) == "v" * 3000
    assert parse_uri(m.uri).user == "u" * 300


# --- §3.1.1.8 extra trailing octets in a UDP datagram -----------------------------------------
_FIRST = _req("REGISTER", "sip:example.com", "Content-Length: 0", cseq="REGISTER")
_DOUBLE = _FIRST + _req("INVITE", "sip:dave@example.org", "Content-Length: 0")


def _check_double(m):
    assert m.method == "REGISTER" and m.body == b""


# --- §3.1.1.9 semicolon-separated parameters in the URI user part ----------------------------
_SEMIURI = _req("OPTIONS", "sip:user;par=u%40example.net@example.com", "Content-Length: 0")


def _check_semiuri(m):
    u = parse_uri(m.uri)
    assert u.user == "user;par=u@example.net" and u.host == "example.com" and u.params == {}


# --- §3.1.1.10 varied and unknown transports --------------------------------------------------
_TRANSPORTS = _m("OPTIONS sip:dave@example.org SIP/2.0",
                 "Via: SIP/2.0/UDP t1.example.com;branch=z9hG4bK.t1",
                 "Via: SIP/2.0/SCTP t2.example.com;branch=z9hG4bK.t2",
                 "Via: SIP/2.0/TLS-SCTP t3.example.com;branch=z9hG4bK.t3",
                 "Via: SIP/2.0/Quantum-Pigeon t4.example.com;branch=z9hG4bK.t4",
                 "To: <sip:dave@example.org>", "From: <sip:carol@example.net>;tag=1",
                 "Call-ID: transports", "CSeq: 1 OPTIONS", "Content-Length: 0")


def _check_transports(m):
    assert [parse_via(v).transport for v in m.get_all("Via")] == ["UDP", "SCTP", "TLS-SCTP", "QUANTUM-PIGEON"]


# --- §3.1.1.11 multipart MIME body with binary octets ----------------------------------------
_MIME = (b"--b0undary\r\nContent-Type: application/sdp\r\n\r\nv=0\r\n"
         b"--b0undary\r\nContent-Type: application/octet-stream\r\n\r\n\x00\x01\xfe\xff\r\n\r\n\x80"
         b"\r\n--b0undary--\r\n")
_MPART = _req("MESSAGE", "sip:dave@example.org",
              "Content-Type: multipart/mixed;boundary=b0undary",
              "Content-Length: %d" % len(_MIME), body=_MIME)


def _check_mpart(m):
    assert m.body == _MIME


# --- §3.1.1.12/13 unusual and empty reason phrases -------------------------------------------
_RESP_CORE = ("Via: SIP/2.0/UDP client.example.net;branch=z9hG4bK.r1",
              "From: <sip:carol@example.net>;tag=1", "To: <sip:dave@example.org>;tag=2",
              "Call-ID: reasons", "CSeq: 5 INVITE", "Content-Length: 0")
_UNREASON = _m(*(("SIP/2.0 183 \u201cbusy\u201d \u043f\u043e\u0434\u043e\u0436\u0434\u0438 \t %41 100%",)
                 + _RESP_CORE))
_NOREASON = _m(*(("SIP/2.0 100 ",) + _RESP_CORE))


def _check_unreason(m):
    assert m.status == 183 and m.reason == "\u201cbusy\u201d \u043f\u043e\u0434\u043e\u0436\u0434\u0438 \t %41 100%"


def _check_noreason(m):
    assert m.status == 100 and m.reason == ""


# --- unknown URI schemes (Request-URI and To), tel: Request-URI --------------------------------
_UNKSCHEME = _m("OPTIONS urn:isbn:0-00-000000-0 SIP/2.0",
                "Via: SIP/2.0/UDP client.example.net;branch=z9hG4bK.u1",
                "To: urn:isbn:0-00-000000-0", "From: <sip:carol@example.net>;tag=1",
                "Contact: <mailto:carol@example.net>",
                "Call-ID: unkscheme", "CSeq: 1 OPTIONS", "Content-Length: 0")


def _check_unkscheme(m):
    assert m.uri == "urn:isbn:0-00-000000-0"
    try:
        parse_uri(m.uri)
    except ParseError as e:
        assert "scheme" in e.reason
    else:
        raise AssertionError("urn: parsed as a SIP URI")
    assert parse_name_addr(m.get("To")).uri == "urn:isbn:0-00-000000-0"


_TELURI = _req("INVITE", "tel:+1-201-555-0123;phone-context=example.com", "Content-Length: 0")


def _check_tel(m):
    u = parse_uri(m.uri)
    assert u.scheme == "tel" and u.user == "+1-201-555-0123" and u.params["phone-context"] == "example.com"


# --- null body with and without Content-Length, smaller/zero Content-Length on UDP -------------
_NOCL = _req("OPTIONS", "sip:dave@example.org")
_ZEROCL = _req("OPTIONS", "sip:dave@example.org", "Content-Length: 0", body=b"ignored trailing octets")
_SMALLCL = _req("MESSAGE", "sip:dave@example.org", "Content-Type: text/plain", "Content-Length: 5",
                body=b"hello world")


def _check_empty(m):
    assert m.body == b""


def _check_small(m):
    assert m.body == b"hello"


# --- IPv6 everywhere -------------------------------------------------------------------------
_IPV6 = _m("REGISTER sip:[2001:db8::10]:5070;transport=udp SIP/2.0",
           "Via: SIP/2.0/UDP [2001:db8::9:1]:5060;branch=z9hG4bK.v6;received=[2001:db8::9:255]",
           "To: <sip:user@[2001:db8::10]>", "From: <sip:user@[2001:db8::10]>;tag=v6",
           "Call-ID: v6@[2001:db8::9:1]", "CSeq: 1 REGISTER",
           "Contact: \"v6\" <sip:user@[2001:db8::9:1]:5060>;expires=60", "Content-Length: 0")


def _check_ipv6(m):
    u = parse_uri(m.uri)
    assert u.host == "[2001:db8::10]" and u.port == 5070 and u.params["transport"] == "udp"
    v = parse_via(m.get("Via"))
    assert v.host == "[2001:db8::9:1]" and v.port == 5060 and v.params["received"] == "[2001:db8::9:255]"
    assert parse_uri(parse_name_addr(m.get("Contact")).uri).host == "[2001:db8::9:1]"


# --- multiple values in one header line, and one value per line -------------------------------
_MULTI = _m("INVITE sip:dave@example.org SIP/2.0",
            "Via: SIP/2.0/UDP a.example.com;branch=z9hG4bK.a,SIP/2.0/UDP b.example.com;branch=z9hG4bK.b",
            "v: SIP/2.0/UDP c.example.com;branch=z9hG4bK.c",
            "To: <sip:dave@example.org>", "From: \"Carol, Esq.\" <sip:carol@example.net>;tag=m",
            "Call-ID: multi", "CSeq: 1 INVITE",
            "Supported: timer,100rel , path",
            "Allow: INVITE, ACK, CANCEL, OPTIONS, BYE",
            "Record-Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>;x=\"a,b\"",
            "Contact: <sip:carol@c.example.net>;q=0.5, \"Alt, C\" <sip:alt@c.example.net>;q=0.1",
            "Content-Length: 0")


def _check_multi(m):
    assert [parse_via(v).host for v in m.get_all("Via")] == ["a.example.com", "b.example.com", "c.example.com"]
    assert m.get_all("Supported") == ["timer", "100rel", "path"]
    assert len(m.get_all("Allow")) == 5
    assert m.get_all("Record-Route")[1] == "<sip:p2.example.com;lr>;x=\"a,b\""
    assert parse_name_addr(m.get_all("Contact")[1]).display == "Alt, C"
    assert parse_name_addr(m.get("From")).display == "Carol, Esq."


VALID = [
    ("tortuous", _TORTUOUS, _check_tortuous),
    ("wide-chars", _WIDE, _check_wide),
    ("escaped-uri", _ESC, _check_esc),
    ("escaped-nul", _ESCNULL, _check_escnull),
    ("percent-method", _PCTMETHOD, _check_pctmethod),
    ("no-lws-display", _NOLWS, _check_nolws),
    ("long-values", _LONG, _check_long),
    ("udp-trailing-octets", _DOUBLE, _check_double),
    ("semicolon-user", _SEMIURI, _check_semiuri),
    ("transports", _TRANSPORTS, _check_transports),
    ("multipart", _MPART, _check_mpart),
    ("unusual-reason", _UNREASON, _check_unreason),
    ("empty-reason", _NOREASON, _check_noreason),
    ("unknown-scheme", _UNKSCHEME, _check_unkscheme),
    ("tel-ruri", _TELURI, _check_tel),
    ("no-content-length", _NOCL, _check_empty),
    ("zero-content-length", _ZEROCL, _check_empty),
    ("smaller-content-length", _SMALLCL, _check_small),
    ("ipv6", _IPV6, _check_ipv6),
    ("multi-values", _MULTI, _check_multi),
]


def _swap(data, old, new):
    if old not in data:
        raise ValueError("torture template lacks %r" % old)
    return data.replace(old, new, 1)


_BASE = _req("INVITE", "sip:dave@example.org", "Contact: <sip:carol@192.0.2.7>",
             "Content-Type: text/plain", "Content-Length: 4", body=b"body")

INVALID = [
    # §3.1.2.1 extraneous header field separators
    ("extra-separators-contact", _swap(_BASE, b"Contact: <sip:carol@192.0.2.7>",
                                       b"Contact: \"Carol\" <sip:carol@192.0.2.7>;;;;"), True),
    ("extra-separators-via", _swap(_BASE, b"z9hG4bK.tt1", b"z9hG4bK.tt1;;,;,,"), False),
    ("extra-separators-list", _swap(_BASE, b"Contact: <sip:carol@192.0.2.7>",
                                    b"Contact: <sip:carol@192.0.2.7>,,<sip:c2@192.0.2.7>"), True),
    # §3.1.2.2 Content-Length larger than the message (UDP)
    ("content-length-larger", _swap(_BASE, b"Content-Length: 4", b"Content-Length: 9999"), True),
    # §3.1.2.3 negative Content-Length
    ("content-length-negative", _swap(_BASE, b"Content-Length: 4", b"Content-Length: -4"), True),
    ("content-length-garbage", _swap(_BASE, b"Content-Length: 4", b"Content-Length: four"), True),
    # §3.1.2.4 request scalar fields with overlarge values
    ("overlarge-cseq", _swap(_BASE, b"CSeq: 11 INVITE", b"CSeq: 73786976294838206464 INVITE"), True),
    ("overlarge-cseq-2", _swap(_BASE, b"CSeq: 11 INVITE", b"CSeq: 2147483648 INVITE"), True),
    ("overlarge-max-forwards", _swap(_BASE, b"Max-Forwards: 70", b"Max-Forwards: 256"), True),
    ("overlarge-expires", _swap(_BASE, b"Content-Type", b"Expires: 99999999999999999999\r\nContent-Type"), True),
    ("overlarge-via-port", _swap(_BASE, b"client.example.net:5060", b"client.example.net:65536"), False),
    # §3.1.2.5 response scalar fields with overlarge values
    ("response-overlarge-cseq", _m(*(("SIP/2.0 503 Service Unavailable",) + _RESP_CORE[:4]
                                     + ("CSeq: 99999999999999999999 INVITE", "Content-Length: 0"))), None),
    ("response-overlarge-code", _m(*(("SIP/2.0 4294967299 Nope",) + _RESP_CORE)), None),
    ("response-code-range", _m(*(("SIP/2.0 099 Too Low",) + _RESP_CORE)), None),
    ("response-code-long", _m(*(("SIP/2.0 1000 Too High",) + _RESP_CORE)), None),
    # §3.1.2.6 unterminated quoted string in a display name
    ("unterminated-quote", _swap(_BASE, b"From: <sip:carol@example.net>;tag=tt1",
                                 b"From: \"Carol <sip:carol@example.net>;tag=tt1"), True),
    # §3.1.2.7 <> enclosing the Request-URI
    ("ltgt-request-uri", _swap(_BASE, b"INVITE sip:dave@example.org SIP/2.0",
                               b"INVITE <sip:dave@example.org> SIP/2.0"), True),
    # §3.1.2.8 LWS inside the Request-URI
    ("lws-request-uri", _swap(_BASE, b"INVITE sip:dave@example.org SIP/2.0",
                              b"INVITE sip:dave@example.org; lr SIP/2.0"), True),
    # §3.1.2.9 several SP between request-line elements
    ("multiple-sp-request-line", _swap(_BASE, b"INVITE sip:dave@example.org SIP/2.0",
                                       b"INVITE  sip:dave@example.org  SIP/2.0"), True),
    # §3.1.2.10 SP at the end of the request line
    ("trailing-sp-request-line", _swap(_BASE, b"SIP/2.0\r\n", b"SIP/2.0 \r\n"), True),
    # §3.1.2.11 escaped headers in a SIP Request-URI
    ("headers-in-request-uri", _swap(_BASE, b"INVITE sip:dave@example.org SIP/2.0",
                                     b"INVITE sip:dave@example.org?Route=%3Csip:evil.example.com%3E SIP/2.0"), True),
    # §3.1.2.13 failure to enclose a name-addr URI in <>
    ("unenclosed-contact-uri", _swap(_BASE, b"Contact: <sip:carol@192.0.2.7>",
                                     b"Contact: sip:carol@192.0.2.7?Route=%3Csip:p.example.com%3E"), True),
    ("unenclosed-to-with-display", _swap(_BASE, b"To: <sip:dave@example.org>",
                                         b"To: Dave sip:dave@example.org"), True),
    # §3.1.2.14 spaces within an addr-spec
    ("spaces-in-addr-spec", _swap(_BASE, b"To: <sip:dave@example.org>",
                                  b"To: < sip:dave@example.org >"), True),
    # §3.1.2.15 non-token characters in an unquoted display name
    ("non-token-display", _swap(_BASE, b"From: <sip:carol@example.net>;tag=tt1",
                                b"From: Carol, The Tester <sip:carol@example.net>;tag=tt1"), True),
    # §3.1.2.16 unknown protocol version (505)
    ("unknown-version", _swap(_BASE, b"SIP/2.0\r\n", b"SIP/8.1\r\n"), True),
    # §3.1.2.17/18 start line and CSeq method mismatch, also for an unknown method
    ("cseq-method-mismatch", _swap(_BASE, b"CSeq: 11 INVITE", b"CSeq: 11 OPTIONS"), True),
    ("unknown-method-mismatch", _swap(_BASE, b"INVITE sip:", b"FROBNICATE sip:"), True),
    # malformed SIP-Version, missing scheme, bad method token
    ("malformed-version", _swap(_BASE, b"SIP/2.0\r\n", b"SIP/2..0\r\n"), True),
    ("malformed-version-2", _swap(_BASE, b"SIP/2.0\r\n", b"SIP2.0\r\n"), True),
    ("request-uri-without-scheme", _swap(_BASE, b"INVITE sip:dave@example.org SIP/2.0",
                                         b"INVITE dave@example.org SIP/2.0"), True),
    ("bad-method", _swap(_BASE, b"INVITE sip:", b"INV(ITE sip:"), True),
    # missing required headers, and several values in single-valued ones
    ("missing-call-id", _swap(_BASE, b"Call-ID: torture-1@client.example.net\r\n", b""), False),
    ("missing-via", _swap(_BASE, b"Via: SIP/2.0/UDP client.example.net:5060;branch=z9hG4bK.tt1\r\n", b""), False),
    ("multiple-to", _swap(_BASE, b"To: <sip:dave@example.org>",
                          b"To: <sip:dave@example.org>\r\nTo: <sip:eve@example.org>"), True),
    ("multiple-call-id", _swap(_BASE, b"Call-ID: torture-1@client.example.net",
                               b"Call-ID: a@b\r\ni: c@d"), True),
    ("multiple-cseq", _swap(_BASE, b"CSeq: 11 INVITE", b"CSeq: 11 INVITE\r\nCSeq: 12 INVITE"), True),
    ("call-id-with-space", _swap(_BASE, b"Call-ID: torture-1@client.example.net", b"Call-ID: a b"), True),
    # framing and encoding
    ("no-blank-line", _BASE.replace(b"\r\n\r\n", b"\r\n"), False),
    ("header-without-colon", _swap(_BASE, b"Content-Type: text/plain", b"Content-Type text/plain"), False),
    ("folded-start-line", _swap(_BASE, b"SIP/2.0\r\n", b"SIP/2.0\r\n continued\r\n"), False),
    ("bad-header-name", _swap(_BASE, b"Content-Type:", b"Content Type:"), False),
    ("latin1-header", _swap(_BASE, b"From: <", b"From: \"Caf\xe9\" <"), False),
    ("bare-lf", _swap(_BASE, b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\n"), False),
    ("empty-message", b"", False),
    ("only-crlf", b"\r\n\r\n\r\n\r\n", False),
]
