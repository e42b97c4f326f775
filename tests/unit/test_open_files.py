"""The open-files limit: raised in one step at start-up; what fits under it is computed, never a
reason to touch the limit again."""

import resource

import pytest
from structlog.testing import capture_logs

from sidecar.config import Settings
from sidecar.open_files import Limits, fit_under, raise_open_files_limit


@pytest.fixture
def limit_set(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """A stand-in soft limit of 1,024 under a hard one of 4,096; what is set, in order."""
    current, set_to = [(1024, 4096)], []

    def setrlimit(_kind: int, limits: tuple[int, int]) -> None:
        set_to.append(limits)
        current[0] = limits

    monkeypatch.setattr(resource, "getrlimit", lambda _kind: current[0])
    monkeypatch.setattr(resource, "setrlimit", setrlimit)
    return set_to


def test_the_soft_limit_is_raised_to_the_hard_one(limit_set: list[tuple[int, int]]) -> None:
    assert raise_open_files_limit() == 4096
    assert limit_set == [(4096, 4096)]


def test_what_fits_is_computed_without_touching_the_limit(limit_set: list[tuple[int, int]]) -> None:
    with capture_logs() as logs:
        settings = fit_under(Settings(max_clients=10_000, workers=2), open_files=1024)
    limits = Limits.under_open_files(1024, settings.max_clients)
    assert settings.max_clients == 2 * (1024 - 32 - 32)  # descriptors kept for the source and requests
    assert (limits.connections, limits.streams) == (1024 - 32, 1024 - 64)
    assert [entry["event"] for entry in logs] == ["--max-clients does not fit under the open-files limit"]
    assert limit_set == [] and resource.getrlimit(resource.RLIMIT_NOFILE) == (1024, 4096)
