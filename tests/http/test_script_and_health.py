"""GET /events/reload.js, /healthz, the base path and the demo page."""

import gzip
from pathlib import Path

import pytest
from calmjs.parse.exceptions import ECMASyntaxError  # type: ignore[import-untyped]

from sidecar.script import minify
from tests.http.conftest import MakeSidecar

SOURCE = (Path(__file__).resolve().parents[2] / "client" / "reload.js").read_bytes()
SCRIPT = minify(SOURCE.decode())


def test_the_script_is_served_minified() -> None:
    served = SCRIPT.decode()
    assert "// " not in served and "/*" not in served  # the source's comments are gone
    assert "function reload(" in SOURCE.decode() and "function reload(" not in served  # local names shortened
    assert '"[version-sidecar] "' in served  # strings stay as they are
    assert len(SCRIPT) < len(SOURCE) * 0.6


def test_a_script_the_minifier_cannot_read_stops_it_loudly() -> None:
    # reload.js is ES5 (docs/building.md): newer syntax is refused with its line, never served mangled.
    with pytest.raises(ECMASyntaxError, match="at 2:9"):
        minify("var a = 1;\nvar b = `template ${a}`;\n")


async def test_script_is_served_as_javascript_with_an_etag(make_sidecar: MakeSidecar) -> None:
    sidecar = await make_sidecar()
    response = await sidecar.client.get("/events/reload.js", headers={"Accept-Encoding": "identity"})
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/javascript")
    assert response.headers["Cache-Control"] == "no-cache"
    assert "Content-Encoding" not in response.headers
    assert await response.read() == SCRIPT
    etag = response.headers["ETag"]
    again = await sidecar.client.get("/events/reload.js", headers={"If-None-Match": etag, "Accept-Encoding": ""})
    assert again.status == 304
    assert await again.read() == b""


async def test_script_is_gzipped_when_accepted(make_sidecar: MakeSidecar) -> None:
    sidecar = await make_sidecar()
    response = await sidecar.client.get(
        "/events/reload.js", headers={"Accept-Encoding": "gzip, deflate"}, auto_decompress=False
    )
    assert response.headers["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in response.headers["Vary"]
    assert gzip.decompress(await response.read()) == SCRIPT
    stale = await sidecar.client.get(
        "/events/reload.js", headers={"If-None-Match": '"an-old-version"', "Accept-Encoding": "gzip"}
    )
    assert stale.status == 200


async def test_health_reports_version_and_clients(make_sidecar: MakeSidecar) -> None:
    sidecar = await make_sidecar("v3")
    await sidecar.open_stream()
    await sidecar.open_stream()
    response = await sidecar.client.get("/healthz")
    assert response.status == 200
    assert await response.json() == {"status": "ok", "version": "v3", "clients": 2, "source": "file", "problem": None}


@pytest.mark.parametrize("base_path", ["/_v", ""])  # "" is what `--base-path /` becomes: the root
async def test_base_path_moves_both_public_paths(make_sidecar: MakeSidecar, base_path: str) -> None:
    sidecar = await make_sidecar(base_path=base_path)
    assert (await sidecar.client.get("/events/version")).status == 404
    assert (await sidecar.client.get(f"{base_path}/reload.js")).status == 200
    response = await sidecar.client.get(f"{base_path}/version")
    assert response.headers["Content-Type"].startswith("text/event-stream")
    response.close()


async def test_demo_page_includes_the_script_and_the_escaped_version(make_sidecar: MakeSidecar) -> None:
    sidecar = await make_sidecar('v1"><b>', demo=True)
    page = await (await sidecar.client.get("/")).text()
    assert '<script src="/events/reload.js" defer></script>' in page
    assert 'data-app-version="v1&quot;&gt;&lt;b&gt;"' in page
    assert "<b>" not in page


async def test_no_demo_page_unless_asked(make_sidecar: MakeSidecar) -> None:
    sidecar = await make_sidecar()
    assert (await sidecar.client.get("/")).status == 404
