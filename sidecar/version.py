"""What counts as a version: the one rule every source and the SSE encoder rely on."""

MAX_VERSION_LENGTH = 128


class InvalidVersion(ValueError):
    """A value that must not be announced as a version."""


def check_version(value: str) -> str:
    """Return `value` if it is a valid version, else raise InvalidVersion saying why.

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
    return value
