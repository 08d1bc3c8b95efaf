"""The benchmark harness runs end to end in ``--quick`` mode and writes a complete report.

Timings are not asserted (they belong to ``docs/BENCHMARKS.md``, not to a test): only that
every benchmark ran, every ratio was computed, and nothing was left on the server.
"""

from __future__ import annotations

import re
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from benchmarks.run import main

pytestmark = pytest.mark.server

SECTIONS = [
    "Targets",
    "Machine and versions",
    "1. Ingest",
    "2. `track()` latency",
    "3. Against the peers: PostHog and Segment",
    "4. Migrations",
    "5. Aggregates",
    "6. HTTP collector",
    "7. Maintenance",
    "Running it",
]
# Present when a target was missed, which a smoke run's tiny sizes may or may not do.
OPTIONAL_SECTION = "Where the limits are"
TARGETS = [
    ("ingest", "C / A throughput (client vs bare COPY), every round"),
    ("ingest", "C / B throughput (client vs executemany)"),
    ("ingest", "C / A client CPU per event, every round"),
    ("latency", "track() p50, open loop, 50% of maximum"),
    ("latency", "track() p99, open loop, 50% of maximum"),
    ("latency", "track() p99, open loop, 50% of sustained, every repetition"),
    ("latency", "track() p99.9, open loop, 50% of sustained, every repetition"),
    ("peers", "track() p99, open loop, 1,000 calls/s, every round"),
    ("peers", "track() p99.9, open loop, 1,000 calls/s, every round"),
    ("peers", "full collection: time 2,000 queued events add, every round"),
    ("peers", "writing resumes after the database is back, every round"),
    ("migrations", "analytics-migrate status"),
    ("aggregates", "DAU/WAU/MAU, 90 days: queries.active_users"),
    ("aggregates", "API latency p95 per endpoint and hour, 7 days: queries.api_latency"),
    ("maintain", "one maintain, 3 new days on 90 vs 10 days of history"),
]
# A difference of two timings may come out below zero on a busy machine.
_NUMBER = r"-?[0-9][0-9,]*(?:\.[0-9]+)?"


def _tables(text: str, heading: str) -> list[list[list[str]]]:
    """The tables under ``## heading``: their rows of cells, header and rule left out."""
    section = text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    tables: list[list[list[str]]] = []
    previous = ""
    for line in section.splitlines():
        if line.startswith("|"):
            if not previous.startswith("|"):
                tables.append([])
            tables[-1].append([cell.strip() for cell in line.strip("|").split("|")])
        previous = line
    return [table[2:] for table in tables]


def _rows(text: str, heading: str) -> list[list[str]]:
    return _tables(text, heading)[0]


def test_quick_run_writes_every_section_with_computed_ratios(
    database_url: str, tmp_path: Path
) -> None:
    output = tmp_path / "BENCHMARKS.md"
    prefix = conninfo_to_dict(database_url)["dbname"]
    assert isinstance(prefix, str)

    code = main(
        ["--quick", "--database-url", database_url, "--output", str(output), "--prefix", prefix]
    )

    assert code == 0
    text = output.read_text(encoding="utf-8")
    headings = re.findall(r"^## (.+)$", text, flags=re.MULTILINE)
    assert [heading for heading in headings if heading != OPTIONAL_SECTION] == SECTIONS
    assert "with `--quick`" in text.splitlines()[2]

    targets = _rows(text, "Targets")
    assert [(row[0], row[1]) for row in targets] == TARGETS
    for row in targets:
        assert re.match(_NUMBER, row[3]), row
        assert row[4] in ("yes", "**no**"), row

    # C's ratio to each other arm; one measured round, its ratios computed too.
    arms, rounds = _tables(text, "1. Ingest")
    assert [row[0][:2] for row in arms] == ["A:", "B:", "C:"]
    assert all(float(row[1]) > 0 for row in arms[:2])
    assert len(rounds) == 1
    assert all(float(cell) > 0 for cell in rounds[0][4:])
    # Client, baseline and their ratio for the closed loop and three open loops.
    latency = _rows(text, "2. `track()` latency")
    assert len(latency) == 4 * 3
    for ratios in latency[2::3]:
        assert ratios[1] == "**client / baseline**"
        assert all(re.fullmatch(_NUMBER + "x", cell) for cell in ratios[2:]), ratios
    # A quick run measures analytics-core alone and says that the peers were not run.
    peers = "3. Against the peers: PostHog and Segment"
    assert "**posthog**: not run in a quick run" in text
    assert "**segment**: not run in a quick run" in text
    calls, opened, delivery, outage, collector = _tables(text, peers)
    assert [row[0] for row in calls] == [
        "analytics-core (pre-built)",
        "analytics-core (built in the call)",
    ]
    assert [row[0] for row in opened] == [
        "1,000/s: analytics-core",
        "1,000/s: baseline",
        "10,000/s: analytics-core",
        "10,000/s: baseline",
    ]
    assert float(delivery[0][1].replace(",", "")) > 0
    # Across the outage nothing is lost or doubled, and writing resumed.
    ((client, _tracked, lost, counted, duplicated, resumed),) = outage
    assert (client, lost, counted, duplicated) == ("analytics-core, round 1", "0", "0", "0")
    assert resumed.endswith(" s"), resumed
    assert collector[0][0] == "analytics-core"
    migrations = _rows(text, "4. Migrations")
    assert [row[0] for row in migrations][1:] == [
        "`analytics-migrate all (empty database)`",
        "`analytics-migrate all (up to date)`",
        "`analytics-migrate status`",
    ]
    aggregates = _rows(text, "5. Aggregates")
    assert aggregates[0][1] == "90"
    assert all(float(row[2]) > 0 for row in aggregates)
    # Both arms' rates and their ratio; the batch requests' latency percentiles.
    collector_arms, collector_latency = _tables(text, "6. HTTP collector")
    assert [row[0][:2] for row in collector_arms] == ["D:", "H:", "H "]
    assert all(float(row[1].replace(",", "")) > 0 for row in collector_arms)
    assert all(re.fullmatch(_NUMBER + " (ns|µs|ms)", cell) for cell in collector_latency[0])
    maintained = _rows(text, "7. Maintenance")
    assert [row[0] for row in maintained] == ["10 days", "90 days"]
    assert all(re.fullmatch(_NUMBER + " s", row[2]) for row in maintained), maintained

    # The databases it created are gone; only the fixture's own remains.
    with psycopg.connect(database_url) as conn:
        left = conn.execute(
            "SELECT datname FROM pg_database WHERE starts_with(datname, %s) ORDER BY 1",
            (prefix,),
        ).fetchall()
    assert left == [(prefix,)]
