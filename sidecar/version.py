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


# What a deploy may say about its version besides the version itself (the event's "notes" and
# "required"): a link to its release notes and whether open tabs must reload.
MAX_NOTES_URL_LENGTH = 2048


class InvalidReleaseInfo(ValueError):
    """A release-notes URL or reload-required flag that must not be announced."""


def check_notes_url(value: str) -> str:
    """`value` if it is an absolute http or https URL of at most 2,048 printable characters
    without spaces (so it cannot break SSE framing nor run script as a link), else raise saying why."""
    if len(value) > MAX_NOTES_URL_LENGTH:
        raise InvalidReleaseInfo(f"is {len(value)} characters long (at most {MAX_NOTES_URL_LENGTH})")
    if not value.isprintable() or " " in value:
        raise InvalidReleaseInfo("holds a space or a non-printable character")
    scheme, _, rest = value.partition("://")
    if scheme.lower() not in ("http", "https") or not rest or rest.startswith(("/", "?", "#")):
        raise InvalidReleaseInfo("must be an absolute http:// or https:// URL")
    return value


def check_required(value: str) -> bool:
    """The reload-required flag: true/false or 1/0 (any case), else raise."""
    flag = {"true": True, "1": True, "false": False, "0": False}.get(value.strip().lower())
    if flag is None:
        raise InvalidReleaseInfo("must be true, false, 1 or 0")
    return flag
