"""The collector's live stream (Server-Sent Events) against the server engine: snapshots that
follow what is posted, heartbeats, ``retry:`` and ``Last-Event-ID``."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devtools.collector_process import CollectorKeys, CollectorProcess, start_collector, write_keys
from tests.sse import read_stream

pytestmark = pytest.mark.server


@pytest.fixture
def collector(events_url: str, tmp_path: Path) -> Iterator[tuple[CollectorProcess, CollectorKeys]]:
    keys = write_keys(tmp_path / "keys.toml")
    process = start_collector(
        events_url,
        tmp_path / "keys.toml",
        tmp_path / "collector.log",
        "--live-interval",
        "0.4",
        "--heartbeat-interval",
        "0.15",
        "--flush-interval",
        "0.05",
    )
    yield process, keys
    process.stop()


def test_the_stream_sends_snapshots_that_follow_the_events(
    collector: tuple[CollectorProcess, CollectorKeys],
) -> None:
    process, keys = collector
    events = read_stream(process.base_url, keys.read, until=lambda seen: _count(seen) >= 3)
    assert events[0] == {"retry": "3000"}
    snapshots = [e for e in events if e.get("event") == "snapshot"]
    assert [int(s["id"]) for s in snapshots] == list(range(1, len(snapshots) + 1))
    assert all(s["data"]["events_last_minute"]["count"] == 0 for s in snapshots)
    # Snapshots come every 0.4 s; nothing else is sent for 0.15 s, so heartbeats go between.
    assert any("comment" in e for e in events)

    with httpx.Client(base_url=process.base_url) as http:
        items = [
            {
                "event": {
                    "event_type": "task_created",
                    "task_id": str(uuid.uuid4()),
                    "user_id": str(uuid.uuid4()),
                    "command": "make",
                }
            }
            for _ in range(7)
        ]
        response = http.post(
            "/v1/events/batch",
            json={"events": items},
            headers={"Authorization": f"Bearer {keys.server}"},
        )
        assert response.status_code == 202

    def counted(seen: list[dict[str, Any]]) -> bool:
        return any(
            e.get("event") == "snapshot" and e["data"]["events_last_minute"]["count"] == 7
            for e in seen
        )

    events = read_stream(process.base_url, keys.read, last_event_id="41", until=counted)
    first = next(e for e in events if e.get("event") == "snapshot")
    assert first["id"] == "42"  # Last-Event-ID continues the count
    last = events[-1]["data"]
    assert last["active_users"]["count"] == 7
    assert last["top_event_types"]["event_types"] == [{"event_type": "task_created", "count": 7}]
    assert len(last["recent_events"]) == 7
    assert {e["service"] for e in last["recent_events"]} == {"platform"}


def test_the_stream_needs_a_read_key(collector: tuple[CollectorProcess, CollectorKeys]) -> None:
    process, keys = collector
    with httpx.Client(base_url=process.base_url) as http:
        assert http.get("/v1/live/stream").status_code == 401
        response = http.get("/v1/live/stream", headers={"Authorization": f"Bearer {keys.server}"})
        assert response.status_code == 403
        response = http.get(
            "/v1/live/stream",
            params={"minutes": "0"},
            headers={"Authorization": f"Bearer {keys.read}"},
        )
        assert response.status_code == 400


def _count(seen: list[dict[str, Any]]) -> int:
    return sum(1 for e in seen if e.get("event") == "snapshot")
