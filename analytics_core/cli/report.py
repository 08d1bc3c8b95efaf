"""``analytics-report``: product metrics, entity behaviour and live activity in a terminal.

Thin: parse options, call :mod:`analytics_core.queries`, render (Rich for people, ``--json``
for machines). Exit codes are part of the interface (see ``EXIT_CODES``).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from typing import Annotated, Any, TypeVar

import psycopg
import typer
from rich.console import RenderableType
from rich.live import Live

from analytics_core import queries as q
from analytics_core.cli import _report_views as views
from analytics_core.cli._command_line import (
    EXIT_ERROR,
    AsJson,
    DatabaseUrl,
    fail,
    out,
    print_json,
    program,
    resolve_url,
)
from analytics_core.connection import connect, read_transaction, scrub
from analytics_core.errors import AnalyticsCoreError

EXIT_OK = 0

EXIT_CODES = f"""
Exit codes: {EXIT_OK} success; {EXIT_ERROR} bad input (options, dates, ids), no database URL,
cannot connect, or the database could not answer (for example, schema not migrated).
"""

app = program(
    "analytics-report",
    "Product metrics, entity behaviour and live activity from the analytics schema.\n\n"
    "The database comes from --database-url, else DATABASE_URL, else PLATFORM_DATABASE_URL.\n"
    "All times are UTC; a window covers whole aggregate buckets (UTC days or hours).\n"
    + EXIT_CODES,
)


#: Bounds of the options: ten years of days, a week of minutes, a thousand rows. Beyond them
#: a report answers nothing useful and can take gigabytes (a 500,000-day series).
MAX_DAYS = 3_660
MAX_MINUTES = 10_080
MAX_LIMIT = 1_000

Since = Annotated[
    str | None,
    typer.Option(
        "--since",
        help="Window start: an ISO date (midnight UTC) or datetime (UTC unless it has an offset).",
        show_default=False,
    ),
]
Until = Annotated[
    str | None,
    typer.Option(
        "--until",
        help="Window end: an ISO date (that day included) or datetime (exclusive). Default: now.",
        show_default=False,
    ),
]
Days = Annotated[
    int | None,
    typer.Option(
        "--days",
        min=1,
        max=MAX_DAYS,
        help="The last N UTC days, today included (instead of --since/--until).",
        show_default=False,
    ),
]
Limit = Annotated[int, typer.Option("--limit", min=1, max=MAX_LIMIT, help="How many rows to show.")]

_T = TypeVar("_T")


# --- Parsing -----------------------------------------------------------------------------------


def _instant(text: str, option: str, *, end: bool) -> datetime:
    """An ISO date or datetime from the command line, in UTC.

    A date means the start of that UTC day, or for an end the start of the next day, so
    that ``--until 2024-01-31`` includes the 31st. A datetime without an offset is UTC.
    """
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime.combine(day + timedelta(days=1 if end else 0), clock(), UTC)
        moment = datetime.fromisoformat(text)
    except ValueError:
        fail(
            f"{option} {text!r} is not an ISO date or datetime (e.g. 2024-01-31 or "
            "2024-01-31T12:00:00Z)"
        )
    except OverflowError:
        fail(f"{option} {text!r} is out of range")
    return moment.replace(tzinfo=UTC) if moment.utcoffset() is None else moment.astimezone(UTC)


def _window(
    since: str | None, until: str | None, days: int | None, default_days: int
) -> q.TimeWindow:
    """The window the options describe; --days and --since/--until exclude each other.

    Neither: the last ``default_days`` whole UTC days, today included. --since alone ends
    now; --until alone starts ``default_days`` before it.
    """
    if days is not None and (since or until):
        fail("give either --days or --since/--until, not both")
    now = datetime.now(UTC)
    tomorrow = datetime.combine(now.date() + timedelta(days=1), clock(), UTC)
    try:
        if since is None and until is None:
            length = timedelta(days=days or default_days)
            return q.TimeWindow(tomorrow - length, tomorrow)
        end = _instant(until, "--until", end=True) if until else now
        start = (
            _instant(since, "--since", end=False) if since else end - timedelta(days=default_days)
        )
        if end - start > timedelta(days=MAX_DAYS):
            fail(f"the window is longer than {MAX_DAYS} days; narrow --since/--until")
        return q.TimeWindow(start, end)
    except ValueError as error:
        fail(str(error))
    except OverflowError:
        fail("the window reaches beyond the dates a report can represent (years 1 to 9999)")


# --- Running -----------------------------------------------------------------------------------


@contextmanager
def _connection(explicit_url: str | None) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit connection whose reads go through :func:`_read`; errors become a message
    and exit 2. Autocommit, so that each read sees the newest events (``--watch`` runs long).
    """
    url = resolve_url(explicit_url)
    try:
        with connect(url, application_name="analytics-report") as conn:
            yield conn
    except (AnalyticsCoreError, ValueError) as error:
        fail(scrub(str(error), url))
    except OverflowError:
        fail("the window reaches beyond the dates a report can represent (years 1 to 9999)")
    except psycopg.Error as error:
        fail(f"the query failed: [{error.sqlstate or '?????'}] {scrub(str(error).strip(), url)}")


