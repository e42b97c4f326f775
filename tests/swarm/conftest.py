"""Fixtures of the swarm tier: one real two-node swarm for the whole tier (set up once: it takes
seconds, and a test's services are removed after it), and sidecars following its services."""

import signal
from collections.abc import Callable, Iterator
from types import FrameType

import pytest

from tests.conftest import StartSidecar
from tests.sidecar_process import SidecarProcess
from tests.swarm.cluster import Cluster

FollowService = Callable[..., SidecarProcess]


@pytest.fixture(scope="session", autouse=True)
def keeps_host_network(host_network_kept: None) -> None:
    """The swarm leaves no link or address in the host's namespace, however the tier ends."""


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@pytest.fixture(scope="session")
def cluster(keeps_host_network: None) -> Iterator[Cluster]:
    # A run stopped with SIGTERM (a CI job's time limit) ends like Ctrl-C: the swarm is removed.
    # (One killed with SIGKILL leaves it to the next run: Cluster.start.)
    sigterm = signal.signal(signal.SIGTERM, _interrupt)
    cluster = Cluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()
        signal.signal(signal.SIGTERM, sigterm)


@pytest.fixture
def swarm(cluster: Cluster) -> Iterator[Cluster]:
    """The swarm with both nodes up and ready; the services a test creates are removed after it."""
    cluster.wait_ready()
    yield cluster
    cluster.cleanup()


@pytest.fixture
def follow(swarm: Cluster, start_sidecar: StartSidecar) -> FollowService:
    """follow(service, *args) -> a sidecar on the swarm source, talking to the manager."""

    def start(service: str, *args: str, wait: bool = True) -> SidecarProcess:
        command = ["--source", "swarm", "--swarm-service", service, *args]
        return start_sidecar(command, env={"DOCKER_HOST": swarm.manager.host}, wait=wait)

    return start
