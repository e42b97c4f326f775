"""The swarm source against a real two-node swarm: the sidecar runs as a real process talking to
the manager, browsers are stood in for by SSE clients, and deploys are made with the docker client
as Swarm users make them (`docker service update --image`)."""

import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import StartSidecar
from tests.docker.socket_filter import logged_requests, running_socket_filter, unix_socket_of
from tests.docker.version_listener import VersionListener
from tests.nginx.nginx_server import NginxServer, stand_in_app
from tests.sidecar_process import SidecarProcess, logged
from tests.swarm.cluster import Cluster, app_image
from tests.swarm.conftest import FollowService
from tests.waiting import wait_until

pytestmark = pytest.mark.swarm

Name = Callable[[str], str]
Listen = Callable[[str], VersionListener]
VERSION_LABEL = "org.opencontainers.image.version"
# Where the rolling itself is not the point: every task at once.
AT_ONCE = ("--update-parallelism", "0")
# A version that starts, runs a few seconds, then crashes; Swarm watches new tasks for longer.
CRASHING = ("--args", "sh -c 'sleep 4; exit 1'")
WATCH_LONGER = ("--update-monitor", "15s")


def waits_for(sidecar: SidecarProcess, text: str) -> Callable[[], list[dict[str, object]]]:
    """A check: has the sidecar logged that it keeps the last version, waiting for `text`?"""
    return lambda: logged(sidecar, "keeping the last version", waiting_for=text)


def followed_service(
    swarm: Cluster, follow: FollowService, listen: Listen, name: Name, replicas: int, *args: str
) -> tuple[str, SidecarProcess, VersionListener]:
    """A service at 1.0 with `replicas` tasks over both nodes, a sidecar following it, and a
    browser that has heard 1.0."""
    web = swarm.create_service(name("web"), app_image("1.0"), "--replicas", str(replicas), *args)
    swarm.wait_running(web, "1.0", replicas)
    sidecar = follow(web)
    browser = listen(sidecar.url)
    browser.wait_for("1.0")
    return web, sidecar, browser


def test_a_rolling_update_is_announced_once_every_task_on_every_node_runs_it(
    swarm: Cluster, follow: FollowService, listen: Listen, name: Name
) -> None:
    web, sidecar, browser = followed_service(swarm, follow, listen, name, 4)
    health = sidecar.health()
    assert (health["status"], health["version"], health["source"]) == ("ok", "1.0", "swarm")

    started = time.time()
    swarm.update_service(web, "--image", app_image("2.0"), "--update-parallelism", "1", "--update-delay", "3s")

    def half_done() -> bool:
        images = {image for _, image in swarm.running_tasks(web)}
        return swarm.update_state(web) == "updating" and images == {app_image("1.0"), app_image("2.0")}

    wait_until(half_done, "the update half done: tasks of 1.0 and of 2.0 running", timeout=60, details=sidecar.logs)
    health = sidecar.health()
    assert (health["status"], health["version"]) == ("degraded", "1.0")
    assert f"waiting for the update of {web} to {app_image('2.0')} to finish" in str(health["problem"])
    assert browser.changes() == ["1.0"], "no announcement while the update rolls"

    browser.wait_for("2.0", timeout=120)
    assert browser.changes() == ["1.0", "2.0"]
    arrived = browser.received_at[browser.versions.index("2.0")]
    completed = [
        at
        for at, attributes in swarm.event_times(started, type="service", service=web)
        if attributes.get("updatestate.new") == "completed"
    ]
    assert completed and completed[0] <= arrived, "2.0 is announced only after Swarm completed the update"
    swarm.wait_running(web, "2.0", 4)  # every task on both nodes
    assert sidecar.health()["status"] == "ok"


def crashing_update(
    swarm: Cluster, follow: FollowService, listen: Listen, name: Name, failure_action: str
) -> tuple[str, SidecarProcess, VersionListener]:
    """A followed service of 2 tasks at 1.0, being updated to a 3.0 that starts on both nodes, then
    crashes: Swarm sees the failure while it watches the new tasks and acts on `failure_action`."""
    web, sidecar, browser = followed_service(
        swarm, follow, listen, name, 2, "--update-failure-action", failure_action, *AT_ONCE, *WATCH_LONGER
    )
    swarm.update_service(web, "--image", app_image("3.0"), *CRASHING)
    return web, sidecar, browser


