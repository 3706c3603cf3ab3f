"""A tiny line logger: one line per event, levels, plain (host stdout) or syslog-style `<prio>` prefixes
(understood by procd/logd on OpenWrt and journald). Callers must never pass secrets (passwords, HA1, nonces)."""
from microwitch.compat import const

DEBUG = const(10)
INFO = const(20)
WARNING = const(30)
ERROR = const(40)

_NAMES = {DEBUG: "DEBUG", INFO: "INFO", WARNING: "WARN", ERROR: "ERROR"}
_SYSLOG = {DEBUG: "<7>", INFO: "<6>", WARNING: "<4>", ERROR: "<3>"}
LEVELS = {"debug": DEBUG, "info": INFO, "warning": WARNING, "error": ERROR}


class Logger:
    """Logger(level_name, write, syslog=False); log(level, text) or the level methods."""

    def __init__(self, level="info", write=print, syslog=False):
        self.level = LEVELS[level]
        self._write = write
        self._prefix = _SYSLOG if syslog else _NAMES

    def log(self, level, text):
        if level >= self.level:
            p = self._prefix[level]
            self._write(p + text if p[0] == "<" else p + " " + text)

    def debug(self, text):
        self.log(DEBUG, text)

    def info(self, text):
        self.log(INFO, text)

    def warning(self, text):
        self.log(WARNING, text)

    def error(self, text):
        self.log(ERROR, text)
