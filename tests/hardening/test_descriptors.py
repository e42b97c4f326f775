"""Hardening: a burst of connections cannot take the descriptors the sidecar needs to keep announcing.

The sidecar runs with a hard open-files limit of 1,024 (it cannot lift it) and --max-clients 500.
"""

import asyncio
import contextlib
import resource
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from tests.conftest import StartSidecar
from tests.sidecar_process import SidecarProcess
from tests.sse_client import BlockingStream

OPEN_FILES = 1024
BURST = 3000


async def _ask_for_a_stream(port: int, held: list[asyncio.StreamWriter]) -> str:
    """One stream request; what came of it: held (200), refused-and-closed (503), or cut."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /events/version HTTP/1.1\r\nHost: app.test\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
    except (ConnectionError, asyncio.IncompleteReadError):
        return "cut before an answer"
    if head.startswith(b"HTTP/1.1 200"):
        held.append(writer)
        return "held"
    assert head.startswith(b"HTTP/1.1 503"), head
    assert b"\r\nRetry-After: " in head, head
    try:
        await asyncio.wait_for(reader.read(), 10)  # the refusal closes its connection at once
    except ConnectionError:
        pass
    except TimeoutError:
        return "refused but left open"
    finally:
        writer.close()
    return "refused and closed"


async def _during_a_burst(port: int, check: Callable[[Counter[str]], None]) -> None:
    """Make the burst, then `check` its outcomes while the streams it got are still held."""
    held: list[asyncio.StreamWriter] = []
    try:
        outcomes = await asyncio.gather(*(_ask_for_a_stream(port, held) for _ in range(BURST)))
        await asyncio.to_thread(check, Counter(outcomes))
    finally:
        for writer in held:
            writer.close()


def _limited_sidecar(start_sidecar: StartSidecar, version_file: Path, *args: str) -> SidecarProcess:
    return start_sidecar(
        ["--source", "file", "--version-file", str(version_file), "--poll-interval", "0.05", *args],
        rlimits={resource.RLIMIT_NOFILE: (OPEN_FILES, OPEN_FILES)},
    )


def test_a_burst_of_stream_requests_cannot_stop_updates(start_sidecar: StartSidecar, tmp_path: Path) -> None:
    # 3,000 requests once exhausted the descriptors (each 503 idled in keep-alive for 75 s), so
    # the sidecar could not open its version file and tabs missed changes.
    version_file = tmp_path / "version.txt"
    version_file.write_text("v1\n")
    sidecar = _limited_sidecar(start_sidecar, version_file, "--max-clients", "500", "--heartbeat", "3600")
    watcher = BlockingStream(sidecar.port)
    assert watcher.versions(1) == ["v1"]

    def check(outcomes: Counter[str]) -> None:
        assert outcomes["held"] == 499, outcomes  # the cap holds (the watcher has the 500th place)
        assert outcomes["refused and closed"] + outcomes["cut before an answer"] == BURST - 499, outcomes
        health = sidecar.health()  # the accept loop survived and has room for /healthz
        assert health["clients"] == 500 and health["status"] == "ok", health
        version_file.write_text("v2\n")  # the source can still open its file
        watcher.wait_for_version("v2")
        assert sidecar.health()["version"] == "v2"

    asyncio.run(_during_a_burst(sidecar.port, check))
    refusals = [event for event in sidecar.log_events() if str(event["event"]).startswith("client refused")]
    assert len(refusals) <= 3, f"{len(refusals)} lines for refused clients: one, then summaries"


def test_start_up_says_when_max_clients_cannot_fit_under_the_open_files_limit(
    start_sidecar: StartSidecar, tmp_path: Path
) -> None:
    version_file = tmp_path / "version.txt"
    version_file.write_text("v1\n")
    sidecar = _limited_sidecar(start_sidecar, version_file, "--max-clients", "5000")
    (warning,) = [
        e for e in sidecar.log_events() if e["event"] == "--max-clients does not fit under the open-files limit"
    ]
    assert (warning["max_clients"], warning["open_files_limit"], warning["streams_held_at_most"]) == (5000, 1024, 960)


def test_idle_connections_cannot_take_the_descriptors_of_the_source_or_healthz(
    start_sidecar: StartSidecar, tmp_path: Path
) -> None:
    # Connections that never send a request hold a descriptor each; without a ceiling they once
    # left none for the version file or for /healthz until they timed out.
    version_file = tmp_path / "version.txt"
    version_file.write_text("v1\n")
    sidecar = _limited_sidecar(start_sidecar, version_file, "--heartbeat", "3600")
    watcher = BlockingStream(sidecar.port)
    assert watcher.versions(1) == ["v1"]

    async def hold_idle_connections() -> None:
        idle = []
        try:
            for _ in range(OPEN_FILES + 100):
                with contextlib.suppress(ConnectionError):
                    idle.append((await asyncio.open_connection("127.0.0.1", sidecar.port))[1])

            def check() -> None:
                assert sidecar.health()["status"] == "ok"
                version_file.write_text("v2\n")
                watcher.wait_for_version("v2")

            await asyncio.to_thread(check)
        finally:
            for writer in idle:
                writer.close()

    asyncio.run(hold_idle_connections())


def test_idle_connections_beside_held_streams_cannot_take_the_descriptors_of_the_source_or_healthz(
    start_sidecar: StartSidecar, tmp_path: Path
) -> None:
    # Once open, a stream is no longer aiohttp's connection (it is handed over to its client):
    # the ceiling must count it all the same, or idle connections on top of the streams take the
    # descriptors the version file and /healthz need.
    version_file = tmp_path / "version.txt"
    version_file.write_text("v1\n")
    sidecar = _limited_sidecar(start_sidecar, version_file, "--heartbeat", "3600", "--max-clients", "900")
    watcher = BlockingStream(sidecar.port)
    assert watcher.versions(1) == ["v1"]

    async def hold_streams_and_idle_connections() -> None:
        held: list[asyncio.StreamWriter] = []
        idle = []
        try:
            outcomes = await asyncio.gather(*(_ask_for_a_stream(sidecar.port, held) for _ in range(899)))
            assert Counter(outcomes)["held"] == 899, Counter(outcomes)
            for _ in range(300):
                with contextlib.suppress(ConnectionError):
                    idle.append((await asyncio.open_connection("127.0.0.1", sidecar.port))[1])

            def check() -> None:
                health = sidecar.health()
                assert health["status"] == "ok" and health["clients"] == 900, health
                version_file.write_text("v2\n")
                watcher.wait_for_version("v2")

            await asyncio.to_thread(check)
        finally:
            for writer in held + idle:
                writer.close()

    asyncio.run(hold_streams_and_idle_connections())
