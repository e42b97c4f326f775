""".ci/start-dockerd as .ci/run calls it gives its engine a bridge of its own, the one docs/tests.md
names, and --stop deletes it: run in a network namespace of the test's own, so the host's links
(a docker0 of the machine's own engine among them) neither count nor change."""

import json
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.docker.engine import START_DOCKERD, Engine, shared_engine
from tests.docs import read, section
from tests.host_network import IP

pytestmark = pytest.mark.docker


@pytest.fixture
def netns() -> Iterator[str]:
    name = f"vs-{uuid.uuid4().hex[:8]}"
    subprocess.run([IP, "netns", "add", name], check=True, timeout=30)
    try:
        yield name
    finally:
        subprocess.run([IP, "netns", "delete", name], capture_output=True, timeout=30)


def links(netns: str) -> set[str]:
    done = subprocess.run([IP, "-n", netns, "-json", "link", "show"], capture_output=True, text=True, check=True)
    return {link["ifname"] for link in json.loads(done.stdout)}


def test_the_ci_engine_has_the_bridge_the_docs_name_and_stop_deletes_it(netns: str) -> None:
    shared_engine()  # the same prerequisites; fails early with the same clear message
    in_netns = ["nsenter", f"--net=/run/netns/{netns}", str(START_DOCKERD)]
    state_dir = Path(tempfile.mkdtemp(prefix="vs-engine-", dir="/tmp"))
    try:
        started = subprocess.run([*in_netns, str(state_dir)], capture_output=True, text=True, timeout=60)
        assert started.returncode == 0, started.stderr
        (bridge,) = links(netns) - {"lo"}
        assert bridge not in ("docker0", "docker_gwbridge")
        options = Engine(started.stdout.strip()).docker("network", "inspect", "bridge", "--format", "{{json .Options}}")
        assert json.loads(options)["com.docker.network.bridge.name"] == bridge
        assert f"`{bridge}`" in section(read("docs/tests.md"), "What stays on the host")
    finally:
        subprocess.run([*in_netns, "--stop", str(state_dir)], capture_output=True, timeout=60)
        shutil.rmtree(state_dir, ignore_errors=True)
    assert links(netns) == {"lo"}
