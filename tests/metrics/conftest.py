"""Fixtures of the metrics tier: one real Prometheus for the whole tier (started once, it is the
slow part), pointed at each test's sidecar in turn."""

from collections.abc import Iterator

import pytest

from tests.metrics.prometheus_server import PrometheusServer


@pytest.fixture(scope="session")
def prometheus_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    server = PrometheusServer(tmp_path_factory.mktemp("prometheus"))
    yield server
    server.stop()


@pytest.fixture
def prometheus(prometheus_server: PrometheusServer) -> Iterator[PrometheusServer]:
    """The tier's Prometheus, scraping nothing but what this test names."""
    yield prometheus_server
    prometheus_server.scrape([])
