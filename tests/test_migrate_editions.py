"""The edition is read from each database as each phase finds it; the schema that exists is
checked against what the migrations build on that edition (drift); `repair` brings a
drifted schema back without losing data."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import psycopg
import pytest
from typer.testing import CliRunner

from analytics_core.cli.migrate import app
from analytics_core.migrate import (
    DriftKind,
    Edition,
    Phase,
    apply,
    check_schema,
    choose_edition,
    plan_repair,
    read_status,
    runner,
)
from analytics_core.migrate.edition import inspect_server
from analytics_core.schema import AGGREGATES, EVENTS_TABLE
from devtools.psycopg_shim import PsycopgShim
from devtools.pytest_plugin import FullTimescaleDB
from devtools.sql_session import SqlSession
from tests.expected import assert_same
from tests.synthetic import day_of, product_history
from tests.test_schema_community import apply_migrations, run_statements

NOW = datetime.now(UTC)


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def recent_history() -> str:
    """Two recent days of every kind of event, as one INSERT."""
    return product_history(day_of(NOW) - timedelta(days=2), 2, seed=11).insert_sql()


def aggregate_rows(conn: Any, name: str) -> list[list[Any]]:
    """Every row of an aggregate, ordered by its keys (the values that are not floats: sums
    of floats differ in the last digits with the order SQL adds them in)."""
    rows = conn.execute(f"SELECT * FROM {name}").fetchall()
    return sorted(
        (list(row) for row in rows),
        key=lambda row: repr([value for value in row if not isinstance(value, float)]),
    )



# --- reading the edition -------------------------------------------------------------------


@pytest.mark.server
def test_the_edition_is_unknown_until_the_extension_exists(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        before = inspect_server(conn)
    # With only the loader preloaded, the licence cannot be read: not "apache" by default.
    assert (before.license, before.edition) == (None, None)
    assert choose_edition(before).assumed

    apply(database_url, (Phase.PRE,))
    after = runner.inspect_url(database_url)
    assert after.license in {"apache", "timescale"}
    assert after.edition is (
        Edition.COMMUNITY if after.license == "timescale" else Edition.APACHE
    )


@pytest.mark.server
def test_all_on_a_fresh_database_builds_what_the_servers_edition_runs(database_url: str) -> None:
    result = apply(database_url, (Phase.PRE, Phase.POST))
    assert result.server.edition is not None
    with psycopg.connect(database_url, autocommit=True) as conn:
        status = read_status(conn)
    assert status.schema_drift == ()
    assert status.up_to_date
    expected = (
        "continuous aggregate" if result.server.edition is Edition.COMMUNITY
        else "incremental aggregate"
    )
    assert {aggregate.kind for aggregate in status.aggregates} == {expected}


@pytest.mark.server
def test_dry_run_without_the_extension_says_which_edition_it_assumed(database_url: str) -> None:
    code, out, _ = invoke("dry-run", "--json", "--database-url", database_url)
    assert code == 0
    document = json.loads(out)
    assert (document["edition"], document["edition_assumed"]) == ("community", True)
    assert "extension is not created in this database" in document["edition_reason"]
    assert "--edition apache" in document["edition_reason"]

    code, out, _ = invoke(
        "dry-run", "--json", "--edition", "apache", "--database-url", database_url
    )
    document = json.loads(out)
    assert (document["edition"], document["edition_assumed"]) == ("apache", False)
    assert document["edition_reason"] == "chosen with --edition"

    code, _, err = invoke("dry-run", "--database-url", database_url)
    assert code == 0
    assert "community edition: assumed" in err

    apply(database_url, (Phase.PRE,))
    code, out, _ = invoke("dry-run", "--json", "--database-url", database_url)
    document = json.loads(out)
    assert document["edition_assumed"] is False
    assert document["edition_reason"].startswith("timescaledb.license is ")


# --- drift and repair on the Community edition (PGlite, or a full TimescaleDB) ---------------


@pytest.mark.community
def test_the_apache_fallback_on_a_community_server_is_drift_that_repair_removes(
    community_session: SqlSession,
) -> None:
    # What analytics-migrate built when it misread a fresh Community database as Apache.
    apply_migrations(community_session, Edition.APACHE)
    community_session.execute(recent_history())
    for aggregate in AGGREGATES:
        community_session.execute(f"SELECT analytics_refresh_aggregate('{aggregate.name}')")
    conn = cast(Any, PsycopgShim(community_session))
    before = {a.name: aggregate_rows(conn, a.name) for a in AGGREGATES}
    assert all(before.values())

    drift = check_schema(conn, Edition.COMMUNITY, pre_applied=True, post_applied=True)
    assert {(item.kind, item.relation, item.found) for item in drift} == {
        *((DriftKind.AGGREGATE, a.name, "incremental aggregate") for a in AGGREGATES),
        (DriftKind.COMPRESSION, EVENTS_TABLE, "not enabled"),
        (DriftKind.COMPRESSION_POLICY, EVENTS_TABLE, "no policy"),
        (DriftKind.RETENTION_POLICY, EVENTS_TABLE, "no policy"),
    }

    steps = plan_repair(drift, Edition.COMMUNITY)
    assert steps[0].name == f"set the compression settings of {EVENTS_TABLE}"
    assert [s.name for s in steps if not s.transactional] == [
        f"backfill {a.name}" for a in AGGREGATES
    ]
    for step in steps:
        run_statements(community_session, step.statements, transactional=step.transactional)

    assert check_schema(conn, Edition.COMMUNITY, pre_applied=True, post_applied=True) == ()
    # Rebuilt as continuous aggregates and backfilled: the same rows as the fallback held.
    assert_same({a.name: aggregate_rows(conn, a.name) for a in AGGREGATES}, before)
    assert plan_repair((), Edition.COMMUNITY) == []


@pytest.mark.community
def test_altered_or_missing_policies_are_drift_that_repair_resets(
    community_session: SqlSession,
) -> None:
    apply_migrations(community_session)
    conn = cast(Any, PsycopgShim(community_session))
    assert check_schema(conn, Edition.COMMUNITY, pre_applied=True, post_applied=True) == ()
    dau, tasks = AGGREGATES[0].name, AGGREGATES[1].name
    community_session.execute(f"SELECT remove_retention_policy('{EVENTS_TABLE}')")
    community_session.execute(f"SELECT remove_continuous_aggregate_policy('{tasks}')")
    community_session.execute(
        f"SELECT remove_continuous_aggregate_policy('{dau}');"
        f" SELECT add_continuous_aggregate_policy('{dau}', start_offset => INTERVAL '10 days',"
        " end_offset => INTERVAL '1 hour', schedule_interval => INTERVAL '1 hour')"
    )
    community_session.execute(
        f"ALTER MATERIALIZED VIEW {AGGREGATES[2].name} SET (timescaledb.materialized_only = true)"
    )

    drift = check_schema(conn, Edition.COMMUNITY, pre_applied=True, post_applied=True)
    assert sorted(str(item) for item in drift) == sorted([
        f"retention policy of {EVENTS_TABLE}: expected drop after 90 days, found no policy",
        f"refresh policy of {tasks}: expected every 1 hour, start offset 3 days, "
        "end offset 1 hour, found no policy",
        f"refresh policy of {dau}: expected every 1 hour, start offset 3 days, "
        "end offset 1 hour, found every 1 hour, start offset 10 days, end offset 1 hour",
        f"real-time aggregation of {AGGREGATES[2].name}: expected materialized_only = false, "
        "found materialized_only = true",
    ])
    for step in plan_repair(drift, Edition.COMMUNITY):
        run_statements(community_session, step.statements, transactional=step.transactional)
    assert check_schema(conn, Edition.COMMUNITY, pre_applied=True, post_applied=True) == ()


# --- repair end to end, on a multi-connection server -----------------------------------------


@pytest.mark.server
def test_repair_rebuilds_a_dropped_aggregate_with_its_rows_and_is_then_a_no_op(
    database_url: str,
) -> None:
    assert invoke("all", "--database-url", database_url)[0] == 0
    dau = AGGREGATES[0].name
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(recent_history())
    assert invoke("maintain", "--database-url", database_url)[0] == 0
    with psycopg.connect(database_url, autocommit=True) as conn:
        before = aggregate_rows(conn, dau)
        edition = inspect_server(conn).edition
        # The Apache edition's aggregate is a view over a table of rows, which stays.
        conn.execute(f"DROP {'VIEW' if edition is Edition.APACHE else 'MATERIALIZED VIEW'} {dau}")
    assert before

    code, out, err = invoke("status", "--json", "--database-url", database_url)
    assert code == 1, err
    document = json.loads(out)
    assert document["pending"] == [] and document["drifted"] == []
    assert [item["relation"] for item in document["schema_drift"]] == [dau]
    assert document["schema_drift"][0]["found"] == "nothing"

    code, out, err = invoke("repair", "--json", "--database-url", database_url)
    assert code == 0, err
    document = json.loads(out)
    assert [step["name"] for step in document["steps"]] == [
        f"rebuild {dau} as a {document['found'][0].split('expected ')[1].split(',')[0]}",
        "grant the reader role the aggregates",
        f"backfill {dau}",
    ] + (
        [f"convert {dau} into an incremental aggregate"]
        if edition is Edition.APACHE else []
    )
    assert document["remaining"] == []
    assert invoke("status", "--database-url", database_url)[0] == 0
    with psycopg.connect(database_url, autocommit=True) as conn:
        assert_same(aggregate_rows(conn, dau), before)

    code, out, _ = invoke("repair", "--database-url", database_url)
    assert code == 0
    assert "nothing to repair" in out


@pytest.mark.server
def test_repair_refuses_a_database_with_pending_migrations(database_url: str) -> None:
    apply(database_url, (Phase.PRE,))
    code, _, err = invoke("repair", "--database-url", database_url)
    assert code == 2
    assert "migrations are pending" in err and "analytics-migrate all" in err


@pytest.mark.server
def test_repair_turns_a_fallback_built_on_a_community_server_into_the_real_schema(
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    full_timescaledb: FullTimescaleDB | None,
) -> None:
    if full_timescaledb is None:
        pytest.skip("needs a Community-edition server with several connections")
    # Build what the edition bug built: post rendered for the Apache edition.
    monkeypatch.setattr(runner, "_edition_for", lambda *_: Edition.APACHE)
    apply(database_url, (Phase.PRE, Phase.POST))
    monkeypatch.undo()
    if runner.inspect_url(database_url).edition is not Edition.COMMUNITY:
        pytest.skip(f"{full_timescaledb.source} is not a Community-edition server")
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(recent_history())
        # The Apache edition's aggregates: views over incrementally refreshed tables.
        for aggregate in AGGREGATES:
            conn.execute("SELECT analytics_refresh_aggregate(%s)", (aggregate.name,))
        before = {a.name: aggregate_rows(conn, a.name) for a in AGGREGATES}

    code, out, _ = invoke("status", "--json", "--database-url", database_url)
    assert code == 1
    assert len(json.loads(out)["schema_drift"]) == len(AGGREGATES) + 3

    code, _, err = invoke("repair", "--database-url", database_url)
    assert code == 0, err
    code, out, _ = invoke("status", "--json", "--database-url", database_url)
    assert code == 0
    assert {a["kind"] for a in json.loads(out)["aggregates"]} == {"continuous aggregate"}
    with psycopg.connect(database_url, autocommit=True) as conn:
        after = {a.name: aggregate_rows(conn, a.name) for a in AGGREGATES}
    assert_same(after, before)


@pytest.mark.server
def test_a_changed_chunk_interval_is_drift_that_repair_resets_for_new_chunks(
    events_url: str,
) -> None:
    with psycopg.connect(events_url, autocommit=True) as conn:
        conn.execute(f"SELECT set_chunk_time_interval('{EVENTS_TABLE}', INTERVAL '7 days')")
        (drift,) = check_schema(
            conn, inspect_server(conn).edition or Edition.APACHE,
            pre_applied=True, post_applied=False,
        )
    assert str(drift) == f"chunk interval of {EVENTS_TABLE}: expected 1 day, found 7 days"
    (step,) = plan_repair((drift,), Edition.APACHE)
    with psycopg.connect(events_url, autocommit=True) as conn:
        for statement in step.statements:
            conn.execute(statement)
        edition = inspect_server(conn).edition or Edition.APACHE
        assert check_schema(conn, edition, pre_applied=True, post_applied=False) == ()
