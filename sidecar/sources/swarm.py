"""The swarm source: the version of a Docker Swarm service, read through a manager's Engine API and
announced only once the service has converged: no rolling update in progress, and every running
task on every node that is up runs the image the service names. The version is the label of
that image where the manager holds it, else the same label set on the service itself."""

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import aiodocker
from aiodocker.exceptions import DockerError

from .engine import EngineSource, Reading, image_labels, version_from_labels

SERVICE_NAME_LABEL = "com.docker.swarm.service.name"  # on every container of a swarm task
# UpdateStatus.State values after which nothing more changes by itself (absent: never updated).
SETTLED_UPDATE_STATES = (None, "completed", "rollback_completed")
# Task states that are over: such a task runs nothing any more.
ENDED_TASK_STATES = ("complete", "shutdown", "failed", "rejected", "remove", "orphaned")
# Service and node events come from the manager's store; container events only from the node the
# manager runs on. Task state changes on other nodes make no event at all, so while the service
# has not converged it is read again every WAITING_REREAD seconds, and every SETTLED_REREAD once
# it has, in case an event was missed.
WATCHED_TYPES = ("service", "node", "container")
WATCHED_EVENTS = ("create", "update", "remove", "start", "die", "destroy", "health_status")
WAITING_REREAD, SETTLED_REREAD = 2.0, 30.0
LISTED_AT_MOST = 4  # tasks named in a message; the rest are counted


@dataclass(frozen=True)
class Service:
    """The service as one read saw it: what it asks for, and the version that image carries."""

    name: str
    image: str  # the image reference as the service spec holds it (with the digest where pinned)
    update_state: str | None  # UpdateStatus.State: updating, paused, completed, rollback_started, ...
    update_message: str
    version: str | None
    label_problem: str | None  # why version is None


@dataclass(frozen=True)
class Task:
    name: str  # service.slot (replicated) or service.node (global)
    node: str  # its node's host name; "" while it has none
    node_up: bool  # its node is ready: a task on a node that is down serves nobody
    state: str  # the task's actual state: new, pending, ..., starting, running, complete, failed, ...
    image: str  # the image reference the task was created with


def converge(target: str, service: Service | None, tasks: Iterable[Task]) -> Reading:
    """The version to announce once the service has converged, else what it waits for."""
    live = sorted((t for t in tasks if t.state not in ENDED_TASK_STATES), key=lambda t: (t.name, t.node))
    summary = tuple(
        f"{count} {state} {image} on {node}"
        for (state, image, node), count in sorted(Counter(_seen(t) for t in live).items())
    )
    if service is None:
        return Reading(None, f"the service {target} to exist", summary)
    summary = (f"update {service.update_state or 'none'}", *summary)
    running = [t for t in live if t.state == "running" and t.node_up]
    behind = [t for t in running if t.image != service.image]
    waiting_for = None
    if service.update_state not in SETTLED_UPDATE_STATES:
        waiting_for = _update_waiting_for(service, len(running) - len(behind), len(running))
    elif not running:
        waiting_for = f"a running task of {service.name}"
    elif behind:
        waiting_for = f"every running task of {service.name} to run {service.image}: " + _listed(
            f"{t.name} on {t.node} runs {t.image}" for t in behind
        )
    elif service.version is None:
        waiting_for = f"a valid version label: {service.label_problem}"
    else:
        return Reading(service.version, None, summary)
    return Reading(None, waiting_for, summary)


def _seen(task: Task) -> tuple[str, str, str]:
    if not task.node:
        return task.state, task.image, "no node yet"
    return task.state, task.image, task.node if task.node_up else f"{task.node} (down)"


def _update_waiting_for(service: Service, updated: int, running: int) -> str:
    state, message = service.update_state, f": {service.update_message}" if service.update_message else ""
    if state == "updating":
        return (
            f"the update of {service.name} to {service.image} to finish ({updated} of {running} running tasks run it)"
        )
    if state == "paused":
        return f"the paused update of {service.name} to be resumed or rolled back{message}"
    if state == "rollback_started":
        return f"the rollback of {service.name} to finish ({updated} of {running} running tasks run {service.image})"
    if state == "rollback_paused":
        return f"the paused rollback of {service.name} to be resumed{message}"
    return f"the update of {service.name} to finish ({state}{message})"


