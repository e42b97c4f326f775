"""The core of the client in every engine a user may have: Chromium, Firefox ESR and WebKitGTK.

Toast, Reload, Later, the unsaved-form guard, one stream for three tabs, and the hand-over when
the leading tab is closed for real (five closes per engine; the times are printed and written to
test-artifacts/handover-ENGINE.txt, never asserted). Only Chromium has a clock to control
(Playwright's): here a wait for "nothing happened" waits for further heartbeats of the sidecar
(one a second) to have reached the page, an event that proves the time went by.
"""

import time
from functools import partial
from typing import Any

from tests.browser.conftest import ARTIFACTS, AppPage, Stack
from tests.browser.engines import CONSOLE_RECORDER, Engine, Tab, poll

FORM = '<form><label>Comment <textarea name="comment"></textarea></label></form>'
TOAST = """(() => {
  const host = document.querySelector("version-sidecar-toast");
  if (!host || !host.isConnected) return null;
  const box = host.shadowRoot.querySelector(".toast").getBoundingClientRect();
  return { text: host.shadowRoot.textContent, left: box.left, top: box.top, right: box.right, bottom: box.bottom };
})()"""
HANDOVERS = 5


def open_app(engine: Engine, stack: Stack, attributes: str, body: str = AppPage.body) -> Tab:
    """A tab on the app's page (console recorded) once its client has heard the deployed version."""
    stack.pages["/app"] = AppPage(script_attributes=attributes, head=CONSOLE_RECORDER, body=body)
    tab = engine.open(stack.origin + "/app")
    tab.evaluate("window.loadedOnce = true")  # gone after a reload
    expected = stack.app.deployed()
    poll(lambda: heard(tab) == expected, f"{engine.name}: the page to hear {expected}")
    return tab


def safely(tab: Tab, expression: str) -> Any:
    """The value of `expression`, or None while the page is between documents."""
    try:
        return tab.evaluate(expression)
    except Exception:
        return None


def heard(tab: Tab) -> str | None:
    version = safely(tab, "window.versionSidecar ? window.versionSidecar.latestVersion : null")
    return version if isinstance(version, str) else None


def role(tab: Tab) -> str:
    value = tab.evaluate("window.versionSidecar.role")
    assert isinstance(value, str)
    return value


def toast(tab: Tab) -> dict[str, Any] | None:
    found = tab.evaluate(TOAST)
    return found if isinstance(found, dict) else None


def toast_text(tab: Tab) -> str:
    shown = toast(tab)
    return shown["text"] if shown else ""


def lines(tab: Tab) -> list[tuple[float, str]]:
    """The page's console lines, with the time each was logged (ms since epoch)."""
    return [(when, text) for when, text in tab.evaluate("window.consoleLines")]


def wait_for_heartbeats(tab: Tab, version: str, count: int) -> None:
    """Wait until `count` more announcements of `version` reached the page (the sidecar sends one a second)."""
    line = f"[version-sidecar] Version update received: {version} "
    before = sum(text.startswith(line) for _, text in lines(tab))
    poll(lambda: sum(text.startswith(line) for _, text in lines(tab)) >= before + count, f"{count} heartbeats")


def reloaded_onto(tab: Tab, version: str) -> bool:
    return bool(safely(tab, "!window.loadedOnce && document.documentElement.dataset.appVersion") == version)


def shows(tab: Tab, text: str) -> bool:
    return text in toast_text(tab)


def test_the_toast_offers_the_new_version_and_reload_loads_it(engine: Engine, stack: Stack) -> None:
    tab = open_app(engine, stack, 'data-countdown="30"')
    stack.deploy("v2")
    poll(lambda: "A new version (v2) is available." in toast_text(tab), f"{engine.name}: the toast")
    shown = toast(tab)
    assert shown is not None and "Reloading in" in shown["text"], shown
    assert 0 <= shown["left"] < shown["right"] <= 900 and 0 <= shown["top"] < shown["bottom"] <= 600, shown
    tab.click("Reload")
    poll(lambda: reloaded_onto(tab, "v2"), f"{engine.name}: the reload onto v2")
    poll(lambda: heard(tab) == "v2", "the reloaded page to hear v2")
    assert toast(tab) is None
    assert stack.page_loads["/app"] == 2


