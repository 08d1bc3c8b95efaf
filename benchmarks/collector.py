"""The HTTP collector's throughput and request latency, against the direct client.

Two arms write the same events (same types, users, payloads and timestamps) into the same
schema, with the same client settings (batches of 500, a flush interval of 0.1 s, a queue
that holds them all):

- **D, the direct client**: one ``AnalyticsClient`` in this process, ``track()`` for every
  event until ``close()`` returns, everything written (as arm C of the ingest benchmark).
- **H, the collector**: ``analytics-collector serve`` (uvicorn, one process) on loopback;
  ``CONCURRENCY`` threads of this process post the events as JSON batches of
  ``REQUEST_BATCH`` to ``POST /v1/events/batch`` over keep-alive connections. The request
  bodies are encoded before the clock starts; the clock stops when the last row is in the
  table (polled every 20 ms), so the rate counts the whole way from HTTP to COPY.

The collector and the load generator share the machine's CPUs with the database, as a
collector beside its producers would not; the ratio is a floor. Each batch request's
latency (sent to answer read, at the load generator) is recorded in every measured round.
A warm-up round comes first; measured rounds alternate the order of the arms (D H, H D).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any, Final

import httpx
import psycopg

from analytics_core import AnalyticsClient
from analytics_core.events import AnalyticsEvent, event_payload_json
from analytics_core.sample import sample_events
from analytics_core.schema import EVENTS_TABLE
from benchmarks.database import reset_events
from benchmarks.figures import Percentiles, Spread, percentiles
from benchmarks.settings import Settings
from devtools.collector_process import start_collector, write_keys

__all__ = ["ARMS", "CONCURRENCY", "REQUEST_BATCH", "CollectorResult", "run"]

ARMS: Final = {
    "D": "AnalyticsClient in process: track() until close()",
    "H": "HTTP collector: POST /v1/events/batch until every row is in the table",
}
#: Items per batch request, and the load generator's concurrent connections.
REQUEST_BATCH: Final = 100
CONCURRENCY: Final = 4
#: The client settings of both arms: the collector's batch size; a short flush interval, so
#: that the last, partial batch of a run does not wait a whole default second.
CLIENT_BATCH: Final = 500
FLUSH_INTERVAL: Final = 0.1
DAY_START: Final = datetime(2024, 6, 3, tzinfo=UTC)
_POLL_S: Final = 0.02


@dataclass(frozen=True, slots=True)
class CollectorResult:
    events: int
    rounds: int
    #: Events per second of each arm, one sample per measured round.
    rates: dict[str, Spread]
    #: H's rate over D's, per measured round.
    http_over_direct: Spread
    #: Latency of every batch request of the measured rounds, in nanoseconds.
    request_latency: Percentiles
    requests: int


@dataclass(frozen=True, slots=True)
class _Workload:
    tracked: list[tuple[AnalyticsEvent, datetime]]
    bodies: list[bytes]

    @property
    def events(self) -> int:
        return len(self.tracked)


def _prepare(settings: Settings) -> _Workload:
    samples = list(
        sample_events(
            settings.collector_events,
            DAY_START,
            DAY_START + timedelta(days=1),
            users=2_000,
            seed=settings.seed,
        )
    )
    items = [
        {
            "event": {"event_type": s.event.event_type, **json.loads(event_payload_json(s.event))},
            "timestamp": s.timestamp.isoformat(),
        }
        for s in samples
    ]
    bodies = [
        json.dumps({"events": items[i : i + REQUEST_BATCH]}).encode()
        for i in range(0, len(items), REQUEST_BATCH)
    ]
    return _Workload([(s.event, s.timestamp) for s in samples], bodies)


def _direct(url: str, work: _Workload) -> float:
    """Seconds from the first ``track()`` until ``close()`` wrote everything."""
    client = AnalyticsClient(
        url,
        service="platform",
        batch_size=CLIENT_BATCH,
        flush_interval=FLUSH_INTERVAL,
        max_queue_size=max(work.events, CLIENT_BATCH),
    )
    start = time.perf_counter()
    for event, timestamp in work.tracked:
        client.track(event, timestamp=timestamp)
    drained = client.close(max(60.0, work.events / 1_000))
    seconds = time.perf_counter() - start
    if not drained or client.stats.written != work.events:
        raise RuntimeError(f"the direct client did not write every event: {client.stats}")
    return seconds


def _count(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute(f"SELECT count(*) FROM {EVENTS_TABLE}").fetchone()
    return 0 if row is None else int(row[0])


def _over_http(
    base_url: str, token: str, conn: psycopg.Connection[Any], work: _Workload
) -> tuple[float, list[int]]:
    """Seconds from the first request until every row is in the table; each request's ns."""
    latencies: list[int] = []
    failures: list[str] = []
    lock = threading.Lock()
    next_body = iter(work.bodies)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def post_all() -> None:
        mine: list[int] = []
        with httpx.Client(base_url=base_url, timeout=60) as http:
            while True:
                with lock:
                    body = next(next_body, None)
                if body is None:
                    break
                sent = time.perf_counter_ns()
                response = http.post("/v1/events/batch", content=body, headers=headers)
                mine.append(time.perf_counter_ns() - sent)
                if response.status_code != 202 or response.json()["rejected"]:
                    failures.append(f"{response.status_code}: {response.text[:300]}")
                    return
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=post_all) for _ in range(CONCURRENCY)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise RuntimeError(f"the collector refused a batch: {failures[0]}")
    deadline = time.monotonic() + max(60.0, work.events / 1_000)
    while _count(conn) < work.events:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the collector wrote {_count(conn)} of {work.events} events")
        time.sleep(_POLL_S)
    return time.perf_counter() - start, latencies


