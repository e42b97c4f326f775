"""Fixtures shared by every test tier."""

import subprocess
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests import host_network
from tests.docker.version_listener import VersionListener
from tests.sidecar_process import SidecarProcess

StartSidecar = Callable[..., SidecarProcess]


@pytest.fixture(scope="session")
def host_network_kept() -> Iterator[None]:
    """For the tiers that make links (docker, e2e, swarm): the run fails, naming them, when it
    leaves links or addresses in the host's network namespace that were not there before it."""
    before = host_network.snapshot()
    yield
    left = host_network.leftovers(before, host_network.snapshot())
    if left:
        pytest.fail(f"the test run left these in the host's network namespace: {'; '.join(left)}", pytrace=False)


@pytest.fixture
def start_sidecar(tmp_path: Path) -> Iterator[StartSidecar]:
    """Start real sidecar processes (ready when returned); all are stopped at the end of the test."""
    started: list[SidecarProcess] = []

    def start(
        args: Sequence[str],
        env: Mapping[str, str] | None = None,
        port: int | None = None,
        wait: bool = True,
        **options: Any,
    ) -> SidecarProcess:
        sidecar = SidecarProcess(args, tmp_path, env=env, port=port, **options)
        started.append(sidecar)
        if wait:
            sidecar.wait_ready()
        return sidecar

    yield start
    for sidecar in started:
        sidecar.stop()


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


@pytest.fixture
def name() -> Callable[[str], str]:
    """name("app") -> a container or image name no other test run uses."""
    run = uuid.uuid4().hex[:8]
    return lambda what: f"vs-{run}-{what}"


@pytest.fixture
def still_going() -> Iterator[int]:
    """The PID of a process that runs until the test ends (a test run still going, for the tiers
    that clean up after killed runs)."""
    process = subprocess.Popen(["sleep", "600"])
    yield process.pid
    process.kill()
    process.wait()


def finished_pid() -> int:
    """The PID of a process that has ended (a killed test run's)."""
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid
