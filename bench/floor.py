"""`python -m bench.floor`: the least a server can do per stream, as a third server in the scale run.

It holds SSE streams and fans a change out to them with nothing else: one epoll loop per process
(no asyncio, no HTTP parser, no drop rules, no heartbeat, no logging), one `os.write` per stream
per change. Whatever it pays per stream is what the kernel charges on this machine plus a few
hundred nanoseconds of Python, so its p99 against nchan's is the best ratio any server could
reach here (bench/RESULTS.md, "Issue 23.3"). Not a product: it answers each connection's first
request with an event-stream head and ignores everything else.

The benchmark announces a change by writing the version file and sending SIGUSR1 to the process
group; each worker reads the file and writes the event to every stream it holds.
"""

import argparse
import os
import select
import signal
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

from sidecar.sse import encode_version_event
from sidecar.version import Version

from .loadclient import raise_open_files_limit

HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
    b"Connection: close\r\n\r\n"  # the body ends at the close: no chunk framing to pay for
)


def encode_event(version_file: Path) -> bytes:
    """The version event the sidecar would send, byte for byte (the bench's versions are valid)."""
    return encode_version_event(Version(version_file.read_text().strip()))


def serve(listener: socket.socket, version_file: Path) -> None:
    """One worker's loop, until SIGTERM."""
    wake_reader, wake_writer = socket.socketpair()
    wake_writer.setblocking(False)
    signal.set_wakeup_fd(wake_writer.fileno())
    signal.signal(signal.SIGUSR1, lambda _signum, _frame: None)  # the wake-up fd says it came
    event = encode_event(version_file)
    poller = select.epoll()
    poller.register(listener.fileno(), select.EPOLLIN)
    poller.register(wake_reader.fileno(), select.EPOLLIN)
    waiting: dict[int, socket.socket] = {}  # connected, request not yet answered
    streams: dict[int, socket.socket] = {}  # answered: written to at each change
    while True:
        for fd, _ in poller.poll():
            if fd == listener.fileno():
                while True:
                    try:
                        connection, _ = listener.accept()
                    except BlockingIOError:
                        break
                    connection.setblocking(False)
                    waiting[connection.fileno()] = connection
                    poller.register(connection.fileno(), select.EPOLLIN)
            elif fd == wake_reader.fileno():
                wake_reader.recv(4096)
                event = encode_event(version_file)
                for stream_fd in streams:
                    try:
                        os.write(stream_fd, event)
                    except OSError:  # full or gone: its end of file is seen by the poller
                        pass
            elif (connection := waiting.pop(fd, None)) is not None:
                if connection.recv(4096):  # a request (one small read: good enough for the load client)
                    connection.send(HEAD + event)
                    streams[fd] = connection
                    continue
                poller.unregister(fd)
                connection.close()
            elif fd in streams and not streams[fd].recv(4096):  # the peer has gone
                poller.unregister(fd)
                streams.pop(fd).close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.floor", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--version-file", type=Path, required=True)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    raise_open_files_limit()
    listeners = []
    for _ in range(args.workers):
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        listener.bind(("127.0.0.1", args.port))
        listener.listen(1024)
        listener.setblocking(False)
        listeners.append(listener)
    for listener in listeners[1:]:
        if os.fork() == 0:
            serve(listener, args.version_file)
    # Stopped by the benchmark: the whole group goes (its workers would not notice otherwise).
    signal.signal(signal.SIGTERM, lambda _signum, _frame: os.killpg(0, signal.SIGKILL))
    serve(listeners[0], args.version_file)
    return 0


if __name__ == "__main__":
    sys.exit(main())
