"""structlog set-up: readable lines on a terminal, JSON lines for log collectors.

Every line is one event, written with one system call, so lines of several workers sharing
stderr never interleave; aiohttp's and asyncio's own log records go the same way. Per-request
noise (bad requests, refused clients, descriptor errors) is summarised by `Noise`.

Writing a line never waits: a log reader that stalls (a hung log shipper, `| slow-consumer`) must
not stop the event loop, and with it every stream. stderr is written through a non-blocking
description of its own (`Output`); a line that does not fit is dropped and counted, and once the
reader drains, one line says how many were lost (and /metrics counts them).
"""

import asyncio
import contextlib
import logging
import os
import socket
import stat
import sys
from dataclasses import dataclass
from typing import Any, TextIO

import structlog

# A kind of noise is logged at once the first time, then as one summary line per this many seconds.
NOISE_PERIOD = 10.0


def configure_logging(log_format: str = "auto", level: str = "info", worker: int | str | None = None) -> None:
    """`worker`: the index of the worker writing, or "supervisor" (with --workers N)."""
    as_json = log_format == "json" or (log_format == "auto" and not sys.stderr.isatty())
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    processors: list[structlog.typing.Processor] = [
        structlog.stdlib.add_logger_name,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if worker is not None:
        processors.append(_Fields(worker=worker))
    processors += [structlog.processors.format_exc_info, renderer]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper())),
        logger_factory=_LineWriterFactory(Output.of(sys.stderr)),
        cache_logger_on_first_use=False,
    )
    # aiohttp's and asyncio's own records become events like ours.
    bridge = _FromStandardLogging()
    for name in ("aiohttp", "asyncio"):
        stdlib_logger = logging.getLogger(name)
        stdlib_logger.handlers = [bridge]
        stdlib_logger.propagate = False
        stdlib_logger.setLevel(logging.INFO)


def get_logger(name: str) -> structlog.typing.FilteringBoundLogger:
    """A logger whose events carry `logger=name` (sidecar.hub, ...)."""
    return structlog.get_logger(name)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class _Fields:
    """Adds fixed fields (the worker) to every event."""

    worker: int | str

    def __call__(self, _logger: Any, _method: str, event: structlog.typing.EventDict) -> structlog.typing.EventDict:
        event.setdefault("worker", self.worker)
        return event


