"""``/healthz`` (the process answers) and ``/readyz`` (it can take events and answer reads).

Neither needs a key, so that orchestrators can probe them; neither says more than which
check failed (the reason goes to the log: an error can name hosts).
"""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from analytics_core.collector.problems import Problem
from analytics_core.collector.reads import read
from analytics_core.collector.runtime import runtime_of

__all__ = ["healthz", "readyz"]

logger = logging.getLogger("analytics_core.collector")


async def healthz(request: Request) -> Response:
    """200 while the process serves requests."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """200 when the database answers and a full batch fits in the queue; else 503 naming
    the checks that failed."""
    runtime = runtime_of(request)
    failing: list[str] = []
    try:
        await read(runtime, lambda conn: conn.execute("SELECT 1").fetchone())
    except Problem as problem:
        logger.warning("analytics-collector: not ready: %s", problem.message)
        failing.append("database")
    if runtime.queue_room() < runtime.config.max_batch_events:
        failing.append("queue")
    document = {"status": "not ready" if failing else "ready", "failing": failing}
    return JSONResponse(document, status_code=503 if failing else 200)
