"""Taking over an ``analytics_events`` that analytics-migrate did not create.

A reference-style hypertable (the ported library's columns, no ``event_id``, 7-day chunks)
is upgraded in place; a plain table is swapped for a hypertable and its rows copied; shapes
that cannot be taken over are refused with the exact difference. Every row is kept, the
result passes ``status``, and the client writes to it.
"""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner

from analytics_core import AnalyticsClient
from analytics_core.cli.migrate import app as migrate_app
from analytics_core.events import TaskCreated
from analytics_core.migrate import Edition, Phase, load_migrations
from analytics_core.migrate.adopt import (
    BACKUP_SUFFIX,
    LEGACY_TABLE,
    Strategy,
    adopt,
    foreign_aggregates,
    inspect_events_table,
    plan_adoption,
    set_aside_aggregates,
)
from analytics_core.migrate.runner import milliseconds
from analytics_core.schema import AGGREGATES, CHUNK_INTERVAL, EVENTS_TABLE
from devtools.psycopg_shim import PsycopgShim
from devtools.sql_session import SqlSession

NO_URL_ENV = {"DATABASE_URL": "", "PLATFORM_DATABASE_URL": "", "ANALYTICS_MIGRATE_DATABASE_URL": ""}
ROWS = 2_000
NOW = datetime.now(UTC).replace(microsecond=0)

REFERENCE_TABLE = """
CREATE EXTENSION IF NOT EXISTS timescaledb;
CREATE TABLE analytics_events (
    id BIGSERIAL,
    timestamp TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    event_type VARCHAR(100) NOT NULL,
    service VARCHAR(100) NOT NULL,
    user_id UUID,
    data JSONB NOT NULL,
    PRIMARY KEY (timestamp, id)
);
SELECT create_hypertable('analytics_events', 'timestamp');
CREATE INDEX ON analytics_events (user_id);
"""

PLAIN_TABLE = """
CREATE TABLE analytics_events (
    id SERIAL PRIMARY KEY,
    "timestamp" TIMESTAMPTZ NOT NULL,
    event_type TEXT,
    service TEXT NOT NULL,
    user_id UUID,
    data JSON NOT NULL
);
"""

# Two months of history, a row every ~43 minutes, some without a user.
FILL = f"""
INSERT INTO analytics_events ("timestamp", event_type, service, user_id, data)
SELECT %s::timestamptz - g * interval '43 minutes', 'task_created', 'platform',
       CASE WHEN g %% 5 = 0 THEN NULL ELSE gen_random_uuid() END,
       json_build_object('task_id', gen_random_uuid(), 'command', 'legacy ' || g)
FROM generate_series(1, {ROWS}) g
"""


