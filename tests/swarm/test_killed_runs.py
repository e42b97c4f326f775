"""The next swarm run removes what a run killed outright (SIGKILL) left: its engines, still
running, and its network namespaces with every link in them, the host's end of a veth pair too;
and leaves what a run still going has made."""

import tempfile
from pathlib import Path

import pytest

from tests import host_network
from tests.conftest import finished_pid
from tests.swarm.cluster import (
    OWNER_FILE,
    RUN_FOLDER_PREFIX,
    RunNames,
    SwarmNode,
    remove_killed_runs,
    remove_run,
    run,
    veth_pair,
)

pytestmark = pytest.mark.swarm


def left_run(owner: int, subnet: int) -> Path:
    """What a swarm run of test process `owner` has made so far: its folder, the nodes' namespaces,
    the veth pair from the host to node 1, and node 1's engine, running."""
    root = Path(tempfile.mkdtemp(prefix=RUN_FOLDER_PREFIX, dir="/tmp"))
    (root / OWNER_FILE).write_text(f"{owner}\n", encoding="utf-8")
    names = RunNames(root)
    names.nodes.mkdir()
    for netns in (names.manager_netns, names.worker_netns):
        run(host_network.IP, "netns", "add", netns)
    veth_pair((None, names.host_veth, f"198.18.{subnet}.5"), (names.manager_netns, "vs-host", f"198.18.{subnet}.6"))
    SwarmNode(names.nodes / "n1", "vs-manager", names.manager_netns).start()
    return root


def netns_list() -> str:
    return run(host_network.IP, "netns", "list")


def engine_pid(root: Path) -> int:
    return int((RunNames(root).nodes / "n1" / "dockerd.pid").read_text(encoding="utf-8"))


def running(pid: int) -> bool:
    """Whether the process runs (a killed dockerd nobody reaps stays a zombie)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_a_killed_runs_engines_and_namespaces_go_and_a_running_ones_stay(still_going: int) -> None:
    roots: list[Path] = []
    try:
        roots += [left_run(finished_pid(), 253), left_run(still_going, 254)]
        killed, going = roots
        killed_names, going_names = RunNames(killed), RunNames(going)
        killed_engine = engine_pid(killed)

        remove_killed_runs()

        assert not killed.exists()
        assert killed_names.host_veth not in host_network.snapshot()
        assert killed_names.manager_netns not in netns_list() and killed_names.worker_netns not in netns_list()
        assert not running(killed_engine)
        assert going.exists() and going_names.host_veth in host_network.snapshot()
        assert going_names.manager_netns in netns_list()
        assert running(engine_pid(going))
    finally:
        for root in roots:
            remove_run(root)
