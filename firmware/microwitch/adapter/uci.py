"""OpenWrt: `uci show microwitch` text -> the node's JSON config (config.py), errors naming the UCI option.

The core never reads UCI. The init script runs, on the router,

    uci -q show microwitch | micropython /usr/bin/microwitch-node uci2config --lan-domain D --lan-ip A

and hands the JSON to the node. First-run defaults need no LuCI: without `domain` the node serves the LAN's
DNS domain (`dhcp.@dnsmasq[0].domain`, else the LAN address itself); without `listen` it listens on UDP and
TCP port 5060 of the LAN address (`network.lan.ipaddr`), which is also added to `aliases`; without `web` the
page is on port 8080 of the LAN address (LuCI has port 80; `option web ''` turns the page off). The page's
first run writes its domain back into /etc/config/microwitch (domain_saver), so UCI stays the one truth.

Sections: `config microwitch 'main'` (options named as the JSON fields; `enabled` and `state_dir` belong to
the init script), `config pbx 'pbx'` (address, domain, realm, expires), `config short_dial` (number, user).
"""
import os

from microwitch import config
from microwitch.compat import fsync

_PKG = "microwitch"
_INIT_ONLY = ("enabled", "state_dir")
_PBX_INTS = ("expires",)
_SIP_PORT = 5060
_WEB_PORT = 8080


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
    if "web" not in d and ip:
        d["web"] = "%s:%d" % (ip, _WEB_PORT)
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


def set_option(text, section, option, value):
    """The UCI file `text` with `option OPTION 'VALUE'` in the section named `section` (the option's old lines
    dropped, the new one written under the section's header; comments and everything else kept).
    UciError if there is no such section. `value` must hold no quote (callers pass validated names)."""
    out = []
    inside = found = False
    for line in text.split("\n"):
        bare = line.replace("\t", " ").strip()
        w = _words(bare, "%s.%s" % (_PKG, section)) if bare and bare[0] != "#" else []
        if w[:1] == ["config"]:
            inside = len(w) >= 3 and w[2] == section
            out.append(line)
            if inside:
                found = True
                out.append("\toption %s '%s'" % (option, value))
            continue
        if not (inside and w[:2] == ["option", option]):
            out.append(line)
    if not found:
        raise UciError("%s.%s: no such section" % (_PKG, section))
    return "\n".join(out)


def domain_saver(path):
    """save_domain for the web page's first run (device.run): the domain goes into section 'main' of the UCI
    file at `path`, replaced whole; returns None or an error text."""
    def save(domain):
        try:
            with open(path) as f:
                text = set_option(f.read(), "main", "domain", domain)
            tmp = path + ".tmp"
            with open(tmp, "w") as f:
                f.write(text)
                fsync(f)
            os.rename(tmp, path)
        except (OSError, UciError) as e:
            return "could not save %s: %s" % (path, e)
        return None
    return save


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
