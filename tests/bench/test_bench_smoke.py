"""A small run of the benchmark against both real servers: the tooling works and every client
gets every event. No timing is asserted (this machine is shared and noisy)."""

from pathlib import Path

import pytest

from bench.scenarios import run_fanout, run_leak, run_storm
from bench.servers import NCHAN_MODULE, NGINX

CLIENTS = 200
CHANGES = 2


def _require_nchan() -> None:
    for needed in (NGINX, NCHAN_MODULE):
        assert needed.exists(), f"{needed} is missing: install Debian's nginx and libnginx-mod-nchan"


@pytest.mark.nginx
@pytest.mark.parametrize("server", ["sidecar", "nchan"])
def test_every_client_gets_every_change(server: str, tmp_path: Path) -> None:
    if server == "nchan":
        _require_nchan()
    result = run_fanout(server, CLIENTS, tmp_path, client_processes=2, changes=CHANGES)
    assert (result.ready, result.errors, result.lost) == (CLIENTS, 0, 0)
    assert len(result.latencies) == CLIENTS * CHANGES
    # The memory reading is the server's own: a fresh server grows with its connections, by
    # kilobytes each (about 11 KB for the sidecar, 14 KB for nchan in bench/RESULTS.md).
    assert 0 < result.bytes_per_client < 100_000, result.bytes_per_client


def test_two_sidecar_workers_each_serve_every_change(tmp_path: Path) -> None:
    result = run_fanout("sidecar", CLIENTS, tmp_path, workers=2, client_processes=2, changes=CHANGES)
    assert (result.ready, result.errors, result.lost) == (CLIENTS, 0, 0)
    assert len(result.latencies) == CLIENTS * CHANGES


def test_clients_come_back_after_a_sidecar_restart(tmp_path: Path) -> None:
    result = run_storm("sidecar", 100, tmp_path)
    assert result.back == 100


def test_a_storm_on_two_sidecar_workers_spreads_the_tabs_over_the_hosts_window(tmp_path: Path) -> None:
    # No --retry-jitter: any jitter the tabs were given is the window the host's streams need.
    settings = ["--retry-jitter", "0", "--reconnect-rate", "25"]
    result = run_storm("sidecar", CLIENTS, tmp_path, workers=2, client_processes=2, settings=settings)
    assert result.back == CLIENTS
    assert 3.0 < result.retry_max <= 3.0 + CLIENTS / 50, result.retry_max


@pytest.mark.nginx
def test_a_storm_on_nchan_with_two_workers_brings_every_client_back(tmp_path: Path) -> None:
    _require_nchan()
    result = run_storm("nchan", CLIENTS, tmp_path, workers=2, client_processes=2)
    assert result.back == CLIENTS
    assert result.retry_max == 3.0  # nchan sends no retry: the browser's default


def test_leak_check_runs_its_cycles(tmp_path: Path) -> None:
    result = run_leak("sidecar", 400, tmp_path, batch=200, warmup=200)
    assert result.errors == 0
    assert result.rss_start > 10 << 20, "not the memory of a running Python server"
    assert result.growth < 0.5, f"memory grew by {result.growth:.0%} over {result.cycles} connect/close cycles"
