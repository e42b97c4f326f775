"""What an e2e run killed outright (SIGKILL) leaves in the shared engine, and its removal by the
next run: the compose project (containers, and a network whose bridge is a link in the host's
network namespace) and the project's images."""

import subprocess
from pathlib import Path

from tests.docker.engine import DOCKER_CLI

PROJECT_PREFIX = "vse2e"  # + the test run's PID: the compose project's name, and its images'
ADOPTION_PREFIX = "vsadopt"  # + the PID: the adoption test's compose project (its images are named by README)
COMPOSE_PROJECT_LABEL = "com.docker.compose.project"


def remove_killed_runs(docker_host: str) -> None:
    """Remove what e2e runs that were killed left in the engine (containers, the project's network
    and its bridge in the host's namespace, images); those of runs still going stay."""
    docker = [DOCKER_CLI, "--host", docker_host]

    def listed(*args: str) -> list[str]:
        return subprocess.run([*docker, *args], capture_output=True, text=True, timeout=60).stdout.split()

    label = f'{{{{.Label "{COMPOSE_PROJECT_LABEL}"}}}}'
    projects = set(listed("ps", "--all", "--format", label)) | set(listed("network", "ls", "--format", label))
    for project in projects:
        owner = project.removeprefix(PROJECT_PREFIX).removeprefix(ADOPTION_PREFIX)
        if project == owner or not owner.isdigit() or Path(f"/proc/{owner}").exists():
            continue
        by_label = ["--filter", f"label={COMPOSE_PROJECT_LABEL}={project}"]
        if containers := listed("ps", "--all", "--quiet", *by_label):
            subprocess.run([*docker, "rm", "--force", *containers], capture_output=True, timeout=120)
        if networks := listed("network", "ls", "--quiet", *by_label):
            subprocess.run([*docker, "network", "rm", *networks], capture_output=True, timeout=60)
        # By name: a run still going may hold the same image under its own.
        tags = ["--format", "{{.Repository}}:{{.Tag}}", "--filter", f"reference={project}-*"]
        if images := listed("images", *tags):
            subprocess.run([*docker, "rmi", *images], capture_output=True, timeout=120)
