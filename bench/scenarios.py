"""One measured run of each kind: fan-out, reconnect storm, leak check. Pure measurement, no printing."""

import http.client
import statistics
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .loadclient import DEFAULT_RETRY_MS, Fleet, source_addresses
from .servers import STREAM_PATH, Floor, Nchan, Server, Sidecar, version_payload

CONNECT_TIMEOUT = 180.0
# Load-client source addresses (127.0.0.2 ...): each has its own ephemeral ports.
SOURCE_ADDRESSES = 8


def source_count(client_processes: int) -> int:
    """Source addresses for a fleet: at least two per load-client process. A process connects from
    its own share of them, and 19,000 streams from one address would take over half its ephemeral
    ports: bind() to port 0 looks in one half of the range first (the other half is connect()'s),
    and once that half is full it scans for every connection, which slowed the 100,000 connect of
    a first scale run (6 processes over 8 addresses) to some 30 connects/s per process."""
    return max(SOURCE_ADDRESSES, 2 * client_processes)


EVENT_TIMEOUT = 30.0


def make_server(kind: str, workdir: Path, workers: int = 1) -> Server:
    return {"sidecar": Sidecar, "nchan": Nchan, "floor": Floor}[kind](workdir, workers)


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
    pss_before: int = 0
    pss_connected: int = 0
    cpu_connect: float = 0.0
    cpu_fanout: float = 0.0
    client_cpu_fanout: float = 0.0
    latencies: list[float] = field(default_factory=list)
    lost: int = 0  # clients that missed a change or whose stream was closed by the server
    changes: int = 0
    scrape: "ScrapeResult | None" = None  # the /metrics check, where it ran

    @property
    def pss_per_client(self) -> float:
        return (self.pss_connected - self.pss_before) / max(1, self.ready)

    @property
    def rss_per_client(self) -> float:
        return (self.rss_connected - self.rss_before) / max(1, self.ready)

    @property
    def cpu_us_per_client_fanout(self) -> float:
        """The server's CPU per stream per change, in microseconds."""
        return self.cpu_fanout / max(1, self.clients * self.changes) * 1e6

    @property
    def client_cpu_us_per_client_fanout(self) -> float:
        """The load client's CPU per stream per change, in microseconds."""
        return self.client_cpu_fanout / max(1, self.clients * self.changes) * 1e6

    def latency(self, fraction: float) -> float:
        return percentile(self.latencies, fraction)

    @property
    def latency_max(self) -> float:
        return max(self.latencies) if self.latencies else float("nan")


def run_fanout(
    kind: str,
    clients: int,
    workdir: Path,
    *,
    workers: int = 1,
    client_processes: int = 1,
    changes: int = 3,
    scrapes: int = 0,
) -> FanoutResult:
    """One server alone: see run_side_by_side."""
    return run_side_by_side([kind], clients, workdir, workers=workers, client_processes=client_processes,
                            changes=changes, scrapes=scrapes)[kind]  # fmt: skip


def run_side_by_side(
    kinds: list[str],
    clients: int,
    workdir: Path,
    *,
    workers: int = 1,
    client_processes: int = 1,
    changes: int = 3,
    scrapes: int = 0,
) -> dict[str, FanoutResult]:
    """Each server gets `clients` streams of its own (connected one server after the other); then
    the servers take turns: change 1 on each, change 2 on each (the other order), and so on, so
    that both meet the same noise of a shared machine. Each receipt is timed from the moment
    right before the change is made (the file write, the publish POST). With `scrapes`, the
    sidecar's /metrics is then checked on the same streams (see run_scrape_check)."""
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
            sources = source_addresses(source_count(client_processes))
            fleet = fleets[kind] = Fleet("127.0.0.1", server.port, STREAM_PATH, client_processes, sources)
            # Read once the client processes exist: they map the same Python files as the sidecar,
            # and PSS splits a shared page between all who map it, so their start lowers its PSS.
            result.rss_before, result.pss_before, cpu_start = server.rss(), server.pss(), server.cpu()
            # At 250 connects/s at worst (the sidecar's 100,000 on 2 shared CPUs): 580 s.
            connected = fleet.connect(clients, CONNECT_TIMEOUT + clients / 250)
            result.connect_seconds, result.ready = connected["seconds"], connected["ready"]
            result.errors = connected["errors"]
            result.cpu_connect = server.cpu() - cpu_start
            time.sleep(1.0)  # let the last handshakes and first writes settle before measuring
            result.rss_connected, result.pss_connected = server.rss(), server.pss()
            result.lost = clients - result.ready
        for number in range(1, changes + 1):
            for kind in kinds if number % 2 else kinds[::-1]:
                _time_change(servers[kind], fleets[kind], results[kind], f"bench-{number}")
        if scrapes and "sidecar" in kinds:
            results["sidecar"].scrape = run_scrape_check(
                servers["sidecar"], fleets["sidecar"], clients, scrapes, changes
            )
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


