"""The aiohttp application: its routes (the version stream, the client script, /healthz, /metrics,
the demo page), and what starts and stops with it."""

import asyncio

from aiohttp import web
from prometheus_client import CollectorRegistry

from .announcer import Announcer
from .client import DropRules
from .config import Settings
from .demo import render_page
from .health import host_health
from .host import WorkerRow
from .hub import Hub
from .logs import NOISE
from .metrics import registry, respond
from .reporter import Reporter
from .script import ClientScript
from .sources import Source
from .stream import hand_off, open_stream

HUB = web.AppKey("hub", Hub)
ANNOUNCER = web.AppKey("announcer", Announcer)
SETTINGS = web.AppKey("settings", Settings)
SCRIPT = web.AppKey("script", ClientScript)
METRICS = web.AppKey("metrics", CollectorRegistry)
REPORTER = web.AppKey("reporter", Reporter)


async def stream_version(request: web.Request) -> web.StreamResponse:
    hub = request.app[HUB]
    if not hub.row.seats.take():  # the cap holds for the whole host, over all workers
        NOISE.log_summarised(
            "client refused: too many clients", peer=request.remote, max_clients=hub.row.seats.max_clients
        )
        refusal = web.Response(
            status=503, headers={"Retry-After": str(hub.retry_after_seconds)}, text="too many clients, retry later\n"
        )
        refusal.force_close()  # a refused tab must not keep its connection (and a descriptor) idle
        return refusal
    try:
        stream = await open_stream(request)
        client = await hub.join(stream, request.remote or "unknown", stream.response.last_event_id)
    except BaseException:
        hub.row.seats.give()
        raise
    # The connection is the client's from here (stream.py): its loss leaves the hub and gives the
    # seat back (Hub.lost), and the hub ends it (Client.end). aiohttp forgets it, and its handler
    # ends cancelled so that nothing finishes the response.
    hub.adopt(client)
    if not hand_off(request, client):  # aiohttp heard first that the connection is gone: the client never will
        hub.lost(client)
    raise asyncio.CancelledError


async def serve_script(request: web.Request) -> web.Response:
    return request.app[SCRIPT].respond(request)


async def health(request: web.Request) -> web.Response:
    hub, announcer = request.app[HUB], request.app[ANNOUNCER]
    host = request.app[REPORTER].read_host()
    return web.json_response(host_health(host, hub.row.index, announcer.problem, hub.version, announcer.source.name))


async def serve_metrics(request: web.Request) -> web.Response:
    return respond(request.app[METRICS], request)


async def demo_page(request: web.Request) -> web.Response:
    return render_page(request.app[SETTINGS], request.app[HUB].version)


async def _start(app: web.Application) -> None:
    app[HUB].start()
    app[ANNOUNCER].start()
    app[REPORTER].start()
    app[HUB].row.started_serving()


async def _stop(app: web.Application) -> None:
    await app[REPORTER].stop()
    app[HUB].stop()
    await app[HUB].closed(app[SETTINGS].shutdown_timeout)
    await app[ANNOUNCER].stop()


def create_app(settings: Settings, source: Source, row: WorkerRow | None = None) -> web.Application:
    """The routes, and the hub fed from `source` (see Announcer.first_version for the first version);
    `row`: this worker's row of the host table (None: a table of its own, for one process)."""
    app = web.Application()
    app[SETTINGS] = settings
    app[SCRIPT] = ClientScript.load()
    app[HUB] = hub = Hub(
        heartbeat=settings.heartbeat,
        retry=settings.retry,
        retry_jitter=settings.retry_jitter,
        reconnect_rate=settings.reconnect_rate,
        max_clients=settings.max_clients,
        drop_rules=DropRules(max_buffer=settings.max_buffer, send_timeout=settings.send_timeout),
        row=row,
    )
    app[ANNOUNCER] = announcer = Announcer(source, hub)
    app[REPORTER] = reporter = Reporter(hub.row, announcer)
    app[METRICS] = registry(reporter.read_host)
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
