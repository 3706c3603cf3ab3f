"""Flow tokens carried in our Record-Route user part (the idea of RFC 5626 §5.3, for any phone).

A token names the two flows a dialog crosses the node on: where the dialog-creating request came from
(`a`) and where it went (`b`), each `(proto, host, port)`. An in-dialog request that arrives on one of them is
sent out on the other, so phones behind NAT stay reachable for BYE and re-INVITE without trusting the private
address in their Contact. An HMAC keeps outsiders from minting tokens that would make the node relay to
arbitrary addresses.
"""
from binascii import hexlify, unhexlify
from microwitch.compat import const, sha256
from microwitch.compat import hmac

PREFIX = "mw"
_MAC_BYTES = const(8)
_MAX_TOKEN = const(200)


def _flow_bytes(f):
    return ("%s|%s|%d" % (f[0], f[1], f[2])).encode()


def make(key, a, b):
    """Token for flows a -> b (hex, URI-user safe)."""
    body = _flow_bytes(a) + b"/" + _flow_bytes(b)
    return PREFIX + hexlify(body).decode() + "." + hexlify(hmac(sha256, key, body)[:_MAC_BYTES]).decode()


def _parse_flow(raw):
    parts = raw.split(b"|")
    if len(parts) != 3 or parts[0] not in (b"udp", b"tcp"):
        return None
    port = int(parts[2])
    if not 0 < port < 65536:
        return None
    return (parts[0].decode(), parts[1].decode(), port)


def parse(key, token):
    """(a, b) from a token made with `key`, or None for anything else (never raises)."""
    if not token or len(token) > _MAX_TOKEN or not token.startswith(PREFIX):
        return None
    body_hex, _, mac_hex = token[len(PREFIX):].partition(".")
    try:
        body = unhexlify(body_hex)
        mac = unhexlify(mac_hex)
        want = hmac(sha256, key, body)[:_MAC_BYTES]
        diff = len(mac) ^ len(want)
        for x, y in zip(mac, want):
            diff |= x ^ y
        if diff:
            return None
        a, _, b = body.partition(b"/")
        fa = _parse_flow(a)
        fb = _parse_flow(b)
    except (ValueError, UnicodeError):
        return None
    if fa is None or fb is None:
        return None
    return fa, fb


def other_side(flows, source):
    """The flow to use for a request arriving from `source` (proto, host, port), or None if it came
    from neither end (then normal routing applies)."""
    a, b = flows
    if source[1] == a[1] and source[2] == a[2]:
        return b
    if source[1] == b[1] and source[2] == b[2]:
        return a
    return None
