"""A real reverse proxy (nginx, Caddy or HAProxy from Debian's packages) in the foreground on
127.0.0.1 and a free port, its output kept for the failure message."""

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from tests.sidecar_process import free_port


def binary(name: str) -> str:
    """The proxy's executable; fails the test (never skips it) when the package is missing."""
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if found is None:
        raise AssertionError(f"{name} is not installed: apt-get install {name} (Debian's package)")
    return found


class ProxyProcess:
    """Start with start(command) once the configuration is written under `prefix`."""

    # How a test ends it; SIGTERM cuts open streams at once in nginx and HAProxy.
    stop_signal = signal.SIGTERM

    def __init__(self, prefix: Path) -> None:
        self.prefix = prefix
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        prefix.mkdir(parents=True, exist_ok=True)
        self.log_path = prefix / "stderr.log"
        self._log = self.log_path.open("ab")
        self.process: subprocess.Popen[bytes] | None = None
        self.name = "the proxy"

    def start(self, command: Sequence[str], env: Mapping[str, str] | None = None, cwd: Path | None = None) -> None:
        self.name = Path(command[0]).name
        self.process = subprocess.Popen(
            command,
            cwd=cwd or self.prefix,
            env={**os.environ, **(env or {})},
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self._wait_listening()

    def _wait_listening(self, timeout: float = 10.0) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.process.returncode}:\n{self.errors()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise AssertionError(f"{self.name} not listening after {timeout} s:\n{self.errors()}") from None
                time.sleep(0.05)

    def log_files(self) -> list[Path]:
        return [self.log_path]

    def errors(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return "\n".join(path.read_text(errors="replace") for path in self.log_files() if path.exists())

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(self.stop_signal)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if not self._log.closed:
            self._log.close()
