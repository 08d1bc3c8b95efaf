"""The three clients of the peers benchmark behind one surface, and what is measured of them.

Runs in a child process of its own per client and round (``measure``), so that each
client's CPU time, threads and heap are its own: analytics-core writing to the database,
PostHog and Segment sending to the local HTTP sink (``benchmarks.endpoints``). PostHog and
Segment are imported only here, only when measured: they are benchmark-only dependencies.

Every client gets the same events, from ``analytics_core.sample``: analytics-core the models,
the HTTP SDKs each event's name, user and properties (its JSON document, decoded). Each runs
with its own defaults except where a scenario sets the queue bound (the same for all).
"""

from __future__ import annotations

import gc
import importlib.metadata
import json
import logging
import os
import resource
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from queue import SimpleQueue
from typing import Any, Final

from analytics_core import AnalyticsClient
from analytics_core.events import AnalyticsEvent, TaskCompleted, event_payload_json
from analytics_core.sample import sample_events

__all__ = ["CLIENTS", "OUTAGE_SERVICE", "PEERS", "Plan", "installed", "measure"]

#: The clients, in the report's order; the last two are the peers.
CLIENTS: Final = ("analytics-core", "posthog", "segment")
PEERS: Final = {"posthog": "posthog", "segment": "segment-analytics-python"}
#: The service of analytics-core's rows in the outage sample, which are counted by it.
OUTAGE_SERVICE: Final = "outage"
_POOL: Final = 10_000
_SEED: Final = 20240603
_KEY: Final = "phc_benchmark"
# Every wait for a client to deliver is bounded: far longer than any plausible drain.
_DRAIN_S: Final = 60.0
_POLL_S: Final = 0.002


def installed(name: str) -> str | None:
    """The installed version of a peer's distribution, or None."""
    try:
        return importlib.metadata.version(PEERS[name])
    except importlib.metadata.PackageNotFoundError:
        return None


@dataclass(frozen=True, slots=True)
class Plan:
    """What one child measures, and where its client sends."""

    client: str
    #: The database (analytics-core) or the sink's URL (the peers), both up.
    target: str
    #: The same behind the gate (analytics-core) or the sink again (peers), for the outage.
    outage_target: str
    #: An address where nothing listens, for the collector sample.
    dead_target: str
    calls: int
    open_loops: tuple[tuple[float, float], ...]  # (calls per second, seconds)
    throughput_events: int
    outage_rate: float
    outage_phases: tuple[float, float, float]  # seconds up, down, up again
    outage_queue: int
    gc_events: int


# --- The clients --------------------------------------------------------------------------------


