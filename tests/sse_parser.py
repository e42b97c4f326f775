"""A Server-Sent Events parser that follows the HTML specification's stream interpretation,
independent of the sidecar's encoder, so tests check the wire format the way a browser reads it."""

import re
from dataclasses import dataclass, field

_LINE_END = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True)
class Event:
    type: str
    data: str
    last_event_id: str


@dataclass
class SSEParser:
    """Feed text with feed(); complete events collect in `events`; `retry` holds the last retry."""

    events: list[Event] = field(default_factory=list)
    retry: int | None = None
    last_event_id: str = ""
    _pending: str = ""
    _type: str = ""
    _data: list[str] = field(default_factory=list)

    def feed(self, text: str) -> list[Event]:
        """Parse `text`; returns the events it completed."""
        before = len(self.events)
        buffer = self._pending + text
        lines = _LINE_END.split(buffer)
        # The last piece has no line end yet, unless it is a lone CR waiting for its LF.
        self._pending = lines.pop()
        for line in lines:
            self._line(line)
        return self.events[before:]

    def _line(self, line: str) -> None:
        if line == "":
            if self._data:
                self.events.append(Event(self._type or "message", "\n".join(self._data), self.last_event_id))
            self._type, self._data = "", []
            return
        if line.startswith(":"):
            return
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "event":
            self._type = value
        elif name == "data":
            self._data.append(value)
        elif name == "id":
            if "\0" not in value:
                self.last_event_id = value
        elif name == "retry":
            if value.isascii() and value.isdigit():
                self.retry = int(value)
