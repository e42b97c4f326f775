"""The file source: a file whose stripped content is the version, watched live."""

import asyncio
import contextlib
from pathlib import Path

from ..logs import get_logger
from . import Publish, Source, SourceError
from .file_watch import FileWatch

log = get_logger("sidecar.sources.file")


class FileSource(Source):
    name = "file"

    def __init__(self, path: Path, poll_interval: float = 0.2) -> None:
        self.path = path
        self.origin = f"--version-file {path}"
        # Polling: it sees writes in place, atomic rename-over and files on any mount alike,
        # and reading a tiny file five times a second costs nothing. Where inotify works, a
        # completed write also wakes the poller at once (FileWatch), so a change is announced
        # without waiting for the next poll.
        self.poll_interval = poll_interval

    def _read(self) -> str:
        try:
            content = self.path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            raise SourceError(f"{self.origin}: no such file") from None
        except (OSError, UnicodeDecodeError) as error:
            raise SourceError(f"{self.origin}: cannot read: {error}") from None
        if not content:
            raise SourceError(f"{self.origin}: the file is empty")
        return content

    async def read_initial(self) -> str:
        return self._read()

    async def follow(self, publish: Publish) -> None:
        watch = FileWatch(self.path)
        watch.start()
        try:
            await self._poll(publish, watch)
        finally:
            watch.close()

    async def _poll(self, publish: Publish, watch: FileWatch) -> None:
        last_seen: str | None = None
        failed_before = False
        while True:
            with contextlib.suppress(TimeoutError):  # the next poll, or at once on a completed write
                await asyncio.wait_for(watch.changed.wait(), self.poll_interval)
            watch.changed.clear()
            try:
                value = self._read()
            except SourceError as error:
                # `echo v2 > file` empties the file for a moment: a problem counts only when
                # the next poll still sees it. Each problem is logged once, not every poll.
                if failed_before and self.problem != str(error):
                    self.problem = str(error)
                    log.warning("source error, keeping the last good version", source=self.name, error=str(error))
                failed_before = True
                continue
            failed_before = False
            if self.problem is not None:
                log.info("source recovered", source=self.name, path=str(self.path))
                self.problem = None
            if value != last_seen:
                last_seen = value
                publish(value)