class Output:
    """stderr, written without ever waiting. Pipes and terminals are reopened through /proc with
    O_NONBLOCK (a description of this process's own: the shell sharing a terminal is not
    affected); a socket (journald) is sent to with MSG_DONTWAIT; a regular file is written as is."""

    current: "Output | None" = None  # this process's, for the count in its row of the host table

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.dropped = 0  # lines lost since start
        self._unreported = 0  # lines lost since the last summary
        self._pending = b""  # the rest of a line cut short by a full pipe: it goes out first
        self._watched = False  # the loop says when the fd can take more
        self._send: socket.socket | None = None
        try:
            kind = stat.S_IFMT(os.fstat(fd).st_mode)
        except OSError:
            return
        if kind == stat.S_IFSOCK:
            with contextlib.suppress(OSError):
                self._send = socket.socket(fileno=os.dup(fd))
        elif kind in (stat.S_IFIFO, stat.S_IFCHR):
            try:
                self.fd = os.open(f"/proc/self/fd/{fd}", os.O_WRONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
            except OSError:  # no /proc, or a pipe another user made: make the inherited one non-blocking
                if not os.isatty(fd):
                    os.set_blocking(fd, False)

    @classmethod
    def of(cls, stream: TextIO) -> "Output":
        if cls.current is not None and cls.current.fd > 2:
            with contextlib.suppress(OSError):
                os.close(cls.current.fd)  # a worker reconfiguring: the supervisor's copy
        cls.current = cls(stream.fileno())
        return cls.current

    def write(self, data: bytes) -> None:
        if self._pending and not self._flush_pending():
            self._lost()
            return
        try:
            written = self._write(data)
        except BlockingIOError:
            self._lost()
            return
        except OSError:
            return  # stderr is gone: nothing to tell it
        if written < len(data):
            self._pending = data[written:]
            self._watch()
        elif self._unreported and not self._watched:
            self._drained()  # no loop told us (the supervisor has none): say it now

    def _write(self, data: bytes) -> int:
        if self._send is not None:
            return self._send.send(data, socket.MSG_DONTWAIT)
        return os.write(self.fd, data)

    def _flush_pending(self) -> bool:
        try:
            written = self._write(self._pending)
        except OSError:
            return False
        self._pending = self._pending[written:]
        return not self._pending

    def _lost(self) -> None:
        self.dropped += 1
        self._unreported += 1
        self._watch()

    def _watch(self) -> None:
        if self._watched:
            return
        try:
            asyncio.get_running_loop().add_writer(self._send or self.fd, self._drained)
        except (RuntimeError, ValueError, OSError, NotImplementedError):  # no loop, or a regular file
            return
        self._watched = True

    def _drained(self) -> None:
        """The reader took some: finish the cut line, then say what was lost."""
        if self._pending and not self._flush_pending():
            return
        if self._watched:
            with contextlib.suppress(RuntimeError):
                asyncio.get_running_loop().remove_writer(self._send or self.fd)
            self._watched = False
        if self._unreported:
            count, self._unreported = self._unreported, 0
            get_logger("sidecar.logs").warning(
                "log lines dropped: the log reader did not keep up", count=count, dropped_since_start=self.dropped
            )


class _LineWriter:
    """Writes each rendered event as one line in one write(2), or drops it (see Output)."""

    def __init__(self, output: Output, name: str | None) -> None:
        self._output = output
        self.name = name  # what add_logger_name shows

    def msg(self, message: str) -> None:
        self._output.write((message.replace("\n", "\\n") + "\n").encode("utf-8", "backslashreplace"))

    log = debug = info = warn = warning = error = critical = exception = fatal = failure = err = msg


class _LineWriterFactory:
    def __init__(self, output: Output) -> None:
        self._output = output

    def __call__(self, *args: Any) -> _LineWriter:
        return _LineWriter(self._output, args[0] if args else None)


class _FromStandardLogging(logging.Handler):
    """Passes aiohttp's and asyncio's records on as structlog events; bad requests as noise."""

    def emit(self, record: logging.LogRecord) -> None:
        error = record.exc_info[1] if record.exc_info else None
        if record.name == "aiohttp.server" and str(record.msg).startswith("Error handling request"):
            NOISE.note("bad request", error=_describe(error))
            return
        log = get_logger(record.name)
        log.log(record.levelno, record.getMessage(), exc_info=record.exc_info or False)


class Noise:
    """Summarises events that come per request, or that flap: the first of each kind is logged at
    once, later ones are counted and logged as one line per NOISE_PERIOD while they keep coming."""

    def __init__(self, period: float = NOISE_PERIOD) -> None:
        self.period = period
        self._counts: dict[str, int] = {}  # kinds seen in the current period, and how often since logged
        self._levels: dict[str, int] = {}  # the level each kind is logged at
        self._loop: asyncio.AbstractEventLoop | None = None  # whose timers summarise the kinds counted
        self._log = get_logger("sidecar.noise")

    def note(self, kind: str, level: int = logging.WARNING, **fields: Any) -> None:
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:  # no loop (start-up): nothing to summarise later
            loop = None
        if loop is not self._loop:  # a new loop: the old one's timers will never summarise
            self._counts.clear()
            self._loop = loop
        if kind in self._counts:
            self._counts[kind] += 1
            return
        self._log.log(level, kind, **fields)
        if loop is not None:
            self._counts[kind], self._levels[kind] = 0, level
            loop.call_later(self.period, self._summarise, kind)

    def flush(self) -> None:
        """Log what is still being counted (at shutdown, so no count is lost)."""
        for kind, count in self._counts.items():
            if count:
                self._log.log(self._levels[kind], f"{kind} (summary)", count=count)
        self._counts.clear()

    def _summarise(self, kind: str) -> None:
        count = self._counts.pop(kind, 0)
        if count:
            self._log.log(self._levels[kind], f"{kind} (summary)", count=count, seconds=self.period)
            self._counts[kind] = 0  # still coming: keep counting
            asyncio.get_running_loop().call_later(self.period, self._summarise, kind)


NOISE = Noise()


def _describe(error: BaseException | None) -> str | None:
    if error is None:
        return None
    return f"{type(error).__name__}: {error}"[:300]
