"""Hardening: signals end the sidecar cleanly however they come, and logs stay useful under attack."""

import contextlib
import signal
import socket
import time
from pathlib import Path

from tests.conftest import StartSidecar
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
