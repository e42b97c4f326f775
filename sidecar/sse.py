"""Server-Sent Events encoding of the version stream, done once per event, not per client."""

import json

from .version import Version


def encode_version_event(version: Version, notes: str | None = None, required: bool = False) -> bytes:
    """The `version` event as it goes on the wire (a Version cannot break the framing; json.dumps
    escapes any line break). `notes` and `required` are in the data only when set."""
    fields: dict[str, str | bool] = {"version": version}
    if notes is not None:
        fields["notes"] = notes
    if required:
        fields["required"] = True
    data = json.dumps(fields, ensure_ascii=False)
    return f"event: version\nid: {version}\ndata: {data}\n\n".encode()


def encode_retry(milliseconds: int) -> bytes:
    """A block that only sets the client's reconnect delay (dispatches no event)."""
    if milliseconds < 0:
        raise ValueError("retry must not be negative")
    return f"retry: {milliseconds}\n\n".encode()
