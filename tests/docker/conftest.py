"""Fixtures of the docker tier: a real Docker Engine (unique names and SSE listeners: tests/conftest.py)."""

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.docker.engine import Engine, PrivateEngine, shared_engine


@pytest.fixture(scope="session", autouse=True)
def keeps_host_network(host_network_kept: None) -> None:
    """The tier leaves no link or address in the host's namespace (see tests/conftest.py)."""


@pytest.fixture
def engine() -> Iterator[Engine]:
    """The shared engine; what the test creates in it is removed afterwards."""
    engine = shared_engine()
    yield engine
    engine.cleanup()


@pytest.fixture
def private_engine() -> Iterator[PrivateEngine]:
    """An engine of the test's own, started; stopped and deleted (with all it holds) afterwards."""
    shared_engine()  # the same prerequisites; fails early with the same clear message
    # A short folder: the engine's unix sockets live below it and socket paths are limited to 108 bytes.
    engine = PrivateEngine(Path(tempfile.mkdtemp(prefix="vs-engine-", dir="/tmp")))
    try:
        engine.start()
        yield engine
    finally:
        engine.destroy()
