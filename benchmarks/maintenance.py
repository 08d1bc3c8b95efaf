"""One round of ``analytics-migrate maintain`` costs the same whatever history lies behind it.

Two databases hold the same kind of events at the same rate: 10 days of history in one, 90
in the other, both ending at the UTC midnight three days ago, both fully materialized (two
untimed rounds of ``maintain``: the first materializes everything, the second leaves the
record of which events were seen where it is in steady state). Each run then gives both
the same 3 days of new events (the chunks of the last three days are dropped and written
again) and times one ``maintain`` (refreshes and retention, as a scheduler runs it) on
each, alternating which goes first. The figure is the 90-day time over the 10-day time of
the same run; a maintain that recomputed every bucket would grow with the history.

For context, on the Apache edition, the time to compute every aggregate over all the events
of each database: what ``maintain`` did before the aggregates were refreshed incrementally.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

import psycopg
from psycopg import sql

from analytics_core.migrate import Edition, maintain
from analytics_core.schema import AGGREGATES, EVENTS_TABLE
from benchmarks.aggregates import generate_events
from benchmarks.database import BenchServer, edition_of
from benchmarks.figures import Spread
from benchmarks.settings import Settings
from devtools.seeding import migrate

__all__ = ["HISTORY_DAYS", "NEW_DAYS", "TARGET_RATIO", "MaintenanceResult", "run"]

#: The longer history's maintain may take at most this many times the shorter one's.
TARGET_RATIO: Final = 1.2
#: Days of history in the two databases, shorter first.
HISTORY_DAYS: Final = (10, 90)
#: Days of new events each timed round refreshes.
NEW_DAYS: Final = 3
_USERS: Final = 2_000


@dataclass(frozen=True, slots=True)
class MaintenanceResult:
    edition: Edition
    events_per_day: int
    runs: int
    #: Seconds of one maintain, per history length (days).
    seconds: dict[int, Spread]
    #: The longer history's seconds over the shorter one's, one sample per run.
    ratio: Spread
    #: Apache edition: seconds to compute every aggregate over all the events, per history
    #: length (what maintain cost before incremental refreshes); empty elsewhere.
    full_recompute_seconds: dict[int, float]


def _new_events(url: str, settings: Settings, start: datetime, run: int) -> None:
    """Replace the last ``NEW_DAYS`` days' chunks with newly written events (new ids)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "SELECT count(*) FROM drop_chunks(%s, newer_than => %s::timestamptz)",
            (EVENTS_TABLE, start),
        )
    generate_events(
        url,
        rows=settings.maintain_events_per_day * NEW_DAYS,
        start=start,
        days=NEW_DAYS,
        users=_USERS,
        seed=settings.seed + 1 + run,
    )
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(EVENTS_TABLE)))


def _timed_maintain(url: str) -> float:
    with psycopg.connect(url, autocommit=True) as conn:
        began = time.perf_counter()
        result = maintain(conn)
        seconds = time.perf_counter() - began
    failed = [f"{task.name}: {task.detail}" for task in result.tasks if not task.ok]
    if failed:
        raise RuntimeError("maintain failed: " + "; ".join(failed))
    return seconds


def _full_recompute(url: str) -> float:
    """Seconds to compute every aggregate from all the events (Apache edition)."""
    with psycopg.connect(url, autocommit=True) as conn:
        began = time.perf_counter()
        for aggregate in AGGREGATES:
            conn.execute(
                sql.SQL("SELECT count(*) FROM {}('-infinity', 'infinity')").format(
                    sql.Identifier(aggregate.between_function)
                )
            )
        return time.perf_counter() - began


def run(
    server: BenchServer, settings: Settings, log: Callable[[str], None], *, keep: bool = False
) -> MaintenanceResult:
    """Build both databases on ``server``, time ``settings.maintain_runs`` rounds each; drop
    them afterwards unless ``keep``."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    new_start = today - timedelta(days=NEW_DAYS)
    short, long = HISTORY_DAYS
    with (
        server.database(f"maintain_{short}d", keep=keep) as short_url,
        server.database(f"maintain_{long}d", keep=keep) as long_url,
    ):
        urls = {short: short_url, long: long_url}
        for days, url in urls.items():
            log(f"maintain: {days} days of history, {settings.maintain_events_per_day:,}/day")
            migrate(url)
            generate_events(
                url,
                rows=settings.maintain_events_per_day * days,
                start=new_start - timedelta(days=days),
                days=days,
                users=_USERS,
                seed=settings.seed,
            )
            _new_events(url, settings, new_start, run=-1)
            _timed_maintain(url)
            _timed_maintain(url)
        with psycopg.connect(short_url, autocommit=True) as conn:
            edition = edition_of(conn) or Edition.APACHE
        seconds: dict[int, list[float]] = {days: [] for days in urls}
        for index in range(settings.maintain_runs):
            order = list(urls) if index % 2 == 0 else list(reversed(urls))
            for days in order:
                _new_events(urls[days], settings, new_start, run=index)
            for days in order:
                seconds[days].append(_timed_maintain(urls[days]))
            log(
                f"maintain: run {index + 1}/{settings.maintain_runs}: "
                + ", ".join(f"{days} days {seconds[days][-1]:.2f} s" for days in order)
            )
        full = (
            {days: _full_recompute(url) for days, url in urls.items()}
            if edition is Edition.APACHE
            else {}
        )
    return MaintenanceResult(
        edition=edition,
        events_per_day=settings.maintain_events_per_day,
        runs=settings.maintain_runs,
        seconds={days: Spread.of(samples) for days, samples in seconds.items()},
        ratio=Spread.of(
            [big / small for small, big in zip(seconds[short], seconds[long], strict=True)]
        ),
        full_recompute_seconds=full,
    )
