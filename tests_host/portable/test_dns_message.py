"""DNS message codec (RFC 1035 §4): round trips, compression, and every refusal is a DnsError with a reason."""
from microwitch.dns import message as dm
from microwitch.dns.message import Message, Record, DnsError


def _reply(qid=7, name="b.test", qtype=dm.SRV, answers=(), authority=(), additional=(), flags=0x8180):
    return Message(qid, flags, [(name, qtype, dm.IN)], list(answers), list(authority), list(additional))


def _refused(data, udp=True):
    try:
        dm.decode(data, udp)
    except DnsError as e:
        return e.reason
    return None


def test_query_wire_format():
    q = dm.query(0x1234, "Example.ORG", dm.NAPTR)
    assert q[:12] == b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
    assert q[12:] == b"\x07example\x03org\x00\x00\x23\x00\x01"
    m = dm.decode(q)
    assert m.questions == [("example.org", dm.NAPTR, dm.IN)] and not m.qr


def test_round_trip_all_types_with_compression():
    soa = ("ns.b.test", "hostmaster.b.test", 1, 3600, 600, 86400, 30)
    m = _reply(name="b.test", qtype=dm.NAPTR, answers=[
        Record("b.test", dm.NAPTR, 300, (10, 20, "s", "SIP+D2U", "", "_sip._udp.b.test")),
        Record("_sip._udp.b.test", dm.SRV, 300, (10, 60, 5060, "node1.b.test")),
        Record("node1.b.test", dm.A, 300, "10.0.0.2"),
        Record("node1.b.test", dm.AAAA, 300, "fd00::2"),
        Record("alias.b.test", dm.CNAME, 300, "node1.b.test")],
        authority=[Record("b.test", dm.SOA, 300, soa)])
    wire = dm.encode(m)
    plain = dm.encode(m, compress=False)
    assert len(wire) < len(plain)          # compression was used
    assert b"\xc0\x0c" in wire             # a pointer back to the question name
    for data in (wire, plain):
        d = dm.decode(data)
        assert d.id == 7 and d.qr and d.rcode == dm.NOERROR and not d.tc
        assert [(r.name, r.type, r.ttl, r.data) for r in d.answers] == [
            ("b.test", dm.NAPTR, 300, (10, 20, "s", "SIP+D2U", "", "_sip._udp.b.test")),
            ("_sip._udp.b.test", dm.SRV, 300, (10, 60, 5060, "node1.b.test")),
            ("node1.b.test", dm.A, 300, "10.0.0.2"),
            ("node1.b.test", dm.AAAA, 300, "fd00::2"),
            ("alias.b.test", dm.CNAME, 300, "node1.b.test")]
        assert d.authority[0].data == soa


def test_names_are_lower_case_and_ttl_top_bit_is_zero():
    m = _reply(name="B.Test", qtype=dm.A, answers=[Record("NODE.b.test", dm.A, 0x80000001, "1.2.3.4")])
    d = dm.decode(dm.encode(m))
    assert d.questions[0][0] == "b.test" and d.answers[0].name == "node.b.test"
    assert d.answers[0].ttl == 0  # RFC 2181 §8


def test_ip6_text():
    assert dm.ip6_text(dm.ip6_bytes("2001:db8::1")) == "2001:db8::1"
    assert dm.ip6_text(dm.ip6_bytes("::")) == "::"
    assert dm.ip6_text(dm.ip6_bytes("1:0:0:2:0:0:0:3")) == "1:0:0:2::3"
    assert dm.ip6_text(dm.ip6_bytes("1:2:3:4:5:6:7:8")) == "1:2:3:4:5:6:7:8"


def test_looping_compression_is_refused():
    # header, then a question name that is a pointer to itself
    data = b"\x00\x07\x81\x80\x00\x01\x00\x00\x00\x00\x00\x00" + b"\xc0\x0c" + b"\x00\x01\x00\x01"
    assert "does not point backwards" in _refused(data)
    # two labels pointing at each other: the second points forward
    hdr = b"\x00\x07\x81\x80\x00\x01\x00\x00\x00\x00\x00\x00"
    data = hdr + b"\x01a\xc0\x10" + b"\x01b\xc0\x0c" + b"\x00\x01\x00\x01"
    assert "does not point backwards" in _refused(data)


