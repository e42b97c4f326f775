"""The drop-in client script, loaded once, served with an ETag and gzip when accepted."""

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
        use_gzip = "gzip" in request.headers.get("Accept-Encoding", "").lower()
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
