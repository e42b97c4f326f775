"""The hub: every connected client, the current version, one shared heartbeat, fan-out."""

import asyncio
import random
import socket
import time
from dataclasses import dataclass, field

from aiohttp.http_writer import StreamWriter

from .logs import get_logger
from .sse import encode_retry, encode_version_event
from .version import InvalidVersion, check_version

log = get_logger("sidecar.hub")

# Linux only: the kernel aborts a connection whose sent data stays unacknowledged this long.
_TCP_USER_TIMEOUT = getattr(socket, "TCP_USER_TIMEOUT", None)


@dataclass(eq=False, slots=True)
class Client:
    writer: StreamWriter
    transport: asyncio.Transport
    peer: str
    # Resolved with the reason when the stream ends; cancelled instead when the connection is
    # lost while the handler waits on it (aiohttp cancels the handler, and so this future).
    # Not shielded: a shield costs about 1 KB per connection (bench, 10,000 clients).
    ended: asyncio.Future[str] = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    # When this client's unsent data was first seen waiting (send-timeout check), else None.
    waiting_since: float | None = None
    # Which slice of the heartbeat re-sends to this client (see Hub._beat).
    slot: int = 0
    # Whether the response body goes out in HTTP/1.1 chunked framing (see Hub._send_all).
    chunked: bool = False


class Hub:
    def __init__(
        self,
        *,
        heartbeat: float,
        retry: int,
        retry_jitter: int,
        max_clients: int,
        max_buffer: int,
        send_timeout: float,
    ) -> None:
        self.heartbeat = heartbeat
        self.retry = retry
        self.retry_jitter = retry_jitter
        self.max_clients = max_clients
        self.max_buffer = max_buffer
        self.send_timeout = send_timeout
        self.clients: set[Client] = set()
        self.version: str | None = None
        self._event: bytes | None = None  # the current version event, encoded once
        self._heartbeat_task: asyncio.Task[None] | None = None
        # The heartbeat goes out in slices of about a second each (one slice when it is shorter).
        self._heartbeat_slices = max(1, int(heartbeat))
        self._joined = 0

    @property
    def full(self) -> bool:
        return len(self.clients) >= self.max_clients

    @property
    def retry_after_seconds(self) -> int:
        """What a turned-away client is told to wait, in whole seconds."""
        return max(1, -(-(self.retry + self.retry_jitter) // 1000))

    def publish(self, value: str, *, source: str) -> bool:
        """Announce `value` if it is a valid, new version; True if it was announced."""
        try:
            check_version(value)
        except InvalidVersion as error:
            log.warning("version rejected", source=source, reason=str(error), value=value[:200])
            return False
        if value == self.version:
            return False
        old, self.version = self.version, value
        self._event = encode_version_event(value)
        log.info("version changed", old=old, new=value, source=source, clients=len(self.clients))
        self._send_all(list(self.clients), self._event)
        return True

    async def join(
        self, writer: StreamWriter, transport: asyncio.Transport, peer: str, last_event_id: str | None
    ) -> Client:
        """Add a prepared stream; sends its retry delay and the current version at once."""
        client = Client(writer, transport, peer, slot=self._joined % self._heartbeat_slices)
        self._joined += 1
        self._limit_unacknowledged_time(transport)
        self.clients.add(client)
        log.info(
            "client connected",
            peer=peer,
            clients=len(self.clients),
            last_event_id=None if last_event_id is None else last_event_id[:200],
        )
        first = encode_retry(self.retry + random.randint(0, self.retry_jitter))
        if self._event is not None:
            first += self._event
        if await self._send(client, first) and self.version is not None:
            log.info("initial version sent", peer=peer, version=self.version)
        client.chunked = writer.chunked  # known once the head went out with the first write
        return client

    def leave(self, client: Client, reason: str) -> None:
        if client in self.clients:
            self.clients.discard(client)
            log.info("client disconnected", peer=client.peer, reason=reason, clients=len(self.clients))
        if not client.ended.done():
            client.ended.set_result(reason)

    def start(self) -> None:
        self._heartbeat_task = asyncio.create_task(self._beat(), name="heartbeat")

    async def stop(self) -> None:
        """End every stream (shutdown)."""
        if self._heartbeat_task is not None:
            self._heartbeat_task.cancel()
        for client in list(self.clients):
            self.leave(client, "server shutting down")

    async def _beat(self) -> None:
        # One task, but the re-send is spread over the interval: each tick serves one slice of
        # the clients, so each still hears it every `heartbeat` seconds while the loop never
        # stalls for a whole broadcast (0.4 s at 19,000 clients here) that a version change
        # would have to wait behind (bench/RESULTS.md).
        tick = self.heartbeat / self._heartbeat_slices
        turn = 0
        while True:
            await asyncio.sleep(tick)
            turn = (turn + 1) % self._heartbeat_slices
            due = [client for client in self.clients if client.slot == turn]
            self._drop_stalled(due)
            if self._event is not None:
                self._send_all(due, self._event)
                if turn == 0:
                    log.debug("heartbeat sent", version=self.version, clients=len(self.clients))

    def _send_all(self, clients: list[Client], event: bytes) -> None:
        """Queue `event` to each client without waiting for any peer.

        The event is framed once, chunked framing included, and written straight to each
        transport: the bytes aiohttp's StreamWriter.write would send, without its two
        coroutines and its re-framing per client (a third less fan-out CPU; bench/RESULTS.md).
        """
        framed = b"%x\r\n%b\r\n" % (len(event), event)
        for client in clients:
            transport = client.transport
            if transport.is_closing():
                self.leave(client, "connection closed")
                continue
            transport.write(framed if client.chunked else event)
            self._drop_if_too_slow(client)

    async def _send(self, client: Client, data: bytes) -> bool:
        """Queue `data` through the response's writer (the first write also sends the head)."""
        if client.transport.is_closing():
            self.leave(client, "connection closed")
            return False
        # drain=False: this write never waits, so one slow peer cannot hold up the others.
        await client.writer.write(data, drain=False)
        return self._drop_if_too_slow(client)

    def _drop_if_too_slow(self, client: Client) -> bool:
        if client.transport.get_write_buffer_size() > self.max_buffer:
            self._drop(client, f"too slow: more than {self.max_buffer} bytes unsent")
            return False
        return True

    def _drop_stalled(self, clients: list[Client]) -> None:
        """Drop those of `clients` whose unsent data has waited longer than the send timeout."""
        now = time.monotonic()
        for client in clients:
            if client.transport.get_write_buffer_size() == 0:
                client.waiting_since = None
            elif client.waiting_since is None:
                client.waiting_since = now
            elif now - client.waiting_since > self.send_timeout:
                self._drop(client, f"send timed out after {self.send_timeout:g} s")

    def _drop(self, client: Client, reason: str) -> None:
        """End a stream the peer is not reading: abort, since a graceful close would wait on it."""
        client.transport.abort()
        self.leave(client, reason)

    def _limit_unacknowledged_time(self, transport: asyncio.Transport) -> None:
        sock = transport.get_extra_info("socket")
        if _TCP_USER_TIMEOUT is None or sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
            return
        sock.setsockopt(socket.IPPROTO_TCP, _TCP_USER_TIMEOUT, int(self.send_timeout * 1000))
