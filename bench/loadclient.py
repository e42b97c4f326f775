"""The load client: many SSE connections per process, several processes, one controller.

Each client is a bare asyncio Protocol (no HTTP library on the hot path) that sends one GET,
de-chunks the body, splits it into SSE events and remembers when it first saw each `data:`
payload (time.monotonic(), which is one clock for every process on a Linux host). A process
is driven over a multiprocessing pipe by `Fleet`, which spreads N clients over P processes and
several 127.0.0.x source addresses (one process may hold at most 20,000 open files here).
"""

import asyncio
import contextlib
import multiprocessing
import multiprocessing.connection
import re
import resource
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

# A browser's EventSource reconnect delay when the server sends no `retry:` (Chromium: 3 s).
DEFAULT_RETRY_MS = 3000
# Connections a process opens at once: enough to keep a server's accept loop busy, few enough
# that the listen backlog is not what is measured.
CONNECTS_IN_FLIGHT = 256
# Once every connect is made, how long the stragglers may take to get their first event.
FIRST_EVENT_WAIT = 20.0
# The fields of an event the client acts on, each line in one C-level scan (SSE: a line is
# `name:value`; `event:` and `id:` need nothing here).
_FIELDS = re.compile(rb"^(data|retry):(.*)$", re.MULTILINE)


class StreamClient(asyncio.Protocol):
    """One EventSource-like client: GET, then record the first receipt time of each payload."""

    __slots__ = (
        "_body",
        "_chunk_left",
        "_chunked",
        "_head",
        "_pending",
        "fleet",
        "index",
        "opened",
        "retry_ms",
        "seen",
        "status",
        "transport",
    )

    def __init__(self, fleet: "ProcessFleet", index: int) -> None:
        self.fleet = fleet
        self.index = index
        # Resolved at the first event or at the end of the stream, whichever comes first.
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self.status = 0
        self.seen: dict[bytes, float] = {}
        self.retry_ms: int | None = None  # the reconnect delay this stream was given
        self._head = b""  # response head bytes until the blank line
        self._chunked = False
        self._pending = b""  # bytes still in chunked framing
        self._chunk_left = 0  # data bytes left in the current chunk
        self._body = b""  # de-chunked bytes not yet split into events

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.transport.write(self.fleet.request)

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        if not self.status:
            self._head += data
            end = self._head.find(b"\r\n\r\n")
            if end < 0:
                return
            head, data = self._head[:end], self._head[end + 4 :]
            self._head = b""
            try:
                self.status = int(head.split(b" ", 2)[1])
            except (IndexError, ValueError):
                self.status = -1
            if self.status != 200:
                self.fleet.refused += 1
                assert self.transport is not None
                self.transport.close()
                return
            self._chunked = b"transfer-encoding: chunked" in head.lower()
            self.fleet.opened(self)
        if self._chunked:
            # The common case, one whole chunk per read, without the general loop: the client
            # must not spend more on a chunked stream (the sidecar's) than on a plain one (nchan's).
            end = data.find(b"\r\n")
            if not self._pending and not self._chunk_left and 0 < end and len(data) == end + 4 + int(data[:end], 16):
                data = data[end + 2 : -2]
            else:
                self._pending += data
                data = self._dechunk()
        body = self._body + data if self._body else data
        if len(body) >= 2 and body.find(b"\n\n") == len(body) - 2:  # the common case again: one whole event
            self._body = b""
            self._event(body, now)
            return
        if b"\n\n" not in body:
            self._body = body
            return
        *events, self._body = body.split(b"\n\n")
        for event in events:
            self._event(event, now)

    def _event(self, event: bytes, now: float) -> None:
        for name, value in _FIELDS.findall(event):
            if name == b"data":
                payload = value.lstrip(b" ")
                if payload not in self.seen:
                    self.seen[payload] = now
                    self.fleet.received(self, payload)
            else:
                self.retry_ms = int(value)

    def _dechunk(self) -> bytes:
        """Take the data of complete (or partial) chunks out of _pending."""
        pending = self._pending
        taken = []
        while pending:
            if self._chunk_left:
                take = pending[: self._chunk_left]
                self._chunk_left -= len(take)
                taken.append(take)
                pending = pending[len(take) :]
                continue
            if pending.startswith(b"\r\n"):  # the CRLF that ends a chunk's data
                pending = pending[2:]
                continue
            line_end = pending.find(b"\r\n")
            if line_end < 0:
                break
            self._chunk_left = int(pending[:line_end].split(b";")[0], 16)
            pending = pending[line_end + 2 :]
        self._pending = pending
        return b"".join(taken)

    def connection_lost(self, exc: Exception | None) -> None:
        self.fleet.lost(self)


