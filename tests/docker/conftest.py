"""Fixtures of the docker tier: a real Docker Engine, unique names, SSE listeners."""

import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.docker.engine import Engine, PrivateEngine, shared_engine
from tests.docker.version_listener import VersionListener


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


@pytest.fixture
def name() -> Callable[[str], str]:
    """name("app") -> a container or image name no other test run uses."""
    run = uuid.uuid4().hex[:8]
    return lambda what: f"vs-{run}-{what}"


@pytest.fixture
def listen() -> Iterator[Callable[[str], VersionListener]]:
    """listen(sidecar.url) -> a connected VersionListener; closed at the end of the test."""
    listeners: list[VersionListener] = []

    def open_listener(base_url: str) -> VersionListener:
        listener = VersionListener(f"{base_url}/events/version")
        listeners.append(listener)
        return listener

    yield open_listener
    for listener in listeners:
        listener.close()
