"""Everything a deploy pipeline or an operator asks about the schema, read in one pass.

Read-only throughout: ``status`` must work on a replica or with
``default_transaction_read_only=on``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from analytics_core._json import jsonable
from analytics_core.migrate._catalog import in_python_range
from analytics_core.migrate.adopt import BACKUP_SUFFIX, ForeignAggregates, foreign_aggregates
from analytics_core.migrate.drift import SchemaDrift, check_schema
from analytics_core.migrate.edition import (
    Edition,
    ServerInfo,
    inspect_server,
    preflight_problems,
)
from analytics_core.migrate.errors import MigrateError
from analytics_core.migrate.incremental import KIND as INCREMENTAL
from analytics_core.migrate.incremental import incremental_aggregates
from analytics_core.migrate.jobs import (
    JobStatus,
    MaintenanceRun,
    read_jobs,
    read_maintenance_runs,
    worker_warnings,
)
from analytics_core.migrate.ledger import read_ledger
from analytics_core.migrate.runner import AGGREGATES_MIGRATION
from analytics_core.migrate.scheduling import CronJob, read_cron_jobs
from analytics_core.migrate.settings import (
    Setting,
    SettingValue,
    effective_settings,
    setting_text,
)
from analytics_core.migrate.sources import MigrationFile, Phase, load_migrations
from analytics_core.schema import AGGREGATES, COMPRESS_AFTER, EVENTS_TABLE, RETENTION

__all__ = [
    "AggregateStatus",
    "AppliedMigration",
    "Feature",
    "HypertableStatus",
    "JobStatus",
    "MaintenanceRun",
    "PhaseStatus",
    "SchemaDrift",
    "SchemaStatus",
    "read_status",
    "with_cron_jobs",
]


@dataclass(frozen=True, slots=True)
class AppliedMigration:
    """A migration in the ledger."""

    id: str
    #: When yoyo applied it (UTC).
    applied_at: datetime
    #: True when the file changed after it was applied (or is gone): the database no longer
    #: matches what the repository says it ran.
    drifted: bool


@dataclass(frozen=True, slots=True)
class PhaseStatus:
    """The migrations of one phase: applied ones with their state, pending ids in order."""

    phase: Phase
    applied: tuple[AppliedMigration, ...]
    pending: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Feature:
    """How one capability is provided on this server."""

    #: "compression", "retention" or "aggregates".
    name: str
    #: "native", "fallback" (our replacement on the Apache edition), "unavailable", or
    #: "unknown" before the extension exists in the database.
    mode: str
    #: How it is provided, in words derived from the settings (e.g. "after 7 days").
    detail: str


@dataclass(frozen=True, slots=True)
class HypertableStatus:
    """The events table's chunks and size."""

    chunks: int
    compressed_chunks: int
    #: Table, indexes and TOAST of every chunk, compressed ones at their compressed size.
    total_bytes: int
    #: Bytes before / after compression of the compressed chunks, when any are compressed.
    before_compression_bytes: int | None
    after_compression_bytes: int | None

    @property
    def compression_ratio(self) -> float | None:
        """Bytes before over bytes after compression; None while nothing is compressed."""
        if not self.before_compression_bytes or not self.after_compression_bytes:
            return None
        return self.before_compression_bytes / self.after_compression_bytes


