"""A read-only Docker socket proxy, as a user would put between the sidecar and the engine: GET on
the few endpoints the docker source reads passes through to the engine's unix socket; anything
else is refused with 403 and printed as `refused METHOD PATH`.

    python -m tests.docker.socket_proxy PORT /path/to/docker.sock [swarm]
"""

import contextlib
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import aiohttp
from aiohttp import web
from yarl import URL

from tests.sidecar_process import REPO, free_port

# Optionally API-versioned: ping, version, events, list containers, inspect a container or an image.
ALLOWED_PATH = re.compile(
    r"(/v[0-9.]+)?/(_ping|version|events|containers/json|containers/[^/]+/json|images/[^/]+/json)"
)
# With `swarm`, what the swarm source reads instead: inspect a service, list tasks and nodes.
ALLOWED_SWARM_PATH = re.compile(r"(/v[0-9.]+)?/(_ping|version|events|services/[^/]+|tasks|nodes|images/[^/]+/json)")
ALLOWED = web.AppKey("allowed", re.Pattern[str])
ENGINE = web.AppKey("engine", aiohttp.ClientSession)
SOCKET_PATH = web.AppKey("socket_path", str)


async def forward(request: web.Request) -> web.StreamResponse:
    if request.method != "GET" or not request.app[ALLOWED].fullmatch(request.path):
        print(f"refused {request.method} {request.path}", flush=True)
        return web.Response(status=403, text="refused by the read-only socket proxy\n")
    upstream_url = URL(f"http://docker{request.raw_path}", encoded=True)
    async with request.app[ENGINE].get(upstream_url, timeout=aiohttp.ClientTimeout()) as upstream:
        response = web.StreamResponse(status=upstream.status)
        response.content_type = upstream.content_type
        await response.prepare(request)
        async for chunk in upstream.content.iter_any():  # the event stream: pass each event on at once
            await response.write(chunk)
        return response


async def open_engine(app: web.Application) -> None:
    app[ENGINE] = aiohttp.ClientSession(connector=aiohttp.UnixConnector(app[SOCKET_PATH]))


async def close_engine(app: web.Application) -> None:
    await app[ENGINE].close()


def main() -> None:
    port, socket_path, swarm = int(sys.argv[1]), sys.argv[2], sys.argv[3:] == ["swarm"]
    app = web.Application()
    app[SOCKET_PATH] = socket_path
    app[ALLOWED] = ALLOWED_SWARM_PATH if swarm else ALLOWED_PATH
    app.on_startup.append(open_engine)
    app.on_cleanup.append(close_engine)
    app.router.add_route("*", "/{path:.*}", forward)
    web.run_app(
        app, host="127.0.0.1", port=port, print=None, access_log=None, handler_cancellation=True, shutdown_timeout=1
    )


@contextlib.contextmanager
def running_socket_proxy(engine_socket: str, log_path: Path, swarm: bool = False) -> Iterator[str]:
    """Run the proxy in front of `engine_socket` while the block runs; yields its http:// URL.
    `swarm`: pass what the swarm source reads instead of what the docker source reads."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    mode = ["swarm"] if swarm else []
    with log_path.open("wb") as log:
        proxy = subprocess.Popen(
            [sys.executable, "-m", "tests.docker.socket_proxy", str(port), engine_socket, *mode],
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_ping", timeout=2) as reply:
                    if reply.read() == b"OK":
                        break
            except OSError:
                if time.monotonic() > deadline or proxy.poll() is not None:
                    raise AssertionError(f"the socket proxy did not start:\n{log_path.read_text()}") from None
                time.sleep(0.1)
        yield url
    finally:
        proxy.terminate()
        proxy.wait(10)


if __name__ == "__main__":
    main()
