"""The hub: who is connected, the current version event, and one shared heartbeat.

Each event is encoded once and handed, as it is, to every client; each client owns its writes
and its drop rules (client.py). What the hub does is counted in its worker's row of the host
table (host.py): an integer or two per fan-out, per heartbeat slice and per join, never per client.
"""

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .client import Client, DropRules, send_to_each
from .heartbeat_slices import HeartbeatSlices
from .host import HostTable, WorkerRow
from .logs import get_logger
from .sse import encode_retry, encode_version_event
from .stream import OpenedStream
from .version import Version

log = get_logger("sidecar.hub")

# How often, at most, clients with data waiting are checked against --send-timeout: a stuck client
# is dropped within this long after its data has waited the timeout.
SEND_TIMEOUT_CHECK = 1.0

# A version change is written to this many clients at a time, and the event loop runs between two
# such chunks: a /metrics scrape, a /healthz probe or a new connection that lands during a fan-out
# waits for a few chunks (its accept, its request, its answer), not for the whole fan-out (1.2 s at
# 17,000 streams a worker). Small, because with more busy workers than CPUs a chunk's wall time is
# several times its CPU time (~10 us a write): at 100,000 streams on 6 workers and 2 CPUs a scrape
# during a change took up to 280 ms with chunks of 1,000, 24 ms with 50, at the same p99 and CPU
# (bench/RESULTS.md). A hub of at most one chunk is written to within publish().
FANOUT_CHUNK = 50

# Each heartbeat tick's clients are split into this many groups, each told one fresh `retry:` drawn
# from the jitter window as it is now (one payload built per group, not per client): 30 ticks of
# 16 make 480 delays a worker each 30-s heartbeat, so after a restart 38,000 tabs on 2 workers come
# back ~40 at a time, not in one burst per tick and worker (60 of ~630).
HEARTBEAT_GROUPS = 16


@dataclass(slots=True)
class FanOut:
    """A version event on its way, a chunk at a time, to the clients connected when it changed."""

    started: float  # time.perf_counter() before its first write
    sent: int  # events written so far
    task: "asyncio.Task[None]" = field(init=False)  # what writes the chunks after the first


