"""Run the real sidecar as a subprocess, as users do, for tests of every tier."""

import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TypeVar

REPO = Path(__file__).resolve().parent.parent
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class SidecarProcess:
    """`python -m sidecar ARGS` on 127.0.0.1 and a free port; logs go to a file under `log_dir`."""

    def __init__(
        self,
        args: Sequence[str],
        log_dir: Path,
        env: Mapping[str, str] | None = None,
        port: int | None = None,
        rlimits: Mapping[int, tuple[int, int]] | None = None,
        command: Sequence[str] = ("-m", "sidecar"),
    ) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_dir / f"sidecar-{self.port}.log"
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("SIDECAR_")}
        full_env.update(env or {})
        full_env.setdefault("SIDECAR_LOG_FORMAT", "json")
        self._log = self.log_path.open("ab")

        def set_rlimits() -> None:  # in the child, before it runs: resource.RLIMIT_* -> (soft, hard)
            for which, limit in (rlimits or {}).items():
                resource.setrlimit(which, limit)

        self.process = subprocess.Popen(
            [sys.executable, *command, "--host", "127.0.0.1", "--port", str(self.port), *args],
            cwd=log_dir,
            env=full_env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            preexec_fn=set_rlimits if rlimits else None,
        )

    def wait_ready(self, timeout: float = 15.0) -> dict[str, object]:
        """Wait until /healthz answers; returns its JSON. Fails if the process exits first."""
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"sidecar exited with {self.process.returncode}:\n{self.logs()}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as reply:
                    health: dict[str, object] = json.load(reply)
                    return health
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"sidecar not ready after {timeout} s:\n{self.logs()}") from None
                time.sleep(0.05)

    def health(self) -> dict[str, object]:
        with urllib.request.urlopen(f"{self.url}/healthz", timeout=5) as reply:
            health: dict[str, object] = json.load(reply)
            return health

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_events(self) -> list[dict[str, object]]:
        """The JSON log lines written so far."""
        events = []
        for line in self.logs().splitlines():
            if line.startswith("{"):
                events.append(json.loads(line))
        return events

    def stop(self, sig: int | None = signal.SIGTERM, timeout: float = 10.0) -> int:
        """Send `sig` (None: send nothing) and wait for the exit status (kills after `timeout`)."""
        if self.process.poll() is None:
            if sig is not None:
                self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode


def logged(sidecar: SidecarProcess, event: str, **contains: str) -> list[dict[str, object]]:
    """The sidecar's log lines of `event` whose fields contain the given texts."""
    return [
        line
        for line in sidecar.log_events()
        if line.get("event") == event and all(text in str(line.get(key)) for key, text in contains.items())
    ]
