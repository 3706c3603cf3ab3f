"""HTML form and HTTP helpers with hard limits: urlencoded bodies (HTML 5 §4.10.21.7), cookies (RFC 6265),
HTML escaping. Nothing here raises anything but FormError on bad input."""
from microwitch.compat import const

MAX_BODY = const(4096)     # bytes of a form post; every form here is a few short fields
MAX_FIELDS = const(16)
MAX_FIELD = const(512)     # characters of one decoded value (a per-field check may be stricter)
_MAX_COOKIES = const(16)


class FormError(ValueError):
    """A body that is not a form we accept; str() says why."""


_HEX = "0123456789abcdefABCDEF"


def urldecode(s):
    """'a+b%21' -> 'a b!' (UTF-8); FormError on a broken escape or bad UTF-8."""
    if "%" not in s and "+" not in s:
        return s
    out = bytearray()
    i = 0
    n = len(s)
    while i < n:
        ch = s[i]
        if ch == "+":
            out.append(32)
        elif ch == "%":
            h = s[i + 1:i + 3]
            if len(h) != 2 or h[0] not in _HEX or h[1] not in _HEX:
                raise FormError("broken %-escape")
            out.append(int(h, 16))
            i += 2
        else:
            out.extend(ch.encode())
        i += 1
    try:
        return bytes(out).decode()
    except UnicodeError:
        raise FormError("not UTF-8")


def parse_form(body):
    """application/x-www-form-urlencoded bytes -> {name: value} (first value of a repeated name wins)."""
    if len(body) > MAX_BODY:
        raise FormError("form too large (over %d bytes)" % MAX_BODY)
    try:
        text = bytes(body).decode()
    except UnicodeError:
        raise FormError("not UTF-8")
    out = {}
    if not text:
        return out
    parts = text.split("&")
    if len(parts) > MAX_FIELDS:
        raise FormError("too many fields")
    for p in parts:
        if not p:
            continue
        k, _, v = p.partition("=")
        k = urldecode(k)
        v = urldecode(v)
        if len(v) > MAX_FIELD:
            v = v[:MAX_FIELD + 1]  # the field's own check reports "too long"
        if k not in out:
            out[k] = v
    return out


def parse_cookies(header):
    out = {}
    if not header:
        return out
    for i, part in enumerate(header.split(";")):
        if i >= _MAX_COOKIES:
            break
        k, _, v = part.strip().partition("=")
        if k and k not in out:
            out[k] = v.strip()
    return out


def esc(s):
    """Escape text for HTML element content and double-quoted attributes."""
    s = str(s)
    if "&" in s:
        s = s.replace("&", "&amp;")
    return s.replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;").replace("'", "&#39;")


def xml_esc(s):
    return str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
