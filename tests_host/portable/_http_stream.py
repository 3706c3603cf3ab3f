"""An in-memory HTTP connection for driving microdot without sockets (wasm MicroPython has none): the object
microdot's `handle_request(reader, writer)` reads a raw request from and writes the response to."""


class Stream:
    def __init__(self, data, peer):
        self.data = data
        self.pos = 0
        self.out = b""
        self.peer = peer

    async def readline(self):
        i = self.data.find(b"\n", self.pos)
        i = len(self.data) if i < 0 else i + 1
        line = self.data[self.pos:i]
        self.pos = i
        return line

    async def readexactly(self, n):
        b = self.data[self.pos:self.pos + n]
        self.pos += len(b)
        return b

    async def read(self, n=-1):
        return await self.readexactly(len(self.data) - self.pos if n < 0 else n)

    async def awrite(self, data):
        self.out += data if isinstance(data, bytes) else data.encode()

    async def aclose(self):
        pass

    def get_extra_info(self, name):
        return self.peer


async def http(md, raw, peer=("192.168.1.20", 40000)):
    """(status, header lines, body) of microdot app `md`'s answer to the raw request bytes `raw` from `peer`."""
    s = Stream(raw, peer)
    await md.handle_request(s, s)
    head, _, body = s.out.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    return int(lines[0].split()[1]), lines[1:], body
