"""The HTTP collector, served by uvicorn in a subprocess against the server engine: ingest
(per-item results, limits, keys, origins, families, retries), the read endpoints, the schema,
health and metrics, and what its access log leaves out.

One collector and one migrated database serve the module; each test tells its rows apart
by their own ids.
"""

from __future__ import annotations

import json
import signal
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from analytics_core import queries as q
from analytics_core.events import event_json_schema
from analytics_core.schema import EVENTS_TABLE
from devtools.collector_process import (
    CollectorKeys,
    CollectorProcess,
    start_collector,
    write_keys,
)
from devtools.pytest_plugin import seeded_database_fixture
from tests.observe import fetch, wait_until
from tests.synthetic import day_of, product_history

pytestmark = pytest.mark.server

START = day_of(datetime.now(UTC) - timedelta(days=6))
HISTORY = product_history(START, days=6)
url = seeded_database_fixture(HISTORY.rows, refresh=True)

MAX_BATCH = 50
MAX_BODY = 64_000
# A value only the payloads carry: it must never come back in a response or the log.
SECRET = "s3cr3t-payload-value"


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, CollectorKeys]:
    path = tmp_path_factory.mktemp("collector") / "keys.toml"
    return path, write_keys(path)


@pytest.fixture(scope="module")
def collector(
    url: str, keys: tuple[Path, CollectorKeys], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CollectorProcess]:
    log = tmp_path_factory.mktemp("collector-log") / "collector.log"
    process = start_collector(
        url,
        keys[0],
        log,
        "--max-batch-events",
        str(MAX_BATCH),
        "--max-body-bytes",
        str(MAX_BODY),
        "--flush-interval",
        "0.1",
    )
    yield process
    # uvicorn ends by the signal it was sent, after its graceful shutdown.
    assert process.stop() == -signal.SIGTERM
    assert "analytics-collector: stopped; every queued event was written" in process.log()


