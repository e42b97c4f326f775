// Drives Debian's Firefox ESR for the Python tests: puppeteer-core over WebDriver BiDi, with its
// own browser download skipped. One JSON request a line on stdin ({id, op, ...}), one JSON answer
// a line on stdout ({id, value} or {id, error}). Pages are numbered; each opens in a window of
// its own, so every page is visible as a user's would be.
import { createInterface } from "node:readline";
import puppeteer from "puppeteer-core";

const [executablePath, hostName] = process.argv.slice(2);
const browser = await puppeteer.launch({
  browser: "firefox",
  executablePath,
  headless: true,
  // The plain-HTTP test site's name resolves to 127.0.0.1, as Chromium's host-resolver-rules do.
  extraPrefsFirefox: { "network.dns.localDomains": hostName },
});
const pages = new Map();
let nextPage = 1;

// A button by its text, in the page or in the toast's shadow root.
function button(page, name) {
  return page.evaluateHandle((text) => {
    const host = document.querySelector("version-sidecar-toast");
    const buttons = [...document.querySelectorAll("button"), ...(host ? host.shadowRoot.querySelectorAll("button") : [])];
    return buttons.find((candidate) => candidate.textContent === text) || null;
  }, name);
}

const operations = {
  async open({ url }) {
    const page = await browser.newPage({ type: "window" });
    await page.setViewport({ width: 900, height: 600 });
    await page.goto(url);
    pages.set(nextPage, page);
    return nextPage++;
  },
  async evaluate({ page, expression }) {
    return pages.get(page).evaluate(expression);
  },
  async click({ page, name }) {
    const found = await button(pages.get(page), name);
    if (!found.asElement()) throw new Error(`no button named ${name}`);
    await found.asElement().click(); // a real click: the mouse moves to it and presses
    return null;
  },
  async type({ page, selector, text }) {
    await pages.get(page).type(selector, text);
    return null;
  },
  async close({ page }) {
    const closing = pages.get(page);
    pages.delete(page);
    await closing.close();
    return null;
  },
  async version() {
    return browser.version();
  },
};

function answer(message) {
  process.stdout.write(JSON.stringify(message) + "\n");
}

const lines = createInterface({ input: process.stdin });
answer({ id: 0, value: "ready" });
for await (const line of lines) {
  const request = JSON.parse(line);
  if (request.op === "quit") break;
  try {
    answer({ id: request.id, value: (await operations[request.op](request)) ?? null });
  } catch (error) {
    answer({ id: request.id, error: String(error && error.stack ? error.stack : error) });
  }
}
await browser.close();
