"""The docker source: the version label of the target's image, read through the Docker Engine API
(aiodocker) and followed live through the engine's event stream, so the sidecar keeps running
across app deploys. A version is announced only when every running, ready container of the
target carries it."""

import asyncio
import contextlib
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import aiodocker
import aiohttp
from aiodocker.exceptions import DockerError

from ..logs import get_logger
from ..version import InvalidVersion, check_version
from . import Publish, Source, SourceError

log = get_logger("sidecar.sources.docker")

DEFAULT_HOST = "unix:///var/run/docker.sock"
DEFAULT_LABELS = ("org.opencontainers.image.version", "org.opencontainers.image.revision")
SERVICE_LABEL = "com.docker.compose.service"
PROJECT_LABEL = "com.docker.compose.project"
# Container events after which the target is read again; health_status also matches
# "health_status: healthy" (the engine matches this one by prefix).
WATCHED_EVENTS = ("start", "die", "destroy", "health_status")
# The event stream is asked to replay this many seconds before it was opened: a change made
# while it was connecting is then still seen (a replayed event only costs one more read).
EVENT_REPLAY_SECONDS = 5
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=10, connect=5)
# Reconnect delays double from the first to the last; a connection that lasted longer than
# the last resets them, so an engine restart is noticed quickly and a dead engine costs nothing.
RETRY_FIRST, RETRY_LAST = 0.5, 10.0
# What talking to an engine can raise: API errors (aiodocker wraps refused connections as status
# 900), connection errors aiodocker lets through, socket errors and request timeouts.
ENGINE_ERRORS = (DockerError, aiohttp.ClientError, OSError, TimeoutError)


@dataclass(frozen=True)
class Replica:
    """One running container of the target, as one read saw it."""

    name: str
    state: str  # running, healthy, starting, unhealthy, paused, restarting
    ready: bool
    version: str | None
    label_problem: str | None  # why version is None


@dataclass(frozen=True)
class Reading:
    """The outcome of one read: the version all ready replicas agree on, or why there is none."""

    replicas: tuple[Replica, ...]
    version: str | None
    waiting_for: str | None

    def summary(self) -> list[str]:
        return [f"{r.name} {r.state} {r.version or '(no version)'}" for r in self.replicas]


def agree(target: str, replicas: Iterable[Replica]) -> Reading:
    """The version to announce: the one every ready replica carries, if they all carry one."""
    found = tuple(sorted(replicas, key=lambda r: r.name))
    ready = [r for r in found if r.ready]
    waiting_for = None
    if not found:
        waiting_for = f"a running container named {target} or of the compose service {target}"
    elif not ready:
        waiting_for = "a ready container: " + ", ".join(f"{r.name} is {r.state}" for r in found)
    elif unlabelled := [r for r in ready if r.version is None]:
        waiting_for = "a valid version label: " + "; ".join(f"{r.name}: {r.label_problem}" for r in unlabelled)
    elif len(versions := {r.version for r in ready}) > 1:
        waiting_for = "the ready containers to agree: " + ", ".join(f"{r.name} has {r.version}" for r in ready)
    else:
        return Reading(found, versions.pop(), None)
    return Reading(found, None, waiting_for)


def version_from_labels(labels: Mapping[str, str], keys: Iterable[str]) -> tuple[str | None, str | None]:
    """(version, None) from the first of `keys` present, else (None, what is wrong)."""
    keys = tuple(keys)
    for key in keys:
        if key in labels:
            value = labels[key]
            try:
                return check_version(value), None
            except InvalidVersion as error:
                return None, f"label {key} {value[:40]!r}{'...' if len(value) > 40 else ''} {error}"
    return None, f"no label {' or '.join(keys)} on its image"


def container_state(state: Mapping[str, Any]) -> tuple[str, bool]:
    """(state name, ready): running, and healthy where the container has a healthcheck."""
    if state.get("Paused"):
        return "paused", False
    if state.get("Restarting"):
        return "restarting", False
    if not state.get("Running"):
        return str(state.get("Status", "stopped")), False
    health = state.get("Health")
    if health:
        status = str(health.get("Status", "starting"))
        return status, status == "healthy"
    return "running", True


