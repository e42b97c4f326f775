"""Admission: whether one more stream may open, under --max-clients for the host as a whole and
under what this process's open-files limit holds.

A seat is taken under the host's lock, against the sum of every worker's seats, so that two
workers cannot both take the last one; it is given back without the lock (that only lowers the
sum). A refusal is counted in the worker's row.
"""

from .host_memory import HostMemory


class Seats:
    """One worker's seats, in its row of the host table."""

    __slots__ = ("_lock", "_row", "_rows", "max_clients", "stream_limit", "workers")

    def __init__(self, memory: HostMemory, index: int) -> None:
        self._lock = memory.lock
        self._rows = memory.rows
        self._row = memory.rows[index]
        self.max_clients = int(memory.header.max_clients)  # set before any worker forks
        # Streams this one process may hold (its open-files limit); the host's cap applies as well.
        self.stream_limit = self.max_clients
        self.workers = len(memory.rows)  # the host's workers, one row each

    def take(self) -> bool:
        """One seat, or False (counted as a refusal) when the host's or this process's are full."""
        row = self._row
        with self._lock:
            if row.clients >= self.stream_limit or self.taken() >= self.max_clients:
                row.refused += 1
                return False
            row.clients += 1
        return True

    def give(self) -> None:
        self._row.clients -= 1  # only lowers the sum: safe without the lock

    def taken(self) -> int:
        """Seats held now by every worker of the host."""
        return sum(row.clients for row in self._rows)
