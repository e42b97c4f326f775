"""What the kernel must allow for a run that holds many loopback connections, checked before the
run starts: a limit too low fails the run at once with the limit's name, instead of minutes later
as connects that time out or streams that stall.

Each connection is two sockets on this host (the client's and the server's), so two open files,
one ephemeral port of its source address, and one conntrack entry where conntrack is loaded.
"""

import math
import resource
from collections.abc import Callable
from pathlib import Path

# The listen backlog both servers ask for (bench/servers.py, sidecar/server.py): the kernel
# silently caps it at net.core.somaxconn, and a full queue drops handshakes.
LISTEN_BACKLOG = 1024
# Descriptors a sidecar worker keeps out of reach of streams (sidecar/open_files.py: 32 + 32).
RESERVED_FILES = 64
# Pages of TCP memory a connection may hold during a fan-out: an event queued on each of its two
# sockets (a page each, generously).
TCP_PAGES_PER_CONNECTION = 2


def read_proc(name: str) -> str | None:
    """A /proc/sys setting in sysctl's dotted name, or None where this kernel has none."""
    try:
        return Path("/proc/sys", name.replace(".", "/")).read_text()
    except OSError:
        return None


def ports_per_source(clients: int, processes: int, sources: int) -> int:
    """Ephemeral ports the busiest source address needs when `clients` are spread over
    `processes` load-client processes, each connecting from its share of `sources` addresses
    (bench/loadclient.py's Fleet: at least one each)."""
    per_process = math.ceil(clients / processes)
    return math.ceil(per_process / max(1, sources // processes))


def problems(
    connections: int,
    ports_per_address: int,
    per_process: int,
    read: Callable[[str], str | None] = read_proc,
    open_files_hard: int | None = None,
) -> list[str]:
    """What is too low for `connections` at once, `ports_per_address` from the busiest source
    address, and `per_process` streams in one server worker or load-client process; [] if
    nothing. Each line names the limit, its value and what the run needs."""
    found = []
    if open_files_hard is None:
        open_files_hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if open_files_hard != resource.RLIM_INFINITY and open_files_hard < per_process + RESERVED_FILES:
        found.append(
            f"open files (RLIMIT_NOFILE, ulimit -Hn) is {open_files_hard:,}: a process holding "
            f"{per_process:,} streams needs {per_process + RESERVED_FILES:,} (or lower --per-process)"
        )
    ports = read("net.ipv4.ip_local_port_range")
    if ports is not None:
        low, high = (int(value) for value in ports.split())
        # bind() to port 0 looks in half of the range (connect()'s is the other half); past that
        # it scans the range for every connection (see bench/scenarios.py, source_count).
        if (high - low + 1) // 2 < ports_per_address:
            found.append(
                f"net.ipv4.ip_local_port_range is {low} {high} ({high - low + 1:,} ports, half of them "
                f"for bind()): the busiest source address needs {ports_per_address:,}"
            )
    backlog = read("net.core.somaxconn")
    if backlog is not None and int(backlog) < LISTEN_BACKLOG:
        found.append(f"net.core.somaxconn is {int(backlog):,}: the servers listen with a backlog of {LISTEN_BACKLOG:,}")
    tcp_mem = read("net.ipv4.tcp_mem")
    if tcp_mem is not None:
        pressure = int(tcp_mem.split()[1])
        if pressure < connections * TCP_PAGES_PER_CONNECTION:
            found.append(
                f"net.ipv4.tcp_mem is {tcp_mem.strip()} pages: {connections:,} connections may queue "
                f"{connections * TCP_PAGES_PER_CONNECTION:,} pages in a fan-out, over the pressure "
                "threshold (the second value)"
            )
    conntrack_max = read("net.netfilter.nf_conntrack_max")
    if conntrack_max is not None:
        # Twice over: the connections of a server just stopped linger in their closing states.
        tracked = int(read("net.netfilter.nf_conntrack_count") or 0)
        if int(conntrack_max) < tracked + 2 * connections:
            found.append(
                f"net.netfilter.nf_conntrack_max is {int(conntrack_max):,} with {tracked:,} tracked: "
                f"{connections:,} connections need {2 * connections:,} free entries"
            )
    file_max = read("fs.file-max")
    if file_max is not None and int(file_max) < 2 * connections + 10_000:
        found.append(f"fs.file-max is {int(file_max):,}: {connections:,} connections are {2 * connections:,} files")
    return found
