"""The heartbeat's schedule: which of a hub's clients hear the heartbeat at each tick.

One task, no timer per client, yet no tick re-sends to every client: a whole broadcast stalls
the loop for long enough at tens of thousands of clients that a version change would wait behind
it (bench/RESULTS.md, "Heartbeat spread over its interval"). So the clients are kept in slices,
each joining the next slice in turn so that they stay even, and a tick takes its slice as it is,
without looking at the other clients.
"""

from .client import Client


class HeartbeatSlices:
    __slots__ = ("_joined", "_slices", "count", "tick")

    def __init__(self, heartbeat: float) -> None:
        self.count = max(1, int(heartbeat))  # slices of about a second each (one when it is shorter)
        self.tick = heartbeat / self.count  # seconds from one slice to the next
        self._slices: dict[int, set[Client]] = {}  # only the slices that have clients
        self._joined = 0

    def next_slice(self) -> int:
        """The slice for the next client to join: each in turn."""
        index = self._joined % self.count
        self._joined += 1
        return index

    def add(self, client: Client) -> None:
        self._slices.setdefault(client.heartbeat_slice, set()).add(client)

    def discard(self, client: Client) -> None:
        members = self._slices.get(client.heartbeat_slice)
        if members is not None:
            members.discard(client)
            if not members:
                del self._slices[client.heartbeat_slice]

    def due(self, turn: int) -> list[Client]:
        """The clients of slice `turn`, to re-send to now."""
        return list(self._slices.get(turn, ()))
