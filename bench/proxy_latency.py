"""First-event and change latency through each shipped proxy config, next to the sidecar direct.

    .venv/bin/python -m bench.proxy_latency [ROUNDS]

Starts one sidecar (file source) and nginx, Caddy and HAProxy in front of it as the proxies tier
does; each round opens a stream to each (time to the first event), then writes a new version and
times its arrival on every open stream. A measurement, not a test: it asserts nothing."""

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from tests.nginx.nginx_server import NginxServer, stand_in_app
from tests.proxies.proxy_servers import CaddyServer, HaproxyServer
from tests.proxy_process import ProxyProcess
from tests.sidecar_process import SidecarProcess
from tests.sse_client import StreamReader


async def round_trip(urls: dict[str, str], version_file: Path, version: str) -> dict[str, tuple[float, float]]:
    """Per name: (seconds to the first event, seconds from the write to the change's arrival)."""
    async with aiohttp.ClientSession() as session:
        first: dict[str, float] = {}
        readers: dict[str, StreamReader] = {}
        for name, url in urls.items():
            started = time.perf_counter()
            response = await session.get(f"{url}/events/version", headers={"Accept-Encoding": "gzip, br"})
            readers[name] = StreamReader(response)
            await readers[name].next_version()
            first[name] = time.perf_counter() - started
        written = time.perf_counter()
        version_file.write_text(version)  # noqa: ASYNC240 (timed from here on purpose)

        async def change(reader: StreamReader) -> float:
            await reader.wait_for_version(version)
            return time.perf_counter() - written

        changes = await asyncio.gather(*(change(reader) for reader in readers.values()))
        for reader in readers.values():
            reader.response.close()
    return {name: (first[name], seconds) for name, seconds in zip(urls, changes, strict=True)}


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    with tempfile.TemporaryDirectory() as folder, stand_in_app() as app_port:
        work = Path(folder)
        version_file = work / "version.txt"
        version_file.write_text("v0")
        sidecar = SidecarProcess(["--source", "file", "--version-file", str(version_file)], work)
        sidecar.wait_ready()
        proxies: dict[str, ProxyProcess] = {
            "nginx": NginxServer(work / "nginx", sidecar.port, app_port),
            "caddy": CaddyServer(work / "caddy", sidecar.port, app_port),
            "haproxy": HaproxyServer(work / "haproxy", sidecar.port, app_port),
        }
        urls = {"direct": sidecar.url, **{name: proxy.url for name, proxy in proxies.items()}}
        try:
            results = [asyncio.run(round_trip(urls, version_file, f"v{n}")) for n in range(1, rounds + 1)]
        finally:
            for proxy in proxies.values():
                proxy.stop()
            sidecar.stop()
    print(f"{rounds} rounds; milliseconds, median / max")
    print(f"{'':8} {'first event':>17} {'change':>17}")
    for name in urls:
        first = [result[name][0] * 1000 for result in results]
        change = [result[name][1] * 1000 for result in results]
        print(
            f"{name:8} {statistics.median(first):8.1f} / {max(first):6.1f} "
            f"{statistics.median(change):8.1f} / {max(change):6.1f}"
        )


if __name__ == "__main__":
    main()
