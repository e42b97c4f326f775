"""The shipped Docker socket filter (haproxy/docker-socket-filter.cfg), run by Debian's haproxy in
front of the tier's real Docker Engine: what passes, what an attacker gets, that the event stream
is never cut, and what the sidecar says when a request it needs is missing from the filter.
(The sources following their target through it: tests/docker/test_docker_source.py and
tests/swarm/test_swarm_source.py.)"""

import json
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote, urlsplit

import pytest

from tests.conftest import StartSidecar
from tests.docker.engine import Engine
from tests.docker.socket_filter import (
    FILTER_CONFIG,
    logged_requests,
    request,
    running_socket_filter,
    unix_socket_of,
    without_line,
)
from tests.docker.version_listener import VersionListener
from tests.sidecar_process import logged
from tests.waiting import wait_until

pytestmark = pytest.mark.docker

Name = Callable[[str], str]
FILTERS = "filters=" + quote(json.dumps({"label": ["com.docker.compose.service=app"]}))
EVENTS_QUERY = f"since=1700000000&{FILTERS}&stream=1"
METHODS_OTHER_THAN_GET = ["HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]


@pytest.fixture
def filter_url(engine: Engine, tmp_path: Path) -> Iterator[str]:
    """The shipped filter in front of the tier's engine."""
    with running_socket_filter(unix_socket_of(engine.host), tmp_path / "filter.log") as url:
        yield url


@pytest.fixture
def app(engine: Engine, name: Name) -> tuple[str, str]:
    """A running app container (its name) and its image (its tag)."""
    container = name("app")
    image = engine.build_app_image(f"{container}:1", "1.0.0")
    engine.run_app(container, image)
    return container, image


def allowed_requests(image: str) -> list[str]:
    """The requests the docker and swarm sources make, as paths with their query; each is also
    sent with the API version prefix."""
    return [
        "/version",
        f"/events?{EVENTS_QUERY}",
        f"/containers/json?{FILTERS}",
        f"/images/{image}/json",
        "/services/shop_app",
        f"/tasks?{FILTERS}",
        "/nodes?filters=%7B%7D",
    ]


def address_of(url: str) -> tuple[str, int]:
    where = urlsplit(url)
    return where.hostname or "", where.port or 80


def next_event(stream: BinaryIO) -> dict[str, Any]:
    """The next event on a chunked event stream (chunk sizes skipped); fails when the stream ends."""
    while line := stream.readline():
        if line.startswith(b"{"):
            event: dict[str, Any] = json.loads(line)
            return event
    raise AssertionError("the event stream was cut")


def refused_message(method: str, path: str) -> dict[str, str]:
    return {"message": f"refused by the docker socket filter: {method} {path.split('?')[0]}"}


def test_each_request_the_sources_make_reaches_the_engine(filter_url: str, app: tuple[str, str]) -> None:
    _, image = app
    for path in allowed_requests(image):
        for prefix in ["", "/v1.41"]:
            if path.startswith("/events"):  # a stream: its head says it passed
                with socket.create_connection(address_of(filter_url), timeout=30) as stream:
                    stream.sendall(f"GET {prefix}{path} HTTP/1.1\r\nHost: docker\r\n\r\n".encode())
                    assert stream.makefile("rb").readline().startswith(b"HTTP/1.1 200"), path
                continue
            status, body = request(filter_url, "GET", prefix + path)
            # The engine answered (a swarm path on an engine not in a swarm: 503 from the engine).
            assert status != 403, (prefix + path, body)
            assert b"refused by the docker socket filter" not in body
            if path.startswith(("/version", "/containers", "/images")):
                assert status == 200, (prefix + path, body)


def test_every_other_method_on_the_paths_the_sources_use_is_refused(
    filter_url: str, app: tuple[str, str], engine: Engine
) -> None:
    _, image = app
    for path in allowed_requests(image):
        for method in METHODS_OTHER_THAN_GET:
            status, body = request(filter_url, method, "/v1.41" + path)
            assert status == 403, (method, path)
            if method != "HEAD":  # a HEAD answer has no body
                assert json.loads(body) == refused_message(method, "/v1.41" + path)
    assert engine.docker("images", "--quiet", image), "the image is still there (DELETE was refused)"


def test_what_an_attacker_wants_is_refused(filter_url: str, app: tuple[str, str], engine: Engine, name: Name) -> None:
    container, image = app
    intruder = name("intruder")
    attempts = [
        # Write: run a container of one's own (root on the host with a bind mount), exec in the app.
        ("POST", f"/v1.41/containers/create?name={intruder}"),
        ("POST", "/containers/create"),
        ("POST", f"/v1.41/containers/{container}/exec"),
        ("POST", "/v1.41/exec/0123456789ab/start"),
        ("POST", f"/v1.41/containers/{container}/kill"),
        ("DELETE", f"/v1.41/containers/{container}?force=1"),
        ("PUT", f"/v1.41/containers/{container}/archive?path=/"),
        ("POST", "/v1.41/build"),
        ("POST", "/v1.41/images/create?fromImage=alpine"),
        ("POST", "/v1.41/plugins/pull?remote=x"),
        ("POST", "/v1.41/swarm/join"),
        # Read another container's secrets: its environment, its logs, its files.
        ("GET", f"/v1.41/containers/{container}/json"),
        ("GET", f"/containers/{container}/json"),
        ("GET", f"/v1.41/containers/{container}/logs?stdout=1&stderr=1"),
        ("GET", f"/v1.41/containers/{container}/archive?path=/etc"),
        ("HEAD", f"/v1.41/containers/{container}/archive?path=/etc"),
        ("GET", f"/v1.41/containers/{container}/export"),
        ("GET", f"/v1.41/containers/{container}/attach/ws"),
        ("GET", f"/v1.41/images/{image}/get"),
        ("GET", f"/v1.41/images/{image}/history"),
        # The swarm's secrets, configs, join tokens; plugins; the engine's inventory.
        ("GET", "/v1.41/secrets"),
        ("GET", "/v1.41/secrets/x"),
        ("GET", "/v1.41/configs"),
        ("GET", "/v1.41/configs/x"),
        ("GET", "/v1.41/swarm"),
        ("GET", "/v1.41/plugins"),
        ("GET", "/v1.41/info"),
        ("GET", "/_ping"),
        ("GET", "/v1.41/volumes"),
        ("GET", "/v1.41/networks"),
        ("GET", "/v1.41/images/json"),
        ("GET", "/v1.41/system/df"),
        ("GET", "/v1.41/tasks/x"),
        ("GET", "/v1.41/services"),
        ("GET", "/v1.41/services/x/logs"),
        ("GET", "/v1.41/nodes/x"),
        # An allowed path with more than the sources ask for, or a path made to look like one.
        ("GET", "/v1.41/containers/json?all=1&size=1"),
        ("GET", f"/v1.41/containers/json?{FILTERS}&size=1"),
        ("GET", f"/v1.41/images/{image}/json?x=1"),
        ("GET", "/v1.41/version?x=1"),
        ("GET", f"/v1.41/events?{EVENTS_QUERY}&until=1"),
        ("GET", f"/v1.41/images/../containers/{container}/json"),
        ("GET", f"/v1.41/images/x/../../containers/{container}/json"),
        ("GET", f"/v1.41/images/x%2F..%2F..%2Fcontainers%2F{container}/json"),
        ("GET", f"/v1.41/containers%2F{container}%2Fjson"),
        ("GET", f"//v1.41/containers/{container}/json"),
        ("GET", "/v1.41/services/../secrets"),
        ("GET", "/v2.0/version"),
        ("get", "/version"),
    ]
    for method, path in attempts:
        status, body = request(filter_url, method, path)
        assert status == 403, (method, path, status, body[:200])
        if method != "HEAD":
            assert json.loads(body) == refused_message(method, path)
    assert not engine.docker("ps", "--all", "--quiet", "--filter", f"name={intruder}"), "no container was created"
    assert engine.docker("inspect", "--format", "{{.State.Running}}", container) == "true", "the app still runs"


def test_the_event_stream_is_never_cut_by_a_timeout(
    engine: Engine, app: tuple[str, str], name: Name, tmp_path: Path
) -> None:
    """With every timeout of the filter at 1 s, a stream idle for longer still passes the next event."""
    _, image = app
    watched = name("watched")
    with running_socket_filter(
        unix_socket_of(engine.host), tmp_path / "filter.log", env={"FILTER_TIMEOUT": "1s"}
    ) as filter_url:
        filters = quote(json.dumps({"container": [watched]}))
        with socket.create_connection(address_of(filter_url), timeout=60) as stream:
            stream.sendall(f"GET /v1.41/events?filters={filters} HTTP/1.1\r\nHost: docker\r\n\r\n".encode())
            events = stream.makefile("rb")
            assert events.readline().startswith(b"HTTP/1.1 200")
            while events.readline() not in (b"\r\n", b""):  # the rest of the head
                pass
            # The moment passed: an idle connection opened after the stream's last byte is closed
            # by the filter's 1 s timeout.
            with socket.create_connection(address_of(filter_url), timeout=60) as idle:
                while idle.recv(4096):
                    pass
            engine.run_app(watched, image)
            event = next_event(events)
            assert (event["Type"], event["Action"], event["Actor"]["Attributes"]["name"]) == (
                "container",
                "create",
                watched,
            )


@pytest.mark.parametrize(
    ("line", "refused"),
    [
        ("http-request set-var(txn.allowed) bool(true) if get version !has_query", "GET /version"),
        ("http-request set-var(txn.allowed) bool(true) if get containers filters_query", "GET /v1.41/containers/json"),
        ("http-request set-var(txn.allowed) bool(true) if get image !has_query", "GET /v1.41/images/sha256:"),
    ],
    ids=["version", "containers", "image"],
)
def test_a_request_missing_from_the_filter_stops_the_sidecar_with_one_line(
    engine: Engine, app: tuple[str, str], start_sidecar: StartSidecar, tmp_path: Path, line: str, refused: str
) -> None:
    container, _ = app
    config = without_line(FILTER_CONFIG, line, tmp_path / "filter.cfg")
    with running_socket_filter(unix_socket_of(engine.host), tmp_path / "filter.log", config=config) as filter_url:
        docker_host = filter_url.replace("http://", "tcp://")
        sidecar = start_sidecar(
            ["--source", "docker", "--docker-target", container, "--docker-host", docker_host], wait=False
        )
        assert sidecar.process.wait(30) == 2
    lines = sidecar.logs().strip().splitlines()
    refusal = f"[403] refused by the docker socket filter: {refused}"
    assert lines[-1].startswith(
        f"version-sidecar: error: --docker-host {docker_host}: cannot read the target: {refusal}"
    )
    assert not [each for each in lines if "<html" in each.lower()]


def test_a_request_refused_at_run_time_degrades_the_source_with_the_reason(
    engine: Engine,
    app: tuple[str, str],
    start_sidecar: StartSidecar,
    listen: Callable[[str], VersionListener],
    tmp_path: Path,
) -> None:
    """Without the event stream in the filter, the sidecar starts (its first read passes) and then
    says at /healthz and in its log which request the filter refused."""
    container, _ = app
    line = "http-request set-var(txn.allowed) bool(true) if get events events_query"
    config = without_line(FILTER_CONFIG, line, tmp_path / "filter.cfg")
    with running_socket_filter(unix_socket_of(engine.host), tmp_path / "filter.log", config=config) as filter_url:
        docker_host = filter_url.replace("http://", "tcp://")
        sidecar = start_sidecar(["--source", "docker", "--docker-target", container, "--docker-host", docker_host])
        listen(sidecar.url).wait_for("1.0.0")
        reason = "[403] refused by the docker socket filter: GET /v1.41/events"
        wait_until(
            lambda: sidecar.health()["status"] == "degraded", "the source degraded", timeout=30, details=sidecar.logs
        )
        health = sidecar.health()
        assert (health["version"], health["problem"]) == ("1.0.0", f"Docker Engine at {docker_host}: {reason}")
        assert logged(sidecar, "docker engine unreachable", reason=reason)
        assert (403, "GET", "/v1.41/events") in logged_requests(tmp_path / "filter.log")
