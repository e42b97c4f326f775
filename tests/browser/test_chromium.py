"""What only Chromium lets a test control: the back/forward cache, and a service worker (a PWA)."""

import shutil
import subprocess
from pathlib import Path

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page, expect

from tests.browser.conftest import AppPage, Site, role, wait_for_log, wait_for_version, wait_until
from tests.browser.engines import BROWSER_TIER

NO_AUTO_RELOAD = AppPage(script_attributes='data-countdown="0"')
REMEMBER_PAGESHOW = """
  if (!window.pageshows) addEventListener("pageshow", (event) => window.pageshows.push(event.persisted));
  window.pageshows = [];
"""


def restored_from_cache(page: Page) -> None:
    """Fail, with Chromium's reasons, unless `page` came back from the back/forward cache."""
    shows = page.evaluate("window.pageshows")  # undefined after a fresh load
    if shows != [True]:
        reasons = page.evaluate("JSON.stringify(performance.getEntriesByType('navigation')[0].notRestoredReasons)")
        raise AssertionError(f"not restored from the back/forward cache (pageshows {shows}): {reasons}")


def leave_and_come_back(site: Site, page: Page) -> None:
    page.evaluate(REMEMBER_PAGESHOW)
    page.goto(site.origin + "/elsewhere")
    page.go_back(wait_until="commit")  # a page restored from the cache fires no load event
    restored_from_cache(page)


def test_the_back_forward_cache_keeps_the_page_and_it_rejoins(site: Site) -> None:
    site.pages["/elsewhere"] = AppPage(script=False)
    first = site.open("/app", NO_AUTO_RELOAD)
    second = site.open("/app", NO_AUTO_RELOAD)
    wait_until(second, lambda: role(first) == "leader" and role(second) == "follower", "the second tab to follow")
    # The leading tab leaves (the other takes over), then a following one (waiting on the database).
    for step in ("leading", "following"):
        leave_and_come_back(site, first)
        wait_until(first, lambda: role(first) == "follower", f"the {step} tab to follow on its return")
        assert role(second) == "leader"
        wait_until(first, lambda: site.stream_count() == 1, "one stream")
    site.deploy("v2")
    for page in (first, second):
        expect(page.get_by_role("status")).to_contain_text("A new version (v2) is available.")
    assert site.stream_count() == 1


def make_shell(folder: Path, version: str, countdown: int, body: str = AppPage.body) -> None:
    """The PWA as deployed at `version`: its page, and a Workbox service worker precaching it."""
    register = "<script>navigator.serviceWorker.register('/sw.js')</script>"
    page = AppPage(version=version, head=register, script_attributes=f'data-countdown="{countdown}"', body=body)
    (folder / "index.html").write_bytes(page.markup(version))
    node = shutil.which("node")
    assert node is not None, "the browser tier needs Node.js (Debian's nodejs)"
    subprocess.run([node, "make_service_worker.mjs", str(folder)], cwd=BROWSER_TIER, check=True, timeout=60)


@pytest.mark.parametrize("countdown", [0, 2], ids=["the Reload button", "the countdown"])
def test_a_pwa_lands_on_the_new_version_with_one_reload(site: Site, tmp_path: Path, countdown: int) -> None:
    shell = tmp_path / "shell"
    shell.mkdir()
    make_shell(shell, "v1", countdown)
    site.app.files = shell
    page = site.context.new_page()
    lines: list[str] = []
    page.on("console", lambda message: lines.append(message.text))
    site.console[page] = lines
    # Service workers need a secure context: 127.0.0.1 is one, the plain-HTTP app.test is not.
    page.goto(site.nginx.url + "/")
    page.wait_for_function("navigator.serviceWorker.controller !== null")
    wait_for_version(page, "v1")

    make_shell(shell, "v2", countdown)  # the deploy: a new page, so a new worker; then the sidecar tells
    site.deploy("v2")
    expect(page.get_by_role("status")).to_contain_text("A new version (v2) is available.")
    if not countdown:
        page.get_by_role("button", name="Reload").click()
    expect(page.locator("html")).to_have_attribute("data-app-version", "v2", timeout=15_000)
    wait_for_version(page, "v2")
    expect(page.get_by_role("status")).to_have_count(0)
    wait_for_log(site, page, "[version-sidecar] Activating the new service worker first")


