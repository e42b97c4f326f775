"""GET /metrics: the host table (host.py) in Prometheus' formats, whichever worker answers.

One collector reads the table at scrape time, so the hot paths keep nothing but integers in their
rows: no metric object per client, per worker or per event. The family names are part of the
public contract (README, "Metrics").
"""

from collections.abc import Callable, Iterator

from aiohttp import web
from prometheus_client.core import (
    CollectorRegistry,
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.exposition import choose_encoder

from .host import HostState
from .host_memory import DROP_REASONS

PREFIX = "version_sidecar_"


class HostCollector:
    """Turns one read of the host table into metric families."""

    def __init__(self, read: Callable[[], HostState]) -> None:
        self.read = read

    def collect(self) -> Iterator[Metric]:
        host = self.read()
        workers_up = host.workers_up
        yield GaugeMetricFamily(
            PREFIX + "clients", "Streams connected now, over all workers.", value=host.total("clients")
        )
        yield GaugeMetricFamily(
            PREFIX + "max_clients", "Streams the host holds at most (--max-clients).", value=host.max_clients
        )
        info = InfoMetricFamily(PREFIX + "version", "The version announced now (1 for that version only).")
        if host.version is not None:
            info.add_metric([], {"version": host.version})
        yield info
        yield CounterMetricFamily(
            PREFIX + "version_changes",
            "Changes of the announced version, counted once however many workers announce them.",
            value=host.version_changes,
        )
        yield GaugeMetricFamily(
            PREFIX + "source_up",
            "1 while every worker follows its version source without a problem (/healthz ok), else 0.",
            value=int(bool(workers_up) and all(worker.source_up for worker in workers_up)),
        )
        yield CounterMetricFamily(
            PREFIX + "events_sent",
            "Version events written to streams: first events, heartbeats and changes.",
            value=host.total("events_sent"),
        )
        yield CounterMetricFamily(
            PREFIX + "clients_connected", "Streams opened (each got its first event).", value=host.total("connected")
        )
        yield CounterMetricFamily(
            PREFIX + "clients_refused", "Streams refused with 503 (over --max-clients).", value=host.total("refused")
        )
        dropped = CounterMetricFamily(
            PREFIX + "clients_dropped",
            "Streams the sidecar ended because the client stopped reading: too_slow (over --max-buffer "
            "unsent), send_timeout (data waiting longer than --send-timeout).",
            labels=["reason"],
        )
        for reason in DROP_REASONS:
            dropped.add_metric([reason], sum(worker.dropped[reason] for worker in host.workers))
        yield dropped
        yield SummaryMetricFamily(
            PREFIX + "fanout_seconds",
            "Time from a version change until a worker had written it to all of its streams (requests served"
            " between chunks included; a fan-out a newer change took over counts until then).",
            count_value=host.total("fanouts"),
            sum_value=sum(worker.fanout_seconds for worker in host.workers),
        )
        yield GaugeMetricFamily(PREFIX + "workers", "Worker processes serving now.", value=len(workers_up))
        yield CounterMetricFamily(
            PREFIX + "worker_restarts", "Workers that died and were started again.", value=host.total("restarts")
        )
        yield CounterMetricFamily(
            PREFIX + "worker_fork_failures",
            "Worker starts that failed to fork (a process or memory limit); each is retried on the back-off.",
            value=host.total("fork_failures"),
        )
        yield CounterMetricFamily(
            PREFIX + "log_lines_dropped",
            "Log lines dropped because the reader of stderr did not keep up (logging never waits).",
            value=host.total("log_lines_dropped"),
        )
        per_worker = GaugeMetricFamily(
            PREFIX + "worker_clients", "Streams connected now, per worker.", labels=["worker"]
        )
        for worker in host.workers:
            per_worker.add_metric([str(worker.index)], worker.clients)
        yield per_worker


def registry(read: Callable[[], HostState]) -> CollectorRegistry:
    """A registry of the host collector alone (the per-process default collectors would speak
    for whichever worker answers, not for the host)."""
    metrics = CollectorRegistry(auto_describe=False)
    metrics.register(HostCollector(read))
    return metrics


def respond(metrics: CollectorRegistry, request: web.Request) -> web.Response:
    """The scrape, in the format the scraper asks for (OpenMetrics or the classic text format)."""
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    return web.Response(body=encode(metrics), headers={"Content-Type": content_type, "Cache-Control": "no-cache"})