def _run(url: str | None, query: Callable[[psycopg.Connection[Any]], _T]) -> _T:
    with _connection(url) as conn:
        return _read(conn, query)


def _read(conn: psycopg.Connection[Any], query: Callable[[psycopg.Connection[Any]], _T]) -> _T:
    """``query`` in one read-only transaction with bounded statements (see
    ``connection.read_transaction``): nothing outlasts it on a pooled server session."""
    with read_transaction(conn):
        return query(conn)


def _emit(result: q.Result, as_json: bool, view: Callable[[], RenderableType]) -> None:
    if as_json:
        print_json(result.to_json())
    else:
        out.print(view())


# --- Product metrics ---------------------------------------------------------------------------


@app.command()
def dau(
    *,
    database_url: DatabaseUrl = None,
    since: Since = None,
    until: Until = None,
    days: Days = None,
    as_json: AsJson = False,
) -> None:
    """Daily, weekly and monthly active users per UTC day (default: last 30 days)."""
    window = _window(since, until, days, 30)
    series = _run(database_url, lambda conn: q.active_users(conn, window))
    _emit(series, as_json, lambda: views.active_users_view(series))


@app.command()
def latency(
    *,
    database_url: DatabaseUrl = None,
    since: Since = None,
    until: Until = None,
    days: Days = None,
    service: Annotated[str | None, typer.Option(help="Only this service.")] = None,
    route: Annotated[str | None, typer.Option(help="Only this route template.")] = None,
    hourly: Annotated[bool, typer.Option("--hourly", help="Also show every hour.")] = False,
    as_json: AsJson = False,
) -> None:
    """API requests, error rates and latency percentiles per endpoint and UTC hour
    (default: yesterday and today).

    Percentiles over more than an hour are approximations: the request-weighted mean of
    the exact hourly percentiles, and the worst hour's value."""
    window = _window(since, until, days, 2)
    report = _run(
        database_url, lambda conn: q.api_latency(conn, window, service=service, route=route)
    )
    _emit(report, as_json, lambda: views.api_latency_view(report, hourly))


@app.command()
def tasks(
    *,
    database_url: DatabaseUrl = None,
    since: Since = None,
    until: Until = None,
    days: Days = None,
    as_json: AsJson = False,
) -> None:
    """Task outcomes, success rate and durations per UTC day (default: last 7 days)."""
    window = _window(since, until, days, 7)
    report = _run(database_url, lambda conn: q.task_stats(conn, window))
    _emit(report, as_json, lambda: views.tasks_view(report))


@app.command()
def integrations(
    *,
    database_url: DatabaseUrl = None,
    since: Since = None,
    until: Until = None,
    days: Days = None,
    as_json: AsJson = False,
) -> None:
    """Usage, errors and last success and failure per integration provider (default: 7 days)."""
    window = _window(since, until, days, 7)
    report = _run(database_url, lambda conn: q.integration_health(conn, window))
    _emit(report, as_json, lambda: views.integrations_view(report))


@app.command()
def auth(
    *,
    database_url: DatabaseUrl = None,
    since: Since = None,
    until: Until = None,
    days: Days = None,
    as_json: AsJson = False,
) -> None:
    """Auth attempts and failure rates per event type and method (default: 7 days)."""
    window = _window(since, until, days, 7)
    report = _run(database_url, lambda conn: q.auth_activity(conn, window))
    _emit(report, as_json, lambda: views.auth_view(report))


@app.command()
def cocoons(
    *,
    database_url: DatabaseUrl = None,
    since: Since = None,
    until: Until = None,
    days: Days = None,
    limit: Limit = 20,
    as_json: AsJson = False,
) -> None:
    """Connected cocoons, sessions, connected time and last seen (default: 7 days).

    --limit bounds the table; --json always has every cocoon."""
    window = _window(since, until, days, 7)
    report = _run(database_url, lambda conn: q.cocoon_activity(conn, window))
    _emit(report, as_json, lambda: views.cocoons_view(report, limit))


@app.command()
def errors(
    *,
    database_url: DatabaseUrl = None,
    since: Since = None,
    until: Until = None,
    days: Days = None,
    service: Annotated[str | None, typer.Option(help="Only this service.")] = None,
    as_json: AsJson = False,
) -> None:
    """Errors by service and kind, with errors per UTC hour (default: yesterday and today)."""
    window = _window(since, until, days, 2)
    report = _run(database_url, lambda conn: q.error_counts(conn, window, service=service))
    _emit(report, as_json, lambda: views.errors_view(report))


