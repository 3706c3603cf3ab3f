"""HTML of the web page: plain server-rendered forms, one small inline style sheet, no JavaScript, nothing
fetched from anywhere else (a router has no internet guarantee). Every value is escaped with forms.esc."""
from microwitch.web.forms import esc

_CSS = ("body{font:15px/1.4 system-ui,sans-serif;max-width:52em;margin:1em auto;padding:0 1em;color:#222}"
        "h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.6em;border-bottom:1px solid #ccc}"
        "table{border-collapse:collapse;width:100%}td,th{text-align:left;padding:.25em .5em;"
        "border-bottom:1px solid #eee;vertical-align:top}label{display:block;margin:.6em 0 .1em}"
        "input[type=text],input[type=password]{width:18em;padding:.3em}.err{color:#b00020;display:block}"
        "button{padding:.3em .8em;margin:.2em 0}pre{background:#f5f5f5;padding:.6em;overflow-x:auto}"
        "nav form{display:inline}.ok{color:#060}.bad{color:#b00020}.note{color:#555}"
        "form.inline{display:inline}")


def page(title, body, nav=""):
    return ('<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width,initial-scale=1">'
            '<title>' + esc(title) + ' - microwitch</title><style>' + _CSS + '</style></head><body>' + nav +
            '<h1>' + esc(title) + '</h1>' + body + '</body></html>')


def nav(csrf):
    return ('<nav><a href="/">People and devices</a> | <a href="/dns">DNS records</a> | '
            '<form method="post" action="/logout"><input type="hidden" name="csrf" value="' + esc(csrf) +
            '"><button type="submit">Log out</button></form></nav>')


def field(name, label, kind="text", value="", errors=None, extra=""):
    err = (errors or {}).get(name)
    out = '<label for="f_' + name + '">' + esc(label) + '</label><input type="' + kind + '" id="f_' + name + \
          '" name="' + name + '"' + (' value="' + esc(value) + '"' if value and kind != "password" else "") + \
          extra + (' aria-invalid="true" aria-describedby="e_' + name + '"' if err else "") + '>'
    if err:
        out += '<span class="err" id="e_' + name + '">' + esc(err) + '</span>'
    return out


def form(action, csrf, inner, button, errors=None):
    top = (errors or {}).get("form")
    return ('<form method="post" action="' + action + '">' +
            ('<p class="err" id="e_form">' + esc(top) + '</p>' if top else "") +
            '<input type="hidden" name="csrf" value="' + esc(csrf) + '">' + inner +
            '<p><button type="submit">' + esc(button) + '</button></p></form>')


def hidden_button(action, csrf, name, value, button):
    return ('<form class="inline" method="post" action="' + action + '"><input type="hidden" name="csrf" value="' +
            esc(csrf) + '"><input type="hidden" name="' + name + '" value="' + esc(value) + '">'
            '<button type="submit">' + esc(button) + '</button></form>')


def setup(csrf, domain, errors=None):
    inner = (field("password", "Admin password (at least 10 characters)", "password", errors=errors,
                   extra=' autocomplete="new-password" required') +
             field("password2", "The same password again", "password", errors=errors,
                   extra=' autocomplete="new-password" required') +
             field("domain", "Your domain (what comes after @ in your addresses)", "text", domain, errors,
                   ' required'))
    return page("Set up this node", '<p>This node has no admin password yet. Choose one, and name the domain '
                'it serves.</p>' + form("/setup", csrf, inner, "Save and continue", errors))


def login(csrf, errors=None):
    inner = field("password", "Admin password", "password", errors=errors,
                  extra=' autocomplete="current-password" required autofocus')
    return page("Log in", form("/login", csrf, inner, "Log in", errors))


