"""The page and its static files, served from an allowlist, with hardening headers on everything.

The files under ``webui/static/`` (the page, its script and style, the vendored uPlot chart
library with its licence) ship in the package; there is no build step. ``Assets.load()``
reads them once into memory, keyed by their path inside the directory: a request names a
key or gets a 404, so no path — ``..``, encoded slashes, symlinks — can reach outside.

Every response of the application (API, errors, events) carries the hardening headers:
a strict Content-Security-Policy (scripts and styles only from this origin, no inline
script, nothing framed, no form posts), ``X-Content-Type-Options: nosniff``, no referrer,
no framing. Entries are LLM output: the page renders them as text, and the CSP is the
second line of defence if it ever did not.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

__all__ = ["SECURITY_HEADERS", "STATIC_DIR", "Asset", "Assets", "add_security_headers"]

STATIC_DIR = Path(__file__).parent / "static"

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}
_CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".txt": "text/plain; charset=utf-8",
    ".md": "text/plain; charset=utf-8",
}
_LICENCE_NAMES = ("LICENSE", "LICENCE")


@dataclass(frozen=True, slots=True)
class Asset:
    """One static file held in memory."""

    body: bytes
    content_type: str
    etag: str


class Assets:
    """The allowlisted static files, by their path inside the static directory."""

    def __init__(self, files: dict[str, Asset]) -> None:
        self._files = files

    def __repr__(self) -> str:
        return f"<Assets files={len(self._files)}>"

    @classmethod
    def load(cls, directory: Path = STATIC_DIR) -> Assets:
        """Read every servable regular file under ``directory`` (symlinks are not followed)."""
        files: dict[str, Asset] = {}
        for path in sorted(directory.rglob("*")):
            if path.is_symlink() or not path.is_file():
                continue
            content_type = _CONTENT_TYPES.get(path.suffix.lower())
            if content_type is None and path.name.upper().endswith(_LICENCE_NAMES):
                content_type = _CONTENT_TYPES[".txt"]  # e.g. vendor/uPlot.LICENSE
            if content_type is None:
                continue
            body = path.read_bytes()
            etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
            files[path.relative_to(directory).as_posix()] = Asset(body, content_type, etag)
        return cls(files)

    def get(self, name: str) -> Asset | None:
        return self._files.get(name)

    def names(self) -> list[str]:
        return sorted(self._files)

    def response(self, request: web.Request, name: str) -> web.Response:
        """The file ``name`` (304 when the browser has it), or a 404."""
        asset = self._files.get(name)
        if asset is None:
            raise web.HTTPNotFound(text='{"error": "no such file"}', content_type="application/json")
        headers = {"ETag": asset.etag, "Cache-Control": "no-cache"}
        if request.headers.get("If-None-Match") == asset.etag:
            return web.Response(status=304, headers=headers)
        return web.Response(body=asset.body, headers={**headers, "Content-Type": asset.content_type})


async def add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare`` hook: the hardening headers on every response."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
