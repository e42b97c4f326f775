"""The file source on its own: what it makes of each kind of file, how it polls and reports, and
that a completed write is announced at once where inotify works (Linux)."""

import asyncio
import ctypes
import os
import shutil
import socket
import threading
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from sidecar.sources import SourceError
from sidecar.sources import file as file_source
from sidecar.sources.file import MAX_FILE_BYTES, FileSource
from sidecar.sources.file_watch import FileWatch
from tests.waiting import eventually


async def test_a_write_and_a_rename_over_wake_the_watch(tmp_path: Path) -> None:
    version_file = tmp_path / "version.txt"
    version_file.write_text("v1\n")
    watch = FileWatch(version_file)
    assert watch.start(), "inotify is not available on this Linux machine"
    try:
        # inotify queues an event when the write's close() returns: read the queue right away.
        (tmp_path / "other.txt").write_text("not the version file\n")
        watch._read_events()
        assert not watch.changed.is_set()
        version_file.write_text("v2\n")
        await asyncio.wait_for(watch.changed.wait(), 10)
        watch.changed.clear()
        staging = tmp_path / "version.new"
        staging.write_text("v3\n")
        staging.replace(version_file)
        await asyncio.wait_for(watch.changed.wait(), 10)
    finally:
        watch.close()


async def test_the_file_source_announces_a_write_before_its_next_poll(tmp_path: Path) -> None:
    version_file = tmp_path / "version.txt"
    version_file.write_text("v1\n")
    source = FileSource(version_file, poll_interval=3600)
    seen: asyncio.Queue[str] = asyncio.Queue()

    follower = asyncio.create_task(source.follow(seen.put_nowait))
    try:
        await asyncio.sleep(0)  # the follower starts its watch before it first waits
        version_file.write_text("v2\n")
        assert await asyncio.wait_for(seen.get(), 10) == "v2"
    finally:
        follower.cancel()
        await asyncio.gather(follower, return_exceptions=True)


async def test_following_does_not_offer_again_what_the_initial_read_delivered(tmp_path: Path) -> None:
    # Offering it again would undo any version announced in between (the http tier's publish).
    version_file = tmp_path / "version.txt"
    version_file.write_text("v1\n")
    source = FileSource(version_file, poll_interval=3600)
    assert await source.read_initial() == "v1"
    first_poll_read = threading.Event()
    read = source._read

    def read_and_tell() -> str:
        value = read()
        first_poll_read.set()
        return value

    source._read = read_and_tell  # type: ignore[method-assign]
    seen: asyncio.Queue[str] = asyncio.Queue()
    follower = asyncio.create_task(source.follow(seen.put_nowait))
    try:
        await asyncio.sleep(0)  # the follower starts its watch before it first waits
        version_file.write_text("v1\n")  # the same content: wakes the follower, which reads it
        assert await asyncio.to_thread(first_poll_read.wait, 10)
        version_file.write_text("v2\n")  # read only once the v1 read has been handled
        assert await asyncio.wait_for(seen.get(), 10) == "v2"
    finally:
        follower.cancel()
        await asyncio.gather(follower, return_exceptions=True)


IN_OPEN = 0x00000020  # <sys/inotify.h>: the file was opened
TOO_LONG = "is 4097 bytes long; a version file holds at most 4096"


def read(path: Path) -> str:
    """What the file source makes of `path`: its version, or the problem it reports."""
    try:
        return FileSource(path)._read()
    except SourceError as problem:
        return f"problem: {problem}"


def test_the_version_is_the_files_content_without_surrounding_whitespace(tmp_path: Path) -> None:
    (tmp_path / "v").write_text("\n  2f9c1e7 \t\n")
    assert read(tmp_path / "v") == "2f9c1e7"


def test_a_file_of_exactly_the_limit_is_read_one_byte_more_is_not(tmp_path: Path) -> None:
    (tmp_path / "v").write_text("v1" + " " * (MAX_FILE_BYTES - 2))
    assert read(tmp_path / "v") == "v1"
    (tmp_path / "v").write_text("v1" + " " * (MAX_FILE_BYTES - 1))
    assert (
        read(tmp_path / "v")
        == f"problem: --version-file {tmp_path / 'v'}: is 4097 bytes long; a version file holds at most 4096"
    )


