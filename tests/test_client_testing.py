"""The trackers for users' own tests: NullClient, RecordingClient and enabled=False.

No database: these never connect.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from analytics_core import AnalyticsClient, ClientStats, Tracker
from analytics_core.events import EnrichedEvent, TaskCompleted, TaskCreated
from analytics_core.testing import NullClient, RecordingClient


def created(command: str = "build") -> TaskCreated:
    return TaskCreated(task_id=uuid.uuid4(), user_id=uuid.uuid4(), command=command)


def completed(duration_ms: int = 1) -> TaskCompleted:
    return TaskCompleted(task_id=uuid.uuid4(), user_id=uuid.uuid4(), duration_ms=duration_ms)


def stats(accepted: int, written: int, dropped: int) -> ClientStats:
    return ClientStats(
        accepted=accepted,
        written=written,
        dropped=dropped,
        failed=0,
        retried=0,
        batches=0,
        queue_depth=0,
        last_error=None,
    )


@pytest.mark.parametrize(
    "make",
    [
        NullClient,
        RecordingClient,
        lambda: AnalyticsClient("", service="test", enabled=False),
    ],
    ids=["NullClient", "RecordingClient", "enabled=False"],
)
def test_every_double_has_the_client_surface_and_stats(make: type[Tracker]) -> None:
    tracker = make()
    assert isinstance(tracker, Tracker)
    assert isinstance(tracker, AnalyticsClient)
    assert tracker.track(created()) is True
    assert tracker.track(completed(), timestamp=datetime.now(UTC)) is True
    assert tracker.flush(timeout=0) is True
    assert tracker.stats == stats(accepted=2, written=2, dropped=0)
    assert asyncio.run(tracker.aflush(1)) is True
    with tracker:
        pass
    assert tracker.close() is True  # idempotent after the with block closed it
    assert asyncio.run(tracker.aclose(1)) is True
    assert tracker.track(created()) is False
    assert tracker.stats == stats(accepted=3, written=2, dropped=1)


def test_the_doubles_validate_like_the_client() -> None:
    tracker = RecordingClient()
    with pytest.raises(TypeError, match="takes an analytics event model"):
        tracker.track({"event_type": "task_created"})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="naive datetime"):
        tracker.track(created(), timestamp=datetime(2024, 1, 1))
    assert tracker.stats.accepted == 0
    assert tracker.events == []


def test_recording_client_keeps_typed_events_in_order() -> None:
    tracker = RecordingClient(service="billing")
    first, second, third = created("a"), completed(5), created("b")
    when = datetime(2024, 5, 6, 7, 8, 9, 10, tzinfo=timezone(timedelta(hours=3)))
    tracker.track(first)
    tracker.track(second, timestamp=when)
    tracker.track(third)

    assert tracker.events == [first, second, third]
    assert tracker.of_type(TaskCreated) == [first, third]
    assert tracker.of_type(TaskCompleted) == [second]
    records = tracker.records
    assert all(isinstance(r, EnrichedEvent) and r.service == "billing" for r in records)
    assert records[1].timestamp == when
    assert records[1].timestamp.tzinfo is UTC
    assert len({r.event_id for r in records}) == 3

    tracker.clear()
    assert tracker.events == []
    assert tracker.stats.written == 3  # clearing forgets events, not counts
    tracker.track(first)
    assert tracker.events == [first]


def test_recording_client_is_thread_safe() -> None:
    tracker = RecordingClient()

    def produce(thread: int) -> None:
        for i in range(200):
            tracker.track(completed(thread * 1000 + i))

    threads = [threading.Thread(target=produce, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(tracker.events) == 800
    durations = sorted(event.duration_ms for event in tracker.of_type(TaskCompleted))
    assert durations == sorted(t * 1000 + i for t in range(4) for i in range(200))
    assert tracker.stats == stats(accepted=800, written=800, dropped=0)


def test_application_code_can_be_typed_against_the_protocol() -> None:
    def submit(tracker: Tracker, command: str) -> None:
        tracker.track(created(command))

    tracker = RecordingClient()
    submit(tracker, "deploy")
    (event,) = tracker.of_type(TaskCreated)
    assert event.command == "deploy"
