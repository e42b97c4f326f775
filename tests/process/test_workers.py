"""`--workers N`: several sidecar processes on one port under a supervisor, as a user runs them:
started and stopped as one, a dead worker restarted without touching the others, no worker
outliving the supervisor."""

import asyncio
import contextlib
import os
import resource
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import StartSidecar
from tests.metric_samples import parse_samples
from tests.sidecar_process import SidecarProcess, free_port
from tests.sse_client import StreamReader
from tests.waiting import wait_until
from tests.worker_streams import (
    children,
    health,
    open_stream,
    received,
    serving_workers,
    streams_on_every_worker,
    wait_gone,
)


def file_source(tmp_path: Path, version: str = "v1") -> tuple[Path, list[str]]:
    version_file = tmp_path / "version.txt"
    version_file.write_text(f"{version}\n")
    return version_file, ["--source", "file", "--version-file", str(version_file)]


def supervisor_events(sidecar: SidecarProcess, event: str) -> list[dict[str, object]]:
    return [e for e in sidecar.log_events() if e.get("worker") == "supervisor" and e["event"] == event]


def test_two_workers_share_the_port_and_stop_together(start_sidecar: StartSidecar) -> None:
    sidecar = start_sidecar(["--workers", "2"], env={"APP_VERSION": "v1"})
    workers = serving_workers(sidecar, 2)
    assert sorted(worker["pid"] for worker in workers) == sorted(children(sidecar.process.pid))
    # New connections are spread over the workers by the kernel; each answers for both.
    for _ in range(20):
        answer = health(sidecar)
        assert (answer["version"], len(answer["workers"])) == ("v1", 2)
    assert sidecar.stop() == 0
    wait_gone([worker["pid"] for worker in workers])


def test_a_taken_port_stops_start_up_with_one_line() -> None:
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


