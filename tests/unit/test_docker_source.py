"""The docker source's own logic, without an engine: readiness, labels, agreement, settings.
(The behaviour against a real Docker Engine is tested in tests/docker.)"""

import pytest
from aiodocker.exceptions import DockerError

from sidecar.config import SettingError, load_settings
from sidecar.sources import SourceError
from sidecar.sources.docker import DockerSource, Replica, agree, container_state
from sidecar.sources.engine import DEFAULT_LABELS, describe, version_from_labels

VERSION, REVISION = DEFAULT_LABELS


def replica(name: str, version: str | None = "1.0", state: str = "running", ready: bool = True) -> Replica:
    return Replica(name, state, ready, version, None if version else "no label")


@pytest.mark.parametrize(
    ("summary", "expected"),
    [
        ({"State": "running", "Status": "Up 3 seconds"}, ("running", True)),
        ({"State": "running", "Status": "Up 2 minutes (healthy)"}, ("healthy", True)),
        ({"State": "running", "Status": "Up 3 seconds (health: starting)"}, ("starting", False)),
        ({"State": "running", "Status": "Up About a minute (unhealthy)"}, ("unhealthy", False)),
        ({"State": "running", "Status": "Up 3 seconds", "Health": {"Status": "healthy"}}, ("healthy", True)),
        ({"State": "running", "Status": "Up 3 seconds", "Health": {"Status": "starting"}}, ("starting", False)),
        ({"State": "running", "Status": "Up 3 seconds", "Health": {"Status": "none"}}, ("running", True)),
        ({"State": "running", "Status": "Up 3 seconds (healthy) (unhealthy)x"}, ("running", True)),
        ({"State": "paused", "Status": "Up 3 seconds (Paused)"}, ("paused", False)),
        ({"State": "restarting", "Status": "Restarting (1) 2 seconds ago"}, ("restarting", False)),
        ({"State": "exited", "Status": "Exited (0) 1 second ago"}, ("exited", False)),
        ({}, ("unknown", False)),
    ],
)
def test_ready_means_running_and_healthy_where_there_is_a_healthcheck(
    summary: dict[str, object], expected: tuple[str, bool]
) -> None:
    """From the container list's entry: its State, and the health its Status text (or, on newer
    engines, its Health) gives."""
    assert container_state(summary) == expected


def test_the_version_label_comes_first_then_the_revision() -> None:
    assert version_from_labels({VERSION: "1.2.3", REVISION: "abc123"}, DEFAULT_LABELS) == ("1.2.3", None)
    assert version_from_labels({REVISION: "abc123"}, DEFAULT_LABELS) == ("abc123", None)
    version, problem = version_from_labels({"other": "x"}, DEFAULT_LABELS)
    assert version is None and problem == f"no label {VERSION} or {REVISION} on its image"


def test_a_custom_label_is_the_only_one_read() -> None:
    assert version_from_labels({"app.version": "7", VERSION: "1"}, ["app.version"]) == ("7", None)
    assert version_from_labels({VERSION: "1"}, ["app.version"])[0] is None


@pytest.mark.parametrize(
    ("value", "reason"),
    [("1.0\nevent: x", "non-printable"), ("x" * 10240, "10240 characters long"), ("", "is empty")],
)
def test_an_invalid_label_gives_no_version_and_a_short_reason(value: str, reason: str) -> None:
    version, problem = version_from_labels({VERSION: value}, DEFAULT_LABELS)
    assert version is None
    assert problem is not None and reason in problem
    assert len(problem) < 200 and "\n" not in problem


def test_all_ready_replicas_must_agree() -> None:
    assert agree("web", [replica("web-1"), replica("web-2")]).version == "1.0"
    split = agree("web", [replica("web-1"), replica("web-2", "2.0")])
    assert split.version is None
    assert split.waiting_for == "the ready containers to agree: web-1 has 1.0, web-2 has 2.0"


def test_replicas_not_ready_yet_do_not_count() -> None:
    reading = agree("web", [replica("web-1"), replica("web-2", "2.0", "starting", ready=False)])
    assert (reading.version, reading.waiting_for) == ("1.0", None)