def test_pointer_chain_is_bounded():
    # record 1 (unknown type 99) carries a chain of 20 pointers in its data, each pointing at the previous
    # one (all backwards, so no loop); record 2's name points at the last link: too many hops
    hdr = b"\x00\x07\x81\x80\x00\x01\x00\x02\x00\x00\x00\x00"
    question = b"\x00\x00\x01\x00\x01"            # root, A, IN at offsets 12..16
    chain = bytearray(b"\xc0\x0c")
    for k in range(1, 20):
        chain.extend(bytes([0xC0, 28 + 2 * (k - 1)]))  # rdata starts at offset 28
    rec1 = b"\x00\x00\x63\x00\x01\x00\x00\x00\x3c" + bytes([0, len(chain)]) + bytes(chain)
    rec2 = bytes([0xC0, 28 + 2 * 19]) + b"\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04\x0a\x00\x00\x01"
    data = hdr + question + rec1 + rec2
    assert "compression pointers" in _refused(data)
    # the same with a short chain (5 links) decodes: the bound is about hops, not pointers as such
    short = bytes([0xC0, 28 + 2 * 4]) + rec2[2:]
    d = dm.decode(hdr + question + rec1 + short)
    assert d.answers[1].name == "" and d.answers[1].data == "10.0.0.1"


def test_oversized_udp_and_short_and_truncated_records():
    big = _reply(qtype=dm.A, answers=[Record("b.test", dm.A, 60, "10.0.0.%d" % k) for k in range(40)])
    wire = dm.encode(big)
    assert len(wire) > dm.MAX_UDP
    assert "oversized" in _refused(wire)
    assert dm.decode(wire, udp=False).answers[39].data == "10.0.0.39"  # over TCP it is fine
    assert "header" in _refused(b"\x00\x01\x81")
    ok = dm.encode(_reply(qtype=dm.A, answers=[Record("b.test", dm.A, 60, "10.0.0.1")]))
    for cut in range(13, len(ok)):
        assert _refused(ok[:cut]) is not None
    assert "garbage" in _refused(ok + b"\x00")


def test_bad_rdata_lengths():
    ok = bytearray(dm.encode(_reply(qtype=dm.A, answers=[Record("b.test", dm.A, 60, "10.0.0.1")])))
    ok[-6] = 0
    ok[-5] = 3  # rdlength 3 for an A record
    assert _refused(bytes(ok)) is not None


def test_too_many_records_and_questions():
    m = _reply(qtype=dm.A, answers=[Record("b.test", dm.A, 60, "10.0.0.1")])
    wire = bytearray(dm.encode(m, compress=False))
    wire[6] = 1  # claims 256+ answers
    assert "records" in _refused(bytes(wire))
    wire = bytearray(dm.encode(m))
    wire[5] = 2
    assert "questions" in _refused(bytes(wire))


def test_reserved_label_type_and_bad_bytes():
    hdr = b"\x00\x07\x81\x80\x00\x01\x00\x00\x00\x00\x00\x00"
    assert "reserved label" in _refused(hdr + b"\x40\x00\x00\x01\x00\x01")
    assert "byte" in _refused(hdr + b"\x03a.b\x00\x00\x01\x00\x01")
    assert "byte" in _refused(hdr + b"\x03a\x00b\x00\x00\x01\x00\x01")


def test_long_name_refused_on_decode_and_encode():
    hdr = b"\x00\x07\x81\x80\x00\x01\x00\x00\x00\x00\x00\x00"
    name = (b"\x3f" + b"a" * 63) * 4 + b"\x00"  # 257 octets
    assert "longer" in _refused(hdr + name + b"\x00\x01\x00\x01")
    try:
        dm.query(1, ("a" * 63 + ".") * 4 + "b", dm.A)
        raised = False
    except DnsError:
        raised = True
    assert raised


def test_truncated_reply_keeps_header_and_question():
    m = _reply(flags=0x8380, qtype=dm.SRV, name="_sip._udp.b.test")
    wire = dm.encode(m) + b"\x00\x01"   # junk after the question is ignored under TC
    d = dm.decode(wire)
    assert d.tc and d.questions[0][0] == "_sip._udp.b.test"


def test_check_reply_rejects_wrong_id_and_question():
    d = dm.decode(dm.encode(_reply(qid=9, name="b.test", qtype=dm.A)))
    dm.check_reply(d, 9, "b.test", dm.A)
    for args, word in (((8, "b.test", dm.A), "ID"), ((9, "c.test", dm.A), "question"),
                       ((9, "b.test", dm.AAAA), "question")):
        try:
            dm.check_reply(d, *args)
            reason = None
        except DnsError as e:
            reason = e.reason
        assert reason is not None and word in reason
    q = dm.decode(dm.query(9, "b.test", dm.A))
    try:
        dm.check_reply(q, 9, "b.test", dm.A)
        reason = None
    except DnsError as e:
        reason = e.reason
    assert "not a reply" in reason


def test_tcp_frame():
    assert dm.tcp_frame(b"abc") == b"\x00\x03abc"
