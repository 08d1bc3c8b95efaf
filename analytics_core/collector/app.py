"""``create_app(config)``: the collector's ASGI application (Starlette).

The routes, one line each below; the lifespan opens the process's one ``AnalyticsClient``
(and the read connections) at start and at shutdown drains it within ``shutdown_timeout``
with ``aclose()``, logging what became of the events. Every response is counted and logged
by ``access_log``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from analytics_core.collector.access_log import AccessLog
from analytics_core.collector.config import CollectorConfig
from analytics_core.collector.dashboard import dashboard_file, dashboard_page
from analytics_core.collector.health import healthz, readyz
from analytics_core.collector.ingest import ingest_batch, ingest_one, preflight
from analytics_core.collector.live import live, live_stream
from analytics_core.collector.problems import Problem, problem_response
from analytics_core.collector.prometheus import Counts, render
from analytics_core.collector.reads import metric_routes
from analytics_core.collector.runtime import Runtime, runtime_of
from analytics_core.events import event_json_schema

__all__ = ["create_app"]

logger = logging.getLogger("analytics_core.collector")


async def schema(request: Request) -> Response:
    """``GET /v1/schema``: the JSON Schema an item's ``event`` validates against."""
    return JSONResponse(request.app.state.event_schema)


async def metrics(request: Request) -> Response:
    """``GET /metrics``: Prometheus text."""
    runtime = runtime_of(request)
    text = render(runtime.counts, runtime.client.stats, runtime.config.max_queue_size)
    return PlainTextResponse(text, media_type="text/plain; version=0.0.4; charset=utf-8")


async def root(request: Request) -> Response:
    return RedirectResponse("/dashboard")


def create_app(config: CollectorConfig) -> Starlette:
    """The collector for ``config``. Serve it with uvicorn (``analytics-collector serve``)."""
    counts = Counts()
    routes = [
        Route("/v1/events", ingest_one, methods=["POST"]),
        Route("/v1/events/batch", ingest_batch, methods=["POST"]),
        Route("/v1/events", preflight, methods=["OPTIONS"], name="preflight_one"),
        Route("/v1/events/batch", preflight, methods=["OPTIONS"], name="preflight_batch"),
        Route("/v1/schema", schema, methods=["GET"]),
        *metric_routes(),
        Route("/v1/live", live, methods=["GET"]),
        Route("/v1/live/stream", live_stream, methods=["GET"]),
        Route("/dashboard", dashboard_page, methods=["GET"]),
        Route("/dashboard/{name}", dashboard_file, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/", root, methods=["GET"]),
    ]

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        runtime = Runtime.start(config, counts)
        app.state.runtime = runtime
        logger.info("analytics-collector: started, %d keys", len(config.keys))
        try:
            yield
        finally:
            drained = await runtime.close()
            logger.log(
                logging.INFO if drained else logging.WARNING,
                "analytics-collector: stopped; %s",
                "every queued event was written"
                if drained
                else f"gave up draining after {config.shutdown_timeout} s",
            )

    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={Problem: problem_response},
    )
    app.state.event_schema = event_json_schema()
    labels: dict[object, str] = {route.endpoint: route.path for route in routes}
    labels[preflight] = "/v1/events* (preflight)"
    app.add_middleware(AccessLog, counts=counts, routes=labels)
    return app
