"""A small run of the benchmark against both real servers: the tooling works and every client
gets every event. No timing is asserted (this machine is shared and noisy)."""

import re
from pathlib import Path

import pytest

from bench import kernel_limits
from bench.__main__ import main
from bench.scenarios import run_fanout, run_leak, run_storm, source_count
from bench.servers import NCHAN_MODULE, NGINX

CLIENTS = 200
CHANGES = 2


def _require_nchan() -> None:
    for needed in (NGINX, NCHAN_MODULE):
        assert needed.exists(), f"{needed} is missing: install Debian's nginx and libnginx-mod-nchan"


@pytest.mark.nginx
@pytest.mark.parametrize("server", ["sidecar", "nchan", "floor"])
def test_every_client_gets_every_change(server: str, tmp_path: Path) -> None:
    if server == "nchan":
        _require_nchan()
    result = run_fanout(server, CLIENTS, tmp_path, client_processes=2, changes=CHANGES)
    assert (result.ready, result.errors, result.lost) == (CLIENTS, 0, 0)
    assert len(result.latencies) == CLIENTS * CHANGES
    # The memory readings are the server's own, taken. Per client they are only a sign of life at
    # this size: a stream costs the sidecar about 1.6 KB (bench/RESULTS.md), less than what a
    # fresh process frees or maps in the meantime, so the difference may even be negative.
    assert min(result.pss_before, result.pss_connected, result.rss_before, result.rss_connected) > 1_000_000
    assert abs(result.pss_per_client) < 100_000, result.pss_per_client
    assert abs(result.rss_per_client) < 100_000, result.rss_per_client


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


def _rows(table: str) -> list[list[str]]:
    return [
        [cell.strip() for cell in line.strip("|").split("|")] for line in table.splitlines() if line.startswith("|")
    ]


@pytest.mark.nginx
def test_scale_run_prints_its_table_plots_and_scrapes(capsys: pytest.CaptureFixture[str]) -> None:
    """The scale path at a tiny size: 150 streams per process make two workers per server and two
    load-client processes; the largest size also runs the /metrics check; the floor (bench/floor.py)
    has its own table against nchan."""
    _require_nchan()
    argv = ["--sizes", "", "--client-check", "0", "--workers-clients", "0", "--storm-clients", "0"]
    argv += [
        "--leak-cycles",
        "0",
        "--scale",
        "200,300",
        "--per-process",
        "150",
        "--changes",
        "2",
        "--scrapes",
        "3",
        "--floor",
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    scale = out.split("## Scale")[1].split("```mermaid")[0]
    rows = {(row[0], row[1]): row for row in _rows(scale)}
    for clients in ("200", "300"):
        for server in ("sidecar", "nchan"):
            row = rows[(clients, server)]
            assert (row[2], row[3]) == ("2", "2"), f"{server} at {clients}: workers, client processes {row[2:4]}"
            assert row[-2:] == ["0", "0"], f"{server} at {clients}: errors and lost {row[-2:]}"
            # (the sidecar's 1.6 KB a stream is within what a fresh process frees meanwhile at this size)
            per_connection = float(row[6])
            assert per_connection > 0 or server == "sidecar", f"{server} at {clients}: PSS per connection {row[6]}"
        assert rows[(clients, "**sidecar / nchan**")][6].strip("*") != "-"
    floor = {(row[0], row[1]): row for row in _rows(out.split("## The floor")[1].split("##")[0])}
    for clients in ("200", "300"):
        assert (floor[(clients, "floor")][2], floor[(clients, "floor")][-2:]) == ("2", ["0", "0"]), floor
        assert floor[(clients, "**floor / nchan**")][10].strip("*") != "-", floor
    charts = re.findall(r"```mermaid\nxychart-beta\n(.*?)```", out, re.DOTALL)
    assert len(charts) == 2, out
    for chart in charts:
        assert 'x-axis "clients" ["200", "300"]' in chart
        series = dict(re.findall(r"(bar|line) \[(.*)\]", chart))  # nchan's bars, the sidecar's line
        assert sorted(series) == ["bar", "line"], chart
        assert len([value for value in series["bar"].split(",") if float(value) > 0]) == 2, chart
        assert len([float(value) for value in series["line"].split(",")]) == 2, chart
    [scrape] = _rows(out.split("## /metrics")[1].split("##")[0])[2:]
    assert scrape[:3] == ["300", "2", "3"], scrape
    assert float(scrape[3]) >= 0 and int(scrape[5]) >= 2 and scrape[-1] == "0", scrape


def test_kernel_limits_too_low_are_named() -> None:
    low = {
        "net.ipv4.ip_local_port_range": "50000 50999",
        "net.core.somaxconn": "128",
        "net.ipv4.tcp_mem": "1000 2000 3000",
        "net.netfilter.nf_conntrack_max": "65536",
        "net.netfilter.nf_conntrack_count": "100",
        "fs.file-max": "100000",
    }
    found = kernel_limits.problems(100_000, 9_000, 19_000, read=low.get, open_files_hard=1024)
    assert [line.split(" ")[0] for line in found] == [
        "open",
        "net.ipv4.ip_local_port_range",
        "net.core.somaxconn",
        "net.ipv4.tcp_mem",
        "net.netfilter.nf_conntrack_max",
        "fs.file-max",
    ]
    enough = {**low, "net.ipv4.ip_local_port_range": "32768 60999", "net.core.somaxconn": "4096"}
    enough |= {"net.ipv4.tcp_mem": "287913 383885 575826", "net.netfilter.nf_conntrack_max": "262144"}
    enough |= {"fs.file-max": "2466300"}
    assert kernel_limits.problems(100_000, 9_000, 19_000, read=enough.get, open_files_hard=20_000) == []
    # Where the kernel has no conntrack, nothing is asked of it.
    del enough["net.netfilter.nf_conntrack_max"]
    assert kernel_limits.problems(100_000, 9_000, 19_000, read=enough.get, open_files_hard=20_000) == []


def test_a_source_address_keeps_to_the_half_of_its_ports_bind_uses() -> None:
    """100,000 streams from 6 processes over 8 addresses put 16,667 on one address, past the
    14,116 ports of the half of 32768-60999 where bind() looks first: slow, so named."""
    ports = {"net.ipv4.ip_local_port_range": "32768 60999"}
    [problem] = kernel_limits.problems(
        100_000, kernel_limits.ports_per_source(100_000, 6, 8), 19_000, ports.get, 20_000
    )
    assert problem.startswith("net.ipv4.ip_local_port_range is 32768 60999"), problem
    # The bench gives each load-client process two addresses at least.
    assert kernel_limits.ports_per_source(100_000, 6, source_count(6)) <= 14_116
    assert kernel_limits.problems(100_000, 8_334, 19_000, ports.get, 20_000) == []
