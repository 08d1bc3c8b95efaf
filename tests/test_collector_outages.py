"""The collector when the database is away: a full queue answers 503 (nothing accepted and
dropped), readiness flips, and the live stream reports a database restart and resumes.

The restart runs on a local cluster of this module's own (``collector-restart``), which it
stops and starts; skipped when the database comes from the environment or Docker.
"""

from __future__ import annotations

import secrets
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import pytest
from psycopg import sql

from analytics_core.migrate import Phase, apply
from analytics_core.schema import EVENTS_TABLE
from devtools.collector_process import CollectorKeys, start_collector, write_keys
from tests.observe import fetch, wait_until
from tests.sse import read_stream

pytestmark = pytest.mark.server

RESTART_CLUSTER = "collector-restart"
# A port nothing listens on: the client cannot write, so what it queues stays queued.
UNREACHABLE = "postgresql://nobody@127.0.0.1:9/none?connect_timeout=2"


def items(count: int, command: str = "make") -> dict[str, Any]:
    return {
        "events": [
            {
                "event": {
                    "event_type": "task_created",
                    "task_id": str(uuid.uuid4()),
                    "user_id": str(uuid.uuid4()),
                    "command": command,
                }
            }
            for _ in range(count)
        ]
    }


def metric(http: httpx.Client, name: str) -> float:
    for line in http.get("/metrics").text.splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[1])
    raise AssertionError(f"{name} is not in /metrics")


def test_a_full_queue_answers_503_and_accepts_nothing(tmp_path: Path) -> None:
    keys = write_keys(tmp_path / "keys.toml")
    process = start_collector(
        UNREACHABLE,
        tmp_path / "keys.toml",
        tmp_path / "collector.log",
        "--max-queue-size", "25",
        "--batch-size", "5",
        "--max-batch-events", "10",
        "--retry-after", "7",
        "--shutdown-timeout", "0.5",
    )  # fmt: skip
    try:
        with httpx.Client(base_url=process.base_url, timeout=30) as http:
            auth = {"Authorization": f"Bearer {keys.server}"}
            for _ in range(2):
                assert (
                    http.post("/v1/events/batch", json=items(10), headers=auth).status_code == 202
                )
            # 20 of 25 places taken: a batch of 10 does not fit, and is refused as a whole.
            refused = http.post("/v1/events/batch", json=items(10), headers=auth)
            assert refused.status_code == 503
            assert refused.headers["retry-after"] == "7"
            assert "nothing was queued" in refused.json()["error"]
            one = http.post("/v1/events", json=items(1)["events"][0], headers=auth)
            assert one.status_code == 202  # what fits is still taken
            assert metric(http, "analytics_client_accepted_total") == 21
            assert metric(http, "analytics_client_dropped_total") == 0
            assert metric(http, "analytics_client_queue_depth") == 21
            assert metric(http, 'analytics_collector_items_total{outcome="refused"}') == 10
            ready = http.get("/readyz")
            assert (ready.status_code, ready.json()) == (
                503,
                {"status": "not ready", "failing": ["database", "queue"]},
            )
            assert http.get("/healthz").status_code == 200
    finally:
        process.stop()
    # Shutdown gave up on the events it could not write, within its bound, and said so.
    assert "gave up draining after 0.5 s" in process.log()


@pytest.fixture
def restartable_url(full_timescaledb: object) -> Iterator[str]:
    """A fresh database on a cluster of this module's own, which the test stops and starts."""
    if full_timescaledb is not None:
        pytest.skip("the database comes from the environment or Docker and cannot be restarted")
    from devtools import server_engine as server  # noqa: PLC0415

    reason = server.unavailable_reason()
    if reason is not None:
        pytest.skip(f"no local server engine: {reason}")
    admin_url = server.ensure_server(RESTART_CLUSTER)
    name = f"collector_restart_{secrets.token_hex(4)}"
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))
    apply(url, (Phase.PRE,))
    yield url
    admin_url = server.ensure_server(RESTART_CLUSTER)
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def test_a_database_restart_is_reported_and_survived(restartable_url: str, tmp_path: Path) -> None:
    from devtools import server_engine as server  # noqa: PLC0415

    keys: CollectorKeys = write_keys(tmp_path / "keys.toml")
    process = start_collector(
        restartable_url,
        tmp_path / "keys.toml",
        tmp_path / "collector.log",
        "--live-interval", "0.3",
        "--flush-interval", "0.05",
    )  # fmt: skip
    messages: list[dict[str, Any]] = []

    def outage_then_snapshot(seen: list[dict[str, Any]]) -> bool:
        kinds = [m.get("event") for m in seen]
        return "outage" in kinds and "snapshot" in kinds[kinds.index("outage") :]

    def watch() -> None:
        messages.extend(
            read_stream(process.base_url, keys.read, until=outage_then_snapshot, timeout=120)
        )

    watcher = threading.Thread(target=watch)
    try:
        with httpx.Client(base_url=process.base_url, timeout=30) as http:
            auth = {"Authorization": f"Bearer {keys.server}"}
            assert (
                http.post("/v1/events/batch", json=items(5, "before"), headers=auth).status_code
                == 202
            )
            watcher.start()
            assert wait_until(lambda: http.get("/readyz").status_code == 200, timeout=30)
            time.sleep(1.0)  # a few snapshots before the outage
            server.stop_server(RESTART_CLUSTER)
            try:
                down = http.get("/readyz")
                assert (down.status_code, down.json()["failing"]) == (503, ["database"])
                # Events sent meanwhile are queued, and written once the database is back.
                during = http.post("/v1/events/batch", json=items(5, "during"), headers=auth)
                assert during.status_code == 202
                time.sleep(1.0)  # outages reported by the stream
            finally:
                server.ensure_server(RESTART_CLUSTER)
            assert wait_until(lambda: http.get("/readyz").status_code == 200, timeout=60)
            watcher.join(120)
            assert not watcher.is_alive()
    finally:
        process.stop()
    kinds = [m.get("event") for m in messages if "event" in m]
    assert kinds[0] == "snapshot"
    outage = next(m for m in messages if m.get("event") == "outage")
    assert outage["data"]["error"].startswith("the database cannot answer")
    assert "analytics-test-pw" not in str(messages)
    assert kinds[-1] == "snapshot"
    ids = [int(m["id"]) for m in messages if "id" in m]
    assert ids == list(range(1, len(ids) + 1))  # one stream throughout: it never broke
    assert wait_until(
        lambda: fetch(restartable_url, f"SELECT count(*) FROM {EVENTS_TABLE}") == [(10,)],
        timeout=60,
    )
