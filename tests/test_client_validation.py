"""AnalyticsClient rejects bad configuration at construction and bad events at track().

Every message names the argument and says what to pass instead. No database: the clients
here are never asked to write (the DSN points nowhere; flush_interval is an hour).
"""

from __future__ import annotations

import math
import traceback
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from analytics_core import AnalyticsClient
from analytics_core.client._queue import LocalIntake
from analytics_core.errors import DatabaseUrlError
from analytics_core.events import BaseEvent, TaskCompleted, TaskCreated
from analytics_core.tracker import EARLIEST_TIMESTAMP, MAX_CLOCK_SKEW

NOWHERE = "postgresql://postgres:secret@127.0.0.1:9/analytics"
# libpq's message for this URL quotes the password: 'invalid percent-encoded token: "..."'.
MALFORMED_WITH_SECRET = "postgresql://app:Sup3r%ZZSecret@127.0.0.1/analytics"


@pytest.fixture
def client() -> Iterator[AnalyticsClient]:
    tracker = AnalyticsClient(NOWHERE, service="platform", flush_interval=3600)
    yield tracker
    tracker.close(timeout=0)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"service": ""}, ValueError, "service must be 1 to 100 characters"),
        ({"service": "x" * 101}, ValueError, "service must be 1 to 100 characters"),
        ({"service": 42}, TypeError, "service must be a str"),
        ({"batch_size": 0}, ValueError, "batch_size must be between 1 and 100000"),
        ({"batch_size": 2.5}, TypeError, "batch_size must be an int"),
        ({"batch_size": True}, TypeError, "batch_size must be an int"),
        ({"max_queue_size": 50}, ValueError, r"max_queue_size \(50\) must be at least batch_size"),
        ({"flush_interval": 0}, ValueError, "flush_interval must be a finite number"),
        ({"flush_interval": math.inf}, ValueError, "flush_interval must be a finite number"),
        ({"flush_interval": "1"}, TypeError, "flush_interval must be a number of seconds"),
        ({"shutdown_timeout": -1}, ValueError, "shutdown_timeout must be a finite number"),
        ({"connect_timeout": 0}, ValueError, "connect_timeout must be a finite number"),
        ({"statement_timeout": math.nan}, ValueError, "statement_timeout must be a finite"),
        ({"max_backoff": 0}, ValueError, "max_backoff must be a finite number"),
        ({"on_error": "log"}, TypeError, "on_error must be a callable"),
        ({"enabled": "no"}, TypeError, "enabled must be a bool"),
        ({"_intake": LocalIntake()}, ValueError, "_intake is for disabled clients"),
    ],
)
def test_bad_configuration_is_rejected_at_construction(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    arguments: dict[str, Any] = {"service": "platform", **kwargs}
    with pytest.raises(error, match=message):
        AnalyticsClient(NOWHERE, **arguments)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "database_url is empty"),
        ("postgresql://host:notaport/db?bogus", "not a valid PostgreSQL connection string"),
        ("host=a port", "not a valid PostgreSQL connection string"),
    ],
)
def test_a_bad_dsn_is_rejected_at_construction_without_quoting_it(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as raised:
        AnalyticsClient(url, service="platform")
    assert "notaport" not in str(raised.value)


def test_a_malformed_dsn_leaves_no_trace_of_its_password() -> None:
    with pytest.raises(
        DatabaseUrlError, match="not a valid PostgreSQL connection string"
    ) as raised:
        AnalyticsClient(MALFORMED_WITH_SECRET, service="platform")
    error = raised.value
    assert (error.__cause__, error.__context__) == (None, None)
    assert "Sup3r" not in "".join(traceback.format_exception(error))


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "postgresql://app:pw@127.0.0.1/analytics?sslmode=bogus",
            "database_url: sslmode 'bogus' in the database URL is not one of allow, disable, ",
        ),
        (
            "host=127.0.0.1 port=notaport dbname=analytics password=pw",
            "database_url: port 'notaport' in the database URL is not a port number",
        ),
        (
            "postgresql://app:pw@127.0.0.1/analytics?connect_timeout=soon",
            "database_url: connect_timeout 'soon' in the database URL is not a whole number",
        ),
    ],
)
def test_settings_that_could_never_connect_are_rejected_at_construction(
    url: str, message: str
) -> None:
    # Not retried as if the database were away until every event is dropped: refused now.
    with pytest.raises(DatabaseUrlError) as raised:
        AnalyticsClient(url, service="platform")
    assert str(raised.value).startswith(message)
    assert "pw" not in str(raised.value)