@dataclass
class ProcessFleet:
    """The clients of one process and their counters."""

    host: str
    port: int
    path: str
    sources: Sequence[str]
    request: bytes = b""
    clients: list[StreamClient | None] = field(default_factory=list)
    live: set[StreamClient] = field(default_factory=set)
    refused: int = 0
    errors: int = 0
    dropped: int = 0  # open streams the server closed
    reconnect: bool = False  # after a drop, reconnect like a browser after the stream's retry delay
    reconnected_at: list[float] = field(default_factory=list)
    refused_for: list[float] = field(default_factory=list)  # per client refused while reconnecting: how long
    away_for: list[float] = field(default_factory=list)  # per reconnected client: from its stream's loss to its event
    waiting_for: bytes | None = None
    waiters: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)
    first_events: int = 0
    target: int = 0

    def __post_init__(self) -> None:
        self.request = (
            f"GET {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            "Accept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n"
        ).encode()

    def opened(self, client: StreamClient) -> None:
        self.live.add(client)

    def received(self, client: StreamClient, payload: bytes) -> None:
        if len(client.seen) == 1:  # the first event on this stream
            if not client.opened.done():
                client.opened.set_result(None)
            self.first_events += 1
            if self.reconnect:  # a stream reopened after the server dropped it
                self.reconnected_at.append(time.monotonic())
            if self.first_events >= self.target > 0:
                self.done.set()
        if payload == self.waiting_for:
            self.waiters -= 1
            if self.waiters <= 0:
                self.done.set()

    def lost(self, client: StreamClient) -> None:
        if not client.opened.done():
            client.opened.set_result(None)
        if client in self.live:
            self.live.discard(client)
            self.dropped += 1
            if self.reconnect:
                delay = (client.retry_ms if client.retry_ms is not None else DEFAULT_RETRY_MS) / 1000
                asyncio.get_running_loop().call_later(delay, self._reopen, client, time.monotonic())
        if self.waiting_for is not None and self.waiting_for not in client.seen:
            self.waiters -= 1
            if self.waiters <= 0:
                self.done.set()

    def _reopen(self, old: StreamClient, lost_at: float) -> None:
        task = asyncio.ensure_future(self._open_retrying(old.index, old.retry_ms, lost_at))
        _background.add(task)
        task.add_done_callback(_background.discard)

    async def _open_retrying(self, index: int, retry_ms: int | None, lost_at: float) -> None:
        refused_at: float | None = None
        while True:
            client = await self._open_one(index)
            if client is not None:
                self.clients[index] = client
                await client.opened  # its first event, or the end of the stream
                if client.seen:
                    self.away_for.append(time.monotonic() - lost_at)
                    if refused_at is not None:
                        self.refused_for.append(time.monotonic() - refused_at)
                    return
            # Refused (the port closed, a 503, closed before its first event): wait as a browser
            # would (reload.js retries a 503 itself), then try again.
            refused_at = time.monotonic() if refused_at is None else refused_at
            await asyncio.sleep((retry_ms if retry_ms is not None else DEFAULT_RETRY_MS) / 1000)

    async def _open_one(self, index: int) -> StreamClient | None:
        loop = asyncio.get_running_loop()
        source = self.sources[index % len(self.sources)]
        try:
            _, client = await loop.create_connection(
                lambda: StreamClient(self, index), self.host, self.port, local_addr=(source, 0)
            )
        except OSError:
            self.errors += 1
            return None
        return client

    async def connect(self, count: int, timeout: float) -> dict[str, Any]:
        """Open `count` streams; returns when each has its first event (or on timeout)."""
        self.target, self.first_events, self.errors, self.refused = count, 0, 0, 0
        self.done.clear()
        started = time.monotonic()
        slots = asyncio.Semaphore(CONNECTS_IN_FLIGHT)
        self.clients = [None] * count

        async def open_slot(index: int) -> None:
            # A slot is held until the stream has its first event, not just until the TCP
            # handshake: the kernel completes handshakes before the server accepts, so counting
            # those alone would let the listen queue overflow, and dropped handshakes come back
            # only after TCP's retransmission back-off (seconds to minutes).
            async with slots:
                client = self.clients[index] = await self._open_one(index)
                if client is not None:
                    await client.opened

        opening = asyncio.gather(*(open_slot(i) for i in range(count)), return_exceptions=True)
        with contextlib.suppress(TimeoutError):  # every connect attempted (or the time is up)
            await asyncio.wait_for(asyncio.shield(opening), timeout)
        with contextlib.suppress(TimeoutError):  # then a bounded wait for the last first events
            await asyncio.wait_for(self.done.wait(), FIRST_EVENT_WAIT)
        opening.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await opening
        stuck = {"not connected": 0, "no response head": 0, "no event": 0}
        for client in self.clients:
            if client is None or client.transport is None:
                stuck["not connected"] += 1
            elif not client.status:
                stuck["no response head"] += 1
            elif not client.seen:
                stuck["no event"] += 1
        return {
            "started": started,
            "finished": time.monotonic(),
            "ready": self.first_events,
            "errors": self.errors,
            "refused": self.refused,
            "stuck": stuck,
        }

    async def await_payload(self, payload: bytes, timeout: float) -> dict[str, Any]:
        """Wait until every open stream has seen `payload`; returns the receipt times."""
        self.waiting_for = payload
        self.waiters = sum(1 for c in self.live if payload not in c.seen)
        self.done.clear()
        if self.waiters > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.done.wait(), timeout)
        self.waiting_for = None
        receipts = [c.seen[payload] for c in self.clients if c is not None and payload in c.seen]
        return {"receipts": receipts, "missing": len(self.clients) - len(receipts), "dropped": self.dropped}

    async def await_reconnected(self, count: int, timeout: float) -> dict[str, Any]:
        """Reconnect mode: wait until `count` dropped streams are back with their first event."""
        self.target, self.first_events = count, len(self.reconnected_at)
        self.done.clear()
        if self.first_events < count:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.done.wait(), timeout)
        return {
            "reconnected_at": list(self.reconnected_at),
            "refused_for": list(self.refused_for),
            "away_longest": max(self.away_for, default=0.0),
            "attempts_refused": self.errors + self.refused,
        }

    def close_all(self) -> None:
        self.reconnect = False
        for client in self.clients:
            if client is not None and client.transport is not None:
                client.transport.abort()
        self.live.clear()


