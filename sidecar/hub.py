"""The hub: who is connected, the current version event, and one shared heartbeat.

Each event is encoded and framed once and handed to every client; each client owns its writes
and its drop rules (client.py).
"""

import asyncio
import random
import time

from .aiohttp_internals import Framed, OpenedStream
from .client import Client, DropRules
from .logs import get_logger
from .sse import encode_retry, encode_version_event
from .version import Version

log = get_logger("sidecar.hub")


class Hub:
    def __init__(
        self, *, heartbeat: float, retry: int, retry_jitter: int, max_clients: int, drop_rules: DropRules
    ) -> None:
        self.heartbeat = heartbeat
        self.retry = retry
        self.retry_jitter = retry_jitter
        self.max_clients = max_clients
        self.drop_rules = drop_rules
        self.clients: set[Client] = set()
        self.version: Version | None = None
        self._event: Framed | None = None  # the current version event, framed once
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

    def publish(self, version: Version) -> bool:
        """Announce `version` to every client if it is new; True if it was."""
        if version == self.version:
            return False
        old, self.version = self.version, version
        self._event = Framed.of(encode_version_event(version))
        log.info("version changed", old=old, new=version, clients=len(self.clients))
        self._send_all(list(self.clients), self._event)
        return True

    async def join(self, stream: OpenedStream, peer: str, last_event_id: str | None) -> Client:
        """Send a prepared stream its retry delay and the current version, and count it in."""
        client = Client(stream, peer, self._joined % self._heartbeat_slices, self.drop_rules)
        self._joined += 1
        sent = self._event
        first = encode_retry(self.retry + random.randint(0, self.retry_jitter))
        if sent is not None:
            first += sent.plain  # the stream's writer frames this first write itself
        reason = await client.open(stream, first)
        if reason is not None:
            client.end(reason)
            return client
        self.clients.add(client)
        log.info(
            "client connected",
            peer=peer,
            clients=len(self.clients),
            last_event_id=None if last_event_id is None else last_event_id[:200],
        )
        if sent is not None:
            log.info("initial version sent", peer=peer, version=self.version)
        if self._event is not sent and self._event is not None:  # a change while the head went out
            self._send_all([client], self._event)
        return client

    def leave(self, client: Client, reason: str) -> None:
        if client in self.clients:
            self.clients.discard(client)
            log.info("client disconnected", peer=client.peer, reason=reason, clients=len(self.clients))
        client.end(reason)

    def start(self) -> None:
        self._heartbeat_task = asyncio.create_task(self._beat(), name="heartbeat")

    def stop(self) -> None:
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
            now = time.monotonic()
            due = []
            for client in [client for client in self.clients if client.slot == turn]:
                if (reason := client.stalled(now)) is not None:
                    self.leave(client, reason)
                else:
                    due.append(client)
            if self._event is not None:
                self._send_all(due, self._event)
                if turn == 0:
                    log.debug("heartbeat sent", version=self.version, clients=len(self.clients))

    def _send_all(self, clients: list[Client], event: Framed) -> None:
        for client in clients:
            if (reason := client.send(event)) is not None:
                self.leave(client, reason)
