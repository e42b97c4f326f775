"""The env source: the version in an environment variable, fixed for the life of the process."""

import os
from collections.abc import Mapping

from . import Source, SourceError


class EnvSource(Source):
    name = "env"

    def __init__(self, variable: str, environ: Mapping[str, str] | None = None) -> None:
        self.variable = self.origin = variable
        self.environ = os.environ if environ is None else environ

    async def read_initial(self) -> str:
        value = self.environ.get(self.variable)
        if value is None:
            raise SourceError(f"{self.variable}: not set (the env source reads the version from it)")
        return value
