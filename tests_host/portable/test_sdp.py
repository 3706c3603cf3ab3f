"""SDP offer/answer (RFC 3264) with a=zrtp-hash (RFC 6189 §8.1): microwitch.agent.sdp."""
from microwitch.agent import sdp

HASH = "1.10 " + "ab" * 32

LINPHONE_OFFER = (b"v=0\r\no=bob 1 2 IN IP4 127.0.0.1\r\ns=Talk\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                  b"a=rtcp-xr:rcvr-rtt=all:10000\r\n"
                  b"m=audio 7078 RTP/AVP 96 97 98 0 8 18 101 99 100\r\n"
                  b"a=rtpmap:96 opus/48000/2\r\na=rtpmap:97 speex/16000\r\na=rtpmap:98 speex/8000\r\n"
                  b"a=rtpmap:101 telephone-event/48000\r\na=rtpmap:99 telephone-event/16000\r\n"
                  b"a=rtpmap:100 telephone-event/8000\r\na=zrtp-hash:" + HASH.encode() + b"\r\n"
                  b"m=video 9078 RTP/AVP 96\r\na=rtpmap:96 VP8/90000\r\n")


def test_offer_roundtrip():
    body = sdp.offer("192.0.2.1", 40000, 7, 1, HASH)
    s = sdp.parse(body)
    assert s.conn == "192.0.2.1"
    m = s.media[0]
    assert (m.kind, m.port, m.proto) == ("audio", 40000, "RTP/AVP")
    assert m.fmts == [0, 8, 101]
    assert m.codec(0) == "PCMU" and m.codec(8) == "PCMA" and m.codec(101) == "TELEPHONE-EVENT"
    assert m.zrtp_hash == HASH
    assert b"a=zrtp-hash:" + HASH.encode() + b"\r\n" in body
    assert body.endswith(b"\r\n")


def test_offer_without_zrtp_has_no_hash():
    body = sdp.offer("192.0.2.1", 40000, 7, 1, None, codecs=("PCMA",))
    assert b"zrtp-hash" not in body
    assert sdp.parse(body).media[0].fmts == [8, 101]


def test_answer_picks_offerers_first_supported_codec_and_refuses_video():
    body, res = sdp.answer(sdp.parse(LINPHONE_OFFER), "192.0.2.9", 5004, 1, 1, HASH)
    assert res["codec"] == "PCMU" and res["pt"] == 0
    assert res["addr"] == "127.0.0.1" and res["port"] == 7078
    assert res["zrtp_hash"] == HASH
    # the telephone-event at 8000 Hz would be best, but we keep the first one the offer lists
    assert res["dtmf_pt"] == 101
    a = sdp.parse(body)
    assert len(a.media) == 2
    assert a.media[0].port == 5004 and a.media[0].fmts == [0, 101]
    assert a.media[1].kind == "video" and a.media[1].port == 0
    assert a.media[0].zrtp_hash == HASH


def test_answer_result_for_offerer():
    offer = sdp.offer("192.0.2.1", 40000, 7, 1, HASH)
    body, _ = sdp.answer(sdp.parse(offer), "192.0.2.2", 40002, 9, 1, None, codecs=("PCMA",))
    res = sdp.answer_result(sdp.parse(body))
    assert res["codec"] == "PCMA" and res["pt"] == 8 and res["port"] == 40002 and res["addr"] == "192.0.2.2"
    assert res["zrtp_hash"] is None


def test_media_level_connection_overrides_session():
    body = (b"v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n"
            b"m=audio 4000 RTP/AVP 8\r\nc=IN IP4 10.0.0.2\r\na=sendonly\r\n")
    b, res = sdp.answer(sdp.parse(body), "10.0.0.3", 5000, 1, 1)
    assert res["addr"] == "10.0.0.2" and res["codec"] == "PCMA" and res["direction"] == "sendonly"
    assert b"a=recvonly" in b


def _raises(fn, *args):
    try:
        fn(*args)
    except sdp.SdpError as e:
        return e.reason
    return None


