"""What the fence relies on in aiohttp and aiohttp-sse, checked on a real server: sidecar/stream.py
(the stream's response, head, unframed body and hand-over) and sidecar/connections.py (the connection count), the
only two files that use their internals (tests/static/test_house_rules.py holds the others to that).

When an upgrade changes one of these, this file fails and says which: then adapt the fence (or,
where the public API now does the job, drop it), and move the bounds in pyproject.toml.
"""

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
import uvloop
from aiohttp import web
from aiohttp_sse import EventSourceResponse

from sidecar.connections import ConnectionCount
from sidecar.stream import OpenedStream, hand_off, open_stream
from tests.waiting import eventually

EVENT = b'event: version\nid: v1\ndata: {"version": "v1"}\n\n'


async def serve(aiohttp_server: Any, handler: Any) -> Any:
    app = web.Application()
    app.router.add_get("/stream", handler)
    return await aiohttp_server(app)


async def raw_response(port: int, request: bytes, until: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    data = b""
    async with asyncio.timeout(10):
        while until not in data:
            chunk = await reader.read(65536)
            assert chunk, f"the connection ended after {data!r}"
            data += chunk
    writer.close()
    return data


async def whole_response(port: int, request: bytes) -> tuple[list[bytes], bytes]:
    """The response's head lines and body, read to the connection's clean end (a reset fails)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    async with asyncio.timeout(10):
        data = await reader.read()
    writer.close()
    head, body = data.split(b"\r\n\r\n", 1)
    return head.split(b"\r\n"), body


def unframed_head(head: list[bytes]) -> bool:
    """True if the head says the body ends at the close: no length, no chunks, the connection closed."""
    names = {line.split(b":", 1)[0].lower() for line in head[1:]}
    return b"Connection: close" in head and not names & {b"transfer-encoding", b"content-length"}


async def test_aiohttp_sse_still_starts_a_ping_task_per_stream_so_we_skip_its_prepare(aiohttp_server: Any) -> None:
    tasks: list[asyncio.Task[None] | None] = []

    async def public_api(request: web.Request) -> web.StreamResponse:
        response = EventSourceResponse()
        await response.prepare(request)
        tasks.append(response._ping_task)
        response.stop_streaming()
        return response

    server = await serve(aiohttp_server, public_api)
    await raw_response(server.port, b"GET /stream HTTP/1.1\r\nHost: t\r\n\r\n", b"\r\n\r\n")
    assert tasks and isinstance(tasks[0], asyncio.Task), "aiohttp-sse no longer pings per stream: use its prepare"


async def test_the_head_waits_for_the_first_write_and_carries_the_sse_headers(aiohttp_server: Any) -> None:
    seen: dict[str, object] = {}

    async def handler(request: web.Request) -> web.StreamResponse:
        stream = await open_stream(request)
        seen["sent before the first write"] = stream.writer.output_size
        seen["last_event_id"] = stream.response.last_event_id
        seen["keep-alive timer"] = request.protocol._keepalive_handle
        await stream.send_head_with(EVENT)
        return stream.response

    server = await serve(aiohttp_server, handler)
    request = b"GET /stream HTTP/1.1\r\nHost: t\r\nLast-Event-ID: v0\r\n\r\n"
    head, body = await whole_response(server.port, request)
    assert seen == {"sent before the first write": 0, "last_event_id": "v0", "keep-alive timer": None}
    for header in [b"Content-Type: text/event-stream", b"Cache-Control: no-cache", b"X-Accel-Buffering: no"]:
        assert header in head, head
    assert body == EVENT


async def test_the_body_is_unframed_and_ends_at_the_close_in_http_1_1_and_1_0(aiohttp_server: Any) -> None:
    # With `_length_check` off aiohttp neither chunks a body of unknown length nor sets its length,
    # and the response it sees ends the connection (its handler returns here, as ours never does).
    async def handler(request: web.Request) -> web.StreamResponse:
        stream = await open_stream(request)
        await stream.send_head_with(b"first\n\n")
        await stream.writer.write(EVENT)  # aiohttp's own writer ...
        stream.transport.write(EVENT)  # ... and ours, straight to the transport
        return stream.response

    server = await serve(aiohttp_server, handler)
    for version in [b"1.1", b"1.0"]:
        head, body = await whole_response(server.port, b"GET /stream HTTP/" + version + b"\r\nHost: t\r\n\r\n")
        assert head[0] == b"HTTP/" + version + b" 200 OK" and unframed_head(head), head
        assert body == b"first\n\n" + EVENT + EVENT, (version, body)


async def test_the_connection_count_sees_aiohttps_connections_and_spares_streams(aiohttp_server: Any) -> None:
    opened: list[OpenedStream] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        stream = await open_stream(request)
        await stream.send_head_with(EVENT)
        opened.append(stream)
        await asyncio.Event().wait()  # a stream's request stays in progress
        return stream.response

    server = await serve(aiohttp_server, handler)
    count = ConnectionCount(server.runner.server, lambda: 0)
    _stream_reader, stream_writer = await asyncio.open_connection("127.0.0.1", server.port)
    stream_writer.write(b"GET /stream HTTP/1.1\r\nHost: t\r\n\r\n")
    await eventually(lambda: opened, "the stream to open")
    idle_reader, idle_writer = await asyncio.open_connection("127.0.0.1", server.port)
    await eventually(lambda: len(count) == 2, "aiohttp to hold two connections")
    assert count.close_oldest_idle()
    assert len(count) == 1  # counted as gone at once
    assert await asyncio.wait_for(idle_reader.read(), 10) == b""  # the idle one was closed ...
    assert not opened[0].transport.is_closing()  # ... and the stream, older, was spared
    assert not count.close_oldest_idle()
    for writer in (stream_writer, idle_writer):
        writer.close()


async def test_the_connection_count_adds_the_streams_handed_over(aiohttp_server: Any) -> None:
    async def idle(request: web.Request) -> web.Response:
        return web.Response()

    server = await serve(aiohttp_server, idle)
    streams = [3]
    count = ConnectionCount(server.runner.server, lambda: streams[0])
    _idle_reader, idle_writer = await asyncio.open_connection("127.0.0.1", server.port)
    await eventually(lambda: len(count) == 4, "aiohttp's connection and three streams")
    streams[0] = 0
    assert len(count) == 1
    idle_writer.close()


class Taker(asyncio.Protocol):
    """What takes a connection over from aiohttp: records what reaches it."""

    def __init__(self) -> None:
        self.received = b""
        self.lost = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        self.received += data

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost.set_result(exc)


async def _hand_over_and_use() -> dict[str, object]:
    """A stream handed over on a real server of the running loop, and what both ends saw."""
    seen: dict[str, object] = {}
    taker = Taker()
    taken = asyncio.get_running_loop().create_future()

    async def handler(request: web.Request) -> web.StreamResponse:
        stream = await open_stream(request)
        await stream.send_head_with(EVENT)
        server = request.protocol._manager
        assert server is not None
        seen["handed over"] = hand_off(request, taker)
        seen["aiohttp's connections after"] = len(server.connections)  # at once, not when the task ends
        seen["aiohttp's handler's transport"] = request.protocol.transport
        taken.set_result(stream.transport)
        raise asyncio.CancelledError  # as sidecar/app.py does: nothing may finish the response

    app = web.Application()
    app.router.add_get("/stream", handler)
    runner = web.AppRunner(app, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /stream HTTP/1.1\r\nHost: t\r\n\r\n")
        async with asyncio.timeout(10):
            transport = await taken
            head = b""
            while EVENT not in head:
                head += await reader.read(65536)
            writer.write(b"ignored by the taker")
            await eventually(lambda: taker.received, "the taker to receive the client's bytes")
            seen["protocol"] = transport.get_protocol() is taker
            transport.write(EVENT)  # still open, and ours to write to ...
            transport.close()  # ... and to end: what is written, then the close
            more = await reader.read()  # to the end (a reset would raise)
            seen["lost"] = await taker.lost
            writer.close()
    finally:
        await runner.cleanup()
    head, body = head.split(b"\r\n\r\n", 1)
    seen["unframed head"] = unframed_head(head.split(b"\r\n"))
    seen["body"] = body + more
    seen["received"] = taker.received
    return seen


@pytest.mark.parametrize("new_loop", [asyncio.new_event_loop, uvloop.new_event_loop], ids=["asyncio", "uvloop"])
def test_a_connection_handed_over_is_forgotten_by_aiohttp_and_left_open_and_untouched(
    new_loop: Callable[[], asyncio.AbstractEventLoop],
) -> None:
    # The sidecar runs on uvloop when it is installed (the benchmark, production), pytest-aiohttp on asyncio.
    with asyncio.Runner(loop_factory=new_loop) as runner:
        seen = runner.run(_hand_over_and_use())
    assert seen == {
        "handed over": True,
        "aiohttp's connections after": 0,
        "aiohttp's handler's transport": None,
        "protocol": True,
        "lost": None,
        "unframed head": True,
        "body": EVENT + EVENT,  # nothing from aiohttp after the hand-over: the taker's close ends it
        "received": b"ignored by the taker",
    }


async def test_a_connection_aiohttp_has_heard_is_gone_is_not_handed_over(aiohttp_server: Any) -> None:
    outcome = asyncio.get_running_loop().create_future()

    async def handler(request: web.Request) -> web.StreamResponse:
        stream = await open_stream(request)
        await stream.send_head_with(EVENT)
        stream.transport.abort()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:  # aiohttp has heard of the loss
            outcome.set_result(hand_off(request, Taker()))
            raise
        return stream.response

    server = await serve(aiohttp_server, handler)
    _reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /stream HTTP/1.1\r\nHost: t\r\n\r\n")
    assert await asyncio.wait_for(outcome, 10) is False
    writer.close()
