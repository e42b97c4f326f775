"""What the docker and swarm sources share: the Docker Engine's address, what talking to it can
raise, the version label rule, and following its event stream: read, re-read on every event that
concerns the target, keep the last version while waiting, reconnect with back-off when the
engine goes away.

An engine (or a proxy in front of it) can go silent without closing the connection, and its
event stream says nothing while nothing happens: the two look alike. So an event stream quiet
for `silence` seconds (--docker-timeout) is reopened and the state read again, every request
has a deadline of at most REQUEST_TIMEOUT, and a silent engine is noticed within `silence` plus
that deadline."""

import asyncio
import contextlib
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import aiodocker
import aiohttp
from aiodocker.exceptions import DockerError

from ..logs import get_logger
from ..version import InvalidVersion, check_version
from . import Found, Publish, Source, SourceError

DEFAULT_HOST = "unix:///var/run/docker.sock"
DEFAULT_LABELS = ("org.opencontainers.image.version", "org.opencontainers.image.revision")
# Beside the version, on the same image (or service): what the deploy tells the tabs about it.
NOTES_LABEL = "version-sidecar.release-notes-url"
REQUIRED_LABEL = "version-sidecar.reload-required"
# The event stream is asked to replay this many seconds before it was opened: a change made
# while it was connecting is then still seen (a replayed event only costs one more read).
EVENT_REPLAY_SECONDS = 5
# Every request but the event stream ends within this many seconds (or --docker-timeout if shorter).
REQUEST_TIMEOUT = 10.0
# Seconds an event stream may stay quiet before it is reopened and the state read again.
DEFAULT_SILENCE = 30.0
# Reconnect delays double from the first to the last; a connection that lasted longer than
# the last resets them, so an engine restart is noticed quickly and a dead engine costs nothing.
RETRY_FIRST, RETRY_LAST = 0.5, 10.0
# What talking to an engine can raise: API errors (aiodocker wraps refused connections as status
# 900), connection errors aiodocker lets through, socket errors and request timeouts.
ENGINE_ERRORS = (DockerError, aiohttp.ClientError, OSError, TimeoutError)


@dataclass(frozen=True)
class Reading:
    """The outcome of one read: the version to announce, or why there is none yet."""

    version: str | None
    waiting_for: str | None
    summary: tuple[str, ...]  # what was seen, logged when it changes


def version_from_labels(
    labels: Mapping[str, str], keys: Iterable[str], where: str = "on its image"
) -> tuple[str | None, str | None]:
    """(version, None) from the first of `keys` present, else (None, what is wrong). The version
    carries the release notes labels of the same set (checked later, by the announcer)."""
    keys = tuple(keys)
    for key in keys:
        if key in labels:
            value = labels[key]
            try:
                return Found(check_version(value), labels.get(NOTES_LABEL), labels.get(REQUIRED_LABEL)), None
            except InvalidVersion as error:
                return None, f"label {key} {value[:40]!r}{'...' if len(value) > 40 else ''} {error}"
    return None, f"no label {' or '.join(keys)} {where}"


async def image_labels(docker: aiodocker.Docker, image: str) -> Mapping[str, str]:
    """The labels of an image the engine holds; raises DockerError 404 when it holds none by that name."""
    info = await docker.images.inspect(image)
    labels: Mapping[str, str] | None = (info.get("Config") or {}).get("Labels")
    return labels or {}


