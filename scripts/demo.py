"""`make demo`: the whole life of the schema on a real database, in under a minute.

1. `analytics-migrate all`, as a deploy pipeline runs it;
2. a month of realistic traffic from four services, tracked through `AnalyticsClient`;
3. `analytics-migrate maintain` (refreshes the aggregates, applies retention);
4. `analytics-migrate status`;
5. a short report from `analytics-report`.

The database is $DATABASE_URL when set (used as is: nothing is dropped), else a fresh
`analytics_demo` database on the local server engine that `scripts/server-engine` provides,
installed (as root) and started on demand. It imports `devtools`, the repository's
development package, which the editable install (`make install`) puts on the path.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rich.console import Console

from analytics_core import AnalyticsClient
from analytics_core.migrate import mask_password
from analytics_core.sample import sample_events
from devtools import server_engine
from devtools.databases import APP_DATABASE_URL_ENV, ThrowawayDatabases

BIN = Path(sys.executable).parent
SAMPLE_SIZE = 60_000
#: The demo database is `<prefix>_demo`: analytics_demo.
DEMO_DATABASE_PREFIX = "analytics"

console = Console(width=max(shutil.get_terminal_size((140, 40)).columns, 120))


def local_demo_database() -> str:
    """Start the local server engine and return the URL of a freshly created demo database.

    Exits with status 1 and says what to do when the engine cannot start.
    """
    try:
        admin_url = server_engine.ensure_server()
    except server_engine.ServerEngineError as error:
        console.print(
            f"the local server engine failed: {error}\n"
            f"Run the demo as root, or set {APP_DATABASE_URL_ENV} to a TimescaleDB database.",
            style="red",
            markup=False,
        )
        raise SystemExit(1) from None
    with ThrowawayDatabases(admin_url, DEMO_DATABASE_PREFIX) as databases:
        return databases.create("demo")


def command(*args: str, url: str, allow: tuple[int, ...] = (0,)) -> None:
    shown = " ".join(args)
    console.rule(f"[bold]$ {shown}")
    # Rich sizes tables to the terminal; behind a pipe it would assume 80 columns.
    width = max(shutil.get_terminal_size((140, 40)).columns, 120)
    result = subprocess.run(
        [str(BIN / args[0]), *args[1:]],
        env={**os.environ, APP_DATABASE_URL_ENV: url, "COLUMNS": str(width)},
        check=False,
        timeout=300,
    )
    if result.returncode not in allow:
        console.print(f"[red]{shown} exited with {result.returncode}")
        raise SystemExit(result.returncode)


def load_sample(url: str) -> None:
    console.rule(f"[bold]tracking {SAMPLE_SIZE:,} events through AnalyticsClient")
    end = datetime.now(UTC)
    clients: dict[str, AnalyticsClient] = {}
    started = time.perf_counter()
    try:
        for sample in sample_events(SAMPLE_SIZE, end - timedelta(days=30), end):
            client = clients.get(sample.service)
            if client is None:
                client = clients[sample.service] = AnalyticsClient(
                    url, service=sample.service, batch_size=1000, flush_interval=1.0,
                    max_queue_size=SAMPLE_SIZE,
                )
            client.track(sample.event, timestamp=sample.timestamp)
    finally:
        for client in clients.values():
            client.close(timeout=60)
    elapsed = time.perf_counter() - started
    for service, client in sorted(clients.items()):
        stats = client.stats
        console.print(
            f"{service:>10}: accepted {stats.accepted:>6,}  written {stats.written:>6,}  "
            f"failed {stats.failed}  dropped {stats.dropped}  batches {stats.batches}"
        )
    console.print(f"{SAMPLE_SIZE / elapsed:,.0f} events/s tracked and written")


def main() -> None:
    url = os.environ.get(APP_DATABASE_URL_ENV) or local_demo_database()
    console.print(f"database: {mask_password(url)}")
    command("analytics-migrate", "all", url=url)
    load_sample(url)
    command("analytics-migrate", "maintain", url=url)
    command("analytics-migrate", "status", url=url)
    if (BIN / "analytics-report").exists():
        command("analytics-report", "dau", "--days", "14", url=url)
        command("analytics-report", "latency", "--days", "7", url=url)
        command("analytics-report", "tasks", "--days", "14", url=url)


if __name__ == "__main__":
    main()
