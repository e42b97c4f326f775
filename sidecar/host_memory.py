"""The host table's memory: a header, then one row per worker, in a memfd mapped shared.

Made before the workers fork, so that they all see the same bytes. Every field is a fixed-size
C type, so that a number is one aligned 8-byte store: each number in a row has one writer, its
worker (the supervisor for pid and restarts), and needs no lock. What several processes write
(the header, seats, texts) is written under the table's lock (host_lock.py).
"""

import ctypes
import mmap
import os

from .host_lock import HostLock
from .version import MAX_VERSION_LENGTH

# UTF-8 takes at most 4 bytes per character; one more for the terminating NUL.
VERSION_BYTES = 4 * MAX_VERSION_LENGTH + 1
PROBLEM_BYTES = 512

# The fixed set of reasons a stream is dropped by the sidecar (label values of
# version_sidecar_clients_dropped_total), each a counter column of the row.
DROP_REASONS = ("too_slow", "send_timeout")


class Header(ctypes.Structure):
    _fields_ = (
        ("max_clients", ctypes.c_int64),
        ("version_changes", ctypes.c_int64),  # changes of the announced version, counted once per host
        ("version", ctypes.c_char * VERSION_BYTES),  # the version announced last, by any worker
    )


class Row(ctypes.Structure):
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
        ("version", ctypes.c_char * VERSION_BYTES),
        ("problem", ctypes.c_char * PROBLEM_BYTES),
    )


_ROWS_AT = 4096  # the header has its own page; rows follow


class HostMemory:
    """The header and the rows of one host, and the lock over them."""

    def __init__(self, workers: int) -> None:
        fd = os.memfd_create("version-sidecar-host")
        length = _ROWS_AT + workers * ctypes.sizeof(Row)
        os.ftruncate(fd, length)
        self._mapping = mmap.mmap(fd, length)  # shared: forked workers see one table
        self.header = Header.from_buffer(self._mapping)
        self.rows = (Row * workers).from_buffer(self._mapping, _ROWS_AT)
        self.lock = HostLock(fd)


def encode_problem(text: str) -> bytes:
    """`text` as it fits a row's problem field (cut, with "..." where it was)."""
    encoded = text.replace("\0", "").encode()
    if len(encoded) < PROBLEM_BYTES:
        return encoded
    return encoded[: PROBLEM_BYTES - 4].decode(errors="ignore").encode() + b"..."


def decode_text(raw: bytes) -> str | None:
    return raw.decode(errors="replace") or None
