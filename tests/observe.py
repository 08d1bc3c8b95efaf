"""Reading what a test database holds, and waiting (boundedly) for it to change."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import psycopg


def fetch(url: str, query: str) -> list[tuple[Any, ...]]:
    """The rows of ``query`` on a short-lived connection."""
    with psycopg.connect(url, connect_timeout=10) as conn:
        return conn.execute(query).fetchall()


def wait_until(condition: Callable[[], object], timeout: float = 20.0) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` passes (a correctness bound)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return bool(condition())
