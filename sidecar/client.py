"""One connected stream: its writes, its end, and the rules that drop it when it stops reading.

A client owns its back-pressure: a write never waits for the peer (so one slow tab cannot hold
up the others), and a peer that leaves too much unsent, or leaves data waiting too long, is
aborted (a graceful close would wait on the very peer that does not read).

Once its head is sent, a client is also its connection's protocol (stream.py hands the connection
over from aiohttp, which forgets it): whatever the peer sends is ignored, its end of file closes
the connection, pauses of writing change nothing (the drop rules read the buffer's size), and the
connection's loss is told to the hub, once.
"""

import asyncio
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .stream import OpenedStream

# Linux only: the kernel aborts a connection whose sent data stays unacknowledged this long.
_TCP_USER_TIMEOUT = getattr(socket, "TCP_USER_TIMEOUT", None)


@dataclass(frozen=True, slots=True)
class DropRules:
    """When a client that does not read is dropped."""

    max_buffer: int  # bytes it may leave unsent
    send_timeout: float  # seconds its unsent (or, by the kernel, unacknowledged) data may wait


class Client(asyncio.Protocol):
    __slots__ = (
        "dropped",
        "ended",
        "heartbeat_slice",
        "lost",
        "peer",
        "rules",
        "transport",
        "waiting",
        "waiting_since",
    )

    def __init__(
        self,
        stream: OpenedStream,
        peer: str,
        heartbeat_slice: int,
        rules: DropRules,
        waiting: "set[Client]",
        lost: "Callable[[Client], None]",
    ) -> None:
        """`waiting`: the hub's clients with data waiting, which this one joins when a write leaves
        some unsent (so the send-timeout rule looks at those alone); `lost`: what the hub does
        when the connection is gone (called once, by the transport, once the client holds it)."""
        self.transport = stream.transport
        self.peer = peer
        # Which slice of the heartbeat re-sends to this client (see Hub._beat).
        self.heartbeat_slice = heartbeat_slice
        self.rules = rules
        self.lost = lost
        # Why the stream ended, once it has (the hub's reason, or a drop rule's).
        self.ended: str | None = None
        # When a write first left this client's data waiting (send-timeout rule), else None.
        self.waiting_since: float | None = None
        self.waiting = waiting
        # Which drop rule ended this stream (one of host_memory.DROP_REASONS), if one did.
        self.dropped: str | None = None
        self._limit_unacknowledged_time()

    async def open(self, stream: OpenedStream, first: bytes, clock: Callable[[], float]) -> str | None:
        """Send the head with `first`; None, or why the stream must end."""
        if self.transport.is_closing():
            return "connection closed"
        await stream.send_head_with(first)
        return self._too_slow(clock())

    def stalled(self, now: float) -> str | None:
        """Why the stream must end if its unsent data has waited past the send timeout, else None
        (and it leaves the waiting set once its data is sent)."""
        if self.transport.get_write_buffer_size() == 0:
            self.waiting_since = None
            self.waiting.discard(self)
        elif self.waiting_since is None:
            self.waiting_since = now
        elif now - self.waiting_since > self.rules.send_timeout:
            return self._abort("send_timeout", f"send timed out after {self.rules.send_timeout:g} s")
        return None

    def end(self, reason: str) -> None:
        """End the stream, once: cleanly (the close, after what is unsent: the end of its body)
        unless its connection is closing already (dropped, or gone)."""
        if self.ended is not None:
            return
        self.ended = reason
        if not self.transport.is_closing():
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost(self)

    def _too_slow(self, now: float) -> str | None:
        return self.left_unsent(self.transport.get_write_buffer_size(), now)

    def left_unsent(self, unsent: int, now: float) -> str | None:
        if unsent > self.rules.max_buffer:
            return self._abort("too_slow", f"too slow: more than {self.rules.max_buffer} bytes unsent")
        if unsent and self.waiting_since is None:
            self.waiting_since = now
            self.waiting.add(self)
        return None

    def _abort(self, rule: str, reason: str) -> str:
        self.dropped = rule
        self.transport.abort()
        return reason

    def _limit_unacknowledged_time(self) -> None:
        sock = self.transport.get_extra_info("socket")
        if _TCP_USER_TIMEOUT is None or sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
            return
        sock.setsockopt(socket.IPPROTO_TCP, _TCP_USER_TIMEOUT, int(self.rules.send_timeout * 1000))


def send_to_each(clients: Iterable[Client], event: bytes, now: float) -> list[tuple[Client, str]]:
    """Queue `event` (at `now`) to each client without waiting for any peer; returns the clients
    whose stream must end, with why. One loop with the common case inline (write, nothing left
    unsent) and no method call of ours per client: a fan-out runs it for every client at once,
    so each call shows in its CPU (bench/RESULTS.md, "Where one fan-out's CPU goes")."""
    ending: list[tuple[Client, str]] = []
    for client in clients:
        transport = client.transport
        if transport.is_closing():
            ending.append((client, "connection closed"))
            continue
        transport.write(event)
        if unsent := transport.get_write_buffer_size():
            if (reason := client.left_unsent(unsent, now)) is not None:
                ending.append((client, reason))
    return ending