def test_a_file_that_says_it_is_small_but_is_not_is_cut_off(tmp_path: Path) -> None:
    # Files under /proc are regular files of size 0 whatever they hold: the read itself is bounded.
    (tmp_path / "v").symlink_to("/proc/self/smaps")
    assert (
        read(tmp_path / "v")
        == f"problem: --version-file {tmp_path / 'v'}: is 4097 bytes long; a version file holds at most 4096"
    )


def test_what_is_not_a_regular_file_is_named(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")  # no writer: opening it must not wait for one
    (tmp_path / "dir").mkdir()
    (tmp_path / "null").symlink_to("/dev/null")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(tmp_path / "sock"))
    try:
        for name, kind in [
            ("fifo", "a FIFO (named pipe)"),
            ("dir", "a directory"),
            ("null", "a character device"),
            ("sock", "a socket"),
        ]:
            assert read(tmp_path / name) == f"problem: --version-file {tmp_path / name}: is {kind}, not a regular file"
    finally:
        listener.close()


def test_unreadable_odd_and_empty_files_say_why(tmp_path: Path) -> None:
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    (tmp_path / "latin1").write_bytes(b"v1\xe9")
    (tmp_path / "blank").write_text(" \n\t\n")
    assert read(tmp_path / "missing") == f"problem: --version-file {tmp_path / 'missing'}: no such file"
    assert read(tmp_path / "loop") == (
        f"problem: --version-file {tmp_path / 'loop'}: cannot open it: Too many levels of symbolic links"
    )
    assert read(tmp_path / "latin1") == (
        f"problem: --version-file {tmp_path / 'latin1'}: is not UTF-8 text (unexpected end of data at byte 2)"
    )
    assert read(tmp_path / "blank") == f"problem: --version-file {tmp_path / 'blank'}: the file is empty"


async def test_a_problem_counts_when_the_next_poll_still_sees_it_and_is_logged_once(tmp_path: Path) -> None:
    version_file = tmp_path / "version.txt"
    version_file.write_text("v1\n")
    source = FileSource(version_file, poll_interval=0.01)
    seen: list[str] = []
    with capture_logs() as logs:
        follower = asyncio.create_task(source.follow(seen.append))
        try:
            await eventually(lambda: seen == ["v1"], "the first read")
            version_file.unlink()
            await eventually(lambda: source.problem, "the missing file to count as a problem")
            polls = len(logs)
            await eventually(lambda: len(seen) == 1 and source.problem, "more polls")  # still missing
            version_file.write_text("v1\n")  # the same version back: recovered, not announced again
            await eventually(lambda: source.problem is None, "the recovery")
            version_file.write_text("v2\n")
            await eventually(lambda: seen == ["v1", "v2"], "v2")
        finally:
            follower.cancel()
            await asyncio.gather(follower, return_exceptions=True)
    assert polls == 1
    assert [{k: v for k, v in entry.items() if k != "log_level"} for entry in logs] == [
        {
            "event": "source error, keeping the last good version",
            "source": "file",
            "error": f"--version-file {version_file}: no such file",
        },
        {"event": "source recovered", "source": "file", "path": str(version_file)},
    ]


async def test_a_file_missing_from_the_start_is_a_problem_from_the_second_poll_on(tmp_path: Path) -> None:
    source = FileSource(tmp_path / "version.txt", poll_interval=0.01)
    problem_at_each_read: list[str | None] = []
    read = source._read

    def watched_read() -> str:
        problem_at_each_read.append(source.problem)
        return read()

    source._read = watched_read  # type: ignore[method-assign]
    follower = asyncio.create_task(source.follow(lambda version: None))
    try:
        await eventually(lambda: len(problem_at_each_read) >= 3, "three polls")
    finally:
        follower.cancel()
        await asyncio.gather(follower, return_exceptions=True)
    missing = f"--version-file {tmp_path / 'version.txt'}: no such file"
    assert problem_at_each_read[:3] == [None, None, missing]


def test_the_default_poll_interval_is_a_fifth_of_a_second(tmp_path: Path) -> None:
    assert FileSource(tmp_path / "v").poll_interval == 0.2


