"""One-time provisioning links for Linphone's remote provisioning (lpconfig XML, linphone.org/xsds/lpconfig.xsd).

A token is 128 random bits, shown once (in the link and its QR code) and kept here only as its SHA-256, with
the user it is for and its expiry. `take(token)` removes it: the XML is served once per token. Tokens live in
RAM only (a restart revokes them all) and are never logged: the server logs no request paths.

The XML carries the account (identity, the node as proxy and outbound route, the digest HA1 for MD5 -- the node
never has the password, and the phone does not need it), ZRTP mandatory, and no GRUU (`supported=replaces`,
see notes on Linphone: a GRUU the proxy cannot resolve breaks in-dialog requests).
"""
from binascii import hexlify

from microwitch.compat import const, sha256
from microwitch.web.forms import xml_esc

TOKEN_TTL_S = const(900)   # a link is valid for 15 minutes
MAX_TOKENS = const(64)
_TOKEN_LEN = const(32)     # hex characters


def _key(token):
    return hexlify(sha256(token.encode()).digest()).decode()


def is_token(s):
    if len(s) != _TOKEN_LEN:
        return False
    for ch in s:
        if ch not in "0123456789abcdef":
            return False
    return True


class Tokens:
    def __init__(self, rand, ttl_s=TOKEN_TTL_S, max_tokens=MAX_TOKENS):
        self.rand = rand
        self.ttl_s = ttl_s
        self.max_tokens = max_tokens
        self._t = {}  # sha256(token) hex -> (address, expires wall s)

    def __len__(self):
        return len(self._t)

    def issue(self, address, wall):
        """A new token for `address`; any earlier unused token of that address is revoked."""
        for k in list(self._t):
            a, exp = self._t[k]
            if a == address or exp <= wall:
                del self._t[k]
        if len(self._t) >= self.max_tokens:
            first = None
            for k, v in self._t.items():
                if first is None or v[1] < self._t[first][1]:
                    first = k
            del self._t[first]
        token = hexlify(self.rand(16)).decode()
        self._t[_key(token)] = (address, wall + self.ttl_s)
        return token

    def take(self, token, wall):
        """The address the token was issued for, removing the token; None when unknown, used or expired."""
        if not is_token(token):
            return None
        rec = self._t.pop(_key(token), None)
        if rec is None or rec[1] <= wall:
            return None
        return rec[0]

    def revoke_user(self, address):
        for k in list(self._t):
            if self._t[k][0] == address:
                del self._t[k]


def _entry(name, value):
    return '  <entry name="%s" overwrite="true">%s</entry>\n' % (name, xml_esc(value))


def lpconfig(user, domain, realm, ha1, proxy_host, proxy_port, transport="udp", expires=3600, algorithm="MD5"):
    """The lpconfig XML for `user@domain` registering through the node at proxy_host:proxy_port; `ha1` is
    the digest HA1 (hex) for `algorithm` ("MD5" or "SHA-256", RFC 7616), one the node offers."""
    host = "[" + proxy_host + "]" if ":" in proxy_host else proxy_host
    proxy = "sip:%s:%d;transport=%s" % (host, proxy_port, transport)
    out = ['<?xml version="1.0" encoding="UTF-8"?>\n'
           '<config xmlns="http://www.linphone.org/xsds/lpconfig.xsd">\n',
           '<section name="sip">\n', _entry("default_proxy", "0"), _entry("media_encryption", "zrtp"),
           _entry("media_encryption_mandatory", "1"), _entry("supported", "replaces"),
           '</section>\n<section name="proxy_0">\n',
           _entry("reg_proxy", "<" + proxy + ">"), _entry("reg_route", "<" + proxy + ";lr>"),
           _entry("reg_identity", "<sip:%s@%s>" % (user, domain)), _entry("reg_expires", str(expires)),
           _entry("reg_sendregister", "1"), _entry("realm", realm),
           '</section>\n<section name="auth_info_0">\n',
           _entry("username", user), _entry("ha1", ha1), _entry("algorithm", algorithm), _entry("realm", realm),
           _entry("domain", domain),
           '</section>\n</config>\n']
    return "".join(out)
