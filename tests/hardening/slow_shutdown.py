"""The real sidecar whose shutdown waits until a file appears, so that a test can send a second
signal while it is shutting down: `python -m tests.hardening.slow_shutdown RELEASE_FILE ARGS...`."""

import asyncio
import sys
from pathlib import Path

from aiohttp import web

from sidecar.__main__ import build_app, serve
from sidecar.config import Settings, load_settings
from sidecar.logs import configure_logging, get_logger

log = get_logger("tests.slow_shutdown")


def main() -> int:
    release = Path(sys.argv[1])
    settings = load_settings(sys.argv[2:])
    configure_logging(settings.log_format, settings.log_level)

    async def build(settings: Settings) -> web.Application:
        app = await build_app(settings)

        async def hold_shutdown(_app: web.Application) -> None:
            log.info("shutdown held until the release file exists")
            while not release.exists():  # noqa: ASYNC110, ASYNC240 (another process makes it)
                await asyncio.sleep(0.05)

        app.on_shutdown.append(hold_shutdown)
        return app

    return serve(settings, build=build)


if __name__ == "__main__":
    sys.exit(main())