def test_a_leader_whose_timers_stall_keeps_leading(site: Site) -> None:
    # A hidden tab's timers may wake once a minute (Chromium's intensive throttling) or not at all.
    # Chromium's own throttling would not engage in this headless set-up (see DESIGN field notes),
    # so the leading tab's clock is stopped outright, while the others' clocks run 20 s on.
    site.restart_sidecar("--heartbeat", "30")  # as deployed: the relay is quiet between versions
    leader = site.open("/app", NO_AUTO_RELOAD, clock=True)
    followers = [site.open("/app", NO_AUTO_RELOAD, clock=True) for _ in range(2)]
    wait_until(leader, lambda: [role(tab) for tab in followers] == ["follower"] * 2, "two following tabs")
    leader.clock.pause_at(leader.evaluate("Date.now()") + 1000)
    for follower in followers:
        follower.clock.run_for(20_000)
    assert [role(tab) for tab in [leader, *followers]] == ["leader", "follower", "follower"]
    for follower in followers:
        quiet = [line for line in site.console[follower] if "leads" in line or "went quiet" in line]
        assert not quiet, f"a following tab tried to take over: {quiet}"
    site.deploy("v2")  # the stalled leader still relays: events are not timers
    for follower in followers:
        expect(follower.get_by_role("status")).to_contain_text("A new version (v2) is available.")
    assert site.stream_count() == 1


def test_when_the_leading_tab_crashes_another_takes_over(site: Site) -> None:
    leader = site.open("/app", NO_AUTO_RELOAD)
    follower = site.open("/app", NO_AUTO_RELOAD)
    wait_until(follower, lambda: role(follower) == "follower", "the second tab to follow")
    crashes: list[Page] = []
    leader.on("crash", lambda page: crashes.append(page))
    try:  # the renderer dies: no pagehide, nothing said
        leader.goto("chrome://crash", timeout=5000)
    except PlaywrightError:
        pass
    wait_until(follower, lambda: bool(crashes), "the leading tab to crash")
    wait_until(follower, lambda: role(follower) == "leader", "the other tab to take over")
    wait_until(follower, lambda: site.stream_count() == 1, "its stream alone")
    site.deploy("v2")
    expect(follower.get_by_role("status")).to_contain_text("A new version (v2) is available.")


def errors_of(page: Page) -> list[str]:
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    return errors


@pytest.mark.parametrize("missing", ["window.BroadcastChannel", "window.indexedDB"])
def test_without_a_shared_channel_each_tab_keeps_its_own_stream(site: Site, missing: str) -> None:
    site.context.add_init_script(f"delete {missing}")
    tabs = [site.open("/app", NO_AUTO_RELOAD) for _ in range(2)]
    assert [role(tab) for tab in tabs] == ["leader", "leader"]
    wait_until(tabs[0], lambda: site.stream_count() == 2, "a stream per tab")
    site.deploy("v2")
    for tab in tabs:
        expect(tab.get_by_role("status")).to_contain_text("A new version (v2) is available.")


def test_below_the_support_floor_the_script_does_nothing_and_throws_nothing(site: Site) -> None:
    site.context.add_init_script("delete Element.prototype.attachShadow")  # no shadow DOM v1
    site.pages["/app"] = NO_AUTO_RELOAD
    page = site.context.new_page()
    errors = errors_of(page)
    page.goto(site.origin + "/app")
    page.wait_for_load_state("load")
    assert page.evaluate("window.versionSidecar") is None
    site.deploy("v2")
    wait_until(page, lambda: site.sidecar.health()["version"] == "v2", "the sidecar to announce v2")
    expect(page.get_by_role("status")).to_have_count(0)
    assert site.stream_count() == 0
    assert errors == []
