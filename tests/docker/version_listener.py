"""An SSE client of the sidecar's version stream on a thread of its own, so plain (blocking) tests
can drive the Docker Engine while it keeps listening; it records every version event in order."""

import http.client
import json
import socket
import threading
import time
from urllib.parse import urlsplit

from tests.sse_parser import SSEParser


class VersionListener:
    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        assert parts.hostname is not None
        self.url = url
        self._connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        self._connection.request("GET", parts.path, headers={"Accept": "text/event-stream"})
        # The response takes the socket over from the connection (the stream says Connection: close).
        self._sock = self._connection.sock
        self._response = self._connection.getresponse()
        assert self._response.status == 200, self._response.status
        self._sock.settimeout(None)  # the stream may stay quiet for a heartbeat or longer
        self.versions: list[str] = []  # every version event, heartbeats included
        self.received_at: list[float] = []  # time.time() when each of them arrived
        self.ended = False
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._read, name=f"sse {url}", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        parser = SSEParser()
        try:
            while chunk := self._response.read1(65536):
                for event in parser.feed(chunk.decode()):
                    if event.type == "version":
                        version = json.loads(event.data)["version"]
                        assert event.last_event_id == version
                        with self._changed:
                            self.versions.append(version)
                            self.received_at.append(time.time())
                            self._changed.notify_all()
        except (OSError, ValueError, http.client.HTTPException):
            pass  # closed by close(), or the server went away: `ended` says so
        finally:
            with self._changed:
                self.ended = True
                self._changed.notify_all()

    def changes(self) -> list[str]:
        """The versions announced, in order, without heartbeat repeats."""
        with self._changed:
            return [v for i, v in enumerate(self.versions) if i == 0 or self.versions[i - 1] != v]

    def wait_for(self, version: str, timeout: float = 30.0) -> None:
        """Wait until `version` is the latest one announced; fails the test after `timeout` s."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not (self.versions and self.versions[-1] == version):
                left = deadline - time.monotonic()
                if left <= 0 or self.ended:
                    raise AssertionError(
                        f"{self.url}: {version!r} not announced (seen {self.versions}, stream ended: {self.ended})"
                    )
                self._changed.wait(left)

    def close(self) -> None:
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._thread.join(10)
        self._response.close()
        self._connection.close()
