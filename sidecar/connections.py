"""The connection ceiling: at most so many open connections (aiohttp's, and the streams it has
handed over to their clients), so that a burst of them can never take the last descriptors from
the version source; at the ceiling, the oldest idle connection makes room (the newcomer may be
/healthz), else the newcomer is closed at once.

aiohttp's public `connections` builds a list at every call, and the count is read at every
accept, so it is read from the dict behind it: with stream.py, the one place that leans on
aiohttp's internals. tests/http/test_aiohttp_internals.py fails when an upgrade changes them.
"""

import asyncio
from collections.abc import Callable

from aiohttp import web

from .logs import NOISE


class ConnectionCount:
    """How many connections are open: a server's, counting one it has just closed as gone at once
    (aiohttp forgets a connection only once its handler task has finished, an iteration later),
    and the `streams()` it has handed over."""

    def __init__(self, server: web.Server, streams: Callable[[], int]) -> None:
        self._server = server
        self._streams = streams
        self._closing: set[object] = set()  # closed by close_oldest_idle, not yet forgotten

    def __len__(self) -> int:
        open_now = self._server._connections  # its public `connections` copies them into a list
        if self._closing:  # walk those closed here, never every open one (intersection_update would)
            self._closing = {handler for handler in self._closing if handler in open_now}
        return len(open_now) - len(self._closing) + self._streams()

    def close_oldest_idle(self) -> bool:
        """Close the longest-open connection of aiohttp's that has no request in progress (streams
        are not aiohttp's once they are open); False if there is none."""
        for handler, transport in self._server._connections.items():  # in the order they opened
            if not handler._request_in_progress and handler not in self._closing:
                transport.abort()
                self._closing.add(handler)
                return True
        return False


class _CloseAtOnce(asyncio.Protocol):
    """What a connection over the ceiling gets: closed before it can hold a descriptor."""

    def __init__(self, ceiling: int) -> None:
        self.ceiling = ceiling

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.abort()
        NOISE.log_summarised(
            "connection closed at once: too many open connections", open_connections_at_most=self.ceiling
        )


def ceiling_protocol(
    server: web.Server, streams: Callable[[], int], ceiling: int
) -> Callable[[], asyncio.BaseProtocol]:
    """The protocol factory of the listening socket: aiohttp's, under `ceiling` open connections
    (`streams()`: those handed over from aiohttp)."""
    connections = ConnectionCount(server, streams)

    def protocol() -> asyncio.BaseProtocol:
        # At the ceiling, an idle connection makes room: the newcomer may be /healthz.
        if len(connections) >= ceiling:
            if not connections.close_oldest_idle():
                return _CloseAtOnce(ceiling)
            NOISE.log_summarised("idle connection closed to make room", open_connections_at_most=ceiling)
        return server()

    return protocol
