"""OpenWrt: `uci show microwitch` text -> the node's JSON config (config.py), errors naming the UCI option.

The core never reads UCI. The init script runs, on the router,

    uci -q show microwitch | micropython /usr/bin/microwitch-node uci2config --lan-domain D --lan-ip A

and hands the JSON to the node. First-run defaults need no LuCI: without `domain` the node serves the LAN's
DNS domain (`dhcp.@dnsmasq[0].domain`, else the LAN address itself); without `listen` it listens on UDP and
TCP port 5060 of the LAN address (`network.lan.ipaddr`), which is also added to `aliases`.

Sections: `config microwitch 'main'` (options named as the JSON fields; `enabled` and `state_dir` belong to
the init script), `config pbx 'pbx'` (address, domain, realm, expires), `config short_dial` (number, user).
"""
from microwitch import config

_PKG = "microwitch"
_INIT_ONLY = ("enabled", "state_dir")
_PBX_INTS = ("expires",)
_SIP_PORT = 5060


class UciError(ValueError):
    """A bad UCI value; str() starts with the option's full UCI name (microwitch.main.max_aors)."""


def _words(text, where):
    """Single-quoted words as `uci show` prints them ('it'\\''s' is one word)."""
    out = []
    i = 0
    n = len(text)
    while i < n:
        if text[i] == " ":
            i += 1
            continue
        word = ""
        while i < n and text[i] != " ":
            if text[i] == "'":
                j = text.find("'", i + 1)
                if j < 0:
                    raise UciError("%s: unterminated quote" % where)
                word += text[i + 1:j]
                i = j + 1
            elif text[i] == "\\" and i + 1 < n:
                word += text[i + 1]
                i += 2
            else:
                word += text[i]
                i += 1
        out.append(word)
    return out


def parse_show(text):
    """[(section name, section type, {option: [values]})] in file order from `uci show` output."""
    sections = {}
    order = []
    for line in text.split("\n"):
        line = line.strip()
        if not line:
            continue
        key, eq, value = line.partition("=")
        parts = key.split(".")
        if not eq or parts[0] != _PKG or len(parts) not in (2, 3):
            raise UciError("%s: not a line of `uci show %s`" % (line[:60], _PKG))
        name = parts[1]
        if len(parts) == 2:
            if name not in sections:
                order.append(name)
            sections[name] = (value, sections.get(name, (None, {}))[1])
            continue
        if name not in sections:
            order.append(name)
            sections[name] = (None, {})
        sections[name][1][parts[2]] = _words(value, key)
    return [(n, sections[n][0], sections[n][1]) for n in order]


def _one(opts, opt, where):
    v = opts[opt]
    if len(v) != 1:
        raise UciError("%s.%s: expected one value, found a list" % (where, opt))
    return v[0]


def _int(opts, opt, where):
    v = _one(opts, opt, where)
    try:
        return int(v)
    except ValueError:
        raise UciError("%s.%s: must be a whole number, found %r" % (where, opt, v))


def _lan_ip(lan_ip):
    """First address of network.lan.ipaddr (may be '192.168.1.1/24' or a list on newer releases)."""
    ip = (lan_ip or "").strip().split(" ")[0].split("/")[0]
    return ip or None


def convert(text, lan_domain=None, lan_ip=None):
    """The node config dict (validated by config.validate) for `uci show microwitch` output `text`."""
    d = {}
    where = {}  # JSON field -> UCI option name, for error messages
    pbx = None
    short = {}
    for name, typ, opts in parse_show(text):
        sec = _PKG + "." + name
        if typ == "microwitch":
            for opt in opts:
                if opt in _INIT_ONLY:
                    continue
                if opt not in config.SCHEMA or opt in ("pbx", "short_dial"):
                    raise UciError("%s.%s: unknown option" % (sec, opt))
                where[opt] = sec + "." + opt
                kind = config.SCHEMA[opt][0]  # the JSON field's type says how to read the UCI value
                if kind is list:
                    d[opt] = [w for v in opts[opt] for w in v.split()]
                elif kind is int:
                    d[opt] = _int(opts, opt, sec)
                else:
                    d[opt] = _one(opts, opt, sec)
        elif typ == "pbx":
            pbx = {}
            where["pbx"] = sec
            for opt in opts:
                where["pbx." + opt] = sec + "." + opt
                pbx[opt] = _int(opts, opt, sec) if opt in _PBX_INTS else _one(opts, opt, sec)
        elif typ == "short_dial":
            if "number" not in opts or "user" not in opts:
                raise UciError("%s: a short_dial section needs options number and user" % sec)
            num = _one(opts, "number", sec)
            where["short_dial." + num] = sec + ".user"
            short[num] = _one(opts, "user", sec)
        else:
            raise UciError("%s: unknown section type %r" % (sec, typ))
    if pbx:
        d["pbx"] = pbx
    if short:
        d["short_dial"] = short
    ip = _lan_ip(lan_ip)
    if "domain" not in d:
        dom = (lan_domain or "").strip() or ip
        if not dom:
            raise UciError("%s.main.domain: not set, and the router has no LAN domain or address to default to"
                           % _PKG)
        d["domain"] = dom
        where["domain"] = "dhcp.@dnsmasq[0].domain (default for %s.main.domain)" % _PKG
    if "listen" not in d:
        if not ip:
            raise UciError("%s.main.listen: not set, and network.lan.ipaddr is empty" % _PKG)
        d["listen"] = ["udp:%s:%d" % (ip, _SIP_PORT), "tcp:%s:%d" % (ip, _SIP_PORT)]
        where["listen"] = "network.lan.ipaddr (default for %s.main.listen)" % _PKG
        aliases = d.get("aliases") or []
        if ip not in aliases and ip != d["domain"]:
            d["aliases"] = aliases + [ip]
    try:
        return config.validate(d, "uci")
    except config.ConfigError as e:
        raise UciError(_rename(str(e), where))


def _rename(msg, where):
    """config.py says "uci: field 'max_aors': ..."; say which UCI option that is."""
    head = "uci: field '"
    if not msg.startswith(head):
        return msg
    field, _, rest = msg[len(head):].partition("': ")
    base = field.split("[")[0]
    opt = where.get(field) or where.get(base)
    if opt is None and "." in base and base.split(".")[0] in where:  # an option missing from its section
        opt = where[base.split(".")[0]] + "." + base.split(".", 1)[1]
    return "%s: %s" % (opt or _PKG + ".main." + base, rest)


def main(argv, text, write=print, err=print):
    """`uci2config [--lan-domain D] [--lan-ip A]`, UCI text given: the JSON goes to `write`, a problem to `err`
    (one line naming the option); returns an exit status."""
    import json
    opts = {}
    i = 0
    while i < len(argv):
        if argv[i] in ("--lan-domain", "--lan-ip") and i + 1 < len(argv):
            opts[argv[i]] = argv[i + 1]
            i += 2
        else:
            err("microwitch: uci2config: unknown argument %s" % argv[i])
            return 2
    try:
        cfg = convert(text, opts.get("--lan-domain"), opts.get("--lan-ip"))
    except UciError as e:
        err("microwitch: %s" % e)
        return 2
    write(json.dumps(cfg))
    return 0
