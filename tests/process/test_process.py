"""The real process: start-up errors, logs, signals, the demo, as a user runs it."""

import http.client
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import StartSidecar
from tests.sse_client import BlockingStream
from tests.waiting import wait_until


def run_cli(
    args: list[str], env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("SIDECAR_", "APP_VERSION"))}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "sidecar", "--port", "0", *args],
        env=full_env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.parametrize(
    ("args", "env", "named"),
    [
        ([], {}, "APP_VERSION: not set"),
        ([], {"APP_VERSION": "v1\nretry: 0"}, "APP_VERSION: the version contains"),
        ([], {"APP_VERSION": "v" * 200}, "APP_VERSION: the version is 200 characters"),
        (["--version-env", "SPOT_VERSION"], {"APP_VERSION": "v1"}, "SPOT_VERSION: not set"),
        (["--source", "file", "--version-file", "missing.txt"], {}, "--version-file missing.txt: no such file"),
        (["--heartbeat", "-1"], {"APP_VERSION": "v1"}, "--heartbeat: must be a positive number"),
        ([], {"SIDECAR_MAX_CLIENTS": "many", "APP_VERSION": "v1"}, "SIDECAR_MAX_CLIENTS: is not valid"),
        (["--reconnect-rate", "0"], {"APP_VERSION": "v1"}, "--reconnect-rate: must be a positive whole number"),
        (
            [],
            {"APP_VERSION": "v1", "APP_RELEASE_NOTES_URL": "/notes"},
            "APP_RELEASE_NOTES_URL: must be an absolute http:// or https:// URL",
        ),
        ([], {"APP_VERSION": "v1", "APP_RELOAD_REQUIRED": "sure"}, "APP_RELOAD_REQUIRED: must be true, false"),
    ],
)
def test_bad_start_exits_2_with_one_line_naming_the_setting(
    args: list[str], env: dict[str, str], named: str, tmp_path: Path
) -> None:
    result = run_cli(args, env, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("version-sidecar: error: " + named), result.stderr


def test_empty_version_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "v.txt").write_text("  \n")
    result = run_cli(["--source", "file", "--version-file", "v.txt"], cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == "version-sidecar: error: --version-file v.txt: the file is empty\n"


def test_help_and_console_command() -> None:
    command = shutil.which("version-sidecar", path=str(Path(sys.executable).parent))
    assert command, "the console command version-sidecar is not installed"
    result = subprocess.run([command, "--help"], capture_output=True, text=True, timeout=30, check=True)
    assert "SIDECAR_HEARTBEAT" in result.stdout and "--version-file" in result.stdout


def test_other_env_variable_names_the_version(start_sidecar: StartSidecar) -> None:
    sidecar = start_sidecar(["--version-env", "SPOT_VERSION"], env={"SPOT_VERSION": "spot-42", "APP_VERSION": "x"})
    assert BlockingStream(sidecar.port).versions(1) == ["spot-42"]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_signal_ends_every_stream_cleanly_and_exits_0(start_sidecar: StartSidecar, sig: int) -> None:
    sidecar = start_sidecar([], env={"APP_VERSION": "v1"})
    streams = [BlockingStream(sidecar.port) for _ in range(3)]
    for stream in streams:
        assert stream.versions(1) == ["v1"]
    sidecar.process.send_signal(sig)
    # Each stream's body ends at the close (a clean end: a reset would make read() raise).
    for stream in streams:
        assert stream.response.read() == b""
        assert stream.response.isclosed()
    # Bounded wait, not a timing assert: stop() kills after the timeout, which gives -9.
    status = sidecar.stop(None, timeout=5)
    logs = sidecar.logs()
    assert status == 0, logs
    assert '"server shutting down"' in logs and '"stopped"' in logs


def test_logs_tell_each_step(start_sidecar: StartSidecar, tmp_path: Path) -> None:
    version_file = tmp_path / "version.txt"
    version_file.write_text("v1")
    sidecar = start_sidecar(
        ["--source", "file", "--version-file", str(version_file), "--heartbeat", "0.2", "--log-level", "debug"]
    )
    stream = BlockingStream(sidecar.port)
    assert stream.versions(2) == ["v1", "v1"]  # the first event, then a heartbeat
    version_file.write_text("v2")
    while stream.versions(1) != ["v2"]:
        pass
    stream.close()
    version_file.unlink()
    wanted = {
        "client connected",
        "initial version sent",
        "heartbeat sent",
        "version changed",
        "client disconnected",
        "source error, keeping the last good version",
    }

    def all_logged() -> dict[str, dict[str, object]] | None:
        events = {str(e["event"]): e for e in sidecar.log_events()}
        missing_file_seen = "no such file" in str(events.get("source error, keeping the last good version"))
        return events if wanted <= events.keys() and missing_file_seen else None

    events = wait_until(all_logged, f"each of {sorted(wanted)} in the log")
    assert wanted <= events.keys(), sidecar.logs()
    assert events["client connected"]["clients"] == 1
    assert events["client disconnected"]["clients"] == 0
    assert (events["version changed"]["old"], events["version changed"]["new"]) == ("v1", "v2")
    assert events["heartbeat sent"]["level"] == "debug"
    assert "no such file" in str(events["source error, keeping the last good version"]["error"])


def test_demo_serves_a_page_and_announces_edits_of_its_file(start_sidecar: StartSidecar, tmp_path: Path) -> None:
    sidecar = start_sidecar(["--demo"])
    version_file = tmp_path / "demo-version.txt"
    assert version_file.read_text().strip() == "v1"
    page = http.client.HTTPConnection("127.0.0.1", sidecar.port, timeout=10)
    page.request("GET", "/")
    body = page.getresponse().read().decode()
    assert 'data-app-version="v1"' in body and "/events/reload.js" in body
    streams = [BlockingStream(sidecar.port) for _ in range(3)]
    for stream in streams:
        assert stream.versions(1) == ["v1"]
    version_file.write_text("v2\n")
    for stream in streams:
        assert stream.versions(1) == ["v2"]
