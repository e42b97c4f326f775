"""The supervisor's decisions on a stand-in clock: when a worker place starts its next process,
what a failed fork does, what a death counts as, and that stopping lets go of the port.
(With real processes: tests/process/test_workers.py.)"""

import errno
import os
import socket
from collections.abc import Iterator

import pytest
from structlog.testing import capture_logs

from sidecar.host import HostTable
from sidecar.workers import RESTART_FIRST, RESTART_LAST, START_ATTEMPTS, Restarts, Supervisor


def test_each_restart_waits_twice_as_long_up_to_the_cap() -> None:
    restarts, now = Restarts(), 0.0
    delays = []
    for _ in range(10):
        restarts.started(now)
        now += 1.0  # served, then died a second later
        delay = restarts.died(now, served=True)
        assert delay is not None
        delays.append(delay)
        now += delay
    assert delays == [RESTART_FIRST * 2**n for n in range(7)] + [RESTART_LAST] * 3


def test_a_run_longer_than_the_cap_starts_the_delays_again() -> None:
    restarts, now = Restarts(), 0.0
    for _ in range(4):
        restarts.started(now)
        now += 1.0
        assert restarts.died(now, served=True) is not None
    restarts.started(now)
    assert restarts.died(now + RESTART_LAST + 1, served=True) == RESTART_FIRST


def test_dying_before_serving_so_many_times_in_a_row_gives_up_and_serving_once_forgives() -> None:
    restarts, now = Restarts(), 0.0
    for _ in range(START_ATTEMPTS - 1):
        assert restarts.died(now, served=False) is not None
    assert restarts.died(now, served=True) is not None  # it served: the count starts again
    for _ in range(START_ATTEMPTS - 1):
        assert restarts.died(now, served=False) is not None
    assert restarts.died(now, served=False) is None


def test_failed_forks_back_off_and_never_count_toward_giving_up() -> None:
    restarts = Restarts()
    delays = [restarts.fork_failed() for _ in range(3 * START_ATTEMPTS)]
    assert delays[:3] == [RESTART_FIRST, RESTART_FIRST * 2, RESTART_FIRST * 4]
    assert max(delays) == RESTART_LAST
    for _ in range(START_ATTEMPTS - 1):
        assert restarts.died(0.0, served=False) is not None


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def supervisor() -> Iterator[Supervisor]:
    sockets = [socket.socket() for _ in range(2)]
    table = HostTable(2, max_clients=10)
    yield Supervisor(sockets, table, lambda index, sock: 0, shutdown_timeout=1.0, clock=_Clock())
    for sock in sockets:
        sock.close()


def test_a_fork_that_fails_while_replacing_a_worker_is_logged_counted_and_retried(
    supervisor: Supervisor, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_fork() -> int:
        raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")

    monkeypatch.setattr(os, "fork", no_fork)
    worker, clock = supervisor.workers[1], supervisor.clock
    assert isinstance(clock, _Clock)
    with capture_logs() as logs:
        for _ in range(2 * START_ATTEMPTS):
            supervisor._start(worker)  # raised out of the supervisor: the whole host exited 1
            assert worker.start_at is not None and worker.pid is None
            clock.now = worker.start_at
    assert supervisor.status == 0 and supervisor.stopping_since is None
    assert supervisor.table.read().workers[1].fork_failures == 2 * START_ATTEMPTS
    failed = [entry for entry in logs if entry["event"] == "cannot start a worker, retrying"]
    assert [entry["retry_in"] for entry in failed[:3]] == [RESTART_FIRST, RESTART_FIRST * 2, RESTART_FIRST * 4]
    assert failed[0]["error"] == "[Errno 11] Resource temporarily unavailable"


def test_a_worker_that_served_between_two_looks_and_died_is_not_a_failed_start(supervisor: Supervisor) -> None:
    worker = supervisor.workers[1]
    supervisor.ever_served = True
    worker.pid = 4242
    supervisor.table.row(1).serving()  # it served, but the supervisor has not looked since
    supervisor._died(worker, 1)
    assert worker.restarts.failed_starts == 0
    assert worker.start_at == supervisor.clock() + RESTART_FIRST


def test_stopping_closes_every_listening_socket_the_supervisor_holds(supervisor: Supervisor) -> None:
    # Nothing will serve them again: a new connection must be refused, not queued for no one.
    supervisor._stop("SIGTERM")
    assert [worker.sock.fileno() for worker in supervisor.workers] == [-1, -1]
