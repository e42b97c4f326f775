"""A real two-node Docker Swarm for the swarm tier: two private Debian dockerds (vfs, no iptables,
no default bridge, each with its own roots under one short /tmp folder), started and stopped by
the tests and cleaned up by PID.

Node 1, the manager, runs in this machine's network namespace; node 2, a worker, runs in a
network namespace of its own, joined to it by a veth pair. Two nodes in one namespace can form a
swarm over loopback, but not carry an overlay network (what every stack uses): each node makes
the same VXLAN device and the second fails ("error creating vxlan interface: file exists").
Each node also has its own host name (a UTS namespace), so the sidecar's messages tell them apart.
"""

import contextlib
import json
import random
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.docker.engine import BUSYBOX, DOCKER_CLI, START_DOCKERD, PrivateEngine
from tests.waiting import wait_until

IP = "/usr/sbin/ip" if Path("/usr/sbin/ip").exists() else "/sbin/ip"
# The test app's versions: tiny FROM-scratch images (tests/docker/engine.py), on both nodes.
APP_IMAGE = "vs-swarm-app"
APP_VERSIONS = ("1.0", "2.0", "3.0")
TMPFS_SIZE, TMPFS_WHEN_AVAILABLE = "8g", 12 * 2**30  # the nodes' data in memory, where there is room


def app_image(version: str) -> str:
    return f"{APP_IMAGE}:{version}"


@contextlib.contextmanager
def step(what: str) -> Iterator[None]:
    """Fail with a message that names the step of a long set-up that broke."""
    try:
        yield
    except (AssertionError, subprocess.SubprocessError, OSError) as error:
        raise AssertionError(f"swarm tier: {what} failed: {error}") from error


def run(*command: str) -> str:
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed ({result.returncode}): {result.stderr.strip()}")
    return result.stdout.strip()


class SwarmNode(PrivateEngine):
    """A dockerd with its own host name, and optionally its own network namespace."""

    def __init__(self, state_dir: Path, hostname: str, netns: str | None = None) -> None:
        wrapper = ["nsenter", f"--net=/run/netns/{netns}"] if netns else []
        wrapper += ["unshare", "--uts", "sh", "-c", 'hostname "$0" && exec "$@"', hostname]
        super().__init__(state_dir, wrapper)
        self.hostname = hostname


