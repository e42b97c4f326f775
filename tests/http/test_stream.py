"""GET /events/version over real HTTP: headers, first event, heartbeat, fan-out, retry jitter."""

import asyncio
import gc
import json
import os
import re
from collections.abc import Callable
from functools import partial

import pytest
from aiohttp.http_writer import StreamWriter
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from sidecar.sources import Found
from sidecar.sse import encode_version_event
from sidecar.version import check_version
from tests.http.conftest import MakeSidecar, Sidecar
from tests.waiting import eventually


async def test_stream_headers_defeat_proxy_buffering(make_sidecar: MakeSidecar) -> None:
    sidecar = await make_sidecar()
    response = await sidecar.client.get("/events/version")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    assert response.headers["Cache-Control"] == "no-cache"
    assert response.headers["X-Accel-Buffering"] == "no"
    response.close()


async def test_version_arrives_at_once_with_a_retry_field(make_sidecar: MakeSidecar) -> None:
    sidecar = await make_sidecar("v1", heartbeat=3600, retry=1000, retry_jitter=500)
    stream = await sidecar.open_stream()
    # The heartbeat is an hour away: this event can only be the one sent on connect.
    assert await stream.next_version() == "v1"
    assert stream.parser.retry is not None and 1000 <= stream.parser.retry <= 1500


async def test_retry_is_jittered_per_client(make_sidecar: MakeSidecar) -> None:
    sidecar = await make_sidecar(retry=1000, retry_jitter=1_000_000)
    retries = set()
    for _ in range(5):
        stream = await sidecar.open_stream()
        await stream.next_version()
        retries.add(stream.parser.retry)
    assert len(retries) > 1, retries


async def test_the_jitter_window_widens_with_the_streams_the_host_holds(make_sidecar: MakeSidecar) -> None:
    # Taking back one stream a second, a host of n streams spreads them over n seconds.
    sidecar = await make_sidecar(retry=1000, retry_jitter=0, reconnect_rate=1)
    retries = []
    for held in range(1, 11):
        stream = await sidecar.open_stream()
        await stream.next_version()
        assert stream.parser.retry is not None and 1000 <= stream.parser.retry <= 1000 + held * 1000
        retries.append(stream.parser.retry)
    assert max(retries) > 1000, retries  # a --retry-jitter of 0 alone would give 1000 to all


async def test_heartbeat_resends_the_current_version(make_sidecar: MakeSidecar) -> None:
    sidecar = await make_sidecar("v7", heartbeat=0.1)
    stream = await sidecar.open_stream()
    assert [await stream.next_version() for _ in range(3)] == ["v7", "v7", "v7"]


async def test_each_heartbeat_tells_the_stream_a_fresh_retry_before_the_version(make_sidecar: MakeSidecar) -> None:
    sidecar = await make_sidecar("v7", heartbeat=0.1, retry=1000, retry_jitter=500)
    reader, writer = await asyncio.open_connection("127.0.0.1", sidecar.client.port)
    writer.write(b"GET /events/version HTTP/1.0\r\n\r\n")  # HTTP/1.0: the body as it is, no chunks
    event = b'event: version\nid: v7\ndata: {"version": "v7"}\n\n'
    data = b""
    async with asyncio.timeout(10):
        while data.count(event) < 3:  # the first event and two heartbeats
            chunk = await reader.read(65536)
            assert chunk, f"the stream ended after {data!r}"
            data += chunk
    writer.close()
    body = data.split(b"\r\n\r\n", 1)[1]
    blocks = re.match((rb"retry: (\d+)\n\n" + re.escape(event)) * 3, body)  # each event after its own retry
    assert blocks is not None, body
    assert all(1000 <= int(delay) <= 1500 for delay in blocks.groups()), blocks.groups()


