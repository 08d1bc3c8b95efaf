"""analytics-core beside the HTTP analytics SDKs it is an alternative to: PostHog and Segment.

Each client runs in a child process of its own per round (``peer_clients.measure``), the
rounds in rotated order (``analytics-core posthog segment``, then ``posthog segment
analytics-core``, ...), so each figure of a round compares runs of the same minutes.
analytics-core writes to the benchmark's database; the peers send to a local HTTP sink in
another process (``endpoints.HttpSink``), which answers at once. What is measured, per client:

- **call cost**: back-to-back calls, the event pre-built, then built in the call;
- **open loop** at 1,000 and 10,000 calls/s (the caller spins between calls, holding the
  GIL), latency from each call's due time;
- **delivery**: ``peer_events`` events back to back until all are delivered (in the table,
  at the sink): events per second and the client process's CPU time per 1,000 events;
- **outage**: 2,000 events/s with a queue bound of 10,000 while the destination goes away
  for a while and comes back (the sink stops listening; for analytics-core a TCP gate in
  front of the database does): events lost, lost but counted (the client told the
  application: a refused call, an error callback, ``stats.dropped``), duplicated, and how
  long after the destination came back the first batch arrived;
- **collector**: a full collection with ``peer_gc_events`` events queued (the destination
  unreachable), before queueing them, and the difference: what the queue adds.

Peers are skipped, and the report says so, when they are not installed (``make bench``
installs the ``bench`` extra) and in a quick run, which measures analytics-core alone.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from analytics_core.schema import EVENTS_TABLE
from benchmarks.database import reset_events
from benchmarks.endpoints import HttpSink, Remote, TcpGate, dead_port
from benchmarks.figures import Percentiles, Spread, percentiles
from benchmarks.peer_clients import CLIENTS, OUTAGE_SERVICE, PEERS, Plan, installed, measure
from benchmarks.settings import Settings

__all__ = [
    "OPEN_RATES",
    "OUTAGE_QUEUE",
    "OUTAGE_RATE",
    "TARGET_GC_PAUSE_S",
    "TARGET_RESUME_S",
    "ClientResult",
    "OutageRun",
    "PeersResult",
    "run",
]

#: Targets of issue 14, met in every round: what ``peer_gc_events`` queued events add to a
#: full collection, and how soon writing resumes after the database is back.
TARGET_GC_PAUSE_S: Final = 0.005
TARGET_RESUME_S: Final = 1.0
#: The open-loop loads, in calls per second.
OPEN_RATES: Final = (1_000.0, 10_000.0)
#: The outage: events per second, and the queue bound every client gets.
OUTAGE_RATE: Final = 2_000.0
OUTAGE_QUEUE: Final = 10_000
#: The outage's phases as shares of ``peer_outage_ms``: up before, down, up again.
_PHASES: Final = (0.4, 1.0, 0.6)
# A child that has not reported in this long is stuck: the run fails rather than hang.
_CHILD_TIMEOUT_S: Final = 600.0
_OURS: Final = CLIENTS[0]


@dataclass(frozen=True, slots=True)
class OutageRun:
    """One client's outage, once."""

    tracked: int
    #: Arrived, counting duplicates, and distinct events among them.
    delivered: int
    distinct: int
    #: Events the client told the application it lost.
    reported: int
    #: Seconds from the destination listening again to the first batch arriving; None if
    #: none arrived.
    resumed_s: float | None

    @property
    def lost(self) -> int:
        return self.tracked - self.distinct

    @property
    def duplicated(self) -> int:
        return self.delivered - self.distinct


@dataclass(frozen=True, slots=True)
class ClientResult:
    """One client's figures: pooled over rounds, and per round where a target needs it."""

    name: str
    version: str
    prebuilt: Percentiles
    built: Percentiles
    #: Per rate of ``OPEN_RATES``: all rounds pooled, and each round's.
    open_loops: tuple[Percentiles, ...]
    open_rounds: tuple[tuple[Percentiles, ...], ...]
    #: The same loops on ``SimpleQueue.put`` in the same process just before: the floor.
    open_baselines: tuple[Percentiles, ...]
    rate: Spread
    cpu_per_1k: Spread
    outages: tuple[OutageRun, ...]
    #: A full collection per round (shortest of five, on the CPU clock), in seconds: with
    #: ``gc_events`` queued, before, and what the queued events added; and the objects they
    #: added for the collector to track.
    gc_queued: Spread
    gc_before: Spread
    gc_added: Spread
    gc_objects: Spread
    gc_events: int


