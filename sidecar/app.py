"""The aiohttp application: the version stream, the client script, the health check, the demo."""

import asyncio
import html
from importlib import resources

from aiohttp import web

from .aiohttp_internals import open_stream
from .announcer import Announcer
from .client import DropRules
from .config import Settings
from .hub import Hub
from .logs import NOISE, get_logger
from .script import ClientScript
from .sources import Source

log = get_logger("sidecar.app")

HUB = web.AppKey("hub", Hub)
ANNOUNCER = web.AppKey("announcer", Announcer)
SETTINGS = web.AppKey("settings", Settings)
SCRIPT = web.AppKey("script", ClientScript)


async def stream_version(request: web.Request) -> web.StreamResponse:
    hub = request.app[HUB]
    if hub.full:
        NOISE.note("client refused: too many clients", peer=request.remote, max_clients=hub.max_clients)
        refusal = web.Response(
            status=503, headers={"Retry-After": str(hub.retry_after_seconds)}, text="too many clients, retry later\n"
        )
        refusal.force_close()  # a refused tab must not keep its connection (and a descriptor) idle
        return refusal
    stream = await open_stream(request)
    client = await hub.join(stream, request.remote or "unknown", stream.response.last_event_id)
    try:
        await client.ended
    finally:  # cancelled when the client goes away (handler_cancellation)
        hub.leave(client, "client went away")
    if request.transport is None or request.transport.is_closing():
        raise asyncio.CancelledError  # nothing left to finish the response on
    return stream.response


async def serve_script(request: web.Request) -> web.Response:
    return request.app[SCRIPT].respond(request)


async def health(request: web.Request) -> web.Response:
    hub, announcer = request.app[HUB], request.app[ANNOUNCER]
    problem = announcer.problem
    return web.json_response(
        {
            "status": "degraded" if problem else "ok",
            "version": hub.version,
            "clients": len(hub.clients),
            "source": announcer.source.name,
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
    app[HUB].start()
    app[ANNOUNCER].start()


async def _stop(app: web.Application) -> None:
    app[HUB].stop()
    await app[ANNOUNCER].stop()


def create_app(settings: Settings, source: Source) -> web.Application:
    """The routes, and the hub fed from `source` (see Announcer.read_initial for the first version)."""
    app = web.Application()
    app[SETTINGS] = settings
    app[SCRIPT] = ClientScript.load()
    app[HUB] = hub = Hub(
        heartbeat=settings.heartbeat,
        retry=settings.retry,
        retry_jitter=settings.retry_jitter,
        max_clients=settings.max_clients,
        drop_rules=DropRules(max_buffer=settings.max_buffer, send_timeout=settings.send_timeout),
    )
    app[ANNOUNCER] = Announcer(source, hub)
    # HEAD is refused (405) like every other method: a stream has no head without a body.
    app.router.add_get(settings.stream_path, stream_version, allow_head=False)
    app.router.add_get(settings.script_path, serve_script)
    app.router.add_get("/healthz", health)
    if settings.demo:
        app.router.add_get("/", demo_page)
    app.on_startup.append(_start)
    app.on_shutdown.append(_stop)
    return app