class DockerSource(Source):
    name = "docker"

    def __init__(
        self,
        target: str,
        *,
        project: str | None = None,
        label: str | None = None,
        host: str | None = None,
        fallback: str | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        environ = os.environ if environ is None else environ
        self.target = target
        self.project = project
        self.labels = (label,) if label else DEFAULT_LABELS
        self.host = host or environ.get("DOCKER_HOST") or DEFAULT_HOST
        # The setting a user would fix when the engine cannot be reached.
        self.host_origin = "DOCKER_HOST" if not host and environ.get("DOCKER_HOST") else "--docker-host"
        if not self.host.startswith(("unix://", "tcp://", "http://", "https://")):
            raise SourceError(f"DOCKER_HOST: must be a unix://, tcp://, http:// or https:// address, got {self.host!r}")
        self.fallback = fallback
        self.origin = f"--docker-target {target}"
        self._image_labels: dict[str, Mapping[str, str]] = {}  # image id -> labels (images never change)
        self._last_reading: Reading | None = None
        self._engine_lost = False

    async def read_initial(self) -> str | None:
        try:
            async with self._client() as docker:
                reading = await self._read(docker)
        except ENGINE_ERRORS as error:
            raise SourceError(f"{self.host_origin} {self.host}: cannot read the target: {_describe(error)}") from None
        if reading.version is None and self.fallback is not None:
            log.info("serving the fallback version until the target is ready", version=self.fallback)
            return self.fallback
        return reading.version

    async def follow(self, publish: Publish) -> None:
        delay = RETRY_FIRST
        while True:
            connected_at = time.monotonic()
            try:
                reason = await self._watch(publish)
            except ENGINE_ERRORS as error:
                reason = _describe(error)
            if time.monotonic() - connected_at > RETRY_LAST:
                delay = RETRY_FIRST
            self._engine_lost = True
            self.problem = f"Docker Engine at {self.host}: {reason}"
            log.warning("docker engine unreachable", host=self.host, reason=reason, retry_in=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_LAST)

    def _client(self) -> aiodocker.Docker:
        return aiodocker.Docker(url=self.host, timeout=REQUEST_TIMEOUT)

    async def _watch(self, publish: Publish) -> str:
        """Read, then re-read on every event about the target; returns why the stream ended."""
        async with self._client() as docker:
            events = docker.events.subscribe(create_task=False)  # type: ignore[no-untyped-call]
            stream = asyncio.create_task(
                docker.events.run(
                    since=int(time.time()) - EVENT_REPLAY_SECONDS,
                    filters={"type": ["container"], "event": list(WATCHED_EVENTS)},
                )
            )
            try:
                await self._update(docker, publish)
                if self._engine_lost:
                    log.info("docker engine reachable again", host=self.host)
                    self._engine_lost = False
                ended = False
                while not ended:
                    event = await events.get()
                    if event is None:  # aiodocker's end-of-stream mark
                        break
                    if not self._concerns_target(event):
                        continue
                    # One read covers a burst of events (a deploy sends several at once).
                    while not ended and not events.queue.empty():
                        ended = events.queue.get_nowait() is None
                    await self._update(docker, publish)
                return await _why_ended(stream)
            finally:
                stream.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await stream

    def _concerns_target(self, event: Mapping[str, Any]) -> bool:
        attributes = event.get("Actor", {}).get("Attributes", {})
        return attributes.get("name") == self.target or (
            attributes.get(SERVICE_LABEL) == self.target
            and (self.project is None or attributes.get(PROJECT_LABEL) == self.project)
        )

    async def _update(self, docker: aiodocker.Docker, publish: Publish) -> None:
        reading = await self._read(docker)
        if reading.version is not None:
            publish(reading.version)

    async def _read(self, docker: aiodocker.Docker) -> Reading:
        replicas = []
        labels_seen: dict[str, Mapping[str, str]] = {}
        for container_id in await self._find(docker):
            try:
                info = await docker.containers.get(container_id)
                state, ready = container_state(info["State"])
                image = info["Image"]
                if image not in labels_seen:
                    labels_seen[image] = self._image_labels.get(image) or await self._labels_of(docker, image)
            except DockerError as error:
                if error.status == 404:
                    continue  # removed since it was listed: not part of the target any more
                raise
            version, label_problem = version_from_labels(labels_seen[image], self.labels)
            replicas.append(Replica(info["Name"].lstrip("/"), state, ready, version, label_problem))
        self._image_labels = labels_seen
        reading = agree(self.target, replicas)
        self._report(reading)
        return reading

    async def _find(self, docker: aiodocker.Docker) -> list[str]:
        """The ids of the running containers named as the target or of its compose service."""
        service_filter = [f"{SERVICE_LABEL}={self.target}"]
        if self.project is not None:
            service_filter.append(f"{PROJECT_LABEL}={self.project}")
        by_name = await docker.containers.list(filters={"name": [self.target]})
        by_service = await docker.containers.list(filters={"label": service_filter})
        # The name filter matches parts of names too: keep exact matches only.
        named = [c.id for c in by_name if f"/{self.target}" in c["Names"]]
        return list(dict.fromkeys(named + [c.id for c in by_service]))

    async def _labels_of(self, docker: aiodocker.Docker, image: str) -> Mapping[str, str]:
        info = await docker.images.inspect(image)
        labels: Mapping[str, str] | None = (info.get("Config") or {}).get("Labels")
        return labels or {}

    def _report(self, reading: Reading) -> None:
        """Log what changed since the last read (not every read), and keep /healthz current."""
        last, self._last_reading = self._last_reading, reading
        if last is None or last.summary() != reading.summary():
            log.info("target read", target=self.target, containers=reading.summary(), version=reading.version)
        if reading.waiting_for is None:
            if self.problem is not None:
                log.info("target ready", target=self.target, version=reading.version)
            self.problem = None
            return
        problem = f"waiting for {reading.waiting_for}"
        if problem != self.problem:
            log.warning("keeping the last version", target=self.target, waiting_for=reading.waiting_for)
        self.problem = problem


async def _why_ended(stream: "asyncio.Task[None]") -> str:
    try:
        await stream
    except Exception as error:  # a broken stream fails in many ways; each one means: reconnect
        return _describe(error)
    return "its event stream ended"


def _describe(error: BaseException) -> str:
    return str(error) or type(error).__name__
