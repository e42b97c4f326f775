"""The drop-in client script, loaded once, served with an ETag and gzip when the request's
Accept-Encoding prefers it (RFC 9110, section 12.5.3)."""

import gzip
import hashlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from aiohttp import web

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


def strip_comments(source: bytes) -> bytes:
    """reload.js as served: without its comments (a third of its gzipped size). Whole-line `//`
    comments go, and a trailing ` // ...` where the quotes before it are balanced (not in a string)."""
    kept = []
    for line in source.decode("utf-8").splitlines():
        if line.lstrip().startswith("//"):
            continue
        mark = line.find(" // ")
        if mark >= 0 and line.count('"', 0, mark) % 2 == 0:
            line = line[:mark]
        kept.append(line.rstrip())
    return ("\n".join(kept) + "\n").encode("utf-8")


@dataclass(frozen=True)
class ClientScript:
    body: bytes
    gzipped: bytes
    etag: str

    @classmethod
    def load(cls) -> "ClientScript":
        body = strip_comments(_script_bytes())
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
        if etag in (tag.strip() for tag in request.headers.get("If-None-Match", "").split(",")):
            return web.Response(status=304, headers=headers)
        if use_gzip:
            headers["Content-Encoding"] = "gzip"
            return web.Response(body=self.gzipped, headers=headers)
        return web.Response(body=self.body, headers=headers)
