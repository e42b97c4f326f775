"""The host table's one lock: an fcntl record lock on its memfd.

A lock the kernel releases when its holder dies, so a worker killed while holding it can never
leave the others waiting on it.
"""

import fcntl


class HostLock:
    """Held with `with`, for a few statements at a time; blocking."""

    __slots__ = ("_fd",)

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def __enter__(self) -> None:
        fcntl.lockf(self._fd, fcntl.LOCK_EX, 1)

    def __exit__(self, *_: object) -> None:
        fcntl.lockf(self._fd, fcntl.LOCK_UN, 1)
