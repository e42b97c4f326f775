"""The open-files limit, and what fits under it: every stream holds a socket, so the soft limit is
raised to the hard one once at start-up (as nginx's worker_rlimit_nofile does), instead of failing
at 1,024 clients on a default soft limit; then the connections and streams one process may hold,
with descriptors kept in reserve for the source and for requests."""

import contextlib
import dataclasses
import resource
from dataclasses import dataclass

from .config import Settings
from .logs import get_logger

log = get_logger("sidecar.open_files")

# Descriptors kept out of reach of connections: the listening socket, stdio, the event loop's
# own, the file source's read, the Docker Engine connections.
RESERVED_FOR_SOURCE = 32
# Connections kept free of streams, for /healthz, /metrics, the script and 503 answers.
RESERVED_FOR_REQUESTS = 32


@dataclass(frozen=True)
class Limits:
    """How many connections and streams one process holds under the open-files limit."""

    open_files: int
    connections: int  # open connections at most; one more is closed at once
    streams: int  # --max-clients, or less when it does not fit

    @classmethod
    def under_open_files(cls, open_files: int, max_clients: int) -> "Limits":
        connections = max(1, open_files - RESERVED_FOR_SOURCE)
        return cls(open_files, connections, min(max_clients, max(1, connections - RESERVED_FOR_REQUESTS)))


def raise_open_files_limit() -> int:
    """Lift the soft open-files limit to the hard one; the soft limit in force. Once, at start-up,
    before any worker forks: the workers inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):  # e.g. an unlimited hard limit
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return open_files_limit()


def open_files_limit() -> int:
    """The soft open-files limit in force."""
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def fit_under(settings: Settings, open_files: int) -> Settings:
    """`settings` with --max-clients (the cap of the whole host) lowered to what its workers fit
    under `open_files` each (warns if it had to be)."""
    limits = Limits.under_open_files(open_files, settings.max_clients)
    streams = min(settings.max_clients, limits.streams * settings.workers)
    if streams < settings.max_clients:
        log.warning(
            "--max-clients does not fit under the open-files limit",
            max_clients=settings.max_clients,
            open_files_limit=limits.open_files,
            workers=settings.workers,
            streams_held_at_most=streams,
            reserved=RESERVED_FOR_SOURCE + RESERVED_FOR_REQUESTS,
            fix="raise the hard open-files limit (ulimit -Hn, or the container's nofile ulimit)",
        )
    return dataclasses.replace(settings, max_clients=streams)
