"""A WSGI application for gunicorn: ``GET /track/<id>`` tracks one event and answers 200."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from tests.servers.common import track_call


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    path: str = environ["PATH_INFO"]
    if not path.startswith("/track/"):
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found"]
    track_call(path.removeprefix("/track/"))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"tracked"]