def run(url: str, settings: Settings, log: Callable[[str], None]) -> CollectorResult:
    """Run the collector benchmark in the migrated, empty database at ``url``."""
    log(f"collector: preparing {settings.collector_events:,} events")
    work = _prepare(settings)
    rates: dict[str, list[float]] = {"D": [], "H": []}
    latencies: list[int] = []
    with TemporaryDirectory(prefix="analytics-bench-collector-") as scratch:
        keys = write_keys(Path(scratch) / "keys.toml")
        process = start_collector(
            url,
            Path(scratch) / "keys.toml",
            Path(scratch) / "collector.log",
            "--batch-size", str(CLIENT_BATCH),
            "--flush-interval", str(FLUSH_INTERVAL),
            "--max-queue-size", str(max(work.events, 50_000)),
        )  # fmt: skip
        try:
            with psycopg.connect(url, autocommit=True) as conn:
                for index in range(settings.collector_rounds + 1):
                    order = ("D", "H") if index % 2 == 0 else ("H", "D")
                    measured: dict[str, float] = {}
                    for arm in order:
                        reset_events(conn)
                        if arm == "D":
                            seconds = _direct(url, work)
                        else:
                            seconds, requests = _over_http(
                                process.base_url, keys.server, conn, work
                            )
                            if index:
                                latencies += requests
                        if _count(conn) != work.events:
                            raise RuntimeError(f"arm {arm} left {_count(conn)} rows")
                        measured[arm] = work.events / seconds
                    label = "warm-up" if index == 0 else f"round {index}"
                    rates_text = ", ".join(f"{a} {r:,.0f}/s" for a, r in measured.items())
                    log(f"collector: {label}: {rates_text}")
                    if index:
                        for arm, rate in measured.items():
                            rates[arm].append(rate)
                reset_events(conn)
        finally:
            process.stop()
    return CollectorResult(
        events=work.events,
        rounds=settings.collector_rounds,
        rates={arm: Spread.of(samples) for arm, samples in rates.items()},
        http_over_direct=Spread.of([h / d for h, d in zip(rates["H"], rates["D"], strict=True)]),
        request_latency=percentiles(latencies),
        requests=len(latencies),
    )
