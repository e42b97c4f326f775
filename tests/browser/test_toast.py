"""The toast and what the page does about a new version, as a user sees it in real Chromium."""

import html

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import (
    ARTIFACTS,
    VISIBILITY_SWITCH,
    AppPage,
    Site,
    wait_for_heartbeats,
    wait_for_log,
    wait_for_version,
)
from tests.docs import blocks, read, section
from tests.sidecar_process import REPO

NOTES = "https://example.com/releases/v2"
HOSTILE_CSS = "<style>* { all: unset !important; } div { display: none !important; }</style>"
FORM = '<form><label>Comment <textarea name="comment"></textarea></label></form>'


def reloads_onto(page: Page, version: str) -> None:
    expect(page.locator("html")).to_have_attribute("data-app-version", version, timeout=10_000)
    wait_for_version(page, version)


def deploy_by_env(site: Site, page: Page, version: str, **variables: str) -> None:
    """Deploy `version` as the env source does: the app serves it, and the sidecar restarts with
    APP_VERSION (and the release notes variables given) set to it. `page` has given up on the
    stream meanwhile: it reconnects on its own timer (so a test that paused the clock moves it on)."""
    site.sidecar.stop()  # first: the file source would announce the version without its notes
    site.deploy(version)
    wait_for_log(site, page, "[version-sidecar] Connection error (readyState 2: CLOSED); reconnecting in")
    args = ["--source", "env", "--heartbeat", "1", "--retry", "300", "--retry-jitter", "0"]
    site.sidecar = site.start_sidecar(args, env={"APP_VERSION": version, **variables}, port=site.sidecar.port)


def test_toast_appears_and_the_countdown_reloads_onto_the_new_version(site: Site) -> None:
    page = site.open("/app", AppPage(script_attributes='data-countdown="3"'))
    site.deploy("v2")
    toast = page.get_by_role("status")
    expect(toast).to_contain_text("A new version (v2) is available.")
    expect(toast).to_contain_text("Reloading in")
    expect(toast).to_have_attribute("aria-live", "polite")
    expect(page.get_by_role("button", name="Reload")).to_be_visible()
    expect(page.get_by_role("button", name="Later")).to_be_visible()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "toast.png")

    reloads_onto(page, "v2")
    expect(page.get_by_role("status")).to_have_count(0)
    assert site.page_loads["/app"] == 2
    logs = site.console[page]
    for line in (
        f"[version-sidecar] Establishing connection to {site.origin}/events/version",
        "[version-sidecar] Connection opened",
        "[version-sidecar] Version update received: v1 (current: v1)",
        "[version-sidecar] Version update received: v2 (current: v1)",
        "[version-sidecar] New version v2 available; toast shown",
        "[version-sidecar] Version update received: v2 (current: v2)",
    ):
        assert line in logs, f"missing console line {line!r} in:\n" + "\n".join(logs)


def test_later_hides_the_toast_until_a_further_version(site: Site) -> None:
    # Texts for another language and another corner, from the script tag's data-* attributes.
    attributes = (
        'data-countdown="1" data-position="top-left" data-text-message="Version {version} ist da."'
        ' data-text-reload="Neu laden" data-text-later="Später" data-text-countdown="Neu laden in {seconds} s."'
    )
    page = site.open("/app", AppPage(script_attributes=attributes), clock=True)
    site.deploy("v2")
    toast = page.get_by_role("status")
    expect(toast).to_contain_text("Version v2 ist da.")
    box = toast.bounding_box()
    assert box is not None and box["x"] < 100 and box["y"] < 100, f"not in the top left corner: {box}"
    page.get_by_role("button", name="Später").click()
    expect(toast).to_have_count(0)

    page.clock.run_for(5000)  # well past the 1 s countdown
    wait_for_heartbeats(site, page, "v2")
    expect(toast).to_have_count(0)
    assert site.page_loads["/app"] == 1

    site.deploy("v3")
    expect(toast).to_contain_text("Version v3 ist da.")


def test_hostile_page_css_cannot_hide_or_restyle_the_toast(site: Site) -> None:
    page = site.open("/app", AppPage(script_attributes='data-countdown="0"', head=HOSTILE_CSS))
    site.deploy("v2")
    toast = page.get_by_role("status")
    expect(toast).to_be_visible()
    expect(toast).to_contain_text("A new version (v2) is available.")
    box = toast.bounding_box()
    assert box is not None and box["width"] > 150 and box["height"] > 50, f"squashed: {box}"
    assert box["x"] + box["width"] <= 900 and box["y"] + box["height"] <= 600, f"off screen: {box}"
    assert toast.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(31, 36, 48)"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "toast-hostile-css.png")
    page.get_by_role("button", name="Reload").click()
    reloads_onto(page, "v2")


