"""A version stream on the wire: its response, its head, and its events as they are.

The public APIs give a stream a task and a timer per connection and re-frame each event per
client, which at the sizes we serve is most of the memory and fan-out time (bench/RESULTS.md).
So, narrowly, and only here (with connections.py, the one other place that leans on aiohttp's
internals):
- aiohttp-sse's EventSourceResponse gives the stream its headers and Last-Event-ID, but its
  prepare() would start a ping task per connection (our hub has one shared heartbeat): we run
  aiohttp's own StreamResponse.prepare instead, and hold the head back until the first write
  (aiohttp's `_send_headers_immediately`), so head and first event leave in one send.
- The body has no framing, in HTTP/1.1 as in 1.0: it ends when the connection closes (the head
  says `Connection: close`; aiohttp's `_length_check` off, as for its WebSockets, or it would
  chunk it). So each event goes on the wire as it is, written once to every transport, and a
  proxy or browser reads it without de-chunking it.
- aiohttp arms a keep-alive timer per connection, which a stream never needs.
- Once the head is out, aiohttp holds per stream what only the request needed (its handler and
  parser, the parsed request, the writer, the response, two tasks: most of a stream's memory,
  bench/RESULTS.md): the connection is handed over to our own protocol (the Client) and aiohttp
  made to forget it, without writing to it or closing it.
tests/http/test_aiohttp_internals.py fails when an upgrade changes any of this; pyproject.toml
bounds aiohttp and aiohttp-sse to the releases it has passed on.
"""

import asyncio
from dataclasses import dataclass

from aiohttp import web
from aiohttp.http_writer import StreamWriter
from aiohttp_sse import EventSourceResponse


class VersionStream(EventSourceResponse):
    """aiohttp-sse's stream response (its headers, Last-Event-ID) without its ping task, and with
    a body that ends at the connection's close."""

    _send_headers_immediately = False
    _length_check = False  # no Content-Length, and no chunked framing in its stead

    async def prepare(self, request: web.BaseRequest) -> StreamWriter:
        # aiohttp-sse says keep-alive, but a stream's connection never serves another request, and
        # without framing its close is what ends the body: the head says so, and aiohttp is told.
        self.headers["Connection"] = "close"
        self.force_close()
        writer = await web.StreamResponse.prepare(self, request)
        assert isinstance(writer, StreamWriter)
        return writer


@dataclass(frozen=True, slots=True)
class OpenedStream:
    """A prepared stream whose head has not left yet."""

    response: VersionStream
    writer: StreamWriter
    transport: asyncio.Transport

    async def send_head_with(self, data: bytes) -> None:
        """The head and `data` in one send; never waits for the peer."""
        await self.writer.write(data, drain=False)


def hand_off(request: web.BaseRequest, protocol: asyncio.Protocol) -> bool:
    """Give `request`'s connection to `protocol`, and make aiohttp forget it (its server's
    connections, its handler, parser and request) without a byte written or the connection closed;
    False, with nothing done, if aiohttp has already heard that it is gone. The request's handler
    must then end cancelled, so that nothing finishes the response."""
    handler = request.protocol
    transport = handler.transport
    if transport is None:
        return False
    transport.set_protocol(protocol)
    # Forgotten at once, not when its task ends (the connection ceiling counts it with the streams).
    assert handler._manager is not None
    del handler._manager._connections[handler]
    handler.transport = None  # so that what follows neither writes to the connection nor closes it
    handler.connection_lost(None)  # drops its parser, timers and request
    return True


async def open_stream(request: web.Request) -> OpenedStream:
    response = VersionStream()
    writer = await response.prepare(request)
    request.protocol.keep_alive(True)  # cancels the connection's keep-alive timer
    assert request.transport is not None
    return OpenedStream(response, writer, request.transport)
