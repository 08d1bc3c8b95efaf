"""``AnalyticsClient.track_all``, which the HTTP collector queues through: all or none, the
caller's service and event ids, and a retry with the same ids stored once."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from analytics_core import AnalyticsClient
from analytics_core.events import TaskCreated
from analytics_core.schema import EVENTS_TABLE
from analytics_core.testing import RecordingClient
from tests.observe import fetch

pytestmark = pytest.mark.server

# A port nothing listens on: the client's writes fail, so what it queues stays queued.
UNREACHABLE = "postgresql://nobody@127.0.0.1:9/none?connect_timeout=2"


def task(i: int) -> TaskCreated:
    return TaskCreated(task_id=uuid.uuid4(), user_id=uuid.uuid4(), command=f"make {i}")


def test_rows_carry_the_callers_service_ids_and_times(events_url: str) -> None:
    events = [task(i) for i in range(5)]
    ids = [uuid.uuid4() for _ in events]
    at = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    with AnalyticsClient(events_url, service="collector", flush_interval=3600) as client:
        assert client.track_all(events, service="web", timestamps=[at] * 5, event_ids=ids)
        assert client.track_all([task(5)]) is True
        assert client.flush(timeout=20) is True
        stats = client.stats
    assert (stats.accepted, stats.written, stats.dropped) == (6, 6, 0)
    rows = fetch(
        events_url,
        f"SELECT event_id, service, timestamp, data->>'command' FROM {EVENTS_TABLE}",
    )
    chosen = {row[0]: row for row in rows if row[1] == "web"}
    assert set(chosen) == set(ids)
    assert {row[2] for row in chosen.values()} == {at}
    assert {row[3] for row in chosen.values()} == {e.command for e in events}
    ((other,),) = [row[1:2] for row in rows if row[1] != "web"]
    assert other == "collector"


def test_a_retry_with_the_same_ids_and_times_is_stored_once(events_url: str) -> None:
    events = [task(i) for i in range(40)]
    ids = [uuid.uuid4() for _ in events]
    times = [datetime.now(UTC) - timedelta(seconds=i) for i in range(40)]
    with AnalyticsClient(events_url, service="collector", batch_size=25) as client:
        assert client.track_all(events, timestamps=times, event_ids=ids)
        assert client.flush(timeout=20) is True
        # Sent again: once after the first copy was written, once twice in the same batch.
        assert client.track_all(events, timestamps=times, event_ids=ids)
        assert client.track_all(events[:10], timestamps=times[:10], event_ids=ids[:10])
        assert client.flush(timeout=30) is True
        stats = client.stats
    assert (stats.failed, stats.dropped, stats.queue_depth) == (0, 0, 0)
    ((rows, distinct),) = fetch(
        events_url, f"SELECT count(*), count(DISTINCT event_id) FROM {EVENTS_TABLE}"
    )
    assert (rows, distinct) == (40, 40)


def test_all_or_none_a_refusal_counts_nothing() -> None:
    client = AnalyticsClient(UNREACHABLE, service="collector", batch_size=4, max_queue_size=10)
    try:
        assert client.track_all([task(i) for i in range(8)]) is True
        assert client.track_all([task(i) for i in range(3)]) is False
        assert client.track_all([task(i) for i in range(2)]) is True
        assert client.track_all([task(0)]) is False
        stats = client.stats
        assert (stats.accepted, stats.dropped, stats.queue_depth) == (10, 0, 10)
    finally:
        client.close(timeout=0.5)
    assert client.track_all([task(0)]) is False
    assert client.stats.accepted == 10


def test_everything_is_checked_before_anything_is_queued() -> None:
    with RecordingClient() as client:
        with pytest.raises(ValueError, match="timestamps has 1 entries for 2 events"):
            client.track_all([task(0), task(1)], timestamps=[None])
        with pytest.raises(ValueError, match="naive"):
            client.track_all([task(0), task(1)], timestamps=[None, datetime(2026, 1, 1)])
        with pytest.raises(TypeError, match="not a UUID"):
            client.track_all([task(0)], event_ids=["0193"])  # type: ignore[list-item]
        with pytest.raises(ValueError, match="service must be 1 to 100"):
            client.track_all([task(0)], service="")
        assert client.records == []


def test_the_recording_client_keeps_what_the_caller_chose() -> None:
    event_id = uuid.uuid4()
    at = datetime(2026, 3, 1, tzinfo=UTC)
    with RecordingClient(service="svc") as client:
        assert client.track_all([task(0)], timestamps=[at], event_ids=[event_id])
        assert client.track_all([task(1)], service="web")
        first, second = client.records
    assert (first.event_id, first.timestamp, first.service) == (event_id, at, "svc")
    assert second.service == "web"
