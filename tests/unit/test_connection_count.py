"""The connection count is read at every accept: it must not cost a walk over every connection
(at 19,000 streams a worker, a walk was 0.6 ms per accept, more than the rest of a new stream)."""

from collections.abc import Iterator
from typing import cast

from aiohttp import web

from sidecar.connections import ConnectionCount


class WatchedConnections(dict[object, object]):
    """aiohttp's server's connections, counting the walks over them."""

    walks = 0

    def __iter__(self) -> Iterator[object]:
        self.walks += 1
        return super().__iter__()


class StandInServer:
    def __init__(self, connections: WatchedConnections) -> None:
        self._connections = connections


def test_counting_does_not_walk_the_open_connections() -> None:
    connections = WatchedConnections({object(): object() for _ in range(1000)})
    count = ConnectionCount(cast(web.Server, StandInServer(connections)), lambda: 0)
    assert len(count) == 1000
    connections.popitem()
    assert len(count) == 999
    assert connections.walks == 0
