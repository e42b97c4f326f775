"""The aiohttp application: the version stream, the client script, the health check, the demo."""

import asyncio
import contextlib
import html
from importlib import resources

from aiohttp import web
from aiohttp.http_writer import StreamWriter
from aiohttp_sse import EventSourceResponse

from .config import Settings
from .hub import Hub
from .logs import get_logger
from .script import ClientScript
from .sources import Source

log = get_logger("sidecar.app")

HUB = web.AppKey("hub", Hub)
SOURCE = web.AppKey("source", Source)
SETTINGS = web.AppKey("settings", Settings)
SCRIPT = web.AppKey("script", ClientScript)
INITIAL_VERSION = web.AppKey("initial_version", str)
FOLLOW_TASK = web.AppKey("follow_task", asyncio.Task[None])


class VersionStream(EventSourceResponse):
    """aiohttp-sse's stream response (its headers, Last-Event-ID) without its per-connection
    ping task: the hub's one shared heartbeat replaces a task and a timer per client."""

    # Hold the head back until the first write (the retry delay and the current version), so
    # both leave in one send and one TCP segment instead of two (bench/RESULTS.md).
    _send_headers_immediately = False

    async def prepare(self, request: web.BaseRequest) -> StreamWriter:
        writer = await web.StreamResponse.prepare(self, request)
        assert isinstance(writer, StreamWriter)
        return writer


async def stream_version(request: web.Request) -> web.StreamResponse:
    hub = request.app[HUB]
    if hub.full:
        log.warning("client refused: too many clients", peer=request.remote, max_clients=hub.max_clients)
        raise web.HTTPServiceUnavailable(
            headers={"Retry-After": str(hub.retry_after_seconds)}, text="too many clients, retry later\n"
        )
    response = VersionStream()
    writer = await response.prepare(request)
    # aiohttp arms a keep-alive timer for each connection (75 s) that a stream never needs.
    request.protocol.keep_alive(True)
    assert request.transport is not None
    client = await hub.join(writer, request.transport, request.remote or "unknown", response.last_event_id)
    try:
        await client.ended
    finally:  # cancelled when the client goes away (handler_cancellation)
        hub.leave(client, "client went away")
    if request.transport is None or request.transport.is_closing():
        raise asyncio.CancelledError  # nothing left to finish the response on
    return response


async def serve_script(request: web.Request) -> web.Response:
    return request.app[SCRIPT].respond(request)


async def health(request: web.Request) -> web.Response:
    hub, source = request.app[HUB], request.app[SOURCE]
    problem = source.problem if source.problem else (None if hub.version else "no version known yet")
    return web.json_response(
        {
            "status": "degraded" if problem else "ok",
            "version": hub.version,
            "clients": len(hub.clients),
            "source": source.name,
            "problem": problem,
        }
    )


async def demo_page(request: web.Request) -> web.Response:
    settings, hub = request.app[SETTINGS], request.app[HUB]
    template = (resources.files("sidecar") / "demo.html").read_text(encoding="utf-8")
    page = template.replace("{{version}}", html.escape(hub.version or "unknown", quote=True))
    page = page.replace("{{script_path}}", html.escape(settings.script_path, quote=True))
    page = page.replace("{{version_file}}", html.escape(str(settings.version_file), quote=True))
    return web.Response(text=page, content_type="text/html", headers={"Cache-Control": "no-cache"})


async def _start(app: web.Application) -> None:
    hub, source = app[HUB], app[SOURCE]
    if app[INITIAL_VERSION]:
        hub.publish(app[INITIAL_VERSION], source=source.name)
    hub.start()
    app[FOLLOW_TASK] = asyncio.create_task(source.follow(lambda value: hub.publish(value, source=source.name)))


async def _stop(app: web.Application) -> None:
    await app[HUB].stop()
    task = app[FOLLOW_TASK]
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await app[SOURCE].close()


def create_app(settings: Settings, source: Source, initial_version: str | None) -> web.Application:
    app = web.Application()
    app[SETTINGS] = settings
    app[SOURCE] = source
    app[INITIAL_VERSION] = initial_version or ""
    app[SCRIPT] = ClientScript.load()
    app[HUB] = Hub(
        heartbeat=settings.heartbeat,
        retry=settings.retry,
        retry_jitter=settings.retry_jitter,
        max_clients=settings.max_clients,
        max_buffer=settings.max_buffer,
        send_timeout=settings.send_timeout,
    )
    # HEAD is refused (405) like every other method: a stream has no head without a body.
    app.router.add_get(settings.stream_path, stream_version, allow_head=False)
    app.router.add_get(settings.script_path, serve_script)
    app.router.add_get("/healthz", health)
    if settings.demo:
        app.router.add_get("/", demo_page)
    app.on_startup.append(_start)
    app.on_shutdown.append(_stop)
    return app
