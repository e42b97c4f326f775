"""The swarm source's own logic, without a swarm: when a service has converged, where its version
label is read, which events concern it, its settings. (Against a real swarm: tests/swarm.)"""

import asyncio
import itertools
from typing import Any

import pytest

from sidecar.config import SettingError, load_settings
from sidecar.sources.engine import DEFAULT_LABELS, Reading
from sidecar.sources.swarm import (
    SETTLED_REREAD,
    WAITING_REREAD,
    Service,
    SwarmSource,
    Task,
    converge,
    service_version,
)

VERSION, REVISION = DEFAULT_LABELS
OLD, NEW = "app:1", "app:2"


def service(image: str = NEW, update_state: str | None = "completed", version: str | None = "2.0") -> Service:
    return Service("shop_web", image, update_state, "", version, None if version else "no label")


def task(slot: int, image: str = NEW, state: str = "running", node: str = "node-a", node_up: bool = True) -> Task:
    return Task(f"shop_web.{slot}", node, node_up, state, image)


def test_a_settled_service_whose_running_tasks_all_run_its_image_gives_its_version() -> None:
    tasks = [task(1), task(2, node="node-b"), task(3, OLD, "shutdown"), task(4, OLD, "failed")]
    for settled in (None, "completed", "rollback_completed"):
        reading = converge("shop_web", service(update_state=settled), tasks)
        assert (reading.version, reading.waiting_for) == ("2.0", None)


@pytest.mark.parametrize(
    ("state", "waiting_for"),
    [
        ("updating", "the update of shop_web to app:2 to finish (1 of 2 running tasks run it)"),
        ("paused", "the paused update of shop_web to be resumed or rolled back: update paused"),
        ("rollback_started", "the rollback of shop_web to finish (1 of 2 running tasks run app:2)"),
        ("rollback_paused", "the paused rollback of shop_web to be resumed: update paused"),
    ],
)
def test_nothing_is_announced_while_an_update_or_rollback_is_under_way(state: str, waiting_for: str) -> None:
    under_way = Service("shop_web", NEW, state, "update paused" if "paused" in state else "", "2.0", None)
    reading = converge("shop_web", under_way, [task(1), task(2, OLD, node="node-b")])
    assert (reading.version, reading.waiting_for) == (None, waiting_for)


def test_even_when_every_task_already_runs_the_new_image_an_unfinished_update_announces_nothing() -> None:
    reading = converge("shop_web", service(update_state="updating"), [task(1), task(2)])
    assert reading.version is None


def test_a_running_task_of_another_image_holds_the_version_back() -> None:
    reading = converge("shop_web", service(), [task(1), task(2, OLD, node="node-b")])
    assert (reading.version, reading.waiting_for) == (
        None,
        "every running task of shop_web to run app:2: shop_web.2 on node-b runs app:1",
    )


def test_a_task_on_the_way_out_still_counts_until_it_has_stopped() -> None:
    # Its desired state is shutdown, but its container still runs (stop-first, or a node that lags).
    reading = converge("shop_web", service(), [task(1), task(2, OLD, "running")])
    assert reading.version is None


def test_tasks_not_running_yet_do_not_count_but_one_running_task_is_needed() -> None:
    assert converge("shop_web", service(), [task(1), task(2, OLD, "starting"), task(3, OLD, "preparing")]).version
    reading = converge("shop_web", service(), [task(1, state="starting"), task(2, state="pending", node="")])
    assert (reading.version, reading.waiting_for) == (None, "a running task of shop_web")


def test_tasks_on_a_node_that_is_down_do_not_count() -> None:
    # Swarm cannot hear from that node: its tasks' last known state stays "running".
    tasks = [task(1), task(2, OLD, node="node-b", node_up=False)]
    reading = converge("shop_web", service(), tasks)
    assert reading.version == "2.0"
    assert "1 running app:1 on node-b (down)" in reading.summary


def test_the_summary_counts_tasks_by_state_image_and_node() -> None:
    tasks = [task(1), task(2), task(3, node="node-b"), task(4, state="pending", node=""), task(5, OLD, "shutdown")]
    assert converge("shop_web", service(), tasks).summary == (
        "update completed",
        "1 pending app:2 on no node yet",
        "2 running app:2 on node-a",
        "1 running app:2 on node-b",
    )


def test_a_long_list_of_tasks_behind_is_cut_short() -> None:
    tasks = [task(0), *(task(slot, OLD) for slot in range(1, 8))]
    waiting_for = converge("shop_web", service(), tasks).waiting_for
    assert waiting_for is not None and waiting_for.endswith("shop_web.4 on node-a runs app:1 and 3 more")


def test_a_missing_service_or_label_is_waited_for() -> None:
    assert converge("shop_web", None, []).waiting_for == "the service shop_web to exist"
    unlabelled = converge("shop_web", service(version=None), [task(1)])
    assert (unlabelled.version, unlabelled.waiting_for) == (None, "a valid version label: no label")