class EngineSource(Source):
    """A source that reads its version through a Docker Engine and follows the engine's events.

    A subclass says what it reads (`_read`), which events concern it (`_concerns_target`, with the
    `watched` filters for the engine) and, where events do not tell everything, how soon to read
    again without one (`_reread_after`)."""

    setting = "--docker-target"  # the setting that names the thing followed
    what = "target"  # what a message calls it
    parts = "containers"  # the log field that lists what a read saw
    watched: ClassVar[Mapping[str, tuple[str, ...]]] = {}  # the engine's event filters

    def __init__(
        self,
        target: str,
        *,
        label: str | None = None,
        host: str | None = None,
        fallback: str | None = None,
        silence: float = DEFAULT_SILENCE,
        environ: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`silence`: seconds without an event after which the stream is reopened and the state read
        again; `clock`: what tells the time for the re-read schedule (tests pass a stand-in)."""
        environ = os.environ if environ is None else environ
        self.target = target
        self.origin = f"{self.setting} {target}"
        self.labels = (label,) if label else DEFAULT_LABELS
        self.host = host or environ.get("DOCKER_HOST") or DEFAULT_HOST
        # The setting a user would fix when the engine cannot be reached.
        self.host_origin = "DOCKER_HOST" if not host and environ.get("DOCKER_HOST") else "--docker-host"
        if not self.host.startswith(("unix://", "tcp://", "http://", "https://")):
            raise SourceError(f"DOCKER_HOST: must be a unix://, tcp://, http:// or https:// address, got {self.host!r}")
        self.fallback = fallback
        self.silence = silence
        self.request_timeout = min(REQUEST_TIMEOUT, silence)
        self.clock = clock
        self.log = get_logger(f"sidecar.sources.{self.name}")
        self._last_reading: Reading | None = None
        self._engine_lost = False

    async def _read(self, docker: aiodocker.Docker) -> Reading:
        raise NotImplementedError

    def _concerns_target(self, event: Mapping[str, Any]) -> bool:
        raise NotImplementedError

    def _reread_after(self, reading: Reading) -> float | None:
        """Seconds after which to read again although no event came; None: only on events."""
        return None

    async def read_initial(self) -> str | None:
        try:
            async with self._client() as docker:
                reading = await self._read_and_report(docker)
        except ENGINE_ERRORS as error:
            raise SourceError(
                f"{self.host_origin} {self.host}: cannot read the {self.what}: {self._describe(error)}"
            ) from None
        if reading.version is None and self.fallback is not None:
            self.log.info(f"serving the fallback version until the {self.what} is ready", version=self.fallback)
            return self.fallback
        return reading.version

    async def follow(self, publish: Publish) -> None:
        delay = RETRY_FIRST
        while True:
            connected_at = self.clock()
            try:
                reason = await self._watch(publish)
            except ENGINE_ERRORS as error:
                reason = self._describe(error)
            if reason is None:  # only quiet: reopened at once
                continue
            if self.clock() - connected_at > RETRY_LAST:
                delay = RETRY_FIRST
            self._engine_lost = True
            self.problem = f"Docker Engine at {self.host}: {reason}"
            self.log.warning("docker engine unreachable", host=self.host, reason=reason, retry_in=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_LAST)

    def _client(self) -> aiodocker.Docker:
        timeout = aiohttp.ClientTimeout(total=self.request_timeout, connect=self.request_timeout)
        return aiodocker.Docker(url=self.host, timeout=timeout)

    def _describe(self, error: BaseException) -> str:
        if isinstance(error, TimeoutError):
            return f"no answer within {self.request_timeout:g} s"
        return describe(error)

    async def _watch(self, publish: Publish) -> str | None:
        """Read, then re-read on every event about the target and, whatever else the engine says,
        when `_reread_after` says; returns why the stream ended, or None when it was quiet for
        `silence` seconds (the caller reopens it: a silent connection is found out that way)."""
        async with self._client() as docker:
            events = docker.events.subscribe(create_task=False)  # type: ignore[no-untyped-call]
            stream = asyncio.create_task(
                docker.events.run(
                    since=int(time.time()) - EVENT_REPLAY_SECONDS,
                    filters={key: list(values) for key, values in self.watched.items()},
                )
            )
            try:
                reading = await self._update(docker, publish)
                if self._engine_lost:
                    self.log.info("docker engine reachable again", host=self.host)
                    self._engine_lost = False
                heard_at = read_at = self.clock()
                while True:
                    after = self._reread_after(reading)
                    next_read = read_at + after if after is not None else float("inf")
                    deadline = min(next_read, heard_at + self.silence)
                    try:  # asyncio.timeout: Python 3.11's wait_for can swallow a cancellation
                        async with asyncio.timeout(max(0.0, deadline - self.clock())):
                            event = await events.get()
                    except TimeoutError:
                        event = {}  # nothing in time
                    if event is None:  # aiodocker's end-of-stream mark
                        break
                    now = self.clock()
                    if event:
                        heard_at = now
                    elif now >= heard_at + self.silence:
                        return None
                    if now < next_read and not (event and self._concerns_target(event)):
                        continue  # the schedule is kept whatever unrelated events come
                    # One read covers a burst of events (a deploy sends several at once).
                    ended = False
                    while not ended and not events.queue.empty():
                        ended = events.queue.get_nowait() is None
                    reading = await self._update(docker, publish)
                    read_at = self.clock()
                    if ended:
                        break
                return await _why_ended(stream)
            finally:
                stream.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await stream

    async def _update(self, docker: aiodocker.Docker, publish: Publish) -> Reading:
        reading = await self._read_and_report(docker)
        if reading.version is not None:
            publish(reading.version)
        return reading

    async def _read_and_report(self, docker: aiodocker.Docker) -> Reading:
        reading = await self._read(docker)
        self._report(reading)
        return reading

    def _report(self, reading: Reading) -> None:
        """Log what changed since the last read (not every read), and keep /healthz current."""
        last, self._last_reading = self._last_reading, reading
        if last is None or last.summary != reading.summary:
            self.log.info("target read", target=self.target, version=reading.version, **{self.parts: reading.summary})
        if reading.waiting_for is None:
            if self.problem is not None:
                self.log.info("target ready", target=self.target, version=reading.version)
            self.problem = None
            return
        problem = f"waiting for {reading.waiting_for}"
        if problem != self.problem:
            self.log.warning("keeping the last version", target=self.target, waiting_for=reading.waiting_for)
        self.problem = problem


async def _why_ended(stream: "asyncio.Task[None]") -> str:
    try:
        await stream
    except Exception as error:  # a broken stream fails in many ways; each one means: reconnect
        return describe(error)
    return "its event stream ended"


def describe(error: BaseException) -> str:
    return str(error) or type(error).__name__
