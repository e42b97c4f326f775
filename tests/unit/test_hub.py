"""The hub and its clients on stand-in transports: fan-out, heartbeat slices, drop rules, ends."""

import asyncio
import random
import re
import time
from collections.abc import Callable
from typing import cast

import pytest
from aiohttp.http_writer import StreamWriter
from structlog.testing import capture_logs

from sidecar.client import Client, DropRules
from sidecar.host import HostTable
from sidecar.hub import HEARTBEAT_GROUPS, Hub
from sidecar.stream import OpenedStream, VersionStream
from sidecar.version import check_version
from tests.waiting import eventually

# What a transport's clean close logs, in order with the writes: a stream's end.
CLOSED = b"<closed>"


class WriteLog(list[tuple[str, bytes]]):
    """(client, bytes) in the order the hub wrote them (CLOSED for a clean close); `grew` is set at each."""

    def __init__(self) -> None:
        super().__init__()
        self.grew = asyncio.Event()

    def append(self, item: tuple[str, bytes]) -> None:
        super().append(item)
        self.grew.set()

    async def holds(self, count: int) -> None:
        """Wait until `count` writes are logged (resuming in the loop's turn after the write)."""
        while len(self) < count:
            self.grew.clear()
            await self.grew.wait()


class RecordingTransport:
    """Records what the hub writes; `unsent` plays the kernel's send buffer."""

    def __init__(self, name: str, log: WriteLog) -> None:
        self.name, self.log = name, log
        self.unsent = 0
        self.aborted = False
        self.closed = False  # closed cleanly (after what was written)

    def write(self, data: bytes) -> None:
        self.log.append((self.name, data))

    def is_closing(self) -> bool:
        return self.aborted or self.closed

    def get_write_buffer_size(self) -> int:
        return self.unsent

    def abort(self) -> None:
        self.aborted = True

    def close(self) -> None:
        self.closed = True
        self.log.append((self.name, CLOSED))

    def get_extra_info(self, name: str) -> None:
        return None


class RecordingWriter:
    """Stands in for aiohttp's StreamWriter, which sends the head with the first write."""

    def __init__(self, transport: RecordingTransport) -> None:
        self.transport = transport

    async def write(self, data: bytes, *, drain: bool = True) -> None:
        self.transport.write(b"head+" + data)


def make_hub(
    heartbeat: float = 3600,
    send_timeout: float = 5,
    clock: Callable[[], float] = time.monotonic,
    fanout_chunk: int = 1000,
    retry_jitter: int = 0,
) -> Hub:
    rules = DropRules(max_buffer=100, send_timeout=send_timeout)
    return Hub(
        heartbeat=heartbeat,
        retry=1000,
        retry_jitter=retry_jitter,
        reconnect_rate=1000,
        max_clients=100,
        drop_rules=rules,
        clock=clock,
        fanout_chunk=fanout_chunk,
    )


def stream_on(transport: RecordingTransport) -> OpenedStream:
    writer = cast(StreamWriter, RecordingWriter(transport))
    return OpenedStream(VersionStream(), writer, cast(asyncio.Transport, transport))


async def join(hub: Hub, name: str, log: WriteLog) -> tuple[RecordingTransport, Client]:
    transport = RecordingTransport(name, log)
    stream = stream_on(transport)
    client = await hub.join(stream, name, None)
    return transport, client


V1 = b'event: version\nid: v1\ndata: {"version": "v1"}\n\n'
V2 = b'event: version\nid: v2\ndata: {"version": "v2"}\n\n'
V3 = b'event: version\nid: v3\ndata: {"version": "v3"}\n\n'


async def test_a_new_client_gets_the_head_its_retry_and_the_current_version_in_one_write() -> None:
    hub, log = make_hub(), WriteLog()
    hub.publish(check_version("v1"))
    await join(hub, "tab", log)
    assert log == [("tab", b"head+retry: 1000\n\n" + V1)]


