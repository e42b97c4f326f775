"""Reads a live SSE response (aiohttp client) event by event, with bounded waits."""

import asyncio
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
