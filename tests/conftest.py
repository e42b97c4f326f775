"""Fixtures shared by every test tier."""

from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.sidecar_process import SidecarProcess

StartSidecar = Callable[..., SidecarProcess]


@pytest.fixture
def start_sidecar(tmp_path: Path) -> Iterator[StartSidecar]:
    """Start real sidecar processes (ready when returned); all are stopped at the end of the test."""
    started: list[SidecarProcess] = []

    def start(
        args: Sequence[str],
        env: Mapping[str, str] | None = None,
        port: int | None = None,
        wait: bool = True,
        **options: Any,
    ) -> SidecarProcess:
        sidecar = SidecarProcess(args, tmp_path, env=env, port=port, **options)
        started.append(sidecar)
        if wait:
            sidecar.wait_ready()
        return sidecar

    yield start
    for sidecar in started:
        sidecar.stop()
