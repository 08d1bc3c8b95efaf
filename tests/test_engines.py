"""The test engines and their fixtures: a fresh server database does what our code needs
(extension, hypertables, COPY, concurrent connections), the Community session runs continuous
aggregates, both sessions return the same values, and PGlite's failures are reported and
bounded."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from devtools.pglite import PGliteError, PGliteSession, PGliteTimeoutError
from devtools.psycopg_session import PsycopgSession
from devtools.psycopg_shim import PsycopgShim
from devtools.pytest_plugin import autocommit_connection_fixture, seeded_database_fixture
from devtools.seeding import EventRow
from devtools.sql_session import SqlError, SqlSession
from devtools.text_format import QueryFormatError, to_text_query

# --- server: database_url ---------------------------------------------------------------------


@pytest.mark.server
def test_password_url_is_the_fresh_database_as_a_role_with_a_password(
    password_url: str, database_url: str
) -> None:
    settings = conninfo_to_dict(password_url)
    assert settings["password"] and settings["dbname"] == conninfo_to_dict(database_url)["dbname"]
    with psycopg.connect(password_url) as conn:
        row = conn.execute("SELECT current_user, current_database()").fetchone()
    assert row == (settings["user"], settings["dbname"])


@pytest.mark.server
def test_database_url_is_a_fresh_empty_database(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        name, tables, extensions = conn.execute(
            "SELECT current_database(),"
            " (SELECT count(*) FROM pg_tables WHERE schemaname = 'public'),"
            " (SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb')"
        ).fetchone() or (None, None, None)
    assert str(name).startswith("analytics_test_")
    assert (tables, extensions) == (0, 0)


@pytest.mark.server
def test_server_admin_url_reaches_the_postgres_database(server_admin_url: str) -> None:
    with psycopg.connect(server_admin_url) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == ("postgres",)


@pytest.mark.server
def test_hypertable_takes_rows_by_copy(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        conn.execute("CREATE TABLE events (ts timestamptz NOT NULL, kind text, value bigint)")
        conn.execute("SELECT create_hypertable('events', by_range('ts', INTERVAL '1 day'))")
        with conn.cursor() as cur, cur.copy("COPY events (ts, kind, value) FROM STDIN") as copy:
            for day in range(1, 4):
                for n in range(100):
                    copy.write_row((datetime(2024, 1, day, 0, n % 60, tzinfo=UTC), "click", n))
        counts = conn.execute(
            "SELECT (SELECT count(*) FROM events), (SELECT sum(value) FROM events),"
            " (SELECT num_chunks FROM timescaledb_information.hypertables"
            "  WHERE hypertable_name = 'events')"
        ).fetchone()
    assert counts == (300, 3 * sum(range(100)), 3)


@pytest.mark.server
def test_two_connections_work_at_once(database_url: str) -> None:
    with (
        psycopg.connect(database_url, autocommit=True) as first,
        psycopg.connect(database_url, autocommit=True) as second,
    ):
        first.execute("CREATE TABLE t (n int)")
        with first.transaction():
            first.execute("INSERT INTO t VALUES (1)")
            # Not committed yet: the other connection must not see it.
            assert second.execute("SELECT count(*) FROM t").fetchone() == (0,)
        assert second.execute("SELECT count(*) FROM t").fetchone() == (1,)
        assert first.execute("SELECT pg_try_advisory_lock(42)").fetchone() == (True,)
        assert second.execute("SELECT pg_try_advisory_lock(42)").fetchone() == (False,)


@pytest.mark.server
def test_no_preload_server_lacks_preloaded_timescaledb(no_preload_server_url: str) -> None:
    with psycopg.connect(no_preload_server_url) as conn:
        row = conn.execute("SELECT current_setting('shared_preload_libraries')").fetchone()
    assert row is not None and "timescaledb" not in row[0]


# --- server: the seeded-database fixture factories ---------------------------------------------

SEEDED_USER = UUID("00000000-0000-4000-8000-000000000001")
SEEDED_DAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
SEEDED_ROWS = [
    EventRow(SEEDED_DAY + timedelta(hours=1), "task_created", {"task_id": "a"}, SEEDED_USER),
    EventRow(SEEDED_DAY + timedelta(hours=2), "task_failed", {"error": "x"}, SEEDED_USER),
    EventRow(SEEDED_DAY + timedelta(hours=3), "application_error", ["not", "an", "object"]),
]
seeded_url = seeded_database_fixture(SEEDED_ROWS, refresh=True)
seeded_conn = autocommit_connection_fixture("seeded_url")


@pytest.mark.server
def test_seeded_database_fixture_is_migrated_loaded_and_refreshed(
    seeded_url: str, seeded_conn: psycopg.Connection[Any]
) -> None:
    assert seeded_conn.autocommit
    assert conninfo_to_dict(seeded_url)["dbname"] == seeded_conn.info.dbname
    assert seeded_conn.info.dbname.startswith("analytics_test_")
    assert seeded_conn.execute(
        "SELECT event_type, service, user_id, data FROM analytics_events ORDER BY 1"
    ).fetchall() == [
        ("application_error", "platform", None, ["not", "an", "object"]),
        ("task_created", "platform", SEEDED_USER, {"task_id": "a"}),
        ("task_failed", "platform", SEEDED_USER, {"error": "x"}),
    ]
    assert seeded_conn.execute(
        "SELECT day, user_id, event_count FROM analytics_daily_active_users"
    ).fetchall() == [(SEEDED_DAY, SEEDED_USER, 2)]


# --- both sessions ------------------------------------------------------------------------


@pytest.fixture(
    params=[
        pytest.param("psycopg", marks=pytest.mark.server),
        pytest.param("pglite", marks=pytest.mark.community),
    ]
)
def any_session(request: pytest.FixtureRequest) -> Iterator[SqlSession]:
    """Each `SqlSession` implementation in turn, on a fresh database."""
    if request.param == "pglite":
        yield request.getfixturevalue("pglite_session")
        return
    with PsycopgSession.connect(request.getfixturevalue("database_url")) as session:
        yield session


def test_values_and_placeholders_follow_psycopg(any_session: SqlSession) -> None:
    (row,) = any_session.fetch(
        "SELECT %s::timestamptz AS ts, %s::int8 AS big, %s::numeric AS exact,"
        " %s::uuid AS id, %s::jsonb AS doc, %s::bytea AS raw, %s::text AS missing,"
        " %s::int[] AS ints, %s AS plain, '100%%' AS literal",
        [
            datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC),
            2**62 + 1,
            Decimal("12345678901234567890.123456789"),
            UUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
            '{"a": [1, 2]}',
            b"\x00\xff",
            None,
            [1, None, 3],
            "it's",
        ],
    )
    assert row == {
        "ts": datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC),
        "big": 2**62 + 1,
        "exact": Decimal("12345678901234567890.123456789"),
        "id": UUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
        "doc": {"a": [1, 2]},
        "raw": b"\x00\xff",
        "missing": None,
        "ints": [1, None, 3],
        "plain": "it's",
        "literal": "100%",
    }
    named = any_session.fetch("SELECT %(x)s::int + %(x)s::int AS twice", {"x": 21})
    assert named == [{"twice": 42}]
    # Without parameters there are no placeholders: '%' is literal, as in psycopg.
    assert any_session.fetch("SELECT '5%' AS p, '%%' AS pp") == [{"p": "5%", "pp": "%%"}]
    assert any_session.fetch("SELECT '5%%' AS p", ()) == [{"p": "5%"}]
    assert any_session.fetch("SET TIME ZONE 'UTC'") == []


def test_fetch_all_results_reports_each_statement(any_session: SqlSession) -> None:
    results = any_session.fetch_all_results(
        "CREATE TABLE t (n int); INSERT INTO t VALUES (1), (2), (3);"
        " UPDATE t SET n = n * 10 WHERE n > 1; SELECT n FROM t ORDER BY n"
    )
    assert [(r.columns, r.rows, r.affected) for r in results] == [
        ((), [], 0),
        ((), [], 3),
        ((), [], 2),
        (("n",), [(1,), (20,), (30,)], 0),
    ]
    assert results[-1].dicts() == [{"n": 1}, {"n": 20}, {"n": 30}]


def test_sql_errors_carry_sqlstate_and_the_session_stays_usable(any_session: SqlSession) -> None:
    with pytest.raises(SqlError) as raised:
        any_session.fetch("SELECT * FROM no_such_table")
    assert raised.value.sqlstate == "42P01"
    assert raised.value.message == 'relation "no_such_table" does not exist'
    # A failed multi-statement string is rolled back as a whole.
    with pytest.raises(SqlError) as raised:
        any_session.execute("CREATE TABLE half (n int); SELECT 1/0")
    assert raised.value.sqlstate == "22012"
    assert any_session.fetch("SELECT to_regclass('half') IS NULL AS gone") == [{"gone": True}]


def test_fetch_result_and_the_shim_keep_columns_of_the_same_name(
    any_session: SqlSession,
) -> None:
    result = any_session.fetch_result("SELECT %s::int AS n, %s::int AS n", [1, 2])
    assert (result.columns, result.rows) == (("n", "n"), [(1, 2)])
    shim = PsycopgShim(any_session)
    assert shim.execute("SELECT %s::int AS n, %s::int AS n", [1, 2]).fetchone() == (1, 2)
    empty = shim.execute("SELECT %s::int AS n WHERE false", [1])
    assert (empty.description, empty.fetchall()) == (("n",), [])


# --- community_session --------------------------------------------------------------------


@pytest.mark.community
def test_community_session_refreshes_a_continuous_aggregate(
    community_session: SqlSession,
) -> None:
    session = community_session
    assert session.fetch("SELECT current_setting('timescaledb.license') AS license") == [
        {"license": "timescale"}
    ]
    session.execute(
        "CREATE TABLE clicks (ts timestamptz NOT NULL, n int NOT NULL);"
        "SELECT create_hypertable('clicks', by_range('ts', INTERVAL '1 day'));"
        "INSERT INTO clicks SELECT '2024-01-01 00:00+00'::timestamptz + i * INTERVAL '1 minute', i"
        "  FROM generate_series(0, 179) AS i"
    )
    session.execute(
        "CREATE MATERIALIZED VIEW clicks_hourly WITH (timescaledb.continuous) AS"
        " SELECT time_bucket(INTERVAL '1 hour', ts) AS hour, count(*) AS clicks, sum(n) AS total"
        " FROM clicks GROUP BY 1 WITH NO DATA"
    )
    # A procedure that commits: it must go on its own, outside any multi-statement string.
    session.execute("CALL refresh_continuous_aggregate('clicks_hourly', NULL, NULL)")
    rows = session.fetch("SELECT hour, clicks, total FROM clicks_hourly ORDER BY hour")
    assert rows == [
        {
            "hour": datetime(2024, 1, 1, h, tzinfo=UTC),
            "clicks": 60,
            "total": sum(range(60 * h, 60 * h + 60)),
        }
        for h in range(3)
    ]


@pytest.mark.community
@pytest.mark.parametrize("run", ["first", "second"])
def test_each_community_session_starts_empty(community_session: SqlSession, run: str) -> None:
    # The second run would see what the first one left, were the session not fresh.
    assert community_session.fetch(
        "SELECT count(*)::int AS n FROM pg_tables WHERE schemaname = 'public'"
    ) == [{"n": 0}]
    community_session.execute("CREATE TABLE leftover (n int)")


# --- PGlite engine ------------------------------------------------------------------------


def test_pglite_reports_bad_sql_with_sqlstate_and_stays_usable(
    pglite_session: PGliteSession,
) -> None:
    with pytest.raises(PGliteError) as raised:
        pglite_session.execute("SELEC 1")
    assert raised.value.sqlstate == "42601"
    assert raised.value.message == 'syntax error at or near "SELEC"'
    assert pglite_session.fetch("SELECT 1 AS one") == [{"one": 1}]
    assert pglite_session.info["license"] == "timescale"


def test_pglite_reset_gives_a_fresh_database_with_community_features(
    pglite_session: PGliteSession,
) -> None:
    def create_continuous_aggregate() -> None:
        pglite_session.execute(
            "CREATE TABLE c (ts timestamptz NOT NULL, n int);"
            "SELECT create_hypertable('c', by_range('ts'));"
            "CREATE MATERIALIZED VIEW c_hourly WITH (timescaledb.continuous) AS"
            " SELECT time_bucket(INTERVAL '1 hour', ts) AS hour, count(*) FROM c GROUP BY 1"
            " WITH NO DATA"
        )

    create_continuous_aggregate()
    pglite_session.reset()
    assert not pglite_session.used
    assert pglite_session.fetch("SELECT to_regclass('c') IS NULL AS gone") == [{"gone": True}]
    # A restored database must still load the TSL module (it did not, once).
    create_continuous_aggregate()
    assert pglite_session.fetch("SHOW timezone") == [{"TimeZone": "UTC"}]


def test_pglite_placeholder_mistakes_are_errors_not_hangs(pglite_session: PGliteSession) -> None:
    with pytest.raises(PGliteError, match="1 placeholders but 2 parameters"):
        pglite_session.fetch("SELECT %s", [1, 2])
    assert pglite_session.fetch("SELECT 2 AS two") == [{"two": 2}]


def test_pglite_request_timeout_kills_the_engine_and_reset_restarts_it(
    pglite_session: PGliteSession,
) -> None:
    with pytest.raises(PGliteTimeoutError):
        pglite_session.execute("SELECT pg_sleep(5)", timeout_s=0.5)
    assert not pglite_session.running
    pglite_session.reset()
    assert pglite_session.fetch("SELECT 3 AS three") == [{"three": 3}]


def test_pglite_requests_from_threads_take_turns(pglite_session: PGliteSession) -> None:
    answers: list[int] = []

    def ask(n: int) -> None:
        (row,) = pglite_session.fetch("SELECT %s::int AS n", [n])
        assert isinstance(row["n"], int)
        answers.append(row["n"])

    threads = [threading.Thread(target=ask, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(answers) == list(range(8))


def test_query_conversion_matches_psycopg_rules() -> None:
    query = to_text_query("SELECT %(a)s, %(b)s, %(a)s, '50%%'", {"a": 1, "b": "x"})
    assert (query.sql, query.params) == ("SELECT $1, $2, $1, '50%'", ["1", "x"])
    with pytest.raises(QueryFormatError, match="cannot be mixed"):
        to_text_query("SELECT %s, %(a)s", {"a": 1})
    with pytest.raises(QueryFormatError, match="only '%s', '%b', '%t'"):
        to_text_query("SELECT 100%", [])
