"""`--workers N`: several sidecar processes on one port, started and stopped as one."""

import os
import socket
import subprocess
import sys
from pathlib import Path

from tests.conftest import StartSidecar
from tests.sidecar_process import free_port


def _worker_pids(supervisor: int) -> list[int]:
    with open(f"/proc/{supervisor}/task/{supervisor}/children") as children:
        return [int(pid) for pid in children.read().split()]


def test_two_workers_share_the_port_and_stop_together(start_sidecar: StartSidecar, tmp_path: Path) -> None:
    version_file = tmp_path / "version.txt"
    version_file.write_text("v1\n")
    sidecar = start_sidecar(["--source", "file", "--version-file", str(version_file), "--workers", "2"])
    workers = _worker_pids(sidecar.process.pid)
    assert len(workers) == 2
    # New connections are spread over the workers by the kernel; each one knows the version.
    assert {str(sidecar.health()["version"]) for _ in range(40)} == {"v1"}
    assert sidecar.stop() == 0
    assert not [pid for pid in workers if os.path.exists(f"/proc/{pid}")]


def test_a_taken_port_stops_start_up_with_one_line(tmp_path: Path) -> None:
    port = free_port()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        done = subprocess.run(
            [sys.executable, "-m", "sidecar", "--port", str(port), "--workers", "2"],
            env={**os.environ, "APP_VERSION": "v1"},
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]
    assert f"--port {port}" in done.stderr
