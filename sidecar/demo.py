"""--demo: a page at / that loads the script, and a version file to edit to see the toast."""

import html
from importlib import resources

from aiohttp import web

from .config import DEMO_VERSION_FILE, Settings
from .logs import get_logger

log = get_logger("sidecar.demo")


def prepare_demo(settings: Settings) -> None:
    """Write the demo's version file if it is the default one and missing; say how to use the demo."""
    if settings.version_file == DEMO_VERSION_FILE and not DEMO_VERSION_FILE.exists():
        DEMO_VERSION_FILE.write_text("v1\n", encoding="utf-8")
    log.info(
        "demo page ready",
        url=f"http://{settings.host}:{settings.port}/",
        change_version_with=f"echo v2 > {settings.version_file}",
    )


def render_page(settings: Settings, version: str | None) -> web.Response:
    template = (resources.files("sidecar") / "demo.html").read_text(encoding="utf-8")
    page = template.replace("{{version}}", html.escape(version or "unknown", quote=True))
    page = page.replace("{{script_path}}", html.escape(settings.script_path, quote=True))
    page = page.replace("{{version_file}}", html.escape(str(settings.version_file), quote=True))
    return web.Response(text=page, content_type="text/html", headers={"Cache-Control": "no-cache"})
