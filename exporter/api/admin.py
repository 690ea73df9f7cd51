"""The admin page at /: one static, self-contained HTML file. It holds no data itself; its script
asks for an API key and reads the native API with it, so the page shows nothing the key does not
allow."""

from __future__ import annotations

import base64
import hashlib
import re
from importlib.resources import files

from exporter.http import Handler, Request, Response

PAGE = files("exporter.api").joinpath("admin.html").read_bytes()


def _hashes(tag: bytes) -> str:
    """CSP hashes of the page's inline <tag> blocks, so they run and nothing else inline does."""
    blocks = re.findall(rb"<%s>(.*?)</%s>" % (tag, tag), PAGE, re.DOTALL)
    return " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(b).digest()).decode()}'"
                    for b in blocks)


HEADERS = [
    ("Content-Security-Policy",
     f"default-src 'none'; script-src {_hashes(b'script')}; style-src {_hashes(b'style')}; "
     "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; "
     "frame-ancestors 'none'"),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-store"),
]


def page(request: Request) -> Response:
    return Response(200, PAGE, "text/html; charset=utf-8", list(HEADERS))


def routes() -> dict[str, Handler]:
    return {"/": page}
