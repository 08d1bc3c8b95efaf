"""Bring a schema that drifted from its edition back to what the migrations build.

The typical case: an older analytics-migrate misread a fresh Community-edition database as
Apache and built the fallback (plain materialized views, no compression, no policies); or a
database moved between editions. :func:`repair` reads the drift (:mod:`.drift`) and fixes
each object with the SQL of the migration that builds it, rendered for the server's edition,
so that nothing is written twice:

* an aggregate of the wrong kind is dropped and created again, with its indexes and refresh
  policy, in one short transaction (readers see it disappear and return at once: with
  real-time aggregation it answers from the raw events until the backfill is done), then
  backfilled outside the transaction, one aggregate per step;
* missing or altered compression settings and policies are set again;
* Apache edition: the rebuilt materialized view is then converted as post_0006 converts it,
  merging into the aggregate's table of materialized rows where that survived, so its rows
  older than the raw retention stay.

Aggregates are derived from the raw events, which this never touches, so no data is lost;
rows older than the raw retention exist only in the aggregates and stay where the aggregate
already has the right kind. Safe to rerun: with no drift it does nothing. Runs under the
deploy lock, with ``lock_timeout`` on every DDL statement.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import psycopg
from psycopg import sql

from analytics_core.migrate.drift import DriftKind, SchemaDrift, check_schema
from analytics_core.migrate.edition import Edition, edition_to_maintain
from analytics_core.migrate.errors import MigrateError
from analytics_core.migrate.incremental import KIND as INCREMENTAL
from analytics_core.migrate.ledger import read_ledger
from analytics_core.migrate.runner import (
    DEFAULT_DDL_LOCK_TIMEOUT,
    DEFAULT_LOCK_WAIT,
    connect,
    deploy_lock,
    inspect_url,
    milliseconds,
)
from analytics_core.migrate.sources import MigrationFile, Phase, load_migrations
from analytics_core.schema import CHUNK_INTERVAL, EVENTS_TABLE

# How the backfill migration refreshes an aggregate, on either edition.
_REFRESH = r"(CALL refresh_continuous_aggregate\('|REFRESH MATERIALIZED VIEW )"

__all__ = ["RepairResult", "RepairStep", "plan_repair", "repair"]


@dataclass(frozen=True, slots=True)
class RepairStep:
    """One fix: what it repairs and the statements it ran."""

    name: str
    statements: tuple[str, ...]
    #: False for statements that cannot run in a transaction block (a backfill).
    transactional: bool = True


@dataclass(frozen=True, slots=True)
class RepairResult:
    """What :func:`repair` found and did."""

    edition: Edition
    #: The drift found before repairing, and the steps run (all of them, or raised).
    found: tuple[SchemaDrift, ...]
    steps: tuple[RepairStep, ...]
    #: What is still drifted afterwards (what repair cannot fix, such as a missing table).
    remaining: tuple[SchemaDrift, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "edition": self.edition,
            "found": [str(drift) for drift in self.found],
            "steps": [{"name": s.name, "statements": list(s.statements)} for s in self.steps],
            "remaining": [str(drift) for drift in self.remaining],
        }


def plan_repair(
    drift: tuple[SchemaDrift, ...],
    edition: Edition,
    migrations: dict[Phase, list[MigrationFile]] | None = None,
) -> list[RepairStep]:
    """The steps that fix ``drift`` on ``edition``, in order. Pure: no database."""
    files = migrations or load_migrations()
    statements = _post_statements(edition, files)
    roles = _matching(
        tuple(s for m in files[Phase.PRE] for s in m.statements(edition)[1]), r"DO \$roles\$"
    )
    grants = RepairStep(
        "grant the reader role the aggregates", _matching(statements, r"DO \$grants\$")
    )
    steps: list[RepairStep] = []
    backfills: list[RepairStep] = []
    converts: list[RepairStep] = []
    for item in drift:
        if not item.repairable:
            continue
        name = item.relation
        if item.kind is DriftKind.AGGREGATE:
            # Apache edition: the aggregate is built as post_0002 builds it, a materialized
            # view, then converted as post_0006 converts it, which keeps the rows its table
            # still holds (older than the raw retention) and takes the rest from the view.
            if edition is Edition.COMMUNITY or item.found != "materialized view":
                steps.append(_rebuild_step(item, statements))
            if grants not in backfills:
                backfills.append(grants)  # after every rebuild, whatever the order
            backfills.append(
                RepairStep(
                    f"backfill {name}",
                    _matching(statements, rf"{_REFRESH}{name}\b"),
                    transactional=False,
                )
            )
            if edition is Edition.APACHE:
                converts.append(
                    RepairStep(
                        f"convert {name} into an {INCREMENTAL}",
                        _matching(statements, rf"SELECT analytics_convert_aggregate\('{name}'\)"),
                    )
                )
        elif item.kind in (DriftKind.ROLE, DriftKind.PRIVILEGES):
            step = RepairStep("create the analytics roles and grant what they need", roles)
            if step not in steps:
                steps.append(step)
            if grants not in backfills:
                backfills.append(grants)
        elif item.kind is DriftKind.CHUNK_INTERVAL:
            # Applies to chunks created from now on; existing chunks keep their size.
            steps.append(
                RepairStep(
                    f"set the chunk interval of {name} for new chunks",
                    (
                        f"SELECT set_chunk_time_interval('{name}',"
                        f" INTERVAL '{int(CHUNK_INTERVAL.total_seconds())} seconds')",
                    ),
                )
            )
        elif item.kind is DriftKind.REAL_TIME:
            steps.append(
                RepairStep(
                    f"turn on real-time aggregation for {name}",
                    (
                        f"ALTER MATERIALIZED VIEW {name}"
                        " SET (timescaledb.materialized_only = false)",
                    ),
                )
            )
        elif item.kind is DriftKind.REFRESH_POLICY:
            steps.append(_policy_step("continuous_aggregate", name, statements))
        elif item.kind is DriftKind.COMPRESSION:
            steps.append(
                RepairStep(
                    f"set the compression settings of {name}",
                    _matching(statements, rf"ALTER TABLE {EVENTS_TABLE} SET \(\s*timescaledb"),
                )
            )
        elif item.kind in (DriftKind.COMPRESSION_POLICY, DriftKind.RETENTION_POLICY):
            policy = "compression" if item.kind is DriftKind.COMPRESSION_POLICY else "retention"
            steps.append(_policy_step(policy, name, statements))
    # Compression settings before any compression policy; backfills after every rebuild.
    steps.sort(key=lambda step: "compression settings" not in step.name)
    return steps + backfills + converts


def _rebuild_step(item: SchemaDrift, statements: tuple[str, ...]) -> RepairStep:
    """Drop what stands in the aggregate's place; create it as post_0002 does."""
    name = item.relation
    drop = {
        "continuous aggregate": "DROP MATERIALIZED VIEW IF EXISTS {}",
        "materialized view": "DROP MATERIALIZED VIEW IF EXISTS {}",
        "view": "DROP VIEW IF EXISTS {}",
        INCREMENTAL: "DROP VIEW IF EXISTS {}",
    }.get(item.found)
    create = _matching(statements, rf"CREATE MATERIALIZED VIEW {name}\b")
    create += _matching(statements, rf"CREATE (UNIQUE )?INDEX \w+ ON {name}\b")
    create += _matching(statements, rf"SELECT add_continuous_aggregate_policy\('{name}'")
    return RepairStep(
        f"rebuild {name} as a {item.expected}",
        ((drop.format(name),) if drop else ()) + create,
    )


