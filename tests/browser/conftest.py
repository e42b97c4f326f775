"""Fixtures of the browser tier: Debian's Chromium driven by Playwright, the real sidecar, test pages.

As users run it: Debian's nginx with the shipped snippet routes /events/* to the real sidecar (file
source) and everything else to a stand-in app, a tiny HTTP server whose pages carry whatever markup a
test needs. Every test uses the plain-HTTP origin http://app.test:PORT/ (mapped to 127.0.0.1), where
Web Locks do not exist.
"""

import html
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

from tests import waiting
from tests.browser.engines import (
    BROWSER_TIER,
    ChromiumEngine,
    Engine,
    FirefoxBridge,
    FirefoxEngine,
    ForwardProxy,
    WebKitEngine,
    xvfb_display,
)
from tests.conftest import StartSidecar
from tests.nginx.nginx_server import NginxServer
from tests.sidecar_process import REPO, SidecarProcess

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP app.test 127.0.0.1",
]
# Playwright turns these off by default; users have them on (the back/forward cache test needs it).
PLAYWRIGHT_DEFAULTS_USERS_LACK = [
    "--disable-back-forward-cache",
    "--disable-background-timer-throttling",
    "--disable-backgrounding-occluded-windows",
    "--disable-renderer-backgrounding",
]
ARTIFACTS = REPO / "test-artifacts"
# Fast enough for tests: a heartbeat every second, reconnects after 0.3 s.
SIDECAR_ARGS = ["--source", "file", "--heartbeat", "1", "--retry", "300", "--retry-jitter", "0"]
# What the host app exposes to let a test hide and show the tab (headless tabs are always visible).
VISIBILITY_SWITCH = """
(() => {
  let hidden = false;
  Object.defineProperty(Document.prototype, "hidden", { configurable: true, get: () => hidden });
  Object.defineProperty(Document.prototype, "visibilityState", {
    configurable: true, get: () => (hidden ? "hidden" : "visible"),
  });
  window.__setHidden = (value) => { hidden = value; document.dispatchEvent(new Event("visibilitychange")); };
})();
"""


@dataclass
class AppPage:
    """One page of the stand-in app: its script tag attributes and markup."""

    script_attributes: str = ""
    head: str = ""
    body: str = "<h1>The app</h1><p>Some content.</p>"
    version: str | None = None  # a fixed version (a stale cache); else the deployed one
    script: bool = True

    def markup(self, deployed: str) -> bytes:
        version = html.escape(self.version or deployed, quote=True)
        script = f'<script src="/events/reload.js" {self.script_attributes} defer></script>' if self.script else ""
        return (
            f'<!doctype html><html lang="en" data-app-version="{version}"><head><meta charset="utf-8">'
            f"<title>App {version}</title>{self.head}{script}</head><body>{self.body}</body></html>"
        ).encode()


@dataclass
class StandInApp:
    """The app's pages by path, served on 127.0.0.1 at the deployed version; counts page loads."""

    version_file: Path
    pages: dict[str, AppPage] = field(default_factory=dict)
    page_loads: dict[str, int] = field(default_factory=dict)
    files: Path | None = None  # static files served at the other paths ("/" is index.html)

    def deployed(self) -> str:
        return self.version_file.read_text(encoding="utf-8").strip()

    def serve(self) -> ThreadingHTTPServer:
        """Start serving on a free port, in a thread."""
        app = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = urlsplit(self.path).path
                page = app.pages.get(path)
                file = app.files / (path.lstrip("/") or "index.html") if app.files and page is None else None
                status, body = 200, b""
                if page is not None:
                    body = page.markup(app.deployed())
                elif file is not None and file.is_file():
                    body = file.read_bytes()
                else:
                    status, body = 404, b"not found"
                if status == 200:
                    app.page_loads[path] = app.page_loads.get(path, 0) + 1
                self.send_response(status)
                kind = "text/javascript" if path.endswith(".js") else "text/html; charset=utf-8"
                self.send_header("Content-Type", kind)
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server


@dataclass
class Stack:
    """The sidecar, the stand-in app and nginx in front of both, as an app's users reach them."""

    sidecar: SidecarProcess
    app: StandInApp
    nginx: NginxServer
    start_sidecar: StartSidecar

    @property
    def origin(self) -> str:
        return f"http://app.test:{self.nginx.port}"

    @property
    def pages(self) -> dict[str, AppPage]:
        return self.app.pages

    @property
    def page_loads(self) -> dict[str, int]:
        return self.app.page_loads

    def deploy(self, version: str) -> None:
        """A new version is out: write it to the version file the sidecar watches."""
        scratch = self.app.version_file.with_suffix(".new")
        scratch.write_text(version + "\n", encoding="utf-8")
        os.replace(scratch, self.app.version_file)

    def restart_sidecar(self, *extra_args: str) -> None:
        """Stop the sidecar and start it again on the same port and version file."""
        self.sidecar.stop()
        args = [*SIDECAR_ARGS, "--version-file", str(self.app.version_file), *extra_args]
        self.sidecar = self.start_sidecar(args, port=self.sidecar.port)

    def stream_count(self) -> int:
        """Streams the sidecar holds open (its /healthz)."""
        clients = self.sidecar.health()["clients"]
        assert isinstance(clients, int)
        return clients


