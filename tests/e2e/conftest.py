"""Fixtures of the e2e tier: a real Docker Engine, the local base image, Chromium."""

import os
import subprocess
from collections.abc import Iterator

import pytest

from tests.browser.conftest import browser, playwright  # noqa: F401  (fixtures shared with the browser tier)
from tests.e2e.base_image import ensure_base_image
from tests.sidecar_process import REPO

DOCKER = "/usr/bin/docker"  # Debian's client, matching the engine; a newer one may come first on PATH


def _answers(docker_host: str) -> bool:
    check = [DOCKER, "-H", docker_host, "version", "--format", "{{.Server.Version}}"]
    return subprocess.run(check, capture_output=True, timeout=30).returncode == 0


@pytest.fixture(scope="session")
def docker_host() -> Iterator[str]:
    """DOCKER_HOST of a running engine: the one DOCKER_HOST names, else one .ci/start-dockerd starts."""
    if not os.path.exists(DOCKER):
        pytest.fail(f"the e2e tier needs Debian's docker.io ({DOCKER}): apt-get install docker.io")
    given = os.environ.get("DOCKER_HOST")
    if given and _answers(given):
        yield given
        return
    started = subprocess.run([str(REPO / ".ci/start-dockerd")], capture_output=True, text=True, timeout=120)
    if started.returncode != 0:
        pytest.fail(f"no Docker Engine: .ci/start-dockerd failed:\n{started.stderr}")
    yield started.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="session")
def base_image(docker_host: str) -> str:
    """A Debian bookworm image with python3, python3-venv and nginx, made locally (cached)."""
    os.environ["DOCKER_HOST"] = docker_host  # for ensure_base_image's docker calls
    return ensure_base_image([DOCKER, "-H", docker_host])
