"""Fixtures of the e2e tier: a real Docker Engine, the local base image, Chromium."""

import pytest

from tests.browser.conftest import browser, playwright  # noqa: F401  (fixtures shared with the browser tier)
from tests.docker.engine import DOCKER_CLI, shared_engine
from tests.e2e.base_image import ensure_base_image


@pytest.fixture(scope="session", autouse=True)
def keeps_host_network(host_network_kept: None) -> None:
    """The tier leaves no link or address in the host's namespace (see tests/conftest.py)."""


@pytest.fixture(scope="session")
def docker_host() -> str:
    """DOCKER_HOST of the engine .ci/start-dockerd started (fails when none answers)."""
    return shared_engine().host


@pytest.fixture(scope="session")
def base_image(docker_host: str) -> str:
    """A Debian bookworm image with python3, python3-venv and nginx, made locally (cached)."""
    return ensure_base_image([DOCKER_CLI, "--host", docker_host])
