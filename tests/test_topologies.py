"""Production topologies: PgBouncer in transaction and in session pool mode in front of a
server, and a streaming hot standby of it. Exit codes, messages, rows written, and what is
left behind on the pooled server sessions and in pg_locks."""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from typer.testing import CliRunner

from analytics_core import AnalyticsClient
from analytics_core.cli.migrate import app as migrate_app
from analytics_core.cli.report import app as report_app
from analytics_core.events import TaskCreated
from analytics_core.migrate import Phase, apply
from analytics_core.migrate.pooling import ADVISORY_LOCK_KEY, POOLER_ADVICE
from analytics_core.migrate.sources import load_migrations
from analytics_core.schema import EVENTS_TABLE
from devtools.pytest_plugin import TOPOLOGY_CLUSTER
from devtools.server_engine import stop_server
from devtools.topologies import ensure_standby, wait_for_replay
from tests.test_migrate_cli import applied_ids

pytestmark = pytest.mark.server

ALL_IDS = [m.id for phase in Phase for m in load_migrations()[phase]]
MIGRATE_SCRIPT = str(Path(sys.executable).with_name("analytics-migrate"))
NO_URL_ENV = {"DATABASE_URL": "", "PLATFORM_DATABASE_URL": "", "ANALYTICS_MIGRATE_DATABASE_URL": ""}
POOLER_REFUSAL = "error: the database URL goes through a transaction pooler"
STANDBY_REFUSAL = (
    "error: this server is a hot standby (read-only, in recovery): run analytics-migrate "
    "against the primary; status works on a standby"
)
WRITES = 200


def migrate(
    *args: str, url: str | None = None, env: dict[str, str] | None = None
) -> tuple[int, str, str]:
    argv = [*args, *(["--database-url", url] if url else [])]
    result = CliRunner().invoke(migrate_app, argv, env={**NO_URL_ENV, **(env or {})})
    return result.exit_code, result.stdout, result.stderr


def report(*args: str, url: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(report_app, [*args, "--database-url", url], env=NO_URL_ENV)
    return result.exit_code, result.stdout, result.stderr


def lock_holders(url: str) -> list[int]:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory'"
            " AND (classid::bigint << 32 | objid::bigint) = %s",
            (ADVISORY_LOCK_KEY,),
        ).fetchall()
    return [row[0] for row in rows]


def one_line(text: str) -> str:
    return " ".join(text.split())


def write_through(url: str, rows: int) -> None:
    """A plain writer on the pool: one autocommit INSERT per row, as many applications do."""
    at = datetime.now(UTC) - timedelta(minutes=5)
    with psycopg.connect(url, autocommit=True, prepare_threshold=None) as conn:
        for n in range(rows):
            conn.execute(
                f'INSERT INTO {EVENTS_TABLE} ("timestamp", event_type, service, data)'
                " VALUES (%s, 'application_error', 'worker', %s::jsonb)",
                (at, f'{{"error_kind": "KeyError", "message": "{n}"}}'),
            )


def pooled_session_settings(url: str, sessions: int = 4) -> set[tuple[str, str, str]]:
    """The settings other pool users get, from every server session of the pool at once
    (the engine's pools hold 4)."""
    conns = [psycopg.connect(url, prepare_threshold=None) for _ in range(sessions)]
    try:
        seen = set()
        for conn in conns:  # each holds a transaction open, so each has its own server session
            row = conn.execute(
                "SELECT current_setting('transaction_read_only'),"
                " current_setting('statement_timeout'), current_setting('lock_timeout')"
            ).fetchone()
            assert row is not None
            seen.add((row[0], row[1], row[2]))
        return seen
    finally:
        for conn in conns:
            conn.close()


def prepared_statements_on_pool(url: str, sessions: int = 4) -> int:
    """Server-side prepared statements left on the pool's server sessions, all of them."""
    conns = [psycopg.connect(url, prepare_threshold=None) for _ in range(sessions)]
    try:
        counts = [
            conn.execute("SELECT count(*) FROM pg_prepared_statements").fetchone() for conn in conns
        ]
        return sum(count[0] for count in counts if count is not None)
    finally:
        for conn in conns:
            conn.close()


