"""Deterministic synthetic events with answers that tests compute independently in Python."""

from __future__ import annotations

import json
import math
import random
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from analytics_core.events import (
    ApiRequest,
    ApplicationError,
    AuthLoginAttempt,
    BaseEvent,
    CocoonConnected,
    CocoonDisconnected,
    HttpMethod,
    IntegrationError,
    IntegrationUsed,
    LoginFailureReason,
    LoginMethod,
    OAuthFlowCompleted,
    OAuthFlowStarted,
    ProjectCreated,
    Severity,
    TaskCompleted,
    TaskCreated,
    TaskFailed,
    event_payload_json,
)
from devtools.seeding import EventRow, insert_statement


@dataclass
class Dataset:
    rows: list[EventRow] = field(default_factory=list)

    def add(self, event: BaseEvent, at: datetime, service: str = "platform") -> None:
        """``event`` as our client writes it."""
        self.rows.append(
            EventRow(
                at,
                str(event.event_type),  # type: ignore[attr-defined]
                json.loads(event_payload_json(event)),
                getattr(event, "user_id", None),
                service,
            )
        )

    def add_raw(
        self,
        at: datetime,
        event_type: str,
        data: dict[str, Any],
        user_id: uuid.UUID | None = None,
        service: str = "platform",
    ) -> None:
        """A row as a buggy or foreign producer might write it, bypassing the models."""
        self.rows.append(EventRow(at, event_type, data, user_id, service))

    def insert_sql(self) -> str:
        """One INSERT statement for every row; no parameters, so it runs on any engine."""
        return insert_statement(self.rows)


def percentile_cont(values: Sequence[float], fraction: float) -> float | None:
    """PostgreSQL's percentile_cont: linear interpolation between the closest ranks."""
    if not values:
        return None
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def day_of(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def hour_of(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def product_history(start: datetime, days: int, seed: int = 7) -> Dataset:
    """A few weeks of activity over every aggregate, plus malformed rows.

    Users, routes, latencies and outcomes are random but fixed by ``seed``.
    """
    rng = random.Random(seed)
    users = [uuid.UUID(int=rng.getrandbits(128), version=4) for _ in range(25)]
    cocoons = [uuid.UUID(int=rng.getrandbits(128), version=4) for _ in range(4)]
    routes = [("GET", "/tasks"), ("POST", "/tasks"), ("GET", "/projects/{id}")]
    data = Dataset()
    for day in range(days):
        base = start + timedelta(days=day)
        for user in rng.sample(users, rng.randint(1, 12)):
            for _ in range(rng.randint(1, 3)):
                at = base + timedelta(seconds=rng.randrange(86_400))
                task = uuid.uuid4()
                data.add(
                    TaskCreated(
                        task_id=task,
                        user_id=user,
                        command="make build",
                        cocoon_id=rng.choice(cocoons),
                    ),
                    at,
                )
                if rng.random() < 0.7:
                    data.add(
                        TaskCompleted(
                            task_id=task, user_id=user, duration_ms=rng.randrange(10, 90_000)
                        ),
                        at,
                    )
                else:
                    data.add(TaskFailed(task_id=task, user_id=user, error="exit 1"), at)
            success = rng.random() < 0.8
            data.add(
                AuthLoginAttempt(
                    user_id=user,
                    method=rng.choice(list(LoginMethod)),
                    success=success,
                    failure_reason=None if success else LoginFailureReason.INVALID_CREDENTIALS,
                ),
                base + timedelta(seconds=rng.randrange(86_400)),
                service="auth",
            )
        for hour in range(0, 24, 5):
            for method, route in routes:
                for _ in range(rng.randint(1, 30)):
                    at = base + timedelta(hours=hour, seconds=rng.randrange(3600))
                    data.add(
                        ApiRequest(
                            method=HttpMethod(method),
                            route=route,
                            status_code=rng.choice([200, 200, 200, 404, 500, 503]),
                            latency_ms=round(rng.lognormvariate(3, 1), 3),
                        ),
                        at,
                    )
        cocoon = rng.choice(cocoons)
        session = uuid.uuid4()
        data.add(CocoonConnected(cocoon_id=cocoon, session_id=session), base)
        data.add(
            CocoonDisconnected(cocoon_id=cocoon, session_id=session, session_duration_ms=3_600_000),
            base + timedelta(hours=1),
        )
        data.add(
            ApplicationError(
                error_kind="TimeoutError", message="upstream timed out", severity=Severity.ERROR
            ),
            base + timedelta(hours=rng.randrange(24)),
            service="worker",
        )
        data.add(ProjectCreated(project_id=uuid.uuid4(), user_id=rng.choice(users)), base)
        provider = rng.choice(["github", "slack"])
        integration = uuid.uuid4()
        oauth_ok = rng.random() < 0.8
        data.add(OAuthFlowStarted(user_id=users[0], provider=provider), base)
        data.add(
            OAuthFlowCompleted(user_id=users[0], provider=provider, success=oauth_ok),
            base + timedelta(minutes=1),
        )
        data.add(
            IntegrationUsed(
                user_id=users[0], provider=provider, action="sync", integration_id=integration
            ),
            base + timedelta(minutes=2),
        )
        if rng.random() < 0.3:
            data.add(
                IntegrationError(user_id=users[0], provider=provider, error="rate limited"),
                base + timedelta(minutes=3),
            )
    # Malformed values written by something other than our client: none may break a refresh.
    bad_day = start + timedelta(days=1, hours=3)
    data.add_raw(
        bad_day,
        "api_request",
        {"method": "GET", "route": "/tasks", "status_code": "5OO", "latency_ms": "fast"},
    )
    data.add_raw(
        bad_day,
        "api_request",
        {"method": "GET", "route": "/tasks", "status_code": 200, "latency_ms": 1e300},
    )
    data.add_raw(bad_day, "api_request", {"route": ["not", "text"], "latency_ms": -4})
    data.add_raw(bad_day, "task_completed", {"task_id": "x", "duration_ms": {"ms": 5}})
    data.add_raw(bad_day, "cocoon_connected", {"cocoon_id": "not-a-uuid"})
    data.add_raw(bad_day, "auth_login_attempt", {"method": 42, "success": "yes"})
    return data


def parsed(rows: Iterable[EventRow]) -> list[tuple[EventRow, dict[str, Any]]]:
    """Each row with its payload."""
    return [(row, row.data) for row in rows]
