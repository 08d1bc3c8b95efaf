"""Realistic sample traffic: for demos, load tests and benchmarks.

A small population of users with cocoons, projects and integrations produces sessions of
events from every family: logins, tasks that run on a cocoon and complete or fail, API
requests with long-tailed latency, webhooks, OAuth flows and the odd application error.
The same seed gives the same events.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from analytics_core import events as ev

__all__ = ["SampleEvent", "sample_events"]

_ROUTES = (
    (ev.HttpMethod.GET, "/tasks", 35.0),
    (ev.HttpMethod.POST, "/tasks", 80.0),
    (ev.HttpMethod.GET, "/tasks/{id}", 20.0),
    (ev.HttpMethod.GET, "/projects", 30.0),
    (ev.HttpMethod.PATCH, "/projects/{id}", 60.0),
    (ev.HttpMethod.POST, "/integrations/{provider}/connect", 150.0),
)
_PROVIDERS = ("github", "gitlab", "slack", "linear")
_PLATFORMS = ("macos", "linux", "windows")


@dataclass(frozen=True, slots=True)
class SampleEvent:
    """An event, when it happened, and the service that emitted it."""

    event: ev.AnalyticsEvent
    timestamp: datetime
    service: str


@dataclass(slots=True)
class _User:
    id: uuid.UUID
    cocoon: uuid.UUID
    project: uuid.UUID
    activity: float  # relative chance of being active on a given day


class _Tick(Protocol):
    """Advances a session's clock by a random gap (mean ``seconds``) and returns it."""

    def __call__(self, seconds: float = 1.0) -> datetime: ...


def _uuid(rng: random.Random) -> uuid.UUID:
    return uuid.UUID(int=rng.getrandbits(128), version=4)


def sample_events(
    count: int, start: datetime, end: datetime, *, users: int = 200, seed: int = 1
) -> Iterator[SampleEvent]:
    """Yield about ``count`` events with timestamps in [start, end), in time order per session.

    ``start`` and ``end`` must be timezone-aware. Raises ValueError for an empty range.
    """
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("start and end must be timezone-aware")
    if end <= start or count < 0 or users < 1:
        raise ValueError("need start < end, count >= 0 and users >= 1")
    rng = random.Random(seed)
    population = [
        _User(_uuid(rng), _uuid(rng), _uuid(rng), rng.paretovariate(1.5)) for _ in range(users)
    ]
    weights = [user.activity for user in population]
    span = (end - start).total_seconds()
    produced = 0
    while produced < count:
        user = rng.choices(population, weights)[0]
        at = start + timedelta(seconds=rng.uniform(0, span * 0.999))
        for sample in _session(rng, user, at):
            if produced >= count or sample.timestamp >= end:
                break
            produced += 1
            yield sample


def _session(rng: random.Random, user: _User, at: datetime) -> Iterator[SampleEvent]:
    """One visit of a user: a login, some API traffic, maybe a task, an integration, ..."""
    clock = at

    def tick(seconds: float = 1.0) -> datetime:
        nonlocal clock
        clock += timedelta(seconds=rng.expovariate(1 / seconds))
        return clock

    ok = rng.random() > 0.07
    login_method = rng.choice(list(ev.LoginMethod))
    if login_method is ev.LoginMethod.EMAIL_CODE:
        yield SampleEvent(ev.AuthCodeVerified(user_id=user.id, success=ok), clock, "auth")
    yield SampleEvent(
        ev.AuthLoginAttempt(
            user_id=user.id if ok or rng.random() < 0.5 else None,
            method=login_method,
            success=ok,
            failure_reason=None if ok else rng.choice(list(ev.LoginFailureReason)),
        ),
        clock,
        "auth",
    )
    if not ok:
        return
    yield SampleEvent(ev.AuthSessionValidated(user_id=user.id, success=True), tick(), "auth")
    for _ in range(rng.randint(3, 25)):
        method, route, typical = rng.choice(_ROUTES)
        status = rng.choices((200, 201, 404, 422, 500, 503), (80, 8, 5, 3, 2, 1))[0]
        latency = round(rng.lognormvariate(0, 0.6) * typical, 2)
        yield SampleEvent(
            ev.ApiRequest(
                method=method,
                route=route,
                status_code=status,
                latency_ms=latency,
                user_id=user.id,
            ),
            tick(5),
            "platform",
        )
        yield SampleEvent(
            ev.DatabaseQuery(
                operation=f"{method.value.lower()} {route}",
                duration_ms=round(latency * 0.3, 2),
                success=status != 503,
                rows=rng.randint(0, 50),
            ),
            clock,
            "platform",
        )
        if status >= 500:
            yield SampleEvent(
                ev.ApplicationError(
                    error_kind=rng.choice(("TimeoutError", "ConnectionResetError")),
                    message="upstream did not answer in time",
                    severity=ev.Severity.ERROR,
                    user_id=user.id,
                    route=route,
                ),
                clock,
                "platform",
            )
    if rng.random() < 0.6:
        yield from _task(rng, user, tick)
    if rng.random() < 0.25:
        yield from _integration(rng, user, tick)
    if rng.random() < 0.2:
        yield from _cocoon_session(rng, user, tick)
    if rng.random() < 0.05:
        yield from _project(rng, user, tick)
    if rng.random() < 0.1:
        yield from _webhook(rng, tick)
    if rng.random() < 0.3:
        yield SampleEvent(ev.AuthTokenRefresh(user_id=user.id, success=True), tick(60), "auth")


