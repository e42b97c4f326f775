"""A real two-node Docker Swarm for the swarm tier: two private Debian dockerds (vfs, no iptables,
no default bridge, each with its own roots under one short /tmp folder), started and stopped by
the tests and cleaned up by PID.

Each node runs in a network namespace of its own, the two joined by a veth pair. Two nodes in one
namespace can form a swarm over loopback, but not carry an overlay network (what every stack
uses): each node makes the same VXLAN device and the second fails ("error creating vxlan
interface: file exists"). And a node in the host's namespace would leave links there that
outlive it (`docker swarm init` makes docker_gwbridge): in a namespace of its own, whatever a node
makes goes with the namespace. The host reaches node 1 (a port a stack publishes) over one more
veth pair, whose host end also goes with node 1's namespace. Each node also has its own host name
(a UTS namespace), so the sidecar's messages tell them apart.

A run that was killed leaves its engines running and its namespaces behind: the next run stops
and deletes them (a run's folder names the test run that owns it, and what it made).
"""

import contextlib
import json
import os
import random
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.docker.engine import BUSYBOX, DOCKER_CLI, START_DOCKERD, PrivateEngine
from tests.host_network import IP
from tests.waiting import wait_until

# The test app's versions: tiny FROM-scratch images (tests/docker/engine.py), on both nodes.
APP_IMAGE = "vs-swarm-app"
APP_VERSIONS = ("1.0", "2.0", "3.0")
TMPFS_SIZE, TMPFS_WHEN_AVAILABLE = "8g", 12 * 2**30  # the nodes' data in memory, where there is room
RUN_FOLDER_PREFIX = "vs-sw-"  # /tmp/vs-sw-XXXXXXXX: one run's nodes
OWNER_FILE = "owner"  # in a run's folder: the PID of the test run that made it


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


VethEnd = tuple[str | None, str, str]  # network namespace (None: the host's), device name, its /30 address


def veth_pair(end: VethEnd, peer: VethEnd) -> None:
    """A veth pair between two namespaces, both ends up with their addresses."""
    (netns, name, _), (peer_netns, peer_name, _) = end, peer
    run(*_ip_in(netns), "link", "add", name, "type", "veth", "peer", "name", peer_name, "netns", str(peer_netns))
    for on, device, address in (end, peer):
        run(*_ip_in(on), "address", "add", f"{address}/30", "dev", device)
        run(*_ip_in(on), "link", "set", device, "up")


def _ip_in(netns: str | None) -> list[str]:
    return [IP, "-n", netns] if netns else [IP]


class SwarmNode(PrivateEngine):
    """A dockerd with its own host name, and optionally its own network namespace."""

    def __init__(self, state_dir: Path, hostname: str, netns: str) -> None:
        wrapper = ["nsenter", f"--net=/run/netns/{netns}"]
        wrapper += ["unshare", "--uts", "sh", "-c", 'hostname "$0" && exec "$@"', hostname]
        super().__init__(state_dir, wrapper)
        self.hostname = hostname


class RunNames:
    """What one run makes outside its folder, named after the folder (so a later run can find it)."""

    def __init__(self, root: Path) -> None:
        tag = root.name.removeprefix(RUN_FOLDER_PREFIX)
        self.nodes = root / "nodes"  # the engines' roots (a tmpfs, where there is room)
        self.manager_netns, self.worker_netns = f"vs-{tag}-1", f"vs-{tag}-2"
        self.host_veth = f"vs{tag}h"  # the host's end of the pair to node 1 (at most 15 characters)


class Cluster:
    """The two-node swarm: `manager` (node 1) and `worker` (node 2), with the app images on both."""

    def __init__(self) -> None:
        # A short folder: the engines' unix sockets live below it and socket paths are limited to 108 bytes.
        root = self.root = Path(tempfile.mkdtemp(prefix=RUN_FOLDER_PREFIX, dir="/tmp"))
        (root / OWNER_FILE).write_text(f"{os.getpid()}\n", encoding="utf-8")
        self.names = RunNames(root)
        # Addresses from the benchmarking range (no route here, nor Docker's address pools, uses it).
        subnet = random.randint(1, 254)
        self.manager_address, self.worker_address = f"198.18.{subnet}.1", f"198.18.{subnet}.2"
        self.host_address, self.manager_address_from_host = f"198.18.{subnet}.5", f"198.18.{subnet}.6"
        self.manager = SwarmNode(self.names.nodes / "n1", "vs-manager", self.names.manager_netns)
        self.worker = SwarmNode(self.names.nodes / "n2", "vs-worker", self.names.worker_netns)
        self.services: list[str] = []

    def start(self) -> None:
        for tool in (DOCKER_CLI, BUSYBOX, Path(IP)):
            if not Path(tool).exists():
                raise AssertionError(f"swarm tier: {tool} is missing (Debian's docker.io, busybox-static, iproute2)")
        with step("removing what killed runs left"):
            remove_killed_runs()
        self.names.nodes.mkdir()
        if _available_memory() >= TMPFS_WHEN_AVAILABLE:
            # vfs copies a whole image for each layer and container (5 GB in this tier): in memory
            # that takes a third of the time it takes on disk, and deleting it none.
            with step("mounting a tmpfs for the nodes' data"):
                run("mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE}", "tmpfs", str(self.names.nodes))
        names = self.names
        with step("making the nodes' network namespaces"):
            for netns in (names.manager_netns, names.worker_netns):
                run(IP, "netns", "add", netns)
                run(IP, "-n", netns, "link", "set", "lo", "up")
            to_worker = (names.manager_netns, "vs-node1", self.manager_address)
            veth_pair(to_worker, (names.worker_netns, "vs-node2", self.worker_address))
            to_host = (names.manager_netns, "vs-host", self.manager_address_from_host)
            veth_pair((None, names.host_veth, self.host_address), to_host)
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
        """Stop both engines and delete all this run made."""
        remove_run(self.root)


def remove_run(root: Path) -> None:
    """Stop a run's engines (by PID, at once), delete the host's end of the veth pair to node 1 and
    the nodes' namespaces (every link the nodes made goes with them), then their data."""
    names = RunNames(root)
    stopping = [
        subprocess.Popen([str(START_DOCKERD), "--stop", str(names.nodes / node)], stdout=subprocess.DEVNULL)
        for node in ("n1", "n2")
    ]
    for stop in stopping:
        stop.wait(60)
    # The host's end first: the kernel takes a deleted namespace's links down in the background,
    # and the host must have them gone when this returns.
    subprocess.run([IP, "link", "delete", names.host_veth], capture_output=True, timeout=30)
    for netns in (names.manager_netns, names.worker_netns):
        subprocess.run([IP, "netns", "delete", netns], capture_output=True, timeout=30)
    if names.nodes.is_mount():
        subprocess.run(["umount", "--lazy", str(names.nodes)], capture_output=True, timeout=30)
    shutil.rmtree(root, ignore_errors=True)


def remove_killed_runs() -> None:
    """Remove what runs that were killed left (their test run is gone); other runs' stay."""
    for root in Path("/tmp").glob(f"{RUN_FOLDER_PREFIX}*"):
        try:
            owner = int((root / OWNER_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # not a run's folder, or one being made
        if owner != os.getpid() and not Path(f"/proc/{owner}").exists():
            remove_run(root)


def _available_memory() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0
