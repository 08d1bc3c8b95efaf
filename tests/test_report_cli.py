"""`analytics-report` against a real server: JSON values, exit codes, bad input, refreshing in
place, and no password in any output."""

from __future__ import annotations

import importlib
import json
import tomllib
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest
from typer.testing import CliRunner

from analytics_core.cli.migrate import app as migrate_app
from analytics_core.cli.report import app
from devtools.pytest_plugin import seeded_database_fixture
from devtools.seeding import EventRow as Row
from tests.synthetic import day_of as day_start

pytestmark = pytest.mark.server

D = day_start(datetime.now(UTC) - timedelta(days=3))
DAY = D.date().isoformat()
NEXT_DAY = (D + timedelta(days=1)).date().isoformat()
UA, UB = uuid.uuid5(uuid.NAMESPACE_URL, "cli:a"), uuid.uuid5(uuid.NAMESPACE_URL, "cli:b")
C1 = uuid.uuid5(uuid.NAMESPACE_URL, "cli:cocoon")
SECRET = "hunter2-secret"


def at(hours: float) -> datetime:
    return D + timedelta(hours=hours)


ROWS = [
    Row(at(8), "cocoon_connected", {"cocoon_id": str(C1), "session_id": str(uuid.uuid4())}, UA),
    Row(at(9), "cocoon_disconnected",
        {"cocoon_id": str(C1), "session_id": str(uuid.uuid4()), "session_duration_ms": 3_600_000},
        UA),
    Row(at(9), "auth_login_attempt", {"method": "password", "success": False}, UB, "auth"),
    Row(at(9.5), "auth_login_attempt", {"method": "password", "success": True}, UB, "auth"),
    Row(at(10.25), "api_request",
        {"method": "GET", "route": "/x", "status_code": 200, "latency_ms": 10}, UA, "api"),
    Row(at(10.5), "api_request",
        {"method": "GET", "route": "/x", "status_code": 500, "latency_ms": 30}, UA, "api"),
    Row(at(11), "task_completed", {"task_id": str(uuid.uuid4()), "duration_ms": 2000}, UA),
    Row(at(12), "task_failed", {"task_id": str(uuid.uuid4()), "error": "boom"}, UA),
    Row(at(13), "integration_used", {"provider": "github", "action": "list"}, UB),
    Row(at(14), "integration_error", {"provider": "github", "error": "401"}, UB),
    Row(at(15), "application_error", {"error_kind": "KeyError", "message": "k"}, None, "worker"),
    Row(at(30), "api_request",
        {"method": "GET", "route": "/x", "status_code": 200, "latency_ms": 5}, UA, "api"),
]
WINDOW = ["--since", DAY, "--until", DAY]


url = seeded_database_fixture(ROWS, refresh=True)


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """Run the CLI in-process with no database URL in the environment unless given."""
    result = CliRunner().invoke(
        app, list(args), env={"DATABASE_URL": "", "PLATFORM_DATABASE_URL": "", **(env or {})}
    )
    return result.exit_code, result.stdout, result.stderr


def run_json(url: str, *args: str) -> Any:
    code, out, err = run(*args, "--json", "--database-url", url)
    assert code == 0, err
    return json.loads(out)


# --- JSON values -------------------------------------------------------------------------------


def test_dau(url: str) -> None:
    document = run_json(url, "dau", "--since", DAY, "--until", NEXT_DAY)
    assert document["days"] == [
        {"day": DAY, "dau": 2, "wau": 2, "mau": 2},
        {"day": NEXT_DAY, "dau": 1, "wau": 2, "mau": 2},
    ]
    assert document["window"] == {"start": D.isoformat(),
                                  "end": (D + timedelta(days=2)).isoformat()}


