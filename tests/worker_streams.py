"""For tests of a sidecar run with --workers N: which workers serve, and streams held on each of them."""

from pathlib import Path
from typing import Any, cast

import aiohttp

from tests.sidecar_process import SidecarProcess
from tests.sse_client import StreamReader
from tests.waiting import wait_until


def serving_workers(sidecar: SidecarProcess, count: int, timeout: float = 20.0) -> list[dict[str, Any]]:
    """Wait until all `count` workers serve; their /healthz rows (worker, pid, clients, ...)."""

    def all_up() -> list[dict[str, Any]]:
        workers: list[dict[str, Any]] = health(sidecar).get("workers", [])
        return workers if len(workers) == count and all(worker["up"] for worker in workers) else []

    return wait_until(all_up, f"{count} workers serving", timeout)


def health(sidecar: SidecarProcess) -> dict[str, Any]:
    return cast(dict[str, Any], sidecar.health())


def is_running(pid: int) -> bool:
    """True while `pid` runs; an exited process no one has reaped yet (a zombie) does not count."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def children(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


async def open_stream(session: aiohttp.ClientSession, sidecar: SidecarProcess) -> StreamReader:
    """A stream that has had its first event (so the sidecar counts it)."""
    response = await session.get(f"{sidecar.url}/events/version")
    assert response.status == 200, await response.text()
    reader = StreamReader(response)
    await reader.next_version()
    return reader


async def streams_on_every_worker(
    session: aiohttp.ClientSession, sidecar: SidecarProcess, each: int = 2, most: int = 100
) -> list[StreamReader]:
    """Open streams until every worker holds at least `each` (the kernel picks the worker of each
    connection); fails after `most` streams."""
    streams: list[StreamReader] = []
    while min(worker["clients"] for worker in health(sidecar)["workers"]) < each:
        assert len(streams) < most, f"{most} streams did not reach every worker: {health(sidecar)}"
        streams.append(await open_stream(session, sidecar))
    return streams


async def received(stream: StreamReader, version: str, timeout: float = 10.0) -> bool:
    """True once `stream` hears `version`; False if the stream ends first (its worker died)."""
    try:
        await stream.wait_for_version(version, timeout)
    except (AssertionError, aiohttp.ClientError):  # AssertionError: the stream ended
        return False
    return True


def wait_gone(pids: list[int], timeout: float = 15.0) -> None:
    wait_until(lambda: not [pid for pid in pids if is_running(pid)], f"processes {pids} to end", timeout)
