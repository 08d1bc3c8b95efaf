"""``docs/BENCHMARKS.md``: the results of one run, rendered as Markdown.

Pure: takes the results, returns text. Sections for benchmarks that did not run are left out.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from benchmarks import aggregates, collector, ingest, latency, maintenance, migrations, peers
from benchmarks.environment import Environment
from benchmarks.figures import PERCENTILES, Percentiles, Spread
from benchmarks.settings import Settings

__all__ = ["Report", "Target", "render", "targets"]

_DASH: Final = "-"


@dataclass(frozen=True, slots=True)
class Report:
    environment: Environment
    settings: Settings
    quick: bool
    seconds: float
    ingest: ingest.IngestResult | None = None
    latency: latency.LatencyResult | None = None
    peers: peers.PeersResult | None = None
    migrations: migrations.MigrationsResult | None = None
    aggregates: aggregates.AggregatesResult | None = None
    collector: collector.CollectorResult | None = None
    maintenance: maintenance.MaintenanceResult | None = None


@dataclass(frozen=True, slots=True)
class Target:
    """One target of the issue, and whether this run met it."""

    benchmark: str
    figure: str
    goal: str
    measured: str
    met: bool


# --- Formatting --------------------------------------------------------------------------------


def _spread(spread: Spread, digits: int = 2, unit: str = "") -> str:
    if len(spread.samples) == 1:
        return f"{spread.median:,.{digits}f}{unit}"
    return (
        f"{spread.median:,.{digits}f}{unit} ({spread.low:,.{digits}f}{_DASH}"
        f"{spread.high:,.{digits}f})"
    )


def _ns(value: float) -> str:
    if value < 10_000:
        return f"{value:,.0f} ns"
    if value < 10_000_000:
        return f"{value / 1000:,.0f} µs"
    return f"{value / 1e6:,.0f} ms"


def _table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _count(number: int, noun: str) -> str:
    return f"{number:,} {noun}" if number == 1 else f"{number:,} {noun}s"


def _yes(met: bool) -> str:
    return "yes" if met else "**no**"


# --- Targets -----------------------------------------------------------------------------------


def targets(report: Report) -> list[Target]:
    """Every target of the benchmarks that ran, judged on the medians."""
    found: list[Target] = []
    if (result := report.ingest) is not None:
        found += [
            Target(
                "ingest",
                "C / A throughput (client vs bare COPY), every round",
                f"≥ {ingest.TARGET_OVER_COPY}",
                _spread(result.c_over_a),
                result.c_over_a.low >= ingest.TARGET_OVER_COPY,
            ),
            Target(
                "ingest",
                "C / B throughput (client vs executemany)",
                f"≥ {ingest.TARGET_OVER_INSERT}",
                _spread(result.c_over_b),
                result.c_over_b.median >= ingest.TARGET_OVER_INSERT,
            ),
            Target(
                "ingest",
                "C / A client CPU per event, every round",
                f"≤ {ingest.TARGET_CPU_OVER_COPY:g}",
                _spread(result.cpu_c_over_a) + _peer_cpu(report),
                result.cpu_c_over_a.high <= ingest.TARGET_CPU_OVER_COPY,
            ),
        ]
    if (lat := report.latency) is not None:
        loaded = lat.loaded[0]
        for fraction, goal in ((0.5, latency.TARGET_P50_NS), (0.99, latency.TARGET_P99_NS)):
            measured = loaded.client.at(fraction)
            found.append(
                Target(
                    "latency",
                    f"track() p{fraction * 100:g}, {loaded.label}",
                    f"≤ {_ns(goal)}",
                    f"{_ns(measured)} ({loaded.ratio(fraction):,.1f}x baseline)",
                    measured <= goal,
                )
            )
        found += _tail_targets(
            "latency", lat.sustained.label + ", every repetition", lat.sustained.client_runs, ()
        )
    if (compared := report.peers) is not None:
        found += _peer_targets(compared)
    if (mig := report.migrations) is not None:
        status = mig.command("status")
        found.append(
            Target(
                "migrations",
                "analytics-migrate status",
                f"< {migrations.TARGET_STATUS_S:g} s",
                f"{status.seconds.median:.2f} s ({_spread(status.ratio)}x baseline)",
                status.seconds.median < migrations.TARGET_STATUS_S,
            )
        )
    if (agg := report.aggregates) is not None:
        found += [
            Target(
                "aggregates",
                query.name,
                f"≥ {aggregates.TARGET_SPEEDUP:g}x faster, same answer",
                f"{_spread(query.speedup, 1)}x",
                query.speedup.median >= aggregates.TARGET_SPEEDUP,
            )
            for query in agg.queries
        ]
    if (kept := report.maintenance) is not None:
        short, long = maintenance.HISTORY_DAYS
        found.append(
            Target(
                "maintain",
                f"one maintain, {maintenance.NEW_DAYS} new days on {long} vs {short} days "
                "of history",
                f"≤ {maintenance.TARGET_RATIO:g}x",
                f"{_spread(kept.ratio)}x",
                kept.ratio.median <= maintenance.TARGET_RATIO,
            )
        )
    return found


def _tail_targets(
    benchmark: str,
    label: str,
    runs: Sequence[Percentiles],
    beside: Sequence[tuple[str, Percentiles]],
) -> list[Target]:
    """p99 and p99.9 targets met in every run; the worst run is shown, peers beside."""
    found = []
    for fraction, goal in (
        (0.99, latency.TARGET_TAIL_P99_NS),
        (0.999, latency.TARGET_TAIL_P999_NS),
    ):
        worst = max(run.at(fraction) for run in runs)
        others = "".join(f"; {name} {_ns(values.at(fraction))}" for name, values in beside)
        found.append(
            Target(
                benchmark,
                f"track() p{fraction * 100:g}, {label}",
                f"≤ {_ns(goal)}",
                f"{_ns(worst)} (worst of {len(runs)}{others})",
                worst <= goal,
            )
        )
    return found


def _peer_cpu(report: Report) -> str:
    if report.peers is None or report.ingest is None:
        return ""
    copy = report.ingest.cpu_per_1k["A"].median
    parts = [
        f"{client.name} {client.cpu_per_1k.median / copy:,.0f}x"
        for client in report.peers.clients[1:]
    ]
    return f" (peers: {', '.join(parts)})" if parts else ""


def _peer_targets(result: peers.PeersResult) -> list[Target]:
    ours = result.ours
    others = result.clients[1:]
    found = _tail_targets(
        "peers",
        "open loop, 1,000 calls/s, every round",
        [run[0] for run in ours.open_rounds],
        [
            ("SimpleQueue.put", ours.open_baselines[0]),
            *((client.name, client.open_loops[0]) for client in others),
        ],
    )
    gc_goal_s = peers.TARGET_GC_PAUSE_S
    beside = "".join(f"; {client.name} {client.gc_added.high * 1000:,.0f} ms" for client in others)
    found.append(
        Target(
            "peers",
            f"full collection: time {ours.gc_events:,} queued events add, every round",
            f"≤ {gc_goal_s * 1000:g} ms",
            f"{ours.gc_added.high * 1000:,.1f} ms (of {ours.gc_queued.high * 1000:,.1f}{beside})",
            ours.gc_added.high <= gc_goal_s,
        )
    )
    resumed = [run.resumed_s for run in ours.outages]
    worst = None if None in resumed else max(r for r in resumed if r is not None)
    beside = "".join(
        f"; {client.name} {_seconds(_max_or_none(run.resumed_s for run in client.outages))}"
        for client in others
    )
    found.append(
        Target(
            "peers",
            "writing resumes after the database is back, every round",
            f"≤ {peers.TARGET_RESUME_S:g} s",
            f"{_seconds(worst)} (worst of {len(resumed)}{beside})",
            worst is not None and worst <= peers.TARGET_RESUME_S,
        )
    )
    return found


def _max_or_none(values: Iterable[float | None]) -> float | None:
    """The largest value, or None if any is None (never happened) or there are none."""
    listed = list(values)
    if not listed or None in listed:
        return None
    return max(value for value in listed if value is not None)


def _seconds(value: float | None) -> str:
    return "never" if value is None else f"{value:.2f} s"


# --- Sections ----------------------------------------------------------------------------------


def _header(report: Report) -> list[str]:
    env = report.environment
    mode = " with `--quick` (a smoke run: its figures mean little)" if report.quick else ""
    return [
        "# Benchmarks",
        "",
        f"Written by `make bench` (`python -m benchmarks.run`){mode} on "
        f"{env.started_at:%Y-%m-%d %H:%M} UTC at commit `{env.commit}`, in "
        f"{report.seconds / 60:.1f} min. Do not edit: rerun it.",
        "",
        "Every figure is a ratio against a baseline measured interleaved with it in the same "
        "run, given as the median with the minimum and maximum over repetitions. Absolute "
        "numbers are context only: they move with the machine, which is shared and noisy.",
        "",
    ]


def _summary(report: Report) -> list[str]:
    rows = [
        (target.benchmark, target.figure, target.goal, target.measured, _yes(target.met))
        for target in targets(report)
    ]
    return [
        "## Targets",
        "",
        *_table(("benchmark", "figure", "target", "this run", "met"), rows),
        "",
    ]


def _environment(report: Report) -> list[str]:
    env = report.environment
    settings = ", ".join(f"{name}={value}" for name, value in env.server_settings)
    rows = [
        ("machine", f"{env.cpus} CPUs ({env.cpu_model}), {env.memory_gib:.1f} GiB, {env.kernel}"),
        ("load average at start", " / ".join(f"{value:.2f}" for value in env.load_average)),
        ("Python", env.python),
        (
            "psycopg",
            f"{env.psycopg} (`psycopg.pq.__impl__` = `{env.psycopg_impl}`, libpq {env.libpq})",
        ),
        ("pydantic", env.pydantic),
        ("PostgreSQL", env.postgres),
        ("TimescaleDB", f"{env.timescaledb}, {env.edition} edition"),
        ("server", env.server),
        ("server settings", settings),
    ]
    lines = ["## Machine and versions", "", *_table(("", ""), rows), ""]
    if dict(env.server_settings).get("fsync") == "off":
        lines += [
            "The server runs with `fsync=off` (the local engine's throwaway setting): commits "
            "do not wait for the disk. Every ingest arm commits once per batch, so it favours "
            "none of them, but absolute rates are higher than on a durable server.",
            "",
        ]
    return lines


def _ingest(result: ingest.IngestResult) -> list[str]:
    arm_rows = []
    for letter, title in ingest.ARMS.items():
        rate = result.rates[letter]
        c_over = (
            _DASH
            if letter == "C"
            else _spread(result.c_over_a if letter == "A" else result.c_over_b)
        )
        arm_rows.append(
            (
                f"{letter}: {title}",
                c_over,
                _spread(rate, 0),
                _spread(result.cpu_per_1k[letter].scaled(1000), 1),
            )
        )
    round_rows = [
        (
            f"{index + 1}: {' '.join(measured.order)}",
            *(f"{measured.arm(letter).rate:,.0f}" for letter in ingest.ARMS),
            f"{measured.arm('C').rate / measured.arm('A').rate:.2f}",
            f"{measured.arm('C').rate / measured.arm('B').rate:.2f}",
        )
        for index, measured in enumerate(result.rounds)
    ]
    lines = [
        "## 1. Ingest",
        "",
        f"{result.events:,} events of `analytics_core.sample` (fixed seed, one UTC day, "
        f"one service), batches of {result.batch_size:,} rows in every arm, one transaction "
        "per batch. Each arm starts on an empty table (`TRUNCATE`, then `CHECKPOINT`"
        + ("" if result.checkpointed else ", refused to this role: skipped")
        + f") and ends with `count(*) = {result.events:,}` checked. A warm-up round, then "
        f"{_count(len(result.rounds), 'round')} in rotated order.",
        "",
        "- **A**: psycopg binary `COPY` of tuples built before the clock starts, JSONB "
        "pre-encoded; one `COPY` per batch on an autocommit connection (each commits).",
        "- **B**: `cursor.executemany()` of an `INSERT` with the same tuples (JSON as text), "
        "`commit()` per batch; psycopg pipelines it.",
        f"- **C**: a producer thread calls `track(event, timestamp=...)` for each pre-built "
        f"event; the client (`batch_size={result.batch_size}`, `max_queue_size` = all "
        "events) serialises, stamps ids and writes by binary `COPY`; the clock stops when "
        "`close()` returns.",
        "",
        *_table(
            ("arm", "C / arm", "events/s (context)", "CPU ms of this process per 1k events"),
            arm_rows,
        ),
        "",
    ]
    if result.client_threads:
        parts = ", ".join(
            f"{role} {_spread(spread.scaled(1000), 1)}"
            for role, spread in result.client_threads.items()
        )
        lines += [f"C's CPU ms per 1k events by thread: {parts}.", ""]
    lines += [
        "Per round (events/s):",
        "",
        *_table(("round", "A", "B", "C", "C / A", "C / B"), round_rows),
        "",
        f"Client counters after its last run: written {result.client_stats.written:,}, "
        f"dropped {result.client_stats.dropped}, failed {result.client_stats.failed}, "
        f"retried {result.client_stats.retried}, batches {result.client_stats.batches:,}.",
        "",
    ]
    return lines


def _latency_rows(name: str, client: Percentiles, baseline: Percentiles) -> list[tuple[str, ...]]:
    def cells(values: Percentiles) -> tuple[str, ...]:
        return (*(_ns(values.at(p)) for p in PERCENTILES), _ns(values.maximum))

    ratios = (
        *(f"{client.at(p) / max(1, baseline.at(p)):,.1f}x" for p in PERCENTILES),
        f"{client.maximum / max(1, baseline.maximum):,.1f}x",
    )
    return [
        (name, "client", *cells(client)),
        ("", "baseline", *cells(baseline)),
        ("", "**client / baseline**", *ratios),
    ]


def _latency(result: latency.LatencyResult) -> list[str]:
    rows: list[tuple[str, ...]] = []
    for loop in result.loops:
        rows += _latency_rows(f"{loop.label} ({loop.rate:,.0f}/s)", loop.client, loop.baseline)
    header = ("loop (calls/s)", "", *(f"p{p * 100:g}" for p in PERCENTILES), "max")
    sustained_share = result.loaded[0].rate / result.sustained_rate.median
    return [
        "## 2. `track()` latency",
        "",
        f"{result.calls:,} calls per sample, {_count(result.repetitions, 'repetition')} "
        "pooled, against "
        f"the live database (the worker writes meanwhile; `batch_size={result.batch_size}`, "
        "the default). Baseline: `SimpleQueue.put((event, time.time_ns()))`. Open loop: call "
        "*i* is due at `start + i / rate`, the caller spins until then (holding the GIL, like "
        "a caller busy with CPU work), latency = completion - due time, so queueing counts. "
        "The collector is off inside timed loops, as in `timeit`.",
        "",
        f"- maximum track rate (closed loop, client): {_spread(result.client_max_rate, 0)} "
        f"calls/s; baseline {_spread(result.baseline_max_rate, 0)} calls/s",
        f"- sustained rate (closed loop until `flush()` returns: tracked and written): "
        f"{_spread(result.sustained_rate, 0)} events/s, so 50 % of the maximum track rate is "
        f"{sustained_share:,.1f}x what the client can write",
        "",
        *_table(header, rows),
        "",
        *_threaded(result.threaded),
        f"Client counters at the end: accepted {result.client_stats.accepted:,}, written "
        f"{result.client_stats.written:,}, dropped {result.client_stats.dropped}.",
        "",
    ]


_THREADED_PERCENTILES: Final = (0.5, 0.99, 0.999)


def _threaded(result: latency.ThreadedResult) -> list[str]:
    def cells(side: latency.ThreadedSide) -> tuple[str, ...]:
        return (
            *(_ns(side.latency.at(p)) for p in _THREADED_PERCENTILES),
            _ns(side.latency.maximum),
            _ns(side.longest_gc_pause_ns) if side.collections else "none",
            f"{side.full_collections:,} of {side.collections:,}",
        )

    client, baseline = result.client, result.baseline
    ratios = (
        *(
            f"{client.latency.at(p) / max(1, baseline.latency.at(p)):,.1f}x"
            for p in _THREADED_PERCENTILES
        ),
        f"{client.latency.maximum / max(1, baseline.latency.maximum):,.1f}x",
        (
            f"{client.longest_gc_pause_ns / baseline.longest_gc_pause_ns:,.1f}x"
            if client.collections and baseline.collections
            else _DASH
        ),
        _DASH,
    )
    header = (
        "",
        *(f"p{p * 100:g}" for p in _THREADED_PERCENTILES),
        "max",
        "longest collection",
        "full collections (of all)",
    )
    rows = [("client", *cells(client)), ("baseline", *cells(baseline))]
    rows.append(("**client / baseline**", *ratios))
    return [
        f"**Threads, collector on.** {result.threads} producer threads at once, each making "
        f"{result.calls_per_thread:,} back-to-back timed calls on pre-built events (all "
        "repetitions pooled), with the collector enabled and "
        f"{result.heap_objects:,} extra tracked objects alive; `gc.callbacks` time every "
        "collection on the collecting thread's CPU clock. This is the tail of `track()` "
        "from collector pauses under many threads that issue 10 (item 7) asked the "
        "benchmark to report: a call's worst case includes "
        "any collection that stops every thread, and the baseline's tuples, kept on its "
        "queue, feed full collections that `track()` no longer triggers.",
        "",
        *_table(header, rows),
        "",
    ]


_TAIL: Final = (0.5, 0.99, 0.999)


def _peers(result: peers.PeersResult) -> list[str]:
    up, down, again = result.outage_phases
    names = [client.name for client in result.clients]
    lines = [
        "## 3. Against the peers: PostHog and Segment",
        "",
        f"analytics-core beside the HTTP analytics SDKs it replaces, each client in a process "
        f"of its own per round, {_count(result.rounds, 'round')} in rotated order "
        f"({', '.join(names)}). analytics-core writes to this run's database; the peers send "
        "to a local HTTP sink in another process that parses each batch, counts its events "
        "and answers 200 at once. Every client gets the same 10,000 sample events (the "
        "peers: each event's name, user and JSON properties) and runs with its own defaults "
        "(analytics-core's batches of 1,000, the peers' of 100, their retry schedules), "
        "except the queue bound, the same for "
        "all in each sample.",
        "",
        "Fairness: the peers' destination is far cheaper than ours. The sink stores nothing, "
        "while analytics-core's rows go through a real database (parsing, index maintenance, "
        "commits) that shares this machine's two CPUs with the client. The sink's CPU time "
        "and the database's are not the client's; CPU per 1,000 events is the client "
        "process's (all its threads), from the first call until the last event arrived. "
        "'Built in the call' builds a validated pydantic model for analytics-core, and "
        "only a dict of the properties for the peers, which do not validate.",
        "",
    ]
    if result.skipped:
        lines += [
            "Not measured: "
            + "; ".join(f"**{name}**: {reason}" for name, reason in result.skipped)
            + ".",
            "",
        ]
    header = ("client", *(f"p{p * 100:g}" for p in _TAIL), "max")
    call_rows: list[tuple[str, ...]] = []
    for client in result.clients:
        for label, values in (("pre-built", client.prebuilt), ("built in the call", client.built)):
            call_rows.append(
                (
                    f"{client.name} ({label})",
                    *(_ns(values.at(p)) for p in _TAIL),
                    _ns(values.maximum),
                )
            )
    lines += [
        f"**Call cost**: {result.calls:,} back-to-back timed calls per sample and round, "
        "pooled; the collector off in the loop.",
        "",
        *_table(header, call_rows),
        "",
    ]
    open_rows: list[tuple[str, ...]] = []
    for index, rate in enumerate(peers.OPEN_RATES):
        rows = [
            (f"{rate:,.0f}/s: {client.name}", client.open_loops[index]) for client in result.clients
        ]
        rows.insert(1, (f"{rate:,.0f}/s: baseline", result.ours.open_baselines[index]))
        for label, values in rows:
            open_rows.append((label, *(_ns(values.at(p)) for p in _TAIL), _ns(values.maximum)))
    lines += [
        "**Open loop**: call *i* is due at `start + i / rate`; the caller spins until then "
        "(holding the GIL) and latency counts from the due time. The baseline is the same "
        "loop on `SimpleQueue.put((event, time.time_ns()))` in analytics-core's process just "
        "before: the floor this machine and interpreter set. "
        + " and ".join(
            f"{calls:,} calls at {rate:,.0f}/s"
            for rate, calls in zip(peers.OPEN_RATES, result.open_calls, strict=True)
        )
        + " per round, pooled.",
        "",
        *_table(header, open_rows),
        "",
    ]
    ours = result.ours
    delivery_rows = [
        (
            client.name,
            _spread(client.rate, 0),
            _spread(client.cpu_per_1k.scaled(1000), 1),
            f"{client.cpu_per_1k.median / ours.cpu_per_1k.median:,.1f}",
        )
        for client in result.clients
    ]
    lines += [
        f"**Delivery**: {result.events:,} events tracked back to back, the clock stopped when "
        "the last one was in the table (at the sink).",
        "",
        *_table(
            ("client", "events/s delivered", "client CPU ms per 1k events", "CPU x analytics-core"),
            delivery_rows,
        ),
        "",
    ]
    outage_rows = [
        (
            f"{client.name}, round {index + 1}",
            f"{run.tracked:,}",
            f"{run.lost:,}",
            f"{min(run.reported, run.lost):,}",
            f"{run.duplicated:,}",
            _seconds(run.resumed_s),
        )
        for client in result.clients
        for index, run in enumerate(client.outages)
    ]
    lines += [
        f"**Outage**: {peers.OUTAGE_RATE:,.0f} events/s with a queue bound of "
        f"{peers.OUTAGE_QUEUE:,}; the destination is up for {up:g} s, away for {down:g} s "
        f"(refusing connections, open ones cut), then up again for {again:g} s, after "
        "which each client is given time to deliver. For analytics-core a TCP gate in front "
        "of the database goes away; for the peers the sink. *Counted*: lost events the "
        "client told the application about (a refused call, an error callback, "
        "`stats.dropped`). *Resumed*: from the destination listening again to the first "
        "batch arriving.",
        "",
        *_table(
            ("client", "tracked", "lost", "of which counted", "duplicated", "resumed after"),
            outage_rows,
        ),
        "",
    ]
    gc_rows = [
        (
            client.name,
            _spread(client.gc_before.scaled(1000), 1),
            _spread(client.gc_queued.scaled(1000), 1),
            _spread(client.gc_added.scaled(1000), 1),
            f"{client.gc_objects.median:,.0f}",
        )
        for client in result.clients
    ]
    lines += [
        f"**Collector**: a full collection (`gc.collect()`, the shortest of five, on the "
        "collecting thread's CPU clock) before and "
        f"after queueing {ours.gc_events:,} events with the destination unreachable (so they "
        "stay queued), in the client's process. The process's own heap (the interpreter, "
        "pydantic's schemas, the 10,000 sample events) costs every collection its share "
        "whatever the client does; the difference is what the queued events add, and the "
        "last column is why: the objects they add for the collector to visit.",
        "",
        *_table(
            (
                "client",
                "before, ms",
                f"{ours.gc_events:,} queued, ms",
                "added, ms",
                "objects added",
            ),
            gc_rows,
        ),
        "",
    ]
    return lines


def _migrations(result: migrations.MigrationsResult) -> list[str]:
    rows = [
        (
            "baseline: `python -c` import psycopg, connect, `SELECT 1`",
            "1",
            _spread(result.baseline_seconds, 2, " s"),
        )
    ]
    rows += [
        (
            f"`{migrations.COMMANDS[command.name]}`",
            _spread(command.ratio, 1),
            _spread(command.seconds, 2, " s"),
        )
        for command in result.commands
    ]
    return [
        "## 4. Migrations",
        "",
        f"The installed console script as a subprocess, {_count(result.runs, 'run')}, each on "
        "a fresh "
        "database, in rotated order with the baseline. Times include interpreter start-up "
        "and imports.",
        "",
        *_table(("command", "x baseline", "seconds (context)"), rows),
        "",
    ]


def _aggregates(result: aggregates.AggregatesResult) -> list[str]:
    rows = [
        (
            query.name,
            f"{query.rows:,}",
            _spread(query.speedup, 1),
            _spread(query.aggregate_seconds.scaled(1000), 1),
            _spread(query.raw_seconds.scaled(1000), 0),
        )
        for query in result.queries
    ]
    return [
        "## 5. Aggregates",
        "",
        f"{result.rows:,} events generated server-side over {result.days} days ending at "
        f"today's UTC midnight ({result.api_share:.0%} API requests with lognormal latency, "
        f"{result.users:,} users of whom about a third are active on a given day), in "
        f"{result.generate_seconds:.0f} s; aggregates refreshed and `ANALYZE`d in "
        f"{result.refresh_seconds:.0f} s. Each question is asked through the read side's "
        "function. The baseline asks the same function on a connection where a temporary "
        "view with the aggregate's name and its defining query (from the catalog) shadows "
        "it, so the same rows are computed from `analytics_events` at query time. The two "
        "answers are asserted equal (floats within 1e-9 relative).",
        "",
        *_table(
            (
                "question: how",
                "rows in answer",
                "raw / aggregate",
                "aggregate ms (context)",
                "raw ms (context)",
            ),
            rows,
        ),
        "",
    ]


def _collector(result: collector.CollectorResult) -> list[str]:
    rows = [
        (f"{letter}: {title}", _spread(result.rates[letter], 0))
        for letter, title in collector.ARMS.items()
    ]
    rows.append(("H / D", _spread(result.http_over_direct)))
    latency = result.request_latency
    return [
        "## 6. HTTP collector",
        "",
        f"{result.events:,} events per arm, {_count(result.rounds, 'measured round')} after a "
        f"warm-up. H posts them as JSON batches of {collector.REQUEST_BATCH} from "
        f"{collector.CONCURRENCY} threads over keep-alive connections to one uvicorn process "
        "on loopback, and counts until the last row is in the table; D tracks them with one "
        f"client in process until `close()`. Both write COPY batches of "
        f"{collector.CLIENT_BATCH}. The load generator, the collector and the database share "
        "the machine's CPUs.",
        "",
        *_table(("arm", "events/s"), rows),
        "",
        f"Latency of one batch request ({collector.REQUEST_BATCH} events, from sending it to "
        f"reading the answer), {result.requests:,} requests:",
        "",
        *_table(
            ("p50", "p90", "p99", "p99.9", "max"),
            [(*(_ns(latency.at(p)) for p in PERCENTILES), _ns(latency.maximum))],
        ),
        "",
    ]


def _maintenance(result: maintenance.MaintenanceResult) -> list[str]:
    short, long = maintenance.HISTORY_DAYS
    rows = [
        (
            f"{days} days",
            f"{result.events_per_day * days:,}",
            _spread(result.seconds[days], 2, " s"),
            f"{result.full_recompute_seconds[days]:.2f} s"
            if days in result.full_recompute_seconds
            else _DASH,
        )
        for days in maintenance.HISTORY_DAYS
    ]
    return [
        "## 7. Maintenance",
        "",
        f"The cost of one `maintain` ({result.edition} edition) with {maintenance.NEW_DAYS} "
        f"days of new events ({result.events_per_day:,} a day, the generator of section 4) "
        f"on top of {short} and of {long} days of history, both fully materialized first. "
        f"{_count(result.runs, 'run')}: each gives both databases the same new events "
        "(their chunks dropped and written again, new ids) and times one `maintain` on "
        "each, alternating which goes first. "
        f"**{long} days / {short} days: {_spread(result.ratio)}x** (target "
        f"≤ {maintenance.TARGET_RATIO:g}x).",
        "",
        *_table(
            (
                "history",
                "events of history",
                "one maintain (context)",
                "every aggregate over all events (context)",
            ),
            rows,
        ),
        "",
        "The last column is what a `maintain` cost before the Apache edition's aggregates "
        "were refreshed incrementally (each materialized view was recomputed whole), "
        "measured once on the same databases.",
        "",
    ]


def _ingest_limits(result: ingest.IngestResult) -> list[str]:
    a_over_b = result.rates["A"].median / result.rates["B"].median
    extra = result.cpu_per_1k["C"].median - result.cpu_per_1k["A"].median
    threads = ", ".join(
        f"{role} {spread.median * 1000:.1f}" for role, spread in result.client_threads.items()
    )
    return [
        f"- **Ingest.** The ceiling itself is only {a_over_b:.1f}x B here (the server's "
        "index maintenance bounds every arm), so C / B >= "
        f"{ingest.TARGET_OVER_INSERT} needs C / A >= "
        f"{ingest.TARGET_OVER_INSERT / a_over_b:.2f}. What separates C from A is the "
        f"client's own work: {result.cpu_per_1k['C'].median * 1000:.1f} CPU ms per 1k events "
        f"in this process against {result.cpu_per_1k['A'].median * 1000:.1f} for A "
        f"({extra * 1000:.1f} more; by thread: {threads}), on CPUs the database server "
        "needs too. A's rows are tuples built before its clock starts, their JSON already "
        "encoded: it pays only psycopg's encoding of each tuple. C starts from the event "
        "model: `track()` serialises it (pydantic's `to_json`), draws its event id and "
        "encodes the row, in the producer thread; the worker threads add little. See the "
        "profile below for where a row's microseconds go.",
    ]


def _latency_limits(lat: latency.LatencyResult) -> list[str]:
    loaded = lat.loaded[0]
    sustained = lat.sustained
    worst = max(run.at(0.999) for run in sustained.client_runs)
    return [
        f"- **`track()` under open-loop load.** At {loaded.label} the caller offers "
        f"{loaded.rate:,.0f} events/s, {loaded.rate / lat.sustained_rate.median:,.1f}x what "
        f"the client can write end to end ({lat.sustained_rate.median:,.0f}/s): the "
        "backlog grows for as long as the load lasts, and `track()` itself now costs a few "
        f"microseconds (p50 {_ns(lat.closed.client.at(0.5))} back to back) because it "
        "serialises the event: the price of a queue the collector never visits and of a "
        "worker with short turns (issue 14). The issue-10 targets at this load (p50 1 µs, "
        "p99 5 µs) are missed by that choice. At "
        f"{sustained.label} ({sustained.rate:,.0f}/s) the p99 is "
        f"{_ns(sustained.client.at(0.99))} and the worst repetition's p99.9 {_ns(worst)}, "
        f"against {_ns(sustained.baseline.at(0.99))} and "
        f"{_ns(sustained.baseline.at(0.999))} for the baseline. A caller that spins holds "
        "the GIL, so the writer thread gets it back after each round trip only by a forced "
        "switch, after up to 5 ms: at this rate a backlog builds up, and it goes out in "
        "COPYs of up to 10,000 rows (the ingest target needs that, see `cb996e6`). Such a "
        "COPY costs turns with the GIL that the caller waits out: joining its rows about "
        "0.8 ms, checking them for rejections 0.4 ms, handing the data to libpq (profile "
        "below). Shorter turns would need the batch's COPY data built contiguously as the "
        "rows are queued, so that the writer hands libpq one buffer it did not have to "
        "assemble; not done in issue 14.",
    ]


def _peer_limits(result: peers.PeersResult) -> list[str]:
    ours = result.ours
    lines = []
    missed = {t.figure for t in _peer_targets(result) if not t.met}
    if any("1,000 calls/s" in figure for figure in missed):
        worst99 = max(run[0].at(0.99) for run in ours.open_rounds)
        worst999 = max(run[0].at(0.999) for run in ours.open_rounds)
        lines.append(
            f"- **Open loop at 1,000 calls/s.** The worst round's p99 is {_ns(worst99)} and "
            f"p99.9 {_ns(worst999)}; the peers' pooled p99 are "
            + ", ".join(f"{c.name} {_ns(c.open_loops[0].at(0.99))}" for c in result.clients[1:])
            + ". Each batch costs the writer a few turns with the GIL, one per round trip "
            "to the server; a call that falls in one waits it out, and then waits to be "
            "scheduled again when the machine's two CPUs are busy (the database server, "
            "the other clients' processes)."
        )
    if any("full collection" in figure for figure in missed):
        lines.append(
            f"- **Collector.** A full collection took {ours.gc_queued.high * 1000:,.1f} ms "
            f"with {ours.gc_events:,} events queued against "
            f"{ours.gc_before.high * 1000:,.1f} ms before; the queue added "
            f"{ours.gc_objects.median:,.0f} objects for the collector to visit (its lists "
            "of rows), so the difference is the noise of a busy machine, not the queue."
        )
    if any("resumes" in figure for figure in missed):
        lines.append(
            "- **Recovery.** Writing resumed later than the bound in some round: see the "
            "outage table; the reconnect pause is at most 0.5 s, and a connection attempt "
            "to a database that is starting up is refused until it is ready."
        )
    return lines


def _aggregate_limits(agg: aggregates.AggregatesResult) -> list[str]:
    # The first question is DAU/WAU/MAU (see ``aggregates.run``).
    dau = agg.queries[0]
    if dau.speedup.median >= aggregates.TARGET_SPEEDUP:
        return []
    per_row = agg.rows / agg.daily_user_rows
    row_us = dau.aggregate_seconds.median / agg.daily_user_rows * 1e6
    raw_event_us = dau.raw_seconds.median / agg.rows * 1e6
    return [
        "- **DAU/WAU/MAU.** `queries.active_users` computes them with running sums: one "
        "ordered pass over the (day, user) rows finds each user's next active day, the rows "
        "are counted by day and gap, and the days are a running sum of where each user's "
        "7- and 30-day spans start and end (`EXPLAIN ANALYZE` below). The aggregate holds "
        f"one row per active user and day: {agg.daily_user_rows:,} rows for "
        f"{agg.rows:,} events, {per_row:,.0f} events per row. An exact answer reads every "
        f"row ({row_us:.2f} µs per row, {dau.aggregate_seconds.median * 1000:,.0f} ms in "
        "all), where the raw baseline makes about one pass over the events "
        f"({raw_event_us:.3f} µs per event) before the same running sums. The speed-up is "
        f"about {per_row:,.0f} x {raw_event_us:.3f} / {row_us:.2f} = "
        f"{per_row * raw_event_us / row_us:,.0f}x; "
        f"{aggregates.TARGET_SPEEDUP:g}x would take about "
        f"{aggregates.TARGET_SPEEDUP * row_us / raw_event_us:,.0f} events per user and "
        "day, or an aggregate that keeps weekly and monthly counts ready-made.",
    ]


def _limits(report: Report) -> list[str]:
    missed = {target.benchmark for target in targets(report) if not target.met}
    lines: list[str] = []
    if report.ingest is not None and "ingest" in missed:
        lines += _ingest_limits(report.ingest)
    if report.latency is not None and "latency" in missed:
        lines += _latency_limits(report.latency)
    if report.peers is not None and "peers" in missed:
        lines += _peer_limits(report.peers)
    if report.aggregates is not None and "aggregates" in missed:
        lines += _aggregate_limits(report.aggregates)
    if not lines:
        return []
    return ["## Where the limits are", "", *lines, "", *PROFILE_NOTES, ""]


#: Evidence gathered by hand with the tools named; the run does not regenerate it.
PROFILE_NOTES: Final = (
    "### Profiles",
    "",
    "Gathered by hand on this machine, with the tools named, while other work shared it "
    "(load average 2-7: absolute times are inflated, shares are not).",
    "",
    "**Where a row's microseconds go** (`timeit`, per event, at commit `af064d1`): "
    "`track()` now does what the batcher did. pydantic's `to_json` of the payload "
    "1.1-1.6 µs; the event id (`events.new_event_id_bytes`) 0.5-0.6 µs (1.2 µs through "
    "`new_event_ids(1)`, which builds a list); a caller's datetime turned into the "
    "server's microseconds 0.35 µs; each `struct` pack and the final `join` 0.12-0.13 µs; "
    "the intake's lock and append about 0.3 µs. The whole row 3.4-4.1 µs. A's rows skip "
    "all but psycopg's own encoding of a tuple whose JSON is already bytes.",
    "",
    "**orjson, weighed and not taken**: `orjson.dumps` of the model's fields (a copy of "
    "`__dict__` without `event_type`) gave documents equal to pydantic's for 5,000 sample "
    "events in 0.5-0.8 µs instead of 1.1-1.6 µs. That is about 0.8 µs of the 5-6 µs per "
    "event C costs: not enough to bring C's CPU per event to 2x A's, and it would make a "
    "second serialiser of the stored document (the models' own, `event_payload_json`, is "
    "the one source of truth) and a new dependency of the library.",
    "",
    "**Who holds the GIL in an open loop** (`py-spy record --gil --threads --idle`, 20,000 "
    "calls/s, batches of 100, at commit `af064d1`): the caller 81 % of samples, nobody "
    "12.6 %, the writer thread 5.9 % (psycopg's Python between round trips: "
    "`_maybe_prepare_gen`, `_fetch`, `_select_current_result`, `copy_to`, `copy_end`), the "
    "batcher 0.6 %. A caller that spins holds the GIL; each of the writer's four round "
    "trips per COPY ends in a forced switch, and the caller then waits out the writer's "
    "turn. With about one call in twenty landing in such a turn, batches of 100 put the "
    "p99 past 20 µs; the default is now 1000 (`b8e18f8`), a tenth of the turns per event.",
    "",
    "**The writer's turns with a backlog** (`timeit`, at commit `cb996e6`): `copy_data` "
    "joins 1,000 rows of 300 bytes in 35 µs and 10,000 in 0.8 ms; `Batch.of` checks "
    "10,000 entries for rejections in 0.44 ms; copying a full batch out of the intake "
    "(`list(tuple)`) 2 µs. With batches of 1,000 written one by one, a busy producer kept "
    "the writer waiting 5 ms for the GIL after each of a COPY's four round trips, and "
    "ingest C / A fell to 0.75-0.79; merging a backlog into COPYs of up to 10,000 rows "
    "brought it to 0.96-1.04, at the price of those longer turns.",
    "",
    "**Before issue 14** (commit `11ba94d`): the batcher built rows from queued models in "
    "slices of 256 with the GIL held (0.25-0.6 ms each), which callers waited out: p99 "
    "1.6 ms at 50 % of the sustained rate, 3 ms p99.9 at 1,000 calls/s; and 100,000 queued "
    "models made each full collection about 90 ms longer. After a 5 s outage the doubling "
    "backoff had reached 3.2-6.4 s, so writing resumed seconds after the database was "
    "back.",
    "",
    "`queries.active_users` over the aggregate (63,011 (day, user) rows, 90 days), "
    "`EXPLAIN ANALYZE` on this machine: 38 ms (48 ms with per-node timing), no JIT. An "
    "index-only scan of the aggregate in the `(user_id, day DESC)` index's order, so no "
    "sort, 7 ms; `lag()` for each user's next active day 27 ms; counting the rows by "
    "(day, gap) into 261 groups 8 ms; the 783 span edges and the running sums over 119 "
    "calendar days under 1 ms. The query it replaced (a nested loop of 90 calendar days "
    "x 62,727 rows and three `count(DISTINCT ...)` per day) took 2.0 s.",
)


def _how_to_run() -> list[str]:
    return [
        "## Running it",
        "",
        "```console",
        "make bench                                    # the full run, 5-10 minutes",
        "python -m benchmarks.run --quick --output /tmp/bench.md   # a smoke run",
        "python -m benchmarks.run --only ingest --only latency     # some benchmarks",
        "ANALYTICS_BENCH_DATABASE_URL=postgresql://... make bench   # another server",
        "```",
        "",
        "Without a DSN (`--database-url`, `ANALYTICS_BENCH_DATABASE_URL`, `DATABASE_URL`) it "
        "installs and starts the local server engine (`scripts/server-engine`, cluster "
        "`bench`). It creates and drops its own databases (`analytics_bench_*`; the role "
        "needs `CREATEDB`). `python -m benchmarks.run --help` lists the size options.",
        "",
    ]


def render(report: Report) -> str:
    """The whole document."""
    lines = [*_header(report), *_summary(report), *_environment(report)]
    if report.ingest is not None:
        lines += _ingest(report.ingest)
    if report.latency is not None:
        lines += _latency(report.latency)
    if report.peers is not None:
        lines += _peers(report.peers)
    if report.migrations is not None:
        lines += _migrations(report.migrations)
    if report.aggregates is not None:
        lines += _aggregates(report.aggregates)
    if report.collector is not None:
        lines += _collector(report.collector)
    if report.maintenance is not None:
        lines += _maintenance(report.maintenance)
    lines += _limits(report)
    lines += _how_to_run()
    return "\n".join(lines).rstrip() + "\n"
