"""A real nginx (Debian's package) in the foreground with its own prefix, serving the shipped
snippet in front of a sidecar and a stand-in app, on 127.0.0.1 and a free port."""

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.proxy_process import ProxyProcess, binary
from tests.sidecar_process import REPO

SNIPPET = REPO / "nginx" / "version-sidecar.conf"
SHIPPED_READ_TIMEOUT = "proxy_read_timeout 300s;"


def nginx_binary() -> str:
    return binary("nginx")


def snippet_with_read_timeout(seconds: float | None) -> str:
    """The shipped snippet, with its read timeout shortened for a test (None: as shipped)."""
    text = SNIPPET.read_text(encoding="utf-8")
    if seconds is None:
        return text
    assert text.count(SHIPPED_READ_TIMEOUT) == 1, "the snippet's read timeout line moved: update this test"
    return text.replace(SHIPPED_READ_TIMEOUT, f"proxy_read_timeout {seconds}s;")


class NginxServer(ProxyProcess):
    """nginx -p PREFIX -c nginx.conf, with the snippet included in a server that turns gzip on
    for event streams and buffers every response (nginx's default)."""

    def __init__(
        self, prefix: Path, sidecar_port: int | Sequence[int], app_port: int, read_timeout: float | None = None
    ) -> None:
        """`sidecar_port`: one sidecar, or several, as an upstream of that many servers."""
        super().__init__(prefix)
        sidecar_ports = [sidecar_port] if isinstance(sidecar_port, int) else list(sidecar_port)
        sidecar_servers = " ".join(f"server 127.0.0.1:{port};" for port in sidecar_ports)
        (prefix / "version-sidecar.conf").write_text(snippet_with_read_timeout(read_timeout), encoding="utf-8")
        (prefix / "nginx.conf").write_text(
            f"""
daemon off;
master_process on;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;
events {{ worker_connections 256; }}
http {{
    access_log {prefix}/access.log;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    # A site that compresses event streams and ignores the upstream's X-Accel-Buffering: the
    # snippet must keep events flowing by its own settings.
    proxy_ignore_headers X-Accel-Buffering;
    gzip on;
    gzip_min_length 1;
    gzip_types text/event-stream application/javascript text/javascript;
    upstream version_sidecar {{ {sidecar_servers} }}
    server {{
        listen 127.0.0.1:{self.port};
        include {prefix}/version-sidecar.conf;
        location / {{ proxy_pass http://127.0.0.1:{app_port}; }}
    }}
}}
""",
            encoding="utf-8",
        )
        self.start(
            [nginx_binary(), "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-e", str(prefix / "error.log")]
        )

    def log_files(self) -> list[Path]:
        return [self.log_path, self.prefix / "error.log"]


class _StandInApp(BaseHTTPRequestHandler):
    """Answers every request with its own name and the path, so a test sees who served it."""

    def do_GET(self) -> None:
        body = f"stand-in app: {self.path}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def stand_in_app() -> Iterator[int]:
    """A tiny app server on 127.0.0.1; yields its port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _StandInApp)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
