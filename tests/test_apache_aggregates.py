"""The Apache edition's aggregates keep their history and refresh incrementally: rows older
than the raw retention outlive it, late events are folded in (within the documented limit),
readers see fresh buckets and are never blocked, and an existing database moves over with
every row it holds."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg import sql

from analytics_core.migrate import Edition, Phase, apply, load_migrations, maintain, read_status
from analytics_core.migrate.runner import inspect_url
from analytics_core.schema import (
    AGGREGATES,
    EVENTS_TABLE,
    LATE_EVENTS_LOOKBACK,
    RETENTION,
    Aggregate,
)
from devtools import seeding
from devtools.seeding import EventRow, insert_statement
from devtools.sql_session import SqlSession
from tests.expected import assert_same
from tests.synthetic import Dataset, day_of, product_history
from tests.test_migrate_editions import aggregate_rows
from tests.test_schema_community import apply_migrations

pytestmark = pytest.mark.server

NOW = datetime.now(UTC)
POST_0006 = "post_0006_apache_incremental_aggregates"


def require_apache(url: str) -> None:
    if inspect_url(url).edition is not Edition.APACHE:
        pytest.skip("the Apache edition's aggregates; this server runs the Community edition")


@pytest.fixture
def apache_url(database_url: str) -> str:
    """A fresh, fully migrated Apache-edition database."""
    apply(database_url, (Phase.PRE, Phase.POST))
    require_apache(database_url)
    return database_url


def rows(conn: psycopg.Connection[Any], aggregate: Aggregate, where: sql.Composable) -> list[Any]:
    """The aggregate's rows (as ``aggregate_rows`` orders them) that satisfy ``where``."""
    query = sql.SQL("SELECT * FROM {} WHERE {}").format(sql.Identifier(aggregate.name), where)
    return aggregate_rows(_Fetch(conn, query), "")


def recomputed(
    conn: psycopg.Connection[Any], aggregate: Aggregate, where: sql.Composable
) -> list[Any]:
    """What the aggregate's query gives over every event still in the table."""
    query = sql.SQL("SELECT * FROM {}('-infinity', 'infinity') WHERE {}").format(
        sql.Identifier(aggregate.between_function), where
    )
    return aggregate_rows(_Fetch(conn, query), "")


class _Fetch:
    """Adapts one composed query to ``aggregate_rows``, which runs ``SELECT * FROM name``."""

    def __init__(self, conn: psycopg.Connection[Any], query: sql.Composable) -> None:
        self._conn, self._query = conn, query

    def execute(self, _: str) -> Any:
        return self._conn.execute(self._query)


def older_than(aggregate: Aggregate, moment: datetime) -> sql.Composable:
    return sql.SQL("{} < {}").format(sql.Identifier(aggregate.time_column), sql.Literal(moment))


def within(aggregate: Aggregate, start: datetime, end: datetime) -> sql.Composable:
    column = sql.Identifier(aggregate.time_column)
    return sql.SQL("{} >= {} AND {} < {}").format(
        column, sql.Literal(start), column, sql.Literal(end)
    )


def run_maintain(url: str) -> dict[str, str]:
    with psycopg.connect(url, autocommit=True) as conn:
        result = maintain(conn)
    assert result.ok, result.tasks
    return {task.name: task.detail for task in result.tasks}


# --- history outlives retention ------------------------------------------------------------


def test_rows_older_than_the_retention_outlive_the_raw_events(apache_url: str) -> None:
    old = product_history(day_of(NOW) - timedelta(days=120), 3, seed=21)
    middle = product_history(day_of(NOW) - timedelta(days=40), 2, seed=22)
    recent = product_history(day_of(NOW) - timedelta(days=2), 3, seed=23)
    seeding.insert(apache_url, old.rows + middle.rows + recent.rows)
    horizon = NOW - RETENTION
    with psycopg.connect(apache_url, autocommit=True) as conn:
        # Nothing is materialized yet: the views compute every bucket from the events.
        before = {a.name: rows(conn, a, older_than(a, horizon)) for a in AGGREGATES}
    assert all(before.values()), before

    first = run_maintain(apache_url)
    assert first[f"drop chunks of {EVENTS_TABLE} past retention"] == "3 chunk(s) dropped"
    second = run_maintain(apache_url)
    assert second[f"drop chunks of {EVENTS_TABLE} past retention"] == "0 chunk(s) dropped"

    with psycopg.connect(apache_url, autocommit=True) as conn:
        (left,) = conn.execute(
            f'SELECT count(*) FROM {EVENTS_TABLE} WHERE "timestamp" < %s', (horizon,)
        ).fetchone() or (None,)
        assert left == 0
        for aggregate in AGGREGATES:
            assert_same(
                rows(conn, aggregate, older_than(aggregate, horizon)), before[aggregate.name]
            )
            # Everything newer is what the events say, materialized or live.
            newer = sql.SQL("NOT ({})").format(older_than(aggregate, horizon))
            assert_same(rows(conn, aggregate, newer), recomputed(conn, aggregate, newer))
        status = read_status(conn)
        (db_now,) = conn.execute("SELECT now()").fetchone() or (None,)
    assert status.up_to_date, status.schema_drift
    for aggregate_status, aggregate in zip(status.aggregates, AGGREGATES, strict=True):
        assert aggregate_status.kind == "incremental aggregate"
        assert aggregate_status.watermark is not None
        # Up to the bucket that holds "an hour ago", like the Community policy's end offset.
        one_hour_ago = db_now - timedelta(hours=1)
        assert one_hour_ago - aggregate.bucket < aggregate_status.watermark <= one_hour_ago
        assert aggregate_status.last_refreshed_at is not None


