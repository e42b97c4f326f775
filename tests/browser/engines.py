"""The three browser engines behind one small interface, for the scenarios every engine must pass.

Chromium: Debian's chromium through Playwright. Firefox: Debian's firefox-esr through puppeteer-core
over WebDriver BiDi (tests/browser/firefox_bridge.mjs, a Node process spoken to in JSON lines).
WebKit: Debian's WebKitGTK MiniBrowser through its WebKitWebDriver and Selenium, on an Xvfb screen,
with a forward proxy (nginx) standing in for the host name mapping it lacks. No tool downloads a
browser. Each tab is a window of its own, so every tab is visible. WebKitWebDriver cannot read the
console, so the pages record their console lines themselves (CONSOLE_RECORDER).
"""

import json
import os
import queue
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from playwright.sync_api import Browser, BrowserContext, Page
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.proxy import Proxy, ProxyType
from selenium.webdriver.webkitgtk.options import Options as WebKitOptions
from selenium.webdriver.webkitgtk.service import Service as WebKitService

from tests.nginx.nginx_server import nginx_binary
from tests.sidecar_process import free_port

HOST_NAME = "app.test"
BROWSER_TIER = Path(__file__).resolve().parent
FIREFOX = Path("/usr/bin/firefox-esr")
WEBKIT_DRIVER = Path("/usr/bin/WebKitWebDriver")
WEBKIT_BROWSER = Path("/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser")
# In the page's <head>, before reload.js: each console line with the time it was logged (ms since epoch).
CONSOLE_RECORDER = """<script>
  window.consoleLines = [];
  (function (log) {
    console.log = function () {
      window.consoleLines.push([Date.now(), Array.prototype.join.call(arguments, " ")]);
      log.apply(console, arguments);
    };
  })(console.log);
</script>"""


class Tab(Protocol):
    def evaluate(self, expression: str) -> Any:
        """The JSON value of a JavaScript expression in the page."""

    def click(self, name: str) -> None:
        """Click the button named `name` (the toast's are in its shadow root) as a user would."""

    def type(self, selector: str, text: str) -> None:
        """Type `text` into the field `selector` as a user would."""

    def close(self) -> None:
        """Close the tab, as a user closing its window."""


class Engine(Protocol):
    name: str

    def open(self, url: str) -> Tab:
        """Open `url` in a new window and wait for it to load."""

    def close_all(self) -> None:
        """Close every tab this engine opened that is still open."""


def poll(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Wait until `condition()` holds, polling; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


# Chromium


class ChromiumTab:
    def __init__(self, page: Page) -> None:
        self.page = page

    def evaluate(self, expression: str) -> Any:
        return self.page.evaluate(expression)

    def click(self, name: str) -> None:
        self.page.get_by_role("button", name=name).click()

    def type(self, selector: str, text: str) -> None:
        self.page.locator(selector).press_sequentially(text)

    def close(self) -> None:
        self.page.close()


class ChromiumEngine:
    name = "chromium"

    def __init__(self, browser: Browser) -> None:
        self.context: BrowserContext = browser.new_context(viewport={"width": 900, "height": 600})

    def open(self, url: str) -> Tab:
        page = self.context.new_page()
        page.goto(url)
        return ChromiumTab(page)

    def close_all(self) -> None:
        self.context.close()


# Firefox


class FirefoxBridge:
    """The Node process that drives Firefox (firefox_bridge.mjs): one request, one answer."""

    def __init__(self) -> None:
        if not FIREFOX.is_file():
            raise AssertionError(f"the browser tier needs Debian's firefox-esr at {FIREFOX}")
        if not (BROWSER_TIER / "node_modules" / "puppeteer-core").is_dir():
            raise AssertionError("puppeteer-core is not installed: (cd tests/browser && npm ci)")
        node = shutil.which("node")
        if node is None:
            raise AssertionError("the browser tier needs Node.js (Debian's nodejs)")
        self.process = subprocess.Popen(
            [node, str(BROWSER_TIER / "firefox_bridge.mjs"), str(FIREFOX), HOST_NAME],
            cwd=BROWSER_TIER,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PUPPETEER_SKIP_DOWNLOAD": "1"},
        )
        self.answers: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.last_id = 0
        self.open_pages: set[int] = set()
        self._wait(0, 60)

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.answers.put(json.loads(line))
        self.answers.put({"id": -1, "error": f"the Firefox bridge exited with {self.process.wait()}"})

    def _wait(self, request_id: int, timeout: float) -> Any:
        try:
            answer = self.answers.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"the Firefox bridge did not answer within {timeout} s") from None
        if "error" in answer:
            raise AssertionError(f"Firefox: {answer['error']}")
        assert answer["id"] == request_id, answer
        return answer["value"]

    def call(self, op: str, timeout: float = 30, **arguments: Any) -> Any:
        assert self.process.stdin is not None
        self.last_id += 1
        self.process.stdin.write(json.dumps({"id": self.last_id, "op": op, **arguments}) + "\n")
        self.process.stdin.flush()
        return self._wait(self.last_id, timeout)

    def quit(self) -> None:
        try:
            assert self.process.stdin is not None
            self.process.stdin.write('{"op": "quit"}\n')
            self.process.stdin.close()
            self.process.wait(timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            self.process.kill()
            self.process.wait()


class FirefoxTab:
    def __init__(self, bridge: FirefoxBridge, page: int) -> None:
        self.bridge = bridge
        self.page = page

    def evaluate(self, expression: str) -> Any:
        return self.bridge.call("evaluate", page=self.page, expression=expression)

    def click(self, name: str) -> None:
        self.bridge.call("click", page=self.page, name=name)

    def type(self, selector: str, text: str) -> None:
        self.bridge.call("type", page=self.page, selector=selector, text=text)

    def close(self) -> None:
        self.bridge.call("close", page=self.page)
        self.bridge.open_pages.discard(self.page)


class FirefoxEngine:
    name = "firefox"

    def __init__(self, bridge: FirefoxBridge) -> None:
        self.bridge = bridge

    def open(self, url: str) -> Tab:
        page = self.bridge.call("open", url=url)
        self.bridge.open_pages.add(page)
        return FirefoxTab(self.bridge, page)

    def close_all(self) -> None:
        for page in sorted(self.bridge.open_pages):
            FirefoxTab(self.bridge, page).close()


# WebKit


@contextmanager
def xvfb_display() -> Iterator[str]:
    """A virtual X screen of our own for the duration; yields its DISPLAY."""
    if shutil.which("Xvfb") is None:
        raise AssertionError("the browser tier needs Xvfb (Debian's xvfb) for WebKitGTK")
    read_end, write_end = os.pipe()
    process = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_end), "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
        pass_fds=(write_end,),
        stderr=subprocess.DEVNULL,
    )
    os.close(write_end)
    with os.fdopen(read_end) as announced:
        number = announced.readline().strip()  # Xvfb writes its display number once it is ready
    try:
        if not number:
            raise AssertionError("Xvfb did not start")
        yield f":{number}"
    finally:
        process.terminate()
        process.wait()


