"""How ``analytics-report`` shows each query result to a person: Rich tables and charts.

Pure: each function turns a result into a renderable and touches no database or console.
All times are shown in UTC.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from analytics_core import queries as q
from analytics_core.cli._charts import bar, sparkline

__all__ = [
    "active_users_view",
    "api_latency_view",
    "auth_view",
    "cocoons_view",
    "entity_view",
    "errors_view",
    "integrations_view",
    "leaderboard_view",
    "live_view",
    "tasks_view",
]


def _when(value: datetime | None) -> str:
    return "" if value is None else f"{value:%Y-%m-%d %H:%M:%S}"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 1_000:
        return f"{value:.1f} ms"
    if value < 60_000:
        return f"{value / 1_000:.2f} s"
    return f"{value / 60_000:.1f} min"


def _span(milliseconds: float) -> str:
    minutes = round(milliseconds / 60_000)
    return f"{minutes // 60}h{minutes % 60:02d}m"


def _heading(name: str, window: q.TimeWindow) -> Text:
    return Text.assemble(
        (name, "bold"), f" · {window.start:%Y-%m-%d %H:%M} → {window.end:%Y-%m-%d %H:%M} UTC"
    )


def _table(*columns: str, text: tuple[str, ...] = (), title: str | None = None) -> Table:
    """A table whose columns are right-aligned numbers, except those named in ``text``."""
    table = Table(title=title)
    for column in columns:
        table.add_column(column, justify="left" if column in text else "right")
    return table


def _trend(label: str, values: list[float | None], combine: str = "max") -> Text:
    line = sparkline(values, combine=sum if combine == "sum" else max)
    return Text.assemble((f"{label:>10} ", "bold"), (line, "cyan"))


def active_users_view(series: q.ActiveUsersSeries) -> RenderableType:
    table = _table("day", "DAU", "WAU", "MAU", text=("day",))
    for day in series.days:
        table.add_row(day.day.isoformat(), str(day.dau), str(day.wau), str(day.mau))
    return Group(
        _heading("active users", series.window),
        _trend("DAU", [d.dau for d in series.days]),
        _trend("WAU", [d.wau for d in series.days]),
        _trend("MAU", [d.mau for d in series.days]),
        table,
    )


def api_latency_view(report: q.ApiLatencyReport, hourly: bool) -> RenderableType:
    hours = int(report.window.duration / timedelta(hours=1))
    table = _table(
        "service",
        "method",
        "route",
        "requests",
        "5xx",
        "4xx",
        "mean",
        "p50 ≈",
        "p95 ≈",
        "p95 max",
        "p99 ≈",
        "requests per hour",
        text=("service", "method", "route", "requests per hour"),
    )
    for endpoint in report.endpoints:
        per_hour: list[float | None] = [0.0] * hours
        for row in report.hourly:
            if (row.service, row.method, row.route) == (
                endpoint.service,
                endpoint.method,
                endpoint.route,
            ):
                per_hour[int((row.hour - report.window.start) / timedelta(hours=1))] = row.requests
        table.add_row(
            endpoint.service,
            endpoint.method,
            endpoint.route,
            str(endpoint.requests),
            _percent(endpoint.error_rate),
            _percent(endpoint.client_error_rate),
            _ms(endpoint.mean_latency_ms),
            _ms(endpoint.p50_latency_ms.weighted_mean),
            _ms(endpoint.p95_latency_ms.weighted_mean),
            _ms(endpoint.p95_latency_ms.max_hourly),
            _ms(endpoint.p99_latency_ms.weighted_mean),
            Text(sparkline(per_hour, width=24, combine=sum), style="cyan"),
        )
    parts: list[RenderableType] = [
        _heading("API requests", report.window),
        table,
        Text(
            "≈ percentiles over more than an hour are request-weighted means of the exact "
            "hourly percentiles; 'p95 max' is the worst hour's p95.",
            style="dim",
        ),
    ]
    if hourly:
        detail = _table(
            "hour",
            "service",
            "method",
            "route",
            "requests",
            "5xx",
            "p50",
            "p95",
            "p99",
            text=("hour", "service", "method", "route"),
            title="per hour (exact percentiles)",
        )
        for row in report.hourly:
            detail.add_row(
                f"{row.hour:%Y-%m-%d %H:00}",
                row.service,
                row.method,
                row.route,
                str(row.requests),
                str(row.server_errors),
                _ms(row.p50_latency_ms),
                _ms(row.p95_latency_ms),
                _ms(row.p99_latency_ms),
            )
        parts.append(detail)
    return Group(*parts)


def tasks_view(report: q.TaskReport) -> RenderableType:
    summary = Text(
        f"created {report.created} · started {report.started} · completed {report.completed}"
        f" · failed {report.failed} · cancelled {report.cancelled} · success rate "
        f"{_percent(report.success_rate)} · mean duration {_ms(report.mean_duration_ms)}"
        f" · longest {_ms(report.max_duration_ms)}"
    )
    table = _table(
        "day",
        "created",
        "started",
        "completed",
        "failed",
        "cancelled",
        "success",
        "mean",
        "p50",
        "p95",
        text=("day",),
    )
    for day in report.days:
        table.add_row(
            day.day.isoformat(),
            str(day.created),
            str(day.started),
            str(day.completed),
            str(day.failed),
            str(day.cancelled),
            _percent(day.success_rate),
            _ms(day.mean_duration_ms),
            _ms(day.p50_duration_ms),
            _ms(day.p95_duration_ms),
        )
    return Group(
        _heading("tasks", report.window),
        summary,
        _trend("completed", [d.completed for d in report.days]),
        _trend("failed", [d.failed for d in report.days]),
        table,
    )


def integrations_view(report: q.IntegrationHealthReport) -> RenderableType:
    table = _table(
        "provider",
        "used",
        "errors",
        "error rate",
        "",
        "oauth ok",
        "oauth failed",
        "last success",
        "last failure",
        text=("provider", "", "last success", "last failure"),
    )
    for p in report.providers:
        table.add_row(
            p.provider,
            str(p.used),
            str(p.errors),
            _percent(p.error_rate),
            Text(bar(p.error_rate or 0.0, 1.0, width=10), style="red"),
            str(p.oauth_succeeded),
            str(p.oauth_failed),
            _when(p.last_success_at),
            _when(p.last_failure_at),
        )
    return Group(_heading("integrations", report.window), table)


def auth_view(report: q.AuthReport) -> RenderableType:
    table = _table(
        "event type",
        "method",
        "attempts",
        "failures",
        "failure rate",
        "",
        text=("event type", "method", ""),
    )
    for row in report.breakdown:
        table.add_row(
            row.event_type,
            row.method,
            str(row.attempts),
            str(row.failures),
            _percent(row.failure_rate),
            Text(bar(row.failure_rate or 0.0, 1.0, width=10), style="red"),
        )
    return Group(
        _heading("auth", report.window),
        Text(
            f"{report.attempts} attempts · {report.failures} failures · failure rate "
            f"{_percent(report.failure_rate)}"
        ),
        _trend("failures", [d.count for d in report.failures_per_day]),
        table,
    )


def cocoons_view(report: q.CocoonReport, limit: int) -> RenderableType:
    table = _table(
        "cocoon",
        "events",
        "sessions",
        "connected",
        "task events",
        "last seen",
        text=("cocoon", "last seen"),
    )
    for c in report.cocoons[:limit]:
        table.add_row(
            str(c.cocoon_id),
            str(c.events),
            str(c.sessions),
            _span(c.connected_ms),
            str(c.task_events),
            _when(c.last_seen_at),
        )
    more = len(report.cocoons) - limit
    return Group(
        _heading("cocoons", report.window),
        Text(
            f"{report.connected_cocoons} connected cocoon(s) · {report.active_cocoons} "
            f"active · {report.sessions} session(s) · connected {_span(report.connected_ms)}"
        ),
        table,
        *([Text(f"… and {more} more (--limit)", style="dim")] if more > 0 else []),
    )


def errors_view(report: q.ErrorReport) -> RenderableType:
    table = _table(
        "service",
        "event type",
        "kind",
        "count",
        "",
        "last seen",
        text=("service", "event type", "kind", "", "last seen"),
    )
    top = max((t.count for t in report.totals), default=0)
    for t in report.totals:
        table.add_row(
            t.service,
            t.event_type,
            t.error_kind,
            str(t.count),
            Text(bar(t.count, top), style="red"),
            _when(t.last_seen_at),
        )
    return Group(
        _heading("errors", report.window),
        Text(f"{report.total} error(s)"),
        _trend("per hour", [h.count for h in report.per_hour], combine="sum"),
        table,
    )


def entity_view(
    summary: q.EntitySummary,
    daily: tuple[q.DayCount, ...],
    hours: q.HourOfDayProfile,
    log: tuple[q.EventRecord, ...],
) -> RenderableType:
    entity = summary.entity
    last = summary.last_event
    facts = Table.grid(padding=(0, 2))
    facts.add_row("entity", f"{entity.kind} {entity.id}")
    facts.add_row("events", str(summary.total_events))
    facts.add_row(
        "first event",
        "-"
        if summary.first_event is None
        else f"{summary.first_event.event_type} at {_when(summary.first_event.timestamp)}",
    )
    facts.add_row(
        "last event", "-" if last is None else f"{last.event_type} at {_when(last.timestamp)}"
    )
    facts.add_row(
        "days since last",
        "-" if summary.days_since_last_activity is None else str(summary.days_since_last_activity),
    )
    facts.add_row(f"inactive ≥ {summary.inactive_days} days", "yes" if summary.inactive else "no")
    facts.add_row(
        "most / least frequent", f"{summary.most_frequent or '-'} / {summary.least_frequent or '-'}"
    )
    facts.add_row(
        "peak hour (UTC)",
        "-" if hours.peak_hour is None else f"{hours.peak_hour:02d}:00 ({hours.peak_count} events)",
    )

    types = _table(
        "event type", "count", "share", "", text=("event type", ""), title="events by type"
    )
    for c in summary.event_types:
        types.add_row(
            c.event_type,
            str(c.count),
            _percent(c.count / summary.total_events),
            Text(bar(c.count, summary.event_types[0].count), style="cyan"),
        )

    recent = Table(title="recent activity")
    for column in ("time (UTC)", "event type", "service", "payload"):
        recent.add_column(column, overflow="fold")
    for event in log:
        payload = ", ".join(f"{k}={v}" for k, v in event.data.items() if v is not None)
        recent.add_row(_when(event.timestamp), event.event_type, event.service, payload)
    return Group(
        facts,
        _trend(f"{len(daily)} days", [d.count for d in daily]),
        _trend("by hour", list(hours.counts)),
        types,
        recent,
    )


def leaderboard_view(
    kind: q.EntityKind, window: q.TimeWindow, entries: tuple[q.LeaderboardEntry, ...]
) -> RenderableType:
    table = _table("#", kind.value, "events", "", "last event", text=(kind.value, "", "last event"))
    top = entries[0].events if entries else 0
    for e in entries:
        table.add_row(
            str(e.rank),
            str(e.entity.id),
            str(e.events),
            Text(bar(e.events, top), style="cyan"),
            _when(e.last_event_at),
        )
    return Group(_heading(f"most active {kind.value}s", window), table)


def live_view(snapshot: q.LiveSnapshot) -> RenderableType:
    top = snapshot.top_event_types.event_types
    types = _table(
        "event type",
        "count",
        "",
        text=("event type", ""),
        title=f"top event types, last {snapshot.minutes} min",
    )
    for c in top:
        types.add_row(c.event_type, str(c.count), Text(bar(c.count, top[0].count), style="cyan"))
    recent = Table(title="most recent events")
    for column in ("time (UTC)", "event type", "service", "user"):
        recent.add_column(column)
    for event in snapshot.recent_events:
        recent.add_row(
            _when(event.timestamp),
            event.event_type,
            event.service,
            "" if event.user_id is None else str(event.user_id),
        )
    return Group(
        Text.assemble(
            ("live", "bold"),
            f" as of {_when(snapshot.as_of)} UTC · ",
            (str(snapshot.active_users.count), "bold green"),
            f" active user(s) in {snapshot.minutes} min · ",
            (str(snapshot.events_last_minute.count), "bold green"),
            " event(s) in the last minute",
        ),
        types,
        recent,
    )
