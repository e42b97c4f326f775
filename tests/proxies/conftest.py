"""Fixtures of the proxies tier: any of the three proxies in front of a sidecar and the stand-in app."""

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.nginx.conftest import app_port  # noqa: F401 (the stand-in app, shared with the nginx tier)
from tests.nginx.nginx_server import NginxServer
from tests.proxies.proxy_servers import CaddyServer, HaproxyServer
from tests.proxy_process import ProxyProcess

StartAnyProxy = Callable[..., ProxyProcess]


@pytest.fixture
def start_any_proxy(tmp_path: Path, app_port: int) -> Iterator[StartAnyProxy]:  # noqa: F811
    """start_any_proxy(kind, sidecar_port, stream_timeout=None): "nginx", "caddy" or "haproxy"."""
    started: list[ProxyProcess] = []

    def start(kind: str, sidecar_port: int, stream_timeout: float | None = None) -> ProxyProcess:
        prefix = tmp_path / f"{kind}-{len(started)}"
        if kind == "nginx":
            proxy: ProxyProcess = NginxServer(prefix, sidecar_port, app_port, stream_timeout)
        elif kind == "haproxy":
            proxy = HaproxyServer(prefix, sidecar_port, app_port, stream_timeout)
        else:
            assert kind == "caddy" and stream_timeout is None, "Caddy sets no stream timeout to shorten"
            proxy = CaddyServer(prefix, sidecar_port, app_port)
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        proxy.stop()
