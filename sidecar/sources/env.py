"""The env source: the version in an environment variable, fixed for the life of the process,
with the deploy's release notes URL and reload-required flag beside it where they are set."""

import os
from collections.abc import Callable, Mapping

from ..version import InvalidReleaseInfo, check_notes_url, check_required
from . import Found, Source, SourceError

NOTES_VARIABLE = "APP_RELEASE_NOTES_URL"
REQUIRED_VARIABLE = "APP_RELOAD_REQUIRED"


class EnvSource(Source):
    name = "env"

    def __init__(self, variable: str, environ: Mapping[str, str] | None = None) -> None:
        self.variable = self.origin = variable
        self.environ = os.environ if environ is None else environ

    async def read_initial(self) -> Found:
        value = self.environ.get(self.variable)
        if value is None:
            raise SourceError(f"{self.variable}: not set (the env source reads the version from it)")
        notes, required = self.environ.get(NOTES_VARIABLE) or None, self.environ.get(REQUIRED_VARIABLE) or None
        # Set by whoever deploys, like a flag: a bad one stops start-up rather than being dropped.
        _check(NOTES_VARIABLE, notes, check_notes_url)
        _check(REQUIRED_VARIABLE, required, check_required)
        return Found(value, notes, required)


def _check(variable: str, value: str | None, check: Callable[[str], object]) -> None:
    if value is None:
        return
    try:
        check(value)
    except InvalidReleaseInfo as error:
        raise SourceError(f"{variable}: {error}, got {value[:80]!r}") from None
