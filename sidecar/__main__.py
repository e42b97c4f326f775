"""The command, `version-sidecar` (and `python -m sidecar`): settings in, then one process or a
supervisor of --workers, each serving its app until a stop signal."""

import asyncio
import functools
import socket
import sys
from collections.abc import Awaitable, Callable, Sequence

from aiohttp import web

from .app import ANNOUNCER, create_app
from .config import SettingError, Settings, describe, fail, load_settings
from .demo import prepare_demo
from .host import HostTable, WorkerRow
from .logs import configure_logging, get_logger
from .open_files import Limits, fit_under, open_files_limit, raise_open_files_limit
from .server import listening_socket, run
from .sources import SourceError
from .sources.choose import choose_source
from .workers import Supervisor, reuseport_sockets

log = get_logger("sidecar")


async def build_app(settings: Settings, row: WorkerRow | None = None) -> web.Application:
    """The app (on `row` of the host table; None: a table of its own), with its first version
    read and checked before serving (Announcer.first_version: raises SourceError at a first start)."""
    app = create_app(settings, choose_source(settings), row)
    initial = await app[ANNOUNCER].first_version()
    log.info("starting", version=initial, **describe(settings))
    return app


def main(argv: Sequence[str] | None = None) -> int:
    try:
        settings = load_settings(argv)
    except SettingError as error:
        fail(str(error))
    configure_logging(settings.log_format, settings.log_level, worker="supervisor" if settings.workers > 1 else None)
    if settings.demo:
        prepare_demo(settings)
    open_files = raise_open_files_limit()  # once, before any fork: the workers inherit it
    settings = fit_under(settings, open_files)
    limits = Limits.under_open_files(open_files, settings.max_clients)  # each process's
    table = HostTable(settings.workers, settings.max_clients)  # before any fork: every worker shares it
    if settings.workers > 1:
        try:
            sockets = reuseport_sockets(settings.host, settings.port, settings.workers)
        except OSError as error:
            fail(f"--port {settings.port}: cannot listen on {settings.host}: {error.strerror or error}")

        def serve_worker(index: int, sock: socket.socket) -> int:
            configure_logging(settings.log_format, settings.log_level, worker=index)
            return serve(settings, sock, row=table.row(index), limits=limits)

        return Supervisor(sockets, table, serve_worker, settings.shutdown_timeout).run()
    try:
        sock = listening_socket(settings.host, settings.port)
    except OSError as error:
        fail(f"--port {settings.port}: cannot listen on {settings.host}: {error.strerror or error}")
    return serve(settings, sock, row=table.row(0), limits=limits)


def _event_loop() -> asyncio.AbstractEventLoop:
    """uvloop when installed (the `fast` extra): quicker fan-out and lighter transports."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def serve(
    settings: Settings,
    sock: socket.socket | None = None,
    build: Callable[[Settings], Awaitable[web.Application]] | None = None,
    row: WorkerRow | None = None,
    limits: Limits | None = None,
) -> int:
    """Serve until a stop signal; exit status 0, or 2 with one line when it cannot start.
    `build` makes the app (default: build_app on `row` of the host table); `limits`: what this
    process holds (default: what fits under its open-files limit as it stands)."""
    if limits is None:
        limits = Limits.under_open_files(open_files_limit(), settings.max_clients)
    if row is not None:
        row.seats.stream_limit = limits.streams
    if build is None:
        build = functools.partial(build_app, row=row)
    with asyncio.Runner(loop_factory=_event_loop) as runner:
        try:
            status = runner.run(run(settings, build, sock, limits.connections))
        except SourceError as error:
            fail(str(error))
        except OSError as error:  # e.g. the port is taken
            fail(f"--port {settings.port}: cannot listen on {settings.host}: {error.strerror or error}")
    log.info("stopped")
    return status


if __name__ == "__main__":
    sys.exit(main())
