"""The drop-in client script, minified once at load, served with an ETag and gzip when the
request's Accept-Encoding prefers it (RFC 9110, section 12.5.3).

Why not aiohttp's FileResponse with a precompressed .gz: it picks the .gz when "gzip" appears
anywhere in Accept-Encoding (so `gzip;q=0` and `notgzip` get gzip), and it serves files, while
the script is minified in memory at start-up and the container's root filesystem is read-only.
The validators use aiohttp's own parsing of If-None-Match (request.if_none_match)."""

import gzip
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from aiohttp import web
from calmjs.parse import es5  # type: ignore[import-untyped]  # no type hints shipped
from calmjs.parse.unparsers.es5 import minify_print  # type: ignore[import-untyped]

SCRIPT_NAME = "reload.js"


def _script_bytes() -> bytes:
    # In a wheel the script is packed as sidecar/static/reload.js; in a source checkout
    # (editable install, tests) it is read from client/ beside the package.
    packed = resources.files("sidecar") / "static" / SCRIPT_NAME
    if packed.is_file():
        return packed.read_bytes()
    return (Path(__file__).resolve().parent.parent / "client" / SCRIPT_NAME).read_bytes()


def _quality(element: str) -> tuple[str, float]:
    """One Accept-Encoding element ("gzip;q=0.5") as (coding, q); a q that is not a number
    from 0 to 1 makes the element unacceptable (q 0), so a broken header gets the plain script."""
    coding, *params = (part.strip() for part in element.split(";"))
    quality = 1.0
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                quality = float(value.strip())
            except ValueError:
                quality = 0.0
            if not 0.0 <= quality <= 1.0:
                quality = 0.0
    return coding.lower(), quality


def prefers_gzip(accept_encoding: str) -> bool:
    """True when gzip is acceptable (named, or x-gzip, or covered by `*`, with q > 0) and the
    request does not rate identity higher. No header, "identity" and unknown codings: False."""
    qualities: dict[str, float] = {}
    for element in accept_encoding.split(","):
        if element.strip():
            coding, quality = _quality(element)
            qualities.setdefault("gzip" if coding == "x-gzip" else coding, quality)
    gzip_q = qualities.get("gzip", qualities.get("*", 0.0))
    # The plain script is always acceptable; it wins only where the request rates it higher.
    identity_q = qualities.get("identity", qualities.get("*", 0.0))
    return gzip_q > 0.0 and gzip_q >= identity_q


def minify(source: str) -> bytes:
    """reload.js as served: parsed by calmjs.parse and printed back without comments and
    whitespace, its local names shortened (a sixth smaller gzipped than without). A parser, not a
    pattern, so strings, regular expressions and comments are told apart; it reads ES5, the script's
    dialect, and refuses anything else with the line (ECMASyntaxError): start-up stops, loudly."""
    small: str = minify_print(es5(source), obfuscate=True, obfuscate_globals=False)
    return small.encode("utf-8")


def etag_matches(etag: str, if_none_match: Iterable[str]) -> bool:
    """If-None-Match (its entity-tags' values, as aiohttp parses them) as RFC 9110, section
    13.1.2 says: `*` matches any current representation, and the comparison is weak
    (W/"x" matches "x")."""
    return any(value in ("*", etag) for value in if_none_match)


@dataclass(frozen=True)
class ClientScript:
    body: bytes
    gzipped: bytes
    etag: str

    @classmethod
    def load(cls) -> "ClientScript":
        body = minify(_script_bytes().decode("utf-8"))
        return cls(body, gzip.compress(body, 9, mtime=0), hashlib.sha256(body).hexdigest()[:20])

    def respond(self, request: web.Request) -> web.Response:
        use_gzip = prefers_gzip(",".join(request.headers.getall("Accept-Encoding", [])))
        # Each encoding is its own representation, so it gets its own validator.
        etag = f'"{self.etag}-gz"' if use_gzip else f'"{self.etag}"'
        headers = {
            "Cache-Control": "no-cache",
            "ETag": etag,
            "Vary": "Accept-Encoding",
            "Content-Type": "text/javascript; charset=utf-8",
        }
        if etag_matches(etag.strip('"'), (tag.value for tag in request.if_none_match or ())):
            return web.Response(status=304, headers=headers)
        if use_gzip:
            headers["Content-Encoding"] = "gzip"
            return web.Response(body=self.gzipped, headers=headers)
        return web.Response(body=self.body, headers=headers)
