"""Node configuration: one JSON document, validated on load with messages that name the field.

`load(text, origin)` returns a complete dict (defaults filled in) or raises ConfigError. The core reads only
this dict; board adapters (UCI on OpenWrt, a file on the host) convert to it.
"""
import json

from microwitch.dns.resolver import server_error


class ConfigError(Exception):
    """A config problem; str() names the origin (file) and the field."""


# field: (kind, default, check) — kind is the JSON type accepted; check(value) -> error text or None
def _port_spec(v):
    parts = v.split(":") if isinstance(v, str) else ()
    if len(parts) < 3 or parts[0] not in ("udp", "tcp"):
        return "must look like 'udp:HOST:PORT' or 'tcp:HOST:PORT'"
    try:
        port = int(parts[-1])
    except ValueError:
        return "port must be a number"
    if not 0 <= port <= 65535:
        return "port must be 0..65535"
    err = _hostname(":".join(parts[1:-1]))
    return "host " + err if err else None


def _range(lo, hi):
    def check(v):
        if v < lo or v > hi:
            return "must be between %d and %d" % (lo, hi)
        return None
    return check


def _hostname(v):
    """A DNS name (RFC 1123 labels), a dotted-quad IPv4 address, or an IPv6 address (bracketed or not)."""
    if not v or len(v) > 253:
        return "must be a host name or IP address"
    for ch in v:
        if not (ch.isalpha() or ch.isdigit() or ch in "-.:[]"):
            return "must be a host name or IP address (found %r)" % ch
    h = v[1:-1] if v[0] == "[" and v[-1] == "]" else v
    if h is not v and ":" not in h:
        return "brackets only go around an IPv6 address"
    if ":" in h:
        if "[" in h or "]" in h or h.count(":") < 2:
            return "must be an IPv6 address like fd00::1"
        for ch in h:
            if not (ch.isdigit() or ch in "abcdefABCDEF:."):
                return "must be an IPv6 address like fd00::1"
        return None
    if "[" in h or "]" in h:
        return "brackets only go around an IPv6 address"
    labels = h.rstrip(".").split(".")
    if labels[-1].isdigit():  # a name's last label is never all digits: this is meant as an IPv4 address
        if len(labels) != 4 or [p for p in labels if not p.isdigit() or int(p) > 255]:
            return "must be an IPv4 address of four numbers 0..255"
        return None
    for label in labels:
        if not label or len(label) > 63 or label[0] == "-" or label[-1] == "-":
            return "must be a host name (labels of 1..63 letters, digits or '-', not starting or ending with '-')"
    return None


def _web_addr(v):
    """'' (off) or HOST:PORT for the node's web page; a LAN address, never all interfaces by default."""
    if v == "":
        return None
    host, _, port = v.rpartition(":")
    if not host or _hostname(host.strip("[]")):
        return "must be '' (off) or HOST:PORT, e.g. '192.168.1.1:8080'"
    try:
        port = int(port)
    except ValueError:
        return "port must be a number"
    if not 1 <= port <= 65535:
        return "port must be 1..65535"
    return None


def _level(v):
    if v not in ("debug", "info", "warning", "error"):
        return "must be one of debug, info, warning, error"
    return None


def _log_format(v):
    if v not in ("plain", "syslog"):
        return "must be 'plain' or 'syslog'"
    return None


SCHEMA = {
    "domain": (str, "localhost", _hostname),
    "aliases": (list, [], None),
    # the address phones and peers reach this node at (Via, Record-Route, the PBX contact); needed when
    # listening on a wildcard address; default: the listen address, or the domain for a wildcard
    "advertise": (str, "", lambda v: _hostname(v) if v else None),
    "listen": (list, ["udp:127.0.0.1:5060", "tcp:127.0.0.1:5060"], None),
    "realm": (str, "", None),
    "min_expires": (int, 60, _range(1, 86400)),
    "max_expires": (int, 3600, _range(1, 604800)),
    "default_expires": (int, 3600, _range(1, 604800)),
    "max_aors": (int, 10000, _range(1, 1000000)),
    "max_contacts_per_aor": (int, 10, _range(1, 100)),
    "nonce_ttl": (int, 300, _range(1, 86400)),
    "max_nonces": (int, 4096, _range(16, 1000000)),
    # MD5 first: most phones only do MD5 and several (sipp among them) read only the first challenge
    "digest_algorithms": (list, ["MD5", "SHA-256"], None),
    "max_transactions": (int, 4096, _range(16, 1000000)),
    "max_tcp_connections": (int, 1024, _range(1, 65535)),
    "max_tcp_per_source": (int, 64, _range(1, 65535)),
    "tcp_idle_s": (int, 600, _range(5, 86400)),
    "pbx": (dict, {}, None),
    "short_dial": (dict, {}, None),
    "dns_servers": (list, [], None),
    "dns_dead_s": (int, 60, _range(1, 86400)),
    "federation_rate": (int, 20, _range(1, 100000)),
    "federation_burst": (int, 40, _range(1, 100000)),
    "web": (str, "", _web_addr),
    "log_level": (str, "info", _level),
    "log_format": (str, "plain", _log_format),
}