def test_latency(url: str) -> None:
    document = run_json(url, "latency", *WINDOW)
    (endpoint,) = document["endpoints"]
    assert {k: endpoint[k] for k in ("service", "method", "route", "requests", "server_errors",
                                     "error_rate", "mean_latency_ms", "p50_latency_ms")} == {
        "service": "api", "method": "GET", "route": "/x", "requests": 2, "server_errors": 1,
        "error_rate": 0.5, "mean_latency_ms": 20.0,
        "p50_latency_ms": {"weighted_mean": 20.0, "max_hourly": 20.0},
    }
    assert [h["hour"] for h in document["hourly"]] == [at(10).isoformat()]
    assert run_json(url, "latency", *WINDOW, "--service", "nope")["endpoints"] == []


def test_tasks(url: str) -> None:
    document = run_json(url, "tasks", *WINDOW)
    assert (document["completed"], document["failed"], document["success_rate"],
            document["mean_duration_ms"]) == (1, 1, 0.5, 2000.0)
    assert [d["day"] for d in document["days"]] == [DAY]


def test_integrations(url: str) -> None:
    (github,) = run_json(url, "integrations", *WINDOW)["providers"]
    assert (github["provider"], github["used"], github["errors"], github["error_rate"],
            github["last_success_at"], github["last_failure_at"]) == (
        "github", 1, 1, 0.5, at(13).isoformat(), at(14).isoformat())


def test_auth(url: str) -> None:
    document = run_json(url, "auth", *WINDOW)
    assert (document["attempts"], document["failures"], document["failure_rate"]) == (2, 1, 0.5)
    assert document["breakdown"] == [{"event_type": "auth_login_attempt", "method": "password",
                                      "attempts": 2, "successes": 1, "failures": 1,
                                      "failure_rate": 0.5}]


def test_cocoons(url: str) -> None:
    document = run_json(url, "cocoons", *WINDOW)
    assert (document["connected_cocoons"], document["sessions"], document["connected_ms"]) == (
        1, 1, 3_600_000.0)
    assert [c["cocoon_id"] for c in document["cocoons"]] == [str(C1)]


def test_errors(url: str) -> None:
    document = run_json(url, "errors", *WINDOW)
    assert document["total"] == 4
    assert {(t["event_type"], t["error_kind"], t["count"]) for t in document["totals"]} == {
        ("api_request", "http_500", 1), ("task_failed", "task_failed", 1),
        ("integration_error", "github", 1), ("application_error", "KeyError", 1)}
    worker = run_json(url, "errors", *WINDOW, "--service", "worker")
    assert worker["total"] == 1


def test_entity(url: str) -> None:
    document = run_json(url, "entity", "user", str(UA), "--days", "5", "--limit", "2")
    assert document["entity"] == {"kind": "user", "id": str(UA)}
    assert document["total_events"] == 7
    assert document["most_frequent"] == "api_request"
    assert document["last_event"]["timestamp"] == at(30).isoformat()
    assert [e["event_type"] for e in document["recent"]] == ["api_request", "task_failed"]
    assert len(document["daily"]) == 5
    assert document["hours"]["peak_hour"] in range(24)
    cocoon = run_json(url, "entity", "cocoon", str(C1).upper())
    assert cocoon["total_events"] == 2


def test_leaderboard(url: str) -> None:
    document = run_json(url, "leaderboard", "user", *WINDOW, "--limit", "1")
    assert document["entries"] == [{"rank": 1, "entity": {"kind": "user", "id": str(UA)},
                                    "events": 6, "last_event_at": at(12).isoformat()}]


def test_live_once_and_watching(url: str) -> None:
    document = run_json(url, "live", "--minutes", "5", "--limit", "3")
    assert document["minutes"] == 5
    assert [e["timestamp"] for e in document["recent_events"]] == [
        at(30).isoformat(), at(15).isoformat(), at(14).isoformat()]
    code, out, err = run("live", "--watch", "--json", "--iterations", "3", "--interval", "0.1",
                         "--database-url", url)
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 3
    assert all(json.loads(line)["recent_events"][0]["event_type"] == "api_request"
               for line in lines)


