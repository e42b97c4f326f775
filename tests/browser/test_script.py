"""The client script itself: its served size and the names it leaves in the page."""

import urllib.request

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
