"""The read side's public surface: every name imports from analytics_core.queries, each
module is where its name says, and results turn into JSON with the one shared converter.
No database: these are facts about the package, not about answers."""

from __future__ import annotations

import enum
import importlib
import json
import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from types import ModuleType

import pytest

from analytics_core import queries as q
from analytics_core._json import jsonable

# Every name the package exported before it was split by data source (issue 9): none may go.
EXPORTED = {
    "MAU_DAYS", "WAU_DAYS", "ActiveUsersDay", "ActiveUsersSeries", "ApiLatencyReport",
    "AuthBreakdown", "AuthReport", "CocoonActivity", "CocoonReport", "DayCount",
    "EndpointHour", "EndpointSummary", "Entity", "EntityKind", "EntitySummary", "ErrorHour",
    "ErrorReport", "ErrorTotal", "EventRecord", "EventShare", "EventTypeCount", "HourCount",
    "HourOfDayProfile", "IntegrationHealthReport", "LeaderboardEntry", "LiveCount",
    "LiveSnapshot", "LiveTopTypes", "PercentileEstimate", "ProviderHealth", "Result",
    "TaskDay", "TaskReport", "TimeWindow", "active_users", "activity_log", "api_latency",
    "auth_activity", "cocoon_activity", "count_between", "daily_event_counts",
    "days_since_last_activity", "entity_summary", "error_counts", "event_share",
    "event_type_counts", "events_last_minute", "first_event", "has_done",
    "integration_health", "is_inactive", "last_event", "leaderboard", "live_active_users",
    "live_snapshot", "peak_hour", "recent_events", "task_stats", "top_event_types",
    "top_event_types_now",
}  # fmt: skip

# One module per aggregate.
METRICS = (
    "active_users",
    "api_latency",
    "auth",
    "cocoons",
    "error_counts",
    "integrations",
    "tasks",
)
# The exported classes and functions (the rest are constants).
DEFINED = sorted(name for name in EXPORTED if callable(getattr(q, name)))


def test_every_name_is_still_exported() -> None:
    assert set(q.__all__) == EXPORTED
    for name in q.__all__:
        assert getattr(q, name) is not None


@pytest.mark.parametrize("name", DEFINED)
def test_each_public_name_lives_in_a_public_module_that_has_it(name: str) -> None:
    obj = getattr(q, name)
    module = obj.__module__
    assert module.startswith("analytics_core.queries")
    assert not any(part.startswith("_") for part in module.split(".")), module
    assert getattr(importlib.import_module(module), name) is obj


@pytest.mark.parametrize(
    "path",
    [f"analytics_core.queries.metrics.{name}" for name in METRICS]
    + [f"analytics_core.queries.raw_events.{name}" for name in ("entity", "live")],
)
def test_a_module_path_names_the_module_even_where_a_function_shares_its_name(path: str) -> None:
    parent, _, leaf = path.rpartition(".")
    module = importlib.import_module(path)
    assert isinstance(module, ModuleType)
    assert getattr(importlib.import_module(parent), leaf) is module


def test_the_package_root_holds_the_functions_not_the_modules() -> None:
    assert callable(q.active_users)
    assert callable(q.api_latency)
    assert callable(q.error_counts)


def test_an_event_record_is_built_from_a_row_in_utc() -> None:
    event_id, user_id = uuid.uuid4(), uuid.uuid4()
    stamped = datetime(2024, 3, 1, 14, 30, tzinfo=timezone(timedelta(hours=2)))
    record = q.EventRecord.from_row(
        (stamped, "task_created", "platform", user_id, event_id, {"n": 1})
    )
    assert record == q.EventRecord(
        datetime(2024, 3, 1, 12, 30, tzinfo=UTC), "task_created", "platform", user_id,
        event_id, {"n": 1},
    )  # fmt: skip
    assert record.timestamp.tzinfo is UTC
    assert record.to_json() == {
        "timestamp": "2024-03-01T12:30:00+00:00",
        "event_type": "task_created",
        "service": "platform",
        "user_id": str(user_id),
        "event_id": str(event_id),
        "data": {"n": 1},
    }


class _Colour(enum.StrEnum):
    RED = "red"


def test_jsonable_turns_every_value_a_result_holds_into_json_types() -> None:
    some_id = uuid.UUID(int=1)
    window = q.TimeWindow.days(date(2024, 1, 1), date(2024, 1, 1))
    value = {
        "when": datetime(2024, 1, 1, tzinfo=UTC),
        "day": date(2024, 1, 2),
        "id": some_id,
        "colour": _Colour.RED,
        "kind": q.EntityKind.USER,
        "rows": (q.DayCount(date(2024, 1, 3), 4),),
        "window": window,
        1: [None, 1.5, True],
    }
    assert jsonable(value) == {
        "when": "2024-01-01T00:00:00+00:00",
        "day": "2024-01-02",
        "id": str(some_id),
        "colour": "red",
        "kind": "user",
        "rows": [{"day": "2024-01-03", "count": 4}],
        "window": window.to_json(),
        "1": [None, 1.5, True],
    }
    json.dumps(jsonable(value))
