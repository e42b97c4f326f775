"""The compose override for each other proxy, as Debian's docker-compose resolves it over
docker-compose.yml: the proxy takes nginx's place (nginx only under its profile), starts with the
shipped file and the variables docs/proxies.md names, and is the one service publishing a port."""

import os
from typing import Any

import pytest
import yaml

from tests.sidecar_process import REPO
from tests.static.test_deploy_files import check, tool

PROXIES = {
    "caddy": ("compose.caddy.yml", "./caddy:/etc/caddy:ro", ["caddy", "run", "--config", "/etc/caddy/Caddyfile"]),
    "haproxy": (
        "compose.haproxy.yml",
        "./haproxy/haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro",
        ["haproxy", "-db", "-f", "/usr/local/etc/haproxy/haproxy.cfg"],
    ),
}


def resolved(override: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HTTP_", "APP_", "CADDY_", "HAPROXY_"))}
    env["APP_VERSION"] = "abc1234"
    docker_compose = tool("docker-compose", "apt-get install docker-compose")
    command = [docker_compose, "-f", "docker-compose.yml", "-f", override, "config"]
    config: dict[str, Any] = yaml.safe_load(check(command, env))
    return config


@pytest.mark.parametrize("proxy", PROXIES)
def test_the_override_puts_the_proxy_in_nginxs_place(proxy: str) -> None:
    override, volume, command = PROXIES[proxy]
    services = resolved(override)["services"]
    assert services["nginx"]["profiles"] == ["nginx"]
    running = {name: service for name, service in services.items() if not service.get("profiles")}
    assert set(running) == {"app", "sidecar", proxy}
    assert [name for name, service in running.items() if service.get("ports")] == [proxy]
    service = running[proxy]
    assert service["ports"] == ["127.0.0.1:8000:80/tcp"]
    assert service["command"][: len(command)] == command
    assert service["environment"] == {"HTTP_PORT": "80", "APP_UPSTREAM": "app:8000", "SIDECAR_UPSTREAM": "sidecar:8080"}
    source, target, mode = volume.split(":")
    assert service["volumes"] == [f"{REPO / source}:{target}:{mode}"]
    assert service["depends_on"] == {
        "app": {"condition": "service_healthy"},
        "sidecar": {"condition": "service_healthy"},
    }
