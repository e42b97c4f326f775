"""The client script itself: its served size, how it is minified, how it finds its tag, and the names
it leaves in the page."""

import urllib.request

from playwright.sync_api import expect

from sidecar.script import minify
from tests.browser.conftest import AppPage, Site

GLOBAL_NAMES = "Object.getOwnPropertyNames(window)"


def test_the_served_script_is_at_most_5_kb_gzipped(site: Site) -> None:
    request = urllib.request.Request(f"{site.sidecar.url}/events/reload.js", headers={"Accept-Encoding": "gzip"})
    with urllib.request.urlopen(request, timeout=5) as reply:
        assert reply.headers["Content-Encoding"] == "gzip"
        size = len(reply.read())
    assert size <= 5 * 1024, f"reload.js is {size} bytes gzipped"


def test_the_only_global_name_is_version_sidecar(site: Site) -> None:
    without = site.open("/plain", AppPage(script=False))
    with_script = site.open("/app", AppPage())
    added = set(with_script.evaluate(GLOBAL_NAMES)) - set(without.evaluate(GLOBAL_NAMES))
    assert added == {"versionSidecar"}


def test_loaded_as_a_module_it_finds_its_own_tag(site: Site) -> None:
    # document.currentScript is null in a module: the script finds its tag by its src instead.
    page = site.open("/app", AppPage(script_attributes='type="module" data-countdown="0" data-text-later="Not now"'))
    site.deploy("v2")
    expect(page.get_by_role("status")).to_contain_text("A new version (v2) is available.")
    expect(page.get_by_role("button", name="Not now")).to_be_visible()  # its data-* attributes are read


def test_an_element_named_version_sidecar_does_not_stop_it(site: Site) -> None:
    # id="versionSidecar" makes window.versionSidecar that element (named access on window).
    page = site.open("/app", AppPage(body='<div id="versionSidecar">The app\'s own element</div>'))
    site.deploy("v2")
    expect(page.get_by_role("status")).to_contain_text("A new version (v2) is available.")
    assert page.evaluate("window.versionSidecar.latestVersion") == "v2"


def test_included_twice_it_runs_once(site: Site) -> None:
    page = site.open("/app", AppPage(body='<script src="/events/reload.js"></script>'))
    assert site.stream_count() == 1
    site.deploy("v2")
    expect(page.get_by_role("status")).to_have_count(1)


MINIFIER_CASES = r"""
var quoted = 'a  // b' + "c /* d */ e" + 'it\'s // "quoted"';
var pattern = /\/\/[a-z]+\/*/g; // a comment
var divided = 12 / 2 / 3; /* another */
var matched = "say //hi// there".match(pattern);
function local(longName) { var other = longName * 2; return other + divided + arguments.length; }
var object = { get value() { return local(1); }, "a // b": /[/]"'/.test("/\"'") };
return [quoted, divided, matched, pattern.source, object.value, object["a // b"]];
"""


def test_the_minifier_keeps_tricky_javascript_as_it_was(site: Site) -> None:
    # The real engine runs the code before and after minifying: strings holding // and /*, regular
    # expressions, division, getters, shortened local names (a hand-made comment stripper broke
    # strings and regular expressions; template literals are refused: tests/http).
    page = site.context.new_page()
    run = "source => new Function(source)()"
    assert page.evaluate(run, minify(MINIFIER_CASES).decode()) == page.evaluate(run, MINIFIER_CASES)


def test_the_served_script_parses_in_the_engine(site: Site) -> None:
    request = urllib.request.Request(f"{site.sidecar.url}/events/reload.js", headers={"Accept-Encoding": "identity"})
    with urllib.request.urlopen(request, timeout=5) as reply:
        served = reply.read().decode()
    page = site.context.new_page()
    assert page.evaluate("source => typeof new Function(source)", served) == "function"  # compiled, not run
