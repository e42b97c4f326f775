"""The sidecar lifts its soft open-files limit to the hard one: every stream holds a socket."""

import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from tests.sidecar_process import free_port


def _soft_open_files_limit(pid: int) -> str:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            return line.split()[3]
    raise AssertionError("no open-files line in /proc/PID/limits")


def test_a_low_soft_limit_is_raised_to_the_hard_limit() -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    assert hard > 256, "this test needs a hard open-files limit above 256"
    process = subprocess.Popen(
        [sys.executable, "-m", "sidecar", "--port", str(free_port())],
        env={**os.environ, "APP_VERSION": "v1"},
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while _soft_open_files_limit(process.pid) == "256" and time.monotonic() < deadline:
            assert process.poll() is None, "the sidecar exited"
            time.sleep(0.05)
        expected = "unlimited" if hard == resource.RLIM_INFINITY else str(hard)
        assert _soft_open_files_limit(process.pid) == expected
    finally:
        process.terminate()
        process.wait(10)
