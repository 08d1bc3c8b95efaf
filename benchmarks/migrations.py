"""The ``analytics-migrate`` command as a deploy runs it, against a process that connects.

Each command runs as a subprocess of the installed console script, so the figures include
interpreter start-up and imports, as a deploy pipeline pays them:

- ``all`` on an empty database: the whole schema, the backfill of empty aggregates included;
- ``all`` on that database again, now up to date: a no-op;
- ``status`` on it: read-only, the check a deploy may run on every start.

The baseline is the floor of any Python command that talks to the database: the same
interpreter starting, importing psycopg, connecting with the same DSN, ``SELECT 1``. Each run
measures the baseline and the three commands in a rotated order on a fresh database.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from benchmarks.database import BenchServer
from benchmarks.figures import Spread
from benchmarks.settings import Settings

__all__ = ["COMMANDS", "TARGET_STATUS_S", "CommandResult", "MigrationsResult", "run"]

#: ``status`` must answer within this many seconds.
TARGET_STATUS_S: Final = 1.0
#: What each measured command is called in the report, in order.
COMMANDS: Final = {
    "all-empty": "analytics-migrate all (empty database)",
    "all-current": "analytics-migrate all (up to date)",
    "status": "analytics-migrate status",
}
_BASELINE: Final = "baseline"
_CONNECT_AND_QUIT: Final = (
    "import os, psycopg\n"
    "with psycopg.connect(os.environ['DATABASE_URL']) as conn:\n"
    "    conn.execute('SELECT 1').fetchone()\n"
)
_TIMEOUT_S: Final = 300.0


@dataclass(frozen=True, slots=True)
class CommandResult:
    name: str
    seconds: Spread
    #: Seconds over the baseline's seconds in the same run.
    ratio: Spread


@dataclass(frozen=True, slots=True)
class MigrationsResult:
    runs: int
    baseline_seconds: Spread
    commands: tuple[CommandResult, ...]

    def command(self, name: str) -> CommandResult:
        return next(result for result in self.commands if result.name == name)


def _argv(name: str) -> list[str]:
    if name == _BASELINE:
        return [sys.executable, "-c", _CONNECT_AND_QUIT]
    script = str(Path(sys.executable).with_name("analytics-migrate"))
    return [script, "status" if name == "status" else "all"]


def _timed(name: str, url: str) -> float:
    """Run one command against ``url``; its wall-clock seconds. RuntimeError unless it exits 0
    (for ``status``: the schema is up to date)."""
    env = {**os.environ, "DATABASE_URL": url}
    start = time.perf_counter()
    done = subprocess.run(
        _argv(name),
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=_TIMEOUT_S,
        check=False,
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(_argv(name))} exited {done.returncode}: {done.stderr.strip()[-2000:]}"
        )
    return seconds


def _order(index: int) -> list[str]:
    """The run's order: ``all`` on the empty database first (the others need its schema),
    the up-to-date pair alternating, and the baseline moving through every position."""
    commands = ["all-empty", "all-current", "status"]
    if index % 2:
        commands[1:] = commands[:0:-1]
    position = index % (len(commands) + 1)
    return [*commands[:position], _BASELINE, *commands[position:]]


def run(server: BenchServer, settings: Settings, log: Callable[[str], None]) -> MigrationsResult:
    """Run the migration benchmark; each run gets a fresh database on ``server``."""
    seconds: dict[str, list[float]] = {name: [] for name in (_BASELINE, *COMMANDS)}
    for index in range(settings.migration_runs):
        order = _order(index)
        log(f"migrations: run {index + 1}/{settings.migration_runs} ({', '.join(order)})")
        with server.database(f"migrate_{index}") as url:
            for name in order:
                seconds[name].append(_timed(name, url))
    baseline = seconds[_BASELINE]
    commands = tuple(
        CommandResult(
            name,
            Spread.of(seconds[name]),
            Spread.of([own / base for own, base in zip(seconds[name], baseline, strict=True)]),
        )
        for name in COMMANDS
    )
    for result in commands:
        log(f"migrations:   {result.name}: {result.seconds.median:.2f} s")
    return MigrationsResult(settings.migration_runs, Spread.of(baseline), commands)