def test_live_watch_refreshes_in_place_and_stops(url: str) -> None:
    code, out, err = run("live", "--watch", "--iterations", "2", "--interval", "0.1",
                         "--database-url", url)
    assert code == 0, err
    assert "active user(s)" in out and "most recent events" in out


# --- People's output ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (["dau", *WINDOW], ["active users", "DAU", "█"]),
        (["latency", *WINDOW, "--hourly"], ["API requests", "/x", "per hour"]),
        (["tasks", *WINDOW], ["tasks", "success rate 50.0%"]),
        (["integrations", *WINDOW], ["integrations", "github"]),
        (["auth", *WINDOW], ["auth", "2 attempts"]),
        (["cocoons", *WINDOW], ["1 connected cocoon(s)", "1h00m"]),
        (["errors", *WINDOW], ["4 error(s)", "KeyError"]),
        (["entity", "user", str(UA)], ["events by type", "api_request", "recent activity"]),
        (["leaderboard", "project", "--days", "3"], ["most active projects"]),
        (["live"], ["active user(s)", "most recent events"]),
    ],
    ids=lambda value: value[0] if isinstance(value, list) and value else None,
)
def test_human_output(url: str, command: list[str], expected: list[str]) -> None:
    code, out, err = run(*command, "--database-url", url)
    assert code == 0, err
    words = " ".join(out.split())  # Rich wraps to the terminal's width
    for text in expected:
        assert text in words


# --- Configuration, failures and exit codes ----------------------------------------------------


def test_url_comes_from_the_environment(url: str) -> None:
    code, out, _ = run("tasks", *WINDOW, "--json", env={"DATABASE_URL": url})
    assert code == 0 and json.loads(out)["completed"] == 1
    code, out, _ = run("tasks", *WINDOW, "--json", env={"PLATFORM_DATABASE_URL": url})
    assert code == 0 and json.loads(out)["completed"] == 1


def test_no_url_is_exit_2(url: str) -> None:
    code, out, err = run("dau")
    assert (code, out) == (2, "")
    assert "no database URL: pass --database-url or set DATABASE_URL" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["dau", "--since", "yesterday"], "--since 'yesterday' is not an ISO date or datetime"),
        (["dau", "--since", "2024-02-30"], "--since '2024-02-30' is not an ISO date"),
        (["dau", "--days", "3", "--since", "2024-01-01"],
         "give either --days or --since/--until, not both"),
        (["tasks", "--since", "2024-02-01", "--until", "2024-01-01"],
         "empty or inverted window: start 2024-02-01T00:00:00+00:00 must be before end"),
        (["latency", "--since", "2024-01-01T12:00", "--until", "2024-01-01T12:00Z"],
         "empty or inverted window"),
        (["entity", "user", "not-a-uuid"], "user id 'not-a-uuid' is not a UUID"),
        (["entity", "team", str(UA)], "Invalid value for"),
        (["dau", "--days", "0"], "Invalid value for '--days'"),
        (["live", "--minutes", "0"], "Invalid value for '--minutes'"),
    ],
)
def test_bad_input_is_exit_2(url: str, args: list[str], message: str) -> None:
    code, out, err = run(*args, "--database-url", url)
    assert code == 2
    assert message in " ".join(err.split()), err
    assert out == ""


def _password(url: str) -> str | None:
    return urlsplit(url).password


