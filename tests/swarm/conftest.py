"""Fixtures of the swarm tier: one real two-node swarm for the whole tier (set up once: it takes
seconds, and a test's services are removed after it), and sidecars following its services."""

from collections.abc import Callable, Iterator

import pytest

from tests.conftest import StartSidecar
from tests.sidecar_process import SidecarProcess
from tests.swarm.cluster import Cluster

FollowService = Callable[..., SidecarProcess]


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    cluster = Cluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()


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
