"""The live snapshot: ``GET /v1/live`` once, ``GET /v1/live/stream`` as Server-Sent Events.

The stream (``text/event-stream``) starts with ``retry: 3000`` (how long a browser's
``EventSource`` waits before reconnecting), then every ``live_interval`` seconds sends::

    id: 42
    event: snapshot
    data: {"as_of": "...", "active_users": {...}, "events_last_minute": {...}, ...}

While the database cannot answer it sends ``event: outage`` instead (``{"error": ...,
"since": ...}``) and keeps trying; the next ``snapshot`` says it is back. A comment line
(``: heartbeat``) goes out whenever nothing else did for ``heartbeat_interval``, so that
proxies keep the connection. Ids count snapshots and outages; a reconnecting client's
``Last-Event-ID`` continues the count, and it gets the current snapshot at once: each
snapshot supersedes the ones before, so there is nothing to replay.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Final

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from analytics_core import queries as q
from analytics_core.collector.auth import require_reader
from analytics_core.collector.problems import Problem
from analytics_core.collector.reads import read
from analytics_core.collector.runtime import Runtime, runtime_of
from analytics_core.collector.windows import bounded

__all__ = ["LIVE_LIMIT_MAX", "LIVE_MINUTES_MAX", "RETRY_MS", "live", "live_stream"]

#: A week of minutes and a hundred events: the bounds of the live parameters.
LIVE_MINUTES_MAX: Final = 10_080
LIVE_LIMIT_MAX: Final = 100
#: What the stream tells browsers to wait before reconnecting.
RETRY_MS: Final = 3_000
_MAX_EVENT_ID: Final = 2**53


def _parameters(request: Request) -> tuple[int, int]:
    params = request.query_params
    return (
        bounded(params, "minutes", 5, LIVE_MINUTES_MAX),
        bounded(params, "limit", 10, LIVE_LIMIT_MAX),
    )


async def _snapshot(runtime: Runtime, minutes: int, limit: int) -> q.LiveSnapshot:
    async def fetch() -> q.LiveSnapshot:
        return await read(runtime, lambda conn: q.live_snapshot(conn, minutes, limit))

    return await runtime.live.snapshot(minutes, limit, fetch)


async def live(request: Request) -> Response:
    """``GET /v1/live?minutes=5&limit=10``: one ``LiveSnapshot`` as JSON."""
    runtime = runtime_of(request)
    require_reader(request, runtime.config.keys)
    minutes, limit = _parameters(request)
    return JSONResponse((await _snapshot(runtime, minutes, limit)).to_json())


async def live_stream(request: Request) -> Response:
    """``GET /v1/live/stream?minutes=5&limit=10``: snapshots as Server-Sent Events."""
    runtime = runtime_of(request)
    require_reader(request, runtime.config.keys)
    minutes, limit = _parameters(request)
    last = request.headers.get("last-event-id", "")
    first_id = int(last) + 1 if last.isdigit() and int(last) < _MAX_EVENT_ID else 1
    return StreamingResponse(
        _events(runtime, minutes, limit, first_id),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _message(event_id: int, kind: str, document: object) -> str:
    return f"id: {event_id}\nevent: {kind}\ndata: {json.dumps(document)}\n\n"


async def _events(runtime: Runtime, minutes: int, limit: int, event_id: int) -> AsyncIterator[str]:
    config = runtime.config
    yield f"retry: {RETRY_MS}\n\n"
    outage_since: datetime | None = None
    while True:
        started = time.monotonic()
        fetch = asyncio.ensure_future(_snapshot(runtime, minutes, limit))
        try:
            # A slow answer must not silence the stream: heartbeats while it is awaited.
            while not fetch.done():
                done, _ = await asyncio.wait({fetch}, timeout=config.heartbeat_interval)
                if not done:
                    yield ": heartbeat\n\n"
            snapshot = fetch.result()
        except Problem as problem:
            outage_since = outage_since or datetime.now(UTC)
            document = {"error": problem.message, "since": outage_since.isoformat()}
            yield _message(event_id, "outage", document)
        else:
            outage_since = None
            yield _message(event_id, "snapshot", snapshot.to_json())
        finally:
            fetch.cancel()
        event_id += 1
        pause = config.live_interval - (time.monotonic() - started)
        while pause > 0:
            step = min(pause, config.heartbeat_interval)
            await asyncio.sleep(step)
            pause -= step
            if pause > 0:
                yield ": heartbeat\n\n"
