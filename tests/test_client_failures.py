"""AnalyticsClient under failure: bad rows, lost commits, a restarted or frozen server.

What is asserted is exact: row counts, distinct event ids, the stats identity
``accepted == written + failed + dropped``, and which events reached ``on_error``.
"""

from __future__ import annotations

import contextlib
import logging
import re
import secrets
import socket
import struct
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from analytics_core import AnalyticsClient
from analytics_core.client._config import ClientConfig
from analytics_core.client._connection import EventsConnection
from analytics_core.client._delivery import Delivery
from analytics_core.client._encoder import Batch, event_id_of, row_encoder
from analytics_core.client._queue import EventQueue
from analytics_core.events import AnalyticsEvent, TaskCreated
from analytics_core.migrate import Phase, apply
from analytics_core.schema import EVENTS_TABLE
from analytics_core.tracker import OnError
from tests.observe import fetch, wait_until

pytestmark = pytest.mark.server

RESTART_CLUSTER = "client-restart"


def count_rows(url: str) -> tuple[int, int]:
    """(rows, distinct event ids) in the events table."""
    ((rows, ids),) = fetch(url, f"SELECT count(*), count(DISTINCT event_id) FROM {EVENTS_TABLE}")
    return rows, ids


def task(i: int, command: str = "make") -> TaskCreated:
    return TaskCreated(task_id=uuid.uuid4(), user_id=uuid.uuid4(), command=f"{command} {i}")


def assert_adds_up(client: AnalyticsClient) -> None:
    stats = client.stats
    assert stats.queue_depth == 0
    assert stats.accepted == stats.written + stats.failed + stats.dropped


# --- Rows the database rejects ----------------------------------------------------------------


def test_a_poison_event_costs_only_itself(events_url: str) -> None:
    rejected: list[tuple[list[AnalyticsEvent], BaseException]] = []
    client = AnalyticsClient(
        events_url,
        service="platform",
        batch_size=20,
        flush_interval=3600,
        on_error=lambda events, exc: rejected.append((list(events), exc)),
    )
    poison = task(7, command="nul \u0000 inside")
    good = [task(i) for i in range(19)]
    for event in [*good[:7], poison, *good[7:]]:
        assert client.track(event) is True
    assert client.flush(timeout=20) is True
    client.close()

    stats = client.stats
    assert (stats.accepted, stats.written, stats.failed, stats.dropped) == (20, 19, 1, 0)
    assert stats.last_error is not None and stats.last_error.startswith("22P05 ")
    assert_adds_up(client)
    ((events, exc),) = rejected
    assert events == [poison]
    assert isinstance(exc, psycopg.errors.UntranslatableCharacter)
    assert count_rows(events_url) == (19, 19)
    commands = {row[0] for row in fetch(events_url, f"SELECT data->>'command' FROM {EVENTS_TABLE}")}
    assert commands == {e.command for e in good}


def test_an_event_that_cannot_be_serialised_fails_alone_in_track_order(events_url: str) -> None:
    # track() encodes the row; an event built without validation from a value no JSON can
    # hold has none. It is counted as failed and handed to on_error like a rejected row.
    rejected: list[tuple[list[AnalyticsEvent], BaseException]] = []
    client = AnalyticsClient(
        events_url,
        service="platform",
        batch_size=4,
        flush_interval=3600,
        on_error=lambda events, exc: rejected.append((list(events), exc)),
    )
    broken = TaskCreated.model_construct(
        task_id=uuid.uuid4(), user_id=uuid.uuid4(), command=object()
    )
    for event in [task(0), broken, task(1), task(2)]:
        assert client.track(event) is True
    assert client.close(timeout=20) is True
    stats = client.stats
    assert (stats.accepted, stats.written, stats.failed, stats.dropped) == (4, 3, 1, 0)
    assert_adds_up(client)
    ((events, exc),) = rejected
    assert events[0] is broken
    assert "serialize" in str(exc)
    assert count_rows(events_url) == (3, 3)


