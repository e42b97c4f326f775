"""`python -m bench`: the sidecar and nginx+nchan under the same load, in one run, as tables.

Every part is bounded in time (connects, events and reconnects each have a timeout) and the
servers and client processes are stopped at the end of each part, whatever happened.
"""

import argparse
import math
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from . import kernel_limits
from .loadclient import raise_open_files_limit
from .plot import xychart
from .scenarios import (
    FanoutResult,
    LeakResult,
    StormResult,
    median,
    run_fanout,
    run_leak,
    run_side_by_side,
    run_storm,
    source_count,
)


def _sizes(text: str) -> list[int]:
    return [int(part.replace("_", "")) for part in text.split(",") if part]


# Streams one load-client process holds: under the 20,000 open files a process may have here,
# and as few processes as that allows, since each one takes CPU from the server on 2 cores.
# The scale run gives each server as many workers by the same rule (--per-process).
STREAMS_PER_CLIENT_PROCESS = 19_000


def _client_processes(clients: int, per_process: int = STREAMS_PER_CLIENT_PROCESS) -> int:
    return max(1, math.ceil(clients / per_process))


def _ms(seconds: float) -> str:
    return "-" if math.isnan(seconds) else f"{seconds * 1000:.0f}"


def _ratio(ours: float, theirs: float) -> str:
    if theirs == 0 or math.isnan(ours) or math.isnan(theirs):
        return "-"
    return f"{ours / theirs:.2f}"


def fanout_table(pairs: Sequence[tuple[FanoutResult, FanoutResult | None]]) -> str:
    head = (
        "| clients | server | workers | client procs | connect s | conn/s | PSS KB/conn | RSS KB/conn "
        "| p50 ms | p99 ms | max ms | CPU connect s | CPU fan-out s | CPU µs/client/fan-out "
        "| client CPU µs/client/fan-out | errors | lost |\n"
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    )
    rows = []
    for ours, theirs in pairs:
        for result in (ours, theirs):
            if result is None:
                continue
            rows.append(
                f"| {result.clients:,} | {result.server} | {result.workers} | {result.client_processes} "
                f"| {result.connect_seconds:.2f} | {result.ready / max(result.connect_seconds, 1e-9):,.0f} "
                f"| {result.pss_per_client / 1024:.1f} | {result.rss_per_client / 1024:.1f} "
                f"| {_ms(result.latency(0.5))} | {_ms(result.latency(0.99))} "
                f"| {_ms(result.latency_max)} | {result.cpu_connect:.2f} | {result.cpu_fanout:.2f} "
                f"| {result.cpu_us_per_client_fanout:.1f} | {result.client_cpu_us_per_client_fanout:.1f} "
                f"| {result.errors} | {result.lost} |"
            )
        if theirs is not None:
            rows.append(
                f"| {ours.clients:,} | **{ours.server} / {theirs.server}** | | "
                f"| {_ratio(ours.connect_seconds, theirs.connect_seconds)} | "
                f"| **{_ratio(ours.pss_per_client, theirs.pss_per_client)}** "
                f"| {_ratio(ours.rss_per_client, theirs.rss_per_client)} "
                f"| {_ratio(ours.latency(0.5), theirs.latency(0.5))} "
                f"| **{_ratio(ours.latency(0.99), theirs.latency(0.99))}** "
                f"| {_ratio(ours.latency_max, theirs.latency_max)} | {_ratio(ours.cpu_connect, theirs.cpu_connect)} "
                f"| {_ratio(ours.cpu_fanout, theirs.cpu_fanout)} "
                f"| {_ratio(ours.cpu_us_per_client_fanout, theirs.cpu_us_per_client_fanout)} "
                f"| {_ratio(ours.client_cpu_us_per_client_fanout, theirs.client_cpu_us_per_client_fanout)} | | |"
            )
    return head + "\n".join(rows)


