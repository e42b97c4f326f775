"""The example app: serves index.html with its version filled in, and /healthz."""

import html
import os
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

VERSION = os.environ.get("APP_VERSION", "dev")
PAGE = Path(__file__).with_name("index.html").read_text(encoding="utf-8")
PAGE = PAGE.replace("{{version}}", html.escape(VERSION, quote=True)).encode()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/healthz":
            self.reply(200, "text/plain", b"ok\n")
        elif self.path.split("?")[0] == "/":
            self.reply(200, "text/html; charset=utf-8", PAGE)
        else:
            self.reply(404, "text/plain", b"not found\n")

    def reply(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


if __name__ == "__main__":
    # As PID 1 in a container, SIGTERM does nothing unless handled: without this, every stop
    # (a rolling update, `docker stack rm`) waits out the engine's 10 s grace period.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    ThreadingHTTPServer(("0.0.0.0", 8000), Handler).serve_forever()
