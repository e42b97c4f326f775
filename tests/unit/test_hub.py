"""The hub's fan-out and heartbeat, on stand-in transports (our own logic only)."""

import asyncio
from typing import cast

from aiohttp.http_writer import StreamWriter

from sidecar.hub import Hub


class WriteLog(list[tuple[str, bytes]]):
    """(client, bytes) in the order the hub wrote them; `grew` is set at each write."""

    def __init__(self) -> None:
        super().__init__()
        self.grew = asyncio.Event()

    def append(self, item: tuple[str, bytes]) -> None:
        super().append(item)
        self.grew.set()


class RecordingTransport:
    """Records what the hub writes; `unsent` plays the kernel's send buffer."""

    def __init__(self, name: str, log: WriteLog) -> None:
        self.name, self.log = name, log
        self.unsent = 0
        self.aborted = False

    def write(self, data: bytes) -> None:
        self.log.append((self.name, data))

    def is_closing(self) -> bool:
        return self.aborted

    def get_write_buffer_size(self) -> int:
        return self.unsent

    def abort(self) -> None:
        self.aborted = True

    def get_extra_info(self, name: str) -> None:
        return None


class RecordingWriter:
    """Stands in for aiohttp's StreamWriter on the first write of a stream."""

    def __init__(self, transport: RecordingTransport, chunked: bool) -> None:
        self.transport, self.chunked = transport, chunked

    async def write(self, data: bytes, *, drain: bool = True) -> None:
        self.transport.write(b"first:" + data)


def make_hub(heartbeat: float) -> Hub:
    return Hub(heartbeat=heartbeat, retry=1000, retry_jitter=0, max_clients=100, max_buffer=100, send_timeout=5)


async def join(hub: Hub, name: str, log: WriteLog, chunked: bool = True) -> RecordingTransport:
    transport = RecordingTransport(name, log)
    writer = cast(StreamWriter, RecordingWriter(transport, chunked))
    await hub.join(writer, cast(asyncio.Transport, transport), name, None)
    return transport


async def test_a_change_is_framed_once_and_written_to_every_client() -> None:
    hub, log = make_hub(heartbeat=3600), WriteLog()
    hub.publish("v1", source="test")
    await join(hub, "chunked", log)
    await join(hub, "plain", log, chunked=False)
    log.clear()
    hub.publish("v2", source="test")
    event = b'event: version\nid: v2\ndata: {"version": "v2"}\n\n'
    assert sorted(log) == [("chunked", b"%x\r\n%b\r\n" % (len(event), event)), ("plain", event)]


async def test_a_client_too_far_behind_is_dropped_and_the_others_served() -> None:
    hub, log = make_hub(heartbeat=3600), WriteLog()
    slow = await join(hub, "slow", log)
    await join(hub, "quick", log)
    slow.unsent = 1000
    log.clear()
    hub.publish("v1", source="test")
    assert slow.aborted and len(hub.clients) == 1
    assert [name for name, _ in log] == ["slow", "quick"] or [name for name, _ in log] == ["quick", "slow"]


async def test_the_heartbeat_serves_one_slice_of_the_clients_per_tick() -> None:
    hub, log = make_hub(heartbeat=2), WriteLog()  # two slices, one a second
    hub.publish("v1", source="test")
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
        await hub.stop()
    slot = {name: index % 2 for index, name in enumerate(names)}  # given in turn as they joined
    assert len({slot[name] for name, _ in log[:3]}) == 1  # the first three writes: one slice
    assert sorted(name for name, _ in log[:6]) == names  # then the other slice: everyone once
