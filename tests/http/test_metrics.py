"""GET /metrics and /healthz in process: what one worker counts, and what it says for the others
(a second row of the host table written here plays another worker)."""

from pathlib import Path
from typing import Any

from sidecar.app import ANNOUNCER, create_app
from sidecar.config import Settings
from sidecar.host import HostTable
from sidecar.sources.file import FileSource
from tests.http.conftest import MakeSidecar
from tests.http.test_limits import _fill, _silent_reader
from tests.metric_samples import Samples, parse_samples


async def scrape(client: Any, accept: str | None = None) -> Samples:
    response = await client.get("/metrics", headers={"Accept": accept} if accept else {})
    assert response.status == 200
    return parse_samples(await response.text())


async def test_metrics_count_streams_events_refusals_and_drops(make_sidecar: MakeSidecar) -> None:
    sidecar = await make_sidecar(max_clients=2, max_buffer=16384, heartbeat=3600)
    reader = await sidecar.open_stream()
    assert await reader.next_version() == "v1"
    sock, silent = await _silent_reader(sidecar)
    try:
        assert (await sidecar.client.get("/events/version")).status == 503
        samples = await scrape(sidecar.client)
        assert samples["version_sidecar_clients", ()] == 2
        assert samples["version_sidecar_clients_refused_total", ()] == 1
        assert samples["version_sidecar_version_info", (("version", "v1"),)] == 1
        assert samples["version_sidecar_source_up", ()] == 1
        changes = await _fill(sidecar.hub, silent, until="dropped")
        await reader.wait_for_version(f"{changes:0>128}", timeout=30)
    finally:
        sock.close()
    samples = await scrape(sidecar.client)
    assert samples["version_sidecar_clients_dropped_total", (("reason", "too_slow"),)] == 1
    assert samples["version_sidecar_clients_dropped_total", (("reason", "send_timeout"),)] == 0
    # (the file source may announce v1 again in between: at least these changes)
    assert samples["version_sidecar_version_changes_total", ()] >= changes
    assert samples["version_sidecar_clients", ()] == 1
    # Each client's first event, then every change to both until the silent one was dropped.
    assert samples["version_sidecar_events_sent_total", ()] >= 2 + changes
    assert samples["version_sidecar_fanout_seconds_count", ()] >= changes + 1
    assert [(name, value) for (name, labels), value in samples.items() if "version_info" in name] == [
        ("version_sidecar_version_info", 1)
    ]


async def test_metrics_speak_openmetrics_to_who_asks_for_it(make_sidecar: MakeSidecar) -> None:
    sidecar = await make_sidecar()
    response = await sidecar.client.get("/metrics", headers={"Accept": "application/openmetrics-text;version=1.0.0"})
    assert response.headers["Content-Type"].startswith("application/openmetrics-text")
    assert (await response.text()).endswith("# EOF\n")


async def test_healthz_and_metrics_speak_for_every_worker(aiohttp_client: Any, tmp_path: Path) -> None:
    version_file = tmp_path / "version.txt"
    version_file.write_text("v1\n")
    table = HostTable(2, max_clients=10)
    app = create_app(Settings(source="file", version_file=version_file), FileSource(version_file), table.row(0))
    await app[ANNOUNCER].read_initial()
    client = await aiohttp_client(app)
    other = table.row(1)  # another worker, holding two streams, whose source fails
    other.started_serving()
    other.announced(app[ANNOUNCER].hub.version)  # type: ignore[arg-type]
    assert other.seats.take() and other.seats.take()
    other.report("--docker-host: the engine is unreachable")
    stream = await client.get("/events/version")

    health = await (await client.get("/healthz")).json()
    assert (health["status"], health["clients"], health["worker"]) == ("degraded", 3, 0)
    assert health["problem"] == "worker 1: --docker-host: the engine is unreachable"
    assert [(w["worker"], w["clients"], w["up"]) for w in health["workers"]] == [(0, 1, True), (1, 2, True)]
    samples = await scrape(client)
    assert (samples["version_sidecar_clients", ()], samples["version_sidecar_source_up", ()]) == (3, 0)
    assert samples["version_sidecar_worker_clients", (("worker", "1"),)] == 2

    table.worker_died(1)  # what the supervisor does before it starts the next one
    health = await (await client.get("/healthz")).json()
    assert (health["status"], health["clients"]) == ("degraded", 1)
    assert health["problem"] == "worker 1 is not serving (starting)"
    samples = await scrape(client)
    assert (samples["version_sidecar_clients", ()], samples["version_sidecar_workers", ()]) == (1, 1)
    stream.close()
