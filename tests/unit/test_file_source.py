"""The file source on its own: what it makes of each kind of file, how it polls and reports, and
that a completed write is announced at once where inotify works (Linux)."""

import asyncio
import os
import socket
from pathlib import Path

from structlog.testing import capture_logs

from sidecar.sources import SourceError
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
