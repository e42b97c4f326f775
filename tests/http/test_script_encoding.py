"""GET /events/reload.js negotiates gzip from Accept-Encoding (q-values, case, `*`), never guesses
it from a substring: a client that refuses gzip, or names only codings we do not have, gets the
plain script, and every answer says it varies by Accept-Encoding."""

import gzip
from pathlib import Path

import pytest

from sidecar.script import minify
from tests.http.conftest import MakeSidecar

SCRIPT = minify((Path(__file__).resolve().parents[2] / "client" / "reload.js").read_text(encoding="utf-8"))

GZIPPED = [
    "gzip",
    "GZip",
    "gzip, deflate, br",
    "deflate, gzip;q=0.5",
    "x-gzip",
    "*",
    "*;q=0.1",
    "gzip;q=1.0, identity;q=0.5",
    "gzip;q=0.5, identity;q=0.5",
    "br;q=1, gzip;q=0.8",
]
PLAIN = [
    "",
    "identity",
    "br",
    "deflate, br, zstd",
    "notgzip",  # a substring is not a coding
    "gzip;q=0",
    "GZIP; Q=0.000",
    "*, gzip;q=0",
    "gzip;q=0, *",
    "*;q=0",
    "gzip;q=0.5, identity",  # identity rated higher
    "gzip;q=0.5, *",  # `*` covers identity at q=1
    "gzip;q=banana",  # a broken q makes that coding unacceptable
    "gzip;q=2",
]


async def fetch(make_sidecar: MakeSidecar, accept_encoding: str | None) -> tuple[str | None, str, bytes]:
    sidecar = await make_sidecar()
    if accept_encoding is None:
        # aiohttp's client adds its own Accept-Encoding unless told to leave it out.
        response = await sidecar.client.get(
            "/events/reload.js", skip_auto_headers=["Accept-Encoding"], auto_decompress=False
        )
    else:
        response = await sidecar.client.get(
            "/events/reload.js", headers={"Accept-Encoding": accept_encoding}, auto_decompress=False
        )
    assert response.status == 200
    return response.headers.get("Content-Encoding"), response.headers["Vary"], await response.read()


@pytest.mark.parametrize("accept_encoding", GZIPPED)
async def test_gzip_when_the_request_accepts_it(make_sidecar: MakeSidecar, accept_encoding: str) -> None:
    encoding, vary, body = await fetch(make_sidecar, accept_encoding)
    assert encoding == "gzip"
    assert gzip.decompress(body) == SCRIPT
    assert "Accept-Encoding" in vary


@pytest.mark.parametrize("accept_encoding", [*PLAIN, None], ids=[*PLAIN, "no header"])
async def test_plain_script_when_gzip_is_refused_or_not_named(
    make_sidecar: MakeSidecar, accept_encoding: str | None
) -> None:
    encoding, vary, body = await fetch(make_sidecar, accept_encoding)
    assert encoding is None
    assert body == SCRIPT
    assert "Accept-Encoding" in vary


async def test_the_header_may_come_in_several_lines(make_sidecar: MakeSidecar) -> None:
    sidecar = await make_sidecar()
    refused = await sidecar.client.get(
        "/events/reload.js", headers=[("Accept-Encoding", "br"), ("Accept-Encoding", "gzip;q=0")]
    )
    assert "Content-Encoding" not in refused.headers
    accepted = await sidecar.client.get(
        "/events/reload.js", headers=[("Accept-Encoding", "br"), ("Accept-Encoding", "gzip")], auto_decompress=False
    )
    assert accepted.headers["Content-Encoding"] == "gzip"


async def test_each_encoding_has_its_own_etag(make_sidecar: MakeSidecar) -> None:
    sidecar = await make_sidecar()
    plain = await sidecar.client.get("/events/reload.js", headers={"Accept-Encoding": "gzip;q=0"})
    zipped = await sidecar.client.get("/events/reload.js", headers={"Accept-Encoding": "gzip"})
    assert plain.headers["ETag"] != zipped.headers["ETag"]
    # The plain representation's validator does not match the gzipped one, and back.
    crossed = await sidecar.client.get(
        "/events/reload.js", headers={"Accept-Encoding": "gzip", "If-None-Match": plain.headers["ETag"]}
    )
    assert crossed.status == 200
    same = await sidecar.client.get(
        "/events/reload.js", headers={"Accept-Encoding": "identity", "If-None-Match": plain.headers["ETag"]}
    )
    assert same.status == 304


@pytest.mark.parametrize(
    "if_none_match",
    ["*", "W/{etag}", '"other", {etag}', 'W/"other", W/{etag}'],
    ids=["any", "weak", "in a list", "weak in a list"],
)
@pytest.mark.parametrize("accept_encoding", ["gzip", "identity"])
async def test_if_none_match_any_and_weak_validators_get_304(
    make_sidecar: MakeSidecar, accept_encoding: str, if_none_match: str
) -> None:
    """RFC 9110, section 13.1.2: `*` matches any current representation, and If-None-Match
    compares weakly (W/"x" matches "x")."""
    sidecar = await make_sidecar()
    first = await sidecar.client.get("/events/reload.js", headers={"Accept-Encoding": accept_encoding})
    condition = if_none_match.format(etag=first.headers["ETag"])
    again = await sidecar.client.get(
        "/events/reload.js", headers={"Accept-Encoding": accept_encoding, "If-None-Match": condition}
    )
    assert again.status == 304, condition
    assert again.headers["ETag"] == first.headers["ETag"]
    assert await again.read() == b""


async def test_a_weak_validator_of_another_script_gets_the_script(make_sidecar: MakeSidecar) -> None:
    sidecar = await make_sidecar()
    response = await sidecar.client.get(
        "/events/reload.js", headers={"Accept-Encoding": "identity", "If-None-Match": 'W/"an-old-version", "x"'}
    )
    assert response.status == 200
    assert await response.read() == SCRIPT