# --- late events ---------------------------------------------------------------------------


def test_late_events_within_the_lookback_are_folded_in_and_older_ones_are_not(
    apache_url: str,
) -> None:
    start = day_of(NOW) - timedelta(days=24)
    seeding.insert(apache_url, product_history(start, 25, seed=31).rows)
    run_maintain(apache_url)
    run_maintain(apache_url)  # the watermark of ids now covers everything loaded above

    days_back = {2: 32, 10: 33, 20: 34}  # how many days back: seed
    assert timedelta(days=10) < LATE_EVENTS_LOOKBACK < timedelta(days=19), (
        "the 20-day-old batch must fall outside the lookback"
    )
    late_days = {back: day_of(NOW) - timedelta(days=back) for back in days_back}
    with psycopg.connect(apache_url, autocommit=True) as conn:
        stale = {
            a.name: rows(conn, a, within(a, late_days[20], late_days[20] + timedelta(days=1)))
            for a in AGGREGATES
        }
    late = Dataset()
    for back, seed in days_back.items():
        late.rows += product_history(late_days[back], 1, seed=seed).rows
    seeding.insert(apache_url, late.rows)

    details = run_maintain(apache_url)
    # Inside the lookback and before the window (the 2-day-old batch is in it): the day 10
    # days back, and the next one, where product_history puts its malformed events.
    assert details[f"refresh {AGGREGATES[0].name}"].endswith("; 2 late bucket(s) recomputed")
    with psycopg.connect(apache_url, autocommit=True) as conn:
        for aggregate in AGGREGATES:
            for back in (2, 10):
                day = within(aggregate, late_days[back], late_days[back] + timedelta(days=1))
                assert_same(rows(conn, aggregate, day), recomputed(conn, aggregate, day))
            # Beyond the lookback the bucket keeps what it had: README, "Late events".
            day = within(aggregate, late_days[20], late_days[20] + timedelta(days=1))
            assert_same(rows(conn, aggregate, day), stale[aggregate.name])
            assert rows(conn, aggregate, day) != recomputed(conn, aggregate, day), aggregate.name


# --- readers ---------------------------------------------------------------------------------


def test_a_refresh_in_progress_blocks_no_reader_or_writer_and_shows_no_half_bucket(
    apache_url: str,
) -> None:
    seeding.insert(apache_url, product_history(day_of(NOW) - timedelta(days=2), 3, seed=41).rows)
    dau = AGGREGATES[0]
    with psycopg.connect(apache_url, autocommit=True) as reader:
        before = aggregate_rows(reader, dau.name)
        with psycopg.connect(apache_url) as refresher:
            refresher.execute("SELECT analytics_refresh_aggregate(%s)", (dau.name,))
            # The refresh has rewritten the table but not committed: a reader is not kept
            # waiting, and sees the aggregate as it was, bucket for bucket.
            reader.execute("SET lock_timeout = '1s'")
            assert_same(aggregate_rows(reader, dau.name), before)
            seeding.insert(apache_url, product_history(day_of(NOW), 1, seed=42).rows)
            refresher.commit()
        after = aggregate_rows(reader, dau.name)
        (until,) = reader.execute(
            "SELECT materialized_until FROM analytics_aggregate_refreshes WHERE aggregate = %s",
            (dau.name,),
        ).fetchone() or (None,)
        live = recomputed(reader, dau, sql.SQL("true"))
    assert until is not None
    assert_same(after, live)


def test_maintain_is_not_blocked_by_a_long_reader(apache_url: str) -> None:
    seeding.insert(apache_url, product_history(day_of(NOW) - timedelta(days=2), 3, seed=43).rows)
    with psycopg.connect(apache_url) as reader:
        for aggregate in AGGREGATES:
            reader.execute(
                sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(aggregate.name))
            )
        # The reader's transaction stays open while maintain runs beside it.
        outcome: dict[str, Any] = {}
        worker = threading.Thread(target=lambda: outcome.update(details=run_maintain(apache_url)))
        worker.start()
        worker.join(timeout=120)
        assert not worker.is_alive(), "maintain waited for a reader"
        reader.rollback()
    assert set(outcome["details"]) >= {f"refresh {a.name}" for a in AGGREGATES}


