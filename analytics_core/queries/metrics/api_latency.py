"""API requests, error rates and latency per endpoint, read from ``API_LATENCY_HOURLY``.

That aggregate (``analytics_api_latency_hourly``) holds one row per UTC hour and endpoint
(service, method, route), with that hour's exact latency percentiles.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from analytics_core.queries._fetch import utc
from analytics_core.queries._ratio import ratio
from analytics_core.queries._results import Result
from analytics_core.queries._window import TimeWindow
from analytics_core.queries.metrics._buckets import read_buckets
from analytics_core.schema import API_LATENCY_HOURLY

__all__ = [
    "ApiLatencyReport",
    "EndpointHour",
    "EndpointSummary",
    "PercentileEstimate",
    "api_latency",
]


@dataclass(frozen=True, slots=True)
class EndpointHour(Result):
    """One endpoint's requests in one UTC hour. Every figure is exact, the percentiles too.

    - ``hour``: the start of the UTC hour.
    - ``service``, ``method``, ``route``: the endpoint; ``(unknown)`` for a method or route the
      payload lacked.
    - ``requests``: ``api_request`` events, at least 1.
    - ``server_errors``: requests with a status code of 500 or above; ``client_errors``: 400 to
      499.
    - ``error_rate``: ``server_errors / requests``, from 0 to 1 (never None here: an hour is
      listed only with requests).
    - ``timed_requests``: requests whose ``latency_ms`` was a valid number; every latency figure
      covers only these.
    - ``total_latency_ms``: their latencies summed, in milliseconds.
    - ``mean_latency_ms``, ``max_latency_ms``, ``p50_latency_ms``, ``p95_latency_ms``,
      ``p99_latency_ms``: in milliseconds; percentiles interpolate between the closest ranks
      (``percentile_cont``).

    Every latency figure is None when no request of the hour was timed.
    """

    hour: datetime
    service: str
    method: str
    route: str
    requests: int
    server_errors: int
    client_errors: int
    error_rate: float | None
    timed_requests: int
    total_latency_ms: float | None
    mean_latency_ms: float | None
    max_latency_ms: float | None
    p50_latency_ms: float | None
    p95_latency_ms: float | None
    p99_latency_ms: float | None


@dataclass(frozen=True, slots=True)
class PercentileEstimate(Result):
    """A percentile over a window wider than an hour, estimated from hourly percentiles.

    Percentiles of different hours cannot be combined exactly without the raw values.

    - ``weighted_mean``: the mean of the hourly percentiles weighted by each hour's timed
      requests, in milliseconds: an approximation that is exact when one hour holds every
      request and can be off in either direction otherwise.
    - ``max_hourly``: the largest hourly value, in milliseconds: an upper bound on the window's
      true percentile that is attained in the worst hour.

    Both are None when no request of the window was timed.
    """

    weighted_mean: float | None
    max_hourly: float | None


@dataclass(frozen=True, slots=True)
class EndpointSummary(Result):
    """One endpoint over the whole window. Counts, rates, the mean and the max are exact; the
    percentiles are estimates.

    - ``service``, ``method``, ``route``: the endpoint, as in :class:`EndpointHour`.
    - ``requests``, ``server_errors`` (5xx), ``client_errors`` (4xx): summed over the hours.
    - ``error_rate``: ``server_errors / requests``; ``client_error_rate``:
      ``client_errors / requests``; from 0 to 1 (never None here: an endpoint is listed only
      with requests).
    - ``timed_requests``: requests whose ``latency_ms`` was a valid number.
    - ``mean_latency_ms``: their latencies summed over ``timed_requests``, in milliseconds.
    - ``max_latency_ms``: the slowest timed request, in milliseconds.
    - ``p50_latency_ms``, ``p95_latency_ms``, ``p99_latency_ms``: see
      :class:`PercentileEstimate`.

    ``mean_latency_ms`` and ``max_latency_ms`` are None when no request was timed.
    """

    service: str
    method: str
    route: str
    requests: int
    server_errors: int
    client_errors: int
    error_rate: float | None
    client_error_rate: float | None
    timed_requests: int
    mean_latency_ms: float | None
    max_latency_ms: float | None
    p50_latency_ms: PercentileEstimate
    p95_latency_ms: PercentileEstimate
    p99_latency_ms: PercentileEstimate


@dataclass(frozen=True, slots=True)
class ApiLatencyReport(Result):
    """API requests, error rates and latency over a window.

    - ``window``: the whole UTC hours answered for: the requested window widened to whole hours.
    - ``hourly``: every (hour, endpoint) with requests, ordered by hour, then service, route and
      method.
    - ``endpoints``: one summary per endpoint, most requests first (ties by service, route,
      method).
    """

    window: TimeWindow
    hourly: tuple[EndpointHour, ...]
    endpoints: tuple[EndpointSummary, ...]


def api_latency(
    conn: psycopg.Connection[Any],
    window: TimeWindow,
    *,
    service: str | None = None,
    route: str | None = None,
) -> ApiLatencyReport:
    """Requests, error rates and latency per endpoint (service, method, route) and UTC hour.

    Reads ``analytics_api_latency_hourly``. Returns the hourly series, whose p50/p95/p99 are
    exact, and a summary per endpoint over the window whose counts, error rates, mean and max
    are exact but whose percentiles are approximations: the request-weighted mean of the
    hourly percentiles, and the maximum hourly percentile (see :class:`PercentileEstimate`).
    ``service`` and ``route`` narrow the answer to an exact match. Requests whose payload
    lacked a method or route appear under ``(unknown)``.
    """
    covered, rows = read_buckets(
        conn,
        API_LATENCY_HOURLY,
        window,
        """
        SELECT {t}, service, method, route, request_count, server_error_count,
               client_error_count, timed_count, latency_sum_ms, latency_max_ms,
               latency_p50_ms, latency_p95_ms, latency_p99_ms
        FROM {view}
        WHERE {t} >= %(start)s AND {t} < %(end)s
          AND (%(service)s::text IS NULL OR service = %(service)s::text)
          AND (%(route)s::text IS NULL OR route = %(route)s::text)
        ORDER BY {t}, service, route, method
        """,
        {"service": service, "route": route},
    )
    hourly = tuple(
        EndpointHour(
            hour=utc(hour),
            service=svc,
            method=method,
            route=path,
            requests=requests,
            server_errors=server_errors,
            client_errors=client_errors,
            error_rate=ratio(server_errors, requests),
            timed_requests=timed,
            total_latency_ms=latency_sum,
            mean_latency_ms=ratio(latency_sum, timed),
            max_latency_ms=latency_max,
            p50_latency_ms=p50,
            p95_latency_ms=p95,
            p99_latency_ms=p99,
        )
        for (
            hour,
            svc,
            method,
            path,
            requests,
            server_errors,
            client_errors,
            timed,
            latency_sum,
            latency_max,
            p50,
            p95,
            p99,
        ) in rows
    )
    by_endpoint: dict[tuple[str, str, str], list[EndpointHour]] = {}
    for row in hourly:
        by_endpoint.setdefault((row.service, row.method, row.route), []).append(row)
    endpoints = sorted(
        (_summarise_endpoint(key, hours) for key, hours in by_endpoint.items()),
        key=lambda s: (-s.requests, s.service, s.route, s.method),
    )
    return ApiLatencyReport(covered, hourly, tuple(endpoints))


def _estimate(hours: list[EndpointHour], attribute: str) -> PercentileEstimate:
    timed = [(getattr(hour, attribute), hour.timed_requests) for hour in hours]
    known = [(value, weight) for value, weight in timed if value is not None and weight > 0]
    weight = sum(w for _, w in known)
    if weight == 0:
        return PercentileEstimate(None, None)
    return PercentileEstimate(
        weighted_mean=sum(value * w for value, w in known) / weight,
        max_hourly=max(value for value, _ in known),
    )


def _summarise_endpoint(key: tuple[str, str, str], hours: list[EndpointHour]) -> EndpointSummary:
    requests = sum(h.requests for h in hours)
    server_errors = sum(h.server_errors for h in hours)
    client_errors = sum(h.client_errors for h in hours)
    timed = sum(h.timed_requests for h in hours)
    latency_sum = sum(h.total_latency_ms for h in hours if h.total_latency_ms is not None)
    maxima = [h.max_latency_ms for h in hours if h.max_latency_ms is not None]
    return EndpointSummary(
        service=key[0],
        method=key[1],
        route=key[2],
        requests=requests,
        server_errors=server_errors,
        client_errors=client_errors,
        error_rate=ratio(server_errors, requests),
        client_error_rate=ratio(client_errors, requests),
        timed_requests=timed,
        mean_latency_ms=ratio(latency_sum, timed),
        max_latency_ms=max(maxima) if maxima else None,
        p50_latency_ms=_estimate(hours, "p50_latency_ms"),
        p95_latency_ms=_estimate(hours, "p95_latency_ms"),
        p99_latency_ms=_estimate(hours, "p99_latency_ms"),
    )
