"""A real Prometheus server (Debian's package) on 127.0.0.1 and a free port, scraping every second
whatever targets a test names, with its own storage; and promtool."""

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from tests.sidecar_process import free_port

CONFIG = """\
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: sidecar
    file_sd_configs:
      - files: [{targets}]
        refresh_interval: 1s
"""


def binary(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise AssertionError(f"{name} is not installed: apt-get install prometheus (Debian's package)")
    return found


class PrometheusServer:
    def __init__(self, workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.targets = workdir / "targets.json"
        self.scrape([])
        config = workdir / "prometheus.yml"
        config.write_text(CONFIG.format(targets=self.targets))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "prometheus.log"
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    binary("prometheus"),
                    f"--config.file={config}",
                    f"--storage.tsdb.path={workdir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--log.level=warn",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while not self._ready():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"prometheus did not get ready:\n{self.log_path.read_text()}")
            time.sleep(0.1)

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as reply:
                return bool(reply.status == 200)
        except OSError:
            return False

    def scrape(self, ports: list[int]) -> None:
        """Scrape these sidecars from now on (Prometheus watches the file), and only them."""
        staging = self.targets.with_suffix(".new")
        staging.write_text(json.dumps([{"targets": [f"127.0.0.1:{port}" for port in ports]}]))
        staging.replace(self.targets)

    def query(self, promql: str) -> list[dict[str, Any]]:
        """The instant vector `promql` evaluates to now."""
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(url, timeout=10) as reply:
            answer = json.load(reply)
        assert answer["status"] == "success", answer
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result

    def value(self, promql: str) -> float | None:
        """The one sample `promql` evaluates to now, or None when it has none."""
        result = self.query(promql)
        assert len(result) <= 1, result
        return float(result[0]["value"][1]) if result else None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def promtool(args: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([binary("promtool"), *args], input=stdin, capture_output=True, text=True, timeout=60)


def promtool_check_metrics(exposition: bytes) -> subprocess.CompletedProcess[str]:
    return promtool(["check", "metrics"], exposition.decode())
