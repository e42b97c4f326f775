"""The host's version: the one announced last by any worker, and its changes, counted once.

Every worker follows the source and announces each change itself, so one deploy reaches the
table once per worker: only the first to write the new version counts it. The first version
known is no change.
"""

from .host_memory import HostMemory, Row
from .version import Version


def announce(memory: HostMemory, row: Row, version: Version) -> None:
    """The worker of `row` announces `version`."""
    header, encoded = memory.header, version.encode()
    with memory.lock:
        row.version = encoded
        if header.version != encoded:
            if header.version:
                header.version_changes += 1
            header.version = encoded
