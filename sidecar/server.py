"""Serving one process: the aiohttp runner, its signals, and descriptors kept for the source.

Not aiohttp's run_app, for three reasons: a second SIGTERM during shutdown must not turn a clean
exit into an error; SIGHUP ends the process as cleanly as SIGTERM; and the listening socket gets
a protocol factory that closes connections over a ceiling at once, so a burst of connections can
never take the last descriptors from the version source, and idle ones make room for /healthz
and /metrics.
"""

import asyncio
import contextlib
import dataclasses
import resource
import signal
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from .aiohttp_internals import ConnectionCount
from .config import Settings
from .logs import NOISE, get_logger

log = get_logger("sidecar.server")

# Descriptors kept out of reach of connections: the listening socket, stdio, the event loop's
# own, the file source's read, the Docker Engine connections.
RESERVED_FOR_SOURCE = 32
# Connections kept free of streams, for /healthz, /metrics, the script and 503 answers.
RESERVED_FOR_REQUESTS = 32
# A connection that sends no request within this many seconds is closed (aiohttp's default: 75).
IDLE_TIMEOUT = 15.0
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
# The listening socket's queue: a reconnect storm arrives at once (the kernel caps it at somaxconn).
BACKLOG = 1024


@dataclass(frozen=True)
class Limits:
    """How many connections and streams fit under the open-files limit."""

    open_files: int
    connections: int  # open connections at most; one more is closed at once
    streams: int  # --max-clients, or less when it does not fit

    @classmethod
    def under(cls, open_files: int, max_clients: int) -> "Limits":
        connections = max(1, open_files - RESERVED_FOR_SOURCE)
        return cls(open_files, connections, min(max_clients, max(1, connections - RESERVED_FOR_REQUESTS)))


def raise_open_files_limit() -> int:
    """Every stream holds a socket: lift the soft open-files limit to the hard one, as nginx's
    worker_rlimit_nofile does, instead of failing at 1,024 clients on a default soft limit.
    Returns the soft limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):  # e.g. an unlimited hard limit
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def fit_under_open_files_limit(settings: Settings) -> Settings:
    """`settings` with --max-clients (the cap of the whole host) lowered to what its workers fit
    under the open-files limit (warns if it had to be); call once, before workers fork."""
    limits = Limits.under(raise_open_files_limit(), settings.max_clients)
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


def streams_per_process(settings: Settings) -> int:
    """Streams one process holds at most: the host's cap, or less where its open-files limit says."""
    return Limits.under(raise_open_files_limit(), settings.max_clients).streams


class _CloseAtOnce(asyncio.Protocol):
    """What a connection over the ceiling gets: closed before it can hold a descriptor."""

    def __init__(self, ceiling: int) -> None:
        self.ceiling = ceiling

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.abort()
        NOISE.note("connection closed at once: too many open connections", open_connections_at_most=self.ceiling)


def _ceiling(server: web.Server, ceiling: int) -> Callable[[], asyncio.BaseProtocol]:
    connections = ConnectionCount(server)

    def protocol() -> asyncio.BaseProtocol:
        # At the ceiling, an idle connection makes room: the newcomer may be /healthz.
        if len(connections) >= ceiling:
            if not connections.close_oldest_idle():
                return _CloseAtOnce(ceiling)
            NOISE.note("idle connection closed to make room", open_connections_at_most=ceiling)
        return server()

    return protocol


def listening_socket(host: str, port: int) -> socket.socket:
    """The socket of a single process, bound before anything else is done so that a taken port
    stops start-up with its one line; without SO_REUSEPORT, so no other host can join it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family, backlog=BACKLOG)


def _report_loop_error(loop: asyncio.AbstractEventLoop, context: dict[str, object]) -> None:
    """The event loop's errors as events; failed accepts (out of descriptors) as noise."""
    message = str(context.get("message", ""))
    error = context.get("exception")
    if "accept" in message:
        NOISE.note("accepting a connection failed", error=str(error))
        return
    log.error("event loop error", message=message, error=repr(error) if error else None)


async def run(
    settings: Settings, build_app: Callable[[Settings], Awaitable[web.Application]], sock: socket.socket | None = None
) -> int:
    """Serve until SIGTERM, SIGINT or SIGHUP; then end every stream and return 0."""
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(_report_loop_error)
    limits = Limits.under(raise_open_files_limit(), settings.max_clients)
    app = await build_app(settings)
    runner = web.AppRunner(
        app,
        handler_cancellation=True,  # a stream's handler learns at once that its tab went away
        access_log=None,
        shutdown_timeout=settings.shutdown_timeout,
        keepalive_timeout=IDLE_TIMEOUT,
    )
    await runner.setup()
    assert runner.server is not None
    protocol = _ceiling(runner.server, limits.connections)
    if sock is None:
        server = await loop.create_server(protocol, settings.host, settings.port, backlog=BACKLOG, reuse_address=True)
    else:
        server = await loop.create_server(protocol, sock=sock, backlog=BACKLOG)
    stopping = asyncio.Event()

    def on_signal(number: int) -> None:
        if stopping.is_set():
            log.info("already stopping", signal=signal.Signals(number).name)
            return
        log.info("stopping", signal=signal.Signals(number).name)
        stopping.set()

    for number in STOP_SIGNALS:
        loop.add_signal_handler(number, on_signal, number)
    try:
        await stopping.wait()
    finally:
        server.close()
        await runner.cleanup()  # ends every stream (the hub's on_shutdown), then waits for handlers
        NOISE.flush()
        _ignore_stop_signals(loop)
    return 0


def _ignore_stop_signals(loop: asyncio.AbstractEventLoop) -> None:
    """Once stopped, a stop signal has nothing left to do: ignore it, so that one coming after the
    loop has let go of its handlers cannot turn exit 0 into death by that signal (143). The swap
    happens with the signals blocked: none can land between the two dispositions."""
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        for number in STOP_SIGNALS:
            loop.remove_signal_handler(number)
            signal.signal(number, signal.SIG_IGN)
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
