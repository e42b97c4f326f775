"""From a version file's update to the file source announcing it: the shipped inotify watch, the
0.2 s poll alone, and the watchfiles package (if installed); writes in place and kubelet swaps.

    .venv/bin/python -m bench.watch_latency [inotify] [poll] [watchfiles]

A measurement for the choice in docs/sources.md, not a test: it asserts nothing."""

import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from sidecar.sources import file_watch
from sidecar.sources.file import FileSource
from tests.unit.test_file_source import KubeletVolume

UPDATES = 30


async def follow_with_watchfiles(directory: Path, path: Path, publish: Callable[[str], None]) -> None:
    import watchfiles  # optional: only for this comparison

    last = None
    async for _ in watchfiles.awatch(directory, step=1, debounce=50, recursive=False):
        if (value := path.read_text()) != last:  # noqa: ASYNC240 (as the source's own read would)
            last = value
            publish(value)


async def measure(kind: str, layout: str) -> list[float]:
    directory = Path(tempfile.mkdtemp())
    path = directory / "version"
    if layout == "kubelet":
        update: Callable[[str], object] = KubeletVolume(directory, "v0").update
    else:
        path.write_text("v0")
        update = path.write_text
    arrived: asyncio.Queue[tuple[str, float]] = asyncio.Queue()

    def publish(value: str) -> None:
        arrived.put_nowait((value, time.perf_counter()))

    if kind == "watchfiles":
        task = asyncio.create_task(follow_with_watchfiles(directory, path, publish))
    else:
        if kind == "poll":
            file_watch.FileWatch.start = lambda self: False  # type: ignore[method-assign]
        task = asyncio.create_task(FileSource(path).follow(publish))
    await asyncio.sleep(0.5)
    while not arrived.empty():
        arrived.get_nowait()
    latencies = []
    for number in range(1, UPDATES + 1):
        written = time.perf_counter()
        update(f"v{number}")
        while (value_and_time := await asyncio.wait_for(arrived.get(), 5))[0] != f"v{number}":
            pass
        latencies.append((value_and_time[1] - written) * 1000)
        await asyncio.sleep(0.05 + (number % 7) * 0.013)  # not in step with the poll
    task.cancel()
    shutil.rmtree(directory)
    return latencies


async def main(kinds: list[str]) -> None:
    for kind in kinds:
        for layout in ["in-place", "kubelet"]:
            latencies = await measure(kind, layout)
            print(
                f"{kind:10} {layout:9} median {statistics.median(latencies):6.1f} ms, "
                f"max {max(latencies):6.1f} ms ({UPDATES} updates)"
            )


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:] or ["inotify", "poll"]))
