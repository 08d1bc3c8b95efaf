"""The HTTP collector in a subprocess of its own, for the tests and the benchmark.

``start_collector`` runs ``analytics-collector serve`` (uvicorn) on a free loopback port that
uvicorn picks itself (port 0, read back from its log: no race with another process for the
port) and waits until ``/healthz`` answers. ``stop()`` sends SIGTERM, as an orchestrator
would, and waits for the drain.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from analytics_core.collector.config import hash_key

__all__ = ["CollectorKeys", "CollectorProcess", "start_collector", "write_keys"]

_LISTENING = re.compile(r"Uvicorn running on http://127\.0\.0\.1:(\d+)")


@dataclass
class CollectorProcess:
    """A running collector: its base URL (``http://127.0.0.1:PORT``) and its log file."""

    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        """Everything it logged so far (stderr and stdout)."""
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM, then wait at most ``timeout`` s (SIGKILL after); the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
            raise


def start_collector(
    database_url: str,
    keys_file: Path,
    log_path: Path,
    *options: str,
    timeout: float = 60.0,
) -> CollectorProcess:
    """Start the collector with ``options`` (``--max-queue-size 10`` ...) and wait until it
    answers ``/healthz``; raise ``RuntimeError`` with its log if it does not in time. The
    port is read from uvicorn's INFO log line: leave ``--log-level`` at info or debug."""
    command = [
        sys.executable,
        "-m",
        "analytics_core.cli.collector",
        "serve",
        "--keys-file",
        str(keys_file),
        "--database-url",
        database_url,
        "--port",
        "0",
        *options,
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"the collector exited with {process.returncode}:\n{log_path.read_text()}"
            )
        found = _LISTENING.search(log_path.read_text(errors="replace"))
        if found:
            base_url = f"http://127.0.0.1:{found.group(1)}"
            try:
                with urllib.request.urlopen(f"{base_url}/healthz", timeout=5) as response:
                    if response.status == 200:
                        return CollectorProcess(base_url, process, log_path)
            except OSError:
                pass
        time.sleep(0.05)
    process.kill()
    process.wait(10)
    raise RuntimeError(f"the collector did not start in {timeout:.0f} s:\n{log_path.read_text()}")


@dataclass(frozen=True)
class CollectorKeys:
    """The secrets of the keys ``write_keys`` configured, and the browser key's origin."""

    server: str
    browser: str
    read: str
    origin: str


def write_keys(
    path: Path, *, origin: str = "https://app.example.com", browser_families: str = '["task"]'
) -> CollectorKeys:
    """A key file at ``path`` with a server key (service ``platform``), a browser key
    (service ``web``, ``browser_families``, ``origin``) and a read key; their secrets."""
    keys = CollectorKeys(
        server="sk-" + secrets.token_hex(16),
        browser="bk-" + secrets.token_hex(16),
        read="rk-" + secrets.token_hex(16),
        origin=origin,
    )
    path.write_text(
        f"""
[[keys]]
name = "backend"
kind = "server"
service = "platform"
sha256 = "{hash_key(keys.server)}"

[[keys]]
name = "web"
kind = "browser"
service = "web"
families = {browser_families}
origins = ["{origin}"]
sha256 = "{hash_key(keys.browser)}"

[[keys]]
name = "dashboard"
kind = "read"
sha256 = "{hash_key(keys.read)}"
"""
    )
    return keys