def test_the_image_label_comes_first_where_the_manager_holds_the_image() -> None:
    assert service_version(NEW, {VERSION: "2.0"}, {VERSION: "9.9"}, DEFAULT_LABELS) == ("2.0", None)
    assert service_version(NEW, {REVISION: "abc"}, {VERSION: "9.9"}, DEFAULT_LABELS) == ("abc", None)


def test_the_service_label_is_read_where_the_image_has_none_or_the_manager_lacks_it() -> None:
    assert service_version(NEW, {}, {VERSION: "2.0"}, DEFAULT_LABELS) == ("2.0", None)
    assert service_version(NEW, None, {VERSION: "2.0"}, DEFAULT_LABELS) == ("2.0", None)
    assert service_version(NEW, None, {"app.version": "7"}, ["app.version"]) == ("7", None)


def test_without_a_label_anywhere_the_reason_names_both_places() -> None:
    assert service_version(NEW, None, {}, DEFAULT_LABELS) == (
        None,
        f"no label {VERSION} or {REVISION} on its image (app:2 is not on this manager) or on the service",
    )
    assert service_version(NEW, {}, {}, ["app.version"])[1] == "no label app.version on its image or on the service"
    version, problem = service_version(NEW, None, {VERSION: "2.0\nevent: x"}, DEFAULT_LABELS)
    assert version is None and problem is not None and "non-printable" in problem


def test_events_about_the_service_its_containers_and_any_node_concern_it() -> None:
    source = SwarmSource("shop_web", host="unix:///nowhere.sock")

    def event(kind: str, **attributes: str) -> dict[str, object]:
        return {"Type": kind, "Action": "update", "Actor": {"Attributes": attributes}}

    assert source._concerns_target(event("service", name="shop_web"))
    assert not source._concerns_target(event("service", name="shop_web2"))
    assert source._concerns_target(event("container", **{"com.docker.swarm.service.name": "shop_web"}))
    assert not source._concerns_target(event("container", name="shop_web"))
    assert source._concerns_target(event("node", name="node-b"))
    assert not source._concerns_target(event("network", name="shop_web"))


def test_it_reads_again_soon_while_waiting_and_now_and_then_once_settled() -> None:
    source = SwarmSource("shop_web", host="unix:///nowhere.sock")
    assert source._reread_after(Reading(None, "the update to finish", ())) == WAITING_REREAD
    assert source._reread_after(Reading("2.0", None, ())) == SETTLED_REREAD
    assert WAITING_REREAD < SETTLED_REREAD <= 60


def test_swarm_settings() -> None:
    settings = load_settings(["--source", "swarm"], environ={"SIDECAR_SWARM_SERVICE": "shop_web"})
    assert (settings.source, settings.swarm_service) == ("swarm", "shop_web")
    with pytest.raises(SettingError, match=r"^--swarm-service \(SIDECAR_SWARM_SERVICE\): required with --source swarm"):
        load_settings(["--source", "swarm"], environ={})
    with pytest.raises(SettingError, match=r"^--swarm-service: must be"):
        load_settings(["--swarm-service", "shop web"], environ={})


class _Clock:
    """A stand-in clock, moved on by the stand-in engine: one second per event."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class _BusyEngine:
    """A stand-in for aiodocker.Docker whose event stream never stops: a crash-looping neighbour's
    container events, none about the followed service, one every second of the stand-in clock."""

    def __init__(self, clock: _Clock, events: int) -> None:
        self.clock, self.events_left = clock, events
        self.events = self
        self.queue: asyncio.Queue[object] = asyncio.Queue()  # what arrived while a read ran: nothing
        self.ended = asyncio.Event()

    def subscribe(self, create_task: bool) -> "_BusyEngine":
        return self

    async def run(self, **filters: object) -> None:
        await self.ended.wait()

    async def get(self) -> dict[str, object] | None:
        await asyncio.sleep(0)
        if self.events_left == 0:
            self.ended.set()
            return None  # the end of the stream: the test is over
        self.events_left -= 1
        self.clock.now += 1.0
        return {"Type": "container", "Action": "die", "Actor": {"Attributes": {"name": "neighbour"}}}

    async def __aenter__(self) -> "_BusyEngine":
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


@pytest.mark.parametrize(("waiting_for", "period"), [("the update to finish", WAITING_REREAD), (None, SETTLED_REREAD)])
async def test_a_stream_of_unrelated_events_cannot_put_the_reread_off(waiting_for: str | None, period: float) -> None:
    clock = _Clock()
    reads: list[float] = []

    class Followed(SwarmSource):
        def _client(self) -> Any:
            return _BusyEngine(clock, events=int(3 * SETTLED_REREAD))

        async def _read(self, docker: Any) -> Reading:
            reads.append(clock.now)
            return Reading(None if waiting_for else "2.0", waiting_for, ())

    source = Followed("shop_web", host="unix:///nowhere.sock", clock=clock)
    assert await source._watch(lambda version: None) is not None  # ends with the stand-in stream
    gaps = [later - earlier for earlier, later in itertools.pairwise(reads)]
    assert len(reads) > 2 and all(gap <= period for gap in gaps), f"reads at {reads}"
