"""`docker stack deploy` of the shipped stack file (examples/swarm/stack.yml) on the real two-node
swarm, as docs/sources.md "Beyond one host" tells users to: images built with ./build.sh, the app on both
nodes, two sidecar replicas and nginx on the manager, all on the stack's own overlay network;
then a new app version deployed the same way reaches a browser's stream through nginx."""

import os
import re
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.docker.engine import DOCKER_CLI
from tests.docker.version_listener import VersionListener
from tests.e2e.base_image import ensure_base_image
from tests.e2e.project import make_project
from tests.sidecar_process import free_port
from tests.swarm.cluster import Cluster, step
from tests.waiting import wait_until

pytestmark = pytest.mark.swarm

STACK_FILE = "examples/swarm/stack.yml"
BUILD_TIMEOUT = 600  # seconds: the sidecar image's first build on a fresh engine (vfs copies every layer)


class Stack:
    """The project, the variables the stack file reads, and the commands a user runs."""

    def __init__(self, swarm: Cluster, project: Path, base_image: str) -> None:
        self.swarm, self.project, self.base_image = swarm, project, base_image
        self.name = f"vs{os.getpid()}"
        socket = swarm.manager.host.removeprefix("unix://")
        # nginx publishes its port on node 1, in node 1's network namespace: the host reaches it there.
        self.url = f"http://{swarm.manager_address_from_host}:{free_port()}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "SIDECAR_", "DOCKER"))}
        self.env.update(
            DOCKER=DOCKER_CLI,
            DOCKER_HOST=swarm.manager.host,
            DOCKER_BUILDKIT="1",
            BASE_IMAGE=base_image,  # the Dockerfiles' slim Python and nginx's image stand in for this local Debian
            NGINX_IMAGE=base_image,
            BUILD_NETWORK="none",
            PIP_NO_INDEX="1",
            STACK=self.name,
            APP_IMAGE=f"{self.name}-app",
            SIDECAR_IMAGE=f"{self.name}-sidecar",
            SIDECAR_VERSION="s1",
            HTTP_PORT=self.url.rsplit(":", 1)[1],
            DOCKER_SOCKET=socket,
            DOCKER_SOCKET_GID=str(os.stat(socket).st_gid),
        )

    def build(self, version: str) -> None:
        """./build.sh on the manager; the app image on the worker too (in place of a registry)."""
        with step(f"./build.sh --version {version} on the manager"):
            self._run(["./build.sh", "--version", version], BUILD_TIMEOUT)
        with step(f"building the app {version} on the worker"):
            self.swarm.worker.docker(
                "build", "--quiet", "--network", "none", "--build-arg", f"BASE_IMAGE={self.base_image}",
                "--build-arg", f"VERSION={version}", "--tag", f"{self.env['APP_IMAGE']}:{version}",
                str(self.project / "examples" / "app"), timeout=BUILD_TIMEOUT,
            )  # fmt: skip

    def deploy(self, version: str) -> None:
        self.env["APP_VERSION"] = version
        with step(f"docker stack deploy of {STACK_FILE} with APP_VERSION={version}"):
            self._run([DOCKER_CLI, "stack", "deploy", "--compose-file", STACK_FILE, self.name], 120)

    def remove(self) -> None:
        subprocess.run([DOCKER_CLI, "stack", "rm", self.name], env=self.env, capture_output=True, timeout=60)

    def tasks(self) -> str:
        """What `docker stack ps` shows, for a message when something does not come up."""
        done = subprocess.run(
            [DOCKER_CLI, "stack", "ps", "--no-trunc", "--format", "{{.Name}} {{.Node}} {{.CurrentState}} {{.Error}}",
             self.name], env=self.env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        return done.stdout + done.stderr

    def page_version(self) -> str | None:
        """The version on the page nginx serves from the app, or None while there is none."""
        try:
            with urllib.request.urlopen(f"{self.url}/", timeout=5) as reply:
                found = re.search(r'data-app-version="([^"]*)"', reply.read().decode())
        except OSError:
            return None
        return found.group(1) if found else None

    def wait(self, check: object, what: str, timeout: float = 180) -> None:
        try:
            wait_until(check, what, timeout=timeout)  # type: ignore[arg-type]
        except AssertionError as error:
            raise AssertionError(f"{error}\ndocker stack ps:\n{self.tasks()}") from None

    def _run(self, command: list[str], timeout: float) -> None:
        done = subprocess.run(command, cwd=self.project, env=self.env, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise AssertionError(f"{' '.join(command)} exited with {done.returncode}:\n{done.stderr[-4000:]}")


@pytest.fixture
def stack(swarm: Cluster, tmp_path: Path) -> Iterator[Stack]:
    with step("making the project (files, git, wheelhouse)"):
        make_project(tmp_path / "shop")
    with step("importing the Debian base image on both nodes"):
        base_image = ensure_base_image(swarm.manager.cli)
        ensure_base_image(swarm.worker.cli)
    stack = Stack(swarm, tmp_path / "shop", base_image)
    try:
        yield stack
    finally:
        stack.remove()


def test_the_shipped_stack_comes_up_and_a_new_app_version_reaches_an_open_stream(stack: Stack) -> None:
    stack.build("1.0")
    stack.deploy("1.0")
    stack.wait(lambda: stack.page_version() == "1.0", "nginx serving the app's page at 1.0")
    app_nodes = {line.split()[1] for line in stack.tasks().splitlines() if "_app." in line and " Running " in line}
    assert app_nodes == {"vs-manager", "vs-worker"}, f"the app runs on both nodes:\n{stack.tasks()}"
    browser = VersionListener(f"{stack.url}/events/version")
    try:
        browser.wait_for("1.0", timeout=60)

        stack.build("2.0")
        stack.deploy("2.0")
        browser.wait_for("2.0", timeout=180)
        assert browser.changes() == ["1.0", "2.0"]
        assert stack.page_version() == "2.0"
    finally:
        browser.close()