def track_from_threads(client: AnalyticsClient, threads: int, each: int) -> None:
    def work(n: int) -> None:
        for i in range(each):
            assert client.track(
                TaskCreated(task_id=uuid.uuid4(), user_id=uuid.uuid4(), command=f"t{n} {i}")
            )

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


def event_rows(url: str) -> tuple[int, int]:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            f"SELECT count(*), count(DISTINCT event_id) FROM {EVENTS_TABLE}"
        ).fetchone()
    assert row is not None
    return row[0], row[1]


# --- transaction pooling -----------------------------------------------------------------------


def test_reads_through_transaction_pooling_work_twice_and_leave_nothing_behind(
    topology_database_url: str, pgbouncer_transaction_url: str
) -> None:
    apply(topology_database_url, (Phase.PRE, Phase.POST))
    for _ in range(2):  # the second run is where leftover prepared statements used to collide
        code, out, err = migrate("status", url=pgbouncer_transaction_url)
        assert (code, err) == (0, ""), err
        assert "post_" in out
        code, out, err = migrate("dry-run", url=pgbouncer_transaction_url)
        assert code == 0, err
        assert "nothing pending" in out
        code, out, err = report("dau", "--json", url=pgbouncer_transaction_url)
        assert code == 0, err
        assert "prepared statement" not in err

    write_through(pgbouncer_transaction_url, WRITES)

    with psycopg.connect(topology_database_url) as conn:
        assert conn.execute(f"SELECT count(*) FROM {EVENTS_TABLE}").fetchone() == (WRITES,)
    assert pooled_session_settings(pgbouncer_transaction_url) == {("off", "0", "0")}
    code, _, err = migrate("maintain", url=pgbouncer_transaction_url)
    assert code == 0, err


def test_clients_through_transaction_pooling_write_everything_and_leave_nothing_behind(
    topology_database_url: str, pgbouncer_transaction_url: str
) -> None:
    apply(topology_database_url, (Phase.PRE, Phase.POST))
    # Readers on the same pool first: what they set must not reach the writers' transactions.
    for args in (("status",), ("dry-run",)):
        assert migrate(*args, url=pgbouncer_transaction_url)[0] == 0
    assert report("live", "--json", url=pgbouncer_transaction_url)[0] == 0
    # Two clients and a plain writer share the pool's 4 server sessions, so each client's
    # transactions run on sessions the others used before; small batches make many of them.
    clients = [
        AnalyticsClient(pgbouncer_transaction_url, service=f"pooled-{n}", batch_size=25)
        for n in range(2)
    ]
    with contextlib.ExitStack() as stack:
        for client in clients:
            stack.callback(client.close, 10)
        writer = threading.Thread(target=write_through, args=(pgbouncer_transaction_url, WRITES))
        writer.start()
        for client in clients:
            track_from_threads(client, threads=4, each=500)
        writer.join()
        for client in clients:
            assert client.flush(timeout=30) is True
    for client in clients:
        stats = client.stats
        assert (stats.written, stats.failed, stats.dropped) == (2000, 0, 0), stats
        assert (stats.retried, stats.last_error) == (0, None), stats
    assert event_rows(topology_database_url) == (4000 + WRITES, 4000 + WRITES)
    assert pooled_session_settings(pgbouncer_transaction_url) == {("off", "0", "0")}
    assert prepared_statements_on_pool(pgbouncer_transaction_url) == 0


