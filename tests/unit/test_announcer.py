"""The announcer: the one gate for versions, and a source that fails is restarted, never silent."""

import asyncio
from collections.abc import AsyncIterator

import pytest
from structlog.testing import capture_logs

from sidecar import announcer as announcer_module
from sidecar.announcer import Announcer
from sidecar.client import DropRules
from sidecar.host import HostTable
from sidecar.hub import Hub
from sidecar.sources import Publish, Source, SourceError
from sidecar.version import check_version
from tests.waiting import eventually


class ScriptedSource(Source):
    """Each follow() call plays the next step: deliver values, then fail or wait."""

    name = "scripted"
    origin = "--scripted"

    def __init__(self, initial: str | None, steps: list[tuple[list[str], BaseException | None]]) -> None:
        self.initial = initial
        self.steps = steps
        self.follows = 0

    async def read_initial(self) -> str | None:
        return self.initial

    async def follow(self, publish: Publish) -> None:
        values, failure = self.steps[min(self.follows, len(self.steps) - 1)]
        self.follows += 1
        for value in values:
            publish(value)
        if failure is not None:
            raise failure
        await asyncio.Event().wait()


def make_hub() -> Hub:
    return Hub(
        heartbeat=3600, retry=0, retry_jitter=0, reconnect_rate=1000, max_clients=10, drop_rules=DropRules(100, 5)
    )


@pytest.fixture(autouse=True)
def quick_restarts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(announcer_module, "RESTART_FIRST", 0.01)


@pytest.fixture
async def stop_afterwards() -> AsyncIterator[list[Announcer]]:
    started: list[Announcer] = []
    yield started
    for announcer in started:
        await announcer.stop()


async def test_a_source_that_fails_is_logged_reported_and_restarted(stop_afterwards: list[Announcer]) -> None:
    source = ScriptedSource("v1", [([], MemoryError("out of memory")), (["v2"], None)])
    announcer = Announcer(source, hub := make_hub())
    stop_afterwards.append(announcer)
    await announcer.read_initial()
    with capture_logs() as logs:
        announcer.start()
        await eventually(lambda: hub.version == "v2", "v2 from the restarted source")
    failures = [entry for entry in logs if entry["event"] == "source failed, restarting it"]
    assert len(failures) == 1 and failures[0]["log_level"] == "error"
    assert announcer.problem is None


async def test_while_a_source_keeps_failing_health_says_why_and_the_log_says_it_once(
    stop_afterwards: list[Announcer],
) -> None:
    source = ScriptedSource("v1", [([], RuntimeError("engine on fire"))])
    announcer = Announcer(source, hub := make_hub())
    stop_afterwards.append(announcer)
    await announcer.read_initial()
    with capture_logs() as logs:
        announcer.start()
        await eventually(lambda: source.follows >= 4, "several restarts")
    assert announcer.problem == "following the scripted source failed: RuntimeError: engine on fire"
    assert [entry["event"] for entry in logs].count("source failed, restarting it") == 1
    assert hub.version == "v1"  # the last good version stays


async def test_a_rejected_value_reads_degraded_until_a_good_one_arrives() -> None:
    announcer = Announcer(ScriptedSource("v1", []), hub := make_hub())
    await announcer.read_initial()
    with capture_logs() as logs:
        announcer.offer("two\nlines")
        announcer.offer("two\nlines")  # the same again: no second line
    assert hub.version == "v1"
    assert announcer.problem == "the source delivered two\\nlines, which contains the non-printable character '\\n'"
    assert logs == [
        {
            "event": "version rejected",
            "log_level": "warning",
            "source": "scripted",
            "value": "two\\nlines",
            "reason": "contains the non-printable character '\\n'",
        }
    ]
    announcer.offer("v2")
    assert hub.version == "v2" and announcer.problem is None


