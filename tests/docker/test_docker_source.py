"""The docker source against a real Docker Engine: the sidecar runs as a real process, browsers
are stood in for by SSE clients on /events/version, and app deploys are made with the docker client."""

import itertools
import json
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from sidecar.sources.engine import NOTES_LABEL, REQUIRED_LABEL
from tests.conftest import StartSidecar
from tests.docker.engine import Engine, PrivateEngine
from tests.docker.socket_proxy import running_socket_proxy
from tests.docker.stalling_relay import stalling_relay
from tests.docker.version_listener import VersionListener
from tests.sidecar_process import SidecarProcess, logged
from tests.sse_client import BlockingStream
from tests.waiting import wait_until

pytestmark = pytest.mark.docker

Name = Callable[[str], str]
Listen = Callable[[str], VersionListener]

SERVICE_LABEL = "com.docker.compose.service"
PROJECT_LABEL = "com.docker.compose.project"


def start_following(
    start_sidecar: StartSidecar, engine: Engine, target: str, *args: str, env: Mapping[str, str] | None = None
) -> SidecarProcess:
    """The sidecar on the docker source, following `target` in `engine`."""
    return start_sidecar(
        ["--source", "docker", "--docker-target", target, *args], env={"DOCKER_HOST": engine.host, **(env or {})}
    )


def waits_for(sidecar: SidecarProcess, text: str) -> Callable[[], list[dict[str, object]]]:
    """A check: has the sidecar logged that it keeps the last version, waiting for `text`?"""
    return lambda: logged(sidecar, "keeping the last version", waiting_for=text)


@dataclass
class FollowedApp:
    """An app container at version 1.0.0, a sidecar following it, and a browser that has seen 1.0.0."""

    engine: Engine
    name: str
    sidecar: SidecarProcess
    browser: VersionListener
    _tags: "itertools.count[int]" = field(default_factory=lambda: itertools.count(2))

    def image(self, version: str) -> str:
        """A new app image labelled `version`."""
        return self.engine.build_app_image(f"{self.name}:{next(self._tags)}", version)

    def deploy(self, image: str, **run_options: Any) -> None:
        """Replace the app container with one of `image`, as a deploy does."""
        self.engine.remove(self.name)
        self.engine.run_app(self.name, image, **run_options)


FollowApp = Callable[..., FollowedApp]


@pytest.fixture
def follow_app(name: Name, start_sidecar: StartSidecar, listen: Listen) -> FollowApp:
    """follow_app(engine, env=..., restart=...) -> a FollowedApp, ready."""

    def start(engine: Engine, env: Mapping[str, str] | None = None, restart: str | None = None) -> FollowedApp:
        app = name("app")
        engine.run_app(app, engine.build_app_image(f"{app}:1", "1.0.0"), restart=restart)
        sidecar = start_following(start_sidecar, engine, app, env=env)
        browser = listen(sidecar.url)
        browser.wait_for("1.0.0")
        return FollowedApp(engine, app, sidecar, browser)

    return start


def test_initial_version_then_a_new_image_reaches_connected_clients(
    engine: Engine, follow_app: FollowApp, listen: Listen
) -> None:
    app = follow_app(engine)
    health = app.sidecar.health()
    assert (health["status"], health["version"], health["source"]) == ("ok", "1.0.0", "docker")
    browsers = [app.browser, listen(app.sidecar.url)]
    browsers[1].wait_for("1.0.0")

    app.deploy(app.image("2.0.0"))

    for browser in browsers:
        browser.wait_for("2.0.0")
        assert browser.changes() == ["1.0.0", "2.0.0"]
    assert app.sidecar.process.poll() is None, "the sidecar itself kept running"
    assert app.sidecar.health()["status"] == "ok"


def test_a_new_container_is_announced_only_once_its_healthcheck_passes(engine: Engine, follow_app: FollowApp) -> None:
    app = follow_app(engine)

    app.deploy(app.image("2.0.0"), healthcheck="test -f /ready")
    wait_until(
        lambda: engine.health(app.name) == "unhealthy",
        "the new container unhealthy",
        timeout=30,
        details=app.sidecar.logs,
    )
    wait_until(
        waits_for(app.sidecar, f"{app.name} is unhealthy"),
        "the sidecar waiting for it",
        timeout=30,
        details=app.sidecar.logs,
    )
    health = app.sidecar.health()
    assert (health["status"], health["version"]) == ("degraded", "1.0.0")
    assert app.browser.changes() == ["1.0.0"]

    engine.docker("exec", app.name, "/bin/busybox", "touch", "/ready")  # the app is up now

    app.browser.wait_for("2.0.0")
    assert engine.health(app.name) == "healthy"
    assert app.browser.changes() == ["1.0.0", "2.0.0"]
    assert app.sidecar.health()["status"] == "ok"


