"""Reading a Server-Sent Events stream in tests: each message as a dict of its fields."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx


def read_stream(
    base_url: str,
    read_key: str,
    *,
    until: Callable[[list[dict[str, Any]]], bool],
    last_event_id: str | None = None,
    timeout: float = 60.0,
    path: str = "/v1/live/stream",
) -> list[dict[str, Any]]:
    """The messages of ``path`` (``data`` decoded from JSON; a comment as ``{"comment": ...}``)
    from the start until ``until(messages)`` holds; ``AssertionError`` after ``timeout``."""
    headers = {"Authorization": f"Bearer {read_key}"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    deadline = time.monotonic() + timeout
    seen: list[dict[str, Any]] = []
    message: dict[str, Any] = {}
    with (
        httpx.Client(base_url=base_url, timeout=httpx.Timeout(10.0, read=30.0)) as http,
        http.stream("GET", path, headers=headers) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith(":"):
                seen.append({"comment": line[1:].strip()})
            elif line:
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                message[name] = json.loads(value) if name == "data" else value
                continue
            elif message:
                seen.append(message)
                message = {}
            if until(seen):
                return seen
            assert time.monotonic() < deadline, f"the stream did not deliver in time: {seen}"
    raise AssertionError(f"the stream ended: {seen}")
