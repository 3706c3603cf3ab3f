"""SIP digest authentication, client side (RFC 3261 §22.2, RFC 7616 §3.4): answer a challenge from HA1.

Used where the node acts for a user towards another server (the PBX bridge) and by the agent. Only HA1 is
needed, never the password, so the node can keep PBX credentials hashed like its own users'.
"""
from binascii import hexlify

from microwitch.sip.digest import parse_credentials, h_hex, response_hex, ALGORITHMS


def pick_challenge(values):
    """The best challenge among WWW-/Proxy-Authenticate `values`: SHA-256 before MD5 (RFC 8760 §2.4).
    Returns the parsed dict or None."""
    best = None
    for v in values:
        c = parse_credentials(v)
        if c is None or "nonce" not in c or "realm" not in c:
            continue
        alg = c.get("algorithm", "MD5").upper()
        if alg not in ALGORITHMS:
            continue
        qop = c.get("qop")
        if qop is not None and "auth" not in [q.strip() for q in qop.split(",")]:
            continue
        if best is None or ALGORITHMS.index(alg) < ALGORITHMS.index(best.get("algorithm", "MD5").upper()):
            best = c
    return best


def authorization(chal, username, ha1, method, uri, cnonce, nc=1):
    """The Authorization/Proxy-Authorization value for parsed challenge `chal` with `ha1` (hex) for its realm
    and algorithm. qop=auth when offered, else the RFC 2069 form the server asked for."""
    alg = chal.get("algorithm", "MD5").upper()
    nonce = chal["nonce"]
    parts = ['Digest username="%s"' % username, 'realm="%s"' % chal["realm"], 'nonce="%s"' % nonce,
             'uri="%s"' % uri]
    if chal.get("qop") is not None:
        nc_text = "%08x" % nc
        cn = hexlify(cnonce).decode() if isinstance(cnonce, bytes) else cnonce
        resp = response_hex(alg, ha1, nonce, nc_text, cn, "auth", method, uri)
        parts.append('response="%s"' % resp)
        parts.append("algorithm=%s" % alg)
        parts.append('cnonce="%s", qop=auth, nc=%s' % (cn, nc_text))
    else:
        resp = h_hex(alg, ha1 + ":" + nonce + ":" + h_hex(alg, method + ":" + uri))
        parts.append('response="%s"' % resp)
        parts.append("algorithm=%s" % alg)
    if chal.get("opaque") is not None:
        parts.append('opaque="%s"' % chal["opaque"])
    return ", ".join(parts)
