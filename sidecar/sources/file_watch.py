"""A hint that a file was just written: Linux inotify on its directory, where available.

The file source still polls (inotify misses writes on some mounts, e.g. network file systems
and bind mounts changed from the other side); the hint only lets it read at once, instead of up
to one poll interval later, when a write or a rename-over completes.
"""

import asyncio
import ctypes
import os
import struct
from pathlib import Path

from ..logs import get_logger

log = get_logger("sidecar.sources.file_watch")

# From <sys/inotify.h>: a file opened for writing was closed; a file was renamed into the folder.
_IN_CLOSE_WRITE = 0x00000008
_IN_MOVED_TO = 0x00000080
_EVENT_HEAD = struct.Struct("iIII")  # wd, mask, cookie, len; then `len` bytes of name


class FileWatch:
    """Sets `changed` each time `path` is completely written or renamed into place, or the link
    it reads through is: Kubernetes mounts a ConfigMap's key as `version -> ..data/version` and
    updates it by renaming a new `..data` link over the old one, which the file's own name never
    sees."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.changed = asyncio.Event()
        self._fd: int | None = None
        self._names = {os.fsencode(path.name)}
        if path.is_symlink() and not (target := Path(os.readlink(path))).is_absolute():
            self._names.add(os.fsencode(target.parts[0]))

    def start(self) -> bool:
        """Begin watching; False (and polling alone) where inotify is not available."""
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        except (OSError, AttributeError):
            return False
        if fd < 0:
            return False
        directory = bytes(self.path.parent.resolve())
        if libc.inotify_add_watch(fd, directory, _IN_CLOSE_WRITE | _IN_MOVED_TO) < 0:
            os.close(fd)
            return False
        self._fd = fd
        asyncio.get_running_loop().add_reader(fd, self._read_events)
        return True

    def _read_events(self) -> None:
        assert self._fd is not None
        try:
            while True:
                data = os.read(self._fd, 65536)
                if not data:
                    return
                offset = 0
                while offset + _EVENT_HEAD.size <= len(data):
                    _, _, _, length = _EVENT_HEAD.unpack_from(data, offset)
                    offset += _EVENT_HEAD.size
                    if data[offset : offset + length].rstrip(b"\0") in self._names:
                        self.changed.set()
                    offset += length
        except BlockingIOError:
            return
        except OSError as error:  # the watch is gone; polling goes on
            log.warning("file watch stopped, polling only", path=str(self.path), error=str(error))
            self.close()

    def close(self) -> None:
        if self._fd is not None:
            asyncio.get_running_loop().remove_reader(self._fd)
            os.close(self._fd)
            self._fd = None
