"""The shipped Docker socket filter (haproxy/docker-socket-filter.cfg) run by Debian's haproxy in
front of a test's engine, as the default deployment runs it.

`running_socket_filter(engine_socket, log_path)` yields the filter's http:// URL while the block
runs; `config` runs another config instead (a test's copy without one of the allowed requests).
`request(url, method, path)` sends one request and returns (status, body) without raising on 4xx.
"""

import contextlib
import http.client
import os
import re
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from urllib.parse import urlsplit

from tests.sidecar_process import REPO, free_port
from tests.waiting import wait_until

FILTER_CONFIG = REPO / "haproxy" / "docker-socket-filter.cfg"
HAPROXY = "/usr/sbin/haproxy"  # Debian's haproxy package
# An httplog line: ... frontend backend/server Tq/Tw/Tc/Tr/Ta status bytes ... "METHOD URI HTTP/1.1"
LOG_LINE = re.compile(r'^\S+ \[[^]]+\] \S+ \S+ \S+ (?P<status>\d{3}) .*"(?P<method>\S+) (?P<uri>\S+) HTTP/[0-9.]+"$')


def request(url: str, method: str, path: str, timeout: float = 10) -> tuple[int, bytes]:
    """One request to the filter at `url` (http://host:port); (status, body), whatever the status."""
    where = urlsplit(url)
    connection = http.client.HTTPConnection(where.hostname or "", where.port, timeout=timeout)
    try:
        connection.request(method, path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def unix_socket_of(host: str) -> str:
    """The socket path of a unix:// DOCKER_HOST (the filter reaches the engine through it)."""
    if not host.startswith("unix://"):
        raise AssertionError(f"the filter proxies the engine's unix socket; DOCKER_HOST is {host}")
    return host.removeprefix("unix://")


@contextlib.contextmanager
def running_socket_filter(
    engine_socket: str,
    log_path: Path,
    config: Path = FILTER_CONFIG,
    env: Mapping[str, str] | None = None,
    port: int | None = None,
) -> Iterator[str]:
    """haproxy -db -f `config` with DOCKER_SOCKET=`engine_socket`, on 127.0.0.1 and a free port (or
    `port`), its log in `log_path`; `env` adds to its environment (say, FILTER_TIMEOUT)."""
    if shutil.which(HAPROXY) is None:
        raise AssertionError(f"{HAPROXY} is missing: install Debian's haproxy")
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    filter_env = {
        **os.environ,
        "DOCKER_SOCKET": engine_socket,
        "FILTER_PORT": str(port),
        "FILTER_ADDRESS": "127.0.0.1",
        **(env or {}),
    }
    with log_path.open("ab") as log:
        haproxy = subprocess.Popen(
            [HAPROXY, "-db", "-f", str(config)], env=filter_env, stdout=log, stderr=subprocess.STDOUT
        )

    def answers() -> bool:
        if haproxy.poll() is not None:
            raise AssertionError(f"the socket filter exited with {haproxy.returncode}:\n{log_path.read_text()}")
        try:
            return request(url, "GET", "/version", timeout=2)[0] in (200, 403)  # 403: a test's config
        except OSError:
            return False

    try:
        wait_until(answers, "the socket filter to answer", timeout=15, details=log_path.read_text)
        yield url
    finally:
        haproxy.terminate()
        haproxy.wait(10)


def logged_requests(log_path: Path) -> list[tuple[int, str, str]]:
    """(status, method, path) of each request in the filter's log (haproxy's httplog lines)."""
    found = []
    for line in log_path.read_text(encoding="utf-8").splitlines():
        if match := LOG_LINE.search(line):
            found.append((int(match["status"]), match["method"], match["uri"].split("?")[0]))
    return found


def without_line(config: Path, line: str, copy: Path) -> Path:
    """A copy of `config` at `copy` with the one line that equals `line` (stripped) left out."""
    lines = config.read_text(encoding="utf-8").splitlines(keepends=True)
    kept = [each for each in lines if each.strip() != line]
    if len(kept) != len(lines) - 1:
        raise AssertionError(f"{config} has no line {line!r} (or more than one)")
    copy.write_text("".join(kept), encoding="utf-8")
    return copy
