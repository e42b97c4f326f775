"""Every shipped proxy file as shipped, a stream idle for longer than the idle timeouts proxies
usually have (HAProxy's usual 50 s, nginx's and Traefik's 60 s): it stays open and gets its
heartbeats. The three proxies are held at once, so the tier waits about two minutes once."""

import asyncio
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import StartSidecar
from tests.proxies.conftest import StartAnyProxy
from tests.proxy_checks import COMPRESSED, version_file
from tests.proxy_process import ProxyProcess
from tests.sse_client import StreamReader

pytestmark = pytest.mark.proxies

# Longer than any usual idle timeout: with the proxy's own default in place of the shipped
# setting (nginx's proxy_read_timeout 60 s, HAProxy's timeout server 50 s) the stream is cut
# before the next heartbeat comes. A stream's first heartbeat comes at its turn, up to one
# heartbeat after it opens; from then on they are a whole heartbeat apart: two are waited for.
LONG_HEARTBEAT = 61


async def hold(proxy: ProxyProcess, heartbeats: int, wait: float) -> list[str]:
    """The versions a stream through `proxy` gets: the first event and `heartbeats` more."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{proxy.url}/events/version", headers=COMPRESSED) as response,
    ):
        reader = StreamReader(response)
        return [await reader.next_version(timeout=wait) for _ in range(1 + heartbeats)]


async def test_streams_idle_past_usual_proxy_timeouts_stay_open_at_the_shipped_settings(
    tmp_path: Path, start_sidecar: StartSidecar, start_any_proxy: StartAnyProxy
) -> None:
    path = version_file(tmp_path, "v1")
    # The default heartbeat (30 s), and one longer than the proxies' usual timeouts.
    default = start_sidecar(["--source", "file", "--version-file", str(path)])
    long = start_sidecar(["--source", "file", "--version-file", str(path), "--heartbeat", str(LONG_HEARTBEAT)])
    kinds = ["nginx", "caddy", "haproxy"]
    held = await asyncio.gather(
        *(hold(start_any_proxy(kind, default.port), heartbeats=2, wait=45) for kind in kinds),
        *(hold(start_any_proxy(kind, long.port), heartbeats=2, wait=LONG_HEARTBEAT + 15) for kind in kinds),
    )
    assert held == [["v1", "v1", "v1"]] * 6