def test_deploys_through_transaction_pooling_are_refused_and_release_the_lock(
    topology_database_url: str, pgbouncer_transaction_url: str
) -> None:
    for command in ("all", "pre", "post"):
        code, out, err = migrate(command, url=pgbouncer_transaction_url)
        assert code == 2, (command, out, err)
        message = one_line(err)
        assert message.startswith(POOLER_REFUSAL), message
        assert message.endswith(POOLER_ADVICE), message
    assert lock_holders(topology_database_url) == []
    with psycopg.connect(topology_database_url) as conn:
        ledger = conn.execute("SELECT to_regclass('_yoyo_migration') IS NULL").fetchone()
    assert ledger == (True,)  # nothing applied, not even yoyo's ledger created
    # A direct deploy afterwards neither waits for a leftover lock nor finds anything applied.
    code, _, err = migrate("all", "--lock-wait", "5", url=topology_database_url)
    assert code == 0, err
    assert applied_ids(topology_database_url) == ALL_IDS
    code, _, err = migrate("repair", url=pgbouncer_transaction_url)
    assert (code, one_line(err).startswith(POOLER_REFUSAL)) == (2, True), err
    assert lock_holders(topology_database_url) == []


def test_two_concurrent_deploys_through_transaction_pooling_both_refuse(
    topology_database_url: str, pgbouncer_transaction_url: str
) -> None:
    env = {**os.environ, **NO_URL_ENV, "ANALYTICS_MIGRATE_DATABASE_URL": pgbouncer_transaction_url}
    processes = [
        subprocess.Popen(
            [MIGRATE_SCRIPT, "all", "--lock-wait", "20"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(2)
    ]
    outcomes = []
    for process in processes:
        _, err = process.communicate(timeout=120)
        outcomes.append((process.returncode, one_line(err).startswith(POOLER_REFUSAL), err))
    assert [outcome[:2] for outcome in outcomes] == [(2, True), (2, True)], outcomes
    assert lock_holders(topology_database_url) == []
    with psycopg.connect(topology_database_url) as conn:
        assert conn.execute("SELECT to_regclass('_yoyo_migration') IS NULL").fetchone() == (True,)
    code, _, err = migrate("all", "--lock-wait", "5", url=topology_database_url)
    assert code == 0, err
    assert applied_ids(topology_database_url) == ALL_IDS


def test_the_migration_url_variable_comes_before_database_url(
    topology_database_url: str, pgbouncer_transaction_url: str
) -> None:
    env = {
        "ANALYTICS_MIGRATE_DATABASE_URL": topology_database_url,
        "DATABASE_URL": pgbouncer_transaction_url,
    }
    code, _, err = migrate("all", env=env)
    assert code == 0, err
    assert applied_ids(topology_database_url) == ALL_IDS
    # The report command keeps reading DATABASE_URL.
    result = CliRunner().invoke(report_app, ["dau", "--json"], env={**NO_URL_ENV, **env})
    assert result.exit_code == 0, result.stderr


def test_a_url_with_startup_options_through_pgbouncer_is_explained(
    pgbouncer_session_url: str,
) -> None:
    code, _, err = migrate("status", url=pgbouncer_session_url + "?options=-c%20work_mem%3D64MB")
    assert code == 2
    message = one_line(err)
    assert "refused the startup parameter 'options'" in message, message
    assert "ignore_startup_parameters" in message


# --- session pooling ---------------------------------------------------------------------------


def test_deploys_through_session_pooling_work(
    topology_database_url: str, pgbouncer_session_url: str
) -> None:
    code, out, err = migrate("all", url=pgbouncer_session_url)
    assert code == 0, err
    assert applied_ids(topology_database_url) == ALL_IDS
    code, out, err = migrate("all", url=pgbouncer_session_url)
    assert (code, out.strip()) == (0, "nothing to apply: the schema is up to date"), err
    code, _, err = migrate("status", url=pgbouncer_session_url)
    assert code == 0, err
    assert lock_holders(topology_database_url) == []
    # The lock_timeout set on yoyo's sessions went with them (DISCARD ALL on release).
    assert pooled_session_settings(pgbouncer_session_url, sessions=3) == {("off", "0", "0")}


# --- hot standby -------------------------------------------------------------------------------


def test_a_standby_is_read_and_never_migrated(topology_database_url: str, standby_url: str) -> None:
    apply(topology_database_url, (Phase.PRE, Phase.POST))
    wait_for_replay(topology_database_url, standby_url)

    code, out, err = migrate("status", url=standby_url)
    assert code == 0, out + err
    assert "warning: this server is a hot standby" in one_line(err)
    code, out, err = migrate("dry-run", url=standby_url)
    assert (code, "nothing pending" in out) == (0, True), err

    for command in ("all", "pre", "post", "maintain", "repair"):
        code, out, err = migrate(command, url=standby_url)
        assert code == 2, (command, out, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1, (command, err)
        assert lines[0] == STANDBY_REFUSAL, (command, err)
    assert applied_ids(standby_url) == ALL_IDS


def test_a_standby_whose_primary_recycled_its_wal_is_copied_again(
    topology_database_url: str, standby_url: str
) -> None:
    """A standby left stopped while its primary moved on can never catch up by streaming:
    ``standby-start`` must notice, copy it again, and serve the primary's newest data."""
    standby_name = f"{TOPOLOGY_CLUSTER}-standby"
    stop_server(standby_name)
    with psycopg.connect(topology_database_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE written_while_stopped (n int)")
        for n in range(3):
            # Each switch starts a new WAL segment; the checkpoint removes the ones behind it.
            conn.execute("INSERT INTO written_while_stopped VALUES (%s)", (n,))
            conn.execute("SELECT pg_switch_wal()")
            conn.execute("CHECKPOINT")

    ensure_standby(standby_name, TOPOLOGY_CLUSTER)

    wait_for_replay(topology_database_url, standby_url)
    with psycopg.connect(standby_url, autocommit=True) as conn:
        rows = conn.execute("SELECT n FROM written_while_stopped ORDER BY n").fetchall()
    assert rows == [(0,), (1,), (2,)]


def test_a_client_on_a_standby_says_so_and_waits_without_spinning(
    topology_database_url: str, standby_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    apply(topology_database_url, (Phase.PRE, Phase.POST))
    wait_for_replay(topology_database_url, standby_url)
    client = AnalyticsClient(standby_url, service="misrouted", batch_size=10, max_backoff=0.2)
    with caplog.at_level(logging.INFO, logger="analytics_core"):
        track_from_threads(client, threads=1, each=20)
        waited_from = time.monotonic()
        assert client.flush(timeout=2) is False
        waited_s = time.monotonic() - waited_from
        stats = client.stats
        assert client.close(timeout=1) is False

    assert stats.written == 0
    assert stats.last_error is not None
    assert stats.last_error.startswith("25006 ReadOnlySqlTransaction"), stats.last_error
    assert "target_session_attrs=read-write" in stats.last_error
    # Retried, after pauses: the backoff starts at 50 ms (halved at most by its jitter), so
    # a client that spun would have retried hundreds of times in this wait.
    assert 1 <= stats.retried <= waited_s / 0.025 + 1, (stats.retried, waited_s)
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors and "the server is read-only (a hot standby?)" in errors[0], errors
    assert "This is not a transient error" in errors[0]
    final = client.stats
    assert (final.written, final.dropped, final.queue_depth) == (0, 20, 0)
    summary = caplog.records[-1].getMessage()
    assert "20 dropped" in summary and "read-only" in summary, summary
    assert event_rows(topology_database_url) == (0, 0)


def test_a_url_with_target_session_attrs_finds_the_primary_behind_the_standby(
    topology_database_url: str, standby_url: str
) -> None:
    apply(topology_database_url, (Phase.PRE, Phase.POST))
    wait_for_replay(topology_database_url, standby_url)
    standby, primary = conninfo_to_dict(standby_url), conninfo_to_dict(topology_database_url)
    # The standby is listed first: libpq tries it, sees it is read-only, and moves on.
    both = make_conninfo(
        standby_url,
        host=f"{standby['host']},{primary['host']}",
        port=f"{standby['port']},{primary['port']}",
        target_session_attrs="read-write",
    )
    with AnalyticsClient(both, service="routed", batch_size=10) as client:
        track_from_threads(client, threads=2, each=50)
        assert client.flush(timeout=10) is True
        assert (client.stats.written, client.stats.retried) == (100, 0)
    assert event_rows(topology_database_url) == (100, 100)