def repair(
    url: str,
    *,
    lock_wait: timedelta = DEFAULT_LOCK_WAIT,
    ddl_lock_timeout: timedelta = DEFAULT_DDL_LOCK_TIMEOUT,
    progress: Callable[[str, int, int], None] | None = None,
    migrations: dict[Phase, list[MigrationFile]] | None = None,
) -> RepairResult:
    """Fix the schema's drift on the server's edition; a no-op when there is none.

    ``progress`` is called with (step name, steps done, step count) before each step and once
    at the end. Raises MigrateError when the schema is not fully migrated (run ``all``
    first) or a step fails (the steps before it stay done; rerun after fixing the cause),
    LockTimeout or ConnectionFailed.
    """
    files = migrations or load_migrations()
    edition = edition_to_maintain(inspect_url(url))
    with connect(url) as conn, deploy_lock(conn, lock_wait):
        ledger = read_ledger(conn)
        pending = [m.id for phase in Phase for m in files[phase] if m.id not in ledger.applied]
        if pending:
            raise MigrateError(
                f"migrations are pending ({', '.join(pending)}): run `analytics-migrate all` "
                "first; repair fixes a schema whose migrations are all applied"
            )
        found = check_schema(conn, edition, pre_applied=True, post_applied=True)
        steps = plan_repair(found, edition, files)
        for done, step in enumerate(steps):
            if progress is not None:
                progress(step.name, done, len(steps))
            _run_step(conn, step, ddl_lock_timeout)
        if progress is not None and steps:
            progress("done", len(steps), len(steps))
        remaining = check_schema(conn, edition, pre_applied=True, post_applied=True)
    return RepairResult(edition, found, tuple(steps), remaining)


def _run_step(conn: psycopg.Connection[Any], step: RepairStep, lock_timeout: timedelta) -> None:
    try:
        if step.transactional:
            with conn.transaction():
                conn.execute(
                    sql.SQL("SET LOCAL lock_timeout = {}").format(milliseconds(lock_timeout))
                )
                for statement in step.statements:
                    conn.execute(statement)
        else:
            # A refresh cannot run in a transaction block, so its bound is the session's,
            # for as long as the step runs (repair refuses transaction poolers).
            conn.execute(sql.SQL("SET lock_timeout = {}").format(milliseconds(lock_timeout)))
            try:
                for statement in step.statements:
                    conn.execute(statement)
            finally:
                if not conn.broken:
                    conn.execute("RESET lock_timeout")
    except psycopg.Error as error:
        if conn.broken:
            raise
        first_line = str(error).strip().splitlines()[0]
        raise MigrateError(
            f"repair step '{step.name}' failed: [{error.sqlstate}] {first_line}. The steps "
            "before it are done; fix the cause and rerun `analytics-migrate repair`."
        ) from error


def _policy_step(policy: str, relation: str, statements: tuple[str, ...]) -> RepairStep:
    """Remove the ``policy`` policy of ``relation`` if any, and add it as the migration does."""
    title = "refresh" if policy == "continuous_aggregate" else policy
    return RepairStep(
        f"set the {title} policy of {relation}",
        (
            f"SELECT remove_{policy}_policy('{relation}', if_exists => true)",
            *_matching(statements, rf"SELECT add_{policy}_policy\('{relation}'"),
        ),
    )


def _post_statements(
    edition: Edition, migrations: dict[Phase, list[MigrationFile]]
) -> tuple[str, ...]:
    return tuple(s for m in migrations[Phase.POST] for s in m.statements(edition)[1])


def _matching(statements: tuple[str, ...], pattern: str) -> tuple[str, ...]:
    """The statements, in file order, whose SQL (comments aside) starts with ``pattern``."""
    regex = re.compile(pattern, re.IGNORECASE)
    return tuple(s for s in statements if regex.match(_without_comments(s).strip()))


def _without_comments(statement: str) -> str:
    return "\n".join(line.split("--", 1)[0] for line in statement.splitlines())