def hub_of_a_two_worker_host(heartbeat: float) -> tuple[Hub, HostTable]:
    """Worker 0's hub, announcing v1, with a 2 s --retry-jitter and a --reconnect-rate of 10: the
    jitter window widens past 2 s once the host holds more than 40 streams."""
    table = HostTable(2, max_clients=1000)
    rules = DropRules(max_buffer=100, send_timeout=5)
    hub = Hub(heartbeat=heartbeat, retry=1000, retry_jitter=2000, reconnect_rate=10, max_clients=1000,
              drop_rules=rules, row=table.row(0))  # fmt: skip
    hub.publish(check_version("v1"))
    return hub, table


async def test_the_jitter_window_widens_to_what_the_whole_host_takes_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(random, "randint", lambda low, high: high)  # each client draws the window's end
    hub, table = hub_of_a_two_worker_host(heartbeat=3600)
    log = WriteLog()
    await join(hub, "few", log)  # a host with few streams: the configured window
    assert hub.retry_after_seconds == 3
    other_worker = table.row(1).seats
    for _ in range(100):  # two workers taking back 10 a second each: 100 streams need 5 s
        assert other_worker.take()
    await join(hub, "many", log)
    assert log == [("few", b"head+retry: 3000\n\n" + V1), ("many", b"head+retry: 6000\n\n" + V1)]
    assert hub.retry_after_seconds == 6  # a refused tab is told the same wait


async def test_a_change_is_written_as_it_is_to_every_client_without_framing() -> None:
    hub, log = make_hub(), WriteLog()
    hub.publish(check_version("v1"))
    await join(hub, "a", log)
    await join(hub, "b", log)
    log.clear()
    assert hub.publish(check_version("v2"))
    assert sorted(log) == [("a", V2), ("b", V2)]


async def test_the_same_version_again_is_not_sent() -> None:
    hub, log = make_hub(), WriteLog()
    hub.publish(check_version("v1"))
    await join(hub, "tab", log)
    log.clear()
    assert not hub.publish(check_version("v1"))
    assert log == []


async def test_a_client_too_far_behind_is_dropped_and_the_others_served() -> None:
    hub, log = make_hub(), WriteLog()
    slow, slow_client = await join(hub, "slow", log)
    await join(hub, "quick", log)
    slow.unsent = 1000
    log.clear()
    hub.publish(check_version("v1"))
    assert slow.aborted
    assert slow_client.ended == "too slow: more than 100 bytes unsent"
    assert len(hub.clients) == 1
    assert sorted(name for name, _ in log) == ["quick", "slow"]
    assert hub.row.table.read().workers[0].dropped == {"too_slow": 1, "send_timeout": 0}


async def test_a_client_whose_data_waits_past_the_send_timeout_is_dropped() -> None:
    # Only the hub's own rule can end this stream: a stand-in transport has no kernel timeout.
    hub, log = make_hub(heartbeat=0.05, send_timeout=0.2), WriteLog()
    hub.publish(check_version("v1"))
    stuck, stuck_client = await join(hub, "stuck", log)
    reading, _ = await join(hub, "reading", log)
    stuck.unsent = 50  # under max_buffer: only time can drop it
    hub.start()
    try:
        await eventually(lambda: stuck_client.ended is not None, "the stuck client to be dropped")
    finally:
        hub.stop()
    assert stuck_client.ended == "send timed out after 0.2 s"
    assert stuck.aborted and not reading.aborted
    assert hub.row.table.read().workers[0].dropped == {"too_slow": 0, "send_timeout": 1}


async def test_a_client_whose_data_drains_in_time_stays() -> None:
    hub, log = make_hub(heartbeat=0.05, send_timeout=0.2), WriteLog()
    hub.publish(check_version("v1"))
    slow, slow_client = await join(hub, "slow", log)
    hub.start()
    try:
        for _ in range(3):  # unsent data that is always gone by the next look
            slow.unsent = 50
            await eventually(lambda: slow_client.waiting_since is not None, "the hub to see data waiting")
            slow.unsent = 0
            await eventually(lambda: slow_client.waiting_since is None, "the hub to see it sent")
    finally:
        hub.stop()
    assert slow_client.ended == "server shutting down"