def test_password_never_appears(url: str, database_url: str) -> None:
    secret_url = urlsplit(url)._replace(
        netloc=f"postgres:{SECRET}@127.0.0.1:1").geturl()
    outputs = []
    # Cannot connect.
    code, out, err = run("dau", "--database-url", secret_url)
    assert code == 2 and "cannot connect to the database" in err
    outputs.append(out + err)
    # Not a PostgreSQL URL.
    code, out, err = run("dau", "--database-url", f"mysql://root:{SECRET}@localhost/db")
    assert code == 2 and "not a PostgreSQL URL: mysql://root:***@localhost/db" in err
    outputs.append(out + err)
    # Connected, but the schema is missing (a fresh, unmigrated database).
    code, out, err = run("tasks", "--database-url", database_url)
    assert code == 2
    assert "run `analytics-migrate all` against this database first" in " ".join(err.split())
    outputs.append(out + err)
    # Success, in both renderings, with the URL's real password.
    for extra in ([], ["--json"]):
        code, out, err = run("entity", "user", str(UA), *extra, "--database-url", url)
        assert code == 0
        outputs.append(out + err)
    secrets = {SECRET, *(p for p in (_password(url), _password(database_url)) if p)}
    for output in outputs:
        for secret in secrets:
            assert secret not in output


def test_console_script_is_declared() -> None:
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    target = pyproject["project"]["scripts"]["analytics-report"]
    module, _, function = target.partition(":")
    assert getattr(importlib.import_module(module), function).__module__ == module


def test_default_window_is_whole_utc_days_ending_today(url: str) -> None:
    tomorrow = day_start(datetime.now(UTC)) + timedelta(days=1)
    document = run_json(url, "dau")
    assert document["window"] == {"start": (tomorrow - timedelta(days=30)).isoformat(),
                                  "end": tomorrow.isoformat()}
    assert len(document["days"]) == 30
    assert run_json(url, "tasks", "--days", "1")["window"]["start"] == (
        tomorrow - timedelta(days=1)).isoformat()
    # An offset is honoured; a datetime without one is UTC.
    window = run_json(url, "errors", "--since", f"{DAY}T12:30:00+02:00",
                      "--until", f"{DAY}T12:00")["window"]
    assert window == {"start": at(10).isoformat(), "end": at(12).isoformat()}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["dau", "--days", "500000"], "--days"),
        (["dau", "--since", "0001-01-01"], "longer than 3660 days"),
        (["dau", "--until", "9999-12-31"], "out of range"),
        (["dau", "--since", "0001-01-02", "--until", "0001-01-09"], "years 1 to 9999"),
        (["live", "--minutes", "1500000000"], "--minutes"),
        (["entity", "user", str(UA), "--days", "3000000"], "--days"),
        (["leaderboard", "user", "--limit", "100000"], "--limit"),
        (["live", "--interval", "inf"], "--interval"),
    ],
)
def test_out_of_range_options_exit_2_with_a_message(
    args: list[str], message: str, url: str
) -> None:
    code, out, err = run(*args, "--database-url", url)
    assert code == 2
    assert message in err
    assert "Traceback" not in out + err


def test_rows_beyond_pythons_dates_do_not_break_status_or_reports(database_url: str) -> None:
    # Written by SQL (track() refuses such times), as another producer could.
    assert migrate_run("all", "--database-url", database_url)[0] == 0
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            'INSERT INTO analytics_events ("timestamp", event_type, service, user_id, data)'
            " VALUES ('10000-01-01 00:00:00+00', 'task_created', 'x', %(user)s, '{}'),"
            "        ('0100-01-01 00:00:00+00 BC', 'task_created', 'x', %(user)s, '{}')",
            {"user": UA},
        )
    code, out, err = migrate_run("status", "--json", "--database-url", database_url)
    assert code == 0, err
    assert json.loads(out)["up_to_date"] is True
    document = run_json(database_url, "entity", "user", str(UA))
    stamps = [event["timestamp"] for event in document["recent"]]
    assert stamps[0].startswith("9999-12-31T23:59:59.999999")
    assert stamps[-1].startswith("0001-01-01T00:00:00")
    assert run_json(database_url, "live")["recent_events"][0]["timestamp"].startswith("9999-12-31")


def migrate_run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(migrate_app, list(args))
    return result.exit_code, result.stdout, result.stderr
