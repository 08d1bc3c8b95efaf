"""The read endpoints: the read side's answers as JSON, behind a read key.

``GET /v1/metrics/<name>`` answers with the ``to_json()`` of the same typed result as
``analytics_core.queries`` (see ``METRICS`` for the names, their function and default
window); the live snapshot is ``live``'s. Windows and numbers come from the query
string (``windows``). 401/403 without a read key, 400 for bad parameters, 503 with
``Retry-After`` while the database cannot answer (unreachable, or not migrated).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final, TypeVar

import psycopg
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from analytics_core import queries as q
from analytics_core.collector.auth import require_reader
from analytics_core.collector.problems import Problem
from analytics_core.collector.readers import ReadersBusy
from analytics_core.collector.runtime import Runtime, runtime_of
from analytics_core.collector.windows import window_of
from analytics_core.connection import scrub
from analytics_core.errors import AnalyticsCoreError, ConnectionFailed, SchemaNotMigrated

__all__ = ["METRICS", "metric_routes", "read"]

_T = TypeVar("_T")
_Query = Callable[[psycopg.Connection[Any]], q.Result]
_Metric = Callable[[q.TimeWindow, Mapping[str, str]], _Query]


def _optional(params: Mapping[str, str], name: str) -> str | None:
    value = params.get(name)
    if value is not None and not 1 <= len(value) <= 200:
        raise Problem(400, f"{name} must be 1 to 200 characters")
    return value


#: name -> (default window in days, the query for a window and the query string).
METRICS: Final[Mapping[str, tuple[int, _Metric]]] = {
    "active-users": (30, lambda window, _: lambda conn: q.active_users(conn, window)),
    "api-latency": (
        2,
        lambda window, params: (
            lambda conn: q.api_latency(
                conn,
                window,
                service=_optional(params, "service"),
                route=_optional(params, "route"),
            )
        ),
    ),
    "tasks": (7, lambda window, _: lambda conn: q.task_stats(conn, window)),
    "integrations": (7, lambda window, _: lambda conn: q.integration_health(conn, window)),
    "auth": (7, lambda window, _: lambda conn: q.auth_activity(conn, window)),
    "cocoons": (7, lambda window, _: lambda conn: q.cocoon_activity(conn, window)),
    "errors": (
        2,
        lambda window, params: (
            lambda conn: q.error_counts(conn, window, service=_optional(params, "service"))
        ),
    ),
}


async def read(runtime: Runtime, query: Callable[[psycopg.Connection[Any]], _T]) -> _T:
    """``query``'s answer from a read connection; ``Problem`` 503 when the database cannot
    answer. Shared by the read endpoints and the live stream."""
    try:
        return await run_in_threadpool(runtime.readers.run, query)
    except SchemaNotMigrated as error:
        raise Problem(
            503, f"{error}", headers={"Retry-After": str(runtime.config.retry_after)}
        ) from None
    except (ConnectionFailed, ReadersBusy, psycopg.Error) as error:
        detail = error.sqlstate if isinstance(error, psycopg.Error) else None
        message = scrub(str(error).strip().splitlines()[0], runtime.config.database_url)
        raise Problem(
            503,
            f"the database cannot answer: {message}" + (f" [{detail}]" if detail else ""),
            headers={"Retry-After": str(runtime.config.retry_after)},
        ) from None
    except (AnalyticsCoreError, ValueError) as error:
        raise Problem(400, str(error)) from None


def _metric_endpoint(name: str) -> Callable[[Request], Any]:
    default_days, metric = METRICS[name]

    async def endpoint(request: Request) -> Response:
        runtime = runtime_of(request)
        require_reader(request, runtime.config.keys)
        params = request.query_params
        query = metric(window_of(params, default_days), params)
        return JSONResponse((await read(runtime, query)).to_json())

    endpoint.__name__ = f"metric_{name.replace('-', '_')}"
    return endpoint


def metric_routes() -> list[Route]:
    """``GET /v1/metrics/<name>`` for every name of ``METRICS``."""
    return [
        Route(f"/v1/metrics/{name}", _metric_endpoint(name), methods=["GET"]) for name in METRICS
    ]
