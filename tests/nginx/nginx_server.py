"""A real nginx (Debian's package) in the foreground with its own prefix, serving the shipped
snippet in front of a sidecar and a stand-in app, on 127.0.0.1 and a free port."""

import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.sidecar_process import REPO, free_port

SNIPPET = REPO / "nginx" / "version-sidecar.conf"
SHIPPED_READ_TIMEOUT = "proxy_read_timeout 300s;"


def nginx_binary() -> str:
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")
    if found is None:
        raise AssertionError("nginx is not installed: apt-get install nginx (Debian's package)")
    return found


def snippet_with_read_timeout(seconds: float | None) -> str:
    """The shipped snippet, with its read timeout shortened for a test (None: as shipped)."""
    text = SNIPPET.read_text(encoding="utf-8")
    assert text.count(SHIPPED_READ_TIMEOUT) == 1, "the snippet's read timeout line moved: update this test"
    if seconds is None:
        return text
    return text.replace(SHIPPED_READ_TIMEOUT, f"proxy_read_timeout {seconds}s;")


class NginxServer:
    """nginx -p PREFIX -c nginx.conf, with the snippet included in a server that turns gzip on
    for event streams and buffers every response (nginx's default)."""

    def __init__(
        self, prefix: Path, sidecar_port: int | Sequence[int], app_port: int, read_timeout: float | None = None
    ) -> None:
        """`sidecar_port`: one sidecar, or several, as an upstream of that many servers."""
        sidecar_ports = [sidecar_port] if isinstance(sidecar_port, int) else list(sidecar_port)
        sidecar_servers = " ".join(f"server 127.0.0.1:{port};" for port in sidecar_ports)
        self.prefix = prefix
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        prefix.mkdir(parents=True, exist_ok=True)
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
        self._log = (prefix / "stderr.log").open("ab")
        self.process = subprocess.Popen(
            [nginx_binary(), "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-e", str(prefix / "error.log")],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self._wait_listening()

    def _wait_listening(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"nginx exited with {self.process.returncode}:\n{self.errors()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"nginx not listening after {timeout} s:\n{self.errors()}") from None
                time.sleep(0.05)

    def errors(self) -> str:
        self._log.flush()
        logs = [self.prefix / "stderr.log", self.prefix / "error.log"]
        return "\n".join(path.read_text(errors="replace") for path in logs if path.exists())

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()  # fast shutdown: open streams are cut
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


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
