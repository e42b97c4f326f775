"""The docker source against a real Docker Engine: the sidecar runs as a real process, browsers
are stood in for by SSE clients on /events/version, and app deploys are made with the docker client."""

import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

import pytest

from tests.conftest import StartSidecar
from tests.docker.engine import Engine, PrivateEngine
from tests.docker.version_listener import VersionListener
from tests.sidecar_process import REPO, SidecarProcess, free_port

pytestmark = pytest.mark.docker

Name = Callable[[str], str]
Listen = Callable[[str], VersionListener]
T = TypeVar("T")

SERVICE_LABEL = "com.docker.compose.service"
PROJECT_LABEL = "com.docker.compose.project"


def start_following(
    start_sidecar: StartSidecar, engine: Engine, target: str, *args: str, env: Mapping[str, str] | None = None
) -> SidecarProcess:
    """The sidecar on the docker source, following `target` in `engine`."""
    return start_sidecar(
        ["--source", "docker", "--docker-target", target, *args], env={"DOCKER_HOST": engine.host, **(env or {})}
    )


def wait_until(check: Callable[[], T], what: str, sidecar: SidecarProcess, timeout: float = 30.0) -> T:
    """Poll `check` until it returns something true; fails with the sidecar's log after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not (result := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"not seen within {timeout} s: {what}\nsidecar log:\n{sidecar.logs()}")
        time.sleep(0.1)
    return result


def logged(sidecar: SidecarProcess, event: str, **contains: str) -> list[dict[str, object]]:
    """The sidecar's log lines of `event` whose fields contain the given texts."""
    return [
        line
        for line in sidecar.log_events()
        if line.get("event") == event and all(text in str(line.get(key)) for key, text in contains.items())
    ]


def waits_for(sidecar: SidecarProcess, text: str) -> Callable[[], list[dict[str, object]]]:
    """A check: has the sidecar logged that it keeps the last version, waiting for `text`?"""
    return lambda: logged(sidecar, "keeping the last version", waiting_for=text)


def test_initial_version_then_a_new_image_reaches_connected_clients(
    engine: Engine, name: Name, start_sidecar: StartSidecar, listen: Listen
) -> None:
    app = name("app")
    engine.run_app(app, engine.build_app_image(f"{app}:1", "1.0.0"))
    new_image = engine.build_app_image(f"{app}:2", "2.0.0")

    sidecar = start_following(start_sidecar, engine, app)
    health = sidecar.health()
    assert (health["status"], health["version"], health["source"]) == ("ok", "1.0.0", "docker")
    browsers = [listen(sidecar.url) for _ in range(2)]
    for browser in browsers:
        browser.wait_for("1.0.0")

    engine.remove(app)  # a deploy: the old container goes, one from the new image replaces it
    engine.run_app(app, new_image)

    for browser in browsers:
        browser.wait_for("2.0.0")
        assert browser.changes() == ["1.0.0", "2.0.0"]
    assert sidecar.process.poll() is None, "the sidecar itself kept running"
    assert sidecar.health()["status"] == "ok"


def test_a_new_container_is_announced_only_once_its_healthcheck_passes(
    engine: Engine, name: Name, start_sidecar: StartSidecar, listen: Listen
) -> None:
    app = name("app")
    engine.run_app(app, engine.build_app_image(f"{app}:1", "1.0.0"))
    new_image = engine.build_app_image(f"{app}:2", "2.0.0")
    sidecar = start_following(start_sidecar, engine, app)
    browser = listen(sidecar.url)
    browser.wait_for("1.0.0")

    engine.remove(app)
    engine.run_app(app, new_image, healthcheck="test -f /ready")
    wait_until(lambda: engine.health(app) == "unhealthy", "the new container unhealthy", sidecar)
    wait_until(waits_for(sidecar, f"{app} is unhealthy"), "the sidecar waiting for a ready container", sidecar)
    health = sidecar.health()
    assert (health["status"], health["version"]) == ("degraded", "1.0.0")
    assert browser.changes() == ["1.0.0"]

    engine.docker("exec", app, "/bin/busybox", "touch", "/ready")  # the app is up now

    browser.wait_for("2.0.0")
    assert engine.health(app) == "healthy"
    assert browser.changes() == ["1.0.0", "2.0.0"]
    assert sidecar.health()["status"] == "ok"


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
    wait_until(waits_for(sidecar, "the ready containers to agree"), "the sidecar waiting for agreement", sidecar)
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
    wait_until(lambda: sidecar.health()["status"] == "degraded", "degraded once the target is gone", sidecar)
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
    engine: Engine, name: Name, start_sidecar: StartSidecar, listen: Listen, label: str, reason: str
) -> None:
    app = name("app")
    engine.run_app(app, engine.build_app_image(f"{app}:1", "1.0.0"))
    bad_image = engine.build_app_image(f"{app}:bad", label)
    good_image = engine.build_app_image(f"{app}:3", "3.0.0")
    sidecar = start_following(start_sidecar, engine, app)
    browser = listen(sidecar.url)
    browser.wait_for("1.0.0")

    engine.remove(app)
    engine.run_app(app, bad_image)
    wait_until(waits_for(sidecar, reason), "the label rejected", sidecar)
    health = sidecar.health()
    assert (health["status"], health["version"]) == ("degraded", "1.0.0")
    assert reason in str(health["problem"])

    engine.remove(app)
    engine.run_app(app, good_image)
    browser.wait_for("3.0.0")
    assert browser.changes() == ["1.0.0", "3.0.0"]
    assert label not in sidecar.logs(), "the bad label is logged shortened, never in full"