@dataclass(frozen=True, slots=True)
class AggregateStatus:
    """One of the seven aggregates as it exists. Times are UTC."""

    name: str
    #: "continuous aggregate" (Community edition), "incremental aggregate" (Apache edition:
    #: a view over incrementally materialized rows), "materialized view" (the Apache
    #: edition's shape before post_0006) or "view"; None when it does not exist.
    kind: str | None
    #: Up to where it is materialized (later buckets are computed from the events when read);
    #: None when nothing is materialized yet (TimescaleDB's watermark is then the minimum
    #: timestamp) or for a plain materialized view.
    watermark: datetime | None
    #: The newest bucket it holds; None when it holds none.
    latest_bucket: datetime | None
    #: The last successful refresh, by the scheduler or by ``maintain``; None if unknown.
    last_refreshed_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class SchemaStatus:
    """Everything ``analytics-migrate status`` reports, read in one pass.

    ``hypertable``, ``jobs`` and ``aggregates`` are empty (None for the table) until the
    extension exists in the database and the pre-deploy migrations created the table.
    """

    server: ServerInfo
    phases: tuple[PhaseStatus, ...]
    features: tuple[Feature, ...]
    hypertable: HypertableStatus | None
    #: Our policy jobs with their health (Community edition; empty elsewhere).
    jobs: tuple[JobStatus, ...]
    aggregates: tuple[AggregateStatus, ...]
    #: Objects that differ from what the applied migrations build on this edition.
    schema_drift: tuple[SchemaDrift, ...] = ()
    #: What a deploy would refuse this server for (as ``all`` would say it); empty when it
    #: can be migrated.
    preflight: tuple[str, ...] = ()
    #: What may go wrong without failing anything yet: server settings that keep background
    #: jobs from running, a preload this role cannot see.
    warnings: tuple[str, ...] = ()
    #: What ``analytics-migrate maintain`` last did, per task.
    maintenance: tuple[MaintenanceRun, ...] = ()
    #: Migrations in the ledger with no file in this package (deleted, renamed, or applied
    #: by a newer release): drift.
    unknown_migrations: tuple[str, ...] = ()
    #: Our pg_cron jobs with their last runs (Apache edition, where ``post --pg-cron``
    #: scheduled them); see :func:`with_cron_jobs`.
    cron_jobs: tuple[CronJob, ...] = ()
    #: Every tunable setting's effective value and where it came from.
    settings: dict[Setting, SettingValue] = field(default_factory=dict)

    @property
    def pending(self) -> tuple[str, ...]:
        return tuple(mid for phase in self.phases for mid in phase.pending)

    @property
    def drifted(self) -> tuple[str, ...]:
        """Applied migrations whose file changed since, and those whose file is gone (the
        schema's own drift is ``schema_drift``)."""
        edited = tuple(m.id for phase in self.phases for m in phase.applied if m.drifted)
        return edited + self.unknown_migrations

    @property
    def up_to_date(self) -> bool:
        """Nothing pending, no edited or missing migration, and the schema is what they build."""
        return not self.pending and not self.drifted and not self.schema_drift

    @property
    def unhealthy_jobs(self) -> tuple[JobStatus, ...]:
        """Jobs whose work is not getting done (see :mod:`analytics_core.migrate.jobs`)."""
        return tuple(job for job in self.jobs if not job.healthy)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (datetimes as ISO 8601 strings)."""
        document: dict[str, Any] = jsonable(self)
        document["server"]["edition"] = self.server.edition
        document["schema_drift"] = [
            drift | {"object": str(self.schema_drift[n])}
            for n, drift in enumerate(document["schema_drift"])
        ]
        for job, health in zip(document["jobs"], self.jobs, strict=True):
            job["healthy"] = health.healthy
        document["settings"] = {
            setting.value: {"value": setting_text(value.value), "source": value.source}
            for setting, value in self.settings.items()
        }
        return document | {
            "pending": list(self.pending),
            "drifted": list(self.drifted),
            "up_to_date": self.up_to_date,
            "jobs_healthy": not self.unhealthy_jobs,
        }


def read_status(
    conn: psycopg.Connection[Any],
    migrations: dict[Phase, list[MigrationFile]] | None = None,
) -> SchemaStatus:
    """Collect the schema's status. Changes nothing; never fails on a catalog value."""
    files = migrations or load_migrations()
    server = inspect_server(conn)
    ledger = read_ledger(conn)
    phases = []
    for phase in Phase:
        edited = set(ledger.edited(files[phase]))
        applied, pending = [], []
        for migration in files[phase]:
            if migration.id in ledger.applied:
                applied.append(
                    AppliedMigration(
                        migration.id,
                        ledger.applied[migration.id],
                        drifted=migration.id in edited,
                    )
                )
            else:
                pending.append(migration.id)
        phases.append(PhaseStatus(phase, tuple(applied), tuple(pending)))
    unknown = ledger.unknown(m for phase in Phase for m in files[phase])
    if server.timescaledb_installed is None or server.edition is None:
        return SchemaStatus(
            server,
            tuple(phases),
            _features(server),
            None,
            (),
            (),
            preflight=preflight_problems(server),
            warnings=_preload_warning(server),
            unknown_migrations=unknown,
        )
    by_phase = {status.phase: status for status in phases}
    post = by_phase[Phase.POST]
    post_applied_at = max((m.applied_at for m in post.applied), default=None)
    jobs = (
        read_jobs(conn, created_at=post_applied_at) if server.edition is Edition.COMMUNITY else ()
    )
    maintenance = read_maintenance_runs(conn)
    hypertable = _hypertable(conn)
    return SchemaStatus(
        server=server,
        phases=tuple(phases),
        features=_features(server),
        hypertable=hypertable,
        jobs=jobs,
        aggregates=_aggregates(conn, jobs, maintenance) if hypertable is not None else (),
        schema_drift=check_schema(
            conn,
            server.edition,
            pre_applied=not by_phase[Phase.PRE].pending,
            post_applied=bool(post.applied) and not post.pending,
        ),
        preflight=preflight_problems(server),
        warnings=_preload_warning(server)
        + (worker_warnings(conn, len(jobs)) if jobs else ())
        + _adoption_warnings(
            conn, aggregates_applied=any(m.id == AGGREGATES_MIGRATION for m in post.applied)
        ),
        maintenance=maintenance,
        unknown_migrations=unknown,
        settings=effective_settings(conn),
    )


