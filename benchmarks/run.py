"""``python -m benchmarks.run``: run the benchmarks and write ``docs/BENCHMARKS.md``.

Exit codes: 0 the report was written (targets missed are findings, shown in it, not
failures); 1 a benchmark failed (an error, or two answers that should agree did not);
2 no database server, or bad arguments.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final, TypeVar

from analytics_core.connection import mask_password
from benchmarks import aggregates, collector, ingest, latency, maintenance, migrations, peers
from benchmarks.database import ENV_VARS, find_server
from benchmarks.environment import describe_environment
from benchmarks.report import Report, render, targets
from benchmarks.settings import FULL, QUICK, Settings
from devtools.databases import ThrowawayDatabases
from devtools.seeding import migrate
from devtools.server_engine import ServerEngineError

__all__ = ["BENCHMARKS", "DEFAULT_OUTPUT", "main", "run"]

DEFAULT_OUTPUT: Final = Path(__file__).resolve().parents[1] / "docs" / "BENCHMARKS.md"
#: In the order they run: the cheap, sensitive ones before the one that loads 5 M rows.
BENCHMARKS: Final = (
    "ingest",
    "latency",
    "peers",
    "collector",
    "migrations",
    "maintain",
    "aggregates",
)
_DEFAULT_PREFIX: Final = "analytics_bench"
# Size options: flag name -> Settings field.
_SIZES: Final = {
    "ingest-events": "ingest_events",
    "ingest-batch-size": "ingest_batch_size",
    "ingest-rounds": "ingest_rounds",
    "latency-calls": "latency_calls",
    "latency-repetitions": "latency_repetitions",
    "migration-runs": "migration_runs",
    "aggregate-rows": "aggregate_rows",
    "aggregate-runs": "aggregate_runs",
    "collector-events": "collector_events",
    "collector-rounds": "collector_rounds",
    "maintain-events-per-day": "maintain_events_per_day",
    "maintain-runs": "maintain_runs",
    "peer-rounds": "peer_rounds",
    "peer-calls": "peer_calls",
    "peer-events": "peer_events",
}

T = TypeVar("T")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run",
        description="Benchmark analytics-core against TimescaleDB; write a Markdown report.",
        epilog=(
            f"The server is --database-url, else ${ENV_VARS[0]}, else ${ENV_VARS[1]}, else "
            "the local server engine (scripts/server-engine), installed and started on demand. "
            "Exit codes: 0 report written; 1 a benchmark failed; 2 no server or bad arguments."
        ),
    )
    parser.add_argument("--database-url", help="DSN of the server (a role with CREATEDB)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run in seconds")
    parser.add_argument(
        "--only",
        action="append",
        choices=BENCHMARKS,
        help="run only this benchmark (repeatable; default: all)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=DEFAULT_OUTPUT,
        help="where to write the report (default: docs/BENCHMARKS.md)",
    )
    parser.add_argument(
        "--prefix",
        default=_DEFAULT_PREFIX,
        help="name prefix of the databases it creates and drops (default: %(default)s)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the databases afterwards, to inspect them"
    )
    sizes = parser.add_argument_group("sizes (defaults: the issue's minimums; --quick: tiny)")
    for flag, field in _SIZES.items():
        sizes.add_argument(
            f"--{flag}",
            type=int,
            dest=field,
            metavar="N",
            help=f"default {getattr(FULL, field):,}, quick {getattr(QUICK, field):,}",
        )
    return parser


def _settings(arguments: argparse.Namespace) -> Settings:
    base = QUICK if arguments.quick else FULL
    changes = {
        field: value
        for field in _SIZES.values()
        if (value := getattr(arguments, field)) is not None
    }
    for field, value in changes.items():
        if value < 1:
            raise ValueError(f"--{field.replace('_', '-')} must be at least 1, got {value}")
    return base.scaled(**changes)


def _logger() -> Callable[[str], None]:
    began = time.monotonic()

    def log(message: str) -> None:
        print(f"[{time.monotonic() - began:6.1f} s] {message}", file=sys.stderr, flush=True)

    return log


def run(
    dsn: str,
    source: str,
    settings: Settings,
    *,
    only: Sequence[str] = BENCHMARKS,
    quick: bool = False,
    prefix: str = _DEFAULT_PREFIX,
    keep: bool = False,
    log: Callable[[str], None] = print,
) -> Report:
    """Run the benchmarks in ``only`` on the server at ``dsn``; each in a database of its
    own named ``<prefix>_<benchmark>``. Blocks for as long as they take; raises what a
    benchmark raises (RuntimeError, AssertionError, psycopg.Error)."""
    began = time.perf_counter()
    with ThrowawayDatabases(dsn, prefix) as server:
        environment = describe_environment(server.admin(), f"{source}: {mask_password(dsn)}")

        def in_database(name: str, benchmark: Callable[[str], T]) -> T | None:
            if name not in only:
                return None
            with server.database(name, keep=keep) as url:
                migrate(url)
                return benchmark(url)

        ingested = in_database("ingest", lambda url: ingest.run(url, settings, log))
        measured = in_database("latency", lambda url: latency.run(url, settings, log))
        collected = in_database("collector", lambda url: collector.run(url, settings, log))
        compared = in_database("peers", lambda url: peers.run(url, settings, log, quick=quick))
        migrated = migrations.run(server, settings, log) if "migrations" in only else None
        maintained = (
            maintenance.run(server, settings, log, keep=keep) if "maintain" in only else None
        )
        aggregated = in_database("aggregates", lambda url: aggregates.run(url, settings, log))
    return Report(
        environment=environment,
        settings=settings,
        quick=quick,
        seconds=time.perf_counter() - began,
        ingest=ingested,
        latency=measured,
        peers=compared,
        migrations=migrated,
        aggregates=aggregated,
        collector=collected,
        maintenance=maintained,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    arguments = parser.parse_args(argv)
    try:
        settings = _settings(arguments)
    except ValueError as error:
        parser.error(str(error))
    log = _logger()
    try:
        dsn, source = find_server(arguments.database_url)
    except ServerEngineError as error:
        print(
            f"benchmarks: no database server: {error}\n"
            f"Run the benchmarks as root, or set {ENV_VARS[0]} to a TimescaleDB DSN.",
            file=sys.stderr,
        )
        return 2
    log(f"server: {source}")
    only = tuple(name for name in BENCHMARKS if name in (arguments.only or BENCHMARKS))
    try:
        report = run(
            dsn,
            source,
            settings,
            only=only,
            quick=arguments.quick,
            prefix=arguments.prefix,
            keep=arguments.keep,
            log=log,
        )
    except Exception as error:
        traceback.print_exc()
        print(
            f"benchmarks: failed ({type(error).__name__}: {error}); nothing was written. "
            "Rerun the failing benchmark alone with --only NAME --keep to inspect its database.",
            file=sys.stderr,
        )
        return 1
    arguments.output.parent.mkdir(parents=True, exist_ok=True)
    arguments.output.write_text(render(report), encoding="utf-8")
    log(f"wrote {arguments.output} in {report.seconds / 60:.1f} min")
    for target in targets(report):
        mark = "met" if target.met else "MISSED"
        print(
            f"{mark:6} {target.benchmark}: {target.figure}: {target.measured} "
            f"(target {target.goal})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
