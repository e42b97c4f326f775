"""structlog set-up: readable lines on a terminal, JSON lines for log collectors.

Every line is one event, written with one system call, so lines of several workers sharing
stderr never interleave; aiohttp's and asyncio's own log records go the same way. Per-request
noise (bad requests, refused clients, descriptor errors) is summarised by `Noise`.
"""

import asyncio
import logging
import os
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
        logger_factory=_LineWriterFactory(sys.stderr),
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


class _LineWriter:
    """Writes each rendered event as one line in one write(2)."""

    def __init__(self, stream: TextIO, name: str | None) -> None:
        self._fd = stream.fileno()
        self.name = name  # what add_logger_name shows

    def msg(self, message: str) -> None:
        data = (message.replace("\n", "\\n") + "\n").encode("utf-8", "backslashreplace")
        while data:
            try:
                written = os.write(self._fd, data)
            except BlockingIOError:
                continue
            except OSError:
                return  # stderr is gone: nothing to tell it
            data = data[written:]

    log = debug = info = warn = warning = error = critical = exception = fatal = failure = err = msg


class _LineWriterFactory:
    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def __call__(self, *args: Any) -> _LineWriter:
        return _LineWriter(self._stream, args[0] if args else None)


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