class ForwardProxy:
    """nginx as an HTTP forward proxy on 127.0.0.1: a request for http://app.test:PORT/... goes to
    127.0.0.1:PORT, streams unbuffered. WebKitGTK has no host-resolver switch; it has proxies."""

    def __init__(self, prefix: Path) -> None:
        self.port = free_port()
        prefix.mkdir(parents=True, exist_ok=True)
        kinds = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        temp = " ".join(f"{kind}_temp_path {prefix}/{kind};" for kind in kinds)
        (prefix / "nginx.conf").write_text(
            f"""
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log;
events {{ worker_connections 256; }}
http {{
    access_log off;
    {temp}
    map $http_host $target_port {{ default 9; "~:(?<port>[0-9]+)$" $port; }}
    server {{
        listen 127.0.0.1:{self.port};
        location / {{
            proxy_pass http://127.0.0.1:$target_port;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_buffering off;
            proxy_read_timeout 300s;
        }}
    }}
}}
""",
            encoding="utf-8",
        )
        self.process = subprocess.Popen(
            [nginx_binary(), "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-e", str(prefix / "error.log")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait()


class WebKitTab:
    def __init__(self, engine: "WebKitEngine", handle: str) -> None:
        self.engine = engine
        self.handle = handle

    def _front(self) -> webdriver.WebKitGTK:
        """The driver, switched to this tab's window (WebDriver commands go to one window at a time)."""
        if self.engine.current != self.handle:
            self.engine.driver.switch_to.window(self.handle)
            self.engine.current = self.handle
        return self.engine.driver

    def evaluate(self, expression: str) -> Any:
        return self._front().execute_script(f"return {expression};")

    def click(self, name: str) -> None:
        root = self._front().find_element(By.CSS_SELECTOR, "version-sidecar-toast").shadow_root
        buttons = [b for b in root.find_elements(By.CSS_SELECTOR, "button") if b.get_attribute("textContent") == name]
        assert buttons, f"no button {name!r} in the toast"
        buttons[0].click()

    def type(self, selector: str, text: str) -> None:
        self._front().find_element(By.CSS_SELECTOR, selector).send_keys(text)

    def close(self) -> None:
        self._front().close()
        self.engine.current = ""


class WebKitEngine:
    name = "webkit"

    def __init__(self, display: str, proxy_port: int) -> None:
        for path in (WEBKIT_DRIVER, WEBKIT_BROWSER):
            if not path.is_file():
                raise AssertionError(f"the browser tier needs WebKitGTK at {path} (Debian's webkit2gtk-driver)")
        options = WebKitOptions()
        options.binary_location = str(WEBKIT_BROWSER)
        options.add_argument("--automation")
        options.proxy = Proxy({"proxyType": ProxyType.MANUAL, "httpProxy": f"127.0.0.1:{proxy_port}"})
        service = WebKitService(executable_path=str(WEBKIT_DRIVER), env={**os.environ, "DISPLAY": display})
        self.driver = webdriver.WebKitGTK(options=options, service=service)
        self.home = self.driver.current_window_handle  # kept open: closing the last window ends the session
        self.current = self.home

    def open(self, url: str) -> Tab:
        self.driver.switch_to.new_window("window")
        self.driver.set_window_size(900, 600)
        self.driver.get(url)
        self.current = self.driver.current_window_handle
        return WebKitTab(self, self.current)

    def close_all(self) -> None:
        for handle in self.driver.window_handles:
            if handle != self.home:
                self.driver.switch_to.window(handle)
                self.driver.close()
        self.driver.switch_to.window(self.home)
        self.current = self.home

    def quit(self) -> None:
        self.driver.quit()