def scrape_seconds(port: int) -> float:
    """One GET /metrics on a new connection (as a scraper that does not keep it alive), timed
    from the connect to the last byte of the answer."""
    started = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", "/metrics")
        reply = connection.getresponse()
        reply.read()
    finally:
        connection.close()
    if reply.status != 200:
        raise RuntimeError(f"/metrics answered {reply.status}")
    return time.perf_counter() - started


class Scraper(threading.Thread):
    """Scrapes /metrics every `period` seconds (the first at once) until stopped."""

    def __init__(self, port: int, period: float = 1.0) -> None:
        super().__init__(name="metrics scraper", daemon=True)
        self.port = port
        self.period = period
        self.times: list[float] = []
        self.failure: BaseException | None = None
        self._stopping = threading.Event()

    def run(self) -> None:
        next_at = time.monotonic()
        try:
            while not self._stopping.wait(max(0.0, next_at - time.monotonic())):
                self.times.append(scrape_seconds(self.port))
                next_at += self.period
        except BaseException as error:  # told to the caller by stop()
            self.failure = error

    def stop(self) -> list[float]:
        self._stopping.set()
        self.join(15)
        if self.failure is not None:
            raise RuntimeError("the /metrics scraper failed") from self.failure
        return self.times


@dataclass
class ScrapeResult:
    """What /metrics costs while the sidecar holds its streams."""

    idle_scrapes: list[float]  # one after the other, no change going on
    scraped: FanoutResult  # changes made while a scraper hits /metrics every second
    unscraped: FanoutResult  # the changes between those, without it
    scrapes_during: list[float] = field(default_factory=list)  # the scraper's own timings


def run_scrape_check(server: Server, fleet: Fleet, clients: int, scrapes: int, changes: int) -> ScrapeResult:
    """`scrapes` scrapes 0.2 s apart (a few heartbeat slices pass meanwhile), then `changes` pairs
    of changes alternating: one without a scraper, one with a scraper that GETs /metrics every
    second from 1 s before the change until after the last receipt."""
    idle = []
    for _ in range(scrapes):
        idle.append(scrape_seconds(server.port))
        time.sleep(0.2)
    result = ScrapeResult(
        idle,
        scraped=FanoutResult(server.name, clients, server.workers, fleet.processes, changes=changes),
        unscraped=FanoutResult(server.name, clients, server.workers, fleet.processes, changes=changes),
    )
    for number in range(1, changes + 1):
        _time_change(server, fleet, result.unscraped, f"scrape-check-{number}-without")
        scraper = Scraper(server.port)
        scraper.start()
        time.sleep(1.0)
        try:
            _time_change(server, fleet, result.scraped, f"scrape-check-{number}-with")
        finally:
            result.scrapes_during += scraper.stop()
    return result


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
    settings: Sequence[str] = (), hold: float = 0.0,
) -> StormResult:  # fmt: skip
    """Drop every client at once (restart the server) and time their return, as browsers do it:
    after the `retry:` the stream sent (the sidecar's: --retry plus its jitter window; nchan sends
    none, so the browser default of 3 s applies), retrying the same way while the server refuses
    them. `settings`: more flags for the sidecar; `hold`: seconds the server holds every stream
    before the restart (a host restarts between deploys, not just after its tabs connected: the
    sidecar's heartbeat refreshes each tab's `retry:` within one heartbeat, 30 s)."""
    result = StormResult(kind, clients, workers)
    server = Sidecar(workdir, workers, settings) if kind == "sidecar" else Nchan(workdir, workers)
    fleet: Fleet | None = None
    try:
        server.start("bench-0")
        fleet = Fleet("127.0.0.1", server.port, STREAM_PATH, client_processes, source_addresses(8))
        fleet.connect(clients, CONNECT_TIMEOUT)
        time.sleep(hold)
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