async def test_one_shared_heartbeat_task_however_many_clients(make_sidecar: MakeSidecar) -> None:
    sidecar = await make_sidecar(heartbeat=0.1)
    tasks_without_streams = len(asyncio.all_tasks())
    streams = [await sidecar.open_stream() for _ in range(20)]
    for stream in streams:
        await stream.next_version()
    # Once open, a stream costs no task: aiohttp's two per connection end when it is handed over
    # (stream.py), and aiohttp-sse's public prepare would add a ping task per stream.
    await eventually(lambda: len(asyncio.all_tasks()) == tasks_without_streams, "the requests' tasks to end")
    assert [task.get_name() for task in asyncio.all_tasks()].count("heartbeat") == 1
    for stream in streams:  # and the shared heartbeat serves them all
        await stream.next_version()


async def test_a_change_reaches_every_client(make_sidecar: MakeSidecar) -> None:
    sidecar = await make_sidecar("v1", heartbeat=3600)
    streams = [await sidecar.open_stream() for _ in range(50)]
    for stream in streams:
        assert await stream.next_version() == "v1"
    sidecar.publish("v2")
    for stream in streams:
        assert await stream.next_version() == "v2"


async def test_healthz_answers_while_a_fan_out_waits_between_chunks_and_every_stream_gets_the_change(
    make_sidecar: MakeSidecar, monkeypatch: pytest.MonkeyPatch
) -> None:
    sidecar = await make_sidecar("v1", heartbeat=3600)
    sidecar.hub.fanout_chunk = 2
    streams = [await sidecar.open_stream() for _ in range(6)]
    for stream in streams:
        assert await stream.next_version() == "v1"
    between_chunks, go_on = asyncio.Event(), asyncio.Event()
    real_sleep = asyncio.sleep

    async def held_between_chunks(delay: float) -> None:
        # Only the fan-out's turns are held (until the probe has its answer), to make the moment certain.
        task = asyncio.current_task()
        if task is None or task.get_name() != "fan-out":
            return await real_sleep(delay)
        between_chunks.set()
        await go_on.wait()

    monkeypatch.setattr(asyncio, "sleep", held_between_chunks)
    sidecar.publish("v2")
    await eventually(between_chunks.is_set, "the fan-out to wait between two chunks")
    health = await sidecar.health()  # a real request on a real connection, served meanwhile
    assert not go_on.is_set() and (health["version"], health["clients"]) == ("v2", 6)
    go_on.set()
    for stream in streams:
        assert await stream.next_version() == "v2"


async def test_the_same_version_again_is_not_a_change(make_sidecar: MakeSidecar) -> None:
    sidecar = await make_sidecar("v1", heartbeat=3600)
    assert not sidecar.hub.publish(check_version("v1"))


async def test_file_rewritten_in_place_is_announced(make_sidecar: MakeSidecar) -> None:
    sidecar = await make_sidecar("v1", heartbeat=3600)
    streams = [await sidecar.open_stream() for _ in range(3)]
    sidecar.version_file.write_text("v2\n")
    for stream in streams:
        await stream.wait_for_version("v2")


async def test_file_replaced_by_atomic_rename_is_announced(make_sidecar: MakeSidecar) -> None:
    sidecar = await make_sidecar("v1", heartbeat=3600)
    stream = await sidecar.open_stream()
    assert await stream.next_version() == "v1"
    for version in ["v2", "v3"]:
        staged = sidecar.version_file.with_name(".version.tmp")
        staged.write_text(f"  {version}\n")
        os.replace(staged, sidecar.version_file)
        await stream.wait_for_version(version)


async def degraded_with(sidecar: Sidecar, problem: str) -> dict[str, object] | None:
    health = await sidecar.health()
    return health if health["status"] == "degraded" and problem in str(health["problem"]) else None


