"""The machine, software versions and server settings a benchmark run measured."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Final

import psycopg

from analytics_core.migrate.edition import inspect_server

__all__ = ["Environment", "describe_environment"]

_REPOSITORY: Final = Path(__file__).resolve().parents[1]
#: Server settings that change write and query speed; reported so runs can be compared.
_SERVER_SETTINGS: Final = (
    "fsync",
    "synchronous_commit",
    "full_page_writes",
    "shared_buffers",
    "work_mem",
    "max_parallel_workers_per_gather",
    "jit",
)


@dataclass(frozen=True, slots=True)
class Environment:
    started_at: datetime
    commit: str
    cpus: int
    cpu_model: str
    memory_gib: float
    load_average: tuple[float, float, float]
    kernel: str
    python: str
    psycopg: str
    psycopg_impl: str
    libpq: str
    pydantic: str
    postgres: str
    timescaledb: str
    edition: str
    server: str
    server_settings: tuple[tuple[str, str], ...]


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float:
    try:
        with open("/proc/meminfo", encoding="utf-8") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 1024**2
    except OSError:
        pass
    return float("nan")


def _commit() -> str:
    """The checked-out commit, with ``+changes`` when the work tree differs from it."""
    try:
        head = subprocess.run(
            ["git", "-C", str(_REPOSITORY), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(_REPOSITORY), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout)"
    return f"{head}+changes" if dirty else head


def describe_environment(conn: psycopg.Connection[Any], server: str) -> Environment:
    """Facts about this machine and the server behind ``conn`` (any database on it);
    ``server`` says where the server came from (shown with its password masked)."""
    info = inspect_server(conn)
    rows = conn.execute(
        "SELECT name, current_setting(name) FROM unnest(%s::text[]) AS name",
        (list(_SERVER_SETTINGS),),
    ).fetchall()
    settings = tuple((str(name), str(value)) for name, value in rows)
    libpq = psycopg.pq.version()
    return Environment(
        started_at=datetime.now(UTC).replace(microsecond=0),
        commit=_commit(),
        cpus=len(os.sched_getaffinity(0)),
        cpu_model=_cpu_model(),
        memory_gib=_memory_gib(),
        load_average=os.getloadavg(),
        kernel=f"{platform.system()} {platform.release()}",
        python=sys.version.split()[0],
        psycopg=psycopg.__version__,
        psycopg_impl=psycopg.pq.__impl__,
        libpq=f"{libpq // 10000}.{libpq % 10000}",
        pydantic=metadata.version("pydantic"),
        postgres=info.postgres_version,
        timescaledb=info.timescaledb_version or "not installed",
        edition=str(info.edition),
        server=server,
        server_settings=settings,
    )
