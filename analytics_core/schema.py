"""Names of the relations the migrations create, for the code that reads and writes them.

The migrations in ``migrations/`` are the definition; this module only names what they
create so that the writer, the read side and ``status`` do not repeat string literals.
``tests/test_schema_contract.py`` fails when the two drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Final

__all__ = [
    "AGGREGATES",
    "AGGREGATE_REFRESHES_TABLE",
    "API_LATENCY_HOURLY",
    "AUTH_EVENTS_DAILY",
    "CHUNK_INTERVAL",
    "COCOON_ACTIVITY_DAILY",
    "COMPRESS_AFTER",
    "COMPRESS_ORDER_BY",
    "COMPRESS_SEGMENT_BY",
    "DAILY_ACTIVE_USERS",
    "ERASURES_TABLE",
    "ERRORS_HOURLY",
    "EVENTS_TABLE",
    "EVENT_COPY_COLUMNS",
    "INTEGRATION_HEALTH_DAILY",
    "LATE_EVENTS_LOOKBACK",
    "MAINTENANCE_RUNS_TABLE",
    "READER_ROLE",
    "REFRESH_END_OFFSET",
    "REFRESH_SCHEDULE",
    "REFRESH_START_OFFSET",
    "RETENTION",
    "SETTINGS_TABLE",
    "TASK_STATS_DAILY",
    "WRITER_ROLE",
    "Aggregate",
]

EVENTS_TABLE: Final = "analytics_events"

#: The least-privilege roles the migrations create (see migrations/pre/pre_0003_roles.sql):
#: services write as members of the writer, dashboards and ``status`` read as the reader.
WRITER_ROLE: Final = "analytics_writer"
READER_ROLE: Final = "analytics_reader"

#: What ``analytics-migrate maintain`` last did, per task (see ``migrate.jobs``).
MAINTENANCE_RUNS_TABLE: Final = "analytics_maintenance_runs"
#: The settings a deploy changed from their defaults (see ``migrate.settings``).
SETTINGS_TABLE: Final = "analytics_settings"
#: The audit log of erasures (``analytics-users erase``): no personal data, a hash per user.
ERASURES_TABLE: Final = "analytics_erasures"

#: Apache edition: each aggregate's watermark and what its last incremental refresh saw
#: (see migrations/post/post_0006_apache_incremental_aggregates.sql).
AGGREGATE_REFRESHES_TABLE: Final = "analytics_aggregate_refreshes"

#: The columns the writer fills with COPY, in order; ``id`` comes from its sequence.
EVENT_COPY_COLUMNS: Final = ("timestamp", "event_type", "service", "user_id", "data", "event_id")

CHUNK_INTERVAL: Final = timedelta(days=1)
COMPRESS_AFTER: Final = timedelta(days=7)
#: Compression settings of the events table (Community edition): segments per event type,
#: rows newest first inside a segment, as (column, direction).
COMPRESS_SEGMENT_BY: Final = ("event_type",)
COMPRESS_ORDER_BY: Final = (("timestamp", "DESC"), ("id", "DESC"))
RETENTION: Final = timedelta(days=90)
REFRESH_START_OFFSET: Final = timedelta(days=3)
REFRESH_END_OFFSET: Final = timedelta(hours=1)
REFRESH_SCHEDULE: Final = timedelta(hours=1)
#: Apache edition: how far back an incremental refresh looks for events that arrived late
#: for buckets older than its window (older late events are not folded in).
LATE_EVENTS_LOOKBACK: Final = timedelta(days=14)


@dataclass(frozen=True, slots=True)
class Aggregate:
    """A rollup created by the post-deploy migrations.

    ``time_column`` is its bucket column and ``bucket`` the bucket width; ``keys`` are the
    grouping columns that, with the bucket, identify a row.
    """

    name: str
    time_column: str
    bucket: timedelta
    keys: tuple[str, ...]

    @property
    def materialized_table(self) -> str:
        """Apache edition: the table of its materialized rows (the view reads it)."""
        return f"{self.name}_materialized"

    @property
    def between_function(self) -> str:
        """Apache edition: the function computing its rows from the events of a time range."""
        return f"{self.name}_between"


DAILY_ACTIVE_USERS: Final = Aggregate(
    "analytics_daily_active_users", "day", timedelta(days=1), ("user_id",)
)
TASK_STATS_DAILY: Final = Aggregate("analytics_task_stats_daily", "day", timedelta(days=1), ())
API_LATENCY_HOURLY: Final = Aggregate(
    "analytics_api_latency_hourly", "hour", timedelta(hours=1), ("service", "method", "route")
)
INTEGRATION_HEALTH_DAILY: Final = Aggregate(
    "analytics_integration_health_daily", "day", timedelta(days=1), ("provider",)
)
AUTH_EVENTS_DAILY: Final = Aggregate(
    "analytics_auth_events_daily", "day", timedelta(days=1), ("event_type", "method")
)
COCOON_ACTIVITY_DAILY: Final = Aggregate(
    "analytics_cocoon_activity_daily", "day", timedelta(days=1), ("cocoon_id",)
)
ERRORS_HOURLY: Final = Aggregate(
    "analytics_errors_hourly", "hour", timedelta(hours=1), ("service", "event_type", "error_kind")
)

#: All seven, in the order the post-deploy migration creates them.
AGGREGATES: Final = (
    DAILY_ACTIVE_USERS,
    TASK_STATS_DAILY,
    API_LATENCY_HOURLY,
    INTEGRATION_HEALTH_DAILY,
    AUTH_EVENTS_DAILY,
    COCOON_ACTIVITY_DAILY,
    ERRORS_HOURLY,
)
