"""The shipped nginx snippet in front of the real sidecar, under Debian's nginx: events pass
at once (no buffering, no gzip), idle streams live on through heartbeats, and only the two
public paths leave the app."""

import time
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import StartSidecar
from tests.nginx.conftest import StartNginx
from tests.sse_client import StreamReader

pytestmark = pytest.mark.nginx

# Ask for gzip, as browsers do: the test server compresses event streams unless the snippet stops it.
GZIP = {"Accept-Encoding": "gzip, deflate"}


def version_file(tmp_path: Path, version: str) -> Path:
    path = tmp_path / "version.txt"
    path.write_text(f"{version}\n", encoding="utf-8")
    return path


async def test_events_arrive_through_nginx_at_once(
    tmp_path: Path, start_sidecar: StartSidecar, start_nginx: StartNginx
) -> None:
    path = version_file(tmp_path, "v1")
    sidecar = start_sidecar(["--source", "file", "--version-file", str(path)])
    nginx = start_nginx(sidecar.port)
    async with (
        aiohttp.ClientSession(auto_decompress=False) as session,
        session.get(f"{nginx.url}/events/version", headers=GZIP) as response,
    ):
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        assert response.headers["Cache-Control"] == "no-cache"
        assert "Content-Encoding" not in response.headers
        reader = StreamReader(response)
        # One small event, far below nginx's buffer size, and the next heartbeat 30 s away:
        # it only arrives if nginx passes it on unbuffered.
        assert await reader.next_version() == "v1"
        path.write_text("v2\n", encoding="utf-8")
        await reader.wait_for_version("v2")


async def test_idle_stream_outlives_the_read_timeout_through_heartbeats(
    tmp_path: Path, start_sidecar: StartSidecar, start_nginx: StartNginx
) -> None:
    path = version_file(tmp_path, "v1")
    sidecar = start_sidecar(["--source", "file", "--version-file", str(path), "--heartbeat", "0.5"])
    nginx = start_nginx(sidecar.port, read_timeout=2)
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{nginx.url}/events/version", headers=GZIP) as response,
    ):
        reader = StreamReader(response)
        idle_until = time.monotonic() + 7  # over three read timeouts with no version change
        heartbeats = 0
        while time.monotonic() < idle_until:
            assert await reader.next_version(timeout=5) == "v1"
            heartbeats += 1
        assert heartbeats > 3
        path.write_text("v2\n", encoding="utf-8")
        await reader.wait_for_version("v2")


async def test_without_heartbeats_nginx_ends_an_idle_stream(
    tmp_path: Path, start_sidecar: StartSidecar, start_nginx: StartNginx
) -> None:
    """The control for the test above: the short read timeout really bites."""
    path = version_file(tmp_path, "v1")
    sidecar = start_sidecar(["--source", "file", "--version-file", str(path), "--heartbeat", "600"])
    nginx = start_nginx(sidecar.port, read_timeout=1)
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{nginx.url}/events/version", headers=GZIP) as response,
    ):
        reader = StreamReader(response)
        assert await reader.next_version() == "v1"
        with pytest.raises((AssertionError, aiohttp.ClientPayloadError), match=r"ended|payload|transfer"):
            await reader.next_event(timeout=15)


async def test_only_the_two_public_paths_reach_the_sidecar(
    tmp_path: Path, start_sidecar: StartSidecar, start_nginx: StartNginx
) -> None:
    sidecar = start_sidecar([], env={"APP_VERSION": "v1"})
    nginx = start_nginx(sidecar.port)
    async with aiohttp.ClientSession() as session:
        app_paths = ["/", "/about", "/events", "/events/", "/events/version/x", "/events/versions"]
        for path in [*app_paths, "/healthz", "/metrics"]:
            async with session.get(f"{nginx.url}{path}") as response:
                assert response.status == 200, path
                assert await response.text() == f"stand-in app: {path}\n"
        async with session.get(f"{nginx.url}/events/reload.js", headers=GZIP) as through_nginx:
            assert through_nginx.status == 200
            assert "javascript" in through_nginx.headers["Content-Type"]
            script = await through_nginx.text()
        async with session.get(f"{sidecar.url}/events/reload.js") as direct:
            assert script == await direct.text()