# Every violation of the page's policy, recorded from before the page's first line (Playwright's init
# scripts run whatever the policy says).
RECORD_VIOLATIONS = """
  window.violations = [];
  addEventListener("securitypolicyviolation", (event) => {
    window.violations.push(event.violatedDirective + " " + event.blockedURI + " " + (event.sample || ""));
  });
"""


def documented_policy() -> str:
    """The Content-Security-Policy docs/client.md says the script works under."""
    [block] = blocks(section(read("docs/client.md"), "Content-Security-Policy"), "http")
    name, _, policy = block.strip().partition(": ")
    assert name == "Content-Security-Policy", block
    return policy


@pytest.mark.parametrize("policy", ["default-src 'self'", "documented"])
def test_under_a_strict_content_security_policy_the_toast_is_styled_and_nothing_is_refused(
    site: Site, policy: str
) -> None:
    if policy == "documented":
        policy = documented_policy()
    assert "require-trusted-types-for 'script'" in policy or policy == "default-src 'self'"
    site.context.add_init_script(RECORD_VIOLATIONS)
    meta = f'<meta http-equiv="Content-Security-Policy" content="{html.escape(policy)}">'
    page = site.open("/app", AppPage(script_attributes='data-countdown="0"', head=meta))
    site.deploy("v2")
    toast = page.get_by_role("status")
    expect(toast).to_contain_text("A new version (v2) is available.")
    assert toast.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(31, 36, 48)"
    assert page.locator("version-sidecar-toast").evaluate("e => getComputedStyle(e).position") == "fixed"
    page.get_by_role("button", name="Later").click()  # the toast's whole life: shown, then hidden
    expect(toast).to_have_count(0)
    wait_for_heartbeats(site, page, "v2")
    assert page.evaluate("window.violations") == []
    refused = [line for line in site.console[page] if "Content Security Policy" in line or "Trusted Type" in line]
    assert refused == []


def test_a_40_character_version_fits_the_toast_on_a_narrow_phone(site: Site) -> None:
    page = site.open("/app", AppPage(script_attributes='data-countdown="0"'))
    page.set_viewport_size({"width": 390, "height": 844})
    version = "3f2a1c9e8b7d6a5f4e3d2c1b0a9f8e7d6c5b4a39"  # a git SHA
    site.deploy(version)
    toast = page.get_by_role("status")
    expect(toast).to_contain_text(version)
    layout = toast.evaluate(
        """toast => ({
          left: toast.getBoundingClientRect().left,
          right: toast.getBoundingClientRect().right,
          overflow: toast.scrollWidth - toast.clientWidth,
          version: toast.querySelector("strong").getBoundingClientRect().right,
          page: document.documentElement.scrollWidth,
        })"""
    )
    assert layout["left"] >= 0 and layout["right"] <= 390, layout  # on the screen
    assert layout["overflow"] <= 0 and layout["version"] <= layout["right"], layout  # the version inside it
    assert layout["page"] <= 390, layout  # and the page does not scroll sideways


def test_the_toast_works_from_the_keyboard_and_keeps_still_for_reduced_motion(site: Site) -> None:
    page = site.open("/app", AppPage(script_attributes='data-countdown="0"'))
    page.emulate_media(reduced_motion="reduce")
    site.deploy("v2")
    toast = page.get_by_role("status")
    expect(toast).to_be_visible()
    assert toast.evaluate("e => getComputedStyle(e).animationName") == "none"
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Reload")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Later")).to_be_focused()
    page.keyboard.press("Enter")
    expect(toast).to_have_count(0)
    site.deploy("v3")
    expect(toast).to_contain_text("v3")
    page.keyboard.press("Tab")
    page.keyboard.press("Escape")  # Escape says Later too
    expect(toast).to_have_count(0)
    assert site.page_loads["/app"] == 1


def test_a_version_holding_markup_shows_as_text(site: Site) -> None:
    page = site.open("/app", AppPage(script_attributes='data-countdown="0"'))
    version = "<img src=x onerror=window.injected=1>"
    site.deploy(version)
    toast = page.get_by_role("status")
    expect(toast).to_contain_text(f"A new version ({version}) is available.")
    assert toast.locator("img").count() == 0
    assert page.evaluate("window.injected") is None