@dataclass
class Site(Stack):
    """The stack, and a Playwright context of Debian's Chromium on it."""

    context: BrowserContext
    console: dict[Page, list[str]] = field(default_factory=dict)

    def open(self, path: str = "/app", page: AppPage | None = None, wait: bool = True, clock: bool = False) -> Page:
        """Open `path` in a new tab (registering `page` for it); with `wait`, return once its client
        has heard the deployed version; with `clock`, the page's timers run on Playwright's clock, so
        a test can move time on (`page.clock.run_for`) to show that nothing happens."""
        if page is not None:
            self.pages[path] = page
        tab = self.context.new_page()
        if clock:
            tab.clock.install()
        lines: list[str] = []
        tab.on("console", lambda message: lines.append(message.text))
        self.console[tab] = lines
        tab.goto(self.origin + path)
        if wait and self.pages[path].script:
            wait_for_version(tab, self.app.deployed())
        return tab


def wait_for_version(page: Page, version: str, timeout: float = 10_000) -> None:
    """Wait until the client in `page` has heard `version` (from the stream or its leader tab)."""
    page.wait_for_function(
        "v => window.versionSidecar && window.versionSidecar.latestVersion === v", arg=version, timeout=timeout
    )


def role(page: Page) -> str:
    """The client's part in the election: leader, follower or electing."""
    value = page.evaluate("window.versionSidecar.role")
    assert isinstance(value, str)
    return value


def wait_for_log(site: Site, page: Page, text: str, timeout: float = 10_000) -> None:
    """Wait until a console line of `page` contains `text` (console events arrive during Playwright calls)."""
    wait_until(
        page,
        lambda: any(text in line for line in site.console[page]),
        f"a console line with {text!r}; got:\n" + "\n".join(site.console[page]),
        timeout,
    )


def wait_for_heartbeats(site: Site, page: Page, version: str, count: int = 2) -> None:
    """Wait until `count` more announcements of `version` reached `page` (the sidecar sends one a second)."""
    line = f"[version-sidecar] Version update received: {version} "
    before = sum(text.startswith(line) for text in site.console[page])
    wait_until(page, lambda: sum(text.startswith(line) for text in site.console[page]) >= before + count, "heartbeats")


def wait_until(page: Page, condition: Callable[[], bool], what: str, timeout: float = 10_000) -> None:
    """tests.waiting.wait_until (`timeout` in ms) pausing in Playwright, which delivers the page's
    events only while it runs."""
    waiting.wait_until(condition, what, timeout / 1000, pause=lambda seconds: page.wait_for_timeout(seconds * 1000))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test of this tier carries the `browser` marker (`-m "not browser"` skips the tier)."""
    for item in items:
        if BROWSER_TIER in item.path.parents:
            item.add_marker(pytest.mark.browser)


# Package scope: the sync driver is closed before the other tiers run their event loops.
@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="package")
def browser(playwright: Playwright) -> Iterator[Browser]:
    if not CHROMIUM.is_file():
        pytest.fail(f"the browser tier needs Debian's chromium at {CHROMIUM} (apt-get install chromium)")
    browser = playwright.chromium.launch(
        executable_path=str(CHROMIUM),
        headless=True,
        args=CHROMIUM_ARGS,
        ignore_default_args=PLAYWRIGHT_DEFAULTS_USERS_LACK,
    )
    yield browser
    browser.close()


@pytest.fixture
def stack(start_sidecar: StartSidecar, tmp_path: Path) -> Iterator[Stack]:
    version_file = tmp_path / "version.txt"
    version_file.write_text("v1\n", encoding="utf-8")
    sidecar = start_sidecar([*SIDECAR_ARGS, "--version-file", str(version_file)])
    app = StandInApp(version_file)
    app_server = app.serve()
    nginx = NginxServer(tmp_path / "nginx", sidecar.port, app_server.server_address[1])
    try:
        yield Stack(sidecar, app, nginx, start_sidecar)
    finally:
        nginx.stop()
        app_server.shutdown()
        app_server.server_close()


@pytest.fixture
def site(browser: Browser, stack: Stack) -> Iterator[Site]:
    context = browser.new_context(viewport={"width": 900, "height": 600})
    try:
        yield Site(stack.sidecar, stack.app, stack.nginx, stack.start_sidecar, context)
    finally:
        context.close()


@pytest.fixture(scope="package")
def firefox_bridge() -> Iterator[FirefoxBridge]:
    bridge = FirefoxBridge()
    yield bridge
    bridge.quit()


@pytest.fixture(scope="package")
def webkit_driver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebKitEngine]:
    proxy = ForwardProxy(tmp_path_factory.mktemp("forward-proxy"))
    try:
        with xvfb_display() as display:
            engine = WebKitEngine(display, proxy.port)
            try:
                yield engine
            finally:
                engine.quit()
    finally:
        proxy.stop()


@pytest.fixture(params=["chromium", "firefox", "webkit"])
def engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    """Each engine in turn (its browser shared by the tier); the tabs a test opens are closed after it."""
    chosen: Engine
    if request.param == "chromium":
        chosen = ChromiumEngine(request.getfixturevalue("browser"))
    elif request.param == "firefox":
        chosen = FirefoxEngine(request.getfixturevalue("firefox_bridge"))
    else:
        chosen = request.getfixturevalue("webkit_driver")
    yield chosen
    chosen.close_all()
