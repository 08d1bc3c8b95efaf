"""AnalyticsClient with nowhere to write: bounded memory, counted drops, bounded waits.

The database is a port where nothing listens, so every connection attempt is refused at once.
The elapsed-time checks are correctness bounds (a wait honours its timeout), with generous
slack, not performance thresholds.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator

import pytest

from analytics_core import AnalyticsClient
from analytics_core.client._encoder import row_encoder
from analytics_core.client._queue import EventQueue
from analytics_core.events import TaskCompleted
from tests.observe import wait_until

# A wait may overrun its timeout by scheduling and one short lock; far less than this.
SLACK_S = 2.0


@pytest.fixture
def dead_url() -> Iterator[str]:
    """A DSN whose port refuses connections (bound, never listening, so nobody else gets it)."""
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        port = placeholder.getsockname()[1]
        yield f"postgresql://postgres:secret@127.0.0.1:{port}/analytics"


@pytest.fixture
def unanswering_url() -> Iterator[str]:
    """A DSN whose server takes the connection and never answers (a hung host)."""
    with socket.create_server(("127.0.0.1", 0), backlog=64) as listener:
        yield f"postgresql://postgres:secret@127.0.0.1:{listener.getsockname()[1]}/analytics"


def client_threads(service: str) -> list[str]:
    """Names of the live threads of clients of ``service``."""
    return [t.name for t in threading.enumerate() if t.name.endswith(f"({service})")]


def event(i: int = 0) -> TaskCompleted:
    return TaskCompleted(task_id=uuid.uuid4(), user_id=uuid.uuid4(), duration_ms=i)


def collector_count_after_queueing(count: int) -> int:
    """How much queueing ``count`` events raises the collector's count of young objects.

    The intake on its own, so that no other thread allocates meanwhile, with room for every
    event in one batch (a full batch takes a few objects, once per ``batch_size`` events).
    """
    queue = EventQueue(max_size=count, batch_size=count, encode=row_encoder("platform"))
    events = [event(i) for i in range(count - 1)]
    gc.collect()
    gc.disable()
    try:
        before = gc.get_count()[0]
        for item in events:
            queue.put(item, time.time_ns())
        return gc.get_count()[0] - before
    finally:
        gc.enable()


def test_queued_events_add_no_object_for_the_garbage_collector() -> None:
    # What track() adds to each event it queues: nothing the collector counts (a young
    # collection every 700 of them) or visits in a full collection while the event waits:
    # the intake holds each event's row, as bytes. Compared across two sizes, so that what
    # the measuring itself allocates cancels out, after a first round that lets the
    # serializer set up what it caches.
    collector_count_after_queueing(10)
    assert collector_count_after_queueing(2_000) == collector_count_after_queueing(1_000)


def test_a_backlog_leaves_the_collector_nothing_to_visit() -> None:
    # Five full batches wait: each is a tuple of rows (bytes), which the collector stops
    # tracking at the first collection it survives. A full collection then visits none of
    # the 5,000 queued events, however long the backlog.
    queue = EventQueue(max_size=10_000, batch_size=1_000, encode=row_encoder("platform"))
    events = [event(i) for i in range(100)]
    collector_count_after_queueing(10)
    gc.collect()
    before = len(gc.get_objects())
    for i in range(5_000):
        assert queue.put(events[i % 100], time.time_ns())
    gc.collect()
    assert len(gc.get_objects()) == before
    assert queue.size() == 5_000


def test_a_full_queue_drops_new_events_and_counts_them(dead_url: str) -> None:
    client = AnalyticsClient(
        dead_url, service="platform", batch_size=10, max_queue_size=20, flush_interval=0.01
    )
    try:
        accepted = [client.track(event(i)) for i in range(20)]
        rejected = [client.track(event(i)) for i in range(5)]
        assert accepted == [True] * 20
        assert rejected == [False] * 5
        stats = client.stats
        assert (stats.accepted, stats.dropped, stats.written, stats.queue_depth) == (25, 5, 0, 20)
        # The bound holds while the worker retries: nothing more gets in.
        assert wait_until(lambda: client.stats.retried >= 2)
        assert client.track(event()) is False
        assert client.stats.queue_depth == 20
        assert client.stats.last_error is not None
        assert "OperationalError" in client.stats.last_error
    finally:
        client.close(timeout=0.2)


def test_flush_and_close_honour_their_timeouts_with_the_database_down(dead_url: str) -> None:
    client = AnalyticsClient(
        dead_url, service="platform", batch_size=10, max_queue_size=20, max_backoff=30.0
    )
    for i in range(23):
        client.track(event(i))
    # Let the backoff grow past the timeouts below: close() must cut the sleep short.
    assert wait_until(lambda: client.stats.retried >= 3)

    started = time.monotonic()
    assert client.flush(timeout=0.5) is False
    flushed_in = time.monotonic() - started

    started = time.monotonic()
    assert client.close(timeout=0.5) is False
    closed_in = time.monotonic() - started

    assert flushed_in < 0.5 + SLACK_S
    assert closed_in < 0.5 + SLACK_S
    # The 20 pending events became drops when close() gave up, with the 3 refused.
    stats = client.stats
    assert (stats.accepted, stats.written, stats.failed, stats.dropped) == (23, 0, 0, 23)
    assert client.track(event()) is False
    assert client.stats.dropped == 24
    assert client.close(timeout=0.5) is False  # idempotent: still "not everything written"
    assert client.flush(timeout=0.5) is False


def test_zero_timeouts_return_at_once(dead_url: str) -> None:
    client = AnalyticsClient(dead_url, service="platform", flush_interval=3600)
    client.track(event())
    started = time.monotonic()
    assert client.flush(timeout=0) is False
    assert client.close(timeout=0) is False
    assert time.monotonic() - started < SLACK_S


def test_drops_are_warned_about_at_a_bounded_rate_with_counts(
    dead_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    pattern = re.compile(r"dropped (\d+) events since last warning \(queue full")

    def reported() -> list[int]:
        return [
            int(match.group(1))
            for record in caplog.records
            if record.name == "analytics_core" and (match := pattern.search(record.getMessage()))
        ]

    with caplog.at_level(logging.WARNING, logger="analytics_core"):
        client = AnalyticsClient(
            dead_url, service="platform", batch_size=5, max_queue_size=5, flush_interval=0.01
        )
        for i in range(1005):
            client.track(event(i))
        assert wait_until(lambda: len(reported()) == 1)
        for i in range(500):
            client.track(event(i))
        # More drops within the period: counted, not warned about (the batcher looks every
        # second and would warn now if it were per event or per look).
        time.sleep(1.5)
        assert len(reported()) == 1
        assert client.close(timeout=0.2) is False
        assert client.stats.queue_depth == 0  # it gave up on the 5 pending events
        # What was not reported yet is reported when the worker stops: the counts add up.
        assert wait_until(lambda: len(reported()) == 2)
    assert sum(reported()) == 1500
    assert client.stats.dropped == 1505  # and the 5 pending, dropped at shutdown


def test_a_database_that_is_down_at_start_is_retried_with_backoff(dead_url: str) -> None:
    client = AnalyticsClient(dead_url, service="platform", batch_size=1, max_backoff=0.05)
    try:
        client.track(event())
        assert wait_until(lambda: client.stats.retried >= 5)
        assert client.stats.queue_depth == 1
        assert client.stats.failed == 0
    finally:
        client.close(timeout=0.1)


# A connection attempt in progress cannot be interrupted: it ends by its connect_timeout
# (libpq's minimum, 2 s, here); every other wait of the worker ends when close() gives up.
CONNECT_TIMEOUT_S = 2.0


@pytest.mark.parametrize("database", ["refusing", "unanswering"])
@pytest.mark.parametrize("closing", ["close", "aclose"])
def test_a_timed_out_close_leaves_final_counters_and_no_thread_behind(
    database: str, closing: str, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("dead_url" if database == "refusing" else "unanswering_url")
    service = f"given-up-{database}-{closing}"
    client = AnalyticsClient(
        url,
        service=service,
        batch_size=10,
        flush_interval=0.01,
        connect_timeout=CONNECT_TIMEOUT_S,
        max_backoff=0.05,
    )
    for i in range(50):
        assert client.track(event(i)) is True
    time.sleep(0.2)  # the writer is retrying, or waiting for the server to answer
    if closing == "close":
        assert client.close(timeout=0.5) is False
    else:
        assert asyncio.run(client.aclose(timeout=0.5)) is False
    # Final when close() returns: every pending event counted as dropped, nothing in flight.
    stats = client.stats
    assert (stats.accepted, stats.written, stats.failed, stats.dropped) == (50, 0, 0, 50)
    assert stats.queue_depth == 0
    assert wait_until(lambda: not client_threads(service), timeout=CONNECT_TIMEOUT_S + SLACK_S)
    assert client.stats == stats


def test_a_close_that_gives_up_says_so_in_one_line(
    dead_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    client = AnalyticsClient(dead_url, service="platform", flush_interval=3600)
    for i in range(7):
        client.track(event(i))
    with caplog.at_level(logging.INFO, logger="analytics_core"):
        assert client.close(timeout=0.2) is False
        assert client.close(timeout=0.2) is False
    summaries = [r for r in caplog.records if "closed:" in r.getMessage()]
    assert [(r.levelno, r.getMessage()) for r in summaries] == [
        (
            logging.WARNING,
            "analytics-core: client 'platform' closed: 0 events written, 0 failed, 7 dropped, "
            "of which 7 still pending when close() gave up "
            f"(last error: {client.stats.last_error})",
        )
    ]
