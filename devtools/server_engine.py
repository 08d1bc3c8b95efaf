"""Local PostgreSQL 15 + TimescaleDB (Apache edition) clusters, through scripts/server-engine.

The one caller of that script: the tests, the benchmarks and the demo start their clusters
here, with the same bounded waits and one error type. Needs Linux; installing needs root (the
script installs Debian packages and builds TimescaleDB once), starting needs root or the
`postgres` user. Clusters keep running after their caller, so the next start takes well under
a second; `scripts/server-engine stop --name NAME` stops one.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

__all__ = [
    "INSTALL_TIMEOUT_S",
    "START_TIMEOUT_S",
    "STOP_TIMEOUT_S",
    "ServerEngineError",
    "ensure_server",
    "stop_server",
    "unavailable_reason",
]

SERVER_ENGINE = Path(__file__).resolve().parents[1] / "scripts" / "server-engine"

# A cold install downloads packages and compiles TimescaleDB on two cores.
INSTALL_TIMEOUT_S = 1800.0
START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 90.0


class ServerEngineError(RuntimeError):
    """scripts/server-engine failed or timed out; the message carries its output."""


def unavailable_reason() -> str | None:
    """Why the local server engine cannot run here (platform or privileges), or None."""
    if not sys.platform.startswith("linux"):
        return f"scripts/server-engine supports Linux only, not {sys.platform}"
    if os.geteuid() != 0:
        return "scripts/server-engine needs root (apt-get, and running postgres as its user)"
    if shutil.which("bash") is None:
        return "bash is not on PATH"
    return None


def ensure_server(
    name: str = "main",
    preload: bool = True,
    *,
    install_timeout_s: float = INSTALL_TIMEOUT_S,
    start_timeout_s: float = START_TIMEOUT_S,
) -> str:
    """Install the engine if needed, start cluster `name`, and return its DSN.

    The install step runs only as root (as another user the engine must be installed
    already). `preload=False` starts the cluster without timescaledb in
    shared_preload_libraries (a cluster that runs already is restarted if its settings
    differ). Blocks for at most the two timeouts; raises `ServerEngineError` on failure or
    timeout.
    """
    if os.geteuid() == 0:
        _run(["install"], install_timeout_s)
    command = ["start", "--name", name]
    if not preload:
        command.append("--no-preload")
    dsn = _run(command, start_timeout_s).strip()
    if not dsn.startswith("postgresql://"):
        raise ServerEngineError(f"scripts/server-engine start printed {dsn!r}, not a DSN")
    return dsn


def stop_server(name: str = "main", *, timeout_s: float = STOP_TIMEOUT_S) -> None:
    """Stop cluster `name` (fast shutdown); a cluster that is not running is left as is."""
    _run(["stop", "--name", name], timeout_s)


def _run(arguments: list[str], timeout_s: float) -> str:
    """Run scripts/server-engine; return its stdout. Kills its whole process group on timeout."""
    command = [str(SERVER_ENGINE), *arguments]
    # Its own session, so a timeout also ends what it started (apt-get, make, the compilers),
    # and they cannot keep our pipes open.
    try:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
    except OSError as error:
        raise ServerEngineError(f"cannot run {SERVER_ENGINE}: {error}") from None
    try:
        stdout, stderr = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate(timeout=10)
        raise ServerEngineError(
            f"`{' '.join(command)}` took over {timeout_s:.0f}s and was killed; "
            "run it by hand to see where it stops"
        ) from None
    if process.returncode != 0:
        raise ServerEngineError(
            f"`{' '.join(command)}` failed (exit {process.returncode}):\n{stderr.strip()}"
        )
    return stdout