@dataclass(frozen=True, slots=True)
class PeersResult:
    rounds: int
    calls: int
    open_calls: tuple[int, ...]
    events: int
    outage_phases: tuple[float, float, float]
    clients: tuple[ClientResult, ...]
    #: Peers not measured, and why.
    skipped: tuple[tuple[str, str], ...]

    def client(self, name: str) -> ClientResult | None:
        return next((client for client in self.clients if client.name == name), None)

    @property
    def ours(self) -> ClientResult:
        ours = self.client(_OURS)
        assert ours is not None
        return ours


def _with_address(url: str, host: str, port: int) -> str:
    """``url`` (a libpq URL or key=value string) pointed at ``host:port``."""
    if "://" in url:
        parts = urlsplit(url)
        user = parts.netloc.rpartition("@")[0]
        netloc = f"{user}@{host}:{port}" if user else f"{host}:{port}"
        return urlunsplit(parts._replace(netloc=netloc))
    params = conninfo_to_dict(url)
    params.update(host=host, port=str(port))
    return make_conninfo("", **params)


def _address(url: str) -> tuple[str, int]:
    params = conninfo_to_dict(url)
    host = str(params.get("host") or "127.0.0.1")
    if host.startswith("/"):
        raise RuntimeError("the peers benchmark needs a TCP server address, not a socket path")
    return host, int(params.get("port") or 5432)


def _plan(settings: Settings, client: str, target: str, outage: str, dead: str) -> Plan:
    open_loops = tuple(
        (rate, calls / rate) for rate, calls in zip(OPEN_RATES, _open_calls(settings), strict=True)
    )
    return Plan(
        client=client,
        target=target,
        outage_target=outage,
        dead_target=dead,
        calls=settings.peer_calls,
        open_loops=open_loops,
        throughput_events=settings.peer_events,
        outage_rate=OUTAGE_RATE,
        outage_phases=_phases(settings),
        outage_queue=OUTAGE_QUEUE,
        gc_events=settings.peer_gc_events,
    )


def _open_calls(settings: Settings) -> tuple[int, ...]:
    # The faster load runs for the same calls per second of the slower: 4x the calls.
    return (settings.peer_open_calls, settings.peer_open_calls * 4)


def _phases(settings: Settings) -> tuple[float, float, float]:
    down = settings.peer_outage_ms / 1000
    before, during, after = (share * down for share in _PHASES)
    return before, during, after


@contextmanager
def _endpoint(client: str, url: str) -> Iterator[tuple[str, str, Remote, str]]:
    """The client's target, outage target and outage control, and an address that refuses."""
    with dead_port() as dead:
        dead_at = dead.getsockname()[1]
        if client == _OURS:
            host, port = _address(url)
            with TcpGate(host, port) as gate:
                yield (
                    url,
                    _with_address(url, "127.0.0.1", gate.port),
                    gate.control,
                    (_with_address(url, "127.0.0.1", dead_at)),
                )
        else:
            with HttpSink() as sink:
                yield sink.url, sink.url, sink.control, f"http://127.0.0.1:{dead_at}"


def _measure(plan: Plan, control: Remote) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=measure, args=(plan, control, send), name=f"bench-{plan.client}")
    child.start()
    send.close()
    try:
        if not receive.poll(_CHILD_TIMEOUT_S):
            raise RuntimeError(f"peers: {plan.client} did not report in {_CHILD_TIMEOUT_S:.0f} s")
        result: dict[str, Any] = receive.recv()
    except EOFError:
        raise RuntimeError(f"peers: {plan.client}'s process ended without a result") from None
    finally:
        child.join(30)
        if child.is_alive():
            child.kill()
            child.join()
    return result


