"""Apply, inspect and maintain the analytics schema (the library behind ``analytics-migrate``).

>>> from analytics_core.migrate import apply, Phase
>>> apply("postgresql://...", (Phase.PRE, Phase.POST))  # doctest: +SKIP
"""

from __future__ import annotations

from analytics_core.migrate.dsn import mask_password, resolve_database_url
from analytics_core.migrate.edition import MINIMUM_TIMESCALEDB, Edition, ServerInfo
from analytics_core.migrate.errors import (
    ConnectionFailed,
    LockTimeout,
    MigrateError,
    MigrationFailed,
    PendingPreDeploy,
    PreflightError,
)
from analytics_core.migrate.maintain import MaintenanceResult, maintain
from analytics_core.migrate.runner import ApplyResult, PlannedMigration, apply, connect, plan
from analytics_core.migrate.sources import MigrationFile, Phase, load_migrations
from analytics_core.migrate.status import SchemaStatus, read_status

__all__ = [
    "MINIMUM_TIMESCALEDB",
    "ApplyResult",
    "ConnectionFailed",
    "Edition",
    "LockTimeout",
    "MaintenanceResult",
    "MigrateError",
    "MigrationFailed",
    "MigrationFile",
    "PendingPreDeploy",
    "Phase",
    "PlannedMigration",
    "PreflightError",
    "SchemaStatus",
    "ServerInfo",
    "apply",
    "connect",
    "load_migrations",
    "maintain",
    "mask_password",
    "plan",
    "read_status",
    "resolve_database_url",
]
