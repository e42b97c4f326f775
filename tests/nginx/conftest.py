"""Fixtures of the nginx tier: the stand-in app and nginx with the shipped snippet."""

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.nginx.nginx_server import NginxServer, stand_in_app

StartNginx = Callable[..., NginxServer]


@pytest.fixture
def app_port() -> Iterator[int]:
    with stand_in_app() as port:
        yield port


@pytest.fixture
def start_nginx(tmp_path: Path, app_port: int) -> Iterator[StartNginx]:
    """start_nginx(sidecar_port, read_timeout=None): nginx in front of the sidecar and the app."""
    started: list[NginxServer] = []

    def start(sidecar_port: int, read_timeout: float | None = None) -> NginxServer:
        server = NginxServer(tmp_path / f"nginx-{len(started)}", sidecar_port, app_port, read_timeout)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
