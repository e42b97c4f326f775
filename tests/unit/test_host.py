"""The host table: seats under one cap for every process of a host, and what a dead worker leaves."""

import os

from sidecar.host import HostTable
from sidecar.version import check_version

PROCESSES, CAP, ROUNDS = 4, 20, 300


def test_seats_never_overshoot_the_cap_when_processes_take_them_at_once() -> None:
    table = HostTable(PROCESSES, max_clients=CAP)
    children = []
    for index in range(PROCESSES):
        pid = os.fork()
        if pid == 0:  # each process takes seats until refused, checks the host's count, gives them back
            row, overshoot = table.row(index), False
            try:
                for _ in range(ROUNDS):
                    held = 0
                    while row.take_seat():
                        held += 1
                        with table.locked():  # unlocked, a give and a take elsewhere can tear the sum
                            overshoot = overshoot or table.clients() > CAP
                    for _ in range(held):
                        row.give_seat()
            finally:
                os._exit(1 if overshoot else 0)
        children.append(pid)
    statuses = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in children]
    assert statuses == [0] * PROCESSES, "a process saw more seats taken than the cap"
    state = table.read()
    assert state.total("clients") == 0
    assert state.total("refused") >= PROCESSES * ROUNDS  # each round ended with a refusal


def test_a_dead_workers_row_keeps_its_counters_and_loses_its_clients() -> None:
    table = HostTable(2, max_clients=10)
    row = table.row(1)
    table.worker_started(1, 4242, restart=False)
    row.serving()
    row.report("the file is gone")
    for _ in range(3):
        assert row.take_seat()
    row.joined(events=1)
    table.worker_died(1)
    table.worker_started(1, 4343, restart=True)
    worker = table.read().workers[1]
    assert (worker.clients, worker.up, worker.problem, worker.source_up) == (0, False, None, False)
    assert (worker.connected, worker.events_sent, worker.restarts, worker.pid) == (1, 1, 1, 4343)
    assert table.row(0).take_seat()  # the dead worker's seats are free again


def test_a_version_change_is_counted_once_however_many_workers_announce_it() -> None:
    table = HostTable(3, max_clients=10)
    for version in ["v1", "v2", "v3"]:
        for index in range(3):
            table.row(index).announced(check_version(version))
    state = table.read()
    assert (state.version, state.version_changes) == ("v3", 2)  # the first version is no change
    assert [worker.version for worker in state.workers] == ["v3"] * 3
