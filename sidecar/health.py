"""GET /healthz's answer, for the whole host: "ok" only while every worker serves and follows its
source, else "degraded" with the first reason found; the clients of every worker counted."""

from typing import Any

from .host import HostState


def host_health(host: HostState, worker: int, problem: str | None, version: str | None, source: str) -> dict[str, Any]:
    """The answer of `worker`, whose own announcer reports `problem` and announces `version`."""
    problem = problem or _others_problem(host, worker)
    body: dict[str, Any] = {
        "status": "degraded" if problem else "ok",
        "version": version,
        "clients": host.total("clients"),
        "source": source,
        "problem": problem,
    }
    if len(host.workers) > 1:
        body["worker"] = worker  # the one answering
        body["workers"] = [
            {
                "worker": other.index,
                "pid": other.pid or None,
                "up": other.up,
                "clients": other.clients,
                "version": other.version,
                "problem": other.problem,
                "restarts": other.restarts,
            }
            for other in host.workers
        ]
    return body


def _others_problem(host: HostState, mine: int) -> str | None:
    for worker in host.workers:
        if worker.index == mine:
            continue
        if not worker.up:
            return f"worker {worker.index} is not serving (starting)"
        if not worker.source_up:
            return f"worker {worker.index}: {worker.problem or 'its source is not followed yet'}"
    return None
