"""Apply, inspect and maintain the analytics schema (the library behind ``analytics-migrate``).

>>> from analytics_core.migrate import apply, Phase
>>> apply("postgresql://...", (Phase.PRE, Phase.POST))  # doctest: +SKIP
"""

from __future__ import annotations

from analytics_core.migrate.adopt import AdoptionPlan, AdoptionRefused, ForeignAggregates
from analytics_core.migrate.drift import DriftKind, SchemaDrift, check_schema
from analytics_core.migrate.dsn import mask_password, resolve_database_url
from analytics_core.migrate.edition import (
    MINIMUM_TIMESCALEDB,
    Edition,
    EditionChoice,
    ServerInfo,
    choose_edition,
)
from analytics_core.migrate.errors import (
    ConnectionFailed,
    DriftDetected,
    LockTimeout,
    MigrateError,
    MigrationFailed,
    PendingPreDeploy,
    PreflightError,
)
from analytics_core.migrate.jobs import JobStatus, MaintenanceRun, pause_jobs
from analytics_core.migrate.maintain import (
    DEFAULT_JOB_WAIT,
    MaintenanceResult,
    TaskResult,
    maintain,
)
from analytics_core.migrate.repair import RepairResult, RepairStep, plan_repair, repair
from analytics_core.migrate.runner import (
    ApplyResult,
    DryRun,
    PlannedMigration,
    apply,
    connect,
    dry_run,
    plan,
)
from analytics_core.migrate.scheduling import (
    CronJob,
    PgCronUnavailable,
    read_cron_jobs,
    schedule_upkeep,
    unschedule_upkeep,
)
from analytics_core.migrate.sources import MigrationFile, Phase, load_migrations
from analytics_core.migrate.status import SchemaStatus, read_status, with_cron_jobs

__all__ = [
    "DEFAULT_JOB_WAIT",
    "MINIMUM_TIMESCALEDB",
    "AdoptionPlan",
    "AdoptionRefused",
    "ApplyResult",
    "ConnectionFailed",
    "CronJob",
    "DriftDetected",
    "DriftKind",
    "DryRun",
    "Edition",
    "EditionChoice",
    "ForeignAggregates",
    "JobStatus",
    "LockTimeout",
    "MaintenanceResult",
    "MaintenanceRun",
    "MigrateError",
    "MigrationFailed",
    "MigrationFile",
    "PendingPreDeploy",
    "PgCronUnavailable",
    "Phase",
    "PlannedMigration",
    "PreflightError",
    "RepairResult",
    "RepairStep",
    "SchemaDrift",
    "SchemaStatus",
    "ServerInfo",
    "TaskResult",
    "apply",
    "check_schema",
    "choose_edition",
    "connect",
    "dry_run",
    "load_migrations",
    "maintain",
    "mask_password",
    "pause_jobs",
    "plan",
    "plan_repair",
    "read_cron_jobs",
    "read_status",
    "repair",
    "resolve_database_url",
    "schedule_upkeep",
    "unschedule_upkeep",
    "with_cron_jobs",
]
