"""One host, one picture: a table in shared memory with one row per worker.

Every worker of a host writes its own row (streams held, events sent, refusals, drops, whether
its source is followed), so whichever worker answers /metrics or /healthz can speak for all of
them, and --max-clients holds for the host as a whole. The table is made before workers fork (a
memfd mapped shared); a single process runs the same code with one row.

Each number in a row has one writer, its worker (one aligned 8-byte store, no lock); counters
only grow. Seats under the cap and the texts (versions, problems) are taken and written under a
lock: an fcntl record lock on the memfd, which the kernel releases when its holder dies, so a
killed worker can never leave it held. The supervisor zeroes a dead worker's gauges before it
starts the next one in the same row, which continues the counters: a restart neither leaves its
clients counted nor makes a counter go back.
"""

import contextlib
import ctypes
import fcntl
import mmap
import os
from collections.abc import Iterator
from dataclasses import dataclass

from .version import MAX_VERSION_LENGTH, Version

# UTF-8 takes at most 4 bytes per character; one more for the terminating NUL.
_VERSION_BYTES = 4 * MAX_VERSION_LENGTH + 1
_PROBLEM_BYTES = 512

# The fixed set of reasons a stream is dropped by the sidecar (label values of
# version_sidecar_clients_dropped_total), each a counter column of the row.
DROP_REASONS = ("too_slow", "send_timeout")


class _Header(ctypes.Structure):
    _fields_ = (
        ("max_clients", ctypes.c_int64),
        ("version_changes", ctypes.c_int64),  # changes of the announced version, counted once per host
        ("version", ctypes.c_char * _VERSION_BYTES),  # the version announced last, by any worker
    )


class _Row(ctypes.Structure):
    _fields_ = (
        # Written by the supervisor: which process serves this row, and how often it was replaced.
        ("pid", ctypes.c_int64),
        ("restarts", ctypes.c_int64),
        ("fork_failures", ctypes.c_int64),  # starts that failed to fork (process or memory limits)
        # Gauges, written by the worker and zeroed by the supervisor when it dies.
        ("up", ctypes.c_int64),  # 1 once the worker serves
        ("clients", ctypes.c_int64),  # seats held: streams connected or being opened
        ("source_up", ctypes.c_int64),  # 1 while its announcer reports no problem
        # Counters, written by the worker; the next worker in this row continues them.
        ("connected", ctypes.c_int64),
        ("events_sent", ctypes.c_int64),
        ("refused", ctypes.c_int64),
        ("too_slow", ctypes.c_int64),
        ("send_timeout", ctypes.c_int64),
        ("fanouts", ctypes.c_int64),
        ("fanout_ns", ctypes.c_int64),
        ("log_lines_dropped", ctypes.c_int64),  # lines a stalled log reader cost (logs.Output)
        # Texts, under the lock.
        ("version", ctypes.c_char * _VERSION_BYTES),
        ("problem", ctypes.c_char * _PROBLEM_BYTES),
    )


_ROWS_AT = 4096  # the header has its own page; rows follow


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
    def serving(self) -> list[WorkerState]:
        return [worker for worker in self.workers if worker.up]


class HostTable:
    """The table of one host: made once, before any worker forks."""

    def __init__(self, workers: int, max_clients: int) -> None:
        self._fd = os.memfd_create("version-sidecar-host")
        length = _ROWS_AT + workers * ctypes.sizeof(_Row)
        os.ftruncate(self._fd, length)
        self._memory = mmap.mmap(self._fd, length)  # shared: forked workers see one table
        self._header = _Header.from_buffer(self._memory)
        self._rows = (_Row * workers).from_buffer(self._memory, _ROWS_AT)
        self._header.max_clients = max_clients

    @property
    def max_clients(self) -> int:
        return int(self._header.max_clients)

    def row(self, index: int) -> "WorkerRow":
        return WorkerRow(self, index)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Holds the host's lock (blocking; held for a few statements at a time)."""
        fcntl.lockf(self._fd, fcntl.LOCK_EX, 1)
        try:
            yield
        finally:
            fcntl.lockf(self._fd, fcntl.LOCK_UN, 1)

    def clients(self) -> int:
        return sum(row.clients for row in self._rows)

    # The supervisor's side.

    def worker_started(self, index: int, pid: int, restart: bool) -> None:
        row = self._rows[index]
        row.pid = pid
        if restart:
            row.restarts += 1

    def fork_failed(self, index: int) -> None:
        self._rows[index].fork_failures += 1

    def worker_died(self, index: int) -> None:
        """Forget what a dead worker held: its streams are gone; its counters stay."""
        row = self._rows[index]
        with self.locked():
            row.pid = row.up = row.clients = row.source_up = 0
            row.version = b""
            row.problem = b""

    def is_up(self, index: int) -> bool:
        return bool(self._rows[index].up)

    # Everyone's side.

    def read(self) -> HostState:
        with self.locked():
            return HostState(
                max_clients=self._header.max_clients,
                version_changes=self._header.version_changes,
                version=_text(self._header.version),
                workers=[_state(index, row) for index, row in enumerate(self._rows)],
            )


class WorkerRow:
    """A worker's own row: what its hot paths count (each an integer) and its seats under the cap."""

    __slots__ = ("_log_lines_before", "_row", "index", "stream_limit", "table")

    def __init__(self, table: HostTable, index: int) -> None:
        self.table = table
        self.index = index
        self._row = table._rows[index]
        self._log_lines_before = self._row.log_lines_dropped  # an earlier worker's, continued
        # Streams this one process may hold (its open-files limit); the host cap applies as well.
        self.stream_limit = table.max_clients

    def take_seat(self) -> bool:
        """One seat under the host's cap (and this process's limit), or False when they are full."""
        row, table = self._row, self.table
        # The lock by hand rather than table.locked(): this runs once per connection.
        fcntl.lockf(table._fd, fcntl.LOCK_EX, 1)
        try:
            if row.clients >= self.stream_limit or table.clients() >= table.max_clients:
                row.refused += 1
                return False
            row.clients += 1
        finally:
            fcntl.lockf(table._fd, fcntl.LOCK_UN, 1)
        return True

    def give_seat(self) -> None:
        self._row.clients -= 1  # only lowers the sum: safe without the lock

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
        """This worker announces `version`: the host's version changes, counted once per host."""
        header, encoded = self.table._header, version.encode()
        with self.table.locked():
            self._row.version = encoded
            if header.version != encoded:
                if header.version:  # the first version is no change
                    header.version_changes += 1
                header.version = encoded

    def report(self, problem: str | None) -> None:
        """Whether this worker's source is followed and why not, for the other workers to read."""
        encoded = b"" if problem is None else _cut(problem.replace("\0", ""))
        with self.table.locked():
            self._row.source_up = problem is None
            if self._row.problem != encoded:
                self._row.problem = encoded

    def log_lines_dropped(self, count: int) -> None:
        """This process has dropped `count` log lines since it started."""
        self._row.log_lines_dropped = self._log_lines_before + count

    def serving(self) -> None:
        self._row.pid = os.getpid()
        self._row.up = 1


def _cut(text: str) -> bytes:
    encoded = text.encode()
    if len(encoded) < _PROBLEM_BYTES:
        return encoded
    return encoded[: _PROBLEM_BYTES - 4].decode(errors="ignore").encode() + b"..."


def _text(raw: bytes) -> str | None:
    return raw.decode(errors="replace") or None


def _state(index: int, row: _Row) -> WorkerState:
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
        version=_text(row.version),
        problem=_text(row.problem),
    )