async def test_a_change_made_while_the_head_goes_out_reaches_the_new_client() -> None:
    hub, log = make_hub(), WriteLog()
    hub.publish(check_version("v1"))
    transport = RecordingTransport("tab", log)

    class SlowWriter(RecordingWriter):
        async def write(self, data: bytes, *, drain: bool = True) -> None:
            await asyncio.sleep(0)  # the change lands here
            hub.publish(check_version("v2"))
            await super().write(data, drain=drain)

    stream = OpenedStream(
        VersionStream(), cast(StreamWriter, SlowWriter(transport)), cast(asyncio.Transport, transport)
    )
    await hub.join(stream, "tab", None)
    assert log[-1] == ("tab", V2)
    assert hub.row.table.read().workers[0].events_sent == 2  # v1 with the head, then v2


async def test_the_heartbeat_serves_one_slice_of_the_clients_per_tick() -> None:
    hub, log = make_hub(heartbeat=2), WriteLog()  # two slices, one a second
    hub.publish(check_version("v1"))
    names = [f"c{i}" for i in range(6)]
    for name in names:
        await join(hub, name, log)
    log.clear()
    hub.start()
    try:
        async with asyncio.timeout(30):
            while {name for name, _ in log} != set(names):
                log.grew.clear()
                await log.grew.wait()
    finally:
        hub.stop()
    slot = {name: index % 2 for index, name in enumerate(names)}  # given in turn as they joined
    assert len({slot[name] for name, _ in log[:3]}) == 1  # the first three writes: one slice
    assert sorted(name for name, _ in log[:6]) == names  # then the other slice: everyone once


async def test_a_client_that_leaves_is_out_of_the_heartbeat_too() -> None:
    hub, log = make_hub(heartbeat=2), WriteLog()
    hub.publish(check_version("v1"))
    (_, kept), (_, gone) = await join(hub, "kept", log), await join(hub, "gone", log)
    hub.leave(gone, "client went away")
    assert [hub.heartbeat_slices.due(turn) for turn in range(2)] == [[kept], []]


async def test_the_heartbeat_ticks_once_per_slice_and_serves_the_slices_in_the_order_they_were_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hub, log = make_hub(heartbeat=3), WriteLog()  # three slices, a tick each second
    ticks: list[float] = []
    cancelled = asyncio.Event()
    real_sleep = asyncio.sleep

    async def counted_sleep(delay: float) -> None:
        # Only the heartbeat's own waits are replaced: six ticks at once, then none.
        task = asyncio.current_task()
        if task is None or task.get_name() != "heartbeat":
            return await real_sleep(delay)
        ticks.append(delay)
        if len(ticks) > 6:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                cancelled.set()
                raise
        log.append(("tick", b""))

    monkeypatch.setattr(asyncio, "sleep", counted_sleep)
    hub.publish(check_version("v1"))
    for name in ("c0", "c1", "c2"):  # given slots 0, 1, 2 in turn as they joined
        await join(hub, name, log)
    log.clear()
    with capture_logs() as logs:
        hub.start()
        try:
            await eventually(lambda: len(ticks) == 7, "the heartbeat to wait for its seventh tick")
        finally:
            hub.stop()
    await eventually(cancelled.is_set, "stop to end the heartbeat")
    assert set(ticks) == {1.0}
    # Slot 0 comes last: a round ends with the clients that joined first.
    heard = [name for name, data in log if data != CLOSED]  # not the streams' ends at stop()
    assert heard == ["tick", "c1", "tick", "c2", "tick", "c0"] * 2
    rounds = [entry for entry in logs if entry["event"] == "heartbeat sent"]
    assert [(entry["version"], entry["clients"]) for entry in rounds] == [("v1", 3), ("v1", 3)]


async def one_heartbeat(hub: Hub, log: WriteLog, monkeypatch: pytest.MonkeyPatch, writes: int) -> WriteLog:
    """The `writes` writes of one heartbeat tick, on a stand-in clock: the heartbeat's first wait
    ends at once, its next one never (the hub's other waits are real)."""
    real_sleep, waits = asyncio.sleep, 0

    async def one_tick_then_none(delay: float) -> None:
        nonlocal waits
        task = asyncio.current_task()
        if task is None or task.get_name() != "heartbeat":
            return await real_sleep(delay)
        waits += 1
        if waits > 1:
            await asyncio.Event().wait()

    monkeypatch.setattr(asyncio, "sleep", one_tick_then_none)
    log.clear()
    hub.start()
    try:
        async with asyncio.timeout(30):
            await log.holds(writes)
        heard = WriteLog()
        heard.extend(log)  # before stop() ends the streams
    finally:
        hub.stop()
    return heard


