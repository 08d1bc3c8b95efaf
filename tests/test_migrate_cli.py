"""`analytics-migrate` against a real server: exit codes, idempotency, read-only commands,
failure and rerun, concurrent deploys, lock timeouts, password masking, preflight."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
from typer.testing import CliRunner

from analytics_core.cli.migrate import app
from analytics_core.migrate import sources
from analytics_core.migrate.edition import Edition, inspect_server
from analytics_core.migrate.incremental import incremental_aggregates
from analytics_core.migrate.runner import _ADVISORY_LOCK_KEY
from analytics_core.migrate.sources import Phase, load_migrations
from analytics_core.schema import AGGREGATES, READER_ROLE

pytestmark = pytest.mark.server

ALL_IDS = [m.id for phase in Phase for m in load_migrations()[phase]]
PRE_IDS = [m.id for m in load_migrations()[Phase.PRE]]
MIGRATE_SCRIPT = str(Path(sys.executable).with_name("analytics-migrate"))


def run(*args: str, url: str | None = None) -> tuple[int, str, str]:
    """Run the CLI in-process; returns (exit code, stdout, stderr)."""
    runner = CliRunner()
    argv = [*args, *(["--database-url", url] if url else [])]
    result = runner.invoke(app, argv, env={"DATABASE_URL": "", "PLATFORM_DATABASE_URL": ""})
    return result.exit_code, result.stdout, result.stderr


def run_process(*args: str, url: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the installed console script, as a deploy pipeline does."""
    env = {**os.environ, "DATABASE_URL": url}
    return subprocess.run(
        [MIGRATE_SCRIPT, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )


def applied_ids(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT migration_id FROM _yoyo_migration ORDER BY applied_at_utc, migration_id"
        ).fetchall()
    return [row[0] for row in rows]


def table_exists(url: str, name: str) -> bool:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()
    return bool(row and row[0])


@pytest.fixture
def migrations_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private copy of the migration files that the CLI reads instead of the real ones."""
    root = tmp_path / "migrations"
    shutil.copytree(sources.migrations_root(), root)
    monkeypatch.setattr(sources, "migrations_root", lambda: root)
    yield root


def test_all_applies_everything_then_is_a_no_op(database_url: str) -> None:
    code, out, _ = run("all", url=database_url)
    assert code == 0
    assert f"applied {len(ALL_IDS)} migration(s)" in out
    assert sorted(applied_ids(database_url)) == sorted(ALL_IDS)
    with psycopg.connect(database_url) as conn:
        edition = inspect_server(conn).edition
        incremental = set(incremental_aggregates(conn))
        continuous = {
            r[0] for r in conn.execute(
                "SELECT view_name FROM timescaledb_information.continuous_aggregates"
            ).fetchall()
        }
        dimension = conn.execute(
            "SELECT time_interval FROM timescaledb_information.dimensions"
            " WHERE hypertable_name = 'analytics_events'"
        ).fetchone()
    # The edition read once `pre` created the extension decides what `post` builds.
    built = continuous if edition is Edition.COMMUNITY else incremental
    assert {a.name for a in AGGREGATES} <= built
    assert dimension is not None and str(dimension[0]) == "1 day, 0:00:00"

    code, out, _ = run("all", url=database_url)
    assert code == 0
    assert "nothing to apply" in out
    assert sorted(applied_ids(database_url)) == sorted(ALL_IDS)


def test_status_exit_codes_and_json(database_url: str) -> None:
    code, out, _ = run("status", "--json", url=database_url)
    assert code == 1
    before = json.loads(out)
    assert before["pending"] == ALL_IDS
    assert before["up_to_date"] is False

    assert run("all", url=database_url)[0] == 0
    code, out, _ = run("status", "--json", url=database_url)
    assert code == 0
    after = json.loads(out)
    assert after["pending"] == [] and after["drifted"] == []
    assert after["server"]["edition"] in {"apache", "community"}
    assert {f["name"] for f in after["features"]} == {"compression", "retention", "aggregates"}
    assert [a["name"] for a in after["aggregates"]] == [a.name for a in AGGREGATES]
    assert after["hypertable"]["chunks"] == 0

    code, out, _ = run("status", url=database_url)
    assert code == 0
    assert "pre_0001_analytics_events" in out and "applied" in out


def test_status_reports_a_migration_edited_after_it_was_applied(
    database_url: str, migrations_copy: Path
) -> None:
    assert run("all", url=database_url)[0] == 0
    edited = migrations_copy / "post" / "post_0003_refresh_policies.sql"
    edited.write_text(edited.read_text() + "\n-- edited after the fact\n")
    code, out, _ = run("status", "--json", url=database_url)
    assert code == 1
    assert json.loads(out)["drifted"] == ["post_0003_refresh_policies"]

    # A deploy refuses to go on from a drifted schema, unless told to.
    code, out, err = run("all", url=database_url)
    assert code == 1 and out == ""
    assert "post_0003_refresh_policies was edited after it was applied" in " ".join(err.split())
    code, out, _ = run("all", "--allow-drift", url=database_url)
    assert code == 0 and "nothing to apply" in out


def test_an_applied_migration_whose_file_is_gone_is_drift(
    database_url: str, migrations_copy: Path
) -> None:
    assert run("all", url=database_url)[0] == 0
    (migrations_copy / "post" / "post_0003_refresh_policies.sql").unlink()
    code, out, _ = run("status", "--json", url=database_url)
    assert code == 1
    document = json.loads(out)
    assert document["unknown_migrations"] == ["post_0003_refresh_policies"]
    assert document["drifted"] == ["post_0003_refresh_policies"]
    code, out, _ = run("status", url=database_url)
    assert "no file" in out
    code, _, err = run("post", url=database_url)
    assert code == 1
    assert "post_0003_refresh_policies is applied but has no file here" in " ".join(err.split())


def test_a_deploy_refuses_a_schema_that_drifted_until_repaired(database_url: str) -> None:
    assert run("all", url=database_url)[0] == 0
    with psycopg.connect(database_url, autocommit=True) as conn:
        # The Apache edition's aggregate is a view over its table of rows.
        apache = inspect_server(conn).edition is Edition.APACHE
        conn.execute(f"DROP {'VIEW' if apache else 'MATERIALIZED VIEW'} {AGGREGATES[0].name}")
    code, _, err = run("all", url=database_url)
    assert code == 1
    assert f"aggregate of {AGGREGATES[0].name}" in err and "repair" in err
    assert run("repair", url=database_url)[0] == 0
    code, out, _ = run("all", url=database_url)
    assert code == 0 and "nothing to apply" in out


def test_post_refuses_while_pre_is_pending(database_url: str) -> None:
    code, _, err = run("post", url=database_url)
    assert code == 1
    assert "pre-deploy migrations are pending: pre_0001_analytics_events" in err
    assert not table_exists(database_url, "_yoyo_migration")

    assert run("pre", url=database_url)[0] == 0
    assert applied_ids(database_url) == PRE_IDS
    assert run("post", url=database_url)[0] == 0
    assert sorted(applied_ids(database_url)) == sorted(ALL_IDS)


def test_dry_run_and_status_work_read_only_and_change_nothing(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        dbname = conn.info.dbname
        conn.execute(f'ALTER DATABASE "{dbname}" SET default_transaction_read_only = on')

    code, out, _ = run("dry-run", "--json", url=database_url)
    assert code == 0
    plan = json.loads(out)
    assert [m["id"] for m in plan["pending"]] == ALL_IDS
    (backfill,) = [m for m in plan["pending"] if m["id"] == "post_0004_backfill"]
    assert backfill["transactional"] is False
    assert len(backfill["statements"]) == len(AGGREGATES)
    assert run("status", url=database_url)[0] == 1

    # A write through the same settings fails, so the commands above really were read-only.
    assert run("all", url=database_url)[0] == 2
    assert not table_exists(database_url, "_yoyo_migration")
    assert not table_exists(database_url, "analytics_events")


def test_dry_run_after_pre_lists_only_post_with_sql(database_url: str) -> None:
    assert run("pre", url=database_url)[0] == 0
    code, out, _ = run("dry-run", url=database_url)
    assert code == 0
    assert "pre_0001_analytics_events" not in out
    assert "post_0002_aggregates" in out
    assert "CREATE MATERIALIZED VIEW analytics_daily_active_users" in out
    assert "without a transaction" in out


def test_dry_run_offline_renders_an_edition_without_a_database() -> None:
    code, out, _ = run("dry-run", "--edition", "community", "--json")
    assert code == 0
    plan = json.loads(out)
    assert plan["edition"] == "community"
    statements = "\n".join(s for m in plan["pending"] for s in m["statements"])
    assert "timescaledb.continuous" in statements
    assert "REFRESH MATERIALIZED VIEW" not in statements


def test_failed_migration_keeps_earlier_ones_and_rerun_applies_the_rest(
    database_url: str, migrations_copy: Path
) -> None:
    broken = migrations_copy / "post" / "post_0002_aggregates.sql"
    original = broken.read_text()
    broken.write_text(original.replace("FROM analytics_events", "FROM analytics_eventz", 1))

    code, _, err = run("all", url=database_url)
    assert code == 2
    assert "post_0002_aggregates" in err
    assert "42P01" in err  # undefined_table
    assert applied_ids(database_url) == [*PRE_IDS, "post_0001_compression_retention"]
    assert not table_exists(database_url, "analytics_daily_active_users")

    broken.write_text(original)
    code, out, _ = run("all", url=database_url)
    assert code == 0
    # Everything from the broken migration on: all post migrations but the first.
    assert f"applied {len(load_migrations()[Phase.POST]) - 1} migration(s)" in out
    assert sorted(applied_ids(database_url)) == sorted(ALL_IDS)


def test_concurrent_deploys_apply_each_migration_exactly_once(database_url: str) -> None:
    env = {**os.environ, "DATABASE_URL": database_url}
    deploys = [
        subprocess.Popen(
            [MIGRATE_SCRIPT, "all", "--json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )
        for _ in range(4)
    ]
    outputs = [deploy.communicate(timeout=180) for deploy in deploys]
    assert [deploy.returncode for deploy in deploys] == [0, 0, 0, 0], outputs
    applied_per_deploy = [json.loads(stdout)["applied"] for stdout, _ in outputs]
    assert sorted(mid for applied in applied_per_deploy for mid in applied) == sorted(ALL_IDS)
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT migration_id, count(*) FROM _yoyo_log WHERE operation = 'apply'"
            " GROUP BY migration_id"
        ).fetchall()
    assert dict(rows) == dict.fromkeys(ALL_IDS, 1)


def test_a_deploy_waiting_for_the_lock_gives_up_after_lock_wait(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (_ADVISORY_LOCK_KEY,))
        started = time.monotonic()
        code, _, err = run("all", "--lock-wait", "1", url=database_url)
        waited = time.monotonic() - started
    assert code == 2
    assert "another deploy held the migration lock for more than 1 s" in err
    assert 1 <= waited < 30
    assert not table_exists(database_url, "analytics_events")


def test_ddl_gives_up_quickly_behind_a_long_transaction(
    database_url: str, migrations_copy: Path
) -> None:
    assert run("all", url=database_url)[0] == 0
    (migrations_copy / "post" / "post_0005_add_column.sql").write_text(
        "ALTER TABLE analytics_events ADD COLUMN note text;\n"
    )
    with psycopg.connect(database_url) as reader:
        reader.execute("SELECT count(*) FROM analytics_events")  # holds ACCESS SHARE
        code, _, err = run("post", "--ddl-lock-timeout", "0.5", url=database_url)
        reader.rollback()
    assert code == 2
    assert "post_0005_add_column" in err and "55P03" in err
    assert run("post", url=database_url)[0] == 0
    assert applied_ids(database_url)[-1] == "post_0005_add_column"


def test_password_never_appears_in_output_or_errors(password_url: str) -> None:
    secret = urlsplit(password_url).password
    assert secret
    # Nothing listens on port 1: the connection error names the URL, masked.
    unreachable = urlsplit(password_url)._replace(
        netloc="someone:s3cret-W0rd@127.0.0.1:1"
    ).geturl()
    code, out, err = run("status", url=unreachable)
    assert code == 2
    assert "s3cret-W0rd" not in out + err
    assert "cannot connect" in err

    missing_db = password_url.rsplit("/", 1)[0] + "/no_such_database"
    code, out, err = run("all", url=missing_db)
    assert code == 2
    assert "no_such_database" in err
    assert secret not in out + err


def test_missing_or_bad_url_is_a_clear_error() -> None:
    code, _, err = run("status")
    assert code == 2
    assert "DATABASE_URL" in err
    code, _, err = run("status", url="mysql://root:hunter2@localhost/db")
    assert code == 2
    assert "not a PostgreSQL URL" in err and "hunter2" not in err


def test_preflight_refuses_a_server_without_preloaded_timescaledb(
    no_preload_server_url: str,
) -> None:
    code, _, err = run("all", url=no_preload_server_url)
    assert code == 2
    assert "shared_preload_libraries" in err
    assert not table_exists(no_preload_server_url, "_yoyo_migration")


def test_progress_is_shown_for_each_migration(database_url: str) -> None:
    result = run_process("all", url=database_url)
    assert result.returncode == 0, result.stderr
    assert "post_0004_backfill" in result.stderr
    assert "7/7" in result.stderr


def test_status_and_dry_run_say_when_a_deploy_would_refuse_the_server(
    no_preload_server_url: str,
) -> None:
    code, _, err = run("status", url=no_preload_server_url)
    assert code == 2
    assert "timescaledb is not in shared_preload_libraries" in " ".join(err.split())
    code, _, err = run("dry-run", url=no_preload_server_url)
    assert code == 0
    assert "a deploy would refuse this server" in " ".join(err.split())


def test_maintain_on_a_database_that_was_never_migrated(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
    code, out, err = run("maintain", url=database_url)
    assert code == 2 and out == ""
    assert "no analytics_events table" in err and "analytics-migrate all" in err


def test_a_role_that_may_not_create_tables_is_told_so(
    database_url: str, password_url: str
) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        conn.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
    role = urlsplit(password_url).username
    code, _, err = run("all", url=password_url)
    assert code == 2
    message = " ".join(err.split())
    assert f"role {role} may not create tables in schema public" in message
    assert f"GRANT CREATE ON SCHEMA public TO {role}" in message
    assert not table_exists(database_url, "_yoyo_migration")


def test_status_and_dry_run_work_for_a_role_without_settings_privileges(
    database_url: str, password_url: str
) -> None:
    assert run("all", url=database_url)[0] == 0
    role = urlsplit(password_url).username
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f'GRANT {READER_ROLE} TO "{role}"')
    code, out, err = run("status", "--json", url=password_url)
    assert code == 0, err
    assert json.loads(out)["server"]["preloaded"] is True
    code, out, err = run("dry-run", "--json", url=password_url)
    assert code == 0, err
    assert json.loads(out)["pending"] == []


def test_a_server_crash_during_a_migration_names_the_migration(
    database_url: str, migrations_copy: Path
) -> None:
    assert run("all", url=database_url)[0] == 0
    (migrations_copy / "post" / "post_0099_slow.sql").write_text(
        "SELECT pg_sleep(30);\n", encoding="utf-8"
    )

    def crash_while_it_runs() -> None:
        # As a server crash does: every session of the deploy ends, the one holding the
        # deploy lock included.
        with psycopg.connect(database_url, autocommit=True) as admin:
            for _ in range(100):
                running = admin.execute(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE query LIKE 'SELECT pg_sleep(30)%%' AND pid <> pg_backend_pid()"
                ).fetchone()
                if running and running[0]:
                    admin.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                    return
                time.sleep(0.1)

    killer = threading.Thread(target=crash_while_it_runs)
    killer.start()
    code, _, err = run("all", url=database_url)
    killer.join()
    assert code == 2
    message = " ".join(err.split())
    assert "migration post_0099_slow failed" in message
    assert "post_0099_slow" not in applied_ids(database_url)
