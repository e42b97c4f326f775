"""What the fence relies on in aiohttp and aiohttp-sse, checked on a real server: sidecar/stream.py
(the stream's response, head and framing) and sidecar/connections.py (the connection count), the
only two files that use their internals (tests/static/test_house_rules.py holds the others to that).

When an upgrade changes one of these, this file fails and says which: then adapt the fence (or,
where the public API now does the job, drop it), and move the bounds in pyproject.toml.
"""

import asyncio
from typing import Any

from aiohttp import web
from aiohttp_sse import EventSourceResponse

from sidecar.connections import ConnectionCount
from sidecar.stream import Framed, OpenedStream, open_stream
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
        seen["chunked"] = stream.chunked
        seen["last_event_id"] = stream.response.last_event_id
        seen["keep-alive timer"] = request.protocol._keepalive_handle
        await stream.send_head_with(EVENT)
        return stream.response

    server = await serve(aiohttp_server, handler)
    request = b"GET /stream HTTP/1.1\r\nHost: t\r\nLast-Event-ID: v0\r\n\r\n"
    data = await raw_response(server.port, request, b"\r\n0\r\n\r\n")
    head, body = data.split(b"\r\n\r\n", 1)
    assert seen == {"sent before the first write": 0, "chunked": True, "last_event_id": "v0", "keep-alive timer": None}
    for header in [b"Content-Type: text/event-stream", b"Cache-Control: no-cache", b"X-Accel-Buffering: no"]:
        assert header in head.split(b"\r\n"), head
    assert b"Transfer-Encoding: chunked" in head.split(b"\r\n")
    assert body.startswith(Framed.of(EVENT).chunked)


async def test_an_event_framed_once_is_what_aiohttps_writer_would_send(aiohttp_server: Any) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        stream = await open_stream(request)
        await stream.send_head_with(b"first\n\n")
        await stream.writer.write(EVENT)  # aiohttp's own framing ...
        stream.transport.write(Framed.of(EVENT).chunked if stream.chunked else EVENT)  # ... and ours
        return stream.response

    server = await serve(aiohttp_server, handler)
    for version, framed in [(b"1.1", Framed.of(EVENT).chunked), (b"1.0", Framed.of(EVENT).plain)]:
        request = b"GET /stream HTTP/" + version + b"\r\nHost: t\r\n\r\n"
        data = await raw_response(server.port, request, framed + framed)
        body = data.split(b"\r\n\r\n", 1)[1]
        assert body.endswith(framed + framed) or body.endswith(framed + framed + b"0\r\n\r\n"), (version, body)


async def test_the_connection_count_sees_aiohttps_connections_and_spares_streams(aiohttp_server: Any) -> None:
    opened: list[OpenedStream] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        stream = await open_stream(request)
        await stream.send_head_with(EVENT)
        opened.append(stream)
        await asyncio.Event().wait()  # a stream's request stays in progress
        return stream.response

    server = await serve(aiohttp_server, handler)
    count = ConnectionCount(server.runner.server)
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
