"""The file source: a file whose stripped content is the version, watched live.

The file may be anything an operator (or a mistake) puts there: only a regular file (after
following symlinks) is read, never blocking the event loop (a FIFO would block open(), a device
like /dev/zero would never end), and at most MAX_FILE_BYTES of it.
"""

import asyncio
import contextlib
import logging
import os
import stat
from pathlib import Path

from ..logs import NOISE, get_logger
from ..version import MAX_VERSION_LENGTH
from . import Publish, Source, SourceError
from .file_watch import FileWatch

log = get_logger("sidecar.sources.file")

# A version is at most 128 characters (up to 4 bytes each in UTF-8), with whitespace around it.
MAX_FILE_BYTES = 4096
assert MAX_FILE_BYTES >= 4 * MAX_VERSION_LENGTH + 64

_KINDS = {
    stat.S_IFDIR: "a directory",
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
}


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
        """The stripped content of the file; SourceError saying why there is none to use."""
        try:
            # O_NONBLOCK: opening a FIFO without a writer would otherwise wait for one.
            fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise SourceError(f"{self.origin}: no such file") from None
        except OSError as error:
            with contextlib.suppress(OSError):  # a socket cannot be opened: say what it is
                if (what := _KINDS.get(stat.S_IFMT(os.stat(self.path).st_mode))) is not None:
                    raise SourceError(f"{self.origin}: is {what}, not a regular file") from None
            raise SourceError(f"{self.origin}: cannot open it: {error.strerror or error}") from None
        try:
            info = os.fstat(fd)
            kind = stat.S_IFMT(info.st_mode)
            if kind != stat.S_IFREG:
                raise SourceError(f"{self.origin}: is {_KINDS.get(kind, 'of an unknown kind')}, not a regular file")
            data = b"" if info.st_size > MAX_FILE_BYTES else _read_at_most(fd, MAX_FILE_BYTES + 1)
        except OSError as error:
            raise SourceError(f"{self.origin}: cannot read it: {error.strerror or error}") from None
        finally:
            os.close(fd)
        if info.st_size > MAX_FILE_BYTES or len(data) > MAX_FILE_BYTES:  # (it may grow after fstat)
            size = max(info.st_size, len(data))
            raise SourceError(f"{self.origin}: is {size} bytes long; a version file holds at most {MAX_FILE_BYTES}")
        try:
            content = data.decode("utf-8").strip()
        except UnicodeDecodeError as error:
            raise SourceError(f"{self.origin}: is not UTF-8 text ({error.reason} at byte {error.start})") from None
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
                    NOISE.note("source error, keeping the last good version", source=self.name, error=str(error))
                failed_before = True
                continue
            failed_before = False
            if self.problem is not None:
                NOISE.note(
                    "source recovered", logging.INFO, source=self.name, path=str(self.path)
                )  # a flapping file: summarised
                self.problem = None
            if value != last_seen:
                last_seen = value
                publish(value)


def _read_at_most(fd: int, limit: int) -> bytes:
    """Up to `limit` bytes, to the end of the file: one read may return less than asked for (a
    file under /proc hands out a page at a time, and says its size is 0)."""
    data = b""
    while len(data) < limit and (chunk := os.read(fd, limit - len(data))):
        data += chunk
    return data