@pytest.fixture
def http(collector: CollectorProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=collector.base_url, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def api_keys(keys: tuple[Path, CollectorKeys]) -> CollectorKeys:
    return keys[1]


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def task_created(command: str = "make") -> dict[str, Any]:
    return {
        "event_type": "task_created",
        "task_id": str(uuid.uuid4()),
        "user_id": str(uuid.uuid4()),
        "command": command,
    }


def rows_with_ids(url: str, ids: list[str]) -> list[tuple[Any, ...]]:
    listed = ", ".join(f"'{i}'" for i in ids)
    return fetch(
        url,
        f"SELECT event_id::text, service, event_type, timestamp FROM {EVENTS_TABLE} "
        f"WHERE event_id IN ({listed})",
    )


def wait_for_rows(url: str, ids: list[str]) -> list[tuple[Any, ...]]:
    assert wait_until(lambda: len(rows_with_ids(url, ids)) >= len(ids), timeout=30)
    return rows_with_ids(url, ids)


# --- Ingest ------------------------------------------------------------------------------------


def test_a_batch_with_good_and_bad_items(
    http: httpx.Client, api_keys: CollectorKeys, url: str
) -> None:
    items: list[Any] = [
        {"event": task_created(SECRET)},
        {
            "event": {
                "event_type": "task_completed",
                "task_id": str(uuid.uuid4()),
                "user_id": SECRET,
                "duration_ms": -1,
            }
        },
        {"event": task_created(), "service": "billing"},
        {"event": {"event_type": "no_such_event"}},
        "not an item",
        {"event": task_created(), "timestamp": "2026-12-01T10:00:00"},
        {"event": task_created(), "event_id": str(uuid.uuid4())},
        {"event": task_created(), "timestamp": datetime.now(UTC).isoformat()},
    ]
    response = http.post(
        "/v1/events/batch", json={"events": items}, headers=bearer(api_keys.server)
    )
    assert response.status_code == 202
    document = response.json()
    assert SECRET not in response.text
    assert (document["accepted"], document["rejected"]) == (2, 6)
    results = document["results"]
    assert [r["status"] for r in results] == [
        "accepted",
        "rejected",
        "rejected",
        "rejected",
        "rejected",
        "rejected",
        "rejected",
        "accepted",
    ]
    assert [r["index"] for r in results] == list(range(8))
    user_id_error, duration_error = results[1]["errors"]
    assert user_id_error.startswith("event.task_completed.user_id: Input should be a valid UUID")
    assert duration_error == (
        "event.task_completed.duration_ms: Input should be greater than or equal to 0"
    )
    assert results[2]["errors"] == ["service: not allowed in an item; the service is the API key's"]
    assert results[3]["errors"][0].startswith(
        "event.event_type: unknown event type 'no_such_event'; expected one of: "
    )
    assert results[4]["errors"] == [
        'item: expected an object such as {"event": {"event_type": ...}}'
    ]
    assert results[5]["errors"] == ["timestamp: needs a UTC offset, such as 2026-12-01T10:00:00Z"]
    assert results[6]["errors"][0].startswith("timestamp: required with an event_id")
    ids = [results[0]["event_id"], results[7]["event_id"]]
    rows = wait_for_rows(url, ids)
    assert sorted((row[0], row[1], row[2]) for row in rows) == sorted(
        (i, "platform", "task_created") for i in ids
    )


def test_one_event_and_one_bad_event(http: httpx.Client, api_keys: CollectorKeys, url: str) -> None:
    at = (datetime.now(UTC) - timedelta(hours=1)).replace(microsecond=250_000)
    good = http.post(
        "/v1/events",
        json={"event": task_created(), "timestamp": at.isoformat().replace("+00:00", "Z")},
        headers=bearer(api_keys.server),
    )
    assert good.status_code == 202
    assert set(good.json()) == {"status", "event_id"}
    ((_, service, _, timestamp),) = wait_for_rows(url, [good.json()["event_id"]])
    assert (service, timestamp) == ("platform", at)

    bad = http.post(
        "/v1/events",
        json={"event": {"event_type": "task_created"}},
        headers=bearer(api_keys.server),
    )
    assert bad.status_code == 422
    assert bad.json() == {
        "status": "rejected",
        "errors": [
            "event.task_created.task_id: Field required",
            "event.task_created.user_id: Field required",
            "event.task_created.command: Field required",
        ],
    }


def test_a_retried_batch_is_stored_once(
    http: httpx.Client, api_keys: CollectorKeys, url: str
) -> None:
    now = datetime.now(UTC)
    items = [
        {
            "event": task_created(f"retry {i}"),
            "event_id": str(uuid.uuid4()),
            "timestamp": (now - timedelta(milliseconds=i)).isoformat(),
        }
        for i in range(30)
    ]
    ids = [item["event_id"] for item in items]
    for _ in range(3):  # the first answer "lost", sent twice more, the last one at once
        response = http.post(
            "/v1/events/batch", json={"events": items}, headers=bearer(api_keys.server)
        )
        assert response.status_code == 202
        assert [r["event_id"] for r in response.json()["results"]] == ids
    wait_for_rows(url, ids)
    assert http.get("/readyz").status_code == 200  # the writer has settled the duplicates
    assert wait_until(lambda: _queue_depth(http) == 0, timeout=30)
    rows = rows_with_ids(url, ids)
    assert sorted(row[0] for row in rows) == sorted(ids)


def _queue_depth(http: httpx.Client) -> int:
    for line in http.get("/metrics").text.splitlines():
        if line.startswith("analytics_client_queue_depth "):
            return int(line.split()[1])
    raise AssertionError("no queue depth in /metrics")


def test_limits_and_media_type(http: httpx.Client, api_keys: CollectorKeys) -> None:
    headers = bearer(api_keys.server)
    too_many = {"events": [{"event": task_created()}] * (MAX_BATCH + 1)}
    response = http.post("/v1/events/batch", json=too_many, headers=headers)
    assert response.status_code == 413
    assert response.json() == {
        "error": f"a batch holds at most {MAX_BATCH} items; send them in smaller batches"
    }
    too_large = {"events": [{"event": task_created("x" * 9_000)}] * 8}
    response = http.post("/v1/events/batch", json=too_large, headers=headers)
    assert response.status_code == 413
    assert "larger than 64000 bytes" in response.json()["error"]
    # Streamed without a Content-Length: the limit holds all the same.
    chunks = (json.dumps(too_large)[i : i + 1000].encode() for i in range(0, 80_000, 1000))
    response = http.post(
        "/v1/events/batch",
        content=chunks,
        headers={**headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    response = http.post(
        "/v1/events/batch",
        content=json.dumps({"events": []}),
        headers={**headers, "Content-Type": "text/plain"},
    )
    assert response.status_code == 415
    response = http.post(
        "/v1/events",
        content=b'{"event": ',
        headers={**headers, "Content-Type": "application/json"},
    )
    assert (response.status_code, response.json()) == (
        400,
        {"error": "the body is not valid JSON (UTF-8)"},
    )
    response = http.post("/v1/events/batch", json=[{"event": task_created()}], headers=headers)
    assert response.status_code == 400


def test_keys_origins_and_families(http: httpx.Client, api_keys: CollectorKeys, url: str) -> None:
    marker = f"keys {uuid.uuid4()}"
    batch = {"events": [{"event": task_created(marker)}]}
    assert http.post("/v1/events/batch", json=batch).status_code == 401
    response = http.post("/v1/events/batch", json=batch, headers=bearer("sk-wrong"))
    assert (response.status_code, response.headers["www-authenticate"]) == (401, "Bearer")
    assert (
        http.post("/v1/events/batch", json=batch, headers=bearer(api_keys.read)).status_code == 403
    )

    browser = {**bearer(api_keys.browser), "Origin": api_keys.origin}
    response = http.post(
        "/v1/events/batch", json=batch, headers={**browser, "Origin": "https://evil.example"}
    )
    assert response.status_code == 403
    assert "access-control-allow-origin" not in response.headers
    no_origin = http.post("/v1/events/batch", json=batch, headers=bearer(api_keys.browser))
    assert no_origin.status_code == 403
    # A family the browser key may not write (it may write task events only): nothing at all.
    mixed = {
        "events": [
            {"event": task_created(marker)},
            {
                "event": {
                    "event_type": "project_created",
                    "project_id": str(uuid.uuid4()),
                    "user_id": str(uuid.uuid4()),
                }
            },
        ]
    }
    response = http.post("/v1/events/batch", json=mixed, headers=browser)
    assert response.status_code == 403
    assert response.json()["items"] == [1]
    assert "project" in response.json()["error"]
    assert response.headers["access-control-allow-origin"] == api_keys.origin

    preflight = http.options(
        "/v1/events/batch",
        headers={"Origin": api_keys.origin, "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == api_keys.origin
    assert "authorization" in preflight.headers["access-control-allow-headers"]
    assert http.options("/v1/events", headers={"Origin": "https://evil.example"}).status_code == 403

    allowed = http.post("/v1/events/batch", json=batch, headers=browser)
    assert allowed.status_code == 202
    assert allowed.headers["access-control-allow-origin"] == api_keys.origin
    (result,) = allowed.json()["results"]
    rows = wait_for_rows(url, [result["event_id"]])
    assert [row[1] for row in rows] == ["web"]
    ((written,),) = fetch(
        url, f"SELECT count(*) FROM {EVENTS_TABLE} WHERE data->>'command' = '{marker}'"
    )
    assert written == 1


# --- Reads, schema, health, metrics ------------------------------------------------------------


def test_read_endpoints_answer_what_the_queries_answer(
    http: httpx.Client, api_keys: CollectorKeys, url: str
) -> None:
    first = START.date().isoformat()
    last = (START + timedelta(days=5)).date().isoformat()
    window = q.TimeWindow.days(START.date(), (START + timedelta(days=5)).date())
    params = {"since": first, "until": last}
    with psycopg.connect(url) as conn:
        expected = {
            "active-users": q.active_users(conn, window),
            "api-latency": q.api_latency(conn, window),
            "tasks": q.task_stats(conn, window),
            "integrations": q.integration_health(conn, window),
            "auth": q.auth_activity(conn, window),
            "cocoons": q.cocoon_activity(conn, window),
            "errors": q.error_counts(conn, window),
        }
    for name, result in expected.items():
        response = http.get(f"/v1/metrics/{name}", params=params, headers=bearer(api_keys.read))
        assert response.status_code == 200, response.text
        assert response.json() == json.loads(json.dumps(result.to_json())), name
    assert expected["tasks"].created > 0  # the data set has tasks

    latency = http.get(
        "/v1/metrics/api-latency",
        params={**params, "service": "nobody"},
        headers=bearer(api_keys.read),
    )
    assert latency.status_code == 200
    assert latency.json()["endpoints"] == []

    read = bearer(api_keys.read)
    assert http.get("/v1/metrics/tasks").status_code == 401
    assert http.get("/v1/metrics/tasks", headers=bearer(api_keys.server)).status_code == 403
    for bad in (
        {"days": "0"},
        {"days": "x"},
        {"since": "yesterday"},
        {"since": last, "until": first},
        {"days": "3", "since": first},
    ):
        response = http.get("/v1/metrics/tasks", params=bad, headers=read)
        assert response.status_code == 400, bad
    live = http.get("/v1/live", params={"minutes": "60", "limit": "3"}, headers=read)
    assert live.status_code == 200
    assert live.json()["minutes"] == 60
    assert len(live.json()["recent_events"]) <= 3
    assert http.get("/v1/live", params={"limit": "1000"}, headers=read).status_code == 400


def test_schema_health_and_metrics(http: httpx.Client, collector: CollectorProcess) -> None:
    assert http.get("/v1/schema").json() == json.loads(json.dumps(event_json_schema()))
    assert http.get("/healthz").json() == {"status": "ok"}
    assert http.get("/readyz").json() == {"status": "ready", "failing": []}
    text = http.get("/metrics").text
    assert "# TYPE analytics_client_written_total counter" in text
    assert 'analytics_collector_requests_total{route="/healthz",method="GET",status="200"}' in text
    assert "analytics_client_queue_capacity 50000" in text


def test_the_access_log_has_no_payloads_or_keys(
    http: httpx.Client, api_keys: CollectorKeys, collector: CollectorProcess
) -> None:
    http.post(
        "/v1/events/batch",
        json={"events": [{"event": task_created(SECRET)}]},
        headers=bearer(api_keys.server),
    )
    http.get("/v1/metrics/tasks", params={"days": "2"}, headers=bearer(api_keys.read))
    assert wait_until(lambda: '"route":"/v1/metrics/tasks"' in collector.log(), timeout=10)
    log = collector.log()
    for secret in (SECRET, api_keys.server, api_keys.read, api_keys.browser, "days=2"):
        assert secret not in log
    lines = [
        json.loads(line.split(" analytics_core.collector.access ", 1)[1])
        for line in log.splitlines()
        if " analytics_core.collector.access " in line
    ]
    batch = next(line for line in lines if line["route"] == "/v1/events/batch")
    assert batch["key"] == "backend"
    assert set(batch) == {
        "method",
        "path",
        "route",
        "status",
        "duration_ms",
        "bytes",
        "client",
        "key",
    }