def scale_plots(pairs: Sequence[tuple[FanoutResult, FanoutResult | None]]) -> str:
    """Per-connection memory (PSS) and p99 against clients, nchan as bars, the sidecar as a line."""
    clients = [ours.clients for ours, _ in pairs]

    def nchan(value: "Callable[[FanoutResult], float]") -> list[float]:
        return [value(theirs) if theirs is not None else float("nan") for _, theirs in pairs]

    def sidecar(value: "Callable[[FanoutResult], float]") -> list[float]:
        return [value(ours) for ours, _ in pairs]

    def memory(result: FanoutResult) -> float:
        return result.pss_per_client / 1024

    def p99(result: FanoutResult) -> float:
        return result.latency(0.99) * 1000

    return (
        xychart("PSS KB per connection (bars: nchan, line: sidecar)", "KB", clients, nchan(memory), sidecar(memory))
        + "\n\n"
        + xychart("p99 change-to-receipt ms (bars: nchan, line: sidecar)", "ms", clients, nchan(p99), sidecar(p99))
    )


def scrape_table(results: Sequence[FanoutResult]) -> str:
    head = (
        "| clients | workers | scrapes | scrape median ms | scrape max ms | scrapes during changes | their max ms "
        "| p99 without scraper ms | p99 with scraper ms | with / without | lost |\n"
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    )
    rows = []
    for result in results:
        check = result.scrape
        if check is None:
            continue
        without, scraped = check.unscraped.latency(0.99), check.scraped.latency(0.99)
        rows.append(
            f"| {result.clients:,} | {result.workers} | {len(check.idle_scrapes)} "
            f"| {_ms(median(check.idle_scrapes))} | {_ms(max(check.idle_scrapes, default=math.nan))} "
            f"| {len(check.scrapes_during)} | {_ms(max(check.scrapes_during, default=math.nan))} "
            f"| {_ms(without)} | {_ms(scraped)} | {_ratio(scraped, without)} "
            f"| {max(check.scraped.lost, check.unscraped.lost)} |"
        )
    return head + "\n".join(rows)


def storm_table(results: Sequence[StormResult]) -> str:
    head = (
        "| clients | server | workers | longest retry: s | bound s | stop s | start s | back "
        "| all back after the restart s | longest without a stream s | bound held | refused clients "
        "| refused at most s | refused attempts | first-to-last s | peak reconnects/s | CPU s |\n"
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|\n"
    )
    return head + "\n".join(
        f"| {r.clients:,} | {r.server} | {r.workers} | {r.retry_max:.2f} | {r.bound:.2f} | {r.stop_seconds:.2f} "
        f"| {r.start_seconds:.2f} | {r.back:,} | {r.after_restart:.2f} | {r.away_longest:.2f} "
        f"| {'yes' if r.bound_held else '**no**'} | {r.refused_clients:,} | {r.refused_longest:.2f} "
        f"| {r.attempts_refused:,} | {r.seconds_spread:.2f} | {r.peak_per_second:,} | {r.cpu_seconds:.2f} |"
        for r in results
    )


def leak_table(results: Sequence[LeakResult]) -> str:
    head = "| server | cycles | RSS fresh MB | RSS after warm-up MB | RSS after cycles MB | growth | errors |\n"
    head += "|---|---:|---:|---:|---:|---:|---:|\n"
    return head + "\n".join(
        f"| {r.server} | {r.cycles:,} | {r.rss_fresh / 2**20:.1f} | {r.rss_start / 2**20:.1f} "
        f"| {r.rss_end / 2**20:.1f} | {r.growth * 100:+.1f}% | {r.errors} |"
        for r in results
    )