def test_an_update_that_fails_is_rolled_back_and_never_announced(
    swarm: Cluster, follow: FollowService, listen: Listen, name: Name
) -> None:
    web, sidecar, browser = crashing_update(swarm, follow, listen, name, "rollback")
    wait_until(
        waits_for(sidecar, f"the update of {web} to {app_image('3.0')}"),
        "the sidecar waiting",
        timeout=30,
        details=sidecar.logs,
    )
    wait_until(
        lambda: swarm.update_state(web) == "rollback_completed",
        "the rollback completed",
        timeout=120,
        details=sidecar.logs,
    )
    wait_until(
        lambda: sidecar.health()["status"] == "ok",
        "the sidecar settled on the rolled back service",
        timeout=30,
        details=sidecar.logs,
    )

    assert "3.0" not in browser.versions
    assert browser.changes() == ["1.0"]
    assert sidecar.health()["version"] == "1.0"


def test_a_paused_update_keeps_the_old_version(
    swarm: Cluster, follow: FollowService, listen: Listen, name: Name
) -> None:
    web, sidecar, browser = crashing_update(swarm, follow, listen, name, "pause")
    wait_until(lambda: swarm.update_state(web) == "paused", "the update paused", timeout=120, details=sidecar.logs)
    wait_until(
        waits_for(sidecar, f"the paused update of {web}"),
        "the sidecar waiting for it",
        timeout=30,
        details=sidecar.logs,
    )
    health = sidecar.health()
    assert (health["status"], health["version"]) == ("degraded", "1.0")
    assert "3.0" not in browser.versions

    swarm.manager.docker("service", "rollback", "--detach", "--quiet", web)  # what the operator does next
    wait_until(
        lambda: sidecar.health()["status"] == "ok",
        "the sidecar settled after the rollback",
        timeout=120,
        details=sidecar.logs,
    )
    assert browser.changes() == ["1.0"]


def test_a_service_created_later_on_the_worker_is_announced_from_the_label_on_the_service(
    swarm: Cluster, follow: FollowService, listen: Listen, name: Name
) -> None:
    web = name("web")
    sidecar = follow(web)
    health = sidecar.health()
    assert (health["status"], health["version"]) == ("degraded", None)
    assert f"waiting for the service {web} to exist" in str(health["problem"])
    browser = listen(sidecar.url)

    # Built on the worker only, labelled 9.9: the manager cannot read that label. Its task starts
    # on the worker, which makes no event the manager passes on: the sidecar's re-read finds it.
    image = swarm.worker.build_app_image(f"vs-worker-only:{uuid.uuid4().hex[:8]}", "9.9")
    swarm.create_service(web, image, "--constraint", "node.role==worker", "--label", f"{VERSION_LABEL}=5.0")
    browser.wait_for("5.0")
    assert sidecar.health()["status"] == "ok"
    assert len(swarm.running_tasks(web)) == 1

    swarm.update_service(web, "--label-rm", VERSION_LABEL)
    wait_until(
        lambda: sidecar.health()["status"] == "degraded", "degraded without a label", timeout=30, details=sidecar.logs
    )
    health = sidecar.health()
    assert health["version"] == "5.0", "the last version stays"
    assert f"{image} is not on this manager" in str(health["problem"])
    assert browser.changes() == ["5.0"]


def test_two_sidecars_behind_nginx_tell_the_same_version_and_a_stream_moves_to_the_other(
    swarm: Cluster, follow: FollowService, name: Name, tmp_path: Path
) -> None:
    web = swarm.create_service(name("web"), app_image("1.0"), "--replicas", "2", *AT_ONCE)
    swarm.wait_running(web, "1.0", 2)
    sidecars = [follow(web), follow(web)]
    tabs: list[VersionListener] = []
    with stand_in_app() as app_port:
        nginx = NginxServer(tmp_path / "nginx", [sidecar.port for sidecar in sidecars], app_port)
        try:
            tabs += [VersionListener(f"{nginx.url}/events/version") for _ in range(2)]
            for tab in tabs:
                tab.wait_for("1.0")
            spread = lambda: [sidecar.health()["clients"] for sidecar in sidecars] == [1, 1]  # noqa: E731
            wait_until(spread, "nginx passing one stream to each sidecar", timeout=30, details=sidecars[0].logs)

            swarm.update_service(web, "--image", app_image("2.0"))
            for tab in tabs:
                tab.wait_for("2.0", timeout=90)
                assert tab.changes() == ["1.0", "2.0"]

            sidecars[0].stop()  # one replica goes away: its stream ends, the browser reconnects
            wait_until(
                lambda: [tab for tab in tabs if tab.ended], "the stream of the stopped sidecar ended", timeout=30
            )
            assert [tab.ended for tab in tabs].count(True) == 1
            tabs.append(VersionListener(f"{nginx.url}/events/version"))
            tabs[-1].wait_for("2.0")
            assert sidecars[1].health()["clients"] == 2
        finally:
            for tab in tabs:
                tab.close()
            nginx.stop()


