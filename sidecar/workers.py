"""--workers N: N processes share the port through SO_REUSEPORT, so one host uses every core.

The supervisor binds one listening socket per worker before forking (so a taken port fails at
once, in the supervisor, with exit 2), then each worker serves its own socket with its own hub
and follows the same source; the kernel spreads new connections over the sockets. The
supervisor passes SIGTERM/SIGINT on to the workers and exits with the worst worker status.
"""

import os
import signal
import socket
import sys
from collections.abc import Callable
from types import FrameType

from .logs import get_logger

log = get_logger("sidecar.workers")


def reuseport_sockets(host: str, port: int, count: int) -> list[socket.socket]:
    """`count` listening sockets on one address and port; raises OSError if it cannot be had."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(family, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((host, port))
            port = sock.getsockname()[1]  # port 0: the others join the port the first one got
            sock.set_inheritable(False)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def run_workers(sockets: list[socket.socket], serve: Callable[[socket.socket], int]) -> int:
    """Fork one worker per socket running `serve(sock)`; wait for all; the worst exit status."""
    children: dict[int, int] = {}
    for index, sock in enumerate(sockets):
        pid = os.fork()
        if pid == 0:  # the worker: keep only its own socket
            for other in sockets:
                if other is not sock:
                    other.close()
            status = 1
            try:
                status = serve(sock)
            except SystemExit as stop:
                status = stop.code if isinstance(stop.code, int) else 1
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(status)
        children[pid] = index
    for sock in sockets:
        sock.close()
    log.info("workers started", workers=len(children), pids=sorted(children))

    def pass_on(signum: int, _frame: FrameType | None) -> None:
        for pid in children:
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, pass_on)
    signal.signal(signal.SIGINT, pass_on)
    worst = 0
    while children:
        pid, wait_status = os.wait()
        if pid not in children:
            continue
        del children[pid]
        status = os.waitstatus_to_exitcode(wait_status)
        status = 128 - status if status < 0 else status  # killed by a signal: 128 + its number
        if status != 0 and children:
            log.error("worker stopped, stopping the others", pid=pid, status=status)
            pass_on(signal.SIGTERM, None)
        worst = max(worst, status)
    return worst