def with_cron_jobs(status: SchemaStatus, url: str) -> SchemaStatus:
    """``status`` with our pg_cron jobs, which live in pg_cron's own database and so need a
    session there; a warning instead of the jobs where that database cannot be read."""
    if status.server.edition is not Edition.APACHE:
        return status
    try:
        jobs = read_cron_jobs(url)
    except MigrateError as error:
        return replace(status, warnings=(*status.warnings, str(error)))
    return replace(status, cron_jobs=jobs)


def _adoption_warnings(
    conn: psycopg.Connection[Any], *, aggregates_applied: bool
) -> tuple[str, ...]:
    """Relations of our aggregates' names that ``post`` would refuse, and the ones an
    adoption renamed aside, which are kept until someone drops them."""
    names = [aggregate.name for aggregate in AGGREGATES]
    notes = []
    if not aggregates_applied:
        foreign = foreign_aggregates(conn, names)
        if foreign:
            notes.append(str(ForeignAggregates(foreign)))
    kept = foreign_aggregates(conn, [name + BACKUP_SUFFIX for name in names])
    if kept:
        notes.append(
            "kept from an adoption, with the rows they had: "
            + ", ".join(f"{k.name} ({k.kind})" for k in kept)
            + "; drop each once its rows are no longer needed"
        )
    return tuple(notes)


def _preload_warning(server: ServerInfo) -> tuple[str, ...]:
    notes = []
    if server.standby:
        notes.append(
            "this server is a hot standby: it shows what the primary had replayed; run "
            "all, maintain and repair against the primary"
        )
    if server.preloaded is None:
        notes.append(
            "cannot tell whether timescaledb is in shared_preload_libraries: this role may not "
            "read the setting (a superuser or pg_read_all_settings can)"
        )
    return tuple(notes)


def _features(server: ServerInfo) -> tuple[Feature, ...]:
    if server.edition is None:
        unknown = "the timescaledb extension is not created in this database yet"
        return tuple(
            Feature(name, "unknown", unknown) for name in ("compression", "retention", "aggregates")
        )
    if server.edition is Edition.COMMUNITY:
        return (
            Feature("compression", "native", f"compression policy after {_days(COMPRESS_AFTER)}"),
            Feature(
                "retention", "native", f"retention policy drops chunks after {_days(RETENTION)}"
            ),
            Feature("aggregates", "native", "continuous aggregates, refresh policies"),
        )
    return (
        Feature("compression", "unavailable", "not in the Apache edition of TimescaleDB"),
        Feature(
            "retention",
            "fallback",
            f"`analytics-migrate maintain` drops chunks older than {_days(RETENTION)}",
        ),
        Feature(
            "aggregates",
            "fallback",
            "views over tables refreshed incrementally by `maintain` (or pg_cron), newer "
            "buckets computed from the events; rows outlive retention",
        ),
    )


def _days(duration: timedelta) -> str:
    return f"{duration.days} day{'s' if duration.days != 1 else ''}"


def _hypertable(conn: psycopg.Connection[Any]) -> HypertableStatus | None:
    cur = conn.cursor(row_factory=dict_row)
    exists = cur.execute(
        "SELECT 1 FROM timescaledb_information.hypertables WHERE hypertable_name = %s",
        (EVENTS_TABLE,),
    ).fetchone()
    if exists is None:
        return None
    row = cur.execute(
        """
        SELECT count(*) AS chunks,
               count(*) FILTER (WHERE is_compressed) AS compressed,
               hypertable_size(%s::regclass) AS total_bytes
        FROM timescaledb_information.chunks WHERE hypertable_name = %s
        """,
        (EVENTS_TABLE, EVENTS_TABLE),
    ).fetchone()
    assert row is not None
    before = after = None
    if row["compressed"]:
        stats = cur.execute(
            "SELECT sum(before_compression_total_bytes) AS before,"
            " sum(after_compression_total_bytes) AS after"
            " FROM hypertable_compression_stats(%s::regclass)",
            (EVENTS_TABLE,),
        ).fetchone()
        if stats is not None:
            before, after = stats["before"], stats["after"]
    return HypertableStatus(
        chunks=int(row["chunks"]),
        compressed_chunks=int(row["compressed"]),
        total_bytes=int(row["total_bytes"] or 0),
        before_compression_bytes=None if before is None else int(before),
        after_compression_bytes=None if after is None else int(after),
    )


