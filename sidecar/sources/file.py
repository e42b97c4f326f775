"""The file source: a file whose stripped content is the version, watched live.

The file may be anything an operator (or a mistake) puts there: only a regular file (after
following symlinks) is opened, never a FIFO or a device (opening one runs its driver), and at
most MAX_FILE_BYTES of it is read. The reading runs in a thread of its own with a deadline: a
hung network mount (NFS, FUSE) makes it a problem, never a frozen event loop.
"""

import asyncio
import contextlib
import logging
import os
import stat
import threading
from collections.abc import Callable
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

# A local file is read in microseconds; a read still running after this long is a hung mount.
READ_TIMEOUT = 2.0


class FileSource(Source):
    name = "file"

    def __init__(self, path: Path, poll_interval: float = 0.2, read_timeout: float = READ_TIMEOUT) -> None:
        self.path = path
        self.read_timeout = read_timeout
        # The read in its thread; kept while it hangs, so a hung mount holds one thread, not one per poll.
        self._reading: asyncio.Future[str] | None = None
        self.origin = f"--version-file {path}"
        # Polling: it sees writes in place, atomic rename-over and files on any mount alike,
        # and reading a tiny file five times a second costs nothing. Where inotify works, a
        # completed write also wakes the poller at once (FileWatch), so a change is announced
        # without waiting for the next poll.
        self.poll_interval = poll_interval
        # What read_initial delivered: following starts from it, so it is not offered a second time
        # (where something else announced a version in between, that second offer would undo it).
        self._initial: str | None = None

    def _read(self) -> str:
        """The stripped content of the file; SourceError saying why there is none to use. Blocks
        as long as the file system does: call it through _read_off_loop."""
        try:
            # Its kind first: opening a device runs its driver, whatever is read afterwards.
            _check_regular(self.origin, os.stat(self.path))
            # O_NONBLOCK: should a FIFO take the file's place right after the check, opening it
            # without a writer would wait for one.
            fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise SourceError(f"{self.origin}: no such file") from None
        except OSError as error:
            raise SourceError(f"{self.origin}: cannot open it: {error.strerror or error}") from None
        try:
            info = os.fstat(fd)
            _check_regular(self.origin, info)  # it may have been swapped in between
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

    async def _read_off_loop(self) -> str:
        """_read in a thread, waited for at most read_timeout; a read that hangs is waited for
        again at the next call rather than started twice."""
        if self._reading is None:
            self._reading = _in_daemon_thread(self._read)
        try:
            # asyncio.timeout, not wait_for: Python 3.11's wait_for swallows a cancellation that
            # comes as the read completes, and the source then never stops.
            async with asyncio.timeout(self.read_timeout):
                return await asyncio.shield(self._reading)
        except TimeoutError:
            raise SourceError(
                f"{self.origin}: reading it has not finished after {self.read_timeout:g} s (a hung mount?)"
            ) from None
        finally:
            if self._reading.done():
                self._reading = None

    async def read_initial(self) -> str:
        self._initial = await self._read_off_loop()
        return self._initial

    async def follow(self, publish: Publish) -> None:
        watch = FileWatch(self.path)
        watch.start()
        try:
            await self._poll(publish, watch)
        finally:
            watch.close()

    async def _poll(self, publish: Publish, watch: FileWatch) -> None:
        last_seen = self._initial
        last_read_failed = False
        while True:
            with contextlib.suppress(TimeoutError):  # the next poll, or at once on a completed write
                async with asyncio.timeout(self.poll_interval):
                    await watch.changed.wait()
            watch.changed.clear()
            try:
                value = await self._read_off_loop()
            except SourceError as error:
                # `echo v2 > file` empties the file for a moment: a problem counts only when
                # the next poll still sees it. Each problem is logged once, not every poll.
                if last_read_failed and self.problem != str(error):
                    self.problem = str(error)
                    NOISE.log_summarised(
                        "source error, keeping the last good version", source=self.name, error=str(error)
                    )
                last_read_failed = True
                continue
            last_read_failed = False
            if self.problem is not None:
                NOISE.log_summarised(
                    "source recovered", logging.INFO, source=self.name, path=str(self.path)
                )  # a flapping file: summarised
                self.problem = None
            if value != last_seen:
                last_seen = value
                publish(value)


def _check_regular(origin: str, info: os.stat_result) -> None:
    kind = stat.S_IFMT(info.st_mode)
    if kind != stat.S_IFREG:
        raise SourceError(f"{origin}: is {_KINDS.get(kind, 'of an unknown kind')}, not a regular file")


def _in_daemon_thread(read: Callable[[], str]) -> asyncio.Future[str]:
    """read() in a daemon thread: one that hangs in the kernel never holds up the process's exit
    (a pool's threads are joined at exit), and costs one thread, not a pool's worker."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[str] = loop.create_future()

    def settle(value: str | None, error: BaseException | None) -> None:
        if future.done():  # cancelled: nobody waits any more
            return
        if error is not None:
            future.set_exception(error)
        else:
            assert value is not None
            future.set_result(value)

    def run() -> None:
        value: str | None = None
        error: BaseException | None = None
        try:
            value = read()
        except BaseException as raised:  # handed to the loop, which re-raises it
            error = raised
        with contextlib.suppress(RuntimeError):  # the loop closed while the read hung
            loop.call_soon_threadsafe(settle, value, error)

    threading.Thread(target=run, name="version-file-read", daemon=True).start()
    return future


def _read_at_most(fd: int, limit: int) -> bytes:
    """Up to `limit` bytes, to the end of the file: one read may return less than asked for (a
    file under /proc hands out a page at a time, and says its size is 0)."""
    data = b""
    while len(data) < limit and (chunk := os.read(fd, limit - len(data))):
        data += chunk
    return data