def test_the_swarm_source_follows_an_update_through_the_socket_filter(
    swarm: Cluster, follow: FollowService, listen: Listen, name: Name, tmp_path: Path
) -> None:
    """As the shipped stack runs it: the haproxy filter in front of the manager's socket."""
    web = swarm.create_service(name("web"), app_image("1.0"), "--replicas", "2", *AT_ONCE)
    swarm.wait_running(web, "1.0", 2)
    filter_log = tmp_path / "filter.log"
    with running_socket_filter(unix_socket_of(swarm.manager.host), filter_log) as filter_url:
        sidecar = follow(web, "--docker-host", filter_url.replace("http://", "tcp://"))
        browser = listen(sidecar.url)
        browser.wait_for("1.0")
        swarm.update_service(web, "--image", app_image("2.0"))
        browser.wait_for("2.0", timeout=90)
        assert sidecar.health()["status"] == "ok"
    made = logged_requests(filter_log)
    assert [request for request in made if request[0] != 200] == [], "the filter refused nothing"
    assert {(method, path.replace(web, "{service}")) for _, method, path in made} >= {
        ("GET", "/version"),
        ("GET", "/v1.41/events"),
        ("GET", "/v1.41/services/{service}"),
        ("GET", "/v1.41/tasks"),
        ("GET", "/v1.41/nodes"),
    }


def test_a_sidecar_pointed_at_a_worker_stops_with_one_line(swarm: Cluster, start_sidecar: StartSidecar) -> None:
    host = swarm.worker.host
    sidecar = start_sidecar(["--source", "swarm", "--swarm-service", "web", "--docker-host", host], wait=False)
    assert sidecar.process.wait(30) == 2
    last_line = sidecar.logs().strip().splitlines()[-1]
    assert last_line.startswith(f"version-sidecar: error: --docker-host {host}: cannot read the service: ")
    assert "not a swarm manager" in last_line


def test_losing_the_worker_keeps_the_version_and_a_later_update_still_converges(
    swarm: Cluster, follow: FollowService, listen: Listen, name: Name
) -> None:
    web, sidecar, browser = followed_service(swarm, follow, listen, name, 4, *AT_ONCE)

    swarm.worker.stop()
    wait_until(
        lambda: swarm.node_states()["vs-worker"] == "down",
        "the manager seeing the worker down",
        timeout=60,
        details=sidecar.logs,
    )
    # Swarm starts the worker's tasks again on the manager; the records of the lost ones still
    # say "running", on a node that is down.
    swarm.wait_running(web, "1.0", 4, on_both_nodes=False)
    wait_until(lambda: sidecar.health()["status"] == "ok", "the sidecar settled", timeout=30, details=sidecar.logs)
    assert sidecar.health()["version"] == "1.0"
    assert browser.changes() == ["1.0"]

    swarm.update_service(web, "--image", app_image("2.0"))
    browser.wait_for("2.0", timeout=90)
    assert browser.changes() == ["1.0", "2.0"]
    assert sidecar.process.poll() is None


def test_the_sidecar_rides_out_the_loss_of_its_manager(
    swarm: Cluster, follow: FollowService, listen: Listen, name: Name
) -> None:
    web, sidecar, browser = followed_service(swarm, follow, listen, name, 2, *AT_ONCE)

    swarm.manager.stop()
    wait_until(
        lambda: logged(sidecar, "docker engine unreachable"),
        "the sidecar losing the manager",
        timeout=30,
        details=sidecar.logs,
    )
    health = sidecar.health()
    assert (health["status"], health["version"]) == ("degraded", "1.0")
    assert f"Docker Engine at {swarm.manager.host}" in str(health["problem"])

    swarm.manager.start()
    wait_until(
        lambda: logged(sidecar, "docker engine reachable again"),
        "the sidecar reconnected",
        timeout=60,
        details=sidecar.logs,
    )
    swarm.wait_ready()
    swarm.update_service(web, "--image", app_image("2.0"))
    browser.wait_for("2.0", timeout=90)
    assert browser.changes() == ["1.0", "2.0"]
    assert sidecar.process.poll() is None