def test_no_common_codec_is_an_error():
    body = b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\nm=audio 4000 RTP/AVP 96\r\n" \
           b"a=rtpmap:96 opus/48000/2\r\n"
    r = _raises(sdp.answer, sdp.parse(body), "1.2.3.5", 5000, 1, 1)
    assert r is not None and "codec" in r
    srtp_only = body.replace(b"RTP/AVP 96", b"RTP/SAVP 0")
    assert _raises(sdp.answer, sdp.parse(srtp_only), "1.2.3.5", 5000, 1, 1) is not None


def test_rejected_answer_is_an_error():
    body = b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\nm=audio 0 RTP/AVP 0\r\n"
    assert _raises(sdp.answer_result, sdp.parse(body)) is not None


def test_parse_errors_have_reasons():
    assert _raises(sdp.parse, b"o=- 1 1 IN IP4 1.2.3.4\r\n") == "missing v= line"
    assert _raises(sdp.parse, b"v=0\r\nm=audio x RTP/AVP 0\r\n") == "bad media port"
    assert _raises(sdp.parse, b"v=0\r\nc=IN IP4\r\n") == "bad c= line"
    assert _raises(sdp.parse, b"v=0\r\nnonsense\r\n") == "bad SDP line"
    assert _raises(sdp.parse, b"\xff\xfe") == "SDP is not UTF-8"
    assert _raises(sdp.parse, b"v=0\r\n" + b"a=x\r\n" * 3000) == "SDP too large"
    assert _raises(sdp.parse, b"v=0\r\nm=audio 4000 RTP/AVP 300\r\n") == "bad payload type"
    # no connection address anywhere: usable only as an error
    body = b"v=0\r\nm=audio 4000 RTP/AVP 0\r\n"
    assert _raises(sdp.answer, sdp.parse(body), "1.2.3.5", 5000, 1, 1) == "no connection address"


def test_answer_keeps_offer_mline_order():
    body = (b"v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n"
            b"m=video 5000 RTP/AVP 96\r\nm=audio 4000 RTP/AVP 8 0\r\n")
    b, res = sdp.answer(sdp.parse(body), "10.0.0.3", 6000, 1, 1)
    a = sdp.parse(b)
    assert [(m.kind, m.port) for m in a.media] == [("video", 0), ("audio", 6000)]
    assert res["codec"] == "PCMA" and a.media[1].fmts == [8]


def test_rtcp_mux_offered_accepted_and_a_rtcp_port():
    # we offer rtcp-mux (RFC 5761) and say our RTCP port is the media port (RFC 3605)
    body = sdp.offer("192.0.2.1", 40000, 7, 1, HASH)
    assert b"a=rtcp:40000\r\n" in body and b"a=rtcp-mux\r\n" in body
    m = sdp.parse(body).media[0]
    assert m.rtcp_mux and m.rtcp_port == 40000
    # an answerer that accepts it; the offerer then multiplexes
    ans, res = sdp.answer(sdp.parse(body), "192.0.2.2", 40002, 9, 1)
    assert res["rtcp_mux"] and b"a=rtcp-mux\r\n" in ans and b"a=rtcp:40002\r\n" in ans
    assert sdp.answer_result(sdp.parse(ans))["rtcp_mux"]
    # Linphone offers neither: no mux in our answer, its RTCP is at port + 1 (rtcp_port None)
    ans, res = sdp.answer(sdp.parse(LINPHONE_OFFER), "192.0.2.9", 5004, 1, 1, HASH)
    assert not res["rtcp_mux"] and res["rtcp_port"] is None and res["rtcp_addr"] == "127.0.0.1"
    assert b"a=rtcp-mux" not in ans and b"a=rtcp:5004\r\n" in ans
    # an answer without a=rtcp-mux: no mux, whatever we offered
    plain = (b"v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n"
             b"m=audio 4000 RTP/AVP 0\r\na=rtcp:4011 IN IP4 10.0.0.9\r\n")
    res = sdp.answer_result(sdp.parse(plain))
    assert not res["rtcp_mux"] and res["rtcp_port"] == 4011 and res["rtcp_addr"] == "10.0.0.9"
    # a broken a=rtcp is ignored (RTCP then goes to port + 1)
    broken = plain.replace(b"a=rtcp:4011 IN IP4 10.0.0.9", b"a=rtcp:99999")
    assert sdp.answer_result(sdp.parse(broken))["rtcp_port"] is None


