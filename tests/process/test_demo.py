"""The demo as README tells it: `version-sidecar --demo` in a folder, its page in a browser."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, wait_for_version
from tests.conftest import StartSidecar


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    """Debian's Chromium, for this module only (the sync driver must not outlive it)."""
    if not CHROMIUM.is_file():
        pytest.fail(f"the demo's browser test needs Debian's chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def test_a_rerun_keeps_the_last_demo_version(start_sidecar: StartSidecar, tmp_path: Path) -> None:
    first = start_sidecar(["--demo"])
    version_file = tmp_path / "demo-version.txt"
    assert version_file.read_text(encoding="utf-8") == "v1\n"  # made with v1 when missing
    version_file.write_text("v7\n", encoding="utf-8")  # as README says: echo v7 > demo-version.txt
    first.stop()
    second = start_sidecar(["--demo"])
    assert second.health()["version"] == "v7"
    assert version_file.read_text(encoding="utf-8") == "v7\n"


@pytest.mark.browser
def test_the_demo_page_loads_with_no_error_in_the_console(start_sidecar: StartSidecar, chromium: Browser) -> None:
    sidecar = start_sidecar(["--demo"])
    page = chromium.new_page()
    console: list[str] = []
    page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    failed: list[str] = []
    page.on("response", lambda response: failed.append(response.url) if response.status >= 400 else None)
    try:
        page.goto(f"{sidecar.url}/")
        wait_for_version(page, "v1")
        page.wait_for_load_state("networkidle")  # a late /favicon.ico would have been asked for by now
    finally:
        page.close()
    assert not failed
    assert [line for line in console if line.startswith("error:")] == [], console
    assert "log: [version-sidecar] Connection opened" in console