def test_a_disabled_client_needs_no_dsn() -> None:
    tracker = AnalyticsClient("", service="platform", enabled=False)
    assert tracker.track(TaskCreated(task_id=uuid.uuid4(), user_id=uuid.uuid4(), command="x"))


def test_an_invalid_event_cannot_be_built() -> None:
    with pytest.raises(ValidationError, match="duration_ms"):
        TaskCompleted(task_id=uuid.uuid4(), user_id=uuid.uuid4(), duration_ms=-1)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"event_type": "task_created"}, "not dict; build one from a raw payload"),
        ("task_created", "not str"),
        (None, "not NoneType"),
    ],
)
def test_track_rejects_what_is_not_an_event(
    client: AnalyticsClient, value: object, message: str
) -> None:
    with pytest.raises(TypeError, match=message):
        client.track(value)  # type: ignore[arg-type]
    assert client.stats.accepted == 0


def test_track_rejects_a_base_event_that_is_not_an_event_type(client: AnalyticsClient) -> None:
    class Homemade(BaseEvent):
        event_type: str = "homemade"

    with pytest.raises(TypeError, match="Homemade is not one of the analytics event types"):
        client.track(Homemade())  # type: ignore[arg-type]


def test_track_accepts_a_subclass_of_an_event_model(client: AnalyticsClient) -> None:
    class Tagged(TaskCreated):
        pass

    assert client.track(Tagged(task_id=uuid.uuid4(), user_id=uuid.uuid4(), command="x"))


def test_track_rejects_naive_and_non_datetime_timestamps(client: AnalyticsClient) -> None:
    event = TaskCreated(task_id=uuid.uuid4(), user_id=uuid.uuid4(), command="x")
    with pytest.raises(ValueError, match=r"naive datetime .* datetime\.now\(UTC\)"):
        client.track(event, timestamp=datetime(2024, 1, 1, 12))
    with pytest.raises(TypeError, match="timestamp must be a timezone-aware datetime, not float"):
        client.track(event, timestamp=1_700_000_000.0)  # type: ignore[arg-type]
    assert client.stats.accepted == 0
    assert client.track(event, timestamp=datetime(2024, 1, 1, 12, tzinfo=UTC)) is True
    assert client.stats.accepted == 1


@pytest.mark.parametrize(
    ("timeout", "error"),
    [(-1, ValueError), (math.inf, ValueError), (None, TypeError), ("5", TypeError)],
)
def test_flush_and_close_require_a_finite_timeout(
    client: AnalyticsClient, timeout: object, error: type[Exception]
) -> None:
    with pytest.raises(error, match="timeout"):
        client.flush(timeout)  # type: ignore[arg-type]
    with pytest.raises(error, match="timeout"):
        client.close(timeout)  # type: ignore[arg-type]


def test_repr_shows_no_secret() -> None:
    tracker = AnalyticsClient(NOWHERE, service="platform", flush_interval=3600)
    try:
        assert "secret" not in repr(tracker)
        assert repr(tracker) == "<AnalyticsClient service='platform' open queue_depth=0>"
    finally:
        tracker.close(timeout=0)


@pytest.mark.parametrize(
    "timestamp",
    [
        # UTC year 10000: PostgreSQL would store it, Python could not read it back.
        datetime(9999, 12, 31, 23, 0, tzinfo=timezone(timedelta(hours=-12))),
        datetime(1970, 1, 1, tzinfo=UTC),  # a device whose clock was reset
        datetime.now(UTC) + timedelta(days=2),
    ],
)
def test_track_refuses_times_outside_the_accepted_range(
    client: AnalyticsClient, timestamp: datetime
) -> None:
    event = TaskCreated(task_id=uuid.uuid4(), user_id=uuid.uuid4(), command="x")
    with pytest.raises(ValueError, match="outside the times analytics-core accepts"):
        client.track(event, timestamp=timestamp)
    assert client.stats.accepted == 0
    # The edges are inside, in UTC or another zone.
    assert client.track(event, timestamp=EARLIEST_TIMESTAMP)
    assert client.track(event, timestamp=datetime.now(UTC) + MAX_CLOCK_SKEW / 2)
    assert client.track(event, timestamp=datetime(2024, 1, 1, tzinfo=timezone(timedelta(hours=5))))
    assert client.stats.accepted == 3
