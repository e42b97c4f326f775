"""A deploy's worst symptom: the open page asks for a code chunk the deploy deleted. The page
reloads into the new version at once, under the toast's guards (unsaved input, once per version,
never for the page's own version).

The single-page apps are built by the real bundlers (Vite, webpack; npm packages of this tier) at
test time into tmp; their v2 deploy replaces the served folder, so v1's hashed chunks are gone.
A plain `<script type="module">` page shows each engine's own message for a failed import().
"""

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import AppPage, Site, Stack, wait_for_heartbeats, wait_for_log, wait_for_version, wait_until
from tests.browser.engines import BROWSER_TIER, Engine, poll
from tests.browser.test_chromium import make_shell
from tests.browser.test_engines import heard, open_app, reloaded_onto, safely, toast_text

NEEDS_RELOAD = "Part of this page failed to load: it needs a reload."
FORM = '<form><label>Comment <textarea name="comment"></textarea></label></form>'
# A page whose settings chunk is named after the version, as a bundler names one after its content.
MODULE_PAGE = """<button id="open">Settings</button><p id="route"></p>
<script type="module">
  document.getElementById("open").addEventListener("click", () => {
    import("/chunks/settings-" + document.documentElement.dataset.appVersion + ".js").then((chunk) => {
      document.getElementById("route").textContent = chunk.text;
    });
  });
</script>"""
OPEN_SETTINGS = "document.getElementById('open').click()"
ROUTE = "document.getElementById('route').textContent"

# The bundled app: a lazily loaded settings route with its own CSS (Vite) ...
VITE_PAGE = """<!doctype html><html lang="en" data-app-version="{version}"><head><meta charset="utf-8">
<title>SPA {version}</title><script src="/events/reload.js" data-countdown="0" defer></script>
<script type="module" src="/main.js"></script></head>
<body><button id="open">Settings</button><p id="route"></p></body></html>"""
# ... whose router catches the failure and shows an error, so only vite:preloadError tells the script;
VITE_MAIN = """document.getElementById("open").addEventListener("click", () => {
  import("./settings.js").then(
    (settings) => { document.getElementById("route").textContent = settings.text; },
    () => { document.getElementById("route").textContent = "This part failed to load."; },
  );
});
"""
# ... and with webpack, an import() nobody catches: its ChunkLoadError is an unhandled rejection.
WEBPACK_PAGE = VITE_PAGE.replace('type="module" src="/main.js"', 'src="/main.js" defer')
WEBPACK_MAIN = """document.getElementById("open").addEventListener("click", () => {
  import(/* webpackChunkName: "settings" */ "./settings.js").then((settings) => {
    document.getElementById("route").textContent = settings.text;
  });
});
"""
BUILDS = {"vite": (VITE_PAGE, VITE_MAIN), "webpack": (WEBPACK_PAGE, WEBPACK_MAIN)}


def build_spa(tool: str, version: str, folder: Path) -> Path:
    """The app at `version`, built by `tool` into folder/dist (the folder the stand-in app serves)."""
    page, main = BUILDS[tool]
    source = folder / "source"
    source.mkdir()
    (source / "main.js").write_text(main, encoding="utf-8")
    style = 'import "./settings.css";\n' if tool == "vite" else ""  # webpack without a CSS loader
    (source / "settings.js").write_text(f'{style}export const text = "Settings of {version}";\n', encoding="utf-8")
    (source / "settings.css").write_text(f"#route {{ color: rgb(0, 0, {len(version)}); }}\n", encoding="utf-8")
    if tool == "vite":
        (source / "index.html").write_text(page.format(version=version), encoding="utf-8")
    dist = folder / "dist"
    node = shutil.which("node")
    assert node is not None, "the browser tier needs Node.js (Debian's nodejs)"
    command = [node, "build_spa.mjs", tool, str(source), str(dist)]
    subprocess.run(command, cwd=BROWSER_TIER, check=True, timeout=120, stdout=subprocess.DEVNULL)
    if tool == "webpack":
        (dist / "index.html").write_text(page.format(version=version), encoding="utf-8")
    chunks = [path.name for path in dist.rglob("*.js") if "settings" in path.name]
    assert chunks, f"{tool} made no settings chunk: {sorted(p.name for p in dist.rglob('*'))}"
    return dist