def _outage_rows(conn: psycopg.Connection[Any]) -> tuple[int, int]:
    """analytics-core's outage rows: all, and distinct by task id."""
    row = conn.execute(
        sql.SQL(
            "SELECT count(*), count(DISTINCT data->>'task_id') FROM {} WHERE service = %s"
        ).format(sql.Identifier(EVENTS_TABLE)),
        (OUTAGE_SERVICE,),
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def _outage_run(raw: dict[str, Any], rows: tuple[int, int] | None) -> OutageRun:
    delivered, distinct = rows if rows is not None else (raw["delivered"], raw["distinct"])
    resumed = raw["resumed_s"]
    return OutageRun(
        tracked=int(raw["tracked"]),
        delivered=int(delivered),
        distinct=int(distinct),
        reported=int(raw["reported"]),
        resumed_s=None if resumed is None else float(resumed),
    )


def _client_result(name: str, runs: Sequence[tuple[dict[str, Any], OutageRun]]) -> ClientResult:
    raws = [raw for raw, _ in runs]
    rates = range(len(raws[0]["open"]))
    open_rounds = tuple(
        tuple(percentiles(raw["open"][index][1]) for index in rates) for raw in raws
    )
    throughput = [raw["throughput"] for raw in raws]
    return ClientResult(
        name=name,
        version=installed(name) or "" if name != _OURS else "this commit",
        prebuilt=percentiles([s for raw in raws for s in raw["calls"]["prebuilt"]]),
        built=percentiles([s for raw in raws for s in raw["calls"]["built"]]),
        open_loops=tuple(
            percentiles([s for raw in raws for s in raw["open"][index][1]]) for index in rates
        ),
        open_rounds=open_rounds,
        open_baselines=tuple(
            percentiles([s for raw in raws for s in raw["open_baseline"][index]]) for index in rates
        ),
        rate=Spread.of([t["events"] / t["seconds"] for t in throughput]),
        cpu_per_1k=Spread.of([t["cpu_seconds"] / t["events"] * 1000 for t in throughput]),
        outages=tuple(outage for _, outage in runs),
        gc_queued=Spread.of([raw["collector"]["queued_s"] for raw in raws]),
        gc_before=Spread.of([raw["collector"]["before_s"] for raw in raws]),
        gc_added=Spread.of(
            [raw["collector"]["queued_s"] - raw["collector"]["before_s"] for raw in raws]
        ),
        gc_objects=Spread.of([raw["collector"]["objects"] for raw in raws]),
        gc_events=int(raws[0]["collector"]["events"]),
    )


def _available(quick: bool) -> tuple[list[str], list[tuple[str, str]]]:
    if quick:
        return [_OURS], [(peer, "not run in a quick run") for peer in PEERS]
    clients = [_OURS]
    skipped = []
    for peer, distribution in PEERS.items():
        if installed(peer) is None:
            skipped.append(
                (peer, f"{distribution} is not installed (`make bench` installs the bench extra)")
            )
        else:
            clients.append(peer)
    return clients, skipped


def run(
    url: str, settings: Settings, log: Callable[[str], None], *, quick: bool = False
) -> PeersResult:
    """Run the peers benchmark; analytics-core writes to the migrated database at ``url``."""
    clients, skipped = _available(quick)
    for peer, reason in skipped:
        log(f"peers: {peer} skipped: {reason}")
    collected: dict[str, list[tuple[dict[str, Any], OutageRun]]] = {name: [] for name in clients}
    with psycopg.connect(url, autocommit=True) as conn:
        for index in range(settings.peer_rounds):
            shift = index % len(clients)
            order = clients[shift:] + clients[:shift]
            for name in order:
                log(f"peers: round {index + 1}/{settings.peer_rounds}: {name}")
                reset_events(conn)
                with _endpoint(name, url) as (target, outage, control, dead):
                    raw = _measure(_plan(settings, name, target, outage, dead), control)
                rows = _outage_rows(conn) if name == _OURS else None
                outage_run = _outage_run(raw["outage"], rows)
                collected[name].append((raw, outage_run))
                throughput = raw["throughput"]
                resumed = outage_run.resumed_s
                log(
                    f"peers:   {name}: {throughput['events'] / throughput['seconds']:,.0f} "
                    f"events/s delivered; outage: {outage_run.lost} lost, resumed "
                    + ("never" if resumed is None else f"after {resumed:.2f} s")
                )
        reset_events(conn)
    return PeersResult(
        rounds=settings.peer_rounds,
        calls=settings.peer_calls,
        open_calls=_open_calls(settings),
        events=settings.peer_events,
        outage_phases=_phases(settings),
        clients=tuple(_client_result(name, collected[name]) for name in clients),
        skipped=tuple(skipped),
    )
