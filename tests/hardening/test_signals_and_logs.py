"""Hardening: signals end the sidecar cleanly however they come, and logs stay useful under attack."""

import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from tests.conftest import StartSidecar
from tests.metric_samples import parse_samples
from tests.sidecar_process import free_port
from tests.sse_client import BlockingStream
from tests.waiting import wait_until


def test_a_second_sigterm_during_shutdown_still_exits_0(start_sidecar: StartSidecar, tmp_path: Path) -> None:
    # aiohttp's run_app raised again on a second signal while shutting down: exit 1, not 0.
    release = tmp_path / "release-shutdown"
    sidecar = start_sidecar(
        [], env={"APP_VERSION": "v1"}, command=("-m", "tests.hardening.slow_shutdown", str(release))
    )
    stream = BlockingStream(sidecar.port)
    assert stream.versions(1) == ["v1"]
    sidecar.process.send_signal(signal.SIGTERM)

    def events() -> list[object]:
        return [event["event"] for event in sidecar.log_events()]

    wait_until(lambda: "shutdown held until the release file exists" in events(), "the shutdown to begin")
    sidecar.process.send_signal(signal.SIGTERM)
    wait_until(lambda: "already stopping" in events(), "the second signal to be seen")
    release.touch()
    assert sidecar.stop(None) == 0, sidecar.logs()
    assert stream.response.read() == b""  # the stream ended cleanly


def test_sigterms_a_millisecond_apart_until_it_ends_still_exit_0(start_sidecar: StartSidecar) -> None:
    # The second of two SIGTERMs a few ms apart used to land after the handler was gone: exit 143.
    sidecar = start_sidecar([], env={"APP_VERSION": "v1"})
    stream = BlockingStream(sidecar.port)
    assert stream.versions(1) == ["v1"]
    signals = 0
    while sidecar.process.poll() is None:
        with contextlib.suppress(ProcessLookupError):  # it ended between the poll and the signal
            sidecar.process.send_signal(signal.SIGTERM)
            signals += 1
        time.sleep(0.001)  # the pace of the signals, not a wait for an outcome
    assert signals > 1
    assert sidecar.stop(None) == 0, sidecar.logs()
    assert stream.response.read() == b""  # the stream ended cleanly


def test_a_flood_of_bad_requests_is_one_json_line_and_a_summary(start_sidecar: StartSidecar) -> None:
    # 1,000 requests with a control byte in a header once printed 11,000 lines of raw traceback.
    sidecar = start_sidecar([], env={"APP_VERSION": "v1"})
    for _ in range(1000):
        with socket.create_connection(("127.0.0.1", sidecar.port), timeout=10) as bad:
            bad.sendall(b"GET /events/version HTTP/1.1\r\nHost: x\r\nX-Evil: a\x01b\r\n\r\n")
            assert bad.recv(100).split(b" ")[1] == b"400"
    assert sidecar.stop() == 0
    lines = sidecar.logs().splitlines()
    assert all(line.startswith("{") and line.endswith("}") for line in lines), "a line that is not JSON"
    bad_requests = [e for e in sidecar.log_events() if str(e["event"]).startswith("bad request")]
    assert [(e["event"], e.get("count")) for e in bad_requests] == [
        ("bad request", None),
        ("bad request (summary)", 999),
    ]
    assert len(lines) < 20, f"{len(lines)} lines"


def test_a_log_pipe_nobody_reads_never_stops_serving_and_the_loss_is_counted(tmp_path: Path) -> None:
    # Logs were written blocking: once the pipe was full the process froze in write(2).
    reader, writer = os.pipe()
    fcntl.fcntl(writer, fcntl.F_SETPIPE_SZ, 4096)  # a page: full after a few lines
    version_file = tmp_path / "version.txt"
    version_file.write_text("v1\n")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIDECAR_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "sidecar", "--port", str(port), "--source", "file", "--version-file", str(version_file)],
        env={**env, "SIDECAR_LOG_FORMAT": "json"},
        stdout=writer,
        stderr=writer,
    )
    os.close(writer)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _answers(f"{url}/healthz"), "the sidecar to serve")
        streams = [BlockingStream(port) for _ in range(40)]  # two log lines each: far over a page
        assert all(stream.versions(1) == ["v1"] for stream in streams)
        version_file.write_text("v2\n")
        for stream in streams:
            stream.wait_for_version("v2")
        assert json.loads(_answers(f"{url}/healthz") or "{}")["status"] == "ok"

        logged = bytearray()
        drain = threading.Thread(target=_read_all, args=(reader, logged), daemon=True)
        drain.start()  # the reader comes back: the loss is said once, and counted

        def said() -> list[dict[str, object]]:
            lines = [json.loads(line) for line in logged.decode(errors="replace").splitlines() if line.startswith("{")]
            return [line for line in lines if str(line["event"]).startswith("log lines dropped")]

        dropped = wait_until(said, "the line saying how many were dropped")
        assert int(str(dropped[0]["count"])) > 0

        def counted() -> float:
            samples = parse_samples(_answers(f"{url}/metrics") or "")
            return samples.get(("version_sidecar_log_lines_dropped_total", ()), 0.0)

        wait_until(lambda: counted() >= int(str(dropped[0]["count"])), "/metrics to count the dropped lines")
        for stream in streams:
            stream.close()
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(reader)


def _answers(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:
            return str(reply.read().decode())
    except OSError:
        return None


def _read_all(fd: int, into: bytearray) -> None:
    with contextlib.suppress(OSError):
        while chunk := os.read(fd, 65536):
            into.extend(chunk)
