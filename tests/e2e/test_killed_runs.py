"""The next e2e run removes what a run killed outright left in the shared engine, and leaves what a
run still going has there."""

import subprocess

import pytest

from tests import host_network
from tests.conftest import finished_pid
from tests.docker.engine import Engine
from tests.e2e.killed_runs import COMPOSE_PROJECT_LABEL, PROJECT_PREFIX, remove_killed_runs

pytestmark = pytest.mark.docker


def test_a_killed_runs_compose_project_goes_and_a_running_ones_stays(docker_host: str, still_going: int) -> None:
    engine = Engine(docker_host)
    killed, going = f"{PROJECT_PREFIX}{finished_pid()}", f"{PROJECT_PREFIX}{still_going}"
    bridges = {}
    try:
        for project in (killed, going):
            network = engine.docker("network", "create", "--label", f"{COMPOSE_PROJECT_LABEL}={project}", project)
            bridges[project] = f"br-{network[:12]}"
            image = engine.build_app_image(f"{project}-app:1", "1")
            engine.run_app(f"{project}-app-1", image, labels={COMPOSE_PROJECT_LABEL: project})
        assert set(bridges.values()) <= set(host_network.snapshot())

        remove_killed_runs(docker_host)

        assert bridges[killed] not in host_network.snapshot()
        assert bridges[going] in host_network.snapshot()
        networks = engine.docker("network", "ls", "--format", "{{.Name}}").split()
        assert killed not in networks and going in networks
        containers = engine.docker("ps", "--all", "--format", "{{.Names}}").split()
        assert f"{killed}-app-1" not in containers and f"{going}-app-1" in containers
        images = engine.docker("images", "--format", "{{.Repository}}").split()
        assert f"{killed}-app" not in images and f"{going}-app" in images
    finally:
        engine.cleanup()
        for project in bridges:
            subprocess.run([*engine.cli, "network", "rm", project], capture_output=True, timeout=60)
