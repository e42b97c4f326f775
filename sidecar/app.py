"""The aiohttp application: the version stream, the client script, the health check, the
metrics, the demo."""

import asyncio
import contextlib
import html
from importlib import resources
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry

from .aiohttp_internals import open_stream
from .announcer import Announcer
from .client import DropRules
from .config import Settings
from .host import HostState, WorkerRow
from .hub import Hub
from .logs import NOISE, Output, get_logger
from .metrics import registry, respond
from .script import ClientScript
from .sources import Source

log = get_logger("sidecar.app")

HUB = web.AppKey("hub", Hub)
ANNOUNCER = web.AppKey("announcer", Announcer)
SETTINGS = web.AppKey("settings", Settings)
SCRIPT = web.AppKey("script", ClientScript)
METRICS = web.AppKey("metrics", CollectorRegistry)
REPORTER = web.AppKey("reporter", asyncio.Task[None])

# How often a worker writes whether its source is followed into the host table, for the others.
REPORT_PERIOD = 1.0


async def stream_version(request: web.Request) -> web.StreamResponse:
    hub = request.app[HUB]
    if not hub.row.take_seat():  # the cap holds for the whole host, over all workers
        NOISE.note("client refused: too many clients", peer=request.remote, max_clients=hub.row.table.max_clients)
        refusal = web.Response(
            status=503, headers={"Retry-After": str(hub.retry_after_seconds)}, text="too many clients, retry later\n"
        )
        refusal.force_close()  # a refused tab must not keep its connection (and a descriptor) idle
        return refusal
    try:
        stream = await open_stream(request)
        client = await hub.join(stream, request.remote or "unknown", stream.response.last_event_id)
        try:
            await client.ended
        finally:  # cancelled when the client goes away (handler_cancellation)
            hub.leave(client, "client went away")
    finally:
        hub.row.give_seat()
    if request.transport is None or request.transport.is_closing():
        raise asyncio.CancelledError  # nothing left to finish the response on
    return stream.response


async def serve_script(request: web.Request) -> web.Response:
    return request.app[SCRIPT].respond(request)


def read_host(app: web.Application) -> HostState:
    """The host table, with this worker's own row brought up to date first."""
    row = app[HUB].row
    row.report(app[ANNOUNCER].problem)
    return row.table.read()


async def health(request: web.Request) -> web.Response:
    """For the whole host: the clients of every worker, and degraded if any worker has a problem."""
    hub, announcer = request.app[HUB], request.app[ANNOUNCER]
    host = read_host(request.app)
    problem = announcer.problem or _others_problem(host, hub.row)
    body: dict[str, Any] = {
        "status": "degraded" if problem else "ok",
        "version": hub.version,
        "clients": host.total("clients"),
        "source": announcer.source.name,
        "problem": problem,
    }
    if len(host.workers) > 1:
        body["worker"] = hub.row.index  # the one answering
        body["workers"] = [
            {
                "worker": worker.index,
                "pid": worker.pid or None,
                "up": worker.up,
                "clients": worker.clients,
                "version": worker.version,
                "problem": worker.problem,
                "restarts": worker.restarts,
            }
            for worker in host.workers
        ]
    return web.json_response(body)


def _others_problem(host: HostState, mine: WorkerRow) -> str | None:
    for worker in host.workers:
        if worker.index == mine.index:
            continue
        if not worker.up:
            return f"worker {worker.index} is not serving (starting)"
        if not worker.source_up:
            return f"worker {worker.index}: {worker.problem or 'its source is not followed yet'}"
    return None


async def serve_metrics(request: web.Request) -> web.Response:
    return respond(request.app[METRICS], request)


async def demo_page(request: web.Request) -> web.Response:
    settings, hub = request.app[SETTINGS], request.app[HUB]
    template = (resources.files("sidecar") / "demo.html").read_text(encoding="utf-8")
    page = template.replace("{{version}}", html.escape(hub.version or "unknown", quote=True))
    page = page.replace("{{script_path}}", html.escape(settings.script_path, quote=True))
    page = page.replace("{{version_file}}", html.escape(str(settings.version_file), quote=True))
    return web.Response(text=page, content_type="text/html", headers={"Cache-Control": "no-cache"})


async def _report(app: web.Application) -> None:
    """Keeps this worker's row saying whether its source is followed (the problem can change
    inside any source), so that the other workers' /healthz and /metrics see it."""
    while True:
        app[HUB].row.report(app[ANNOUNCER].problem)
        if Output.current is not None:
            app[HUB].row.log_lines_dropped(Output.current.dropped)
        await asyncio.sleep(REPORT_PERIOD)


async def _start(app: web.Application) -> None:
    app[HUB].start()
    app[ANNOUNCER].start()
    app[HUB].row.report(app[ANNOUNCER].problem)
    app[HUB].row.serving()
    app[REPORTER] = asyncio.create_task(_report(app), name="report to the host table")


async def _stop(app: web.Application) -> None:
    app[REPORTER].cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await app[REPORTER]
    app[HUB].stop()
    await app[ANNOUNCER].stop()


def create_app(settings: Settings, source: Source, row: WorkerRow | None = None) -> web.Application:
    """The routes, and the hub fed from `source` (see Announcer.read_initial for the first version);
    `row`: this worker's row of the host table (None: a table of its own, for one process)."""
    app = web.Application()
    app[SETTINGS] = settings
    app[SCRIPT] = ClientScript.load()
    app[HUB] = hub = Hub(
        heartbeat=settings.heartbeat,
        retry=settings.retry,
        retry_jitter=settings.retry_jitter,
        max_clients=settings.max_clients,
        drop_rules=DropRules(max_buffer=settings.max_buffer, send_timeout=settings.send_timeout),
        row=row,
    )
    app[ANNOUNCER] = Announcer(source, hub)
    app[METRICS] = registry(lambda: read_host(app))
    # HEAD is refused (405) like every other method: a stream has no head without a body.
    app.router.add_get(settings.stream_path, stream_version, allow_head=False)
    app.router.add_get(settings.script_path, serve_script)
    app.router.add_get("/healthz", health)
    app.router.add_get("/metrics", serve_metrics)
    if settings.demo:
        app.router.add_get("/", demo_page)
    app.on_startup.append(_start)
    app.on_shutdown.append(_stop)
    return app