def test_no_version_without_a_ready_replica() -> None:
    assert agree("web", []).waiting_for == "a running container named web or of the compose service web"
    reading = agree("web", [replica("web-1", "2.0", "unhealthy", ready=False)])
    assert (reading.version, reading.waiting_for) == (None, "a ready container: web-1 is unhealthy")


def test_a_ready_replica_without_a_valid_label_blocks_agreement() -> None:
    reading = agree("web", [replica("web-1"), replica("web-2", None)])
    assert (reading.version, reading.waiting_for) == (None, "a valid version label: web-2: no label")


def test_events_concern_the_named_container_or_the_service_in_its_project() -> None:
    source = DockerSource("web", project="shop", host="unix:///nowhere.sock")

    def event(**attributes: str) -> dict[str, object]:
        return {"Type": "container", "Action": "start", "Actor": {"Attributes": attributes}}

    assert source._concerns_target(event(name="web"))
    assert source._concerns_target(
        event(name="shop-web-1", **{"com.docker.compose.service": "web", "com.docker.compose.project": "shop"})
    )
    assert not source._concerns_target(
        event(name="blog-web-1", **{"com.docker.compose.service": "web", "com.docker.compose.project": "blog"})
    )
    assert not source._concerns_target(event(name="webby"))


def test_the_engine_address_comes_from_the_setting_then_docker_host_then_the_local_socket() -> None:
    assert DockerSource("web", host="tcp://proxy:2375", environ={"DOCKER_HOST": "unix:///x"}).host == "tcp://proxy:2375"
    assert DockerSource("web", environ={"DOCKER_HOST": "tcp://proxy:2375"}).host == "tcp://proxy:2375"
    assert DockerSource("web", environ={}).host == "unix:///var/run/docker.sock"
    with pytest.raises(SourceError, match=r"^DOCKER_HOST: must be"):
        DockerSource("web", environ={"DOCKER_HOST": "ssh://user@host"})


def test_docker_settings() -> None:
    settings = load_settings(
        ["--source", "docker", "--docker-target", "web", "--docker-project", "shop", "--fallback-version", "none"],
        environ={"SIDECAR_DOCKER_HOST": "tcp://127.0.0.1:2375", "SIDECAR_DOCKER_LABEL": "app.version"},
    )
    assert (settings.docker_target, settings.docker_project) == ("web", "shop")
    assert (settings.docker_host, settings.docker_label, settings.fallback_version) == (
        "tcp://127.0.0.1:2375",
        "app.version",
        "none",
    )


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--source", "docker"], "--docker-target (SIDECAR_DOCKER_TARGET): required with --source docker"),
        (["--docker-target", "web app"], "--docker-target: must be"),
        (["--docker-project", "/shop"], "--docker-project: must be"),
        (["--docker-label", "a=b"], "--docker-label: must be"),
        (["--docker-host", "/var/run/docker.sock"], "--docker-host: must be"),
        (["--fallback-version", "a\nb"], "--fallback-version: must be a valid version"),
    ],
)
def test_bad_docker_settings_are_named(argv: list[str], named: str) -> None:
    with pytest.raises(SettingError) as error:
        load_settings(argv, environ={})
    assert str(error.value).startswith(named)


def test_an_engine_error_is_described_on_one_short_line() -> None:
    """A proxy that answers with a whole HTML page still makes one line of a start error or /healthz."""
    page = "<html><body>\n<h1>403 Forbidden</h1>\nRequest forbidden by administrative rules.\n</body></html>\n" * 20
    described = describe(DockerError(403, page))
    assert described.startswith("[403] <html><body> <h1>403 Forbidden</h1> Request forbidden")
    assert "\n" not in described and len(described) == 300 and described.endswith("...")
    assert describe(DockerError(403, "refused: GET /v1.41/info")) == "[403] refused: GET /v1.41/info"
    assert describe(TimeoutError()) == "TimeoutError"
