"""Command line entry point: `version-sidecar` and `python -m sidecar`."""

import asyncio
import functools
import socket
import sys
from collections.abc import Awaitable, Callable, Sequence

from aiohttp import web

from .app import ANNOUNCER, HUB, create_app
from .config import DEMO_VERSION_FILE, SettingError, Settings, describe, fail, load_settings
from .host import HostTable, WorkerRow
from .logs import configure_logging, get_logger
from .server import fit_under_open_files_limit, listening_socket, run, streams_per_process
from .sources import Source, SourceError
from .sources.docker import DockerSource
from .sources.env import EnvSource
from .sources.file import FileSource
from .sources.swarm import SwarmSource
from .version import check_version
from .workers import Supervisor, reuseport_sockets

log = get_logger("sidecar")


def make_source(settings: Settings) -> Source:
    if settings.source == "file":
        assert settings.version_file is not None
        return FileSource(settings.version_file, settings.poll_interval)
    if settings.source == "docker":
        assert settings.docker_target is not None
        return DockerSource(
            settings.docker_target,
            project=settings.docker_project,
            label=settings.docker_label,
            host=settings.docker_host,
            fallback=settings.fallback_version,
            silence=settings.docker_timeout,
        )
    if settings.source == "swarm":
        assert settings.swarm_service is not None
        return SwarmSource(
            settings.swarm_service,
            label=settings.docker_label,
            host=settings.docker_host,
            fallback=settings.fallback_version,
            silence=settings.docker_timeout,
        )
    return EnvSource(settings.version_env)


async def build_app(settings: Settings, row: WorkerRow | None = None) -> web.Application:
    """The app (on `row` of the host table; None: a table of its own), with its first version
    read and checked before serving; raises SourceError, unless this worker replaces one that
    died: then the host's last version is kept meanwhile."""
    source = make_source(settings)
    app = create_app(settings, source, row)
    try:
        initial = await app[ANNOUNCER].read_initial()
    except SourceError as error:
        last = app[HUB].row.table.read().version
        if last is None:  # the host's first start: a setting or source to fix
            raise
        # Like a running worker whose source fails: serve the last good version, degraded.
        log.warning("source error, keeping the last good version", source=source.name, error=str(error))
        source.problem = str(error)
        initial = check_version(last)
        app[HUB].publish(initial)
    log.info("starting", version=initial, **describe(settings))
    return app


def main(argv: Sequence[str] | None = None) -> int:
    try:
        settings = load_settings(argv)
    except SettingError as error:
        fail(str(error))
    configure_logging(settings.log_format, settings.log_level, worker="supervisor" if settings.workers > 1 else None)
    if settings.demo and settings.version_file == DEMO_VERSION_FILE and not DEMO_VERSION_FILE.exists():
        DEMO_VERSION_FILE.write_text("v1\n", encoding="utf-8")
    if settings.demo:
        log.info(
            "demo page ready",
            url=f"http://{settings.host}:{settings.port}/",
            change_version_with=f"echo v2 > {settings.version_file}",
        )
    settings = fit_under_open_files_limit(settings)
    table = HostTable(settings.workers, settings.max_clients)  # before any fork: every worker shares it
    if settings.workers > 1:
        try:
            sockets = reuseport_sockets(settings.host, settings.port, settings.workers)
        except OSError as error:
            fail(f"--port {settings.port}: cannot listen on {settings.host}: {error.strerror or error}")

        def serve_worker(index: int, sock: socket.socket) -> int:
            configure_logging(settings.log_format, settings.log_level, worker=index)
            return serve(settings, sock, row=table.row(index))

        return Supervisor(sockets, table, serve_worker, settings.shutdown_timeout).run()
    try:
        sock = listening_socket(settings.host, settings.port)
    except OSError as error:
        fail(f"--port {settings.port}: cannot listen on {settings.host}: {error.strerror or error}")
    return serve(settings, sock, row=table.row(0))


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
) -> int:
    """Serve until a stop signal; exit status 0, or 2 with one line when it cannot start.
    `build` makes the app (default: build_app on `row` of the host table)."""
    if row is not None:
        row.stream_limit = streams_per_process(settings)
    if build is None:
        build = functools.partial(build_app, row=row)
    with asyncio.Runner(loop_factory=_event_loop) as runner:
        try:
            status = runner.run(run(settings, build, sock))
        except SourceError as error:
            fail(str(error))
        except OSError as error:  # e.g. the port is taken
            fail(f"--port {settings.port}: cannot listen on {settings.host}: {error.strerror or error}")
    log.info("stopped")
    return status


if __name__ == "__main__":
    sys.exit(main())