_background: set["asyncio.Future[None]"] = set()


def raise_open_files_limit() -> int:
    """Lift this process's soft RLIMIT_NOFILE to the hard limit; returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def _process_main(
    conn: multiprocessing.connection.Connection, host: str, port: int, path: str, sources: Sequence[str]
) -> None:
    raise_open_files_limit()
    try:
        import uvloop  # the client must not be the bottleneck; the stdlib loop works too

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(_serve_commands(conn, ProcessFleet(host, port, path, sources)))


async def _serve_commands(conn: multiprocessing.connection.Connection, fleet: ProcessFleet) -> None:
    loop = asyncio.get_running_loop()
    commands: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
    loop.add_reader(conn.fileno(), lambda: commands.put_nowait(conn.recv()))
    cpu_start = time.process_time()
    while True:
        name, args = await commands.get()
        reply: dict[str, Any]
        if name == "connect":
            reply = await fleet.connect(args["count"], args["timeout"])
        elif name == "await":
            reply = await fleet.await_payload(args["payload"], args["timeout"])
        elif name == "reconnect_mode":
            fleet.reconnect, fleet.reconnected_at, fleet.target = True, [], 0
            fleet.refused_for, fleet.away_for, fleet.errors, fleet.refused = [], [], 0, 0
            retries = [c.retry_ms for c in fleet.live if c.retry_ms is not None]
            reply = {"retry_max": max(retries, default=None)}
        elif name == "await_reconnected":
            reply = await fleet.await_reconnected(args["count"], args["timeout"])
        elif name == "close":
            fleet.close_all()
            await asyncio.sleep(0.2)
            reply = {}
        elif name == "cpu":
            reply = {"cpu": time.process_time() - cpu_start}
        elif name == "exit":
            fleet.close_all()
            conn.send({})
            return
        else:
            reply = {"error": f"unknown command {name}"}
        conn.send(reply)


class Fleet:
    """N clients spread over `processes` processes and the given source addresses."""

    def __init__(self, host: str, port: int, path: str, processes: int, sources: Sequence[str]) -> None:
        self.processes = processes
        context = multiprocessing.get_context("fork")
        self.pipes: list[multiprocessing.connection.Connection] = []
        self.children: list[multiprocessing.process.BaseProcess] = []
        for index in range(processes):
            mine = [s for i, s in enumerate(sources) if i % processes == index] or list(sources)
            parent_end, child_end = context.Pipe()
            child = context.Process(target=_process_main, args=(child_end, host, port, path, mine), daemon=True)
            child.start()
            child_end.close()
            self.pipes.append(parent_end)
            self.children.append(child)

    def _all(self, name: str, per_process: Sequence[dict[str, Any]], timeout: float) -> list[dict[str, Any]]:
        for pipe, args in zip(self.pipes, per_process, strict=True):
            pipe.send((name, args))
        replies = []
        deadline = time.monotonic() + timeout + 30
        for pipe in self.pipes:
            if not pipe.poll(max(0.0, deadline - time.monotonic())):
                raise TimeoutError(f"load client did not answer {name!r}")
            replies.append(pipe.recv())
        return replies

    def split(self, count: int) -> list[int]:
        return [count // self.processes + (1 if i < count % self.processes else 0) for i in range(self.processes)]

    def connect(self, count: int, timeout: float) -> dict[str, Any]:
        replies = self._all("connect", [{"count": n, "timeout": timeout} for n in self.split(count)], timeout)
        for reply in replies:
            if any(reply["stuck"].values()):
                print(f"load client: streams without a first event: {reply['stuck']}", file=sys.stderr)
        return {
            "seconds": max(r["finished"] for r in replies) - min(r["started"] for r in replies),
            "ready": sum(r["ready"] for r in replies),
            "errors": sum(r["errors"] + r["refused"] for r in replies),
        }

    def send_wait(self, payload: bytes, timeout: float) -> None:
        """Tell every process to wait for `payload`; collect with `collect_wait`."""
        for pipe in self.pipes:
            pipe.send(("await", {"payload": payload, "timeout": timeout}))

    def collect_wait(self, timeout: float) -> dict[str, Any]:
        receipts: list[float] = []
        missing = dropped = 0
        for pipe in self.pipes:
            if not pipe.poll(timeout + 30):
                raise TimeoutError("load client did not answer 'await'")
            reply = pipe.recv()
            receipts += reply["receipts"]
            missing += reply["missing"]
            dropped += reply["dropped"]
        return {"receipts": receipts, "missing": missing, "dropped": dropped}

    def reconnect_mode(self) -> int | None:
        """From now on, a dropped stream reconnects like a browser; returns the longest `retry:`
        (ms) the open streams were given, None if none was."""
        retries = [r["retry_max"] for r in self._all("reconnect_mode", [{}] * self.processes, 5)]
        return max((r for r in retries if r is not None), default=None)

    def await_reconnected(self, count: int, timeout: float) -> dict[str, Any]:
        """When each dropped stream was back (sorted), how long each refused one was refused, how
        many attempts were refused (connection refused or reset, or a status other than 200), and
        the longest a client was without a stream (from its loss to its first event again)."""
        args = [{"count": n, "timeout": timeout} for n in self.split(count)]
        times: list[float] = []
        refused_for: list[float] = []
        attempts, away_longest = 0, 0.0
        for reply in self._all("await_reconnected", args, timeout):
            times += reply["reconnected_at"]
            refused_for += reply["refused_for"]
            attempts += reply["attempts_refused"]
            away_longest = max(away_longest, reply["away_longest"])
        return {
            "times": sorted(times),
            "refused_for": refused_for,
            "attempts_refused": attempts,
            "away_longest": away_longest,
        }

    def cpu_seconds(self) -> float:
        return float(sum(r["cpu"] for r in self._all("cpu", [{}] * self.processes, 5)))

    def close_all(self) -> None:
        self._all("close", [{}] * self.processes, 10)

    def stop(self) -> None:
        with contextlib.suppress(OSError, TimeoutError, EOFError):
            self._all("exit", [{}] * self.processes, 5)
        for child in self.children:
            child.join(5)
            if child.is_alive():
                child.kill()
                child.join()


def source_addresses(count: int) -> list[str]:
    """127.0.0.2 ... : loopback addresses to connect from (each gives ~28,000 ephemeral ports)."""
    return [f"127.0.0.{2 + i}" for i in range(count)]
