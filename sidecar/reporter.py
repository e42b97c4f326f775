"""Keeps this worker's row of the host table saying whether its source is followed, for the other
workers' /healthz and /metrics.

A source's problem can change inside it at any time, with no call to tell: so the row is written
every REPORT_PERIOD, and whenever this worker reads the table itself.
"""

import asyncio
import contextlib

from .announcer import Announcer
from .host import HostState, WorkerRow
from .logs import Output

REPORT_PERIOD = 1.0


class Reporter:
    def __init__(self, row: WorkerRow, announcer: Announcer) -> None:
        self.row = row
        self.announcer = announcer
        self._task: asyncio.Task[None] | None = None

    def report(self) -> None:
        self.row.report(self.announcer.problem)
        if Output.current is not None:
            self.row.log_lines_dropped(Output.current.dropped)

    def read_host(self) -> HostState:
        """The host table, with this worker's own row brought up to date first."""
        self.report()
        return self.row.table.read()

    def start(self) -> None:
        self.report()
        self._task = asyncio.create_task(self._run(), name="report to the host table")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(REPORT_PERIOD)
            self.report()
