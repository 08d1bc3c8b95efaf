"""One structured log line per request, and the request counts of ``/metrics``.

Logged as JSON on the ``analytics_core.collector.access`` logger: method, path, route,
status, duration, response size, client address and the name of the key used (set by
``auth``). Never a body, a query string (a read's filters) or a key.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from analytics_core.collector.prometheus import Counts

__all__ = ["AccessLog", "logger"]

logger = logging.getLogger("analytics_core.collector.access")


class AccessLog:
    """ASGI middleware around the app: times, logs and counts each HTTP request."""

    def __init__(self, app: ASGIApp, counts: Counts, routes: Mapping[object, str]) -> None:
        self._app = app
        self._counts = counts
        self._routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        size = 0

        async def send_counting(message: Message) -> None:
            nonlocal status, size
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                size += len(message.get("body", b""))
            await send(message)

        try:
            await self._app(scope, receive, send_counting)
        finally:
            # Routing fills in the endpoint: the route's template is the label, so that
            # paths with ids do not make a metric per id.
            route = self._routes.get(scope.get("endpoint"), "unmatched")
            self._counts.request(route, scope["method"], status)
            if logger.isEnabledFor(logging.INFO):
                _log(scope, route, status, size, time.perf_counter() - started)


def _log(scope: Scope, route: str, status: int, size: int, seconds: float) -> None:
    client = scope.get("client")
    state = scope.get("state") or {}
    line = {
        "method": scope["method"],
        "path": scope["path"],
        "route": route,
        "status": status,
        "duration_ms": round(seconds * 1000, 2),
        "bytes": size,
        "client": client[0] if client else None,
        "key": state.get("key_name"),
    }
    logger.info(json.dumps(line, separators=(",", ":")))
