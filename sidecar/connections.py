"""The connection ceiling's count: how many connections aiohttp holds open, and room made by
closing the oldest idle one.

aiohttp's public `connections` builds a list at every call, and the count is read at every
accept, so it is read from the dict behind it: with stream.py, the one place that leans on
aiohttp's internals. tests/http/test_aiohttp_internals.py fails when an upgrade changes them.
"""

from aiohttp import web


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
