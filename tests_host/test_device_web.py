"""A device's node with its web page (adapter/device.py + adapter/webpage.py): the board launcher run under
CPython with firmware/ on the path, real sockets. SIP and HTTP are served by one thread (one asyncio loop), and
the page's first run rewrites the device's JSON config and rebuilds the node on the same sockets."""
import json
import os
import signal
import subprocess
import sys
import threading
import time

import nodeproc
from webclient import WebClient

REPO = nodeproc.REPO
LAUNCHER = os.path.join(REPO, "board", "rpi", "microwitch-node")


class Device:
    def __init__(self, tmp, cfg):
        self.state = os.path.join(tmp, "state")
        self.config = os.path.join(tmp, "config.json")
        with open(self.config, "w") as f:
            json.dump(cfg, f)
        env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "firmware"))
        add = subprocess.run([sys.executable, LAUNCHER, "user", "add", "alice@localhost", "--state", self.state],
                             input="alice-secret-1\n", capture_output=True, text=True, env=env, timeout=30)
        assert add.returncode == 0, add.stdout + add.stderr
        self.proc = subprocess.Popen([sys.executable, "-u", LAUNCHER, "run", "--config", self.config,
                                      "--state", self.state], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, env=env)
        self.lines = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def output(self):
        return "\n".join(self.lines)

    def wait(self, text, timeout=10.0):
        deadline = time.monotonic() + timeout
        while text not in self.output():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise AssertionError("no %r in the device's output:\n%s" % (text, self.output()[-3000:]))
            time.sleep(0.02)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                return self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode


def test_device_serves_sip_and_its_page_from_one_loop_and_first_run_rebuilds_the_node(tmp_path):
    sip, web_port = nodeproc.free_port("udp"), nodeproc.free_port("tcp")
    dev = Device(str(tmp_path), {"domain": "localhost", "listen": ["udp:127.0.0.1:%d" % sip],
                                 "web": "127.0.0.1:%d" % web_port})
    try:
        dev.wait("web page http://127.0.0.1:%d/ (first run" % web_port)
        assert nodeproc.options_ping(("udp", "127.0.0.1", sip)) == 200
        web = WebClient("127.0.0.1", web_port)
        assert web.get("/setup") == 200 and 'name="domain"' in web.text
        web.setup_and_login("correct horse battery", "home.example.org")
        assert "alice@localhost" in web.text  # the people page lists the store the CLI wrote
        with open(dev.config) as f:
            assert json.load(f)["domain"] == "home.example.org"  # the device's own config, rewritten whole
        dev.wait("microwitch node for home.example.org")
        assert not os.path.exists(dev.config + ".tmp")
        # the rebuilt node answers on the same socket, for its new domain only (nodeproc asks for localhost)
        assert nodeproc.options_ping(("udp", "127.0.0.1", sip)) == 403
        assert web.get("/") == 200
        assert web.get("/dns") == 200 and "home.example.org" in web.text
    finally:
        rc = dev.stop()
    assert rc == 130, dev.output()[-2000:]  # SIGINT ends asyncio.run and the launcher cleanly
    assert "internal error" not in dev.output() and "Traceback" not in dev.output()


def test_device_without_web_config_runs_no_page(tmp_path):
    sip = nodeproc.free_port("udp")
    dev = Device(str(tmp_path), {"domain": "localhost", "listen": ["udp:127.0.0.1:%d" % sip]})
    try:
        dev.wait("listening udp:127.0.0.1:%d" % sip)
        assert nodeproc.options_ping(("udp", "127.0.0.1", sip)) == 200
        assert "web page" not in dev.output()
    finally:
        assert dev.stop() == 130


def test_device_web_address_in_use_is_a_clear_error(tmp_path):
    import socket
    busy = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    try:
        sip = nodeproc.free_port("udp")
        dev = Device(str(tmp_path), {"domain": "localhost", "listen": ["udp:127.0.0.1:%d" % sip],
                                     "web": "127.0.0.1:%d" % busy.getsockname()[1]})
        rc = dev.proc.wait(15)
        out = dev.output()
    finally:
        busy.close()
    assert rc == 1 and "microwitch:" in out and "Traceback" not in out, out
