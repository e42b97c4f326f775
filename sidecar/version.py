"""What counts as a version: the one rule every source and the SSE encoder rely on."""

from typing import NewType

MAX_VERSION_LENGTH = 128
# A rejected value may be anything the source holds (a file linked to a secret, say): logs show
# at most this much of it.
SHOWN_LENGTH = 32

# A string that passed check_version. Only check_version makes one, so whatever takes a Version
# (the hub, the encoder) needs no check of its own.
Version = NewType("Version", str)


class InvalidVersion(ValueError):
    """A value that must not be announced as a version."""


def check_version(value: str) -> Version:
    """Return `value` as a Version if it is a valid version, else raise InvalidVersion saying why.

    1 to 128 printable characters; str.isprintable() already refuses CR, LF, NUL, the
    Unicode line separators and every other control or format character, so a valid
    version can never break SSE framing or inject a field.
    """
    if not value:
        raise InvalidVersion("is empty")
    if len(value) > MAX_VERSION_LENGTH:
        raise InvalidVersion(f"is {len(value)} characters long (at most {MAX_VERSION_LENGTH})")
    if not value.isprintable():
        bad = next(ch for ch in value if not ch.isprintable())
        raise InvalidVersion(f"contains the non-printable character {bad!r}")
    return Version(value)


def shorten(value: str) -> str:
    """`value` as a log may show it: escaped, at most SHOWN_LENGTH characters of it, and its length."""
    shown = value[:SHOWN_LENGTH].encode("unicode_escape").decode("ascii")
    if len(value) <= SHOWN_LENGTH:
        return shown
    return f"{shown}... ({len(value)} characters)"
