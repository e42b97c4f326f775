"""The shipped Caddy and HAProxy files in front of the real sidecar, under Debian's caddy and
haproxy: the checks nginx passes (tests/proxy_checks.py), and what is particular to each."""

import functools
import json
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests import proxy_checks
from tests.conftest import StartSidecar
from tests.proxies.conftest import StartAnyProxy
from tests.proxies.proxy_servers import CADDYFILE, upstreams
from tests.proxy_process import ProxyProcess, binary
from tests.sse_client import StreamReader
from tests.waiting import eventually

pytestmark = pytest.mark.proxies

BOTH = pytest.mark.parametrize("kind", ["caddy", "haproxy"])


@BOTH
async def test_only_the_two_public_paths_reach_the_sidecar(
    kind: str, start_sidecar: StartSidecar, start_any_proxy: StartAnyProxy
) -> None:
    await proxy_checks.only_the_two_public_paths_reach_the_sidecar(
        start_sidecar, functools.partial(start_any_proxy, kind)
    )


@BOTH
async def test_events_arrive_at_once(
    kind: str, tmp_path: Path, start_sidecar: StartSidecar, start_any_proxy: StartAnyProxy
) -> None:
    await proxy_checks.events_arrive_at_once(tmp_path, start_sidecar, functools.partial(start_any_proxy, kind))


@BOTH
async def test_a_sidecar_stop_ends_the_stream_through_the_proxy_cleanly(
    kind: str, start_sidecar: StartSidecar, start_any_proxy: StartAnyProxy
) -> None:
    start_proxy = functools.partial(start_any_proxy, kind)
    await proxy_checks.a_sidecar_stop_ends_the_stream_through_the_proxy_cleanly(start_sidecar, start_proxy)


# Caddy ends no stream that still passes bytes (no read timeout by default, none shipped): only
# HAProxy has a stream timeout to shorten; the test below holds all three at the shipped settings.
async def test_idle_stream_outlives_haproxys_stream_timeout_through_heartbeats(
    tmp_path: Path, start_sidecar: StartSidecar, start_any_proxy: StartAnyProxy
) -> None:
    await proxy_checks.idle_stream_outlives_the_proxys_timeout_through_heartbeats(
        tmp_path, start_sidecar, functools.partial(start_any_proxy, "haproxy")
    )


async def test_without_heartbeats_haproxy_ends_an_idle_stream(
    tmp_path: Path, start_sidecar: StartSidecar, start_any_proxy: StartAnyProxy
) -> None:
    await proxy_checks.without_heartbeats_the_proxy_ends_an_idle_stream(
        tmp_path, start_sidecar, functools.partial(start_any_proxy, "haproxy")
    )


def caddy_handlers(routes: list[dict[str, Any]], path: str) -> list[dict[str, Any]]:
    """The handlers Caddy's JSON config runs for a request to `path`, in order (enough of Caddy's
    route semantics for this file: path and not matchers, groups, subroutes, terminal routes)."""

    def matches(matcher: dict[str, Any]) -> bool:
        assert set(matcher) <= {"path", "not"}, f"a matcher this test does not know: {matcher}"
        assert not any("*" in pattern for pattern in matcher.get("path", [])), "exact paths only"
        if "path" in matcher and path not in matcher["path"]:
            return False
        return not any(matches(inner) for inner in matcher.get("not", []))

    run: list[dict[str, Any]] = []
    groups_done: set[str] = set()
    for route in routes:
        if route.get("group") in groups_done or not (not route.get("match") or any(map(matches, route["match"]))):
            continue
        if "group" in route:
            groups_done.add(route["group"])
        for handler in route["handle"]:
            run += caddy_handlers(handler["routes"], path) if handler["handler"] == "subroute" else [handler]
        if route.get("terminal"):
            break
    return run


def test_caddy_streams_the_events_unencoded_and_unbuffered_and_encodes_the_app(tmp_path: Path) -> None:
    """What the streaming settings do, read from Caddy's own adaptation of the shipped file: the
    Debian release passes events at once without them, Caddy 2.7 to 2.10 does not (encode)."""
    proxy = ProxyProcess(tmp_path)  # only for its free port
    adapted = subprocess.run(
        [binary("caddy"), "adapt", "--config", str(CADDYFILE), "--adapter", "caddyfile"],
        env=upstreams(8080, 8000, proxy) | {"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    proxy.stop()
    config = json.loads(adapted.stdout)
    assert config["admin"] == {"disabled": True}  # no collision with another Caddy's localhost:2019
    (server,) = config["apps"]["http"]["servers"].values()
    assert server["listen"] == [f"127.0.0.1:{proxy.port}"]
    for path in ["/events/version", "/events/reload.js"]:
        handlers = caddy_handlers(server["routes"], path)
        assert [handler["handler"] for handler in handlers] == (
            ["reverse_proxy"] if path == "/events/version" else ["encode", "reverse_proxy"]
        ), path
        assert handlers[-1]["upstreams"] == [{"dial": "127.0.0.1:8080"}]
        assert handlers[-1]["flush_interval"] == -1
    for path in ["/", "/healthz", "/metrics", "/events"]:
        handlers = caddy_handlers(server["routes"], path)
        assert [handler["handler"] for handler in handlers] == ["encode", "reverse_proxy"], path
        assert handlers[-1]["upstreams"] == [{"dial": "127.0.0.1:8000"}]


async def test_two_caddies_run_side_by_side_and_stop_while_tabs_hold_streams(
    start_sidecar: StartSidecar, start_any_proxy: StartAnyProxy
) -> None:
    """Two Caddies from the shipped file serve side by side (with the admin API on, both would
    share localhost:2019 through SO_REUSEPORT: the adaptation test above checks it is off), and
    the grace period ends what `caddy stop` or a reload waits for: without it, every open tab."""
    sidecar = start_sidecar([], env={"APP_VERSION": "v1"})
    first, second = start_any_proxy("caddy", sidecar.port), start_any_proxy("caddy", sidecar.port)
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{first.url}/events/version") as first_stream,
        session.get(f"{second.url}/events/version") as second_stream,
    ):
        assert await StreamReader(first_stream).next_version() == "v1"
        assert await StreamReader(second_stream).next_version() == "v1"
        assert first.process is not None
        first.process.terminate()
        await eventually(lambda: not first.running(), "Caddy to stop with a stream open", timeout=30)