@pytest.fixture(scope="module")
def spa_builds(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], dict[str, Path]]:
    """The app built by a bundler at v1 and v2 (each bundler once per module, when first asked)."""
    made: dict[str, dict[str, Path]] = {}

    def builds(tool: str) -> dict[str, Path]:
        if tool not in made:
            made[tool] = {v: build_spa(tool, v, tmp_path_factory.mktemp(f"{tool}-{v}")) for v in ("v1", "v2")}
        return made[tool]

    return builds


def open_spa(site: Site, dist: Path) -> Page:
    """A tab on the built app at /, once its client has heard the deployed version."""
    site.app.files = dist
    page = site.context.new_page()
    lines: list[str] = []
    page.on("console", lambda message: lines.append(message.text))
    site.console[page] = lines
    page.goto(site.origin + "/")
    wait_for_version(page, site.app.deployed())
    return page


def lands_on_v2_and_works(site: Site, page: Page, path: str) -> None:
    """The tab reloaded once, into v2, and the settings route loads there."""
    expect(page.locator("html")).to_have_attribute("data-app-version", "v2", timeout=10_000)
    wait_for_version(page, "v2")
    page.click("#open")
    expect(page.locator("#route")).to_have_text("Settings of v2")
    assert site.page_loads[path] == 2
    expect(page.get_by_role("status")).to_have_count(0)


@pytest.mark.parametrize("order", ["announced first", "failed first"])
def test_a_vite_app_whose_chunk_a_deploy_deleted_reloads_into_the_new_version(
    site: Site, spa_builds: Callable[[str], dict[str, Path]], order: str
) -> None:
    builds = spa_builds("vite")
    page = open_spa(site, builds["v1"])
    site.app.files = builds["v2"]  # the deploy: v1's hashed chunks are gone
    if order == "announced first":
        site.deploy("v2")
        expect(page.get_by_role("status")).to_contain_text("A new version (v2) is available.")  # no countdown
        page.click("#open")
    else:  # the app is deployed a moment before the sidecar says so
        page.click("#open")
        expect(page.locator("#route")).to_have_text("This part failed to load.")
        wait_for_log(site, page, "[version-sidecar] A chunk failed to load: TypeError: Failed to fetch dynamically")
        assert site.page_loads["/"] == 1
        site.deploy("v2")
    wait_for_log(site, page, "[version-sidecar] Reloading at once for the failed chunk")
    lands_on_v2_and_works(site, page, "/")


def test_a_webpack_app_whose_chunk_a_deploy_deleted_reloads_into_the_new_version(
    site: Site, spa_builds: Callable[[str], dict[str, Path]]
) -> None:
    builds = spa_builds("webpack")
    page = open_spa(site, builds["v1"])
    site.app.files = builds["v2"]
    site.deploy("v2")
    expect(page.get_by_role("status")).to_contain_text("A new version (v2) is available.")
    page.click("#open")
    wait_for_log(site, page, "[version-sidecar] A chunk failed to load: Loading chunk")
    lands_on_v2_and_works(site, page, "/")


class ModuleChunks:
    """The plain module page's chunks, served from `root`: chunks/settings-VERSION.js for the deployed version."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "chunks").mkdir(parents=True)

    def deploy(self, version: str | None) -> None:
        """Only `version`'s chunk is served from now on (None: no chunk at all)."""
        for old in (self.root / "chunks").iterdir():
            old.unlink()
        if version is not None:
            chunk = self.root / "chunks" / f"settings-{version}.js"
            chunk.write_text(f'export const text = "Settings of {version}";\n', encoding="utf-8")


def module_chunks(stack: Stack, tmp_path: Path) -> ModuleChunks:
    chunks = ModuleChunks(tmp_path / "files")
    chunks.deploy("v1")
    stack.app.files = chunks.root
    return chunks


def test_a_module_page_whose_chunk_is_gone_reloads_into_the_new_version(
    engine: Engine, stack: Stack, tmp_path: Path
) -> None:
    """Each engine words a failed import() its own way (Chromium, Firefox, WebKit)."""
    chunks = module_chunks(stack, tmp_path)
    tab = open_app(engine, stack, 'data-countdown="0"', body=MODULE_PAGE)
    chunks.deploy("v2")
    stack.deploy("v2")
    poll(lambda: "A new version (v2) is available." in toast_text(tab), f"{engine.name}: the toast")
    tab.evaluate(OPEN_SETTINGS)
    poll(lambda: reloaded_onto(tab, "v2"), f"{engine.name}: the reload onto v2")
    poll(lambda: heard(tab) == "v2", f"{engine.name}: the reloaded page to hear v2")
    tab.evaluate(OPEN_SETTINGS)
    poll(lambda: safely(tab, ROUTE) == "Settings of v2", f"{engine.name}: the settings of v2")
    assert stack.page_loads["/app"] == 2
    assert toast_text(tab) == ""