_KIND_NAMES = {list: "list", str: "string", dict: "JSON object", int: "whole number"}
_PBX = {"address": (str, None, _port_spec), "domain": (str, None, _hostname), "realm": (str, "", None),
        "expires": (int, 600, _range(60, 86400))}


def _check_dict(key, v, origin):
    """The nested objects: `pbx` (the insecure PBX beside the node) and `short_dial` (number -> local user)."""
    out = {}
    if key == "short_dial":
        for k, user in v.items():
            if not k or not isinstance(user, str) or not user or "@" in user:
                raise ConfigError("%s: field 'short_dial.%s': must map a number to a local user name" % (origin, k))
            out[k] = user
        return out
    if not v:
        return out
    for k in v:
        if k not in _PBX:
            raise ConfigError("%s: field 'pbx.%s': unknown field" % (origin, k))
    for k, (kind, default, check) in _PBX.items():
        if k not in v:
            if default is None:
                raise ConfigError("%s: field 'pbx.%s': required when pbx is set" % (origin, k))
            out[k] = default
            continue
        if not isinstance(v[k], kind) or isinstance(v[k], bool):
            raise ConfigError("%s: field 'pbx.%s': must be a %s" % (origin, k, _KIND_NAMES[kind]))
        err = check(v[k]) if check else None
        if err:
            raise ConfigError("%s: field 'pbx.%s': %s" % (origin, k, err))
        out[k] = v[k]
    if not out["realm"]:
        out["realm"] = out["domain"]
    return out


def validate(d, origin="config"):
    """Check a decoded config dict; return a new dict with defaults filled in."""
    if not isinstance(d, dict):
        raise ConfigError("%s: the top level must be a JSON object" % origin)
    out = {}
    for key in d:
        if key not in SCHEMA:
            raise ConfigError("%s: field '%s': unknown field" % (origin, key))
    for key in SCHEMA:
        kind, default, check = SCHEMA[key]
        if key not in d:
            out[key] = list(default) if kind is list else dict(default) if kind is dict else default
            continue
        v = d[key]
        if kind is int and (isinstance(v, bool) or not isinstance(v, int)):
            raise ConfigError("%s: field '%s': must be a whole number" % (origin, key))
        if not isinstance(v, kind):
            raise ConfigError("%s: field '%s': must be a %s" % (origin, key, _KIND_NAMES[kind]))
        if kind is dict:
            v = _check_dict(key, v, origin)
        elif kind is list:
            for i, item in enumerate(v):
                if not isinstance(item, str):
                    raise ConfigError("%s: field '%s[%d]': must be a string" % (origin, key, i))
                if key == "listen":
                    err = _port_spec(item)
                elif key == "digest_algorithms":
                    err = None if item in ("MD5", "SHA-256") else "must be 'MD5' or 'SHA-256'"
                elif key == "dns_servers":
                    err = server_error(item)
                else:
                    err = _hostname(item)
                if err:
                    raise ConfigError("%s: field '%s[%d]': %s" % (origin, key, i, err))
        elif check:
            err = check(v)
            if err:
                raise ConfigError("%s: field '%s': %s" % (origin, key, err))
        out[key] = v
    if not out["listen"]:
        raise ConfigError("%s: field 'listen': needs at least one address" % origin)
    if not out["digest_algorithms"] or len(set(out["digest_algorithms"])) != len(out["digest_algorithms"]):
        raise ConfigError("%s: field 'digest_algorithms': needs MD5 and/or SHA-256, each once" % origin)
    if out["min_expires"] > out["max_expires"]:
        raise ConfigError("%s: field 'min_expires': must not exceed max_expires" % origin)
    if not out["min_expires"] <= out["default_expires"] <= out["max_expires"]:
        raise ConfigError("%s: field 'default_expires': must be between min_expires and max_expires" % origin)
    if not out["realm"]:
        out["realm"] = out["domain"]
    return out


def load(text, origin="config"):
    """Parse JSON text and validate it (see validate)."""
    try:
        d = json.loads(text)
    except ValueError as e:
        raise ConfigError("%s: not valid JSON (%s)" % (origin, e))
    return validate(d, origin)


def listen_addrs(cfg):
    """[(proto, host, port)] from cfg['listen']; IPv6 hosts given as [addr]."""
    out = []
    for spec in cfg["listen"]:
        proto, rest = spec.split(":", 1)
        host, port = rest.rsplit(":", 1)
        out.append((proto, host.strip("[]"), int(port)))
    return out
