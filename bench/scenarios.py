"""One measured run of each kind: fan-out, reconnect storm, leak check. Pure measurement, no printing."""

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .loadclient import DEFAULT_RETRY_MS, Fleet, source_addresses
from .servers import STREAM_PATH, Nchan, Server, Sidecar, version_payload

CONNECT_TIMEOUT = 180.0
EVENT_TIMEOUT = 30.0


def make_server(kind: str, workdir: Path, workers: int = 1) -> Server:
    return Sidecar(workdir, workers) if kind == "sidecar" else Nchan(workdir, workers)


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


@dataclass
class FanoutResult:
    server: str
    clients: int
    workers: int
    client_processes: int
    connect_seconds: float = 0.0
    ready: int = 0
    errors: int = 0
    rss_before: int = 0
    rss_connected: int = 0
    cpu_connect: float = 0.0
    cpu_fanout: float = 0.0
    client_cpu_fanout: float = 0.0
    latencies: list[float] = field(default_factory=list)
    lost: int = 0  # clients that missed a change or whose stream was closed by the server
    changes: int = 0

    @property
    def bytes_per_client(self) -> float:
        return (self.rss_connected - self.rss_before) / max(1, self.ready)

    def latency(self, fraction: float) -> float:
        return percentile(self.latencies, fraction)

    @property
    def latency_max(self) -> float:
        return max(self.latencies) if self.latencies else float("nan")


def run_fanout(
    kind: str, clients: int, workdir: Path, *, workers: int = 1, client_processes: int = 1, changes: int = 3
) -> FanoutResult:
    """One server alone: see run_side_by_side."""
    return run_side_by_side([kind], clients, workdir, workers=workers, client_processes=client_processes,
                            changes=changes)[kind]  # fmt: skip


def run_side_by_side(
    kinds: list[str], clients: int, workdir: Path, *, workers: int = 1, client_processes: int = 1, changes: int = 3
) -> dict[str, FanoutResult]:
    """Each server gets `clients` streams of its own (connected one server after the other); then
    the servers take turns: change 1 on each, change 2 on each (the other order), and so on, so
    that both meet the same noise of a shared machine. Each receipt is timed from the moment
    right before the change is made (the file write, the publish POST)."""
    results = {kind: FanoutResult(kind, clients, workers, client_processes, changes=changes) for kind in kinds}
    servers: dict[str, Server] = {}
    fleets: dict[str, Fleet] = {}
    try:
        for kind in kinds:
            server = servers[kind] = make_server(kind, workdir / kind, workers)
            server.start("bench-0")
        time.sleep(0.5)
        for kind in kinds:
            result, server = results[kind], servers[kind]
            result.rss_before, cpu_start = server.rss(), server.cpu()
            fleet = fleets[kind] = Fleet("127.0.0.1", server.port, STREAM_PATH, client_processes, source_addresses(8))
            connected = fleet.connect(clients, CONNECT_TIMEOUT)
            result.connect_seconds, result.ready = connected["seconds"], connected["ready"]
            result.errors = connected["errors"]
            result.cpu_connect = server.cpu() - cpu_start
            time.sleep(1.0)  # let the last handshakes and first writes settle before measuring
            result.rss_connected = server.rss()
            result.lost = clients - result.ready
        for number in range(1, changes + 1):
            for kind in kinds if number % 2 else kinds[::-1]:
                _time_change(servers[kind], fleets[kind], results[kind], f"bench-{number}")
    finally:
        for fleet in fleets.values():
            fleet.stop()
        for server in servers.values():
            server.stop()
    return results


def _time_change(server: Server, fleet: Fleet, result: FanoutResult, version: str) -> None:
    payload = version_payload(version)
    client_cpu_before = fleet.cpu_seconds()  # (a process answers one command at a time)
    fleet.send_wait(payload, EVENT_TIMEOUT)
    time.sleep(0.3)
    cpu_before = server.cpu()
    changed_at = time.monotonic()
    server.change(version)
    reply = fleet.collect_wait(EVENT_TIMEOUT)
    result.cpu_fanout += server.cpu() - cpu_before
    result.client_cpu_fanout += fleet.cpu_seconds() - client_cpu_before
    result.latencies += [receipt - changed_at for receipt in reply["receipts"]]
    result.lost = max(result.lost, reply["missing"] + reply["dropped"])
    time.sleep(0.5)