def test_an_edited_form_field_blocks_the_automatic_reload(site: Site) -> None:
    page = site.open("/app", AppPage(script_attributes='data-countdown="1"', body=FORM), clock=True)
    page.get_by_label("Comment").fill("half-written thoughts")
    site.deploy("v2")
    toast = page.get_by_role("status")
    expect(toast).to_contain_text("You have unsaved changes, so this page will not reload by itself.")
    expect(toast).not_to_contain_text("Reloading in")
    page.clock.run_for(5000)  # well past the countdown
    assert site.page_loads["/app"] == 1
    expect(page.get_by_label("Comment")).to_have_value("half-written thoughts")
    page.get_by_role("button", name="Reload").click()  # the user may still choose to reload
    reloads_onto(page, "v2")


def test_editing_during_the_countdown_stops_it(site: Site) -> None:
    page = site.open("/app", AppPage(script_attributes='data-countdown="3"', body=FORM), clock=True)
    site.deploy("v2")
    toast = page.get_by_role("status")
    expect(toast).to_contain_text("Reloading in")
    page.get_by_label("Comment").fill("typing while it counts")
    expect(toast).to_contain_text("You have unsaved changes")
    page.clock.run_for(5000)
    assert site.page_loads["/app"] == 1


def test_a_reload_that_comes_back_stale_does_not_loop(site: Site) -> None:
    # The app keeps answering with the old page (say, a cache in front of it).
    page = site.open("/app", AppPage(script_attributes='data-countdown="1"', version="v1"), clock=True)
    site.deploy("v2")
    wait_for_log(site, page, "[version-sidecar] Reloaded once for v2 but still at v1: no automatic reload")
    assert site.page_loads["/app"] == 2
    toast = page.get_by_role("status")
    expect(toast).to_contain_text("A new version (v2) is available.")
    expect(toast).not_to_contain_text("Reloading in")
    page.clock.run_for(5000)
    assert site.page_loads["/app"] == 2


def deploy_v2_to_a_hidden_tab(site: Site, countdown: int) -> Page:
    site.context.add_init_script(VISIBILITY_SWITCH)
    page = site.open("/app", AppPage(script_attributes=f'data-countdown="{countdown}"'), clock=True)
    page.evaluate("window.__setHidden(true)")
    site.deploy("v2")
    wait_for_log(site, page, "New version v2 available; the toast waits until the tab is visible")
    return page


def test_a_hidden_tab_whose_countdown_ran_out_shows_a_short_one_on_return(site: Site) -> None:
    page = deploy_v2_to_a_hidden_tab(site, countdown=30)
    page.clock.run_for(60_000)  # the countdown runs out while nobody looks
    assert site.page_loads["/app"] == 1
    page.evaluate("window.__setHidden(false)")
    toast = page.get_by_role("status")
    expect(toast).to_contain_text("A new version (v2) is available.")
    expect(toast).to_contain_text("Reloading in 10 s.")
    assert site.page_loads["/app"] == 1
    page.clock.run_for(10_000)
    reloads_onto(page, "v2")


def test_a_hidden_tab_shows_the_toast_on_return_when_it_would_not_reload(site: Site) -> None:
    page = deploy_v2_to_a_hidden_tab(site, countdown=0)
    expect(page.get_by_role("status")).to_have_count(0)
    page.evaluate("window.__setHidden(false)")
    expect(page.get_by_role("status")).to_contain_text("A new version (v2) is available.")
    assert site.page_loads["/app"] == 1


def test_the_app_can_cancel_the_update_event_and_show_its_own_ui(site: Site) -> None:
    own_ui = """<script>
      window.addEventListener("version-sidecar:update", (event) => {
        event.preventDefault();
        window.updateDetail = event.detail;
        const note = document.createElement("p");
        note.id = "own-note";
        note.textContent = "Our own notice: " + event.detail.newVersion;
        document.body.append(note);
      });
    </script>"""
    page = site.open("/app", AppPage(script_attributes='data-countdown="1"', head=own_ui), clock=True)
    site.deploy("v2")
    expect(page.locator("#own-note")).to_have_text("Our own notice: v2")
    detail = {"oldVersion": "v1", "newVersion": "v2", "notes": None, "required": False}
    assert page.evaluate("window.updateDetail") == detail
    page.clock.run_for(5000)  # no toast and no countdown of ours
    expect(page.get_by_role("status")).to_have_count(0)
    assert site.page_loads["/app"] == 1
    state = page.evaluate(
        "(({ pageVersion, latestVersion, updateAvailable, role }) =>"
        " ({ pageVersion, latestVersion, updateAvailable, role }))(window.versionSidecar)"
    )
    assert state == {"pageVersion": "v1", "latestVersion": "v2", "updateAvailable": True, "role": "leader"}
    page.evaluate("window.versionSidecar.reload()")
    reloads_onto(page, "v2")


