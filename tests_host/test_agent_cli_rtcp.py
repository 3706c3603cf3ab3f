"""The agent's human output of the `ended` event carries the RTCP figures (tools/mwcli/agent.py)."""
import io

from mwcli.agent import _Human

ENDED = {"event": "ended", "reason": "remote hangup", "secure": True, "rtp_sent": 500, "rtp_received": 498,
         "srtp_sent": 500, "srtp_received": 498,
         "rtcp": {"sent": 3, "received": 2, "rtt_ms": 12, "rtt_max_ms": 15, "withheld": 0, "dropped": 1,
                  "dropped_auth": 1, "mux": True,
                  "in": {"expected": 500, "lost": 2, "loss_pct": 0.4, "jitter_ms": 1.25},
                  "out": {"lost": 1, "fraction_pct": 0.39, "jitter_ms": 0.5}}}


def _text(ev):
    out = io.StringIO()
    _Human(out)(ev)
    return out.getvalue()


def test_ended_shows_rtcp_reports_rtt_loss_and_jitter_both_ways():
    lines = _text(ENDED).splitlines()
    assert lines[0].startswith("call ended: remote hangup (was secure; RTP sent 500, received 498")
    r = lines[1]
    assert "3 reports sent, 2 received" in r and "1 refused" in r and "rtt 12 ms" in r
    assert "in: lost 2 of 500 (0.40%), jitter 1.2 ms" in r or "in: lost 2 of 500 (0.40%), jitter 1.3 ms" in r
    assert "out (peer's view): lost 1 (0.39% last interval), jitter 0.5 ms" in r


def test_ended_without_reports_from_the_peer_or_without_media():
    ev = dict(ENDED)
    ev["rtcp"] = dict(ENDED["rtcp"], rtt_ms=None, out=None, dropped=0)
    r = _text(ev).splitlines()[1]
    assert "rtt unknown" in r and "out: no report from the peer" in r and "refused" not in r
    ev["rtcp"] = None                                   # the call never reached media
    assert len(_text(ev).splitlines()) == 1
