"""What every shipped proxy configuration must do in front of the real sidecar, as checks that
the nginx tier and the proxies tier (Caddy, HAProxy) both run: only the two public paths leave
the app, the script arrives whole, events pass at once (a browser asks for compression), an
idle stream lives on through its heartbeats while the proxy's own timeout really bites, and the
sidecar's close (a stream's body has no other end) ends the proxy's response cleanly."""

import asyncio
import signal
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import StartSidecar
from tests.proxy_process import ProxyProcess
from tests.sse_client import StreamReader

# start(sidecar_port) -> a proxy in front of that sidecar and the stand-in app; where the proxy's
# stream timeout can be shortened, start(sidecar_port, seconds).
StartProxy = Callable[..., ProxyProcess]

# What browsers send: the proxies compress whatever they are allowed to.
COMPRESSED = {"Accept-Encoding": "gzip, deflate, br"}


def version_file(tmp_path: Path, version: str) -> Path:
    path = tmp_path / "version.txt"
    path.write_text(f"{version}\n", encoding="utf-8")
    return path


async def only_the_two_public_paths_reach_the_sidecar(start_sidecar: StartSidecar, start_proxy: StartProxy) -> None:
    sidecar = start_sidecar([], env={"APP_VERSION": "v1"})
    proxy = start_proxy(sidecar.port)
    async with aiohttp.ClientSession() as session:
        app_paths = ["/", "/about", "/events", "/events/", "/events/version/x", "/events/versions"]
        for path in [*app_paths, "/healthz", "/metrics", "/events/reload.jsx"]:
            async with session.get(f"{proxy.url}{path}") as response:
                assert response.status == 200, path
                assert await response.text() == f"stand-in app: {path}\n", path
        async with session.get(f"{proxy.url}/events/reload.js", headers=COMPRESSED) as through_proxy:
            assert through_proxy.status == 200
            assert "javascript" in through_proxy.headers["Content-Type"]
            script = await through_proxy.read()
        async with session.get(f"{sidecar.url}/events/reload.js") as direct:
            assert script == await direct.read()  # whole: not cut, not compressed twice


async def events_arrive_at_once(tmp_path: Path, start_sidecar: StartSidecar, start_proxy: StartProxy) -> None:
    path = version_file(tmp_path, "v1")
    sidecar = start_sidecar(["--source", "file", "--version-file", str(path)])
    proxy = start_proxy(sidecar.port)
    async with (
        aiohttp.ClientSession(auto_decompress=False) as session,
        session.get(f"{sidecar.url}/events/version", headers=COMPRESSED) as direct_response,
        session.get(f"{proxy.url}/events/version", headers=COMPRESSED) as response,
    ):
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        assert response.headers["Cache-Control"] == "no-cache"
        assert "Content-Encoding" not in response.headers
        direct, proxied = StreamReader(direct_response), StreamReader(response)
        # One small event, far below any proxy's buffer, and the next heartbeat 30 s away: it
        # only arrives within the reader's 10 s if the proxy passes it on unbuffered.
        assert await direct.next_version() == "v1"
        assert await proxied.next_version() == "v1"
        path.write_text("v2\n", encoding="utf-8")
        assert await direct.next_version() == "v2"
        assert await proxied.next_version() == "v2"


async def idle_stream_outlives_the_proxys_timeout_through_heartbeats(
    tmp_path: Path, start_sidecar: StartSidecar, start_proxy: StartProxy
) -> None:
    """The proxy's stream timeout shortened to 2 s, heartbeats every 0.5 s: the ratio shipped."""
    path = version_file(tmp_path, "v1")
    sidecar = start_sidecar(["--source", "file", "--version-file", str(path), "--heartbeat", "0.5"])
    proxy = start_proxy(sidecar.port, 2)
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{proxy.url}/events/version", headers=COMPRESSED) as response,
    ):
        reader = StreamReader(response)
        idle_until = time.monotonic() + 7  # over three timeouts with no version change
        heartbeats = 0
        while time.monotonic() < idle_until:
            assert await reader.next_version(timeout=5) == "v1"
            heartbeats += 1
        assert heartbeats > 3
        path.write_text("v2\n", encoding="utf-8")
        await reader.wait_for_version("v2")


async def without_heartbeats_the_proxy_ends_an_idle_stream(
    tmp_path: Path, start_sidecar: StartSidecar, start_proxy: StartProxy
) -> None:
    """The control for the check above: the shortened timeout really bites."""
    path = version_file(tmp_path, "v1")
    sidecar = start_sidecar(["--source", "file", "--version-file", str(path), "--heartbeat", "600"])
    proxy = start_proxy(sidecar.port, 1)
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{proxy.url}/events/version", headers=COMPRESSED) as response,
    ):
        reader = StreamReader(response)
        assert await reader.next_version() == "v1"
        with pytest.raises((AssertionError, aiohttp.ClientPayloadError), match=r"ended|payload|transfer"):
            await reader.next_event(timeout=15)


async def a_sidecar_stop_ends_the_stream_through_the_proxy_cleanly(
    start_sidecar: StartSidecar, start_proxy: StartProxy
) -> None:
    """The sidecar's stream has no framing: its close is its end, which the proxy must pass on as
    the end of its own response (a chunked one cut short, the proxy's sign of an upstream error,
    makes aiohttp's read() raise ClientPayloadError)."""
    sidecar = start_sidecar([], env={"APP_VERSION": "v1"})
    proxy = start_proxy(sidecar.port)
    async with aiohttp.ClientSession() as session, session.get(f"{proxy.url}/events/version") as response:
        assert await StreamReader(response).next_version() == "v1"
        sidecar.process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(response.content.read(), 10) == b""
    assert sidecar.stop(None) == 0, sidecar.logs()