# --- Entities ----------------------------------------------------------------------------------


@app.command()
def entity(
    kind: Annotated[q.EntityKind, typer.Argument(help="user, project or cocoon.")],
    entity_id: Annotated[str, typer.Argument(metavar="ID", help="The entity's UUID.")],
    *,
    database_url: DatabaseUrl = None,
    days: Annotated[
        int, typer.Option("--days", min=1, max=MAX_DAYS, help="Days of the daily chart.")
    ] = 30,
    inactive_days: Annotated[
        int,
        typer.Option("--inactive-days", min=1, max=MAX_DAYS, help="Inactive after this many days."),
    ] = 30,
    limit: Annotated[
        int, typer.Option("--limit", min=1, max=MAX_LIMIT, help="Recent events to show.")
    ] = 10,
    as_json: AsJson = False,
) -> None:
    """What one user, project or cocoon has done: totals, event types, first and last
    events, recency, events per day, peak hour (UTC) and recent activity."""
    try:
        target = q.Entity.parse(kind, entity_id)
    except ValueError as error:
        fail(str(error))

    def read(conn: psycopg.Connection[Any]) -> tuple[Any, ...]:
        summary = q.entity_summary(conn, target, inactive_days=inactive_days)
        return (
            summary,
            q.daily_event_counts(conn, target, days, now=summary.as_of),
            q.peak_hour(conn, target),
            q.activity_log(conn, target, limit),
        )

    summary, daily, hours, log = _run(database_url, read)
    if as_json:
        print_json(
            {
                **summary.to_json(),
                "daily": [d.to_json() for d in daily],
                "hours": hours.to_json(),
                "recent": [e.to_json() for e in log],
            }
        )
    else:
        out.print(views.entity_view(summary, daily, hours, log))


@app.command()
def leaderboard(
    kind: Annotated[q.EntityKind, typer.Argument(help="user, project or cocoon.")],
    *,
    database_url: DatabaseUrl = None,
    since: Since = None,
    until: Until = None,
    days: Days = None,
    limit: Limit = 10,
    as_json: AsJson = False,
) -> None:
    """The most active users, projects or cocoons over the window (default: 7 days)."""
    window = _window(since, until, days, 7)
    entries = _run(database_url, lambda conn: q.leaderboard(conn, kind, window, limit))
    if as_json:
        print_json(
            {
                "kind": kind.value,
                "window": window.to_json(),
                "entries": [e.to_json() for e in entries],
            }
        )
    else:
        out.print(views.leaderboard_view(kind, window, entries))


# --- Live --------------------------------------------------------------------------------------


@app.command()
def live(
    *,
    database_url: DatabaseUrl = None,
    minutes: Annotated[
        int,
        typer.Option(
            "--minutes", min=1, max=MAX_MINUTES, help="Window for active users and top types."
        ),
    ] = 5,
    limit: Limit = 10,
    watch: Annotated[bool, typer.Option("--watch", help="Keep refreshing in place.")] = False,
    interval: Annotated[
        float,
        typer.Option("--interval", min=0.1, max=3_600.0, help="Seconds between refreshes."),
    ] = 2.0,
    iterations: Annotated[
        int | None,
        typer.Option(
            "--iterations",
            min=1,
            help="Stop after this many refreshes (default with --watch: until Ctrl-C).",
            show_default=False,
        ),
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Active users, events in the last minute, top event types and the latest events.

    With --watch, refreshes every --interval seconds (with --json: one JSON document per
    line per refresh)."""
    rounds = (iterations or sys.maxsize) if watch else 1

    def snapshot_of(conn: psycopg.Connection[Any]) -> q.LiveSnapshot:
        return q.live_snapshot(conn, minutes, limit)

    with _connection(database_url) as conn:
        snapshot = _read(conn, snapshot_of)
        if not watch:
            _emit(snapshot, as_json, lambda: views.live_view(snapshot))
            return
        try:
            if as_json:
                _print_json_line(snapshot.to_json())
                for _ in range(rounds - 1):
                    time.sleep(interval)
                    _print_json_line(_read(conn, snapshot_of).to_json())
                return
            with Live(views.live_view(snapshot), console=out, auto_refresh=False) as screen:
                for _ in range(rounds - 1):
                    time.sleep(interval)
                    screen.update(views.live_view(_read(conn, snapshot_of)), refresh=True)
        except KeyboardInterrupt:
            # Ctrl-C is how an unbounded --watch ends: not an error.
            pass


def _print_json_line(document: Any) -> None:
    # One line per document, flushed, so that a consumer can read the stream as it comes.
    sys.stdout.write(json.dumps(document) + "\n")
    sys.stdout.flush()


def main() -> None:
    """Console-script entry point."""
    app()