def _materialization_names(conn: psycopg.Connection[Any]) -> dict[str, str]:
    """Internal materialization hypertable name -> continuous aggregate name."""
    rows = conn.execute(
        "SELECT materialization_hypertable_name, view_name"
        " FROM timescaledb_information.continuous_aggregates"
    ).fetchall()
    return {str(internal): str(view) for internal, view in rows}


def _aggregates(
    conn: psycopg.Connection[Any],
    jobs: tuple[JobStatus, ...],
    maintenance: tuple[MaintenanceRun, ...],
) -> tuple[AggregateStatus, ...]:
    continuous = set(_materialization_names(conn).values())
    incremental = incremental_aggregates(conn)
    matviews = {
        str(name) for (name,) in conn.execute("SELECT matviewname FROM pg_matviews").fetchall()
    }
    views = {str(name) for (name,) in conn.execute("SELECT viewname FROM pg_views").fetchall()}
    refreshed: dict[str, list[datetime]] = {}
    for job in jobs:
        if job.kind == "refresh_continuous_aggregate":
            maintained = job.maintenance.last_success_at if job.maintenance else None
            times = [t for t in (job.last_success_at, maintained) if t is not None]
            refreshed.setdefault(job.relation, []).extend(times)
    for run in maintenance:
        if run.job_id is None and run.last_success_at is not None:
            refreshed.setdefault(run.task.removeprefix("refresh "), []).append(run.last_success_at)
    result = []
    for aggregate in AGGREGATES:
        kind: str | None = None
        watermark = latest = None
        if aggregate.name in continuous:
            kind = "continuous aggregate"
            # An aggregate with nothing materialized has the minimum timestamp as its
            # watermark: finite for PostgreSQL, out of range for Python; it reads as None.
            row = conn.execute(
                f"""
                SELECT {in_python_range("w")}
                FROM _timescaledb_catalog.continuous_agg h,
                     _timescaledb_functions.to_timestamp(
                         _timescaledb_functions.cagg_watermark(h.mat_hypertable_id)) AS w
                WHERE h.user_view_name = %s
                """,
                (aggregate.name,),
            ).fetchone()
            watermark = row[0] if row else None
        elif aggregate.name in matviews:
            kind = "materialized view"
        elif aggregate.name in incremental:
            kind = INCREMENTAL
            state = incremental[aggregate.name]
            watermark = state.materialized_until
            if state.refreshed_at is not None:
                # pg_cron's refreshes leave no maintenance record: the state row tells.
                refreshed.setdefault(aggregate.name, []).append(state.refreshed_at)
        elif aggregate.name in views:
            kind = "view"
        # A relation of this name that is not ours (before an adoption) may lack the column.
        if (
            kind is not None
            and _is_populated(conn, aggregate.name)
            and _has_column(conn, aggregate.name, aggregate.time_column)
        ):
            row = conn.execute(
                sql.SQL("SELECT {} FROM {}").format(
                    sql.SQL(in_python_range("max({column})")).format(
                        column=sql.Identifier(aggregate.time_column)
                    ),
                    sql.Identifier(aggregate.name),
                )
            ).fetchone()
            latest = row[0] if row else None
        last_refreshed_at = max(refreshed.get(aggregate.name, []), default=None)
        result.append(AggregateStatus(aggregate.name, kind, watermark, latest, last_refreshed_at))
    return tuple(result)


def _has_column(conn: psycopg.Connection[Any], relation: str, column: str) -> bool:
    row = conn.execute(
        "SELECT EXISTS (SELECT FROM pg_attribute WHERE attrelid = to_regclass(%s)"
        " AND attname = %s AND NOT attisdropped)",
        (relation, column),
    ).fetchone()
    return bool(row and row[0])


def _is_populated(conn: psycopg.Connection[Any], name: str) -> bool:
    row = conn.execute(
        "SELECT coalesce((SELECT ispopulated FROM pg_matviews WHERE matviewname = %s), true)",
        (name,),
    ).fetchone()
    return bool(row and row[0])