async def test_a_heartbeat_tells_a_stream_a_fresh_retry_from_the_window_the_host_needs_now(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(random, "randint", lambda low, high: high)  # each draw is the window's end
    hub, table = hub_of_a_two_worker_host(heartbeat=1)  # one heartbeat slice: every client each tick
    log = WriteLog()
    await join(hub, "early", log)  # while the host is small: the configured 2 s window
    assert log == [("early", b"head+retry: 3000\n\n" + V1)]
    for _ in range(100):  # then the host grows: two workers taking back 10 a second need 5 s
        assert table.row(1).seats.take()
    heard = await one_heartbeat(hub, log, monkeypatch, 1)
    assert heard == [("early", b"retry: 6000\n\n" + V1)]
    assert hub.row.table.read().workers[0].events_sent == 2  # the first event and one heartbeat


async def test_a_heartbeat_tick_draws_a_delay_per_group_of_its_clients_each_built_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(random, "randint", random.Random(23).randint)  # seeded: the same draws each run
    hub, log = make_hub(heartbeat=1, retry_jitter=2000), WriteLog()  # one slice: every client each tick
    hub.publish(check_version("v1"))
    names = [f"c{i}" for i in range(40)]
    for name in names:
        await join(hub, name, log)
    heard = await one_heartbeat(hub, log, monkeypatch, len(names))
    assert sorted(name for name, _ in heard) == sorted(names)  # each client once
    groups: dict[int, list[str]] = {}  # the clients given the very same bytes, by those bytes
    delays = set()
    for name, data in heard:
        groups.setdefault(id(data), []).append(name)
        delay = int(re.findall(rb"retry: (\d+)\n", data)[0])
        assert 1000 <= delay <= 3000 and data == b"retry: %d\n\n" % delay + V1
        delays.add(delay)
    assert len(groups) == HEARTBEAT_GROUPS and {len(group) for group in groups.values()} == {2, 3}
    assert len(delays) > 1, delays


async def test_what_the_hub_does_is_counted_in_its_row_once_per_fan_out() -> None:
    hub, log = make_hub(heartbeat=0.05), WriteLog()
    await join(hub, "early", log)  # no version yet: no first event
    assert hub.row.table.read().workers[0].events_sent == 0
    hub.publish(check_version("v1"))
    await join(hub, "late", log)
    hub.publish(check_version("v2"))
    worker = hub.row.table.read().workers[0]
    # v1 to one client, v1 as the late one's first event, v2 to both.
    assert (worker.connected, worker.events_sent, worker.fanouts) == (2, 4, 2)
    await join(hub, "latest", log)  # a first event counts as one, no more
    assert hub.row.table.read().workers[0].events_sent == 5
    hub.start()
    try:  # the heartbeat's slices count what they send too
        await eventually(lambda: hub.row.table.read().workers[0].events_sent >= 6, "two heartbeats counted")
    finally:
        hub.stop()


async def test_a_fan_out_is_timed_from_before_its_first_write_to_after_its_last(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hub, log = make_hub(), WriteLog()
    await join(hub, "tab", log)
    clock = iter([10.0, 10.25])  # read once before the writes, once after
    monkeypatch.setattr(time, "perf_counter", lambda: next(clock))
    hub.publish(check_version("v1"))
    monkeypatch.undo()
    assert hub.row.table.read().workers[0].fanout_seconds == 0.25


async def test_each_step_of_a_client_is_logged_with_what_an_operator_needs() -> None:
    hub, log = make_hub(), WriteLog()
    with capture_logs() as logs:
        _, silent = await join(hub, "10.0.0.7", log)  # before any version: nothing to send yet
        hub.publish(check_version("v1"))
        transport = RecordingTransport("10.0.0.8", log)
        tab = await hub.join(stream_on(transport), "10.0.0.8", "v0" + "x" * 300)
        hub.leave(tab, "client went away")
        hub.publish(check_version("v2"))
    assert [{k: v for k, v in entry.items() if k != "log_level"} for entry in logs] == [
        {"event": "client connected", "peer": "10.0.0.7", "clients": 1, "last_event_id": None},
        {"event": "version changed", "old": None, "new": "v1", "clients": 1},
        {"event": "client connected", "peer": "10.0.0.8", "clients": 2, "last_event_id": "v0" + "x" * 198},
        {"event": "initial version sent", "peer": "10.0.0.8", "version": "v1"},
        {"event": "client disconnected", "peer": "10.0.0.8", "reason": "client went away", "clients": 1},
        {"event": "version changed", "old": "v1", "new": "v2", "clients": 1},
    ]
    assert silent.peer == "10.0.0.7" and tab.ended == "client went away"


async def test_a_client_whose_connection_closed_leaves_at_the_next_send() -> None:
    hub, log = make_hub(), WriteLog()
    gone, client = await join(hub, "gone", log)
    gone.aborted = True  # the connection closed under it
    hub.publish(check_version("v1"))
    assert client.ended == "connection closed" and not hub.clients


async def test_unsent_data_up_to_the_buffer_limit_is_allowed_one_byte_more_is_not() -> None:
    hub, log = make_hub(), WriteLog()  # max_buffer 100
    at_limit, kept = await join(hub, "at-limit", log)
    over, dropped = await join(hub, "over", log)
    at_limit.unsent, over.unsent = 100, 101
    hub.publish(check_version("v1"))
    assert hub.clients == {kept} and dropped.ended == "too slow: more than 100 bytes unsent"
    assert hub.row.table.read().workers[0].dropped == {"too_slow": 1, "send_timeout": 0}


async def test_a_client_too_slow_for_its_first_event_never_joins() -> None:
    hub, log = make_hub(), WriteLog()
    hub.publish(check_version("v1"))
    transport = RecordingTransport("slow", log)
    transport.unsent = 1000
    client = await hub.join(stream_on(transport), "slow", None)
    assert client.ended == "too slow: more than 100 bytes unsent" and not hub.clients
    worker = hub.row.table.read().workers[0]
    assert (worker.connected, worker.dropped["too_slow"]) == (0, 1)


async def test_data_waiting_less_than_the_send_timeout_is_not_dropped() -> None:
    hub, log = make_hub(heartbeat=0.02, send_timeout=60), WriteLog()
    hub.publish(check_version("v1"))
    waiting, client = await join(hub, "waiting", log)
    waiting.unsent = 50  # waits through many heartbeats, never for a minute
    hub.start()
    try:
        await eventually(lambda: len(log) >= 6, "five heartbeats")
    finally:
        hub.stop()
    assert client.ended == "server shutting down"


async def test_a_stuck_client_is_dropped_within_a_second_of_the_send_timeout_whatever_the_heartbeat(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On a stand-in clock that the send-timeout check's own waits move on: data that starts
    waiting at 0 s with --send-timeout 10 and a 30 s heartbeat is dropped after 10 s, by 11 s."""
    now = [0.0]
    real_sleep = asyncio.sleep

    async def clock_sleep(delay: float) -> None:
        task = asyncio.current_task()
        if task is None or task.get_name() != "send timeouts":
            return await real_sleep(delay)
        await real_sleep(0)  # what was due before this wait runs first
        now[0] += delay

    monkeypatch.setattr(asyncio, "sleep", clock_sleep)
    hub, log = make_hub(heartbeat=30, send_timeout=10, clock=lambda: now[0]), WriteLog()
    hub.publish(check_version("v1"))
    dropped_at: list[float] = []

    class StuckTransport(RecordingTransport):
        def abort(self) -> None:
            dropped_at.append(now[0])
            super().abort()

    stuck_transport = StuckTransport("stuck", log)
    stuck_transport.unsent = 50  # its first event stays unsent, under max_buffer: only time can drop it
    stuck = await hub.join(stream_on(stuck_transport), "stuck", None)
    _, reading = await join(hub, "reading", log)
    hub.start()
    try:
        await eventually(lambda: stuck.ended is not None, "the stuck client to be dropped")
    finally:
        hub.stop()
    assert 10 < dropped_at[0] <= 11
    assert stuck.ended == "send timed out after 10 s"
    assert stuck_transport.aborted and reading.ended == "server shutting down"


async def test_a_stream_that_arrives_while_the_hub_stops_is_ended_at_once() -> None:
    hub, log = make_hub(), WriteLog()
    hub.publish(check_version("v1"))
    transport = RecordingTransport("late", log)

    class StopDuringHead(RecordingWriter):
        async def write(self, data: bytes, *, drain: bool = True) -> None:
            await asyncio.sleep(0)
            hub.stop()  # the shutdown lands while this stream's head goes out
            await super().write(data, drain=drain)

    stream = OpenedStream(
        VersionStream(), cast(StreamWriter, StopDuringHead(transport)), cast(asyncio.Transport, transport)
    )
    client = await hub.join(stream, "late", None)
    assert client.ended == "server shutting down"
    assert not hub.clients


async def test_stop_ends_each_stream_cleanly_once_and_a_dropped_one_as_it_is() -> None:
    hub, log = make_hub(), WriteLog()
    hub.publish(check_version("v1"))
    a, _ = await join(hub, "a", log)
    b, _ = await join(hub, "b", log)
    slow, _ = await join(hub, "slow", log)
    slow.unsent = 1000
    hub.publish(check_version("v2"))  # drops the slow one (aborted)
    log.clear()
    hub.stop()
    hub.stop()
    assert sorted(log) == [("a", CLOSED), ("b", CLOSED)]  # the close alone ends the body, once
    assert not a.aborted and not b.aborted
    assert slow.aborted and not slow.closed


async def test_a_lost_connection_is_counted_out_and_gives_its_seat_back_once() -> None:
    hub, log = make_hub(), WriteLog()
    hub.publish(check_version("v1"))
    clients = []
    for name in ("gone", "stays"):
        assert hub.row.seats.take()
        _, client = await join(hub, name, log)
        hub.adopt(client)
        clients.append(client)
    gone, stays = clients
    with capture_logs() as logs:
        gone.connection_lost(None)  # what its transport calls, once
    assert hub.clients == {stays} and gone.ended == "client went away"
    assert (hub.connections, hub.row.seats.taken()) == (1, 1)
    assert [(entry["event"], entry["reason"]) for entry in logs] == [("client disconnected", "client went away")]
    hub.stop()  # ends the other cleanly; its transport then says it is gone
    stays.connection_lost(None)
    assert (hub.connections, hub.row.seats.taken()) == (0, 0)
    await hub.closed(timeout=0)  # nothing left to wait for


async def five_clients_in_chunks_of_two() -> tuple[Hub, WriteLog, list[str]]:
    """A hub that knows v1, with five clients (their heads sent, the log cleared): a fan-out
    writes to two of them in publish() and to the other three in two more turns of the loop."""
    hub, log = make_hub(fanout_chunk=2), WriteLog()
    hub.publish(check_version("v1"))
    names = [f"c{i}" for i in range(5)]
    for name in names:
        await join(hub, name, log)
    log.clear()
    return hub, log, names


def fan_out_tasks() -> list[asyncio.Task[object]]:
    return [task for task in asyncio.all_tasks() if task.get_name() == "fan-out"]


def heard_by_client(log: WriteLog) -> dict[str, list[bytes]]:
    heard: dict[str, list[bytes]] = {}
    for name, data in log:
        heard.setdefault(name, []).append(data)
    return heard


async def test_a_fan_out_to_at_most_one_chunk_is_written_within_publish() -> None:
    hub, log = make_hub(fanout_chunk=2), WriteLog()
    hub.publish(check_version("v1"))
    await join(hub, "a", log)
    await join(hub, "b", log)
    log.clear()
    hub.publish(check_version("v2"))
    assert sorted(log) == [("a", V2), ("b", V2)]
    assert fan_out_tasks() == []


async def test_a_large_fan_out_lets_the_event_loop_run_between_its_chunks() -> None:
    hub, log, names = await five_clients_in_chunks_of_two()
    seen: list[int] = []

    async def look_each_turn() -> None:  # stands for a scrape or an accept waiting for the loop
        while len(log) < len(names):
            seen.append(len(log))
            await asyncio.sleep(0)

    looking = asyncio.create_task(look_each_turn())  # scheduled before the change
    hub.publish(check_version("v2"))
    assert len(log) == 2  # the first chunk, within publish()
    await looking
    assert seen == [2, 4]  # it ran after the first chunk and after the second, before the last
    assert sorted(log) == [(name, V2) for name in names]  # and everyone got it, once
    await eventually(lambda: not fan_out_tasks(), "the fan-out to end")


async def test_a_client_that_leaves_during_a_fan_out_is_skipped_and_one_that_joins_gets_the_event_once() -> None:
    hub, log, names = await five_clients_in_chunks_of_two()
    hub.publish(check_version("v2"))
    reached = {name for name, _ in log}
    leaving = next(client for client in hub.clients if client.peer not in reached)
    hub.leave(leaving, "client went away")
    await join(hub, "late", log)  # its head carries v2
    await eventually(lambda: not fan_out_tasks(), "the fan-out to end")
    heard = heard_by_client(log)
    assert heard.pop(leaving.peer) == [CLOSED]  # its stream's end, nothing after it
    assert heard.pop("late") == [b"head+retry: 1000\n\n" + V2]
    assert heard == {name: [V2] for name in names if name != leaving.peer}


async def test_a_newer_change_takes_over_a_fan_out_under_way_and_reaches_everyone() -> None:
    hub, log, names = await five_clients_in_chunks_of_two()
    written_before_v3: list[int] = []

    async def change_again_mid_way() -> None:
        await log.holds(4)  # two chunks of v2 written, one to go
        written_before_v3.append(len(log))
        hub.publish(check_version("v3"))

    changing = asyncio.create_task(change_again_mid_way())
    hub.publish(check_version("v2"))
    await changing
    await eventually(lambda: not fan_out_tasks(), "both fan-outs to end")
    assert written_before_v3 == [4]
    assert [data for _, data in log[4:]] == [V3] * 5  # v2's fan-out wrote nothing more
    heard = heard_by_client(log)
    assert sorted(heard) == names
    assert sorted(heard.values()) == [[V2, V3]] * 4 + [[V3]]


async def test_stop_during_a_fan_out_ends_it_and_writes_nothing_more() -> None:
    hub, log, _ = await five_clients_in_chunks_of_two()
    hub.publish(check_version("v2"))
    [fanning] = fan_out_tasks()
    hub.stop()
    with pytest.raises(asyncio.CancelledError):
        await fanning  # ended, not finished: it wrote nothing more
    assert fan_out_tasks() == []
    assert [data for _, data in log[2:]] == [CLOSED] * 5  # only the streams' ends
    worker = hub.row.table.read().workers[0]
    assert (worker.fanouts, worker.events_sent) == (2, 5 + 2)  # v1 with each head; v2 to two, counted once


async def test_each_fan_out_is_counted_once_with_what_it_wrote_and_how_long_it_took(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hub, log, _ = await five_clients_in_chunks_of_two()
    before = hub.row.table.read().workers[0]
    # A stand-in clock that moves 0.1 s a write: a fan-out's time says how many writes it lasted.
    monkeypatch.setattr(time, "perf_counter", lambda: 100 + 0.1 * len(log))

    hub.publish(check_version("v2"))  # runs to its end
    await eventually(lambda: not fan_out_tasks(), "the fan-out to end")
    worker = hub.row.table.read().workers[0]
    assert worker.fanouts - before.fanouts == 1
    assert worker.events_sent - before.events_sent == 5
    assert worker.fanout_seconds - before.fanout_seconds == pytest.approx(0.5)

    async def change_again_mid_way() -> None:
        await log.holds(5 + 4)
        hub.publish(check_version("v4"))

    changing = asyncio.create_task(change_again_mid_way())
    hub.publish(check_version("v3"))  # taken over after four writes by v4, which runs to its end
    await changing
    await eventually(lambda: not fan_out_tasks(), "the fan-outs to end")
    worker = hub.row.table.read().workers[0]
    assert worker.fanouts - before.fanouts == 3
    assert worker.events_sent - before.events_sent == 5 + 4 + 5
    assert worker.fanout_seconds - before.fanout_seconds == pytest.approx(0.5 + 0.4 + 0.5)
