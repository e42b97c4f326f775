"""GET /metrics and /healthz with --workers 2, read by a real Prometheus and by promtool: one
picture of the host, whichever worker answers, and one --max-clients cap for all of them."""

import asyncio
import os
import signal
import urllib.request
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import StartSidecar
from tests.docs import blocks, read, section
from tests.metric_samples import Samples, parse_samples
from tests.metrics.prometheus_server import PrometheusServer, promtool, promtool_check_metrics
from tests.sidecar_process import SidecarProcess
from tests.waiting import eventually, wait_until
from tests.worker_streams import health, open_stream, received, serving_workers, streams_on_every_worker

pytestmark = pytest.mark.prometheus


def scrape_text(sidecar: SidecarProcess) -> bytes:
    """One scrape in the classic text format (what promtool reads), on a new connection."""
    with urllib.request.urlopen(f"{sidecar.url}/metrics", timeout=5) as reply:
        assert reply.headers["Content-Type"].startswith("text/plain")
        body: bytes = reply.read()
        return body


def scrape(sidecar: SidecarProcess) -> Samples:
    return parse_samples(scrape_text(sidecar).decode())


def file_source(tmp_path: Path) -> tuple[Path, list[str]]:
    version_file = tmp_path / "version.txt"
    version_file.write_text("v1\n")
    return version_file, ["--source", "file", "--version-file", str(version_file), "--workers", "2"]


def scraped_by_prometheus(
    start_sidecar: StartSidecar, prometheus: PrometheusServer, args: list[str]
) -> tuple[SidecarProcess, str]:
    """A sidecar with both workers serving, scraped by Prometheus; and its PromQL instance selector."""
    sidecar = start_sidecar(args)
    serving_workers(sidecar, 2)
    prometheus.scrape([sidecar.port])
    return sidecar, f'{{instance="127.0.0.1:{sidecar.port}"}}'


def versions_seen(prometheus: PrometheusServer, instance: str) -> list[str]:
    return sorted(series["metric"]["version"] for series in prometheus.query(f"version_sidecar_version_info{instance}"))


async def test_prometheus_sees_every_workers_clients_and_a_version_change(
    start_sidecar: StartSidecar, prometheus: PrometheusServer, tmp_path: Path
) -> None:
    version_file, args = file_source(tmp_path)
    sidecar, instance = scraped_by_prometheus(start_sidecar, prometheus, args)
    async with aiohttp.ClientSession() as session:
        streams = await streams_on_every_worker(session, sidecar)
        connected = f"sum(version_sidecar_clients{instance})"
        await eventually(lambda: prometheus.value(connected) == len(streams), f"{connected} == {len(streams)}", 30)
        assert prometheus.value(f"up{instance}") == 1
        assert versions_seen(prometheus, instance) == ["v1"]
        assert prometheus.value(f"version_sidecar_source_up{instance}") == 1

        version_file.write_text("v2\n")
        assert all([await received(stream, "v2") for stream in streams])
        await eventually(lambda: versions_seen(prometheus, instance) == ["v2"], "version_info of v2 alone", 30)
        assert prometheus.value(f"version_sidecar_version_changes_total{instance}") == 1
        # Each stream had its first event and the change, and they were counted.
        sent = prometheus.value(f"version_sidecar_events_sent_total{instance}")
        assert sent is not None and sent >= 2 * len(streams)
        assert prometheus.value(connected) == len(streams)


async def test_a_restarted_worker_leaves_no_clients_counted_and_no_counter_goes_back(
    start_sidecar: StartSidecar, prometheus: PrometheusServer, tmp_path: Path
) -> None:
    _, args = file_source(tmp_path)
    sidecar, instance = scraped_by_prometheus(start_sidecar, prometheus, args)
    async with aiohttp.ClientSession() as session:
        streams = await streams_on_every_worker(session, sidecar)
        sent = f"version_sidecar_events_sent_total{instance}"
        await eventually(lambda: (prometheus.value(sent) or 0) >= len(streams), "the first events scraped", 30)
        victim, survivor = health(sidecar)["workers"]
        os.kill(victim["pid"], signal.SIGKILL)
        restarts = f"version_sidecar_worker_restarts_total{instance}"
        await eventually(lambda: prometheus.value(restarts) == 1, "the restart scraped", 30)
        clients = f"sum(version_sidecar_clients{instance})"
        await eventually(lambda: prometheus.value(clients) == survivor["clients"], f"{clients} of the survivor", 30)
        assert prometheus.value(f"version_sidecar_workers{instance}") == 2
        assert prometheus.value(f"resets({sent}[5m])") == 0
        assert prometheus.value(f"resets(version_sidecar_clients_connected_total{instance}[5m])") == 0
        assert len(streams) == victim["clients"] + survivor["clients"]