def machine() -> str:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")), "unknown CPU",
    )  # fmt: skip
    memory_kb = int(Path("/proc/meminfo").read_text().split()[1])
    nginx = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip()
    load = os.getloadavg()
    return (
        f"{platform.node()}: {os.cpu_count()} CPUs ({cpu}), {memory_kb / 2**20:.1f} GiB RAM, "
        f"Linux {platform.release()}, Python {platform.python_version()}, {nginx}, "
        f"load average before the run {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )


def run_scale(
    kinds: list[str], sizes: Sequence[int], work: Path, per_process: int, changes: int, scrapes: int
) -> list[dict[str, FanoutResult]]:
    """Each size, each server alone (never two servers' streams at once), the first server of a
    size the last one of the size before; the sidecar's /metrics at the largest size."""
    runs: list[dict[str, FanoutResult]] = []
    for turn, size in enumerate(sizes):
        processes = _client_processes(size, per_process)
        results: dict[str, FanoutResult] = {}
        for kind in kinds if turn % 2 == 0 else kinds[::-1]:
            results[kind] = run_fanout(
                kind,
                size,
                work / f"scale-{size}-{kind}",
                workers=processes,
                client_processes=processes,
                changes=changes,
                scrapes=scrapes if size == max(sizes) else 0,
            )
            print(fanout_table([(results[kind], None)]), file=sys.stderr, flush=True)  # should a later one fail
        runs.append(results)
    return runs


def against_nchan(runs: Sequence[dict[str, FanoutResult]], kind: str) -> list[tuple[FanoutResult, FanoutResult | None]]:
    return [(results[kind], results.get("nchan")) for results in runs if kind in results]


def _demands(args: argparse.Namespace) -> tuple[int, int, int]:
    """Connections at once, ports from the busiest source address, streams in the busiest
    process: the most any part of the run asks for."""
    servers = 1 if args.only else 2
    parts = [(size, _client_processes(size), servers) for size in args.sizes]  # both at once
    parts += [(size, _client_processes(size, args.per_process), 1) for size in args.scale]
    parts += [(size, _client_processes(size), 1) for size in (args.workers_clients, args.storm_clients)]
    parts += [(args.client_check, 1, 1)]
    parts = [(size, processes, fleets) for size, processes, fleets in parts if size > 0] or [(0, 1, 1)]
    return (
        max(size * fleets for size, _, fleets in parts),
        max(
            fleets * kernel_limits.ports_per_source(size, processes, source_count(processes))
            for size, processes, fleets in parts
        ),
        max(math.ceil(size / processes) for size, processes, _ in parts),
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--sizes", type=_sizes, default=[1000, 10000, 19000], help="clients per fan-out run")
    parser.add_argument("--workers-clients", type=int, default=38000, help="clients for the 2-worker run (0: skip)")
    parser.add_argument("--storm-clients", type=int, default=38000, help="clients for the reconnect storm (0: skip)")
    parser.add_argument("--storm-workers", type=int, default=2, help="workers of each server in the storm")
    parser.add_argument(
        "--storm-reconnect-rate", type=int, help="the sidecar's --reconnect-rate in the storm (unset: its default)"
    )
    parser.add_argument(
        "--storm-hold",
        type=float,
        default=35.0,
        help="seconds each server holds the storm's streams before its restart (35: one heartbeat of "
        "30 s and some, so every stream has heard one)",
    )
    parser.add_argument("--leak-cycles", type=int, default=50000, help="connect/disconnect cycles (0: skip)")
    parser.add_argument(
        "--client-check",
        type=int,
        default=10000,
        help="clients for the 1-vs-2 load-client-processes check on the sidecar (0: skip)",
    )
    parser.add_argument("--changes", type=int, default=5, help="version changes timed per fan-out run")
    parser.add_argument("--only", choices=["sidecar", "nchan"], help="run one server only")
    parser.add_argument(
        "--scale",
        type=_sizes,
        default=[],
        help="scale run: at each size each server alone, one after the other, with a worker and a "
        "load-client process per --per-process streams (e.g. 10000,19000,38000,100000)",
    )
    parser.add_argument(
        "--per-process",
        type=int,
        default=STREAMS_PER_CLIENT_PROCESS,
        help="scale run: streams per server worker and per load-client process",
    )
    parser.add_argument(
        "--scrapes",
        type=int,
        default=30,
        help="scale run, largest size: /metrics scrapes timed on the sidecar, then --changes pairs "
        "of changes with and without a scraper every second (0: skip)",
    )
    parser.add_argument(
        "--floor",
        action="store_true",
        help="scale run: also bench/floor.py, the least a server can do per stream (the best ratio to "
        "nchan any server could reach on this machine)",
    )
    args = parser.parse_args(argv)
    raise_open_files_limit()
    too_low = kernel_limits.problems(*_demands(args))
    if too_low:
        print("python -m bench: this machine's limits are too low for the run asked:", file=sys.stderr)
        for problem in too_low:
            print(f"  {problem}", file=sys.stderr)
        return 2
    # Stopped from outside (e.g. `timeout`): unwind, so every server and client process is stopped.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(143))
    kinds = [args.only] if args.only else ["sidecar", "nchan"]
    print(f"# python -m bench {' '.join(argv if argv is not None else sys.argv[1:])}")
    print(f"machine: {machine()}")
    print(f"started: {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}\n", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-") as scratch:
        work = Path(scratch)
        if args.sizes:
            pairs: list[tuple[FanoutResult, FanoutResult | None]] = []
            for size in args.sizes:
                processes = _client_processes(size)
                results = run_side_by_side(
                    kinds, size, work / f"fanout-{size}", client_processes=processes, changes=args.changes
                )
                pairs.append((results[kinds[0]], results.get("nchan") if len(kinds) > 1 else None))
            print("## Fan-out: one server process\n")
            print(fanout_table(pairs) + "\n", flush=True)
        if args.scale:
            scale_kinds = [*kinds, "floor"] if args.floor else kinds
            runs = run_scale(scale_kinds, args.scale, work, args.per_process, args.changes, args.scrapes)
            scale_pairs = against_nchan(runs, kinds[0])
            print(f"## Scale: each server alone, a worker per {args.per_process:,} streams\n")
            print(fanout_table(scale_pairs) + "\n", flush=True)
            print(scale_plots(scale_pairs) + "\n", flush=True)
            if args.floor:
                print("## The floor: the least a server can do per stream, against nchan\n")
                print(fanout_table(against_nchan(runs, "floor")) + "\n", flush=True)
            if "sidecar" in kinds:
                print("## /metrics while the sidecar holds its streams\n")
                print(scrape_table([ours for ours, _ in scale_pairs]) + "\n", flush=True)
        if args.client_check:
            checks = [
                run_fanout("sidecar", args.client_check, work / f"check-{n}", client_processes=n, changes=args.changes)
                for n in (1, 2)
            ]
            print("## Load client check: the same sidecar run from 1 and from 2 client processes\n")
            print(fanout_table([(check, None) for check in checks]) + "\n", flush=True)
        if args.workers_clients:
            worker_pairs: list[tuple[FanoutResult, FanoutResult | None]] = []
            processes = _client_processes(args.workers_clients)
            worker_run = run_fanout(
                "sidecar",
                args.workers_clients,
                work / "workers",
                workers=2,
                client_processes=processes,
                changes=args.changes,
            )
            worker_pairs.append((worker_run, None))
            print("## Two sidecar workers (--workers 2) on one port\n")
            print(fanout_table(worker_pairs) + "\n", flush=True)
        if args.storm_clients:
            rate = [] if args.storm_reconnect_rate is None else ["--reconnect-rate", str(args.storm_reconnect_rate)]
            storms = [
                run_storm(kind, args.storm_clients, work / f"{kind}-storm", workers=args.storm_workers,
                          client_processes=_client_processes(args.storm_clients), settings=rate,
                          hold=args.storm_hold)
                for kind in kinds
            ]  # fmt: skip
            print(f"## Reconnect storm: the host restarted {args.storm_hold:g} s after its tabs connected\n")
            print(storm_table(storms) + "\n", flush=True)
        if args.leak_cycles:
            leaks = [run_leak(kind, args.leak_cycles, work / f"{kind}-leak") for kind in kinds]
            print("## Leak check: connect/disconnect cycles\n")
            print(leak_table(leaks) + "\n", flush=True)
    print(f"finished: {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
