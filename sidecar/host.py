"""One host, one picture: each worker writes what it does into its own row of the host table, and
whichever worker answers /metrics or /healthz reads every row, so it speaks for the whole host.

The table is made once, before any worker forks (a single process has one row). What a worker
counts only grows; the supervisor zeroes a dead worker's gauges before the next one takes the
row over and continues its counters, so a restart neither leaves streams counted nor makes a
counter go back.
"""

import os
from dataclasses import dataclass

from . import host_version
from .host_memory import DROP_REASONS, HostMemory, Row, decode_text, encode_problem
from .seats import Seats
from .version import Version


@dataclass(frozen=True)
class WorkerState:
    """One row, as read."""

    index: int
    pid: int
    up: bool
    restarts: int
    fork_failures: int
    clients: int
    source_up: bool
    connected: int
    events_sent: int
    refused: int
    dropped: dict[str, int]
    fanouts: int
    fanout_seconds: float
    log_lines_dropped: int
    version: str | None
    problem: str | None


@dataclass(frozen=True)
class HostState:
    """The whole table, as read."""

    max_clients: int
    version_changes: int
    version: str | None
    workers: list[WorkerState]

    def total(self, column: str) -> int:
        return sum(getattr(worker, column) for worker in self.workers)

    @property
    def workers_up(self) -> list[WorkerState]:
        """The workers that serve now."""
        return [worker for worker in self.workers if worker.up]


class HostTable:
    """The table of one host: made once, before any worker forks."""

    def __init__(self, workers: int, max_clients: int) -> None:
        self.memory = HostMemory(workers)
        self.memory.header.max_clients = max_clients

    @property
    def max_clients(self) -> int:
        return int(self.memory.header.max_clients)

    def row(self, index: int) -> "WorkerRow":
        return WorkerRow(self, index)

    # The supervisor's side.

    def worker_started(self, index: int, pid: int, restart: bool) -> None:
        row = self.memory.rows[index]
        row.pid = pid
        if restart:
            row.restarts += 1

    def fork_failed(self, index: int) -> None:
        self.memory.rows[index].fork_failures += 1

    def worker_died(self, index: int) -> None:
        """Forget what a dead worker held: its streams are gone; its counters stay."""
        row = self.memory.rows[index]
        with self.memory.lock:
            row.pid = row.up = row.clients = row.source_up = 0
            row.version = b""
            row.problem = b""

    def is_up(self, index: int) -> bool:
        return bool(self.memory.rows[index].up)

    # Everyone's side.

    def read(self) -> HostState:
        header = self.memory.header
        with self.memory.lock:
            return HostState(
                max_clients=header.max_clients,
                version_changes=header.version_changes,
                version=decode_text(header.version),
                workers=[_state(index, row) for index, row in enumerate(self.memory.rows)],
            )


class WorkerRow:
    """A worker's own row: what its hot paths count (each an integer) and its seats under the cap."""

    __slots__ = ("_log_lines_before", "_memory", "_row", "index", "seats", "table")

    def __init__(self, table: HostTable, index: int) -> None:
        self.table = table
        self.index = index
        self.seats = Seats(table.memory, index)
        self._memory = table.memory
        self._row = table.memory.rows[index]
        self._log_lines_before = self._row.log_lines_dropped  # an earlier worker's, continued

    def sent(self, events: int) -> None:
        self._row.events_sent += events

    def joined(self, events: int) -> None:
        """A stream joined, with its first `events`."""
        self._row.connected += 1
        self._row.events_sent += events

    def dropped(self, reason: str) -> None:
        assert reason in DROP_REASONS, reason
        setattr(self._row, reason, getattr(self._row, reason) + 1)

    def fanned_out(self, seconds: float, events: int) -> None:
        row = self._row
        row.events_sent += events
        row.fanouts += 1
        row.fanout_ns += int(seconds * 1e9)

    def announced(self, version: Version) -> None:
        """This worker announces `version` (the host's version changes with it, counted once)."""
        host_version.announce(self._memory, self._row, version)

    def report(self, problem: str | None) -> None:
        """Whether this worker's source is followed and why not, for the other workers to read."""
        encoded = b"" if problem is None else encode_problem(problem)
        with self._memory.lock:
            self._row.source_up = problem is None
            if self._row.problem != encoded:
                self._row.problem = encoded

    def log_lines_dropped(self, count: int) -> None:
        """This process has dropped `count` log lines since it started."""
        self._row.log_lines_dropped = self._log_lines_before + count

    def started_serving(self) -> None:
        """This process serves the row now: its pid, and up."""
        self._row.pid = os.getpid()
        self._row.up = 1


def _state(index: int, row: Row) -> WorkerState:
    return WorkerState(
        index=index,
        pid=row.pid,
        up=bool(row.up),
        restarts=row.restarts,
        fork_failures=row.fork_failures,
        clients=row.clients,
        source_up=bool(row.source_up),
        connected=row.connected,
        events_sent=row.events_sent,
        refused=row.refused,
        dropped={reason: getattr(row, reason) for reason in DROP_REASONS},
        fanouts=row.fanouts,
        fanout_seconds=row.fanout_ns / 1e9,
        log_lines_dropped=row.log_lines_dropped,
        version=decode_text(row.version),
        problem=decode_text(row.problem),
    )
