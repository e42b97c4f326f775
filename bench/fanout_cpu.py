"""`python -m bench.fanout_cpu`: where one fan-out's CPU goes, per client, for both servers.

For each server in turn: N clients (one load-client process per 19,000), one change to warm up,
then `--changes` changes; for each change the user and system CPU of the server's process tree
(/proc, in clock ticks), the load client's CPU and the p99 change-to-receipt. With `--perf`,
`perf record -g` samples the server during one change and the samples are sorted into where
they went (the kernel's send path, the reader's receive path that loopback runs in the sender's
send, the reader's wake-up, ...). Numbers for bench/RESULTS.md, "Where one fan-out's CPU goes".
"""

import argparse
import collections
import math
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from .loadclient import Fleet, raise_open_files_limit, source_addresses
from .servers import STREAM_PATH, Nchan, Server, Sidecar, process_tree, tree_user_system_seconds, version_payload

STREAMS_PER_CLIENT_PROCESS = 19_000

# Where a sample went, by the first of these found on its stack (leaf first) or its leaf's file.
KERNEL_PLACES = (
    ("sock_def_readable", "kernel: waking the reader (sock_def_readable)"),
    ("net_rx_action", "kernel: the reader's TCP receive (loopback runs it in the send)"),
    ("__release_sock", "kernel: the reader's ACK, processed when the send ends"),
    ("tcp_sendmsg", "kernel: TCP/IP send"),
    ("do_syscall_64", "kernel: other system call work (entry, exit, vfs)"),
)
USER_PLACES = (
    ("uvloop", "user: uvloop"),
    ("libpython", "user: Python"),
    ("libc", "user: libc"),
    ("nginx", "user: nginx + nchan"),
    ("nchan", "user: nginx + nchan"),
)


def where_samples_went(data: Path) -> tuple[int, collections.Counter[str]]:
    """The samples of a `perf record -g` file, counted by place."""
    script = subprocess.run(["perf", "script", "-i", str(data), "-F", "ip,sym,dso"], capture_output=True, text=True)
    return places_of(script.stdout)


def places_of(script: str) -> tuple[int, collections.Counter[str]]:
    """The samples of `perf script -F ip,sym,dso` output (one block per sample, leaf first)."""
    places: collections.Counter[str] = collections.Counter()
    total = 0
    for sample in script.split("\n\n"):
        frames = [line.strip() for line in sample.strip().splitlines() if line.strip()]
        if not frames:
            continue
        total += 1
        stack = " ".join(frames)
        if "kernel.kallsyms" in frames[0]:
            place = next((name for symbol, name in KERNEL_PLACES if symbol in stack), "kernel: other")
        else:
            place = next((name for mark, name in USER_PLACES if mark in frames[0]), "user: other")
        places[place] += 1
    return total, places


@dataclass
class FanoutCpu:
    """One server's fan-outs: CPU seconds summed over the counted changes, p99 of each change."""

    server: str
    clients: int
    ready: int
    changes: int
    user: float = 0.0
    system: float = 0.0
    client: float = 0.0
    p99s: list[float] = field(default_factory=list)

    def per_client_us(self, seconds: float) -> float:
        return seconds * 1e6 / self.changes / self.clients


def measure(server: Server, clients: int, changes: int, perf_to: Path | None) -> FanoutCpu:
    processes = max(1, math.ceil(clients / STREAMS_PER_CLIENT_PROCESS))
    server.start("bench-0")
    fleet = Fleet("127.0.0.1", server.port, STREAM_PATH, processes, source_addresses(8))
    try:
        result = FanoutCpu(server.name, clients, fleet.connect(clients, 180)["ready"], changes)
        time.sleep(1)
        for change in range(changes + 1):  # change 0 warms up and is not counted
            version = f"bench-{change + 1}"
            client_before = fleet.cpu_seconds()
            fleet.send_wait(version_payload(version), 30)
            time.sleep(0.3)
            recorder = None
            if perf_to is not None and change == 1:
                tree = ",".join(map(str, process_tree(server.pid)))
                command = ["perf", "record", "-F", "4000", "-g", "-o", str(perf_to), "-p", tree]
                recorder = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                time.sleep(1.5)  # perf attached before the change
            user_before, system_before = tree_user_system_seconds(server.pid)
            started = time.monotonic()
            server.change(version)
            receipts = sorted(t - started for t in fleet.collect_wait(30)["receipts"])
            user_after, system_after = tree_user_system_seconds(server.pid)
            if recorder is not None:
                recorder.send_signal(2)
                recorder.wait(30)
            if change == 0:
                continue
            result.user += user_after - user_before
            result.system += system_after - system_before
            result.client += fleet.cpu_seconds() - client_before
            result.p99s.append(receipts[int(0.99 * len(receipts))] if receipts else math.nan)
    finally:
        fleet.stop()
        server.stop()
    return result


def report(result: FanoutCpu, perf_to: Path | None) -> None:
    print(
        f"{result.server}: {result.ready:,} of {result.clients:,} clients, {result.changes} changes; per client "
        f"per fan-out: server user {result.per_client_us(result.user):.1f} us + system "
        f"{result.per_client_us(result.system):.1f} us, load client {result.per_client_us(result.client):.1f} us; "
        f"p99 {sum(result.p99s) / len(result.p99s) * 1000:.0f} ms "
        f"(each: {', '.join(f'{p * 1000:.0f}' for p in result.p99s)})",
        flush=True,
    )
    if perf_to is not None and perf_to.exists():
        total, places = where_samples_went(perf_to)
        print(f"  perf, one change, {total} samples of the server:")
        for place, count in places.most_common():
            print(f"  {count / total:6.1%}  {place}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=19_000)
    parser.add_argument("--changes", type=int, default=5)
    parser.add_argument("--workers", type=int, default=1, help="sidecar --workers, nginx worker_processes")
    parser.add_argument("--perf", action="store_true", help="perf record -g the server during one change")
    parser.add_argument("--only", choices=("sidecar", "nchan"))
    args = parser.parse_args()
    raise_open_files_limit()
    with tempfile.TemporaryDirectory(prefix="bench-fanout-cpu-") as scratch:
        for kind in (Sidecar, Nchan):
            if args.only in (None, kind.name):
                perf_to = Path(scratch) / f"{kind.name}.perf" if args.perf else None
                server = kind(Path(scratch) / kind.name, args.workers)
                report(measure(server, args.clients, args.changes, perf_to), perf_to)


if __name__ == "__main__":
    main()
