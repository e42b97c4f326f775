"""The heartbeat's schedule: clients dealt into slices in turn, one slice per tick, and a client
that leaves is in none."""

from typing import cast

from sidecar.client import Client
from sidecar.heartbeat_slices import HeartbeatSlices


class Joined:
    """Stands in for a Client: the schedule reads nothing but its slice."""

    def __init__(self, heartbeat_slice: int) -> None:
        self.heartbeat_slice = heartbeat_slice


def test_clients_are_dealt_into_slices_in_turn_and_a_tick_takes_only_its_own() -> None:
    slices = HeartbeatSlices(heartbeat=3)
    assert (slices.count, slices.tick) == (3, 1.0)
    clients = [cast(Client, Joined(slices.next_slice())) for _ in range(7)]
    for client in clients:
        slices.add(client)
    assert [set(slices.due(turn)) for turn in range(3)] == [
        {clients[0], clients[3], clients[6]},
        {clients[1], clients[4]},
        {clients[2], clients[5]},
    ]


def test_a_client_that_leaves_is_in_no_slice() -> None:
    slices = HeartbeatSlices(heartbeat=30)
    client = cast(Client, Joined(slices.next_slice()))
    slices.add(client)
    slices.discard(client)
    slices.discard(client)  # twice: a hub may leave a client that was never counted in
    assert slices.due(0) == [] and slices._slices == {}


def test_a_heartbeat_under_two_seconds_is_one_slice() -> None:
    slices = HeartbeatSlices(heartbeat=0.5)
    assert (slices.count, slices.tick, slices.next_slice(), slices.next_slice()) == (1, 0.5, 0, 0)