def test_several_poison_events_in_several_batches(events_url: str) -> None:
    failed: list[AnalyticsEvent] = []
    client = AnalyticsClient(
        events_url,
        service="platform",
        batch_size=16,
        flush_interval=3600,
        on_error=lambda events, exc: failed.extend(events),
    )
    poison_at = {0, 5, 6, 31, 47}
    tracked = [task(i, command="bad \u0000" if i in poison_at else "good") for i in range(48)]
    for event in tracked:
        client.track(event)
    assert client.close(timeout=20) is True
    assert (client.stats.written, client.stats.failed) == (43, 5)
    assert_adds_up(client)
    assert sorted(failed, key=tracked.index) == [tracked[i] for i in sorted(poison_at)]
    assert count_rows(events_url) == (43, 43)


def test_an_on_error_callback_that_raises_does_not_stop_the_writer(
    events_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    def on_error(events: object, exc: BaseException) -> None:
        raise RuntimeError("the callback is broken")

    client = AnalyticsClient(
        events_url, service="platform", batch_size=4, flush_interval=3600, on_error=on_error
    )
    with caplog.at_level(logging.WARNING, logger="analytics_core"):
        client.track(task(0, command="\u0000"))
        assert client.flush(timeout=10) is True
        for i in range(4):
            client.track(task(i))
        assert client.flush(timeout=10) is True
    client.close()
    assert (client.stats.written, client.stats.failed) == (4, 1)
    assert any("on_error callback raised" in r.getMessage() for r in caplog.records)


def test_flush_inside_on_error_is_refused_instead_of_waiting_for_itself(
    events_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    refusals: list[str] = []
    client: AnalyticsClient

    def on_error(events: object, exc: BaseException) -> None:
        try:
            client.flush(timeout=5)
        except RuntimeError as refused:
            refusals.append(str(refused))

    client = AnalyticsClient(
        events_url, service="platform", batch_size=1, flush_interval=3600, on_error=on_error
    )
    client.track(task(0, command="\u0000"))
    assert client.flush(timeout=10) is True
    client.close()
    assert len(refusals) == 1
    assert refusals[0].startswith("flush() called from the client's own worker thread")


def test_a_missing_table_is_retried_not_failed_until_the_schema_exists(database_url: str) -> None:
    # Not the rows' fault (42P01): nothing is failed or dropped; it is written once migrated.
    client = AnalyticsClient(
        database_url, service="platform", batch_size=5, flush_interval=0.05, max_backoff=10.0
    )
    try:
        for i in range(5):
            client.track(task(i))
        # The 7th pause lasts at least 3.2 s (6.4 s, jittered to 50-100 %): the migrations run
        # meanwhile. A first insert creating a chunk under a later migration's GRANT on the
        # table can fail that GRANT ("tuple concurrently updated"), which is not this test's.
        assert wait_until(lambda: client.stats.retried >= 7)
        stats = client.stats
        assert (stats.written, stats.failed, stats.dropped, stats.queue_depth) == (0, 0, 0, 5)
        assert stats.last_error is not None and stats.last_error.startswith("42P01 ")
        apply(database_url, (Phase.PRE,))
        assert client.flush(timeout=20) is True
        # Recovered: the outage's error is not reported as if it were still current.
        assert client.stats.last_error is None
    finally:
        client.close()
    assert (client.stats.written, client.stats.failed) == (5, 0)
    assert count_rows(database_url) == (5, 5)


# --- Rows that may already be in the table ------------------------------------------------------


def connect_events(url: str) -> EventsConnection:
    """The client's connection to ``url``, as AnalyticsClient would open it."""
    config = ClientConfig.create(
        url,
        service="platform",
        batch_size=10,
        flush_interval=1.0,
        max_queue_size=100,
        on_error=None,
        shutdown_timeout=1.0,
        connect_timeout=5.0,
        statement_timeout=10.0,
        max_backoff=0.1,
        connect=True,
    )
    return EventsConnection(config.conninfo, config.statement_timeout_ms)


def deliver_once(
    connection: EventsConnection, queue: EventQueue, batch: Batch, on_error: OnError | None = None
) -> None:
    """Deliver ``batch`` as the writer thread would, retrying at once."""
    delivery = Delivery(
        connection,
        queue,
        on_error=on_error,
        max_backoff=0.1,
        max_queue_size=100,
        pause=lambda delay: True,
        aborted=lambda: False,
    )
    delivery.deliver(batch)
    connection.close()


def batch_of(queue: EventQueue, stamps: list[int]) -> Batch:
    """One event per clock reading (``time.time_ns()`` form), queued, taken and built."""
    for i, stamp in enumerate(stamps):
        assert queue.put(task(i), stamp)
    return Batch.of(queue.take())


def test_rows_already_in_the_table_count_as_written_not_failed(events_url: str) -> None:
    # What happens when an in-doubt COPY committed behind the writer's back: the retry hits
    # the unique index on event_id (23505). Here the "earlier attempt" is simulated by writing
    # part of the batch first, with the very same event ids.
    queue = EventQueue(100, 10, row_encoder("platform"))
    batch = batch_of(queue, [time.time_ns()] * 10)
    earlier = connect_events(events_url)
    earlier.copy([batch.rows[i] for i in (1, 4, 5, 9)])
    earlier.close()

    deliver_once(connect_events(events_url), queue, batch)
    stats = queue.snapshot()
    assert (stats.written, stats.failed, stats.queue_depth, stats.batches) == (10, 0, 0, 1)
    assert count_rows(events_url) == (10, 10)


_UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# 9999-12-31 23:00 at UTC-12 is 10000-01-01 11:00 UTC: PostgreSQL stores it, Python's datetime
# cannot hold it. track() refuses it today; rows written before, or by other producers, may
# hold one, and a batch in doubt must still be looked up.
YEAR_10000_NS = (
    (datetime(9999, 12, 31, 23, 0, tzinfo=timezone(timedelta(hours=-12))) - _UNIX_EPOCH)
    // timedelta(microseconds=1)
    * 1_000
)
# The day before 0001-01-01 UTC, Python's first: likewise out of datetime's reach.
YEAR_0_NS = (
    (datetime.min.replace(tzinfo=UTC) - _UNIX_EPOCH - timedelta(days=1))
    // timedelta(microseconds=1)
    * 1_000
)


def test_the_in_doubt_look_up_finds_rows_at_any_time_the_table_holds(events_url: str) -> None:
    queue = EventQueue(100, 10, row_encoder("platform"))
    written = batch_of(queue, [YEAR_10000_NS, time.time_ns(), YEAR_0_NS, 0])
    elsewhere = batch_of(queue, [YEAR_10000_NS, YEAR_0_NS])
    connection = connect_events(events_url)
    try:
        connection.copy(written.rows)
        present = connection.present([*written.rows, *elsewhere.rows])
    finally:
        connection.close()
    assert present == {event_id_of(row) for row in written.rows}


def test_an_unacknowledged_commit_of_a_row_past_year_9999_counts_as_written(
    events_url: str, proxy: tuple[PgProxy, str]
) -> None:
    # The review's case: the acknowledgement of a COPY lost, one row beyond year 9999 in UTC.
    # The look-up could not compute its bounds, and the row was counted failed, yet written.
    pg_proxy, proxied_url = proxy
    rejected: list[AnalyticsEvent] = []
    queue = EventQueue(100, 10, row_encoder("platform"))
    batch = batch_of(queue, [time.time_ns()] * 9 + [YEAR_10000_NS])
    pg_proxy.cut_after_commit()
    deliver_once(
        connect_events(proxied_url), queue, batch, lambda events, exc: rejected.extend(events)
    )
    assert pg_proxy.cuts == 1
    stats = queue.snapshot()
    assert (stats.written, stats.failed, stats.retried, stats.queue_depth) == (10, 0, 1, 0)
    assert rejected == []
    assert count_rows(events_url) == (10, 10)


# --- A commit the client never heard about -----------------------------------------------------


class PgProxy:
    """A loopback TCP proxy for the PostgreSQL protocol, with two ways to misbehave.

    - ``cut_after_commit()``: for the next ``COMMIT`` query a client sends (the client's COPY
      runs in a transaction of its own), forward it to the server, then close both sockets at
      once: the server commits, the client never hears.
    - ``freeze()``: stop forwarding anything on the current connections, like a server that
      hangs without closing (new connections work normally).
    """

    def __init__(self, target: tuple[str, int]) -> None:
        self._target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._cut_armed = threading.Event()
        self.cuts = 0
        self._lock = threading.Lock()
        self._frozen: set[socket.socket] = set()
        self._open: list[socket.socket] = []
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def cut_after_commit(self) -> None:
        self._cut_armed.set()

    def freeze(self) -> None:
        with self._lock:
            self._frozen.update(self._open)

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        with self._lock:
            for sock in self._open:
                _close(sock)

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self._target)
            with self._lock:
                self._open += [client, server]
            threading.Thread(
                target=self._client_to_server, args=(client, server), daemon=True
            ).start()
            threading.Thread(
                target=self._server_to_client, args=(server, client), daemon=True
            ).start()

    def _client_to_server(self, client: socket.socket, server: socket.socket) -> None:
        typed = False  # the first messages (SSLRequest, StartupMessage) have no type byte
        try:
            while True:
                if typed:
                    head = _read_exactly(client, 5)
                    kind, length = head[:1], struct.unpack("!I", head[1:])[0]
                    body = _read_exactly(client, length - 4)
                else:
                    head = _read_exactly(client, 4)
                    length = struct.unpack("!I", head)[0]
                    body = _read_exactly(client, length - 4)
                    kind = b""
                    code = struct.unpack("!I", body[:4])[0]
                    typed = code not in (80877103, 80877104)  # SSL and GSS encryption requests
                if client in self._frozen:
                    continue
                if not (self._cut_armed.is_set() and _is_commit(kind, body)):
                    server.sendall(head + body)
                    continue
                self._cut_armed.clear()
                self.cuts += 1
                # The client loses its connection now. Frozen before the commit is sent, so
                # that not even a fast answer reaches it. The server gets an orderly end of
                # stream after the commit message (not a reset, which could discard it
                # unread), and its answer is read and dropped.
                with self._lock:
                    self._frozen.add(client)
                server.sendall(head + body)
                _close(client)
                server.shutdown(socket.SHUT_WR)
                return
        except OSError:
            _close(client)
            _close(server)

    def _server_to_client(self, server: socket.socket, client: socket.socket) -> None:
        try:
            while data := server.recv(65536):
                if client not in self._frozen:
                    client.sendall(data)
        except OSError:
            pass
        _close(client)
        _close(server)


def _is_commit(kind: bytes, body: bytes) -> bool:
    return kind == b"Q" and body.rstrip(b"\0").strip().upper() in (b"COMMIT", b"COMMIT;")


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("peer closed")
        data += chunk
    return data


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


@pytest.fixture
def proxy(events_url: str) -> Iterator[tuple[PgProxy, str]]:
    params = conninfo_to_dict(events_url)
    pg_proxy = PgProxy((str(params.get("host", "127.0.0.1")), int(params.get("port", 5432))))
    proxied = make_conninfo(
        events_url,
        host="127.0.0.1",
        port=str(pg_proxy.port),
        sslmode="disable",
        gssencmode="disable",
    )
    yield pg_proxy, proxied
    pg_proxy.close()


def test_an_ambiguous_commit_is_not_written_twice(
    events_url: str, proxy: tuple[PgProxy, str], caplog: pytest.LogCaptureFixture
) -> None:
    pg_proxy, proxied_url = proxy
    client = AnalyticsClient(
        proxied_url, service="platform", batch_size=10, flush_interval=3600, max_backoff=0.2
    )
    pg_proxy.cut_after_commit()
    with caplog.at_level(logging.INFO, logger="analytics_core"):
        for i in range(25):
            assert client.track(task(i)) is True
        assert client.flush(timeout=20) is True
        assert client.close(timeout=10) is True
    assert pg_proxy.cuts == 1
    stats = client.stats
    assert (stats.accepted, stats.written, stats.failed, stats.dropped) == (25, 25, 0, 0)
    assert stats.retried >= 1
    assert count_rows(events_url) == (25, 25)
    # The first COPY had committed: the writer found all of it and wrote none of it again.
    # (Its first batch of 10, or 20 if the second was full before the writer took one: a
    # backlog goes out in one COPY.)
    assert any(
        re.search(
            r"\b(10|20) of \1 events of an in-doubt batch were already written", r.getMessage()
        )
        for r in caplog.records
    ), [r.getMessage() for r in caplog.records]


def test_a_frozen_server_is_cut_off_and_the_batch_written_once(
    events_url: str, proxy: tuple[PgProxy, str]
) -> None:
    # statement_timeout cannot fire on a server that is not running; the client's watchdog
    # cuts the connection 5 s after it instead, then checks and rewrites the batch.
    pg_proxy, proxied_url = proxy
    client = AnalyticsClient(
        proxied_url,
        service="platform",
        batch_size=5,
        flush_interval=3600,
        statement_timeout=0.5,
        max_backoff=0.2,
    )
    try:
        client.track(task(0))
        assert client.flush(timeout=10) is True  # connected, one batch written
        pg_proxy.freeze()
        for i in range(1, 6):
            client.track(task(i))
        assert client.flush(timeout=30) is True
    finally:
        client.close(timeout=10)
    assert client.stats.written == 6
    assert client.stats.retried >= 1
    assert count_rows(events_url) == (6, 6)


def test_a_close_that_gives_up_on_a_frozen_server_cuts_its_connection_at_once(
    events_url: str, proxy: tuple[PgProxy, str]
) -> None:
    # The writer waits on the frozen server (statement_timeout cannot fire there); close()
    # gives up after half a second, shuts the socket down and counts the batch as dropped.
    pg_proxy, proxied_url = proxy
    client = AnalyticsClient(proxied_url, service="frozen-close", batch_size=5, flush_interval=3600)
    client.track(task(0))
    assert client.flush(timeout=10) is True
    pg_proxy.freeze()
    for i in range(1, 6):
        client.track(task(i))
    assert wait_until(lambda: client.stats.queue_depth == 5)
    time.sleep(0.2)  # the batch is on the wire
    assert client.close(timeout=0.5) is False
    stats = client.stats
    assert (stats.accepted, stats.written, stats.failed, stats.dropped) == (6, 1, 0, 5)
    assert stats.queue_depth == 0
    assert wait_until(
        lambda: not [t for t in threading.enumerate() if t.name.endswith("(frozen-close)")],
        timeout=2.0,
    )
    assert client.stats == stats
    assert count_rows(events_url) == (1, 1)


# --- A database that goes away and comes back ---------------------------------------------------


@pytest.fixture
def restartable_url(full_timescaledb: object) -> Iterator[str]:
    """A fresh database on a cluster of our own that the test may stop and start."""
    if full_timescaledb is not None:
        pytest.skip("the database comes from the environment or Docker and cannot be restarted")
    from devtools import server_engine as server  # noqa: PLC0415

    reason = server.unavailable_reason()
    if reason is not None:
        pytest.skip(f"no local server engine: {reason}")
    admin_url = server.ensure_server(RESTART_CLUSTER)
    name = f"client_restart_{secrets.token_hex(4)}"
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))
    apply(url, (Phase.PRE,))
    yield url
    admin_url = server.ensure_server(RESTART_CLUSTER)
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def test_a_database_restart_mid_ingest_loses_and_duplicates_nothing(restartable_url: str) -> None:
    from devtools import server_engine as server  # noqa: PLC0415

    total = 3000
    client = AnalyticsClient(
        restartable_url,
        service="platform",
        batch_size=25,
        flush_interval=0.02,
        max_queue_size=total,
        max_backoff=0.5,
    )
    tracked = threading.Event()
    halfway = threading.Event()

    def produce() -> None:
        # About 1.5 s of tracking, so that it goes on while the server is down.
        for i in range(total):
            assert client.track(task(i)) is True
            if i == total // 3:
                halfway.set()
            if i % 2:
                time.sleep(0.001)
        tracked.set()

    producer = threading.Thread(target=produce)
    producer.start()
    try:
        assert halfway.wait(30)
        server.stop_server(RESTART_CLUSTER)
        stopped_at = client.stats
        time.sleep(0.3)
        server.ensure_server(RESTART_CLUSTER)
        producer.join(60)
        assert tracked.is_set()
        assert client.flush(timeout=60) is True
    finally:
        client.close(timeout=10)
    stats = client.stats
    assert (stats.accepted, stats.written, stats.failed, stats.dropped) == (total, total, 0, 0)
    assert stats.retried >= 1
    assert stopped_at.written < total
    assert count_rows(restartable_url) == (total, total)
    ((tasks,),) = fetch(
        restartable_url, f"SELECT count(DISTINCT data->>'task_id') FROM {EVENTS_TABLE}"
    )
    assert tasks == total