def _listed(items: Iterable[str]) -> str:
    items = list(items)
    shown = ", ".join(items[:LISTED_AT_MOST])
    return shown + (f" and {len(items) - LISTED_AT_MOST} more" if len(items) > LISTED_AT_MOST else "")


def service_version(
    image: str, labels_of_image: Mapping[str, str] | None, labels_of_service: Mapping[str, str], keys: Iterable[str]
) -> tuple[str | None, str | None]:
    """The version label of the service's image where the manager holds that image and it has one,
    else the same label on the service (deploy.labels in a stack file)."""
    keys = tuple(keys)
    if labels_of_image is not None and any(key in labels_of_image for key in keys):
        return version_from_labels(labels_of_image, keys)
    if any(key in labels_of_service for key in keys):
        return version_from_labels(labels_of_service, keys, "on the service")
    held = "its image" if labels_of_image is not None else f"its image ({image} is not on this manager)"
    return None, f"no label {' or '.join(keys)} on {held} or on the service"


class SwarmSource(EngineSource):
    name = "swarm"
    target_setting = "--swarm-service"
    target_noun = "service"
    summary_field = "tasks"
    event_filters: ClassVar[Mapping[str, tuple[str, ...]]] = {"type": WATCHED_TYPES, "event": WATCHED_EVENTS}

    def _concerns_target(self, event: Mapping[str, Any]) -> bool:
        kind, attributes = event.get("Type"), event.get("Actor", {}).get("Attributes", {})
        if kind == "service":
            return bool(attributes.get("name") == self.target)
        if kind == "container":
            return bool(attributes.get(SERVICE_NAME_LABEL) == self.target)
        return kind == "node"  # a node going down or coming back changes which tasks count

    def _reread_after(self, reading: Reading) -> float:
        return WAITING_REREAD if reading.waiting_for is not None else SETTLED_REREAD

    async def _read(self, docker: aiodocker.Docker) -> Reading:
        try:
            found = await docker.services.inspect(self.target)
        except DockerError as error:
            if error.status == 404:
                return converge(self.target, None, [])
            raise
        spec = found["Spec"]
        if spec["Name"] != self.target:  # the engine also takes a service ID or a prefix of one
            return converge(self.target, None, [])
        image = spec["TaskTemplate"]["ContainerSpec"]["Image"]
        update = found.get("UpdateStatus") or {}
        try:
            labels_of_image: Mapping[str, str] | None = await image_labels(docker, image)
        except DockerError as error:
            if error.status != 404:
                raise
            labels_of_image = None  # not on this manager: the service's own label is read instead
        version, label_problem = service_version(image, labels_of_image, spec.get("Labels") or {}, self.labels)
        service = Service(spec["Name"], image, update.get("State"), update.get("Message", ""), version, label_problem)
        nodes = {node["ID"]: node for node in await docker.nodes.list()}
        tasks = [
            _task(spec["Name"], task, nodes.get(task.get("NodeID", "")))
            for task in await docker.tasks.list(filters={"service": [found["ID"]]})
        ]
        return converge(self.target, service, tasks)


def _task(service: str, task: Mapping[str, Any], node: Mapping[str, Any] | None) -> Task:
    node_id = task.get("NodeID", "")
    hostname = (node or {}).get("Description", {}).get("Hostname") or node_id[:12]
    node_up = node is not None and node.get("Status", {}).get("State") == "ready"
    name = f"{service}.{task['Slot']}" if task.get("Slot") else f"{service}.{node_id[:12]}"
    image = task["Spec"]["ContainerSpec"]["Image"]
    return Task(name, hostname, node_up, task["Status"]["State"], image)
