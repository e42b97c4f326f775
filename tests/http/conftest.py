"""The real application in-process (pytest-aiohttp), on the file source in a temp folder."""

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from aiohttp.typedefs import Middleware

from sidecar.announcer import Announcer
from sidecar.app import ANNOUNCER, HUB, create_app
from sidecar.config import Settings
from sidecar.hub import Hub
from sidecar.sources.file import FileSource
from tests.sse_client import StreamReader


@dataclass
class Sidecar:
    client: TestClient[Any, Any]
    hub: Hub
    announcer: Announcer
    version_file: Path

    def publish(self, value: str) -> None:
        """Deliver `value` as the source would (through the announcer's gate)."""
        self.announcer.offer(value)

    async def health(self) -> dict[str, Any]:
        health: dict[str, Any] = await (await self.client.get("/healthz")).json()
        return health

    async def open_stream(self, **headers: str) -> StreamReader:
        response = await self.client.get("/events/version", headers=headers)
        assert response.status == 200, await response.text()
        return StreamReader(response)


MakeSidecar = Callable[..., Awaitable[Sidecar]]


@pytest.fixture
def make_sidecar(aiohttp_client: Any, tmp_path: Path) -> MakeSidecar:
    async def make(version: str = "v1", middlewares: Sequence[Middleware] = (), **settings: Any) -> Sidecar:
        """`middlewares`: wrapped around the app's handlers, to see what they do."""
        version_file = tmp_path / "version.txt"
        version_file.write_text(version + "\n")
        config = Settings(source="file", version_file=version_file, **settings)
        app = create_app(config, FileSource(version_file, poll_interval=0.05))
        app.middlewares.extend(middlewares)
        await app[ANNOUNCER].read_initial()
        client = await aiohttp_client(app)
        return Sidecar(client, app[HUB], app[ANNOUNCER], version_file)

    return make
