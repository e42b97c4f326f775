"""Serving one process: the aiohttp runner and its signals.

Not aiohttp's run_app, for three reasons: a second SIGTERM during shutdown must not turn a clean
exit into an error; SIGHUP ends the process as cleanly as SIGTERM; and the listening socket gets
the connection ceiling's protocol factory (connections.py), under the number of connections
open_files.py says fit.
"""

import asyncio
import signal
import socket
from collections.abc import Awaitable, Callable

from aiohttp import web

from .app import HUB
from .config import Settings
from .connections import ceiling_protocol
from .logs import NOISE, get_logger

log = get_logger("sidecar.server")

# A connection that sends no request within this many seconds is closed (aiohttp's default: 75).
IDLE_TIMEOUT = 15.0
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
# The listening socket's queue, as long as the kernel allows (it caps this at net.core.somaxconn,
# 4,096 by default): a reconnect storm arrives in bursts, and a connection that finds the queue
# full gets a SYN cookie instead, which under load can end in a reset before its request is read
# (bench/RESULTS.md, "the reconnect storm's resets"); a queued one only waits its turn.
BACKLOG = 65535


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
        NOISE.log_summarised("accepting a connection failed", error=str(error))
        return
    log.error("event loop error", message=message, error=repr(error) if error else None)


async def run(
    settings: Settings,
    build_app: Callable[[Settings], Awaitable[web.Application]],
    sock: socket.socket | None,
    max_connections: int,
) -> int:
    """Serve until SIGTERM, SIGINT or SIGHUP, closing connections over `max_connections` at once;
    then end every stream and return 0."""
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(_report_loop_error)
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
    hub = app[HUB]
    protocol = ceiling_protocol(runner.server, lambda: hub.connections, max_connections)
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