def test_replicas_of_a_compose_service_must_agree_before_a_new_version_is_announced(
    engine: Engine, name: Name, start_sidecar: StartSidecar, listen: Listen
) -> None:
    service, project = name("web"), name("shop")
    replica = {SERVICE_LABEL: service, PROJECT_LABEL: project}
    old_image = engine.build_app_image(f"{service}:1", "1.0.0")
    new_image = engine.build_app_image(f"{service}:2", "2.0.0")
    engine.run_app(f"{service}-1", old_image, labels=replica)
    engine.run_app(f"{service}-2", old_image, labels=replica)
    # The same service name in another project: --docker-project leaves it out.
    other_project = {SERVICE_LABEL: service, PROJECT_LABEL: name("other")}
    engine.run_app(f"{service}-other", engine.build_app_image(f"{service}:9", "9.9.9"), labels=other_project)

    sidecar = start_following(start_sidecar, engine, service, "--docker-project", project)
    browser = listen(sidecar.url)
    browser.wait_for("1.0.0")

    engine.remove(f"{service}-1")  # rolling deploy: one replica at a time
    engine.run_app(f"{service}-1", new_image, labels=replica)
    wait_until(
        waits_for(sidecar, "the ready containers to agree"),
        "the sidecar waiting for agreement",
        timeout=30,
        details=sidecar.logs,
    )
    assert sidecar.health()["version"] == "1.0.0"
    assert browser.changes() == ["1.0.0"]

    engine.remove(f"{service}-2")
    engine.run_app(f"{service}-2", new_image, labels=replica)

    browser.wait_for("2.0.0")
    assert browser.changes() == ["1.0.0", "2.0.0"]


def test_a_target_missing_at_start_is_picked_up_and_survives_removal_and_recreation(
    engine: Engine, name: Name, start_sidecar: StartSidecar, listen: Listen
) -> None:
    app = name("app")
    first_image = engine.build_app_image(f"{app}:1", "1.0.0")
    second_image = engine.build_app_image(f"{app}:2", "2.0.0")

    sidecar = start_following(start_sidecar, engine, app)
    health = sidecar.health()
    assert (health["status"], health["version"]) == ("degraded", None)
    assert "waiting for a running container" in str(health["problem"])
    browser = listen(sidecar.url)

    engine.run_app(app, first_image)
    browser.wait_for("1.0.0")
    assert sidecar.health()["status"] == "ok"

    engine.remove(app)
    wait_until(
        lambda: sidecar.health()["status"] == "degraded",
        "degraded once the target is gone",
        timeout=30,
        details=sidecar.logs,
    )
    assert sidecar.health()["version"] == "1.0.0"

    engine.run_app(app, second_image)
    browser.wait_for("2.0.0")
    assert browser.changes() == ["1.0.0", "2.0.0"]
    assert sidecar.health()["status"] == "ok"


def test_the_fallback_version_is_served_until_the_target_appears(
    engine: Engine, name: Name, start_sidecar: StartSidecar, listen: Listen
) -> None:
    app = name("app")
    sidecar = start_following(start_sidecar, engine, app, "--fallback-version", "unknown")
    health = sidecar.health()
    assert (health["status"], health["version"]) == ("degraded", "unknown")
    browser = listen(sidecar.url)
    browser.wait_for("unknown")

    engine.run_app(app, engine.build_app_image(f"{app}:1", "1.0.0"))
    browser.wait_for("1.0.0")
    assert sidecar.health()["status"] == "ok"


@pytest.mark.parametrize(
    ("label", "reason"),
    [("2.0.0\nevent: injected", "non-printable character"), ("x" * 10240, "10240 characters long")],
    ids=["newline", "10KB"],
)
def test_an_invalid_label_is_rejected_and_the_last_good_version_kept(
    engine: Engine, follow_app: FollowApp, label: str, reason: str
) -> None:
    app = follow_app(engine)

    app.deploy(app.image(label))
    wait_until(waits_for(app.sidecar, reason), "the label rejected", timeout=30, details=app.sidecar.logs)
    health = app.sidecar.health()
    assert (health["status"], health["version"]) == ("degraded", "1.0.0")
    assert reason in str(health["problem"])

    app.deploy(app.image("3.0.0"))
    app.browser.wait_for("3.0.0")
    assert app.browser.changes() == ["1.0.0", "3.0.0"]
    assert label not in app.sidecar.logs(), "the bad label is logged shortened, never in full"


def test_release_notes_labels_reach_the_tabs_and_a_bad_one_is_dropped(engine: Engine, follow_app: FollowApp) -> None:
    app = follow_app(engine)
    stream = BlockingStream(app.sidecar.port)
    notes = "https://example.com/releases/2.0.0"
    labels = {NOTES_LABEL: notes, REQUIRED_LABEL: "true"}
    app.deploy(engine.build_app_image(f"{app.name}:notes", "2.0.0", labels))
    stream.wait_for_version("2.0.0")
    assert json.loads(stream.parser.events[-1].data) == {"version": "2.0.0", "notes": notes, "required": True}

    app.deploy(engine.build_app_image(f"{app.name}:bad-notes", "3.0.0", {NOTES_LABEL: "javascript:alert(1)"}))
    stream.wait_for_version("3.0.0")
    assert stream.parser.events[-1].data == '{"version": "3.0.0"}'
    dropped = logged(app.sidecar, "release info dropped")
    assert len(dropped) == 1 and "must be an absolute http:// or https:// URL" in str(dropped[0]["reason"]), dropped
    stream.close()