def test_a_chunk_that_fails_on_the_pages_own_version_reloads_nothing(site: Site, tmp_path: Path) -> None:
    chunks = module_chunks(site, tmp_path)
    page = site.open("/app", AppPage(script_attributes='data-countdown="0"', body=MODULE_PAGE))
    chunks.deploy(None)  # a flaky network, not a deploy: the announced version is still the page's
    page.click("#open")
    wait_for_log(site, page, "[version-sidecar] A chunk failed to load: ")
    wait_for_heartbeats(site, page, "v1", 2)
    assert site.page_loads["/app"] == 1
    expect(page.get_by_role("status")).to_have_count(0)


def test_over_unsaved_input_a_failed_chunk_shows_the_toast_instead(site: Site, tmp_path: Path) -> None:
    chunks = module_chunks(site, tmp_path)
    page = site.open("/app", AppPage(script_attributes='data-countdown="0"', body=FORM + MODULE_PAGE))
    page.get_by_label("Comment").fill("half-written thoughts")
    chunks.deploy("v2")
    site.deploy("v2")
    toast = page.get_by_role("status")
    expect(toast).to_contain_text("A new version (v2) is available.")
    page.click("#open")
    expect(toast).to_contain_text(NEEDS_RELOAD)
    wait_for_log(site, page, "[version-sidecar] No reload for the failed chunk: a form field was edited")
    wait_for_heartbeats(site, page, "v2", 2)
    assert site.page_loads["/app"] == 1
    expect(page.get_by_label("Comment")).to_have_value("half-written thoughts")


def test_a_reload_that_comes_back_still_broken_does_not_loop(site: Site, tmp_path: Path) -> None:
    # The app keeps answering with the old page (a stale cache), whose chunk is gone.
    chunks = module_chunks(site, tmp_path)
    page = site.open("/app", AppPage(script_attributes='data-countdown="0"', body=MODULE_PAGE, version="v1"))
    chunks.deploy("v2")
    site.deploy("v2")
    expect(page.get_by_role("status")).to_contain_text("A new version (v2) is available.")
    page.click("#open")
    wait_until(page, lambda: site.page_loads["/app"] == 2, "the reload")
    wait_for_version(page, "v2")
    page.click("#open")
    expect(page.get_by_role("status")).to_contain_text(NEEDS_RELOAD)
    wait_for_log(site, page, "[version-sidecar] No reload for the failed chunk: reloaded for v2 once already")
    wait_for_heartbeats(site, page, "v2", 2)
    assert site.page_loads["/app"] == 2


def test_under_a_service_worker_the_reload_for_a_failed_chunk_updates_the_worker_first(
    site: Site, tmp_path: Path
) -> None:
    # The worker answers navigations from its cache (the page only; chunks come from the network):
    # a plain reload would bring back the old page, the update path lands on the new one.
    shell = tmp_path / "shell"
    chunks = ModuleChunks(shell)
    chunks.deploy("v1")
    make_shell(shell, "v1", 0, body=MODULE_PAGE)
    site.app.files = shell
    page = site.context.new_page()
    lines: list[str] = []
    page.on("console", lambda message: lines.append(message.text))
    site.console[page] = lines
    page.goto(site.nginx.url + "/")  # a secure context (127.0.0.1), as service workers need
    page.wait_for_function("navigator.serviceWorker.controller !== null")
    wait_for_version(page, "v1")

    make_shell(shell, "v2", 0, body=MODULE_PAGE)
    chunks.deploy("v2")
    site.deploy("v2")
    expect(page.get_by_role("status")).to_contain_text("A new version (v2) is available.")
    page.click("#open")
    expect(page.locator("html")).to_have_attribute("data-app-version", "v2", timeout=15_000)
    wait_for_log(site, page, "[version-sidecar] Reloading at once for the failed chunk")
    wait_for_log(site, page, "[version-sidecar] Activating the new service worker first")
    wait_for_version(page, "v2")
    page.click("#open")
    expect(page.locator("#route")).to_have_text("Settings of v2")
