"""AnalyticsClient writes what it is given: every event once, in the right columns.

Against the real server engine; each test gets a fresh database with the pre-deploy schema.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from analytics_core import AnalyticsClient
from analytics_core.events import (
    AnalyticsEvent,
    ApiRequest,
    AuthLoginAttempt,
    DatabaseQuery,
    HttpMethod,
    LoginMethod,
    ProjectUpdated,
    TaskCompleted,
    TaskCreated,
    WebhookReceived,
    event_payload_json,
)
from analytics_core.schema import EVENTS_TABLE
from tests.observe import fetch, wait_until

pytestmark = pytest.mark.server


def sample_event(thread: int, i: int) -> AnalyticsEvent:
    """A mix of models: with and without user_id, enums, tuples, floats, optional fields."""
    user = uuid.UUID(int=thread * 1_000_000 + i)
    match i % 6:
        case 0:
            return TaskCreated(
                task_id=uuid.uuid4(), user_id=user, command=f"make test {thread}/{i} ✓"
            )
        case 1:
            return TaskCompleted(task_id=uuid.uuid4(), user_id=user, duration_ms=i)
        case 2:
            return ApiRequest(
                method=HttpMethod.POST,
                route="/tasks/{id}",
                status_code=201,
                latency_ms=i / 7,
                user_id=None,
            )
        case 3:
            return WebhookReceived(
                provider="github", delivery_id=f"d-{thread}-{i}", webhook_event="push"
            )
        case 4:
            return ProjectUpdated(
                project_id=uuid.uuid4(), user_id=user, changed_fields=("name", f"f{i}")
            )
        case _:
            return DatabaseQuery(operation=f"select {thread}-{i}", duration_ms=0.5, success=True)


def canonical(event_type: str, user_id: uuid.UUID | None, data: object) -> str:
    return json.dumps([event_type, str(user_id), data], sort_keys=True)


def test_events_from_many_threads_are_written_exactly_once(events_url: str) -> None:
    threads, per_thread = 8, 250
    tracked: list[list[AnalyticsEvent]] = [[] for _ in range(threads)]
    before = datetime.now(UTC)
    client = AnalyticsClient(events_url, service="platform", batch_size=50, flush_interval=0.05)
    start = threading.Barrier(threads)

    def produce(thread: int) -> None:
        start.wait()
        for i in range(per_thread):
            event = sample_event(thread, i)
            assert client.track(event) is True
            tracked[thread].append(event)

    workers = [threading.Thread(target=produce, args=(t,)) for t in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert client.flush(timeout=30) is True
    assert client.close(timeout=30) is True
    after = datetime.now(UTC)

    total = threads * per_thread
    stats = client.stats
    assert (stats.accepted, stats.written, stats.dropped, stats.failed) == (total, total, 0, 0)
    assert (stats.queue_depth, stats.retried, stats.last_error) == (0, 0, None)
    # Batches of 50, of which a backlog goes out in COPYs of up to 10,000 rows.
    assert stats.batches >= -(-total // 10_000)

    rows = fetch(
        events_url,
        f'SELECT "timestamp", event_type, service, user_id, data, event_id FROM {EVENTS_TABLE}',
    )
    assert len(rows) == total
    assert len({row[5] for row in rows}) == total
    assert {row[2] for row in rows} == {"platform"}
    assert all(before <= row[0] <= after for row in rows)
    expected = Counter(
        canonical(e.event_type, getattr(e, "user_id", None), json.loads(event_payload_json(e)))
        for events in tracked
        for e in events
    )
    assert Counter(canonical(row[1], row[3], row[4]) for row in rows) == expected


def test_a_clean_close_logs_one_summary_line(
    events_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    client = AnalyticsClient(events_url, service="platform", batch_size=10, flush_interval=3600)
    for i in range(25):
        client.track(sample_event(0, i))
    client.track(TaskCreated(task_id=uuid.uuid4(), user_id=uuid.uuid4(), command="nul \u0000"))
    with caplog.at_level(logging.INFO, logger="analytics_core"):
        assert client.close(timeout=30) is True
        assert client.close(timeout=30) is True  # idempotent, and said once
    assert [(r.levelno, r.getMessage()) for r in caplog.records if "closed:" in r.getMessage()] == [
        (
            logging.INFO,
            "analytics-core: client 'platform' closed: 25 events written, 1 failed, 0 dropped",
        )
    ]


def test_the_event_id_is_a_time_ordered_uuid(events_url: str) -> None:
    with AnalyticsClient(events_url, service="platform", flush_interval=0.05) as client:
        client.track(TaskCompleted(task_id=uuid.uuid4(), user_id=uuid.uuid4(), duration_ms=1))
        assert client.flush(timeout=10) is True
    ((event_id, stamp),) = fetch(events_url, f'SELECT event_id, "timestamp" FROM {EVENTS_TABLE}')
    assert event_id.version == 7
    millis = event_id.int >> 80
    assert abs(millis - stamp.timestamp() * 1000) < 60_000


def test_an_explicit_timestamp_is_stored_exactly(events_url: str) -> None:
    when = datetime(2024, 2, 29, 23, 59, 58, 123456, tzinfo=timezone(timedelta(hours=-5)))
    event = AuthLoginAttempt(user_id=None, method=LoginMethod.PASSWORD, success=True)
    with AnalyticsClient(events_url, service="auth", flush_interval=0.05) as client:
        assert client.track(event, timestamp=when) is True
    ((stamp, user_id, data),) = fetch(
        events_url, f'SELECT "timestamp", user_id, data FROM {EVENTS_TABLE}'
    )
    assert stamp == when
    assert stamp.astimezone(UTC) == datetime(2024, 3, 1, 4, 59, 58, 123456, tzinfo=UTC)
    assert user_id is None
    assert data == {"user_id": None, "method": "password", "success": True, "failure_reason": None}


def test_a_full_batch_is_written_without_waiting_for_the_interval(events_url: str) -> None:
    client = AnalyticsClient(events_url, service="platform", batch_size=10, flush_interval=3600)
    try:
        for i in range(25):
            client.track(TaskCompleted(task_id=uuid.uuid4(), user_id=uuid.uuid4(), duration_ms=i))
        # Two full batches go at once (in one COPY if both wait when the writer is free);
        # the five left wait for the interval or a flush.
        assert wait_until(lambda: client.stats.written == 20)
        full = client.stats.batches
        assert full in (1, 2)
        assert client.stats.queue_depth == 5
        assert client.flush(timeout=10) is True
        assert (client.stats.written, client.stats.batches) == (25, full + 1)
    finally:
        client.close()
    assert fetch(events_url, f"SELECT count(*) FROM {EVENTS_TABLE}") == [(25,)]


def test_a_partial_batch_is_written_after_the_flush_interval(events_url: str) -> None:
    client = AnalyticsClient(events_url, service="platform", batch_size=100, flush_interval=0.1)
    try:
        for i in range(3):
            client.track(TaskCompleted(task_id=uuid.uuid4(), user_id=uuid.uuid4(), duration_ms=i))
        assert wait_until(lambda: client.stats.written == 3)
        assert client.stats.batches == 1
    finally:
        client.close()


def test_close_writes_what_is_pending_and_later_tracks_are_dropped(events_url: str) -> None:
    client = AnalyticsClient(events_url, service="platform", flush_interval=3600)
    for i in range(7):
        client.track(TaskCompleted(task_id=uuid.uuid4(), user_id=uuid.uuid4(), duration_ms=i))
    assert client.close(timeout=10) is True
    assert client.close(timeout=10) is True  # idempotent
    late = TaskCompleted(task_id=uuid.uuid4(), user_id=uuid.uuid4(), duration_ms=1)
    assert client.track(late) is False
    assert client.flush(timeout=1) is True
    stats = client.stats
    assert (stats.accepted, stats.written, stats.dropped, stats.queue_depth) == (8, 7, 1, 0)
    assert fetch(events_url, f"SELECT count(*) FROM {EVENTS_TABLE}") == [(7,)]


def test_aflush_and_aclose_do_not_block_the_event_loop(events_url: str) -> None:
    import asyncio  # noqa: PLC0415

    async def main() -> tuple[bool, bool, int]:
        client = AnalyticsClient(events_url, service="api", flush_interval=3600)
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        ticker = asyncio.create_task(tick())
        for i in range(5):
            client.track(TaskCompleted(task_id=uuid.uuid4(), user_id=uuid.uuid4(), duration_ms=i))
        flushed = await client.aflush(10)
        closed = await client.aclose(10)
        ticker.cancel()
        return flushed, closed, ticks

    flushed, closed, ticks = asyncio.run(main())
    assert (flushed, closed) == (True, True)
    assert ticks > 0
    assert fetch(events_url, f"SELECT count(*) FROM {EVENTS_TABLE}") == [(5,)]


@pytest.fixture
def client_factory(events_url: str) -> Iterator[Callable[..., AnalyticsClient]]:
    made: list[AnalyticsClient] = []

    def make(**kwargs: Any) -> AnalyticsClient:
        client = AnalyticsClient(events_url, **{"service": "platform", **kwargs})
        made.append(client)
        return client

    yield make
    for client in made:
        client.close(timeout=5)


def test_two_clients_share_a_table_without_conflict(
    events_url: str, client_factory: Callable[..., AnalyticsClient]
) -> None:
    first = client_factory(service="platform", batch_size=7, flush_interval=0.05)
    second = client_factory(service="signaling", batch_size=13, flush_interval=0.05)
    for i in range(100):
        first.track(TaskCompleted(task_id=uuid.uuid4(), user_id=uuid.uuid4(), duration_ms=i))
        second.track(TaskCompleted(task_id=uuid.uuid4(), user_id=uuid.uuid4(), duration_ms=i))
    assert first.flush(10) and second.flush(10)
    assert fetch(
        events_url, f"SELECT service, count(*) FROM {EVENTS_TABLE} GROUP BY 1 ORDER BY 1"
    ) == [("platform", 100), ("signaling", 100)]