def _offer_dir(direction, codecs=b"0 8", addr=b"10.0.0.1", port=b"4000"):
    return (b"v=0\r\no=- 1 2 IN IP4 " + addr + b"\r\ns=-\r\nc=IN IP4 " + addr + b"\r\nt=0 0\r\n"
            b"m=audio " + port + b" RTP/AVP " + codecs + b"\r\n" + (b"a=" + direction + b"\r\n" if direction else b""))


def test_answer_direction_follows_the_offer_rfc3264_6_1():
    # sendonly (hold) -> recvonly, recvonly -> sendonly, inactive -> inactive, sendrecv or none -> sendrecv
    for offered, answered in ((b"sendonly", b"recvonly"), (b"recvonly", b"sendonly"), (b"inactive", b"inactive"),
                              (b"sendrecv", b"sendrecv"), (None, b"sendrecv")):
        body, res = sdp.answer(sdp.parse(_offer_dir(offered)), "10.0.0.3", 5000, 1, 1)
        a = sdp.parse(body).media[0]
        assert a.direction == answered.decode(), (offered, body)
        assert res["direction"] == (offered or b"sendrecv").decode()
        assert body.count(b"a=sendrecv") + body.count(b"a=sendonly") + body.count(b"a=recvonly") + \
            body.count(b"a=inactive") == 1


def test_reoffer_answer_changes_codec_address_and_version_only():
    first, r1 = sdp.answer(sdp.parse(_offer_dir(None)), "10.0.0.3", 5000, 77, 1, HASH)
    again, r2 = sdp.answer(sdp.parse(_offer_dir(b"sendonly", b"8 0", b"10.0.0.9", b"4100")), "10.0.0.3", 5000,
                           77, 2, HASH)
    assert (r1["codec"], r1["addr"], r1["port"]) == ("PCMU", "10.0.0.1", 4000)
    assert (r2["codec"], r2["addr"], r2["port"]) == ("PCMA", "10.0.0.9", 4100)
    s1, s2 = sdp.parse(first), sdp.parse(again)
    assert s1.origin.split()[1:3] == ["77", "1"] and s2.origin.split()[1:3] == ["77", "2"]
    assert s1.media[0].port == s2.media[0].port == 5000 and s2.media[0].zrtp_hash == HASH
    assert s2.media[0].direction == "recvonly" and s2.media[0].fmts == [8]


def test_reoffer_mirrors_the_sessions_m_lines_with_our_audio_sendrecv():
    # a re-INVITE without SDP (RFC 3261 §14.2): our new offer keeps the m= lines of the session (RFC 3264 §8)
    body = sdp.reoffer(sdp.parse(LINPHONE_OFFER), "192.0.2.9", 5004, 3, 4, HASH)
    s = sdp.parse(body)
    assert s.origin.split()[1:3] == ["3", "4"]
    assert [(m.kind, m.port) for m in s.media] == [("audio", 5004), ("video", 0)]
    a = s.media[0]
    assert a.fmts == [0, 8, 101] and a.direction == "sendrecv" and a.zrtp_hash == HASH and not a.rtcp_mux
    # the peer's answer to it is read like any answer
    ans, res = sdp.answer(s, "127.0.0.1", 7078, 1, 5, None, codecs=("PCMA",))
    assert sdp.answer_result(sdp.parse(ans))["codec"] == "PCMA"
    no_audio = b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\nm=video 0 RTP/AVP 96\r\n"
    assert _raises(sdp.reoffer, sdp.parse(no_audio), "1.2.3.5", 5000, 1, 1) is not None
