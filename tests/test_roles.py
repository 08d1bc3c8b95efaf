"""Least-privilege roles: services write as analytics_writer, reports and status read as
analytics_reader, and neither can do more; a missing grant is drift that repair restores."""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql
from typer.testing import CliRunner

from analytics_core import AnalyticsClient
from analytics_core.cli.migrate import app as migrate_app
from analytics_core.cli.report import app as report_app
from analytics_core.events import TaskCreated
from analytics_core.schema import AGGREGATES, EVENTS_TABLE, READER_ROLE, WRITER_ROLE

pytestmark = pytest.mark.server

LoginAs = Callable[[str], str]


@pytest.fixture
def migrated_url(database_url: str) -> str:
    result = CliRunner().invoke(migrate_app, ["all", "--database-url", database_url])
    assert result.exit_code == 0, result.stderr
    return database_url


@pytest.fixture
def login_as(migrated_url: str) -> Iterator[LoginAs]:
    """Makes login roles that are members of a group role; the URL to connect as one."""
    made: list[str] = []

    def login(group: str) -> str:
        role = f"analytics_test_{group.removeprefix('analytics_')}_{secrets.token_hex(3)}"
        password = secrets.token_hex(8)
        with psycopg.connect(migrated_url, autocommit=True) as admin:
            admin.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {} IN ROLE {}").format(
                    sql.Identifier(role), sql.Literal(password), sql.Identifier(group)
                )
            )
        made.append(role)
        parts = urlsplit(migrated_url)
        host = parts.netloc.rpartition("@")[2]
        return urlunsplit(parts._replace(netloc=f"{role}:{password}@{host}"))

    yield login
    with psycopg.connect(migrated_url, autocommit=True) as admin:
        for role in made:
            admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def denied(url: str, statement: str) -> bool:
    with psycopg.connect(url, autocommit=True) as conn:
        try:
            conn.execute(statement)
        except psycopg.errors.InsufficientPrivilege:
            return True
    return False


def drop_statement(url: str, name: str) -> str:
    """How the aggregate ``name`` is dropped: a continuous aggregate as a materialized view,
    the Apache edition's aggregate as the view it is."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT EXISTS (SELECT FROM timescaledb_information.continuous_aggregates"
            " WHERE view_name = %s)",
            (name,),
        ).fetchone()
    return f"DROP {'MATERIALIZED VIEW' if row and row[0] else 'VIEW'} {name}"


def test_a_writer_writes_events_and_can_do_nothing_else(login_as: LoginAs) -> None:
    writer = login_as(WRITER_ROLE)
    with AnalyticsClient(writer, service="roles-test") as client:
        for _ in range(20):
            client.track(TaskCreated(task_id=uuid.uuid4(), user_id=uuid.uuid4(), command="make"))
        assert client.flush(10)
        assert (client.stats.written, client.stats.failed) == (20, 0)

    assert denied(writer, f"SELECT * FROM {AGGREGATES[0].name}")
    assert denied(writer, f"DELETE FROM {EVENTS_TABLE}")
    assert denied(writer, f"ALTER TABLE {EVENTS_TABLE} ADD COLUMN x int")
    assert denied(writer, f"DROP TABLE {EVENTS_TABLE}")
    assert denied(writer, drop_statement(writer, AGGREGATES[1].name))


def test_a_reader_runs_status_dry_run_and_every_report_and_writes_nothing(
    login_as: LoginAs,
) -> None:
    reader = login_as(READER_ROLE)
    runner = CliRunner()
    for args in (["status"], ["dry-run"]):
        result = runner.invoke(migrate_app, [*args, "--database-url", reader])
        assert result.exit_code == 0, (args, result.stderr)
    today = datetime.now(UTC).date()
    user = "6f1c1c0e-3f0b-4b8e-9d59-0c9a4a3b2f10"
    for args in (
        ["dau"], ["latency"], ["tasks"], ["integrations"], ["auth"], ["cocoons"], ["errors"],
        ["entity", "user", user], ["leaderboard", "cocoon"], ["live"],
        ["tasks", "--since", (today - timedelta(days=3)).isoformat()],
    ):
        result = runner.invoke(report_app, [*args, "--json", "--database-url", reader])
        assert result.exit_code == 0, (args, result.stderr)
        json.loads(result.stdout)
    assert denied(reader, f"INSERT INTO {EVENTS_TABLE} (event_type, service, data)"
                          " VALUES ('x', 'y', '{}')")
    assert denied(reader, drop_statement(reader, AGGREGATES[0].name))


def test_the_reader_cannot_read_the_applications_own_tables(
    migrated_url: str, login_as: LoginAs
) -> None:
    # The analytics schema is often an application's `public`: its tables stay its own, and
    # status does not call them drift.
    with psycopg.connect(migrated_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE app_users (id int, email text)")
    reader = login_as(READER_ROLE)
    assert denied(reader, "SELECT * FROM app_users")
    result = CliRunner().invoke(migrate_app, ["status", "--database-url", migrated_url])
    assert result.exit_code == 0, result.stdout


def test_a_revoked_grant_is_drift_that_repair_restores(migrated_url: str) -> None:
    with psycopg.connect(migrated_url, autocommit=True) as conn:
        conn.execute(f"REVOKE INSERT ON {EVENTS_TABLE} FROM {WRITER_ROLE}")
        conn.execute(f"REVOKE SELECT ON {AGGREGATES[2].name} FROM {READER_ROLE}")
    runner = CliRunner()
    result = runner.invoke(migrate_app, ["status", "--json", "--database-url", migrated_url])
    assert result.exit_code == 1
    drift = {item["relation"]: item["found"] for item in json.loads(result.stdout)["schema_drift"]}
    assert drift == {
        WRITER_ROLE: f"without INSERT on {EVENTS_TABLE}",
        READER_ROLE: f"no SELECT on {AGGREGATES[2].name}",
    }
    result = runner.invoke(migrate_app, ["repair", "--database-url", migrated_url])
    assert result.exit_code == 0, result.stderr
    result = runner.invoke(migrate_app, ["status", "--database-url", migrated_url])
    assert result.exit_code == 0, result.stdout
