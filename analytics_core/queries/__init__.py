"""The read side: product metrics, per-entity behaviour and live activity.

Every function takes an open ``psycopg.Connection`` first and returns a frozen dataclass (or a
tuple of them) whose ``to_json()`` gives plain JSON types. Windows are :class:`TimeWindow`
values: half-open, timezone-aware, held in UTC; every bucket and hour of the day is UTC.

- Product metrics answer from the aggregates only, one module per product area, each reading
  one aggregate: :mod:`~analytics_core.queries.active_user_counts`,
  :mod:`~analytics_core.queries.latency`, :mod:`~analytics_core.queries.tasks`,
  :mod:`~analytics_core.queries.integrations`, :mod:`~analytics_core.queries.auth`,
  :mod:`~analytics_core.queries.cocoons` and :mod:`~analytics_core.queries.errors`.
  Aggregates hold whole UTC buckets, so these answer for every bucket the window overlaps and
  return the window they actually cover as ``window``. How fresh they are depends on the
  edition: on the Community edition the aggregates are continuous aggregates with real-time
  aggregation (current to the last committed event); on the Apache edition they are
  materialized views, as fresh as the last ``analytics-migrate maintain``. The SQL is the same
  on both.
- :mod:`~analytics_core.queries.entity` and :mod:`~analytics_core.queries.live` read the raw
  events table, through its indexes.

Arguments are validated before any SQL runs: a naive datetime, an empty or inverted window,
an id that is not a UUID or a count below 1 raises ``ValueError``. Each call runs read-only
statements synchronously and blocks until they finish; database errors (a schema that was
never migrated, a lost connection) propagate as ``psycopg.Error``. On a connection that is
not in autocommit mode the statements run inside, and leave open, the caller's transaction.

>>> from datetime import date
>>> from analytics_core.queries import TimeWindow, active_users
>>> active_users(conn, TimeWindow.days(date(2024, 1, 1), date(2024, 1, 31)))  # doctest: +SKIP
"""

from __future__ import annotations

from analytics_core.queries._results import (
    DayCount,
    EventRecord,
    EventTypeCount,
    HourCount,
    Result,
)
from analytics_core.queries._window import TimeWindow
from analytics_core.queries.active_user_counts import (
    MAU_DAYS,
    WAU_DAYS,
    ActiveUsersDay,
    ActiveUsersSeries,
    active_users,
)
from analytics_core.queries.auth import AuthBreakdown, AuthReport, auth_activity
from analytics_core.queries.cocoons import CocoonActivity, CocoonReport, cocoon_activity
from analytics_core.queries.entity import (
    Entity,
    EntityKind,
    EntitySummary,
    EventShare,
    HourOfDayProfile,
    LeaderboardEntry,
    activity_log,
    count_between,
    daily_event_counts,
    days_since_last_activity,
    entity_summary,
    event_share,
    event_type_counts,
    first_event,
    has_done,
    is_inactive,
    last_event,
    leaderboard,
    peak_hour,
    top_event_types,
)
from analytics_core.queries.errors import ErrorHour, ErrorReport, ErrorTotal, error_counts
from analytics_core.queries.integrations import (
    IntegrationHealthReport,
    ProviderHealth,
    integration_health,
)
from analytics_core.queries.latency import (
    ApiLatencyReport,
    EndpointHour,
    EndpointSummary,
    PercentileEstimate,
    api_latency,
)
from analytics_core.queries.live import (
    LiveCount,
    LiveSnapshot,
    LiveTopTypes,
    events_last_minute,
    live_active_users,
    live_snapshot,
    recent_events,
    top_event_types_now,
)
from analytics_core.queries.tasks import TaskDay, TaskReport, task_stats

__all__ = [
    "MAU_DAYS",
    "WAU_DAYS",
    "ActiveUsersDay",
    "ActiveUsersSeries",
    "ApiLatencyReport",
    "AuthBreakdown",
    "AuthReport",
    "CocoonActivity",
    "CocoonReport",
    "DayCount",
    "EndpointHour",
    "EndpointSummary",
    "Entity",
    "EntityKind",
    "EntitySummary",
    "ErrorHour",
    "ErrorReport",
    "ErrorTotal",
    "EventRecord",
    "EventShare",
    "EventTypeCount",
    "HourCount",
    "HourOfDayProfile",
    "IntegrationHealthReport",
    "LeaderboardEntry",
    "LiveCount",
    "LiveSnapshot",
    "LiveTopTypes",
    "PercentileEstimate",
    "ProviderHealth",
    "Result",
    "TaskDay",
    "TaskReport",
    "TimeWindow",
    "active_users",
    "activity_log",
    "api_latency",
    "auth_activity",
    "cocoon_activity",
    "count_between",
    "daily_event_counts",
    "days_since_last_activity",
    "entity_summary",
    "error_counts",
    "event_share",
    "event_type_counts",
    "events_last_minute",
    "first_event",
    "has_done",
    "integration_health",
    "is_inactive",
    "last_event",
    "leaderboard",
    "live_active_users",
    "live_snapshot",
    "peak_hour",
    "recent_events",
    "task_stats",
    "top_event_types",
    "top_event_types_now",
]