async def test_file_gone_or_invalid_keeps_the_last_good_version(make_sidecar: MakeSidecar) -> None:
    sidecar = await make_sidecar("v1", heartbeat=0.05)
    stream = await sidecar.open_stream()
    faults: list[tuple[Callable[[], object], str]] = [
        (sidecar.version_file.unlink, "no such file"),
        (lambda: sidecar.version_file.write_text("bad\nversion\x00"), "contains the non-printable character"),
        (lambda: sidecar.version_file.write_text(""), "the file is empty"),
        (lambda: sidecar.version_file.write_text("x" * 500), "is 500 characters long"),
    ]
    for fault, problem in faults:
        fault()
        health = await eventually(partial(degraded_with, sidecar, problem), f"/healthz to read degraded: {problem}")
        assert health["version"] == "v1"
    sidecar.version_file.write_text("v2")
    await stream.wait_for_version("v2")
    assert {event.last_event_id for event in stream.parser.events} == {"v1", "v2"}
    assert await sidecar.health() == {"status": "ok", "version": "v2", "clients": 1, "source": "file", "problem": None}


async def test_release_notes_and_the_required_flag_reach_the_stream_in_the_event_data(
    make_sidecar: MakeSidecar,
) -> None:
    sidecar = await make_sidecar("v1")
    stream = await sidecar.open_stream()
    assert json.loads((await stream.next_event()).data) == {"version": "v1"}
    sidecar.publish(Found("v2", "https://example.com/notes/v2", "true"))
    event = await stream.next_event()
    assert json.loads(event.data) == {"version": "v2", "notes": "https://example.com/notes/v2", "required": True}
    sidecar.publish(Found("v3", "data:text/html,hi", "no"))  # both dropped, the version still goes out
    assert (await stream.next_event()).data == '{"version": "v3"}'


async def test_an_open_stream_is_handed_over_and_aiohttp_keeps_nothing_of_its_request(
    make_sidecar: MakeSidecar,
) -> None:
    # aiohttp's per-request objects (handler, parser, request, writer, response, tasks) are most
    # of a stream's memory once held for its life (bench/RESULTS.md): none of them may stay.
    sidecar = await make_sidecar(heartbeat=3600)
    streams = [await sidecar.open_stream() for _ in range(20)]
    for stream in streams:
        assert await stream.next_version() == "v1"
    assert sidecar.client.server.runner is not None and sidecar.client.server.runner.server is not None
    assert sidecar.client.server.runner.server.connections == []  # aiohttp knows none of them
    assert sidecar.hub.connections == 20
    gc.collect()
    left = [type(o).__name__ for o in gc.get_objects() if isinstance(o, (RequestHandler, BaseRequest, StreamWriter))]
    assert left == []
    sidecar.publish("v2")  # and each is still served
    for stream in streams:
        await stream.wait_for_version("v2")
    assert not [task for task in asyncio.all_tasks() if "RequestHandler" in repr(task)]


async def test_a_stream_is_unframed_and_a_server_stop_ends_it_with_a_close_after_its_events(
    make_sidecar: MakeSidecar,
) -> None:
    sidecar = await make_sidecar(heartbeat=3600)
    streams = []
    for version in [b"1.1", b"1.0"]:
        reader, writer = await asyncio.open_connection("127.0.0.1", sidecar.client.port)
        writer.write(b"GET /events/version HTTP/" + version + b"\r\nHost: sidecar\r\n\r\n")
        streams.append((version, reader, writer))
    await eventually(lambda: sidecar.hub.connections == 2, "both streams to open")
    sidecar.publish("v2")
    assert sidecar.client.server.runner is not None
    await sidecar.client.server.runner.cleanup()  # what a stop signal does (server.py)
    for version, reader, writer in streams:
        async with asyncio.timeout(10):
            data = await reader.read()  # to the end of the connection: a reset would raise
        writer.close()
        head, body = data.split(b"\r\n\r\n", 1)
        lines = head.split(b"\r\n")
        assert lines[0] == b"HTTP/" + version + b" 200 OK" and b"Connection: close" in lines, head
        names = {line.split(b":", 1)[0].lower() for line in lines[1:]}
        assert not names & {b"transfer-encoding", b"content-length"}, head  # the close ends the body
        retry, events = body.split(b"\n\n", 1)
        assert retry.startswith(b"retry: "), body
        # Each event as it is, and nothing after the last: not a byte of framing.
        assert events == encode_version_event(check_version("v1")) + encode_version_event(check_version("v2")), body