def test_a_source_that_cannot_start_stops_every_worker_with_one_line(tmp_path: Path) -> None:
    """Worker 0 starts alone: a bad source is said once, not once per worker."""
    done = subprocess.run(
        [sys.executable, "-m", "sidecar", "--port", str(free_port()), "--workers", "3"],
        env={k: v for k, v in os.environ.items() if not k.startswith(("SIDECAR_", "APP_VERSION"))},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("version-sidecar: error: APP_VERSION: not set"), done.stderr


async def test_a_killed_worker_is_restarted_and_the_other_workers_streams_carry_on(
    start_sidecar: StartSidecar, tmp_path: Path
) -> None:
    version_file, source = file_source(tmp_path)
    sidecar = start_sidecar([*source, "--workers", "2"])
    serving_workers(sidecar, 2)
    async with aiohttp.ClientSession() as session:
        streams = await streams_on_every_worker(session, sidecar)
        victim, survivor = health(sidecar)["workers"]
        os.kill(victim["pid"], signal.SIGKILL)

        def restarted() -> dict[str, Any]:
            row: dict[str, Any] = health(sidecar)["workers"][0]
            return row if row["up"] and row["pid"] != victim["pid"] else {}

        replacement = wait_until(restarted, "worker 0 started again", timeout=20)
        assert replacement["restarts"] == 1
        # The dead worker's tabs are not counted; the other worker's are all still there.
        assert health(sidecar)["clients"] == survivor["clients"]

        version_file.write_text("v2\n")
        heard = [await received(stream, "v2") for stream in streams]
        assert heard.count(True) == survivor["clients"], "a stream of the other worker missed the change"
        assert heard.count(False) == victim["clients"]

        # The new worker 0 serves: a connection the kernel gives it hears the current version.
        fresh: list[StreamReader] = []
        while health(sidecar)["workers"][0]["clients"] == 0:
            assert len(fresh) < 100, "no new connection reached the restarted worker"
            fresh.append(await open_stream(session, sidecar))
        version_file.write_text("v3\n")
        survivors = [stream for stream, ok in zip(streams, heard, strict=True) if ok]
        assert all([await received(stream, "v3") for stream in survivors + fresh])
    assert len(supervisor_events(sidecar, "worker died, restarting it")) == 1


async def test_a_worker_restarted_while_the_source_fails_keeps_the_last_version(
    start_sidecar: StartSidecar, tmp_path: Path
) -> None:
    """As the running workers do: serve the last good version, degraded, rather than die at start."""
    version_file, source = file_source(tmp_path)
    sidecar = start_sidecar([*source, "--workers", "2"])
    workers = serving_workers(sidecar, 2)
    version_file.unlink()
    os.kill(workers[1]["pid"], signal.SIGKILL)

    def restarted() -> dict[str, Any]:
        row: dict[str, Any] = health(sidecar)["workers"][1]
        return row if row["up"] and row["pid"] != workers[1]["pid"] else {}

    replacement = wait_until(restarted, "worker 1 serving again", timeout=20)
    assert (replacement["version"], replacement["problem"]) == ("v1", f"--version-file {version_file}: no such file")
    assert health(sidecar)["status"] == "degraded"
    async with aiohttp.ClientSession() as session:
        streams = await streams_on_every_worker(session, sidecar, each=1)
        version_file.write_text("v2\n")
        assert all([await received(stream, "v2") for stream in streams])
    wait_until(lambda: health(sidecar)["status"] == "ok", "the source followed again")


def test_a_worker_that_keeps_dying_at_start_stops_the_host_with_one_line(start_sidecar: StartSidecar) -> None:
    sidecar = start_sidecar(["--workers", "2"], env={"APP_VERSION": "v1"})
    workers = serving_workers(sidecar, 2)
    # Every worker forked from now on inherits a limit below the descriptors it is born with:
    # it cannot even make its event loop.
    resource.prlimit(sidecar.process.pid, resource.RLIMIT_NOFILE, (4, 4))
    os.kill(workers[1]["pid"], signal.SIGKILL)
    status = sidecar.process.wait(timeout=60)  # five starts, with back-off: about 8 s
    assert status == 1, sidecar.logs()
    errors = [e for e in sidecar.log_events() if e.get("worker") == "supervisor" and e["level"] == "error"]
    assert [e["event"] for e in errors] == ["worker 1 died before serving 5 times in a row, stopping"]
    wait_gone([workers[0]["pid"]])


def test_workers_end_with_the_supervisor_however_it_dies(start_sidecar: StartSidecar) -> None:
    sidecar = start_sidecar(["--workers", "2"], env={"APP_VERSION": "v1"})
    pids = [worker["pid"] for worker in serving_workers(sidecar, 2)]
    sidecar.process.kill()
    sidecar.process.wait()
    try:
        wait_gone(pids)
    except AssertionError:  # a regression must not leave orphans behind on the machine
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        raise
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", sidecar.port), timeout=5).close()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
async def test_a_stop_signal_ends_every_stream_of_every_worker_cleanly(start_sidecar: StartSidecar, sig: int) -> None:
    sidecar = start_sidecar(["--workers", "2"], env={"APP_VERSION": "v1"})
    serving_workers(sidecar, 2)
    async with aiohttp.ClientSession() as session:
        streams = await streams_on_every_worker(session, sidecar, each=1)
        sidecar.process.send_signal(sig)
        for stream in streams:
            # The body ends at the close (test_process.py has the one-process end on a client that tells a reset).
            await asyncio.wait_for(stream.response.content.read(), 10)
    assert sidecar.stop(None, timeout=15) == 0, sidecar.logs()
    ended_by = {
        e["worker"] for e in sidecar.log_events() if e["event"] == "client disconnected"
        and e["reason"] == "server shutting down"
    }  # fmt: skip
    assert ended_by == {0, 1}


def test_a_second_stop_signal_during_shutdown_still_exits_0(start_sidecar: StartSidecar) -> None:
    sidecar = start_sidecar(["--workers", "2"], env={"APP_VERSION": "v1"})
    pids = [worker["pid"] for worker in serving_workers(sidecar, 2)]
    os.kill(pids[1], signal.SIGSTOP)  # holds the shutdown open until it is let go
    try:
        sidecar.process.send_signal(signal.SIGTERM)
        wait_until(lambda: supervisor_events(sidecar, "stopping"), "the supervisor stopping")
        sidecar.process.send_signal(signal.SIGTERM)
        wait_until(lambda: supervisor_events(sidecar, "already stopping"), "the second signal noticed")
        assert sidecar.process.poll() is None, "the supervisor did not wait for its worker"
    finally:
        os.kill(pids[1], signal.SIGCONT)
    assert sidecar.stop(None, timeout=15) == 0, sidecar.logs()
    wait_gone(pids)


@pytest.mark.parametrize(
    ("first", "second"),
    [(["--workers", "2"], ["--workers", "2"]), ([], ["--workers", "2"]), (["--workers", "2"], [])],
    ids=["workers-then-workers", "single-then-workers", "workers-then-single"],
)
async def test_a_port_another_host_serves_stops_start_up_and_leaves_that_host_alone(
    start_sidecar: StartSidecar, tmp_path: Path, first: list[str], second: list[str]
) -> None:
    # SO_REUSEPORT let a second --workers host join the first: the kernel split the tabs between them.
    version_file, source = file_source(tmp_path)
    host = start_sidecar([*source, *first])
    if first:
        serving_workers(host, 2)
    async with aiohttp.ClientSession() as session:
        stream = await open_stream(session, host)
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "sidecar", "--port", str(host.port), *source, *second],
            env={k: v for k, v in os.environ.items() if not k.startswith("SIDECAR_")},
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == 2, done.stderr
        assert done.stderr.startswith(f"version-sidecar: error: --port {host.port}: cannot listen on 127.0.0.1: ")
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        # Every new connection still reaches the first host, which counts each stream.
        streams = [await open_stream(session, host) for _ in range(10)]
        assert health(host)["clients"] == 1 + len(streams)
        version_file.write_text("v2\n")
        for each in [stream, *streams]:
            assert await received(each, "v2")
    assert host.process.poll() is None


