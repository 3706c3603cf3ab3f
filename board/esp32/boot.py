# microwitch on ESP32, stage 1: join Wi-Fi from /device.json, or open a setup access point when none is set.
#
# /device.json: {"wifi": {"ssid": "...", "password": "..."}, "role": "node"}   (written by
# `tools/microwitch deploy esp32 --wifi-ssid ...`, which asks for the password, or by hand with mpremote).
# Without a usable ssid, or when joining fails, the board opens the access point "microwitch-setup-XXXX"
# (WPA2) and main.py serves SIP on that network, so a phone can be tried at once; set the Wi-Fi over USB to
# join a real network. The access point's password is random, made on first use and kept in /device.json
# ("setup_password"), and printed on the serial console: nothing in the air (the MAC) gives it away.
import json
import os
import time

import network
from binascii import hexlify
from machine import unique_id

DEVICE_FILE = "/device.json"
JOIN_TIMEOUT_MS = 20000


def device_config():
    try:
        with open(DEVICE_FILE) as f:
            d = json.load(f)
        return d if isinstance(d, dict) else {}
    except (OSError, ValueError):
        return {}


def _join(wifi):
    sta = network.WLAN(network.STA_IF)
    sta.active(True)
    if not sta.isconnected():
        sta.connect(wifi["ssid"], wifi.get("password", ""))
        t0 = time.ticks_ms()
        while not sta.isconnected() and time.ticks_diff(time.ticks_ms(), t0) < JOIN_TIMEOUT_MS:
            time.sleep_ms(200)
    if sta.isconnected():
        return sta.ifconfig()[0]
    sta.active(False)
    return None


def _setup_password(dev):
    pw = dev.get("setup_password")
    if isinstance(pw, str) and len(pw) >= 8:
        return pw
    pw = "mw-" + hexlify(os.urandom(8)).decode()  # 64 random bits from the hardware RNG
    dev["setup_password"] = pw
    try:
        with open(DEVICE_FILE, "w") as f:
            json.dump(dev, f)
    except OSError:
        pass  # a read-only filesystem: a new password on every boot, still printed below
    return pw


def _setup_ap(reason, dev):
    ap = network.WLAN(network.AP_IF)
    ap.active(True)
    essid = "microwitch-setup-" + hexlify(unique_id()).decode()[-4:]
    password = _setup_password(dev)
    ap.config(essid=essid, password=password, authmode=network.AUTH_WPA2_PSK)
    print("microwitch: %s; setup access point %s, password %s" % (reason, essid, password))
    return ap.ifconfig()[0]


def _set_clock():
    # bindings expire by the wall clock; without NTP it starts at boot (harmless, see store/bindings.py)
    try:
        import ntptime
        ntptime.settime()
    except (ImportError, OSError):
        pass


_dev = device_config()
_wifi = _dev.get("wifi") or {}
if _wifi.get("ssid"):
    LOCAL_IP = _join(_wifi)
    if LOCAL_IP:
        print("microwitch: joined %s as %s" % (_wifi["ssid"], LOCAL_IP))
        _set_clock()
    else:
        LOCAL_IP = _setup_ap("could not join %s" % _wifi["ssid"], _dev)
else:
    LOCAL_IP = _setup_ap("no Wi-Fi configured in " + DEVICE_FILE, _dev)