def _task(rng: random.Random, user: _User, tick: _Tick) -> Iterator[SampleEvent]:
    task = _uuid(rng)
    yield SampleEvent(
        ev.TaskCreated(
            task_id=task,
            user_id=user.id,
            project_id=user.project,
            cocoon_id=user.cocoon,
            command=rng.choice(("make test", "npm run build")),
        ),
        tick(),
        "platform",
    )
    yield SampleEvent(
        ev.TaskStarted(task_id=task, user_id=user.id, cocoon_id=user.cocoon), tick(2), "signaling"
    )
    duration = int(rng.lognormvariate(9, 1))
    outcome = rng.random()
    if outcome < 0.8:
        yield SampleEvent(
            ev.TaskCompleted(task_id=task, user_id=user.id, duration_ms=duration),
            tick(duration / 1000),
            "platform",
        )
    elif outcome < 0.93:
        yield SampleEvent(
            ev.TaskFailed(
                task_id=task, user_id=user.id, error="exit status 1", duration_ms=duration
            ),
            tick(duration / 1000),
            "platform",
        )
    else:
        yield SampleEvent(
            ev.TaskCancelled(task_id=task, user_id=user.id, reason="by user"), tick(30), "platform"
        )


def _integration(rng: random.Random, user: _User, tick: _Tick) -> Iterator[SampleEvent]:
    provider = rng.choice(_PROVIDERS)
    integration = _uuid(rng)
    yield SampleEvent(ev.OAuthFlowStarted(user_id=user.id, provider=provider), tick(), "platform")
    ok = rng.random() > 0.1
    yield SampleEvent(
        ev.OAuthFlowCompleted(
            user_id=user.id, provider=provider, success=ok, error=None if ok else "access_denied"
        ),
        tick(20),
        "platform",
    )
    if not ok:
        return
    yield SampleEvent(
        ev.IntegrationConnected(user_id=user.id, provider=provider, integration_id=integration),
        tick(),
        "platform",
    )
    for _ in range(rng.randint(1, 6)):
        if rng.random() < 0.08:
            yield SampleEvent(
                ev.IntegrationError(
                    user_id=user.id,
                    provider=provider,
                    integration_id=integration,
                    action="sync",
                    error="rate limited",
                ),
                tick(30),
                "platform",
            )
        else:
            yield SampleEvent(
                ev.IntegrationUsed(
                    user_id=user.id,
                    provider=provider,
                    integration_id=integration,
                    action="sync",
                    duration_ms=rng.randint(50, 3000),
                ),
                tick(30),
                "platform",
            )
    if rng.random() < 0.1:
        yield SampleEvent(
            ev.IntegrationDisconnected(
                user_id=user.id, provider=provider, integration_id=integration
            ),
            tick(60),
            "platform",
        )


def _cocoon_session(rng: random.Random, user: _User, tick: _Tick) -> Iterator[SampleEvent]:
    if rng.random() < 0.1:
        token = _uuid(rng)
        yield SampleEvent(
            ev.CocoonSetupTokenCreated(user_id=user.id, token_id=token), tick(), "platform"
        )
        yield SampleEvent(
            ev.CocoonRegistered(
                cocoon_id=user.cocoon, user_id=user.id, platform=rng.choice(_PLATFORMS)
            ),
            tick(),
            "signaling",
        )
        yield SampleEvent(
            ev.CocoonSetupTokenUsed(token_id=token, cocoon_id=user.cocoon, user_id=user.id),
            tick(),
            "platform",
        )
        yield SampleEvent(
            ev.CocoonClaimed(cocoon_id=user.cocoon, user_id=user.id), tick(), "platform"
        )
    session = _uuid(rng)
    yield SampleEvent(
        ev.CocoonConnected(cocoon_id=user.cocoon, user_id=user.id, session_id=session),
        tick(),
        "signaling",
    )
    length = int(rng.expovariate(1 / 1_800_000))
    yield SampleEvent(
        ev.CocoonDisconnected(
            cocoon_id=user.cocoon,
            user_id=user.id,
            session_id=session,
            session_duration_ms=length,
            reason="closed",
        ),
        tick(length / 1000),
        "signaling",
    )


def _project(rng: random.Random, user: _User, tick: _Tick) -> Iterator[SampleEvent]:
    project = _uuid(rng)
    yield SampleEvent(ev.ProjectCreated(project_id=project, user_id=user.id), tick(), "platform")
    yield SampleEvent(
        ev.ProjectUpdated(project_id=project, user_id=user.id, changed_fields=("name",)),
        tick(60),
        "platform",
    )
    if rng.random() < 0.2:
        yield SampleEvent(
            ev.ProjectDeleted(project_id=project, user_id=user.id), tick(600), "platform"
        )


def _webhook(rng: random.Random, tick: _Tick) -> Iterator[SampleEvent]:
    provider = rng.choice(_PROVIDERS)
    delivery = f"{provider}-{rng.getrandbits(48):012x}"
    yield SampleEvent(
        ev.WebhookReceived(provider=provider, delivery_id=delivery, webhook_event="push"),
        tick(),
        "webhooks",
    )
    ok = rng.random() > 0.05
    yield SampleEvent(
        ev.WebhookProcessed(
            provider=provider,
            delivery_id=delivery,
            success=ok,
            duration_ms=rng.randint(5, 900),
            error=None if ok else "bad signature",
        ),
        tick(),
        "webhooks",
    )
