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
