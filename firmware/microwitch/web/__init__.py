"""The node's own web page (issue 9): first run, people and devices, QR-code provisioning.

Page logic is sans-I/O (`app.WebApp.handle(Request) -> Response`) so the portable tests drive it without
sockets; `server.py` is the thin microdot glue that serves it.
"""