def test_silent_mode_turns_the_next_link_click_into_a_full_page_load(site: Site) -> None:
    # A single-page app: its router handles link clicks without loading pages.
    router = """<script>
      document.addEventListener("click", (event) => {
        const link = event.target.closest("a");
        if (!link) return;
        event.preventDefault();
        history.pushState(null, "", link.href);
        document.getElementById("view").textContent = "view " + link.pathname;
      });
    </script>"""
    body = '<nav><a href="/app">Home</a> <a href="/app/next">Next</a></nav><main id="view">view /app</main>'
    spa = AppPage(script_attributes='data-mode="silent" data-countdown="1"', head=router, body=body)
    site.pages["/app/next"] = spa
    page = site.open("/app", spa, clock=True)
    page.get_by_role("link", name="Next").click()
    expect(page.locator("#view")).to_have_text("view /app/next")
    assert site.page_loads == {"/app": 1}

    site.deploy("v2")
    wait_for_version(page, "v2")
    page.clock.run_for(5000)  # silent: no toast, no countdown
    expect(page.get_by_role("status")).to_have_count(0)
    assert site.page_loads == {"/app": 1}
    page.get_by_role("link", name="Home").click()
    reloads_onto(page, "v2")
    assert site.page_loads == {"/app": 2}
    expect(page.locator("#view")).to_have_text("view /app")


def test_the_toast_links_to_the_release_notes_in_a_new_tab(site: Site) -> None:
    page = site.open("/app", AppPage(script_attributes='data-countdown="0" data-text-notes="Release notes"'))
    deploy_by_env(site, page, "v2", APP_RELEASE_NOTES_URL=NOTES)
    expect(page.get_by_role("status")).to_contain_text("A new version (v2) is available.")
    link = page.get_by_role("status").get_by_role("link", name="Release notes")
    expect(link).to_have_attribute("href", NOTES)
    expect(link).to_have_attribute("target", "_blank")
    assert "noopener" in (link.get_attribute("rel") or "").split()
    expect(page.get_by_role("button", name="Later")).to_be_visible()  # not required: Later stays


def test_a_required_update_cannot_be_put_off_yet_never_reloads_over_unsaved_input(site: Site) -> None:
    record = """<script>
      addEventListener("version-sidecar:update", (event) => { window.updateDetail = event.detail; });
    </script>"""
    page = site.open("/app", AppPage(script_attributes='data-countdown="1"', head=record, body=FORM), clock=True)
    page.get_by_label("Comment").fill("half-written thoughts")
    deploy_by_env(site, page, "v2", APP_RELEASE_NOTES_URL=NOTES, APP_RELOAD_REQUIRED="true")
    toast = page.get_by_role("status")
    expect(toast).to_contain_text("You have unsaved changes, so this page will not reload by itself.")
    expect(toast.get_by_role("link", name="What's new")).to_have_attribute("href", NOTES)
    expect(page.get_by_role("button", name="Reload")).to_be_visible()
    expect(page.get_by_role("button", name="Later")).to_have_count(0)
    detail = {"oldVersion": "v1", "newVersion": "v2", "notes": NOTES, "required": True}
    assert page.evaluate("window.updateDetail") == detail
    page.get_by_role("button", name="Reload").focus()
    page.keyboard.press("Escape")
    page.clock.run_for(5000)  # well past the countdown
    wait_for_heartbeats(site, page, "v2")
    expect(toast).to_be_visible()
    assert site.page_loads["/app"] == 1
    expect(page.get_by_label("Comment")).to_have_value("half-written thoughts")


def test_the_toast_as_the_readme_shows_it(site: Site) -> None:
    """Regenerates client/toast.png, the README's picture of the toast (with a release notes link)."""
    body = "<h1>Your app</h1><p>Its own content, left as it is.</p>"
    page = site.open("/app", AppPage(body=body), clock=True)
    page.emulate_media(reduced_motion="reduce")  # no slide-in half way through
    page.clock.pause_at(page.evaluate("Date.now()") + 1000)  # the countdown stays at 30 s
    deploy_by_env(site, page, "v2", APP_RELEASE_NOTES_URL=NOTES)
    page.clock.run_for(1000)  # the reconnect (0.5 to 1 s after the first failure), then still again
    toast = page.get_by_role("status")
    expect(toast).to_contain_text("Reloading in 30 s.")
    expect(toast.get_by_role("link", name="What's new")).to_be_visible()
    box = toast.bounding_box()
    assert box is not None
    page.screenshot(
        path=REPO / "client" / "toast.png",
        clip={"x": box["x"] - 16, "y": box["y"] - 16, "width": box["width"] + 32, "height": box["height"] + 32},
    )