# --- moving an existing database over ------------------------------------------------------


@pytest.mark.parametrize("recent_days", [4, 0], ids=["with recent events", "only expired ones"])
def test_an_existing_apache_database_moves_over_with_every_row(
    database_url: str, recent_days: int
) -> None:
    # Without recent events, the newest bucket's events are gone too: its row must stay.
    files = load_migrations()
    before_0006 = {
        phase: [m for m in migrations if m.id != POST_0006] for phase, migrations in files.items()
    }
    apply(database_url, (Phase.PRE, Phase.POST), migrations=before_0006)
    require_apache(database_url)
    recent = product_history(day_of(NOW) - timedelta(days=3), recent_days, seed=52).rows
    data = Dataset(
        product_history(day_of(NOW) - timedelta(days=100), 2, seed=51).rows
        + (recent if recent_days else [])
    )
    seeding.insert(database_url, data.rows)
    with psycopg.connect(database_url, autocommit=True) as conn:
        for aggregate in AGGREGATES:
            conn.execute(
                sql.SQL("REFRESH MATERIALIZED VIEW {}").format(sql.Identifier(aggregate.name))
            )
        # What the old maintain's retention step did: the views still hold those days.
        conn.execute(f"SELECT drop_chunks('{EVENTS_TABLE}', older_than => INTERVAL '90 days')")
        before = {a.name: aggregate_rows(conn, a.name) for a in AGGREGATES}
        status = read_status(conn)
    assert status.pending == (POST_0006,)
    assert {a.kind for a in status.aggregates} == {"materialized view"}

    assert apply(database_url, (Phase.POST,)).applied == (POST_0006,)
    with psycopg.connect(database_url, autocommit=True) as conn:
        assert_same({a.name: aggregate_rows(conn, a.name) for a in AGGREGATES}, before)
        status = read_status(conn)
        assert status.up_to_date, status.schema_drift
        assert {a.kind for a in status.aggregates} == {"incremental aggregate"}
        assert all(a.watermark is not None for a in status.aggregates)
    run_maintain(database_url)
    with psycopg.connect(database_url, autocommit=True) as conn:
        assert_same({a.name: aggregate_rows(conn, a.name) for a in AGGREGATES}, before)
    # Rerunning post is a no-op.
    assert apply(database_url, (Phase.POST,)).applied == ()


# --- the same rows as the Community edition ------------------------------------------------


def _as_compared(document: Any) -> Any:
    """A row as JSON values, numbers as floats (the engines print 5 or 5.0 as they like)."""
    if isinstance(document, dict):
        return {key: _as_compared(value) for key, value in document.items()}
    if isinstance(document, int | float) and not isinstance(document, bool):
        return float(document)
    return document


def json_rows(fetch: Any, aggregate: Aggregate) -> list[dict[str, Any]]:
    """Every row of the aggregate as JSON, UTC, in the order of its bucket and keys."""
    found = fetch(f"SELECT to_jsonb(t)::text AS row FROM {aggregate.name} t")
    documents = [_as_compared(json.loads(row)) for row in found]
    key = (aggregate.time_column, *aggregate.keys)
    return sorted(documents, key=lambda d: [str(d[k]) for k in key])


@pytest.mark.community
def test_every_aggregate_has_the_community_editions_rows_bucket_by_bucket(
    apache_url: str, pglite_session: SqlSession
) -> None:
    history = product_history(day_of(NOW) - timedelta(days=5), 6, seed=61).rows
    # Events of the last minutes, after the refresh: on both editions the view computes
    # their buckets from the raw events.
    fresh = [
        EventRow(NOW - timedelta(minutes=1 + n % 50), r.event_type, r.data, r.user_id, r.service)
        for n, r in enumerate(product_history(day_of(NOW) - timedelta(days=30), 1, seed=62).rows)
    ]

    seeding.insert(apache_url, history)
    run_maintain(apache_url)
    seeding.insert(apache_url, fresh)

    apply_migrations(pglite_session)
    pglite_session.execute(insert_statement(history))
    for aggregate in AGGREGATES:
        # Everything up to the policy's end offset, as the first maintain does on Apache
        # (the policy itself covers 3 days: older events wait for a full refresh there).
        pglite_session.execute(
            f"CALL refresh_continuous_aggregate('{aggregate.name}',"
            " NULL, now() - INTERVAL '1 hour')"
        )
    pglite_session.execute(insert_statement(fresh))
    pglite_session.execute("SET TIME ZONE 'UTC'")

    with psycopg.connect(apache_url, autocommit=True) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        for aggregate in AGGREGATES:
            apache = json_rows(lambda q: [r[0] for r in conn.execute(q).fetchall()], aggregate)
            community = json_rows(lambda q: [r["row"] for r in pglite_session.fetch(q)], aggregate)
            assert apache, aggregate.name
            assert_same(apache, community, aggregate.name)
