"""The stream behind the toast: one per browser however many tabs, reconnects, restarts, a full sidecar."""

import http.client
from pathlib import Path

from playwright.sync_api import Browser, expect

from tests.browser.conftest import AppPage, Site, role, wait_for_heartbeats, wait_for_log, wait_for_version, wait_until
from tests.conftest import StartSidecar

NO_AUTO_RELOAD = AppPage(script_attributes='data-countdown="0"')


def test_a_restarted_sidecar_is_survived_and_the_same_version_shows_nothing(site: Site) -> None:
    page = site.open("/app", NO_AUTO_RELOAD)
    site.restart_sidecar()
    wait_until(page, lambda: site.console[page].count("[version-sidecar] Connection opened") == 2, "a reconnect")
    wait_until(page, lambda: site.stream_count() == 1, "the stream to come back")
    wait_for_heartbeats(site, page, "v1")  # the same version again: nothing to show
    expect(page.get_by_role("status")).to_have_count(0)
    site.deploy("v2")
    expect(page.get_by_role("status")).to_contain_text("A new version (v2) is available.")


def test_three_tabs_share_one_stream_and_all_show_the_toast(site: Site) -> None:
    tabs = [site.open("/app", NO_AUTO_RELOAD) for _ in range(3)]
    wait_until(tabs[0], lambda: sorted(role(tab) for tab in tabs) == ["follower", "follower", "leader"], "roles")
    assert site.stream_count() == 1
    site.deploy("v2")
    for tab in tabs:
        expect(tab.get_by_role("status")).to_contain_text("A new version (v2) is available.")
        assert "[version-sidecar] Version update received: v2 (current: v1)" in site.console[tab]
    assert site.stream_count() == 1


def test_when_the_leading_tab_closes_another_takes_over(site: Site) -> None:
    tabs = [site.open("/app", NO_AUTO_RELOAD) for _ in range(3)]
    leader = next(tab for tab in tabs if role(tab) == "leader")
    others = [tab for tab in tabs if tab is not leader]
    leader.close()
    wait_until(others[0], lambda: "leader" in [role(tab) for tab in others], "a new leading tab", timeout=5000)
    wait_until(others[0], lambda: site.stream_count() == 1, "the new leader's stream", timeout=5000)
    assert sorted(role(tab) for tab in others) == ["follower", "leader"]
    site.deploy("v2")
    for tab in others:
        expect(tab.get_by_role("status")).to_contain_text("A new version (v2) is available.")
    assert site.stream_count() == 1


def test_a_refused_stream_is_retried_until_the_sidecar_has_room(site: Site) -> None:
    site.restart_sidecar("--max-clients", "1")
    # Another client takes the only place: the browser's stream gets 503, and EventSource gives up.
    holder = http.client.HTTPConnection("127.0.0.1", site.sidecar.port, timeout=10)
    holder.request("GET", "/events/version")
    held = holder.getresponse()
    assert held.status == 200
    page = site.open("/app", NO_AUTO_RELOAD, wait=False)
    wait_for_log(site, page, "[version-sidecar] Connection error (readyState 2: CLOSED); reconnecting in")
    held.close()
    holder.close()
    wait_for_version(page, "v1", timeout=15_000)
    assert site.stream_count() == 1
    site.deploy("v2")
    expect(page.get_by_role("status")).to_contain_text("A new version (v2) is available.")


def test_the_demo_page_shows_the_toast(browser: Browser, start_sidecar: StartSidecar, tmp_path: Path) -> None:
    version_file = tmp_path / "version.txt"
    version_file.write_text("v1\n", encoding="utf-8")
    sidecar = start_sidecar(["--demo", "--version-file", str(version_file), "--heartbeat", "1"])
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(f"http://app.test:{sidecar.port}/")
        wait_for_version(page, "v1")
        version_file.write_text("v2\n", encoding="utf-8")
        expect(page.get_by_role("status")).to_contain_text("A new version (v2) is available.")
        expect(page.get_by_role("button", name="Reload")).to_be_visible()
    finally:
        context.close()