def test_later_hides_the_toast_until_a_further_version(engine: Engine, stack: Stack) -> None:
    tab = open_app(engine, stack, 'data-countdown="1"')
    stack.deploy("v2")
    poll(lambda: "A new version (v2) is available." in toast_text(tab), f"{engine.name}: the toast")
    tab.click("Later")
    poll(lambda: toast(tab) is None, "the toast to go")
    wait_for_heartbeats(tab, "v2", 3)  # well past the 1 s countdown
    assert toast(tab) is None
    assert tab.evaluate("window.loadedOnce") is True and stack.page_loads["/app"] == 1
    stack.deploy("v3")
    poll(lambda: "A new version (v3) is available." in toast_text(tab), f"{engine.name}: the toast for v3")


def test_an_edited_form_field_blocks_the_automatic_reload(engine: Engine, stack: Stack) -> None:
    tab = open_app(engine, stack, 'data-countdown="1"', body=FORM)
    tab.type("textarea", "half-written")
    stack.deploy("v2")
    unsaved = "You have unsaved changes, so this page will not reload by itself."
    poll(lambda: unsaved in toast_text(tab), f"{engine.name}: the toast saying why it will not reload")
    assert "Reloading in" not in toast_text(tab)
    wait_for_heartbeats(tab, "v2", 3)  # well past the 1 s countdown
    assert tab.evaluate("document.querySelector('textarea').value") == "half-written"
    assert tab.evaluate("window.loadedOnce") is True and stack.page_loads["/app"] == 1


def settled_roles(tabs: list[Tab]) -> bool:
    return sorted(role(tab) for tab in tabs) == ["follower"] * (len(tabs) - 1) + ["leader"]


def test_three_tabs_share_one_stream(engine: Engine, stack: Stack) -> None:
    tabs = [open_app(engine, stack, 'data-countdown="0"') for _ in range(3)]
    poll(lambda: settled_roles(tabs), f"{engine.name}: one leading tab and two following")
    poll(lambda: stack.stream_count() == 1, "one stream")
    connecting = [tab for tab in tabs if any("Establishing connection" in text for _, text in lines(tab))]
    assert len(connecting) == 1, "more than one tab opened a stream"
    stack.deploy("v2")
    for tab in tabs:
        poll(partial(shows, tab, "A new version (v2) is available."), f"{engine.name}: every toast")
    assert stack.stream_count() == 1


def test_when_the_leading_tab_is_closed_another_takes_over(engine: Engine, stack: Stack) -> None:
    tabs = [open_app(engine, stack, 'data-countdown="0"') for _ in range(3)]
    handovers: list[float] = []
    for close in range(1, HANDOVERS + 1):
        poll(lambda: settled_roles(tabs), f"{engine.name}, close {close}: one leading tab")
        leader = next(tab for tab in tabs if role(tab) == "leader")
        tabs.remove(leader)
        closed_at = time.time() * 1000
        leader.close()
        poll(lambda: "leader" in [role(tab) for tab in tabs], f"{engine.name}, close {close}: a new leading tab")
        successor = next(tab for tab in tabs if role(tab) == "leader")
        took_over = [when for when, text in lines(successor) if "This tab leads" in text and when >= closed_at]
        assert took_over, f"{engine.name}: the new leader did not say so"
        handovers.append(took_over[0] - closed_at)
        poll(lambda: stack.stream_count() == 1, f"{engine.name}, close {close}: the new leader's stream alone")
        tabs.append(open_app(engine, stack, 'data-countdown="0"'))
    report = f"{engine.name}: hand-over after closing the leading tab, ms: " + ", ".join(f"{t:.0f}" for t in handovers)
    print(report)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / f"handover-{engine.name}.txt").write_text(report + "\n", encoding="utf-8")

    stack.deploy("v2")
    for tab in tabs:
        poll(partial(shows, tab, "A new version (v2) is available."), f"{engine.name}: every toast")
    assert stack.stream_count() == 1
