"""The docker source: the version label of the target's image, read through the Docker Engine API
(aiodocker) and followed live through the engine's event stream, so the sidecar keeps running
across app deploys. A version is announced only when every running, ready container of the
target carries it."""

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import aiodocker
from aiodocker.exceptions import DockerError

from .engine import EngineSource, Reading, image_labels, version_from_labels

SERVICE_LABEL = "com.docker.compose.service"
PROJECT_LABEL = "com.docker.compose.project"
# Container events after which the target is read again; health_status also matches
# "health_status: healthy" (the engine matches this one by prefix).
WATCHED_EVENTS = ("start", "die", "destroy", "health_status")
# The container list's Status text ends with the health, where there is a healthcheck: "Up 2 minutes
# (healthy)", "Up 3 seconds (health: starting)", "Up 1 second (unhealthy)".
HEALTH_IN_STATUS = re.compile(r"\((healthy|unhealthy|health: starting)\)$")
# What a read takes from each entry of the container list.
SUMMARY_KEYS = ("Id", "Names", "State", "Status", "Health", "ImageID")


@dataclass(frozen=True)
class Replica:
    """One running container of the target, as one read saw it."""

    name: str
    state: str  # running, healthy, starting, unhealthy, paused, restarting
    ready: bool
    version: str | None
    label_problem: str | None  # why version is None


def agree(target: str, replicas: Iterable[Replica]) -> Reading:
    """The version to announce: the one every ready replica carries, if they all carry one."""
    found = tuple(sorted(replicas, key=lambda r: r.name))
    summary = tuple(f"{r.name} {r.state} {r.version or '(no version)'}" for r in found)
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
        return Reading(versions.pop(), None, summary)
    return Reading(None, waiting_for, summary)


def container_state(summary: Mapping[str, Any]) -> tuple[str, bool]:
    """(state name, ready) from the container's entry in the engine's container list: running, and
    healthy where it has a healthcheck."""
    state = str(summary.get("State") or "unknown")  # created, running, paused, restarting, exited, ...
    if state != "running":
        return state, False
    health = (summary.get("Health") or {}).get("Status")  # engines with API 1.52 and later
    if not health and (found := HEALTH_IN_STATUS.search(str(summary.get("Status") or ""))):
        health = found.group(1).removeprefix("health: ")
    if health and health != "none":
        return str(health), health == "healthy"
    return "running", True


class DockerSource(EngineSource):
    name = "docker"
    event_filters: ClassVar[Mapping[str, tuple[str, ...]]] = {"type": ("container",), "event": WATCHED_EVENTS}

    def __init__(self, target: str, *, project: str | None = None, **engine: Any) -> None:
        """`project`: the compose project the service must belong to; `engine`: see EngineSource."""
        super().__init__(target, **engine)
        self.project = project
        self._image_labels: dict[str, Mapping[str, str]] = {}  # image id -> labels (images never change)

    def _concerns_target(self, event: Mapping[str, Any]) -> bool:
        attributes = event.get("Actor", {}).get("Attributes", {})
        return attributes.get("name") == self.target or (
            attributes.get(SERVICE_LABEL) == self.target
            and (self.project is None or attributes.get(PROJECT_LABEL) == self.project)
        )

    async def _read(self, docker: aiodocker.Docker) -> Reading:
        # The container list has all a read needs (state, health, image id), so the sidecar never
        # inspects a container: that would show the container's environment, maybe its secrets.
        replicas = []
        labels_seen: dict[str, Mapping[str, str]] = {}
        for summary in await self._find(docker):
            state, ready = container_state(summary)
            image = summary["ImageID"]
            if image not in labels_seen:
                try:
                    labels_seen[image] = self._image_labels.get(image) or await image_labels(docker, image)
                except DockerError as error:
                    if error.status == 404:
                        continue  # removed since it was listed: not part of the target any more
                    raise
            version, label_problem = version_from_labels(labels_seen[image], self.labels)
            replicas.append(Replica(_name(summary["Names"]), state, ready, version, label_problem))
        self._image_labels = labels_seen
        return agree(self.target, replicas)

    async def _find(self, docker: aiodocker.Docker) -> list[Mapping[str, Any]]:
        """The running containers named as the target or of its compose service, as listed."""
        service_filter = [f"{SERVICE_LABEL}={self.target}"]
        if self.project is not None:
            service_filter.append(f"{PROJECT_LABEL}={self.project}")
        by_name = await docker.containers.list(filters={"name": [self.target]})
        by_service = await docker.containers.list(filters={"label": service_filter})
        # The name filter matches parts of names too: keep exact matches only.
        named = [c for c in by_name if f"/{self.target}" in c["Names"]]
        found = {c.id: {key: c[key] for key in SUMMARY_KEYS if key in c} for c in named + by_service}
        return list(found.values())


def _name(names: list[str]) -> str:
    """The container's own name among those listed (links add "/other/alias" names)."""
    own = [name for name in names if name.count("/") == 1]
    return (own or names)[0].lstrip("/")