def test_promtool_finds_nothing_to_say_about_a_scrape(start_sidecar: StartSidecar, tmp_path: Path) -> None:
    version_file, args = file_source(tmp_path)
    sidecar = start_sidecar([*args, "--max-clients", "1"])
    serving_workers(sidecar, 2)
    version_file.write_text('v2 "quoted" \\ back\n')  # a label value that needs escaping
    wait_until(lambda: health(sidecar)["version"] == 'v2 "quoted" \\ back', "the new version")
    checked = promtool_check_metrics(scrape_text(sidecar))
    assert (checked.returncode, checked.stdout, checked.stderr) == (0, "", "")
    samples = scrape(sidecar)
    assert samples["version_sidecar_version_info", (("version", 'v2 "quoted" \\ back'),)] == 1
    assert samples["version_sidecar_max_clients", ()] == 1


async def test_max_clients_holds_for_the_whole_host(start_sidecar: StartSidecar) -> None:
    sidecar = start_sidecar(["--workers", "2", "--max-clients", "3"], env={"APP_VERSION": "v1"})
    serving_workers(sidecar, 2)
    url = f"{sidecar.url}/events/version"
    async with aiohttp.ClientSession() as session:
        burst = await asyncio.gather(*(session.get(url) for _ in range(20)))  # both workers at once
        admitted = [response for response in burst if response.status == 200]
        assert (len(admitted), sum(response.status == 503 for response in burst)) == (3, 17)
        for _ in range(20):  # each on a new connection (a 503 closes its own), so on either worker
            async with session.get(url) as refused:
                assert refused.status == 503
        answer = health(sidecar)
        assert answer["clients"] == sum(worker["clients"] for worker in answer["workers"]) == 3
        samples = scrape(sidecar)
        assert (samples["version_sidecar_clients", ()], samples["version_sidecar_clients_refused_total", ()]) == (3, 37)
        admitted[0].close()  # a seat given back is taken again
        await eventually(lambda: health(sidecar)["clients"] == 2, "the closed stream to be let go")
        await open_stream(session, sidecar)  # 200 and its first event
        assert health(sidecar)["clients"] == 3


async def test_healthz_and_metrics_answer_for_every_worker(start_sidecar: StartSidecar) -> None:
    sidecar = start_sidecar(["--workers", "2"], env={"APP_VERSION": "v1"})
    serving_workers(sidecar, 2)
    async with aiohttp.ClientSession() as session:
        streams = await streams_on_every_worker(session, sidecar)
        answers = [health(sidecar) for _ in range(30)]  # each on a new connection: the kernel picks the worker
        assert {answer["worker"] for answer in answers} == {0, 1}
        for answer in answers:
            assert answer["clients"] == len(streams)
            assert [worker["clients"] for worker in answer["workers"]] == [w["clients"] for w in answers[0]["workers"]]
            assert answer["status"] == "ok"
        for _ in range(10):
            samples = scrape(sidecar)
            assert samples["version_sidecar_clients", ()] == len(streams)
            assert samples["version_sidecar_workers", ()] == 2


def test_the_metrics_doc_is_what_a_scrape_and_promtool_say(
    start_sidecar: StartSidecar, prometheus: PrometheusServer, tmp_path: Path
) -> None:
    metrics = section(read("docs/operations.md"), "Metrics")
    sidecar = start_sidecar(["--workers", "2"], env={"APP_VERSION": "v1"})
    serving_workers(sidecar, 2)
    documented = {line.split("`")[1].split("{")[0] for line in metrics.splitlines() if line.startswith("| `version")}
    scraped = {name.removesuffix("_sum").removesuffix("_count") for name, _ in scrape(sidecar)}
    assert documented == scraped
    scrape_config, alert_rules = blocks(metrics, "yaml")
    for kind, text in [("config", scrape_config), ("rules", alert_rules)]:
        path = tmp_path / f"{kind}.yml"
        path.write_text(text)
        checked = promtool(["check", kind, str(path)])
        assert checked.returncode == 0, checked.stdout + checked.stderr
    queries = [line for line in blocks(metrics, "promql")[0].splitlines() if line and not line.startswith("#")]
    assert len(queries) == 4
    for query in queries:
        prometheus.query(query)  # the query API accepts it
