"""The dashboard: one page and its script and style, from the package's ``static/`` files.

No build step and nothing from outside the package: the page draws its charts itself (SVG)
and reads its data from ``/v1/live/stream`` and ``/v1/metrics/*`` with a read key, which it
takes from the URL's fragment (``/dashboard#key=...``, never sent to a server) or asks for,
and keeps in the tab's ``sessionStorage``. The files hold no data, so they need no key.
"""

from __future__ import annotations

from importlib import resources
from typing import Final

from starlette.requests import Request
from starlette.responses import Response

from analytics_core.collector.problems import Problem

__all__ = ["dashboard_file", "dashboard_page"]

_FILES: Final = {
    "dashboard.html": "text/html; charset=utf-8",
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
}
# The page runs only its own script and style and talks only to this server.
_SECURITY_HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def _load() -> dict[str, bytes]:
    static = resources.files("analytics_core.collector") / "static"
    return {name: (static / name).read_bytes() for name in _FILES}


_CONTENT: Final = _load()


def _file(name: str) -> Response:
    return Response(_CONTENT[name], media_type=_FILES[name], headers=_SECURITY_HEADERS)


async def dashboard_page(request: Request) -> Response:
    """``GET /dashboard``: the page."""
    return _file("dashboard.html")


async def dashboard_file(request: Request) -> Response:
    """``GET /dashboard/<file>``: its script or style sheet."""
    name = request.path_params["name"]
    if name not in _FILES:
        raise Problem(404, "no such file")
    return _file(name)