def test_the_sidecar_rides_out_an_engine_restart(
    private_engine: PrivateEngine, name: Name, start_sidecar: StartSidecar, listen: Listen
) -> None:
    app = name("app")
    private_engine.run_app(app, private_engine.build_app_image(f"{app}:1", "1.0.0"), restart="always")
    new_image = private_engine.build_app_image(f"{app}:2", "2.0.0")
    sidecar = start_following(start_sidecar, private_engine, app)
    browser = listen(sidecar.url)
    browser.wait_for("1.0.0")

    private_engine.stop()  # the engine goes away, its socket with it
    wait_until(
        lambda: [line for line in logged(sidecar, "docker engine unreachable") if float(str(line["retry_in"])) >= 2],
        "reconnect attempts backing off",
        sidecar,
    )
    health = sidecar.health()
    assert (health["status"], health["version"]) == ("degraded", "1.0.0")
    assert "Docker Engine" in str(health["problem"])
    delays = [float(str(line["retry_in"])) for line in logged(sidecar, "docker engine unreachable")]
    assert delays == sorted(delays), f"each retry waits at least as long as the last: {delays}"

    private_engine.start()  # the container comes back too (restart=always)
    wait_until(lambda: logged(sidecar, "docker engine reachable again"), "the sidecar reconnected", sidecar)
    wait_until(lambda: sidecar.health()["status"] == "ok", "healthy again once the app is back", sidecar)
    assert sidecar.health()["version"] == "1.0.0"

    private_engine.remove(app)  # and it follows the engine's events again
    private_engine.run_app(app, new_image)
    browser.wait_for("2.0.0")
    assert browser.changes() == ["1.0.0", "2.0.0"]
    assert sidecar.process.poll() is None


def test_a_read_only_socket_proxy_is_enough(
    engine: Engine, name: Name, start_sidecar: StartSidecar, listen: Listen, tmp_path: Path
) -> None:
    if not engine.host.startswith("unix://"):
        raise AssertionError(f"this test proxies a unix socket; DOCKER_HOST is {engine.host}")
    port = free_port()
    proxy_log = tmp_path / "proxy.log"
    with proxy_log.open("wb") as log:
        proxy = subprocess.Popen(
            [sys.executable, "-m", "tests.docker.socket_proxy", str(port), engine.host.removeprefix("unix://")],
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        proxy_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 15
        while True:
            try:
                with urllib.request.urlopen(f"{proxy_url}/_ping", timeout=2) as reply:
                    assert reply.read() == b"OK"
                    break
            except OSError:
                if time.monotonic() > deadline or proxy.poll() is not None:
                    raise AssertionError(f"the socket proxy did not start:\n{proxy_log.read_text()}") from None
                time.sleep(0.1)
        for method, path in [("POST", "/containers/create"), ("GET", "/info"), ("DELETE", "/images/x")]:
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(urllib.request.Request(f"{proxy_url}{path}", method=method), timeout=5)
            assert refused.value.code == 403

        app = name("app")
        engine.run_app(app, engine.build_app_image(f"{app}:1", "1.0.0"))
        new_image = engine.build_app_image(f"{app}:2", "2.0.0")
        sidecar = start_following(start_sidecar, engine, app, env={"DOCKER_HOST": f"tcp://127.0.0.1:{port}"})
        browser = listen(sidecar.url)
        browser.wait_for("1.0.0")
        engine.remove(app)
        engine.run_app(app, new_image)
        browser.wait_for("2.0.0")
        assert sidecar.health()["status"] == "ok"
    finally:
        proxy.terminate()
        proxy.wait(10)
    refusals = [line for line in proxy_log.read_text().splitlines() if line.startswith("refused")]
    assert refusals == ["refused POST /containers/create", "refused GET /info", "refused DELETE /images/x"]


def test_an_unreachable_engine_at_start_stops_the_sidecar_with_one_line(
    start_sidecar: StartSidecar, tmp_path: Path
) -> None:
    missing = f"unix://{tmp_path}/no-engine.sock"
    sidecar = start_sidecar(["--source", "docker", "--docker-target", "app", "--docker-host", missing], wait=False)
    assert sidecar.process.wait(30) == 2
    last_line = sidecar.logs().strip().splitlines()[-1]
    assert last_line.startswith(f"version-sidecar: error: --docker-host {missing}: cannot read the target")