def test_the_sidecar_rides_out_an_engine_restart(private_engine: PrivateEngine, follow_app: FollowApp) -> None:
    app = follow_app(private_engine, restart="always")
    sidecar = app.sidecar

    private_engine.stop()  # the engine goes away, its socket with it
    wait_until(
        lambda: [line for line in logged(sidecar, "docker engine unreachable") if float(str(line["retry_in"])) >= 2],
        "reconnect attempts backing off",
        timeout=30,
        details=sidecar.logs,
    )
    health = sidecar.health()
    assert (health["status"], health["version"]) == ("degraded", "1.0.0")
    assert "Docker Engine" in str(health["problem"])
    delays = [float(str(line["retry_in"])) for line in logged(sidecar, "docker engine unreachable")]
    assert delays == sorted(delays), f"each retry waits at least as long as the last: {delays}"

    private_engine.start()  # the container comes back too (restart=always)
    wait_until(
        lambda: logged(sidecar, "docker engine reachable again"),
        "the sidecar reconnected",
        timeout=30,
        details=sidecar.logs,
    )
    wait_until(
        lambda: sidecar.health()["status"] == "ok",
        "healthy again once the app is back",
        timeout=30,
        details=sidecar.logs,
    )
    assert sidecar.health()["version"] == "1.0.0"

    app.deploy(app.image("2.0.0"))  # and it follows the engine's events again
    app.browser.wait_for("2.0.0")
    assert app.browser.changes() == ["1.0.0", "2.0.0"]
    assert sidecar.process.poll() is None


def test_a_read_only_socket_proxy_is_enough(engine: Engine, follow_app: FollowApp, tmp_path: Path) -> None:
    if not engine.host.startswith("unix://"):
        raise AssertionError(f"this test proxies a unix socket; DOCKER_HOST is {engine.host}")
    proxy_log = tmp_path / "proxy.log"
    with running_socket_proxy(engine.host.removeprefix("unix://"), proxy_log) as proxy_url:
        for method, path in [("POST", "/containers/create"), ("GET", "/info"), ("DELETE", "/images/x")]:
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(urllib.request.Request(f"{proxy_url}{path}", method=method), timeout=5)
            assert refused.value.code == 403

        app = follow_app(engine, env={"DOCKER_HOST": proxy_url.replace("http://", "tcp://")})
        app.deploy(app.image("2.0.0"))
        app.browser.wait_for("2.0.0")
        assert app.sidecar.health()["status"] == "ok"
    refusals = [line for line in proxy_log.read_text().splitlines() if line.startswith("refused")]
    assert refusals == ["refused POST /containers/create", "refused GET /info", "refused DELETE /images/x"]


def test_an_engine_gone_silent_without_closing_is_noticed_and_a_deploy_meanwhile_announced(
    engine: Engine, follow_app: FollowApp
) -> None:
    """Through a relay that stops passing bytes but closes nothing (a firewall dropping packets, a
    hung proxy): --docker-timeout 2, so the sidecar must say so within 2 + 2 s."""
    if not engine.host.startswith("unix://"):
        raise AssertionError(f"this test relays a unix socket; DOCKER_HOST is {engine.host}")
    with stalling_relay(engine.host.removeprefix("unix://")) as relay:
        app = follow_app(engine, env={"DOCKER_HOST": relay.url, "SIDECAR_DOCKER_TIMEOUT": "2"})
        sidecar = app.sidecar
        assert sidecar.health()["status"] == "ok"

        relay.stall()
        app.deploy(app.image("2.0.0"))  # made while the engine cannot be heard
        wait_until(
            lambda: sidecar.health()["status"] == "degraded",
            "the silent engine noticed",
            timeout=30,
            details=sidecar.logs,
        )
        health = sidecar.health()
        assert health["version"] == "1.0.0"
        assert f"Docker Engine at {relay.url}: no answer within 2 s" == health["problem"]

        relay.resume()
        app.browser.wait_for("2.0.0")
        wait_until(lambda: sidecar.health()["status"] == "ok", "healthy again", timeout=30, details=sidecar.logs)
        assert app.browser.changes() == ["1.0.0", "2.0.0"]
        assert logged(sidecar, "docker engine reachable again")


def test_an_unreachable_engine_at_start_stops_the_sidecar_with_one_line(
    start_sidecar: StartSidecar, tmp_path: Path
) -> None:
    missing = f"unix://{tmp_path}/no-engine.sock"
    sidecar = start_sidecar(["--source", "docker", "--docker-target", "app", "--docker-host", missing], wait=False)
    assert sidecar.process.wait(30) == 2
    last_line = sidecar.logs().strip().splitlines()[-1]
    assert last_line.startswith(f"version-sidecar: error: --docker-host {missing}: cannot read the target")
