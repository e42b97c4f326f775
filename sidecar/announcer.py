"""Keeps the hub fed from the source, and never silently.

The announcer is the one gate a value passes on its way to the tabs: it checks each value the
source delivers, runs the source's follow() and restarts it with a back-off after any error, and
knows whether the source is really being followed -- what /healthz reports.
"""

import asyncio
import contextlib
import time

from .hub import Hub
from .logs import get_logger
from .sources import Found, Source, SourceError
from .version import (
    InvalidReleaseInfo,
    InvalidVersion,
    Version,
    check_notes_url,
    check_required,
    check_version,
    shorten,
)

log = get_logger("sidecar.announcer")

# Restart delays after a failed follow() double from the first to the last; a follow() that ran
# longer than the last resets them.
RESTART_FIRST, RESTART_LAST = 0.5, 30.0


class Announcer:
    def __init__(self, source: Source, hub: Hub) -> None:
        self.source = source
        self.hub = hub
        self._failure: str | None = None  # why following stopped, until it works again
        self._rejected: str | None = None  # why the last value delivered was refused
        self._dropped: str | None = None  # why the last release notes URL or flag was left out
        self._task: asyncio.Task[None] | None = None

    @property
    def problem(self) -> str | None:
        """Why the tabs may not hear the current version right now; None while all is well."""
        return (
            self._failure
            or self.source.problem
            or self._rejected
            or (None if self.hub.version else "no version known yet")
        )

    async def read_initial(self) -> Version | None:
        """Read, check and announce the version at start-up; raises SourceError if there is none to be had."""
        value = await self.source.read_initial()
        if value is None:
            return None
        try:
            version = check_version(value)
        except InvalidVersion as error:
            raise SourceError(f"{self.source.origin}: the version {error}") from None
        self.hub.publish(version, *self._release_info(value))
        return version

    def start(self) -> None:
        self._task = asyncio.create_task(self._follow(), name=f"follow {self.source.name}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.source.close()

    def offer(self, value: str) -> None:
        """What the source calls with each value it reads: announced if it is a new version (or
        the same with other release notes)."""
        self._failure = None  # the source delivers again
        try:
            version = check_version(value)
        except InvalidVersion as error:
            rejected = f"the source delivered {shorten(value)}, which {error}"
            if rejected != self._rejected:
                log.warning("version rejected", source=self.source.name, value=shorten(value), reason=str(error))
            self._rejected = rejected
            return
        self._rejected = None
        self.hub.publish(version, *self._release_info(value))

    def _release_info(self, value: str) -> tuple[str | None, bool]:
        """The release notes URL and reload-required flag to announce: each one that does not pass
        its check is left out (logged once), and the version goes out without it."""
        notes, required, dropped = None, False, []
        found = value if isinstance(value, Found) else Found(value)
        try:
            notes = None if found.notes is None else check_notes_url(found.notes)
        except InvalidReleaseInfo as error:
            dropped.append(f"release notes URL {shorten(found.notes or '')} {error}")
        try:
            required = False if found.required is None else check_required(found.required)
        except InvalidReleaseInfo as error:
            dropped.append(f"reload-required flag {shorten(found.required or '')} {error}")
        problem = "; ".join(dropped) or None
        if problem is not None and problem != self._dropped:
            log.warning("release info dropped", source=self.source.name, version=shorten(value), reason=problem)
        self._dropped = problem
        return notes, required

    async def _follow(self) -> None:
        delay = RESTART_FIRST
        while True:
            started = time.monotonic()
            try:
                await self.source.follow(self.offer)
                return  # a source with nothing to follow (env)
            except Exception as error:  # anything at all: the tabs must not stop hearing of it
                failure = f"following the {self.source.name} source failed: {type(error).__name__}: {error}"
                if time.monotonic() - started > RESTART_LAST:
                    delay = RESTART_FIRST
                if failure != self._failure:
                    log.error("source failed, restarting it", source=self.source.name, retry_in=delay, exc_info=True)
                self._failure = failure
            await asyncio.sleep(delay)
            delay = min(delay * 2, RESTART_LAST)
