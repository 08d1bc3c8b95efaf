"""The write endpoints: ``POST /v1/events`` (one item) and ``POST /v1/events/batch``.

A request is checked as a whole first (key and origin, then ``Content-Type``, size, JSON,
batch length), then item by item (``items.validate_item``): a bad item is reported and
costs only itself. The valid items are queued on the process's ``AnalyticsClient`` all
together or not at all: when its queue has no room for them the answer is 503 with
``Retry-After`` and nothing is queued, so a producer that retries loses nothing.

Statuses: 202 (the items were queued, or some were and others rejected: see ``results``),
422 (no item was valid), 400 (not JSON, or not the expected shape), 401, 403 (a read key, a
browser key from another origin, or an event of a family the key may not write: nothing is
queued), 413 (body or batch too large), 415 (not ``application/json``), 503 (queue full or
shutting down). Events are written within about ``flush_interval``; 202 means queued.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from analytics_core.collector.auth import cors_headers, require_writer
from analytics_core.collector.config import ApiKey
from analytics_core.collector.items import Item, validate_item
from analytics_core.collector.problems import Problem
from analytics_core.collector.runtime import Runtime, runtime_of
from analytics_core.events import family_of, new_event_id

__all__ = ["ingest_batch", "ingest_one", "preflight"]


async def preflight(request: Request) -> Response:
    """The CORS preflight of the write endpoints: allowed for browser keys' origins."""
    headers = cors_headers(request, runtime_of(request).config.keys)
    return Response(status_code=204 if headers else 403, headers=headers)


async def ingest_one(request: Request) -> Response:
    """One item as the body; 202 with its ``event_id``, or 422 with what is wrong."""
    runtime = runtime_of(request)
    cors = cors_headers(request, runtime.config.keys)
    try:
        key = require_writer(request, runtime.config.keys)
        body = await _json_body(request, runtime)
        document = _ingest(runtime, key, [body])
    except Problem as problem:
        problem.headers.update(cors)
        raise
    (result,) = document["results"]
    result.pop("index")
    return JSONResponse(result, status_code=202 if document["accepted"] else 422, headers=cors)


async def ingest_batch(request: Request) -> Response:
    """``{"events": [item, ...]}``; 202 with a result per item (422 when none was valid)."""
    runtime = runtime_of(request)
    cors = cors_headers(request, runtime.config.keys)
    try:
        key = require_writer(request, runtime.config.keys)
        body = await _json_body(request, runtime)
        items = body.get("events") if isinstance(body, dict) else None
        if not isinstance(items, list):
            raise Problem(400, 'the body must be an object {"events": [item, ...]}')
        limit = runtime.config.max_batch_events
        if len(items) > limit:
            raise Problem(413, f"a batch holds at most {limit} items; send them in smaller batches")
        document = _ingest(runtime, key, items)
    except Problem as problem:
        problem.headers.update(cors)
        raise
    status = 202 if document["accepted"] or not items else 422
    return JSONResponse(document, status_code=status, headers=cors)


async def _json_body(request: Request, runtime: Runtime) -> Any:
    """The decoded body: 415 unless JSON, 413 beyond the size limit, 400 unless it parses."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json":
        raise Problem(415, "send the body as JSON with 'Content-Type: application/json'")
    limit = runtime.config.max_body_bytes
    too_large = Problem(413, f"the body is larger than {limit} bytes; send smaller batches")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_large
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise Problem(400, "the body is not valid JSON (UTF-8)") from None


def _ingest(runtime: Runtime, key: ApiKey, raw_items: list[Any]) -> dict[str, Any]:
    """Validate every item, queue the valid ones together; the response document.

    Raises ``Problem`` 403 when an item's family is not the key's to write, and 503 when
    the client's queue cannot take the valid items (nothing is queued then).
    """
    counts = runtime.counts
    checked = [validate_item(raw) for raw in raw_items]
    forbidden = sorted(
        {
            (i, family_of(item.event).value)
            for i, item in enumerate(checked)
            if isinstance(item, Item) and family_of(item.event) not in key.families
        }
    )
    if forbidden:
        counts.items["forbidden"] += len(raw_items)
        raise Problem(
            403,
            f"key {key.name!r} may not send events of the families "
            f"{', '.join(sorted({family for _, family in forbidden}))}; nothing was queued",
            items=[index for index, _ in forbidden],
        )
    valid = [(i, item) for i, item in enumerate(checked) if isinstance(item, Item)]
    # One reading of the clock for the request: the time of items that bring none.
    received = datetime.now(UTC)
    event_ids = [item.event_id or new_event_id() for _, item in valid]
    if valid and not runtime.client.track_all(
        [item.event for _, item in valid],
        service=key.service,
        timestamps=[item.timestamp or received for _, item in valid],
        event_ids=event_ids,
    ):
        counts.items["refused"] += len(raw_items)
        retry_after = runtime.config.retry_after
        raise Problem(
            503,
            "the collector cannot queue the events now (its queue is full: the database is "
            "slow or away; or it is shutting down); nothing was queued, send the same "
            f"request again after {retry_after} s",
            headers={"Retry-After": str(retry_after)},
        )
    results: list[dict[str, Any]] = []
    accepted_ids = iter(event_ids)
    for index, item in enumerate(checked):
        if isinstance(item, Item):
            results.append(
                {"index": index, "status": "accepted", "event_id": str(next(accepted_ids))}
            )
        else:
            results.append({"index": index, "status": "rejected", "errors": item})
    counts.items["accepted"] += len(valid)
    counts.items["rejected"] += len(raw_items) - len(valid)
    return {
        "accepted": len(valid),
        "rejected": len(raw_items) - len(valid),
        "results": results,
    }