class Cluster:
    """The two-node swarm: `manager` (node 1) and `worker` (node 2), with the app images on both."""

    def __init__(self) -> None:
        # A short folder: the engines' unix sockets live below it and socket paths are limited to 108 bytes.
        root = self.root = Path(tempfile.mkdtemp(prefix="vs-sw-", dir="/tmp"))
        self.on_tmpfs = False
        # Addresses from the benchmarking range (no route here, nor Docker's address pools, uses it),
        # and names unique to this run, so two runs on one machine do not meet.
        self.netns = f"vs-{root.name[-8:]}"
        subnet = random.randint(1, 254)
        self.manager_address, self.worker_address = f"198.18.{subnet}.1", f"198.18.{subnet}.2"
        self.veth = f"vs{subnet}h"
        self.manager = SwarmNode(root / "n1", "vs-manager")
        self.worker = SwarmNode(root / "n2", "vs-worker", self.netns)
        self.services: list[str] = []

    def start(self) -> None:
        for tool in (DOCKER_CLI, BUSYBOX, Path(IP)):
            if not Path(tool).exists():
                raise AssertionError(f"swarm tier: {tool} is missing (Debian's docker.io, busybox-static, iproute2)")
        if _available_memory() >= TMPFS_WHEN_AVAILABLE:
            # vfs copies a whole image for each layer and container (5 GB in this tier): in memory
            # that takes a third of the time it takes on disk, and deleting it none.
            with step("mounting a tmpfs for the nodes' data"):
                run("mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE}", "tmpfs", str(self.root))
                self.on_tmpfs = True
        with step("making node 2's network namespace"):
            run(IP, "netns", "add", self.netns)
            run(IP, "link", "add", self.veth, "type", "veth", "peer", "name", "vs-node2", "netns", self.netns)
            run(IP, "address", "add", f"{self.manager_address}/30", "dev", self.veth)
            run(IP, "link", "set", self.veth, "up")
            for command in (
                ["address", "add", f"{self.worker_address}/30", "dev", "vs-node2"],
                ["link", "set", "vs-node2", "up"],
                ["link", "set", "lo", "up"],
            ):
                run(IP, "-n", self.netns, *command)
        with step("starting node 1 (manager)"):
            self.manager.start()
        with step("starting node 2 (worker)"):
            self.worker.start()
        with step("swarm init on node 1"):
            address = self.manager_address
            self.manager.docker("swarm", "init", "--advertise-addr", address, "--listen-addr", f"{address}:2377")
        with step("swarm join of node 2"):
            token = self.manager.docker("swarm", "join-token", "--quiet", "worker")
            self.worker.docker(
                "swarm", "join", "--token", token, "--advertise-addr", self.worker_address,
                "--listen-addr", f"{self.worker_address}:2377", f"{self.manager_address}:2377",
            )  # fmt: skip
        self.wait_ready()
        with step("building the app images on both nodes"):
            for node in (self.manager, self.worker):
                for version in APP_VERSIONS:
                    node.build_app_image(app_image(version), version)

    def wait_ready(self) -> None:
        """Both nodes up (a test may have stopped one) and ready in the swarm."""
        for node in (self.manager, self.worker):
            if not node.answers():
                with step(f"restarting {node.hostname}"):
                    node.start()
        wait_until(
            lambda: self.node_states() == {"vs-manager": "ready", "vs-worker": "ready"}, "both nodes ready", timeout=60
        )

    def node_states(self) -> dict[str, str]:
        nodes = json.loads(self.manager.docker("node", "inspect", *self._node_ids()))
        return {node["Description"]["Hostname"]: node["Status"]["State"] for node in nodes}

    def _node_ids(self) -> list[str]:
        return self.manager.docker("node", "ls", "--quiet").split()

    def create_service(self, name: str, image: str, *args: str) -> str:
        """A service of `image` (e.g. app_image("1.0")), removed by cleanup(); `args`: docker service create's."""
        self.services.append(name)
        self.manager.docker("service", "create", "--detach", "--quiet", "--name", name, *args, image)
        return name

    def update_service(self, name: str, *args: str) -> None:
        self.manager.docker("service", "update", "--detach", "--quiet", *args, name)

    def service(self, name: str) -> dict[str, Any]:
        found: dict[str, Any] = json.loads(self.manager.docker("service", "inspect", name))[0]
        return found

    def update_state(self, name: str) -> str | None:
        state: str | None = (self.service(name).get("UpdateStatus") or {}).get("State")
        return state

    def running_tasks(self, name: str) -> list[tuple[str, str]]:
        """(node host name, image) of each task of the service that runs now."""
        lines = self.manager.docker(
            "service",
            "ps",
            name,
            "--filter",
            "desired-state=running",
            "--format",
            "{{.Node}} {{.Image}} {{.CurrentState}}",
        ).splitlines()
        return [
            (node, image)
            for node, image, state in (line.split(" ", 2) for line in lines)
            if state.startswith("Running")
        ]

    def wait_running(self, name: str, version: str, replicas: int, on_both_nodes: bool = True) -> None:
        """Wait until `replicas` tasks run the image of `version` (spread over both nodes)."""

        def done() -> bool:
            tasks = self.running_tasks(name)
            nodes = {node for node, _ in tasks}
            return (
                len(tasks) == replicas
                and all(image == app_image(version) for _, image in tasks)
                and (not on_both_nodes or nodes == {"vs-manager", "vs-worker"})
            )

        wait_until(done, f"{replicas} tasks of {name} running {app_image(version)}", timeout=90)

    def event_times(self, since: float, **filters: str) -> list[tuple[float, dict[str, str]]]:
        """(engine time, attributes) of the manager's events since `since` that match `filters`."""
        args = ["events", "--since", f"{since:.3f}", "--until", f"{time.time():.3f}", "--format", "{{json .}}"]
        for key, value in filters.items():
            args += ["--filter", f"{key}={value}"]
        events = [json.loads(line) for line in self.manager.docker(*args).splitlines()]
        return [(event["timeNano"] / 1e9, event["Actor"]["Attributes"]) for event in events]

    def cleanup(self) -> None:
        """Remove the services the tests made."""
        if self.services and self.manager.answers():
            subprocess.run([*self.manager.cli, "service", "rm", *self.services], capture_output=True, timeout=60)
        self.services.clear()

    def destroy(self) -> None:
        """Stop both engines (by PID, at once), delete their data and node 2's namespace (its veth with it)."""
        stopping = [
            subprocess.Popen([str(START_DOCKERD), "--stop", str(node.state_dir)], stdout=subprocess.DEVNULL)
            for node in (self.worker, self.manager)
        ]
        for stop in stopping:
            stop.wait(60)
        subprocess.run([IP, "netns", "delete", self.netns], capture_output=True, timeout=30)
        subprocess.run([IP, "link", "delete", self.veth], capture_output=True, timeout=30)
        if self.on_tmpfs:
            subprocess.run(["umount", "--lazy", str(self.root)], capture_output=True, timeout=30)
        shutil.rmtree(self.root, ignore_errors=True)


def _available_memory() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0
