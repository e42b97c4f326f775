"""Every place the sidecar leans on aiohttp's or aiohttp-sse's internals, and why.

The public APIs give a stream a task and a timer per connection and re-frame each event per
client; at 19,000 streams that is most of the memory and fan-out time (bench/RESULTS.md). So,
narrowly, and only here:
- aiohttp-sse's EventSourceResponse gives the stream its headers and Last-Event-ID, but its
  prepare() would start a ping task per connection (our hub has one shared heartbeat): we run
  aiohttp's own StreamResponse.prepare instead, and hold the head back until the first write
  (aiohttp's `_send_headers_immediately`), so head and first event leave in one send.
- After that first write through aiohttp's StreamWriter, each event is framed once (HTTP/1.1
  chunked framing included, byte for byte what StreamWriter.write sends) and written straight
  to every transport.
- aiohttp arms a keep-alive timer per connection, which a stream never needs.
- The connection ceiling (server.py) counts aiohttp's open connections at every accept (its
  public `connections` builds a list each time, so the count is read from the dict behind it),
  and at the ceiling closes the oldest connection with no request in progress.
tests/unit/test_aiohttp_internals.py fails when an upgrade changes any of this; pyproject.toml
bounds aiohttp and aiohttp-sse to the releases it has passed on.
"""

import asyncio
from dataclasses import dataclass

from aiohttp import web
from aiohttp.http_writer import StreamWriter
from aiohttp_sse import EventSourceResponse


class VersionStream(EventSourceResponse):
    """aiohttp-sse's stream response (its headers, Last-Event-ID) without its ping task."""

    _send_headers_immediately = False

    async def prepare(self, request: web.BaseRequest) -> StreamWriter:
        writer = await web.StreamResponse.prepare(self, request)
        assert isinstance(writer, StreamWriter)
        return writer


@dataclass(frozen=True, slots=True)
class Framed:
    """One event as it goes on the wire: plain (HTTP/1.0) and as one HTTP/1.1 chunk."""

    plain: bytes
    chunked: bytes

    @classmethod
    def of(cls, payload: bytes) -> "Framed":
        return cls(payload, b"%x\r\n%b\r\n" % (len(payload), payload))


@dataclass(frozen=True, slots=True)
class OpenedStream:
    """A prepared stream whose head has not left yet."""

    response: VersionStream
    writer: StreamWriter
    transport: asyncio.Transport
    chunked: bool  # HTTP/1.1 chunked framing (known once prepared)

    async def send_head_with(self, data: bytes) -> None:
        """The head and `data` in one send; never waits for the peer."""
        await self.writer.write(data, drain=False)


async def open_stream(request: web.Request) -> OpenedStream:
    response = VersionStream()
    writer = await response.prepare(request)
    request.protocol.keep_alive(True)  # cancels the connection's keep-alive timer
    assert request.transport is not None
    return OpenedStream(response, writer, request.transport, writer.chunked)


class ConnectionCount:
    """How many connections a server holds open, counting one it has just closed as gone at once
    (aiohttp forgets a connection only once its handler task has finished, an iteration later)."""

    def __init__(self, server: web.Server) -> None:
        self._server = server
        self._closing: set[object] = set()  # closed by close_oldest_idle, not yet forgotten

    def __len__(self) -> int:
        open_now = self._server._connections  # its public `connections` copies them into a list
        self._closing.intersection_update(open_now)
        return len(open_now) - len(self._closing)

    def close_oldest_idle(self) -> bool:
        """Close the longest-open connection that has no request in progress (a stream always
        has one); False if there is none."""
        for handler, transport in self._server._connections.items():  # in the order they opened
            if not handler._request_in_progress and handler not in self._closing:
                transport.abort()
                self._closing.add(handler)
                return True
        return False