async def test_each_worker_holds_no_more_streams_than_its_open_files_limit_allows(
    start_sidecar: StartSidecar,
) -> None:
    # 68 open files: 36 connections and 4 streams per process, a host cap of 8. With worker 1
    # frozen, worker 0 alone answers: it must refuse its 5th stream although the host has room.
    sidecar = start_sidecar(
        ["--workers", "2"],
        env={"APP_VERSION": "v1"},
        rlimits={resource.RLIMIT_NOFILE: (68, 68)},
    )
    workers = serving_workers(sidecar, 2)
    lowered = [e for e in sidecar.log_events() if e["event"] == "--max-clients does not fit under the open-files limit"]
    assert [e["streams_held_at_most"] for e in lowered] == [8]
    frozen = next(worker["pid"] for worker in workers if worker["worker"] == 1)
    os.kill(frozen, signal.SIGSTOP)  # its connections wait in its queue; the test gives up on them
    try:
        accepted: list[StreamReader] = []
        statuses: list[int] = []
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
            for _ in range(60):
                try:
                    response = await session.get(f"{sidecar.url}/events/version")
                except TimeoutError:
                    continue  # it went to the frozen worker
                statuses.append(response.status)
                if response.status == 503:
                    break
                accepted.append(StreamReader(response))
            assert statuses[-1:] == [503], statuses
            assert len(accepted) <= 4, f"worker 0 held {len(accepted)} streams: {statuses}"
            for stream in accepted:
                stream.response.close()
    finally:
        os.kill(frozen, signal.SIGCONT)
    assert sidecar.stop() == 0


PIDS_CGROUPS = Path("/sys/fs/cgroup/pids")  # the cgroup v1 pids controller; a limit root is held to as well


