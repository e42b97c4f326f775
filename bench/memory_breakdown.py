"""Where a stream's memory goes: `python -m bench.memory_breakdown 10000`.

Starts one sidecar process (one worker) twice and connects N streams to it with the load client:
- plain, for the memory the streams cost the kernel's way (PSS and RSS of the process, before the
  streams and with them, per stream);
- traced, for where it goes: tracemalloc is started (and the live objects counted by type) just
  before the streams connect, and a snapshot is taken once they all have their first event. What
  is still allocated then, per stream: by allocating file:line and by object type (the objects
  the garbage collector tracks, at their own size; bytes and strings show in the lines).

The sidecar runs inside a bench-only wrapper that installs the two signal handlers (SIGUSR1:
start, SIGUSR2: snapshot) and then runs the sidecar's own main: product code untouched. The
sidecar measured is the one the interpreter has installed: to measure another checkout (before
and after), run this module from this checkout with that checkout's interpreter, e.g.
`/work/main/.venv/bin/python -m bench.memory_breakdown 10000`.
"""

import argparse
import json
import math
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .loadclient import Fleet, raise_open_files_limit, source_addresses
from .scenarios import source_count
from .servers import STREAM_PATH, Sidecar

STREAMS_PER_CLIENT_PROCESS = 19_000
TOP = 15


# The sidecar's process: the two signal handlers, then the sidecar's own main. Run with `-c` from
# the scratch directory, so that `sidecar` is the one installed in the interpreter's environment
# (run this module with another checkout's interpreter to measure that checkout).
SERVE = """
import gc, json, signal, sys, tracemalloc
from collections import Counter
from pathlib import Path

out, baseline = Path(sys.argv[1]), {}

def type_sizes():
    counts, sizes = Counter(), Counter()
    for obj in gc.get_objects():
        name = type(obj).__qualname__
        counts[name] += 1
        sizes[name] += sys.getsizeof(obj)
    return counts, sizes

def start(signum, frame):
    baseline["counts"], baseline["sizes"] = type_sizes()
    tracemalloc.start(1)
    (out / "started").write_text("1")

def snapshot(signum, frame):
    lines = tracemalloc.take_snapshot().statistics("lineno")
    tracemalloc.stop()
    counts, sizes = type_sizes()
    report = {
        "lines": [
            {"where": f"{s.traceback[0].filename}:{s.traceback[0].lineno}", "bytes": s.size, "blocks": s.count}
            for s in lines
        ],
        "types": [
            {"type": name, "bytes": sizes[name] - baseline["sizes"][name],
             "count": counts[name] - baseline["counts"][name]}
            for name in counts
        ],
    }
    (out / "snapshot.json").write_text(json.dumps(report))

signal.signal(signal.SIGUSR1, start)
signal.signal(signal.SIGUSR2, snapshot)
from sidecar.__main__ import main
sys.exit(main(sys.argv[2:]))
"""


class TracedSidecar(Sidecar):
    """The sidecar, in the wrapper that answers the two signals."""

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir, workers=1)

    def command(self) -> list[str]:
        return [sys.executable, "-c", SERVE, str(self.workdir), *super().command()[3:]]


def _wait_for(path: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never came")
        time.sleep(0.1)


def _fleet(sidecar: Sidecar, streams: int) -> Fleet:
    """The load-client processes for `streams`, started (none connected yet)."""
    processes = max(1, math.ceil(streams / STREAMS_PER_CLIENT_PROCESS))
    return Fleet("127.0.0.1", sidecar.port, STREAM_PATH, processes, source_addresses(source_count(processes)))


def _connect(fleet: Fleet, streams: int) -> None:
    result = fleet.connect(streams, timeout=300)
    if result["ready"] != streams:
        fleet.stop()
        raise RuntimeError(f"only {result['ready']} of {streams} streams opened ({result['errors']} errors)")


def measure_plain(streams: int, workdir: Path) -> dict[str, float]:
    sidecar = Sidecar(workdir / "plain", workers=1)
    sidecar.start("v1")
    try:
        time.sleep(1)  # the process settles (its first scrape of the source, its start-up garbage)
        fleet = _fleet(sidecar, streams)
        try:
            # Read once the client processes exist: they map the same Python files as the sidecar,
            # and PSS splits a shared page between all who map it (as in scenarios.py).
            pss0, rss0 = sidecar.pss(), sidecar.rss()
            _connect(fleet, streams)
            time.sleep(1)
            pss1, rss1 = sidecar.pss(), sidecar.rss()
        finally:
            fleet.stop()
    finally:
        sidecar.stop()
    return {"pss": (pss1 - pss0) / streams, "rss": (rss1 - rss0) / streams}


def measure_traced(streams: int, workdir: Path) -> dict[str, Any]:
    sidecar = TracedSidecar(workdir / "traced")
    sidecar.start("v1")
    try:
        os.kill(sidecar.pid, signal.SIGUSR1)
        _wait_for(sidecar.workdir / "started")
        fleet = _fleet(sidecar, streams)
        try:
            _connect(fleet, streams)
            os.kill(sidecar.pid, signal.SIGUSR2)
            _wait_for(sidecar.workdir / "snapshot.json")
        finally:
            fleet.stop()
    finally:
        sidecar.stop()
    report: dict[str, Any] = json.loads((sidecar.workdir / "snapshot.json").read_text())
    return report


def _short(where: str) -> str:
    for marker in ("site-packages/", "/lib/python3", "/work/"):
        if marker in where:
            where = where.split(marker, 1)[1]
    return where


def tables(streams: int, plain: dict[str, float], traced: dict[str, Any]) -> str:
    lines = sorted(traced["lines"], key=lambda entry: -entry["bytes"])
    traced_total = sum(entry["bytes"] for entry in lines)
    out = [
        f"{streams:,} streams, one sidecar process: per stream, PSS {plain['pss'] / 1024:.2f} KB, "
        f"RSS {plain['rss'] / 1024:.2f} KB; traced by tracemalloc {traced_total / streams / 1024:.2f} KB",
        "",
        "| allocated at (file:line) | bytes per stream | blocks per stream |",
        "|---|---:|---:|",
    ]
    for entry in lines[:TOP]:
        out.append(f"| {_short(entry['where'])} | {entry['bytes'] / streams:.0f} | {entry['blocks'] / streams:.2f} |")
    rest = lines[TOP:]
    out.append(f"| (the other {len(rest)} lines) | {sum(e['bytes'] for e in rest) / streams:.0f} | |")
    types = sorted(traced["types"], key=lambda entry: -entry["bytes"])
    out += ["", "| object type (gc-tracked, own size) | bytes per stream | objects per stream |", "|---|---:|---:|"]
    for entry in types[:TOP]:
        out.append(f"| {entry['type']} | {entry['bytes'] / streams:.0f} | {entry['count'] / streams:.2f} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.memory_breakdown", description=__doc__)
    parser.add_argument("streams", type=int, help="streams to connect (e.g. 10000)")
    options = parser.parse_args(argv)
    raise_open_files_limit()
    with tempfile.TemporaryDirectory(prefix="memory-breakdown-") as scratch:
        plain = measure_plain(options.streams, Path(scratch))
        traced = measure_traced(options.streams, Path(scratch))
    print(tables(options.streams, plain, traced))
    return 0


if __name__ == "__main__":
    sys.exit(main())