class _Client:
    """One SDK, configured: a pre-built item per event, and the calls on it."""

    #: Pre-built per pool event: what a call passes.
    items: list[Any]
    #: Per pool event: a function that builds the call's argument and calls (built in the call).
    builders: list[Callable[[], object]]

    def send(self, item: Any) -> bool:
        """Track one pre-built item; False when the client says it dropped it."""
        raise NotImplementedError

    def drain(self, timeout: float) -> bool:
        """Deliver everything tracked so far; False on timeout."""
        raise NotImplementedError

    def reported(self) -> int:
        """Events the client told the application it lost (refused calls, error callbacks)."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class _Ours(_Client):
    def __init__(
        self, url: str, pool: Sequence[AnalyticsEvent], max_queue: int, service: str
    ) -> None:
        self._client = AnalyticsClient(url, service=service, max_queue_size=max_queue)
        track = self._client.track
        self._track = track
        self.items = list(pool)

        def builder(event: AnalyticsEvent) -> Callable[[], object]:
            cls = type(event)
            fields = {k: v for k, v in event.__dict__.items() if k != "event_type"}
            return lambda: track(cls(**fields))

        self.builders = [builder(event) for event in pool]

    def send(self, item: Any) -> bool:
        return self._track(item)

    def drain(self, timeout: float) -> bool:
        return self._client.flush(timeout)

    def reported(self) -> int:
        return self._client.stats.dropped + self._client.stats.failed

    def written(self) -> int:
        return self._client.stats.written

    def close(self) -> None:
        self._client.close(1.0)


def _http_items(pool: Sequence[AnalyticsEvent]) -> list[tuple[str, str, dict[str, Any]]]:
    items: list[tuple[str, str, dict[str, Any]]] = []
    for event in pool:
        properties = json.loads(event_payload_json(event))
        items.append((event.event_type, str(properties.get("user_id") or "anonymous"), properties))
    return items


class _PostHog(_Client):
    def __init__(self, host: str, pool: Sequence[AnalyticsEvent], max_queue: int) -> None:
        from posthog import Posthog  # noqa: PLC0415 - a benchmark-only dependency

        self._lost = 0
        self._client = Posthog(_KEY, host=host, max_queue_size=max_queue, on_error=self._on_error)
        capture = self._client.capture
        self._capture = capture
        self.items = _http_items(pool)

        def builder(name: str, user: str, properties: dict[str, Any]) -> Callable[[], object]:
            return lambda: capture(name, distinct_id=user, properties=dict(properties))

        self.builders = [builder(*item) for item in self.items]

    def _on_error(self, error: object, batch: Sequence[object]) -> None:
        self._lost += len(batch)

    def send(self, item: Any) -> bool:
        name, user, properties = item
        if self._capture(name, distinct_id=user, properties=properties) is None:
            self._lost += 1
            return False
        return True

    def drain(self, timeout: float) -> bool:
        self._client.flush(timeout)
        return True

    def reported(self) -> int:
        return self._lost

    def close(self) -> None:
        self._client.shutdown()


class _Segment(_Client):
    def __init__(self, host: str, pool: Sequence[AnalyticsEvent], max_queue: int) -> None:
        from segment.analytics import (  # type: ignore[import-untyped]  # noqa: PLC0415
            Client,  # a benchmark-only dependency, untyped
        )

        self._lost = 0
        self._client = Client(
            "benchmark", host=host, max_queue_size=max_queue, on_error=self._on_error
        )
        track = self._client.track
        self._track = track
        self.items = _http_items(pool)

        def builder(name: str, user: str, properties: dict[str, Any]) -> Callable[[], object]:
            return lambda: track(user, name, dict(properties))

        self.builders = [builder(*item) for item in self.items]

    def _on_error(self, error: object, batch: Sequence[object]) -> None:
        self._lost += len(batch)

    def send(self, item: Any) -> bool:
        name, user, properties = item
        accepted, _ = self._track(user, name, properties)
        if not accepted:
            self._lost += 1
        return bool(accepted)

    def drain(self, timeout: float) -> bool:
        # Its flush() has no timeout: wait for the queue the same way, bounded.
        deadline = time.monotonic() + timeout
        while self._client.queue.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(_POLL_S)
        return True

    def reported(self) -> int:
        return self._lost

    def close(self) -> None:
        self._client.join()


def _make(
    name: str,
    target: str,
    pool: Sequence[AnalyticsEvent],
    max_queue: int,
    service: str = "platform",
) -> _Client:
    if name == "analytics-core":
        return _Ours(target, pool, max_queue, service)
    if name == "posthog":
        return _PostHog(target, pool, max_queue)
    return _Segment(target, pool, max_queue)


# --- What is measured ---------------------------------------------------------------------------


def _pool() -> list[AnalyticsEvent]:
    start = datetime(2024, 6, 3, tzinfo=UTC)
    return [
        sample.event
        for sample in sample_events(
            _POOL, start, start + timedelta(days=1), users=2_000, seed=_SEED
        )
    ]


def _call_cost(client: _Client, calls: int) -> dict[str, list[int]]:
    """Back-to-back timed calls: pre-built events, then built in the call. Collector off."""
    perf = time.perf_counter_ns
    items, builders = client.items, client.builders
    size = len(items)
    send = client.send
    prebuilt = [0] * calls
    built = [0] * calls
    gc.collect()
    gc.disable()
    try:
        for i in range(calls):
            item = items[i % size]
            began = perf()
            send(item)
            prebuilt[i] = perf() - began
        client.drain(_DRAIN_S)
        for i in range(calls):
            build = builders[i % size]
            began = perf()
            build()
            built[i] = perf() - began
    finally:
        gc.enable()
    client.drain(_DRAIN_S)
    return {"prebuilt": prebuilt, "built": built}


def _open_loop(client: _Client, rate: float, seconds: float) -> list[int]:
    """Call *i* is due at ``start + i / rate``; the caller spins until then (holding the
    GIL); latency is completion minus due time. Collector off, as in the latency benchmark."""
    perf = time.perf_counter_ns
    items = client.items
    size = len(items)
    send = client.send
    calls = max(1, int(rate * seconds))
    interval = 1e9 / rate
    samples = [0] * calls
    gc.collect()
    gc.disable()
    try:
        start = perf() + 1_000_000
        for i in range(calls):
            item = items[i % size]
            due = start + int(i * interval)
            while perf() < due:
                pass
            send(item)
            samples[i] = perf() - due
    finally:
        gc.enable()
    client.drain(_DRAIN_S)
    return samples


def _baseline_loop(rate: float, seconds: float) -> list[int]:
    """The open loop on ``SimpleQueue.put((item, time.time_ns()))``: the floor that the
    machine and the interpreter set, measured in the same process just before."""
    put = SimpleQueue[tuple[object, int]]().put
    time_ns = time.time_ns

    class _Floor(_Client):
        def __init__(self) -> None:
            self.items = [None]
            self.builders = []

        def send(self, item: Any) -> bool:
            put((item, time_ns()))
            return True

        def drain(self, timeout: float) -> bool:
            return True

    return _open_loop(_Floor(), rate, seconds)


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _throughput(client: _Client, events: int, delivered: Callable[[], int]) -> dict[str, float]:
    """Track ``events`` back to back, then wait until all are delivered: wall and CPU time."""
    items = client.items
    size = len(items)
    send = client.send
    before = delivered()
    gc.collect()
    cpu = _cpu()
    began = time.perf_counter()
    for i in range(events):
        send(items[i % size])
    client.drain(_DRAIN_S)
    deadline = time.monotonic() + _DRAIN_S
    while delivered() - before < events and time.monotonic() < deadline:
        time.sleep(_POLL_S)
    seconds = time.perf_counter() - began
    cpu = _cpu() - cpu
    got = delivered() - before
    if got != events:
        raise RuntimeError(f"throughput: {got} of {events} events delivered")
    return {"seconds": seconds, "cpu_seconds": cpu, "events": float(events)}


def _outage_events(count: int) -> list[AnalyticsEvent]:
    """Events each with a task id of its own: what arrives is counted by it."""
    user = uuid.UUID(int=1)
    return [TaskCompleted(task_id=uuid.uuid4(), user_id=user, duration_ms=i) for i in range(count)]


def _outage(name: str, plan: Plan, control: Any) -> dict[str, float | None]:
    """Track at ``outage_rate`` through up, down and up-again phases, taking the destination
    down and up through ``control``; then wait until every event is delivered or reported
    lost, and say when writing resumed after the destination came back."""
    up_s, down_s, again_s = plan.outage_phases
    total = int(plan.outage_rate * (up_s + down_s + again_s))
    events = _outage_events(total)
    client = _make(name, plan.outage_target, events, plan.outage_queue, service=OUTAGE_SERVICE)
    if isinstance(client, _Ours):
        delivered: Callable[[], int] = client.written
    else:
        control.reset()

        def delivered() -> int:
            return int(control.counts().events)

    send = client.send
    items = client.items
    interval = 1.0 / plan.outage_rate
    began = time.monotonic()
    down_at = began + up_s
    back_at = down_at + down_s
    up_at: float | None = None
    resumed_at: float | None = None
    is_down = False
    before_up = 0
    for i in range(total):
        due = began + i * interval
        now = time.monotonic()
        if due > now:
            time.sleep(due - now)
            now = due
        if not is_down and up_at is None and now >= down_at:
            control.down()
            is_down = True
        elif is_down and now >= back_at:
            before_up = delivered() if isinstance(client, _Ours) else 0
            up_at = control.up()
            is_down = False
        send(items[i])
        # analytics-core's own counters say when it wrote again; the sink says it for peers.
        if (
            isinstance(client, _Ours)
            and up_at is not None
            and resumed_at is None
            and delivered() > before_up
        ):
            resumed_at = time.monotonic()
    if is_down:  # a run too short to reach its last phase: bring it back all the same
        up_at = control.up()
    _settle(client, delivered, total)
    if isinstance(client, _Ours):
        if resumed_at is None and delivered() > before_up:
            resumed_at = time.monotonic()  # resumed only after the producer stopped
    else:
        resumed_at = control.counts().first_after_up
    result: dict[str, float | None] = {
        "tracked": float(total),
        "delivered": float(delivered()),
        "reported": float(client.reported()),
        "resumed_s": None if resumed_at is None or up_at is None else resumed_at - up_at,
    }
    if not isinstance(client, _Ours):
        result["distinct"] = float(control.counts().distinct)
    client.close()
    return result


def _settle(client: _Client, delivered: Callable[[], int], total: int) -> None:
    """Wait, bounded, until every event is delivered or reported lost."""
    client.drain(_DRAIN_S)
    deadline = time.monotonic() + _DRAIN_S
    while delivered() + client.reported() < total and time.monotonic() < deadline:
        time.sleep(_POLL_S)


def _collector(name: str, plan: Plan, pool: Sequence[AnalyticsEvent]) -> dict[str, float]:
    """Full collections before and after queueing ``gc_events`` events with the destination
    unreachable, so that they stay queued: the shortest of five each, on the thread's CPU
    clock, and how many objects the collector tracks besides.

    The process's own heap (the interpreter, pydantic's schemas, the sample events) costs
    every full collection something whatever the client does; the difference is what the
    queued events add.
    """

    def full_collections() -> float:
        # On the thread's CPU clock: the collection's own work, which stops every thread,
        # without the time a busy machine's scheduler takes the process off its CPU.
        pauses = []
        for _ in range(5):
            began = time.thread_time()
            gc.collect()
            pauses.append(time.thread_time() - began)
        return min(pauses)

    client = _make(name, plan.dead_target, pool, plan.gc_events + 1_000)
    before = full_collections()
    objects = len(gc.get_objects())
    send = client.send
    items = client.items
    size = len(items)
    for i in range(plan.gc_events):
        send(items[i % size])
    after = full_collections()
    # Not closed: a peer would try to deliver its whole queue to nowhere. The process ends.
    return {
        "before_s": before,
        "queued_s": after,
        "objects": float(len(gc.get_objects()) - objects),
        "events": float(plan.gc_events),
    }


def measure(plan: Plan, control: Any, results: Connection) -> None:
    """Run every scenario for ``plan.client`` and send the results back (in the child).

    ``control`` takes the outage's destination down and up: the gate in front of the
    database for analytics-core, the sink for the peers (which also counts what arrived).
    """
    logging.disable(logging.WARNING)  # retries during the outage are expected
    pool = _pool()
    name = plan.client
    client = _make(name, plan.target, pool, max(plan.calls * 2, plan.throughput_events) + 1_000)
    if isinstance(client, _Ours):
        delivered: Callable[[], int] = client.written
    else:

        def delivered() -> int:
            return int(control.counts().events)

    out: dict[str, Any] = {"client": name}
    out["calls"] = _call_cost(client, plan.calls)
    out["open"] = []
    out["open_baseline"] = []
    for rate, seconds in plan.open_loops:
        out["open_baseline"].append(_baseline_loop(rate, seconds))
        out["open"].append((rate, _open_loop(client, rate, seconds)))
    out["throughput"] = _throughput(client, plan.throughput_events, delivered)
    client.close()
    out["outage"] = _outage(name, plan, control)
    out["collector"] = _collector(name, plan, pool)
    results.send(out)
    results.close()
    # The clients of the collector sample still hold queues bound for nowhere (a peer's
    # shutdown would wait to deliver them): end the process without joining their threads.
    os._exit(0)
