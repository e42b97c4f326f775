"""Version sources: where the app's version comes from. The hub does not care which one."""

from collections.abc import Callable


class Found(str):
    """A version as a source read it (the string itself), with what the deploy says beside it:
    its release notes URL and reload-required flag, unchecked (the announcer checks them). A
    source that has neither delivers a plain str."""

    notes: str | None
    required: str | None

    def __new__(cls, version: str, notes: str | None = None, required: str | None = None) -> "Found":
        found = super().__new__(cls, version)
        found.notes, found.required = notes, required
        return found


# Called with each value a source sees; checked at one gate and announced if new. Never awaits,
# so a source can call it from anywhere.
Publish = Callable[[str], None]


class SourceError(Exception):
    """A source cannot deliver a version; at start-up this stops the sidecar (exit 2)."""


class Source:
    """The interface every source implements; read_initial is required, the rest optional."""

    name: str
    # What the version is read from, as a user would name it in a message (a setting or variable).
    origin: str
    # Why the source is not fully working right now, for /healthz; None when it is.
    problem: str | None = None

    async def read_initial(self) -> str | None:
        """The version at start-up; None if not known yet. Raises SourceError if it never will be."""
        raise NotImplementedError

    async def follow(self, publish: Publish) -> None:
        """Watch for changes and publish each new value; runs until cancelled."""

    async def close(self) -> None:
        """Release what follow() holds."""
