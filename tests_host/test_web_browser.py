"""Acceptance (issue 9): a real headless Chromium (Debian `chromium`, driven by npm `playwright-core` with the
system browser; nothing downloaded) walks the node's web page with JavaScript switched off:
first run -> DNS records -> log out -> log in -> a field error -> add a user -> the provisioning page with its QR
code. A screenshot of each page goes to artifacts/web/. Every request must go to the node itself (no CDN), and
the total weight of each page is printed (`WEB page …` lines) and bounded.
"""
import json
import os
import shutil
import subprocess
import sys

import pytest

import nodeproc
from webclient import wait_web

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARTIFACTS = os.path.join(REPO, "artifacts", "web")
CHROMIUM = "/usr/bin/chromium"
MAX_PAGE_BYTES = 16384  # the heaviest page (provisioning, with its inline SVG QR code) stays under this


def _playwright_dir():
    for d in (os.environ.get("MW_PLAYWRIGHT_DIR"), os.path.join(REPO, "tools", "mp", "node_modules")):
        if d and os.path.exists(os.path.join(d, "playwright-core", "package.json")):
            return d
    return None


pytestmark = pytest.mark.skipif(not (os.path.exists(CHROMIUM) and _playwright_dir() and shutil.which("node")),
                                reason="needs Debian chromium, node and npm playwright-core (tools/mp)")

WALK = r"""
const { chromium } = require('playwright-core');
const [base, shots, password] = process.argv.slice(2);
const out = { pages: {}, foreign: [], steps: [] };
(async () => {
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true,
                                          args: ['--no-sandbox', '--disable-gpu'] });
  try {
    const ctx = await browser.newContext({ javaScriptEnabled: false, viewport: { width: 900, height: 900 } });
    const page = await ctx.newPage();
    let bytes = 0, requests = 0;
    page.on('request', r => { if (!r.url().startsWith(base)) out.foreign.push(r.url()); });
    page.on('response', async r => { requests++; try { bytes += (await r.body()).length; } catch (e) {} });
    async function snap(name) {
      await page.waitForLoadState('load');
      await new Promise(r => setTimeout(r, 100));
      await page.screenshot({ path: shots + '/' + name + '.png', fullPage: true });
      out.pages[name] = { url: page.url(), bytes, requests, title: await page.title(),
                          text: await page.locator('body').innerText() };
      bytes = 0; requests = 0;
    }
    await page.goto(base + '/'); await snap('1-first-run');
    await page.fill('#f_password', password);
    await page.fill('#f_password2', password);
    await page.fill('#f_domain', 'localhost');
    await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
    await snap('2-dns-records');
    await Promise.all([page.waitForNavigation(), page.click('nav button')]);
    await snap('3-login');
    await page.fill('#f_password', password);
    await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
    await snap('4-people');
    await page.fill('#f_name', 'not valid!');
    await Promise.all([page.waitForNavigation(), page.click('form[action="/add"] button[type=submit]')]);
    await snap('5-field-error');
    out.fieldError = await page.locator('#e_name').innerText();
    await page.fill('#f_name', 'alice');
    await Promise.all([page.waitForNavigation(), page.click('form[action="/add"] button[type=submit]')]);
    await snap('6-added');
    await Promise.all([page.waitForNavigation(), page.click('form[action="/provision"] button')]);
    await snap('7-provisioning');
    out.link = await page.locator('#link').innerText();
    out.qr = await page.locator('#qr svg').count();
    const box = await page.locator('#qr svg').boundingBox();
    out.qrSize = box ? [box.width, box.height] : null;
    await page.goto(base + '/'); await snap('8-people-after');
    const cookies = await ctx.cookies();
    out.cookies = cookies.map(c => ({ name: c.name, httpOnly: c.httpOnly, sameSite: c.sameSite }));
  } finally {
    await browser.close();
  }
  console.log('RESULT ' + JSON.stringify(out));
})().catch(e => { console.error(e); process.exit(1); });
"""


def test_browser_walk_first_run_login_add_user_provision(tmp_path):
    tmp = str(tmp_path)
    os.makedirs(ARTIFACTS, exist_ok=True)
    for f in os.listdir(ARTIFACTS):
        if f.endswith(".png"):
            os.unlink(os.path.join(ARTIFACTS, f))
    web_port = nodeproc.free_port("tcp")
    node = nodeproc.Node(tmp, config={"web": "127.0.0.1:%d" % web_port}, transports=("udp",))
    script = os.path.join(tmp, "walk.js")
    with open(script, "w") as f:
        f.write(WALK)
    try:
        node.start()
        wait_web(node)
        env = dict(os.environ, NODE_PATH=_playwright_dir(), HOME=tmp)
        p = subprocess.run(["node", script, "http://127.0.0.1:%d" % web_port, ARTIFACTS, "a long admin password"],
                           capture_output=True, text=True, timeout=120, env=env, cwd=tmp)
    finally:
        node.stop()
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    line = [x for x in p.stdout.splitlines() if x.startswith("RESULT ")][-1]
    r = json.loads(line[7:])
    pages = r["pages"]
    assert r["foreign"] == []  # nothing fetched from anywhere but the node
    assert pages["1-first-run"]["url"].endswith("/setup")
    assert pages["2-dns-records"]["url"].endswith("/dns")
    assert "_sip._udp.localhost.  3600 IN SRV 10 0" in pages["2-dns-records"]["text"]
    assert pages["3-login"]["url"].endswith("/login")
    assert "People" in pages["4-people"]["text"] and "No one yet" in pages["4-people"]["text"]
    assert "not allowed" in r["fieldError"]
    assert "Added alice@localhost" in pages["6-added"]["text"]
    assert r["link"].startswith("http://127.0.0.1:%d/p/" % web_port) and r["qr"] == 1
    assert r["qrSize"][0] >= 100
    assert "alice@localhost" in pages["8-people-after"]["text"]
    for c in r["cookies"]:
        assert c["httpOnly"] and c["sameSite"] == "Strict", c
    for name in sorted(pages):
        pg = pages[name]
        assert pg["requests"] <= 2, (name, pg)  # the page (after a redirect), no other resources
        assert 0 < pg["bytes"] <= MAX_PAGE_BYTES, (name, pg["bytes"])
        print("WEB page %-16s %5d bytes in %d response(s)" % (name, pg["bytes"], pg["requests"]))
    for name in pages:
        assert os.path.getsize(os.path.join(ARTIFACTS, name + ".png")) > 1000
