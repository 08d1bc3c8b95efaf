"""The read side: product metrics, per-entity behaviour and live activity.

Every function takes an open ``psycopg.Connection`` first and returns a frozen dataclass (or a
tuple of them) whose ``to_json()`` gives plain JSON types. Windows are :class:`TimeWindow`
values: half-open, timezone-aware, held in UTC; every bucket and hour of the day is UTC.
Import everything from here; the modules below are where each answer is computed.

The answers come from two sources, one subpackage each:

- :mod:`~analytics_core.queries.metrics`: product metrics, from the aggregates only, one
  module per aggregate (``active_users``, ``api_latency``, ``tasks``, ``integrations``,
  ``auth``, ``cocoons``, ``error_counts``). They answer for every whole UTC bucket the
  window overlaps and return that window as ``window``; on the Apache edition they are as
  fresh as the last ``analytics-migrate maintain``.
- :mod:`~analytics_core.queries.raw_events`: what the aggregates cannot say, from the raw
  events table through its indexes: :mod:`~analytics_core.queries.raw_events.entity` (one
  user, project or cocoon) and :mod:`~analytics_core.queries.raw_events.live` (the last few
  minutes).

Private modules here hold what both use: the window (``_window``), running a statement
(``_fetch``), the shared result types (``_results``) and undefined-when-empty ratios
(``_ratio``).

Arguments are validated before any SQL runs, by :mod:`analytics_core._checks` as everywhere in
the package: a datetime that is not one raises ``TypeError``; a naive datetime, an empty or
inverted window, an id that is not a UUID or a count below 1 raises ``ValueError``. Each call
runs read-only statements synchronously and blocks until they finish. A schema that was never
migrated raises :class:`~analytics_core.errors.SchemaNotMigrated`; other database errors (a
lost connection) propagate as ``psycopg.Error``. On a connection that is not in autocommit
mode the statements run inside, and leave open, the caller's transaction.

>>> from datetime import date
>>> from analytics_core.queries import TimeWindow, active_users
>>> active_users(conn, TimeWindow.days(date(2024, 1, 1), date(2024, 1, 31)))  # doctest: +SKIP
"""

from __future__ import annotations

from analytics_core.queries._results import DayCount, EventTypeCount, HourCount, Result
from analytics_core.queries._window import TimeWindow
from analytics_core.queries.metrics.active_users import (
    MAU_DAYS,
    WAU_DAYS,
    ActiveUsersDay,
    ActiveUsersSeries,
    active_users,
)
from analytics_core.queries.metrics.api_latency import (
    ApiLatencyReport,
    EndpointHour,
    EndpointSummary,
    PercentileEstimate,
    api_latency,
)
from analytics_core.queries.metrics.auth import AuthBreakdown, AuthReport, auth_activity
from analytics_core.queries.metrics.cocoons import CocoonActivity, CocoonReport, cocoon_activity
from analytics_core.queries.metrics.error_counts import (
    ErrorHour,
    ErrorReport,
    ErrorTotal,
    error_counts,
)
from analytics_core.queries.metrics.integrations import (
    IntegrationHealthReport,
    ProviderHealth,
    integration_health,
)
from analytics_core.queries.metrics.tasks import TaskDay, TaskReport, task_stats
from analytics_core.queries.raw_events._record import EventRecord
from analytics_core.queries.raw_events.entity import (
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
from analytics_core.queries.raw_events.live import (
    LiveCount,
    LiveSnapshot,
    LiveTopTypes,
    events_last_minute,
    live_active_users,
    live_snapshot,
    recent_events,
    top_event_types_now,
)

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

# The types defined in private modules name this package as theirs, as psycopg's do: it is
# where they are imported from, and what help() and documentation tools then show.
for _public in (DayCount, EventRecord, EventTypeCount, HourCount, Result, TimeWindow):
    _public.__module__ = __name__
del _public