async def test_a_hung_read_is_a_problem_while_the_loop_runs_on_and_the_last_version_stays(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stand-in for a hung network mount: the file's read blocks in its thread until released
    (or 10 s pass, so that code reading on the loop fails this test instead of hanging it)."""
    version_file = tmp_path / "version.txt"
    version_file.write_text("v1\n")
    hang, release = threading.Event(), threading.Event()
    hung_reads = 0
    read_at_most = file_source._read_at_most

    def hanging_read(fd: int, limit: int) -> bytes:
        nonlocal hung_reads
        if hang.is_set():
            hung_reads += 1
            release.wait(10)
        return read_at_most(fd, limit)

    monkeypatch.setattr(file_source, "_read_at_most", hanging_read)
    source = FileSource(version_file, poll_interval=0.01, read_timeout=0.1)
    seen: list[str] = []
    follower = asyncio.create_task(source.follow(seen.append))
    try:
        await eventually(lambda: seen == ["v1"], "the first read")
        hang.set()
        version_file.write_text("v2\n")
        await eventually(lambda: source.problem, "the hung read to count as a problem", timeout=5)
        assert (
            source.problem == f"--version-file {version_file}: reading it has not finished after 0.1 s (a hung mount?)"
        )
        problem = source.problem
        await eventually(lambda: source.problem == problem and hung_reads == 1, "polls waiting on the one hung read")
        assert seen == ["v1"]
        hang.clear()
        release.set()  # the mount answers again: its late value, then the next reads
        await eventually(lambda: seen == ["v1", "v2"] and source.problem is None, "v2 and the recovery")
    finally:
        release.set()
        follower.cancel()
        await asyncio.gather(follower, return_exceptions=True)
    assert hung_reads == 1  # one thread held by the hung mount, not one per poll


def test_a_device_or_fifo_is_never_opened(tmp_path: Path) -> None:
    """Its kind is checked before open(): opening a device runs its driver. inotify sees every
    open of the FIFO, whatever its kind, so the watch tells whether the source opened it."""
    fifo = tmp_path / "version.txt"
    os.mkfifo(fifo)
    libc = ctypes.CDLL(None, use_errno=True)
    watch = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
    assert watch >= 0 and libc.inotify_add_watch(watch, bytes(fifo), IN_OPEN) >= 0
    try:
        assert read(fifo) == f"problem: --version-file {fifo}: is a FIFO (named pipe), not a regular file"
        with pytest.raises(BlockingIOError):  # no event queued: nobody opened it
            os.read(watch, 4096)
        os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))  # the control: an open is seen
        assert os.read(watch, 4096)
    finally:
        os.close(watch)


class KubeletVolume:
    """A ConfigMap (or downward API) volume written the way the kubelet writes one: each payload
    in a new timestamped hidden directory, `..data` a link to the current one, renamed over
    atomically, each key a link through it (`version -> ..data/version`), the old payload deleted."""

    def __init__(self, directory: Path, version: str) -> None:
        self.directory = directory
        self.updates = 0
        self.current = self._write_payload(version)
        (directory / "..data").symlink_to(self.current.name)
        (directory / "version").symlink_to("..data/version")

    def _write_payload(self, version: str) -> Path:
        self.updates += 1
        payload = self.directory / f"..2026_12_04_19_30_{self.updates:02d}.{self.updates:09d}"
        payload.mkdir()
        (payload / "version").write_text(version)
        return payload

    def update(self, version: str) -> None:
        old, self.current = self.current, self._write_payload(version)
        (self.directory / "..data_tmp").symlink_to(self.current.name)
        os.rename(self.directory / "..data_tmp", self.directory / "..data")
        shutil.rmtree(old)


async def test_a_kubernetes_volume_update_is_announced_once_by_the_watch_alone(tmp_path: Path) -> None:
    """Several updates in a row, each announced once; the poll is an hour away, so each is
    announced because the watch saw the `..data` link renamed over."""
    volume = KubeletVolume(tmp_path, "v1")
    source = FileSource(tmp_path / "version", poll_interval=3600)
    assert await source.read_initial() == "v1"
    seen: list[str] = []
    follower = asyncio.create_task(source.follow(seen.append))
    try:
        await asyncio.sleep(0)  # the follower starts its watch before it first waits
        for number in range(2, 6):
            volume.update(f"v{number}")
            await eventually(lambda: seen[-1:] == [f"v{number}"], f"v{number}")  # noqa: B023
        assert sorted(os.listdir(tmp_path)) == ["..2026_12_04_19_30_05.000000005", "..data", "version"]
    finally:
        follower.cancel()
        await asyncio.gather(follower, return_exceptions=True)
    assert seen == ["v2", "v3", "v4", "v5"]
    assert source.problem is None
