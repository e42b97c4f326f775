"""A completed write of the version file is announced at once where inotify works (Linux),
without waiting for the next poll: here the poll interval is an hour."""

import asyncio
from pathlib import Path

from sidecar.sources.file import FileSource
from sidecar.sources.file_watch import FileWatch


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
