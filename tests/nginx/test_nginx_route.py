"""The shipped nginx snippet in front of the real sidecar, under Debian's nginx (a site that
compresses event streams and buffers responses): the checks every proxy passes
(tests/proxy_checks.py)."""

from pathlib import Path

import pytest

from tests import proxy_checks
from tests.conftest import StartSidecar
from tests.nginx.conftest import StartNginx

pytestmark = pytest.mark.nginx


async def test_only_the_two_public_paths_reach_the_sidecar(
    start_sidecar: StartSidecar, start_nginx: StartNginx
) -> None:
    await proxy_checks.only_the_two_public_paths_reach_the_sidecar(start_sidecar, start_nginx)


async def test_events_arrive_through_nginx_at_once(
    tmp_path: Path, start_sidecar: StartSidecar, start_nginx: StartNginx
) -> None:
    await proxy_checks.events_arrive_at_once(tmp_path, start_sidecar, start_nginx)


async def test_idle_stream_outlives_the_read_timeout_through_heartbeats(
    tmp_path: Path, start_sidecar: StartSidecar, start_nginx: StartNginx
) -> None:
    await proxy_checks.idle_stream_outlives_the_proxys_timeout_through_heartbeats(tmp_path, start_sidecar, start_nginx)


async def test_without_heartbeats_nginx_ends_an_idle_stream(
    tmp_path: Path, start_sidecar: StartSidecar, start_nginx: StartNginx
) -> None:
    await proxy_checks.without_heartbeats_the_proxy_ends_an_idle_stream(tmp_path, start_sidecar, start_nginx)


async def test_a_sidecar_stop_ends_the_stream_through_nginx_cleanly(
    start_sidecar: StartSidecar, start_nginx: StartNginx
) -> None:
    await proxy_checks.a_sidecar_stop_ends_the_stream_through_the_proxy_cleanly(start_sidecar, start_nginx)
