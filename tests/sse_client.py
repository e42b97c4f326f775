"""Reads a live SSE stream event by event, with bounded waits: in the event loop (aiohttp client)
or blocking (http.client, as curl -N would)."""

import asyncio
import http.client
import json

import aiohttp

from tests.sse_parser import Event, SSEParser


class StreamReader:
    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response
        self.parser = SSEParser()
        self._next = 0

    async def next_event(self, timeout: float = 10.0) -> Event:
        """The next complete event; fails the test if none arrives within `timeout` seconds."""
        async with asyncio.timeout(timeout):
            while self._next >= len(self.parser.events):
                chunk = await self.response.content.readany()
                if not chunk:
                    raise AssertionError("the stream ended")
                self.parser.feed(chunk.decode())
        event = self.parser.events[self._next]
        self._next += 1
        return event

    async def next_version(self, timeout: float = 10.0) -> str:
        event = await self.next_event(timeout)
        assert event.type == "version", event
        version: str = json.loads(event.data)["version"]
        assert event.last_event_id == version
        return version

    async def wait_for_version(self, wanted: str, timeout: float = 10.0) -> None:
        """Read events until `wanted` is announced (heartbeats of the old one may come first)."""
        async with asyncio.timeout(timeout):
            while await self.next_version(timeout) != wanted:
                pass


class BlockingStream:
    """A plain blocking HTTP client on the stream, as curl -N would be."""

    def __init__(self, port: int, path: str = "/events/version") -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        self.connection.request("GET", path)
        self.response = self.connection.getresponse()
        self.parser = SSEParser()
        self.read = 0

    def versions(self, count: int) -> list[str]:
        """The next `count` versions announced on this stream."""
        while len(self.parser.events) < self.read + count:
            chunk = self.response.read1(65536)
            assert chunk, "the stream ended early"
            self.parser.feed(chunk.decode())
        new = self.parser.events[self.read : self.read + count]
        self.read += count
        return [event.last_event_id for event in new]

    def wait_for_version(self, wanted: str) -> None:
        """Read until `wanted` is announced (heartbeats of the old one may come first); the
        connection's 10 s timeout bounds each read."""
        while self.versions(1) != [wanted]:
            pass

    def close(self) -> None:
        self.response.close()  # it holds the socket: the stream says Connection: close
        self.connection.close()