def _ago(s):
    if s < 120:
        return "%d s" % s
    if s < 7200:
        return "%d min" % (s // 60)
    return "%d h" % (s // 3600)


def dashboard(csrf, domain, users, accounts, st, add_values=None, errors=None, notice=""):
    out = []
    if notice:
        out.append('<p class="ok" id="notice">' + notice + '</p>')
    devices = (st or {}).get("devices") or {}
    out.append('<h2>People</h2>')
    if not users:
        out.append('<p>No one yet: add the first person below.</p>')
    else:
        out.append('<table id="people"><tr><th>Address</th><th>Devices (source, expires in)</th><th></th></tr>')
        for a in users:
            devs = devices.get(a) or []
            if devs:
                d = "<br>".join(esc(x["source"]) + " (" + _ago(max(0, x["expires_in"])) + ")" for x in devs)
            else:
                d = '<span class="note">none registered</span>'
            acc = accounts.get(a) if accounts is not None else None
            if acc:
                d += '<br><span class="note">PBX extension ' + esc(acc["ext"]) + '</span>'
            out.append('<tr><td>' + esc(a) + '</td><td>' + d + '</td><td>' +
                       hidden_button("/provision", csrf, "user", a, "Set up a phone") + ' ' +
                       hidden_button("/remove", csrf, "user", a, "Remove") + '</td></tr>')
        out.append('</table>')
    v = add_values or {}
    out.append('<h2>Add a person</h2>')
    out.append(form("/add", csrf,
                    field("name", "Name (the part before @%s)" % domain, "text", v.get("name", ""), errors,
                          ' required maxlength="64"') +
                    field("password", "SIP password (leave empty to generate one)", "password", errors=errors,
                          extra=' autocomplete="new-password"'),
                    "Add", errors))
    out.append('<h2>Live calls</h2>')
    calls = (st or {}).get("calls") or []
    if not calls:
        out.append('<p class="note">No calls right now.</p>')
    else:
        out.append('<table id="calls"><tr><th>Caller</th><th>Callee</th><th>State</th><th>Duration</th>'
                   '<th>ZRTP on both legs</th></tr>')
        for c in calls:
            z = '<span class="ok">yes</span>' if c["zrtp"] else '<span class="bad">no</span>'
            out.append('<tr><td>' + esc(c["caller"]) + '</td><td>' + esc(c["callee"]) + '</td><td>' +
                       esc(c["state"]) + '</td><td>' + _ago(c["duration_s"]) + '</td><td>' + z + '</td></tr>')
        out.append('</table>')
    pbx = (st or {}).get("pbx") or []
    out.append('<h2>PBX bridge</h2>')
    if not pbx:
        out.append('<p class="note">No PBX bridge configured or no one has a PBX extension.</p>')
    else:
        out.append('<table id="pbx"><tr><th>User</th><th>Extension</th><th>State</th></tr>')
        for p in pbx:
            out.append('<tr><td>' + esc(p["user"]) + '</td><td>' + esc(p["extension"]) + '</td><td>' +
                       esc(p["state"]) + (" (" + esc(p["reason"]) + ")" if p.get("reason") else "") + '</td></tr>')
        out.append('</table>')
    errs = (st or {}).get("errors") or []
    out.append('<h2>Last errors</h2>')
    if st is None:
        out.append('<p class="bad">The node\'s status is not available.</p>')
    elif not errs:
        out.append('<p class="note">None.</p>')
    else:
        out.append('<pre id="errors">' + "\n".join(esc(line) for _, line in errs) + '</pre>')
    return page("People and devices", "".join(out), nav(csrf))


def added(csrf, address, password):
    body = '<p class="ok" id="notice">Added ' + esc(address) + '.</p>'
    if password:
        body += ('<p>Generated SIP password (shown only now; a phone set up with its QR code does not need it): '
                 '<code id="password">' + esc(password) + '</code></p>')
    body += ('<p>' + hidden_button("/provision", csrf, "user", address, "Set up a phone for " + address) +
             '</p><p><a href="/">Back to people and devices</a></p>')
    return page("Person added", body, nav(csrf))


def provision(csrf, address, link, svg, ttl_min):
    body = ('<p>In Linphone on the phone of <b>' + esc(address) + '</b>: Assistant &rarr; '
            '<i>Fetch remote configuration</i> (or <i>Scan QR code</i>) and scan this code:</p>'
            '<div id="qr">' + svg + '</div><p>or enter this link: <code id="link">' + esc(link) + '</code></p>'
            '<p class="note">The link works once and for %d minutes. Making a new one cancels this one.</p>'
            '<p><a href="/">Back to people and devices</a></p>') % ttl_min
    return page("Set up a phone", body, nav(csrf))


def dns(csrf, domain, target, addr, port, private=False):
    records = ("; where SIP for %s is served (RFC 2782)\n"
               "_sip._udp.%s.  3600 IN SRV 10 0 %d %s.\n"
               "_sip._tcp.%s.  3600 IN SRV 10 0 %d %s.\n") % (domain, domain, port, target, domain, port, target)
    if addr and not private:
        records += "%s.  300 IN %s %s\n" % (target, "AAAA" if ":" in addr else "A", addr)
    else:
        records += "%s.  300 IN A <the public address of your connection>\n" % target
    records += ('\n; optional: preferred transports (RFC 3263 section 4.1)\n'
                '%s.  3600 IN NAPTR 10 10 "S" "SIP+D2U" "" _sip._udp.%s.\n'
                '%s.  3600 IN NAPTR 20 10 "S" "SIP+D2T" "" _sip._tcp.%s.\n') % (domain, domain, domain, domain)
    body = ('<p>To be reachable from other domains, publish these records in the DNS zone of <b>' + esc(domain) +
            '</b> (with your DNS provider). The address must be the one other domains reach this node at; '
            'on a home connection use a dynamic-DNS name as the target.</p>' +
            ('<p class="note" id="private">This node listens on the local address ' + esc(addr or "(any)") +
             ', which other domains cannot reach: publish your public address and forward UDP and TCP port ' +
             str(port) + ' to this node.</p>' if private else '') +
            '<pre id="records">' + esc(records) +
            '</pre><p>Check them later with <code>tools/microwitch dns check ' + esc(domain) + '</code>.</p>'
            '<p><a href="/">Continue to people and devices</a></p>')
    return page("DNS records to publish", body, nav(csrf))


def message(title, text, status_class="bad", back="/"):
    return page(title, '<p class="' + status_class + '" id="message">' + esc(text) + '</p><p><a href="' + back +
                '">Back</a></p>')