class Hub:
    def __init__(
        self,
        *,
        heartbeat: float,
        retry: int,
        retry_jitter: int,
        reconnect_rate: int,
        max_clients: int,
        drop_rules: DropRules,
        row: WorkerRow | None = None,
        clock: Callable[[], float] = time.monotonic,
        fanout_chunk: int = FANOUT_CHUNK,
    ) -> None:
        """`reconnect_rate`: new streams a second one worker takes back after a restart (the jitter
        window widens to fit the host's streams); `clock`: what the send-timeout rule tells the time
        by (tests pass a stand-in); `fanout_chunk`: clients written to between two turns of the
        event loop in a fan-out."""
        self.heartbeat = heartbeat
        self.retry = retry
        self.retry_jitter = retry_jitter
        self.reconnect_rate = reconnect_rate
        self.drop_rules = drop_rules
        # This worker's row of the host table; a hub on its own gets a table of one row.
        self.row = row if row is not None else HostTable(1, max_clients).row(0)
        self.clients: set[Client] = set()
        self.heartbeat_slices = HeartbeatSlices(heartbeat)  # which clients each heartbeat tick serves
        self.clock = clock
        self.waiting: set[Client] = set()  # clients a write left data unsent for (send-timeout rule)
        self.stopped = False
        # Connections handed over to their clients and not yet closed: each holds a descriptor
        # (the connection ceiling counts them, connections.py) and a seat.
        self.connections = 0
        self._all_closed: asyncio.Future[None] | None = None  # while a stop waits for them
        self._lost = self.lost  # one bound method for every client
        self.version: Version | None = None
        self._release: tuple[Version, str | None, bool] | None = None  # the version with its notes and flag
        self._event: bytes | None = None  # the current version event, encoded once
        self._heartbeat_task: asyncio.Task[None] | None = None
        self._timeouts_task: asyncio.Task[None] | None = None
        self._timeouts_every = min(SEND_TIMEOUT_CHECK, drop_rules.send_timeout / 2)
        self.fanout_chunk = fanout_chunk
        self._fan_out: FanOut | None = None  # the fan-out under way past its first chunk, if any

    @property
    def retry_after_seconds(self) -> int:
        """What a turned-away client is told to wait, in whole seconds."""
        return max(1, -(-(self.retry + self.jitter_window()) // 1000))

    def jitter_window(self) -> int:
        """Over how many ms the host's tabs come back after a restart: --retry-jitter, or as long as
        its workers need to take back every stream the host holds now at --reconnect-rate each.
        Browsers keep the `retry:` they got last: each heartbeat tells a stream a delay drawn from the
        window as it is then, so within a heartbeat every stream's delay fits the host's streams."""
        seats = self.row.seats
        return max(self.retry_jitter, seats.taken() * 1000 // (self.reconnect_rate * seats.workers))

    def publish(self, version: Version, notes: str | None = None, required: bool = False) -> bool:
        """Announce `version` (with its release notes URL and reload-required flag, checked by the
        announcer) to every client if any of them is new; True if it was."""
        if (version, notes, required) == self._release:
            return False
        old, self.version, self._release = self.version, version, (version, notes, required)
        self._event = encode_version_event(version, notes, required)
        self.row.announced(version)
        told = {name: value for name, value in (("notes", notes), ("required", required)) if value}
        log.info("version changed", old=old, new=version, clients=len(self.clients), **told)
        self._send_to_all(self._event)
        return True

    async def join(self, stream: OpenedStream, peer: str, last_event_id: str | None) -> Client:
        """Send a prepared stream its retry delay and the current version, and count it in."""
        client = Client(stream, peer, self.heartbeat_slices.next_slice(), self.drop_rules, self.waiting, self._lost)
        sent = self._event
        first = self._retry_block(self.jitter_window())
        if sent is not None:
            first += sent
        reason = await client.open(stream, first, self.clock)
        if reason is None and self.stopped:  # it arrived while the hub stopped: end it now, not at the timeout
            reason = "server shutting down"
        if reason is not None:
            if client.dropped is not None:
                self.row.dropped(client.dropped)
            self.waiting.discard(client)
            client.end(reason)
            return client
        self.clients.add(client)
        self.heartbeat_slices.add(client)
        self.row.joined(0 if sent is None else 1)
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
            self.row.sent(1)
        return client

    def adopt(self, client: Client) -> None:
        """Count in a connection that `client` now holds (its head sent: stream.hand_off)."""
        self.connections += 1

    def lost(self, client: Client) -> None:
        """An adopted client's connection is gone (its transport says so, once): count it out and
        give its seat back."""
        self.leave(client, "client went away")
        self.connections -= 1
        self.row.seats.give()
        if self.connections == 0 and self._all_closed is not None and not self._all_closed.done():
            self._all_closed.set_result(None)

    def leave(self, client: Client, reason: str) -> None:
        self.waiting.discard(client)
        if client in self.clients:
            self.clients.discard(client)
            self.heartbeat_slices.discard(client)
            if client.dropped is not None:
                self.row.dropped(client.dropped)
            log.info("client disconnected", peer=client.peer, reason=reason, clients=len(self.clients))
        client.end(reason)

    def start(self) -> None:
        self._heartbeat_task = asyncio.create_task(self._beat(), name="heartbeat")
        self._timeouts_task = asyncio.create_task(self._drop_stalled(), name="send timeouts")

    def stop(self) -> None:
        """End every stream (shutdown), and any that joins from now on."""
        self.stopped = True
        self._end_fan_out()
        for task in (self._heartbeat_task, self._timeouts_task):
            if task is not None:
                task.cancel()
        for client in list(self.clients):
            self.leave(client, "server shutting down")

    async def closed(self, timeout: float) -> None:
        """Wait, at most `timeout` seconds, until the streams ended by stop() have closed (a clean
        end waits for what is unsent)."""
        if self.connections == 0:
            return
        self._all_closed = asyncio.get_running_loop().create_future()
        try:
            await asyncio.wait_for(self._all_closed, timeout)
        except TimeoutError:
            log.info("streams still closing at the shutdown timeout", streams=self.connections)

    async def _beat(self) -> None:
        # Each tick re-sends to one slice (heartbeat_slices.py): every client hears the version
        # once per `heartbeat` seconds, and a version change never waits behind a whole broadcast.
        slices = self.heartbeat_slices
        turn = 0
        while True:
            await asyncio.sleep(slices.tick)
            turn = (turn + 1) % slices.count
            due = slices.due(turn)
            if self._event is not None:
                self._send_with_retry(due, self._event)
                self.row.sent(len(due))
                if turn == 0:
                    log.debug("heartbeat sent", version=self.version, clients=len(self.clients))

    def _send_with_retry(self, clients: list[Client], event: bytes) -> None:
        """Write `event` to `clients` in HEARTBEAT_GROUPS groups, each after its own fresh `retry:`
        (one write per client, one payload built per group)."""
        window = self.jitter_window()
        groups = min(HEARTBEAT_GROUPS, len(clients))
        for group in range(groups):
            self._send_all(clients[group::groups], self._retry_block(window) + event)

    def _retry_block(self, window: int) -> bytes:
        """A `retry:` block with --retry plus a random delay within `window` ms."""
        return encode_retry(self.retry + random.randint(0, window))

    async def _drop_stalled(self) -> None:
        # Only the clients a write left data unsent for are looked at, not every client.
        while True:
            await asyncio.sleep(self._timeouts_every)
            now = self.clock()
            for client in list(self.waiting):
                if (reason := client.stalled(now)) is not None:
                    self.leave(client, reason)

    def _send_to_all(self, event: bytes) -> None:
        """Write `event` to every client: the first chunk now, the others from a task that lets the
        event loop run between two chunks. A fan-out under way ends first: the clients it has not
        reached yet get this newer event instead, and nobody gets the older one after it."""
        self._end_fan_out()
        targets, chunk, started = list(self.clients), self.fanout_chunk, time.perf_counter()
        self._send_all(targets[:chunk], event)
        if len(targets) <= chunk:
            self.row.fanned_out(time.perf_counter() - started, len(targets))
            return
        fan_out = self._fan_out = FanOut(started, chunk)
        fan_out.task = asyncio.create_task(self._send_the_rest(fan_out, targets, event), name="fan-out")

    async def _send_the_rest(self, fan_out: FanOut, targets: list[Client], event: bytes) -> None:
        # The loop has had a turn before this task's first step; each later chunk waits for another.
        # A client that joined meanwhile got this event with its head (join); one that left is
        # skipped (send_to_each ends a client whose connection is closing).
        chunk = self.fanout_chunk
        for first in range(chunk, len(targets), chunk):
            if first > chunk:
                await asyncio.sleep(0)  # what waits for the event loop runs now
            part = targets[first : first + chunk]
            self._send_all(part, event)
            fan_out.sent += len(part)
        self._fan_out = None
        self.row.fanned_out(time.perf_counter() - fan_out.started, fan_out.sent)

    def _end_fan_out(self) -> None:
        """Stop the fan-out under way, if any (a newer one takes over, or the hub stops), and count
        it with what it wrote."""
        fan_out, self._fan_out = self._fan_out, None
        if fan_out is not None:
            fan_out.task.cancel()  # it waits at its yield: it writes nothing more
            self.row.fanned_out(time.perf_counter() - fan_out.started, fan_out.sent)

    def _send_all(self, clients: list[Client], event: bytes) -> None:
        for client, reason in send_to_each(clients, event, self.clock()):
            self.leave(client, reason)