@dataclass
class StormResult:
    server: str
    clients: int
    workers: int
    retry_max: float = float("nan")  # the longest `retry:` a stream was given, s (nchan: none, 3 s)
    back: int = 0
    seconds_to_all: float = float("nan")  # from the SIGTERM until every client is back with an event
    after_restart: float = float("nan")  # from the new server serving until every client is back
    seconds_spread: float = float("nan")  # from the first to the last reconnection
    peak_per_second: int = 0
    away_longest: float = float("nan")  # s: the longest a client was without a stream (loss to event)
    refused_clients: int = 0  # clients refused (connection refused or reset, a 503) at least once
    refused_longest: float = 0.0  # s from a client's first refused attempt until it was back
    attempts_refused: int = 0
    stop_seconds: float = 0.0  # SIGTERM until the old server has exited
    start_seconds: float = 0.0  # new server started until it serves
    cpu_seconds: float = 0.0  # the new server's CPU until every client is back

    @property
    def bound(self) -> float:
        """The promise: every tab back within its retry delay plus the jitter window plus 1 s (the
        longest `retry:` given is the retry delay plus the window), from the loss of its stream."""
        return self.retry_max + 1.0

    @property
    def bound_held(self) -> bool:
        return self.back == self.clients and max(self.away_longest, self.refused_longest) <= self.bound


STORM_TIMEOUT = 180.0


def run_storm(
    kind: str, clients: int, workdir: Path, *, workers: int = 1, client_processes: int = 1,
    settings: Sequence[str] = (),
) -> StormResult:  # fmt: skip
    """Drop every client at once (restart the server) and time their return, as browsers do it:
    after the `retry:` the stream sent (the sidecar's: --retry plus its jitter window; nchan sends
    none, so the browser default of 3 s applies), retrying the same way while the server refuses
    them. `settings`: more flags for the sidecar."""
    result = StormResult(kind, clients, workers)
    server = Sidecar(workdir, workers, settings) if kind == "sidecar" else Nchan(workdir, workers)
    fleet: Fleet | None = None
    try:
        server.start("bench-0")
        fleet = Fleet("127.0.0.1", server.port, STREAM_PATH, client_processes, source_addresses(8))
        fleet.connect(clients, CONNECT_TIMEOUT)
        retry_max = fleet.reconnect_mode()
        result.retry_max = (retry_max if retry_max is not None else DEFAULT_RETRY_MS) / 1000
        dropped_at = time.monotonic()
        server.stop()
        stopped_at = time.monotonic()
        server.start("bench-0")
        serving_at = time.monotonic()
        cpu_start = server.cpu()
        result.stop_seconds, result.start_seconds = stopped_at - dropped_at, serving_at - stopped_at
        back = fleet.await_reconnected(clients, STORM_TIMEOUT)
        result.cpu_seconds = server.cpu() - cpu_start
        times = back["times"]
        result.back = len(times)
        result.refused_clients = len(back["refused_for"])
        result.refused_longest = max(back["refused_for"], default=0.0)
        result.attempts_refused = back["attempts_refused"]
        result.away_longest = back["away_longest"]
        if times:
            if len(times) >= clients:
                result.seconds_to_all = times[-1] - dropped_at
                result.after_restart = times[-1] - serving_at
            result.seconds_spread = times[-1] - times[0]
            buckets: dict[int, int] = {}
            for moment in times:
                buckets[int(moment * 10)] = buckets.get(int(moment * 10), 0) + 1
            result.peak_per_second = max(buckets.values()) * 10  # busiest 100 ms, per second
    finally:
        if fleet is not None:
            fleet.stop()
        server.stop()
    return result


@dataclass
class LeakResult:
    server: str
    cycles: int
    rss_fresh: int = 0
    rss_start: int = 0  # after the warm-up cycles
    rss_end: int = 0
    errors: int = 0

    @property
    def growth(self) -> float:
        return (self.rss_end - self.rss_start) / self.rss_start


def run_leak(kind: str, cycles: int, workdir: Path, *, batch: int = 1000, warmup: int = 2000) -> LeakResult:
    """Open and close `cycles` streams in batches (each gets its first event before it closes)."""
    result = LeakResult(kind, cycles)
    server = make_server(kind, workdir)
    fleet: Fleet | None = None
    try:
        server.start("bench-0")
        time.sleep(0.5)
        result.rss_fresh = server.rss()
        fleet = Fleet("127.0.0.1", server.port, STREAM_PATH, 1, source_addresses(8))
        done = 0
        for phase_cycles in (warmup, cycles):
            target = done + phase_cycles
            while done < target:
                count = min(batch, target - done)
                connected = fleet.connect(count, CONNECT_TIMEOUT)
                result.errors += connected["errors"] + (count - connected["ready"])
                fleet.close_all()
                done += count
            time.sleep(1.0)
            if phase_cycles == warmup:
                result.rss_start = server.rss()
                done = 0
        result.rss_end = server.rss()
    finally:
        if fleet is not None:
            fleet.stop()
        server.stop()
    return result


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")