@contextlib.contextmanager
def no_more_processes(pid: int) -> Iterator[Callable[[], None]]:
    """Put `pid` alone in a pids cgroup that allows no new process (fork fails with EAGAIN, even
    for root) while the block runs; yields a function that lifts the limit."""
    if not (PIDS_CGROUPS / "cgroup.procs").exists():
        raise AssertionError(f"this test needs the cgroup v1 pids controller at {PIDS_CGROUPS}")
    group = PIDS_CGROUPS / f"vs-no-fork-{pid}"
    group.mkdir()
    try:
        (group / "cgroup.procs").write_text(str(pid))
        (group / "pids.max").write_text("1")

        def lift() -> None:
            (group / "pids.max").write_text("max")

        yield lift
    finally:
        for task in (group / "cgroup.procs").read_text().split():
            with contextlib.suppress(OSError):
                (PIDS_CGROUPS / "cgroup.procs").write_text(task)
        group.rmdir()


@pytest.mark.root
async def test_a_worker_the_host_cannot_fork_is_retried_while_the_other_serves(start_sidecar: StartSidecar) -> None:
    # A failed fork raised out of the supervisor: the host exited 1 with its healthy worker's tabs.
    sidecar = start_sidecar(["--workers", "2", "--heartbeat", "0.2"], env={"APP_VERSION": "v1"})
    workers = serving_workers(sidecar, 2)
    doomed = next(worker["pid"] for worker in workers if worker["worker"] == 1)
    async with aiohttp.ClientSession() as session:
        # Which worker holds each stream (opened one at a time, it is the one whose count rose):
        # the killed worker's stream may still hold heartbeats it sent before it died.
        streams: list[StreamReader] = []
        holders: list[int] = []
        while set(holders) != {0, 1}:
            assert len(streams) < 100, f"100 streams did not reach both workers: {health(sidecar)}"
            before = {worker["worker"]: worker["clients"] for worker in health(sidecar)["workers"]}
            streams.append(await open_stream(session, sidecar))
            after = {worker["worker"]: worker["clients"] for worker in health(sidecar)["workers"]}
            [holder] = [index for index in after if after[index] != before[index]]
            holders.append(holder)
        with no_more_processes(sidecar.process.pid) as lift:
            os.kill(doomed, signal.SIGKILL)

            def fork_failures() -> list[dict[str, object]]:
                failed = supervisor_events(sidecar, "cannot start a worker, retrying")
                return failed if len(failed) >= 3 else []

            failed = wait_until(fork_failures, "three failed forks", timeout=30, details=sidecar.logs)
            assert [line["retry_in"] for line in failed[:3]] == [0.5, 1.0, 2.0]  # after the first 0.25 s
            assert sidecar.process.poll() is None, "the supervisor kept going"
            for stream, holder in zip(streams, holders, strict=True):
                if holder == 1:  # what it sent before it died, then the end
                    assert not await received(stream, "no such version"), "the killed worker's stream ended"
                else:
                    assert await received(stream, "v1"), "the other worker's tabs keep hearing"
            answer = health(sidecar)
            assert (answer["status"], answer["problem"]) == ("degraded", "worker 1 is not serving (starting)")
            samples = parse_samples(await (await session.get(f"{sidecar.url}/metrics")).text())
            assert samples["version_sidecar_worker_fork_failures_total", ()] >= 3

            lift()
            serving_workers(sidecar, 2, timeout=30)
        assert health(sidecar)["status"] == "ok"
    assert sidecar.stop() == 0


def listen_queue_lengths(port: int) -> list[int]:
    """The queue length of each socket listening on `port` (ss's Send-Q of a listener)."""
    listing = subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True, check=True)
    return [int(line.split()[2]) for line in listing.stdout.splitlines()]


@pytest.mark.parametrize("workers", ["1", "2"])
def test_each_listening_socket_queues_as_many_connections_as_the_kernel_allows(
    start_sidecar: StartSidecar, workers: str
) -> None:
    """A reconnect storm arrives in bursts: what the queue holds waits its turn instead of getting a
    SYN cookie that can end in a reset (bench/RESULTS.md)."""
    sidecar = start_sidecar(["--workers", workers], env={"APP_VERSION": "v1"})
    if workers != "1":  # (one process has no supervisor, and serves once started)
        serving_workers(sidecar, int(workers))
    somaxconn = int(Path("/proc/sys/net/core/somaxconn").read_text())
    assert listen_queue_lengths(sidecar.port) == [somaxconn] * int(workers)
