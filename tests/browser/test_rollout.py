"""Rollouts never walk a tab backwards or loop it: two sidecars behind one round-robin nginx
upstream (the shipped snippet), one held back at the old version, and the app's own pages
alternating between versions while it rolls out, as a user's tab meets them in real Chromium.

nginx (one worker) hands the streams to the two sidecars in turn. The test knows which sidecar
answers the next stream by asking one itself (each sidecar sends its own `retry:` value), and the
page loads reload.js from the app, so the sidecars see nothing but streams."""

import http.client
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import (
    AppPage,
    Site,
    StandInApp,
    wait_for_heartbeats,
    wait_for_log,
    wait_for_version,
    wait_until,
)
from tests.conftest import StartSidecar
from tests.nginx.nginx_server import NginxServer
from tests.sidecar_process import REPO, SidecarProcess

RETRY = {"ahead": 300, "behind": 301}  # each sidecar's reconnect delay: how a stream tells them apart
NOT_OFFERED = "[version-sidecar] Version v1 was superseded: not offered; asking another stream"


@dataclass
class RollingPage(AppPage):
    """A page of the app while it rolls out: each load is served by the next replica, round and round."""

    versions: list[str] = field(default_factory=list)
    served: int = 0

    def markup(self, deployed: str) -> bytes:
        self.version = self.versions[self.served % len(self.versions)] if self.versions else None
        self.served += 1
        return super().markup(deployed)


def app_page(countdown: int, versions: list[str] | None = None) -> RollingPage:
    tag = f'<script src="/static/reload.js" data-stream="/events/version" data-countdown="{countdown}" defer></script>'
    return RollingPage(script=False, head=tag, versions=versions or [])


@dataclass
class Replicas:
    site: Site
    sidecars: dict[str, SidecarProcess]
    version_files: dict[str, Path]

    def set(self, name: str, version: str) -> None:
        """Deploy `version` to one sidecar (the file it follows)."""
        scratch = self.version_files[name].with_suffix(".new")
        scratch.write_text(version + "\n", encoding="utf-8")
        scratch.replace(self.version_files[name])

    def answering(self) -> str:
        """Which sidecar nginx hands a stream to now (the next one goes to the other)."""
        connection = http.client.HTTPConnection("127.0.0.1", self.site.nginx.port, timeout=10)
        try:
            connection.request("GET", "/events/version", headers={"Host": "app.test"})
            response = connection.getresponse()
            line = response.readline().decode()
            assert line.startswith("retry: "), line
            return next(name for name, retry in RETRY.items() if line == f"retry: {retry}\n")
        finally:
            connection.close()

    def next_stream_to(self, name: str) -> None:
        """Make the next stream nginx hands out go to sidecar `name`."""
        while self.answering() == name:
            pass


@pytest.fixture
def replicas(browser: Browser, start_sidecar: StartSidecar, tmp_path: Path) -> Iterator[Replicas]:
    version_files, sidecars = {}, {}
    for name, retry in RETRY.items():
        version_files[name] = tmp_path / f"version-{name}.txt"
        version_files[name].write_text("v1\n", encoding="utf-8")
        args = ["--source", "file", "--version-file", str(version_files[name]), "--heartbeat", "1"]
        # No jitter at all (a high --reconnect-rate keeps the host's window at 0 ms): `retry:` names the sidecar.
        exact_retry = ["--retry", str(retry), "--retry-jitter", "0", "--reconnect-rate", "1000000"]
        sidecars[name] = start_sidecar([*args, *exact_retry])
    app_version = tmp_path / "version-app.txt"
    app_version.write_text("v1\n", encoding="utf-8")
    static = tmp_path / "static"
    (static / "static").mkdir(parents=True)
    shutil.copy(REPO / "client" / "reload.js", static / "static" / "reload.js")
    app = StandInApp(app_version, files=static)
    app_server = app.serve()
    nginx = NginxServer(tmp_path / "nginx", [s.port for s in sidecars.values()], app_server.server_address[1])
    context = browser.new_context(viewport={"width": 900, "height": 600})
    try:
        site = Site(sidecars["ahead"], app, nginx, start_sidecar, context)
        yield Replicas(site, sidecars, version_files)
    finally:
        context.close()
        nginx.stop()
        app_server.shutdown()
        app_server.server_close()


def run_clock_until(page: Page, condition: Callable[[], bool], what: str) -> None:
    """Move the page's clock on a second at a time (its reconnect timers) until `condition` holds."""

    def moved() -> bool:
        if condition():
            return True
        page.clock.run_for(1000)
        return condition()

    wait_until(page, moved, what)


def test_a_replica_that_lags_is_never_offered_and_a_rollback_that_stays_is(replicas: Replicas) -> None:
    site = replicas.site
    replicas.next_stream_to("ahead")
    page = site.open("/app", app_page(countdown=1), clock=True)
    site.deploy("v2")  # the app, then one of the two sidecars; the other one lags at v1
    replicas.set("ahead", "v2")
    expect(page.get_by_role("status")).to_contain_text("A new version (v2) is available.")
    replicas.next_stream_to("behind")
    page.clock.run_for(2000)  # the countdown: the reload lands on v2, and its stream on the lagging sidecar
    expect(page.locator("html")).to_have_attribute("data-app-version", "v2")
    wait_for_log(site, page, NOT_OFFERED)
    run_clock_until(page, lambda: page.evaluate("window.versionSidecar.latestVersion") == "v2", "v2 again")
    wait_for_heartbeats(site, page, "v2")  # a while on the sidecar that is ahead
    expect(page.get_by_role("status")).to_have_count(0)
    assert site.page_loads["/app"] == 2
    assert "[version-sidecar] Version update received: v1 (current: v2)" not in site.console[page]

    # A rollback that stays: every sidecar and the app go back to v1.
    site.deploy("v1")
    replicas.set("ahead", "v1")
    replicas.set("behind", "v1")
    run_clock_until(page, lambda: page.get_by_role("status").count() > 0, "the toast for the rollback")
    expect(page.get_by_role("status")).to_contain_text("A new version (v1) is available.")
    assert "[version-sidecar] Version v1 is back: a rollback" in site.console[page]
    page.clock.run_for(2000)
    expect(page.locator("html")).to_have_attribute("data-app-version", "v1")
    assert site.page_loads["/app"] == 3


def test_while_pages_and_streams_alternate_the_tab_reloads_once(replicas: Replicas) -> None:
    site = replicas.site
    replicas.set("ahead", "v2")  # mid-rollout: one sidecar ahead, one behind, pages from either
    replicas.next_stream_to("ahead")
    page = site.open("/app", app_page(countdown=1, versions=["v1", "v2"]), wait=False)
    # The v1 page hears v2 and reloads; the v2 page it lands on gets its stream from the sidecar
    # that lags, then from the other one: nothing more to do.
    wait_for_log(site, page, NOT_OFFERED)
    wait_for_version(page, "v2")
    wait_for_heartbeats(site, page, "v2", count=3)  # well past a 1 s countdown, had one started
    assert site.page_loads["/app"] == 2
    expect(page.locator("html")).to_have_attribute("data-app-version", "v2")
    expect(page.get_by_role("status")).to_have_count(0)
