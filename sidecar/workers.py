"""The supervisor of --workers N: binds the port once per worker, forks the workers, restarts one
that dies (or retries a fork that failed), and passes stop signals on (what a user sees:
docs/operations.md, "Workers").

Why it is built so: every socket is bound before any fork and kept by the supervisor, so a dead
worker's successor serves the same socket and the connections the kernel queued there meanwhile
wait for it; worker 0 starts alone, so a setting or source that cannot work stops the host with
one line rather than one per worker; the supervisor has no event loop, and waits for children,
signals and its own timers in one sigtimedwait. It learns that a worker serves from the host
table (host.py), and zeroes a dead worker's row there before the next one takes it over.
"""

import ctypes
import errno
import ipaddress
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NoReturn

from .host import HostTable
from .logs import get_logger
from .server import BACKLOG

log = get_logger("sidecar.workers")

RESTART_FIRST, RESTART_LAST = 0.25, 30.0
START_ATTEMPTS = 5
# How often the supervisor looks whether a starting worker serves yet.
START_POLL = 0.05
# After a stop signal, how much longer than --shutdown-timeout the workers get before SIGKILL.
STOP_GRACE = 10.0

STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}
_WAITED = STOP_SIGNALS | {signal.SIGCHLD}
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def reuseport_sockets(host: str, port: int, count: int) -> list[socket.socket]:
    """`count` listening sockets on one address and port; raises OSError if it cannot be had.

    SO_REUSEPORT would let another host of ours (same user) join a port already served, and the
    kernel would then split the tabs between two hosts with separate caps, health and metrics: so
    the port must have no other listener before the bind, nor after it but ours."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    if port and (held := _listeners(host, port)):
        raise _taken(port, held)
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
            sock.listen(BACKLOG)  # listed as a listener from now on, for the check below
        ours = {os.fstat(sock.fileno()).st_ino for sock in sockets}
        if others := _listeners(host, port) - ours:  # another host bound it at the same moment
            raise _taken(port, others)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def _taken(port: int, listeners: set[int]) -> OSError:
    return OSError(errno.EADDRINUSE, f"another process listens on port {port} ({len(listeners)} socket(s))")


def _listeners(host: str, port: int) -> set[int]:
    """The socket inodes of the TCP listeners (any process, this network namespace) that `host`
    and `port` overlap: the same address, or a wildcard on either side."""
    wanted = ipaddress.ip_address(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][4][0])
    found = set()
    for table, width in (("/proc/net/tcp", 4), ("/proc/net/tcp6", 16)):
        try:
            lines = open(table, encoding="ascii")
        except OSError:  # no IPv6 on this host
            continue
        with lines:
            next(lines, None)  # the header
            for line in lines:
                fields = line.split()
                # The kernel lists every listener before any other socket: stop at the first
                # other one, rather than have it print every connection of a busy host (over 15 s
                # with 200,000 of them) while the workers wait to start.
                if fields[3] != "0A":  # 0A: LISTEN
                    break
                address, port_hex = fields[1].split(":")
                if int(port_hex, 16) != port:
                    continue
                raw = bytes.fromhex(address)
                # The kernel prints each 32-bit word in host order (little-endian here).
                held = ipaddress.ip_address(b"".join(raw[i : i + 4][::-1] for i in range(0, width, 4)))
                if held == wanted or held.is_unspecified or wanted.is_unspecified:
                    found.add(int(fields[9]))
    return found


@dataclass
class Restarts:
    """When a worker place starts its next process, as plain decisions on the times given: each
    restart waits twice as long as the one before, up to RESTART_LAST, and the first delay again
    after a run longer than RESTART_LAST; a process that dies before serving START_ATTEMPTS times
    in a row means give up. A fork that fails is retried on the same back-off and never counts
    toward giving up: the host cannot start a process (a process or memory limit), the workers
    it has still serve."""

    delay: float = RESTART_FIRST
    failed_starts: int = 0  # processes in a row that died before serving
    process_started_at: float = 0.0  # when its current process started

    def started(self, now: float) -> None:
        self.process_started_at = now

    def died(self, now: float, served: bool) -> float | None:
        """Seconds to wait before the next start, or None: give up."""
        if served:
            self.failed_starts = 0
        else:
            self.failed_starts += 1
            if self.failed_starts >= START_ATTEMPTS:
                return None
        if now - self.process_started_at > RESTART_LAST:
            self.delay = RESTART_FIRST
        return self._next_delay()

    def fork_failed(self) -> float:
        """Seconds to wait before trying to start it again."""
        return self._next_delay()

    def _next_delay(self) -> float:
        delay, self.delay = self.delay, min(self.delay * 2, RESTART_LAST)
        return delay


@dataclass
class _Worker:
    """One worker place: its socket and row are kept; its process comes and goes."""

    index: int
    sock: socket.socket
    pid: int | None = None
    processes_started: int = 0
    seen_up: bool = False  # its row has said up since its process started
    next_start_at: float | None = None  # when to start its next process, while none runs
    restarts: Restarts = field(default_factory=Restarts)


class Supervisor:
    def __init__(
        self,
        sockets: list[socket.socket],
        table: HostTable,
        serve: Callable[[int, socket.socket], int],
        shutdown_timeout: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`clock`: what the restart decisions tell the time by (tests pass a stand-in)."""
        self.workers = [_Worker(index, sock) for index, sock in enumerate(sockets)]
        self.table = table
        self.serve = serve
        self.clock = clock
        self.stop_timeout = shutdown_timeout + STOP_GRACE
        self.pid = os.getpid()
        self.status = 0  # the exit status so far
        self.stopping_since: float | None = None
        self.ever_served = False  # worker 0 served: the settings and the source can start
        self.all_served = False
        self._signal_mask: set[int | signal.Signals] = set()  # the mask before the supervisor's, for the workers

    def run(self) -> int:
        """Start the workers, keep them running until a stop signal; the exit status."""
        self._signal_mask = signal.pthread_sigmask(signal.SIG_BLOCK, _WAITED)  # taken by sigtimedwait
        self._start(self.workers[0])
        while self._running() or (self.stopping_since is None and self._due()):
            self._notice_serving()
            timeout = self._timeout()
            info = signal.sigtimedwait(_WAITED, timeout) if timeout is not None else signal.sigwaitinfo(_WAITED)
            if info is None:
                self._on_time()
            elif info.si_signo == signal.SIGCHLD:
                self._reap()
            else:
                self._stop(signal.Signals(info.si_signo).name)
        if self.ever_served:  # else the first worker said why it could not start
            log.info("stopped", status=self.status)
        return self.status

    def _running(self) -> list[_Worker]:
        return [worker for worker in self.workers if worker.pid is not None]

    def _due(self) -> list[_Worker]:
        return [worker for worker in self.workers if worker.next_start_at is not None]

    def _timeout(self) -> float | None:
        now = self.clock()
        if self.stopping_since is not None:
            return max(0.0, self.stopping_since + self.stop_timeout - now)
        waits = [max(0.0, worker.next_start_at - now) for worker in self._due() if worker.next_start_at is not None]
        if any(not worker.seen_up for worker in self._running()):
            waits.append(START_POLL)
        return min(waits, default=None)

    def _notice_serving(self) -> None:
        for worker in self._running():
            if not worker.seen_up and self.table.is_up(worker.index):
                worker.seen_up = True
                if worker.processes_started > 1:
                    log.info("worker serving again", worker_index=worker.index, pid=worker.pid)
                if not self.ever_served:  # worker 0 could start: the others follow
                    self.ever_served = True
                    for other in self.workers[1:]:
                        other.next_start_at = self.clock()
                elif not self.all_served and all(worker.seen_up for worker in self.workers):
                    self.all_served = True
                    log.info("workers serving", workers=len(self.workers), pids=[w.pid for w in self.workers])

    def _on_time(self) -> None:
        now = self.clock()
        if self.stopping_since is not None:
            if now >= self.stopping_since + self.stop_timeout:
                for worker in self._running():
                    assert worker.pid is not None
                    log.error("worker did not stop in time, killing it", worker_index=worker.index, pid=worker.pid)
                    os.kill(worker.pid, signal.SIGKILL)
                self.stopping_since = now  # one more round for the kills to be reaped
            return
        for worker in self._due():
            if worker.next_start_at is not None and worker.next_start_at <= now:
                self._start(worker)

    def _start(self, worker: _Worker) -> None:
        try:
            pid = os.fork()
        except OSError as error:  # a process or memory limit: the other workers serve on
            worker.next_start_at = self.clock() + (delay := worker.restarts.fork_failed())
            self.table.fork_failed(worker.index)
            log.error("cannot start a worker, retrying", worker_index=worker.index, error=str(error), retry_in=delay)
            self._stop_queueing(worker)
            return
        if pid == 0:
            self._become(worker)
        worker.processes_started += 1
        restart = worker.processes_started > 1
        worker.pid, worker.seen_up, worker.next_start_at = pid, False, None
        worker.restarts.started(self.clock())
        self.table.worker_started(worker.index, pid, restart)
        if restart:
            log.info("worker restarted", worker_index=worker.index, pid=pid)

    def _stop_queueing(self, worker: _Worker) -> None:
        """No process may come for a while: leave the port to the workers that serve. A socket that
        listens gets its share of new connections (queued for no one); one that is only bound
        does not, and its next process listens on it."""
        old = worker.sock
        if old.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
            fresh = socket.socket(old.family, socket.SOCK_STREAM)
            fresh.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            fresh.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            fresh.bind(old.getsockname())
            old.close()
            worker.sock = fresh

    def _become(self, worker: _Worker) -> NoReturn:
        """In the forked child: serve as `worker` until stopped; never returns."""
        status = 1
        try:
            signal.pthread_sigmask(signal.SIG_SETMASK, self._signal_mask)
            _die_with_parent(self.pid)
            for other in self.workers:
                if other is not worker:
                    other.sock.close()  # this process's copies only; the supervisor keeps its own
            status = self.serve(worker.index, worker.sock)
        except SystemExit as stop:
            status = stop.code if isinstance(stop.code, int) else 1
        except BaseException:
            log.exception("worker failed", worker_index=worker.index)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(status)

    def _reap(self) -> None:
        while True:
            try:
                pid, wait_status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            worker = next((worker for worker in self.workers if worker.pid == pid), None)
            if worker is not None:
                self._died(worker, _exit_status(wait_status))

    def _died(self, worker: _Worker, status: int) -> None:
        self._notice_serving()  # it may have served since the last look
        worker.pid = None
        self.table.worker_died(worker.index)
        if self.stopping_since is not None:
            # Ended by the SIGTERM passed on before it could handle it (just started): no stream lost.
            self.status = max(self.status, 0 if status == 128 + signal.SIGTERM else status)
            return
        if not self.ever_served:  # worker 0 could not start: neither will the others
            self.status = status or 1
            if status != 2:  # 2: it said why in its own line
                log.error("the first worker could not start, stopping", worker_index=worker.index, status=status)
            return
        delay = worker.restarts.died(self.clock(), worker.seen_up)
        if delay is None:
            log.error(
                f"worker {worker.index} died before serving {START_ATTEMPTS} times in a row, stopping",
                worker_index=worker.index,
                status=status,
            )
            self.status = 1
            self._stop(None)
            return
        worker.next_start_at = self.clock() + delay
        log.warning("worker died, restarting it", worker_index=worker.index, status=status, restart_in=delay)

    def _stop(self, signal_name: str | None) -> None:
        if self.stopping_since is not None:
            log.info("already stopping", signal=signal_name)
            return
        if signal_name is not None:
            log.info("stopping", signal=signal_name)
        self.stopping_since = self.clock()
        for worker in self.workers:
            worker.next_start_at = None
            worker.sock.close()  # nothing will serve it again: new connections are refused, not queued
            if worker.pid is not None:
                os.kill(worker.pid, signal.SIGTERM)


def _die_with_parent(parent: int) -> None:
    """Have the kernel send this process SIGTERM when its parent dies, however it dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG)")
    if os.getppid() != parent:  # the parent died before the kernel was asked
        raise SystemExit(0)


def _exit_status(wait_status: int) -> int:
    status = os.waitstatus_to_exitcode(wait_status)
    return 128 - status if status < 0 else status  # killed by a signal: 128 + its number
