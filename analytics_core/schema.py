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
    "AGGREGATES_BY_NAME",
    "CHUNK_INTERVAL",
    "COMPRESS_AFTER",
    "EVENTS_TABLE",
    "EVENT_COPY_COLUMNS",
    "REFRESH_END_OFFSET",
    "REFRESH_SCHEDULE",
    "REFRESH_START_OFFSET",
    "RETENTION",
    "Aggregate",
]

EVENTS_TABLE: Final = "analytics_events"

#: The columns the writer fills with COPY, in order; ``id`` comes from its sequence.
EVENT_COPY_COLUMNS: Final = ("timestamp", "event_type", "service", "user_id", "data", "event_id")

CHUNK_INTERVAL: Final = timedelta(days=1)
COMPRESS_AFTER: Final = timedelta(days=7)
RETENTION: Final = timedelta(days=90)
REFRESH_START_OFFSET: Final = timedelta(days=3)
REFRESH_END_OFFSET: Final = timedelta(hours=1)
REFRESH_SCHEDULE: Final = timedelta(hours=1)


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


AGGREGATES: Final = (
    Aggregate("analytics_daily_active_users", "day", timedelta(days=1), ("user_id",)),
    Aggregate("analytics_task_stats_daily", "day", timedelta(days=1), ()),
    Aggregate(
        "analytics_api_latency_hourly",
        "hour",
        timedelta(hours=1),
        ("service", "method", "route"),
    ),
    Aggregate("analytics_integration_health_daily", "day", timedelta(days=1), ("provider",)),
    Aggregate("analytics_auth_events_daily", "day", timedelta(days=1), ("event_type", "method")),
    Aggregate("analytics_cocoon_activity_daily", "day", timedelta(days=1), ("cocoon_id",)),
    Aggregate(
        "analytics_errors_hourly",
        "hour",
        timedelta(hours=1),
        ("service", "event_type", "error_kind"),
    ),
)

AGGREGATES_BY_NAME: Final = {aggregate.name: aggregate for aggregate in AGGREGATES}