async def test_a_secret_behind_the_version_file_is_not_copied_into_the_log() -> None:
    secret = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7"
    announcer = Announcer(ScriptedSource("v1", []), make_hub())
    await announcer.read_initial()
    with capture_logs() as logs:
        announcer.offer(secret)
    (entry,) = logs
    assert entry["value"] == "-----BEGIN PRIVATE KEY-----\\nMIIE... (80 characters)"
    assert "MIIEvQIBADAN" not in str(entry) and "MIIEvQIBADAN" not in str(announcer.problem)


async def test_an_invalid_first_version_stops_start_up_naming_the_setting() -> None:
    announcer = Announcer(ScriptedSource("v1\nretry: 0", []), make_hub())
    with pytest.raises(SourceError, match=r"^--scripted: the version contains the non-printable character"):
        await announcer.read_initial()


async def test_no_version_yet_reads_degraded() -> None:
    announcer = Announcer(ScriptedSource(None, []), make_hub())
    assert await announcer.read_initial() is None
    assert announcer.problem == "no version known yet"


class CountingFailures(Source):
    """Fails each follow() with a new message; follow number `long_run` first runs for a while."""

    name = "counting"
    origin = "--counting"

    def __init__(self, long_run: int) -> None:
        self.follows = 0
        self.long_run = long_run
        self.closed = False

    async def read_initial(self) -> str | None:
        return "v1"

    async def follow(self, publish: Publish) -> None:
        self.follows += 1
        if self.follows == self.long_run:
            await asyncio.sleep(0.2)  # longer than RESTART_LAST (patched to 0.05)
        raise RuntimeError(f"failure {self.follows}")

    async def close(self) -> None:
        self.closed = True


async def test_restarts_back_off_doubling_up_to_a_ceiling_and_start_over_after_a_long_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(announcer_module, "RESTART_LAST", 0.05)
    source = CountingFailures(long_run=6)
    announcer = Announcer(source, make_hub())
    await announcer.read_initial()
    with capture_logs() as logs:
        announcer.start()
        try:
            await eventually(lambda: source.follows >= 7, "seven follows")
        finally:
            await announcer.stop()
    failures = [entry for entry in logs if entry["event"] == "source failed, restarting it"]
    assert [entry["retry_in"] for entry in failures[:6]] == [0.01, 0.02, 0.04, 0.05, 0.05, 0.01]
    assert failures[0]["source"] == "counting" and failures[0]["exc_info"] is True
    assert source.closed


async def test_stop_ends_the_following_and_closes_the_source() -> None:
    source = ScriptedSource("v1", [([], None)])  # follows until cancelled
    closed: list[bool] = []

    async def close() -> None:
        closed.append(True)

    source.close = close  # type: ignore[method-assign]
    announcer = Announcer(source, make_hub())
    await announcer.read_initial()
    announcer.start()
    await eventually(lambda: source.follows == 1, "the source to be followed")
    follow_task = next(task for task in asyncio.all_tasks() if task.get_name() == "follow scripted")
    await announcer.stop()
    assert follow_task.cancelled() and closed == [True]


class FailsAtStart(ScriptedSource):
    async def read_initial(self) -> str | None:
        raise SourceError("--scripted: cannot read it")


async def test_a_worker_whose_source_fails_at_start_serves_the_hosts_version_degraded() -> None:
    table = HostTable(2, max_clients=10)
    table.row(0).announced(check_version("v1"))  # the worker that served before
    hub = Hub(
        heartbeat=3600,
        retry=0,
        retry_jitter=0,
        reconnect_rate=1000,
        max_clients=10,
        drop_rules=DropRules(100, 5),
        row=table.row(1),
    )
    announcer = Announcer(FailsAtStart(None, []), hub)
    with capture_logs() as logs:
        assert await announcer.first_version() == "v1"
    assert (hub.version, announcer.problem) == ("v1", "--scripted: cannot read it")
    assert [entry["event"] for entry in logs] == ["source error, keeping the last good version", "version changed"]


async def test_a_source_that_fails_at_the_hosts_first_start_stops_it() -> None:
    announcer = Announcer(FailsAtStart(None, []), hub := make_hub())
    with pytest.raises(SourceError, match="cannot read it"):
        await announcer.first_version()
    assert hub.version is None