def migrate(*args: str, url: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(migrate_app, [*args, "--database-url", url], env=NO_URL_ENV)
    return result.exit_code, result.stdout, result.stderr


def build(url: str, table_sql: str, rows: bool = True) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(table_sql)
        if rows:
            conn.execute(FILL, (NOW,))


def snapshot(url: str) -> list[tuple[Any, ...]]:
    """The rows as they were written: the columns the old table had, in a stable order."""
    with psycopg.connect(url) as conn:
        return conn.execute(
            f'SELECT id, "timestamp", event_type, service, user_id, data::jsonb'
            f" FROM {EVENTS_TABLE} WHERE service = 'platform' ORDER BY id"
        ).fetchall()


def one(url: str, query: str) -> Any:
    with psycopg.connect(url) as conn:
        row = conn.execute(query).fetchone()
    assert row is not None
    return row[0]


def assert_our_shape(url: str) -> None:
    assert one(url, f"SELECT count(*) FROM {EVENTS_TABLE} WHERE event_id IS NULL") == 0
    assert one(url, f"SELECT count(DISTINCT event_id) = count(*) FROM {EVENTS_TABLE}") is True
    assert one(
        url,
        "SELECT attnotnull FROM pg_attribute"
        f" WHERE attrelid = '{EVENTS_TABLE}'::regclass AND attname = 'event_id'",
    )
    assert (
        one(
            url,
            "SELECT time_interval FROM timescaledb_information.dimensions"
            f" WHERE hypertable_name = '{EVENTS_TABLE}'",
        )
        == CHUNK_INTERVAL
    )
    code, out, err = migrate("status", url=url)
    assert code == 0, out + err


def write_with_client(url: str, count: int) -> AnalyticsClient:
    client = AnalyticsClient(url, service="after", batch_size=10, max_backoff=0.2)
    for i in range(count):
        client.track(TaskCreated(task_id=uuid.uuid4(), user_id=uuid.uuid4(), command=f"n {i}"))
    return client


# --- a reference-style hypertable ----------------------------------------------------------------


@pytest.mark.server
def test_a_reference_style_hypertable_is_refused_then_adopted_in_place(database_url: str) -> None:
    build(database_url, REFERENCE_TABLE)
    before = snapshot(database_url)

    code, out, err = migrate("all", url=database_url)
    assert code == 1, out + err
    message = " ".join(err.split())
    assert "analytics_events exists but was not created by analytics-migrate" in message
    assert "column event_id is missing" in message
    assert "new chunks span 7 days, 0:00:00, not 1 day, 0:00:00" in message
    assert "`analytics-migrate pre --adopt` (or `all --adopt`) would:" in message
    assert "SET NOT NULL on event_id (ACCESS EXCLUSIVE lock" in message
    code, out, err = migrate("dry-run", url=database_url)
    assert code == 0, err
    assert "warning: analytics_events exists but was not created" in " ".join(err.split())
    code, out, err = migrate("dry-run", "--json", url=database_url)
    assert json.loads(out)["adoption"]["strategy"] == "in place"
    # Refused before anything changed: no column, no ledger.
    assert one(database_url, "SELECT to_regclass('_yoyo_migration') IS NULL") is True
    assert snapshot(database_url) == before

    code, out, err = migrate("all", "--adopt", url=database_url)
    assert code == 0, out + err
    assert snapshot(database_url) == before
    assert_our_shape(database_url)
    # The old table's own index is kept; ours are there too.
    indexes = {
        row
        for (row,) in psycopg.connect(database_url)
        .execute("SELECT indexname FROM pg_indexes WHERE tablename = %s", (EVENTS_TABLE,))
        .fetchall()
    }
    assert {"analytics_events_event_id_idx", "analytics_events_user_time_idx"} <= indexes
    assert "analytics_events_user_id_idx" in indexes

    with write_with_client(database_url, 30) as client:
        assert client.flush(10) is True
    assert one(database_url, f"SELECT count(*) FROM {EVENTS_TABLE}") == ROWS + 30
    # A second deploy has nothing to adopt.
    assert migrate("all", url=database_url)[:2] == (
        0,
        "nothing to apply: the schema is up to date\n",
    )


# --- a plain table -------------------------------------------------------------------------------


@pytest.mark.server
def test_a_plain_table_becomes_a_hypertable_while_a_client_keeps_writing(
    database_url: str,
) -> None:
    build(database_url, PLAIN_TABLE)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
    before = snapshot(database_url)

    code, out, err = migrate("pre", url=database_url)
    assert code == 1, out + err
    message = " ".join(err.split())
    assert "it is a plain table, not a TimescaleDB hypertable" in message
    assert "column id is integer; the copy converts it" in message
    assert "column data is json; the copy converts it" in message
    assert f"rename analytics_events to {LEGACY_TABLE}" in message

    # A client started before the deploy: its COPY names event_id, which the old table
    # lacks, so it retries until the new table is in place, then writes everything.
    client = write_with_client(database_url, 40)
    deploy: dict[str, Any] = {}
    thread = threading.Thread(
        target=lambda: deploy.update(result=migrate("all", "--adopt", url=database_url))
    )
    thread.start()
    thread.join(120)
    code, out, err = deploy["result"]
    assert code == 0, out + err
    assert client.flush(20) is True
    client.close()
    assert (client.stats.written, client.stats.dropped) == (40, 0)

    assert snapshot(database_url) == before
    assert one(database_url, f"SELECT to_regclass('{LEGACY_TABLE}') IS NULL") is True
    assert one(database_url, f"SELECT count(*) FROM {EVENTS_TABLE}") == ROWS + 40
    # None left in the hypertable's root, where queries do not look (a COPY that waited for
    # the swap is written there by PostgreSQL itself on TimescaleDB 2.23).
    assert one(database_url, f"SELECT count(*) FROM ONLY {EVENTS_TABLE}") == 0
    assert_our_shape(database_url)
    # New rows get ids past the old ones.
    assert one(
        database_url,
        f"SELECT min(id) > {ROWS} FROM {EVENTS_TABLE} WHERE service = 'after'",
    )


@pytest.mark.server
def test_an_interrupted_copy_resumes_without_doubling_a_row(database_url: str) -> None:
    build(database_url, PLAIN_TABLE)
    before = snapshot(database_url)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        table = inspect_events_table(conn)
        assert table is not None
        adoption = plan_adoption(table)
        assert adoption.strategy is Strategy.COPY

        def stop_halfway(step: str, done: int, total: int) -> None:
            if step == "adopt: copying rows" and done == total // 2:
                raise KeyboardInterrupt  # the deploy is killed mid-copy

        with pytest.raises(KeyboardInterrupt):
            adopt(
                conn,
                adoption,
                table=table,
                create_table_sql=_creating_statements(),
                lock_timeout=milliseconds(timedelta(seconds=5)),
                progress=stop_halfway,
            )
    copied = one(database_url, f"SELECT count(*) FROM {EVENTS_TABLE}")
    assert 0 < copied < ROWS
    assert one(database_url, f"SELECT count(*) FROM {LEGACY_TABLE}") == ROWS

    # The next deploy finds our table (pre_0001 not in the ledger, but the shape is ours) and
    # the old one beside it: it finishes the copy.
    code, out, err = migrate("all", "--adopt", url=database_url)
    assert code == 0, out + err
    assert snapshot(database_url) == before
    assert one(database_url, f"SELECT to_regclass('{LEGACY_TABLE}') IS NULL") is True
    assert_our_shape(database_url)


# --- refusals ----------------------------------------------------------------------------------


@pytest.mark.server
@pytest.mark.parametrize(
    ("table_sql", "expected"),
    [
        (
            PLAIN_TABLE.replace('"timestamp" TIMESTAMPTZ', '"timestamp" TIMESTAMP'),
            '"timestamp" is timestamp without time zone: which zone its values are in is not '
            "known here",
        ),
        (
            REFERENCE_TABLE.replace("data JSONB NOT NULL", "data TEXT NOT NULL"),
            "column data is text; writers and readers need jsonb: convert it first",
        ),
        (
            REFERENCE_TABLE.replace(
                "data JSONB NOT NULL,", "data JSONB NOT NULL, tenant TEXT NOT NULL,"
            ),
            "column tenant is NOT NULL without a default: writers, which do not know it, "
            "could not insert",
        ),
        (
            PLAIN_TABLE.replace("user_id UUID,", "user_id UUID, tenant TEXT,"),
            "column tenant would not survive the copy",
        ),
        (
            PLAIN_TABLE.replace("service TEXT NOT NULL,", ""),
            "column service (character varying(100)) is missing",
        ),
    ],
    ids=[
        "timestamp-without-zone",
        "text-data",
        "own-not-null-column",
        "own-column-copy",
        "missing",
    ],
)
def test_what_cannot_be_adopted_is_refused_with_the_difference(
    database_url: str, table_sql: str, expected: str
) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        conn.execute(table_sql.replace("CREATE EXTENSION IF NOT EXISTS timescaledb;", ""))
    for args in (("all",), ("all", "--adopt")):
        code, out, err = migrate(*args, url=database_url)
        assert code == 1, out + err
        message = " ".join(err.split())
        assert "It cannot be adopted:" in message, message
        assert expected in message, message
    assert one(database_url, "SELECT to_regclass('_yoyo_migration') IS NULL") is True


# --- the Community edition: compressed chunks --------------------------------------------------


@pytest.mark.community
def test_compressed_chunks_of_a_reference_hypertable_get_event_ids(
    community_session: SqlSession,
) -> None:
    session = community_session
    session.execute(REFERENCE_TABLE.replace("CREATE EXTENSION IF NOT EXISTS timescaledb;", ""))
    fill = FILL.replace("%s::timestamptz", f"'{NOW.isoformat()}'::timestamptz")
    session.execute(fill.replace("%%", "%"))
    session.execute(
        "ALTER TABLE analytics_events SET (timescaledb.compress,"
        " timescaledb.compress_segmentby = 'service')"
    )
    (compressed,) = session.fetch(
        "SELECT count(compress_chunk(c)) AS n"
        " FROM show_chunks('analytics_events', older_than => interval '20 days') c"
    )
    assert compressed["n"] > 0
    # PGlite's one backend fails a per-chunk index build ("tuple concurrently updated"), which
    # a server runs (the tests above): the indexes are there already, as on many databases.
    for statement in _creating_statements():
        if "CREATE INDEX" in statement and "event_id" not in statement:
            session.execute(statement)
    conn: Any = PsycopgShim(session)
    table = inspect_events_table(conn)
    assert table is not None
    adoption = plan_adoption(table)
    assert adoption.strategy is Strategy.IN_PLACE
    assert adoption.adoptable, adoption.refusals

    adopt(
        conn,
        adoption,
        table=table,
        create_table_sql=_creating_statements(),
        lock_timeout=milliseconds(timedelta(seconds=5)),
    )

    (counts,) = session.fetch(
        "SELECT count(*) AS total, count(DISTINCT event_id) AS ids,"
        " count(*) FILTER (WHERE event_id IS NULL) AS missing FROM analytics_events"
    )
    assert (counts["total"], counts["ids"], counts["missing"]) == (ROWS, ROWS, 0)
    (still,) = session.fetch(
        "SELECT count(*) AS n FROM chunk_compression_stats('analytics_events')"
        " WHERE compression_status = 'Compressed'"
    )
    assert still["n"] > 0  # updated where they lie, not decompressed for good
    refreshed = inspect_events_table(conn)
    assert refreshed is not None
    assert plan_adoption(refreshed).strategy is Strategy.NONE


def _creating_statements() -> tuple[str, ...]:
    _, statements = load_migrations()[Phase.PRE][0].statements(Edition.APACHE)
    return statements


# --- aggregates of the same names ----------------------------------------------------------------

# The reference design's seven rollups, with columns of their own (materialized views: the
# Apache edition has no continuous aggregates).
REFERENCE_AGGREGATES = "\n".join(
    f"CREATE MATERIALIZED VIEW {name} AS SELECT time_bucket(INTERVAL '1 day', \"timestamp\")"
    f" AS bucket, count(*) AS events FROM analytics_events GROUP BY 1;"
    for name in (a.name for a in AGGREGATES)
)


@pytest.mark.server
def test_a_reference_database_with_its_aggregates_is_taken_over_with_a_flag(
    database_url: str,
) -> None:
    build(database_url, REFERENCE_TABLE + REFERENCE_AGGREGATES)
    before = snapshot(database_url)
    days = one(database_url, f"SELECT count(*) FROM {AGGREGATES[0].name}")

    code, out, err = migrate("all", "--adopt", url=database_url)
    assert code == 1, out + err
    message = " ".join(err.split())
    assert "these exist but were not created by analytics-migrate: " in message
    assert f"{AGGREGATES[0].name} (a materialized view of bucket, events)" in message
    assert "--replace-aggregates" in message
    assert one(database_url, "SELECT to_regclass('_yoyo_migration') IS NULL") is True
    code, out, err = migrate("status", url=database_url)
    assert "post --replace-aggregates" in " ".join(err.split())

    code, out, err = migrate("all", "--adopt", "--replace-aggregates", url=database_url)
    assert code == 0, out + err
    assert snapshot(database_url) == before
    for aggregate in AGGREGATES:
        backup = aggregate.name + BACKUP_SUFFIX
        assert one(database_url, f"SELECT count(*) FROM {backup}") == days
    assert one(database_url, f"SELECT count(*) FROM {AGGREGATES[1].name}") > 0  # backfilled
    code, out, err = migrate("status", url=database_url)
    assert code == 0, out + err
    assert "kept from an adoption, with the rows they had" in " ".join(err.split())


@pytest.mark.community
def test_continuous_aggregates_of_our_names_are_set_aside_with_their_rows(
    community_session: SqlSession,
) -> None:
    session = community_session
    session.execute(REFERENCE_TABLE.replace("CREATE EXTENSION IF NOT EXISTS timescaledb;", ""))
    fill = FILL.replace("%s::timestamptz", f"'{NOW.isoformat()}'::timestamptz")
    session.execute(fill.replace("%%", "%"))
    name = AGGREGATES[0].name
    session.execute(
        f"CREATE MATERIALIZED VIEW {name} WITH (timescaledb.continuous) AS"
        " SELECT time_bucket(INTERVAL '1 day', \"timestamp\") AS bucket, count(*) AS events"
        " FROM analytics_events GROUP BY 1 WITH NO DATA"
    )
    session.execute(
        f"SELECT add_continuous_aggregate_policy('{name}', start_offset => INTERVAL '3 days',"
        " end_offset => INTERVAL '1 hour', schedule_interval => INTERVAL '1 hour')"
    )
    session.execute(f"CALL refresh_continuous_aggregate('{name}', NULL, NULL)")
    (rows,) = session.fetch(f"SELECT count(*) AS n FROM {name}")
    conn: Any = PsycopgShim(session)

    found = foreign_aggregates(conn, [a.name for a in AGGREGATES])
    assert [(f.name, f.kind, f.columns) for f in found] == [
        (name, "continuous aggregate", ("bucket", "events"))
    ]
    set_aside_aggregates(conn, found, milliseconds(timedelta(seconds=5)))

    (kept,) = session.fetch(f"SELECT count(*) AS n FROM {name}{BACKUP_SUFFIX}")
    assert kept["n"] == rows["n"] > 0
    (policies,) = session.fetch(
        "SELECT count(*) AS n FROM timescaledb_information.jobs"
        " WHERE proc_name = 'policy_refresh_continuous_aggregate'"
    )
    assert policies["n"] == 0  # the renamed aggregate's refresh policy is stopped
    assert foreign_aggregates(conn, [a.name for a in AGGREGATES]) == []
