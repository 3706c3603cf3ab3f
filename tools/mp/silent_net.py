"""A socket layer for the node's poll loop that binds and never receives: enough to start a node under wasm
MicroPython (which has no sockets) and measure or drive it without a network. Used by tests_host/test_boards.py
and tools/bench/_footprint_probe.py."""


class _Sock:
    n = 3

    def __init__(self, fam, typ):
        _Sock.n += 1
        self.fd = _Sock.n

    def setsockopt(self, *a):
        pass

    def bind(self, addr):
        pass

    def listen(self, n):
        pass

    def setblocking(self, flag):
        pass

    def fileno(self):
        return self.fd

    def close(self):
        pass


class _Poll:
    def register(self, s, flags):
        pass

    def poll(self, ms):
        return []


class Net:
    AF_INET, AF_INET6, SOCK_STREAM, SOCK_DGRAM, SOL_SOCKET, SO_REUSEADDR, SO_RCVBUF = 2, 10, 1, 2, 1, 2, None
    POLLIN, POLLOUT, POLLERR, POLLHUP = 1, 4, 8, 16
    socket = _Sock
    poll = _Poll

    def getaddrinfo(self, host, port, fam=0):
        return [(fam, 0, 0, "", (host, port))]
