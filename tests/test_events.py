"""The event models, their parsing, schema and ids. Pure unit tests: no database."""

from __future__ import annotations

import itertools
import json
import math
import os
import pickle
import time
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from analytics_core import events
from analytics_core.events import (
    EVENT_TYPES,
    AnalyticsEvent,
    ApiRequest,
    ApplicationError,
    AuthCodeVerified,
    AuthLoginAttempt,
    AuthSessionValidated,
    AuthTokenRefresh,
    BaseEvent,
    CocoonClaimed,
    CocoonConnected,
    CocoonDisconnected,
    CocoonRegistered,
    CocoonSetupTokenCreated,
    CocoonSetupTokenUsed,
    DatabaseQuery,
    EnrichedEvent,
    EventFamily,
    HttpMethod,
    IntegrationConnected,
    IntegrationDisconnected,
    IntegrationError,
    IntegrationUsed,
    InvalidEventError,
    LoginFailureReason,
    LoginMethod,
    OAuthFlowCompleted,
    OAuthFlowStarted,
    ProjectCreated,
    ProjectDeleted,
    ProjectUpdated,
    Severity,
    TaskCancelled,
    TaskCompleted,
    TaskCreated,
    TaskFailed,
    TaskStarted,
    UnknownEventTypeError,
    WebhookProcessed,
    WebhookReceived,
    event_json_schema,
    event_payload_json,
    family_of,
    new_event_id,
    new_event_ids,
    parse_event,
)

USER = uuid.UUID("0b8f3c1e-6a2d-4f57-9c1a-2d3e4f5a6b7c")
TASK = uuid.UUID("1c9f4d2f-7b3e-4a68-8d2b-3e4f5a6b7c8d")
PROJECT = uuid.UUID("2da05e3a-8c4f-4b79-9e3c-4f5a6b7c8d9e")
COCOON = uuid.UUID("3eb16f4b-9d5a-4c8a-af4d-5a6b7c8d9eaf")
OTHER = uuid.UUID("4fc27a5c-ae6b-4d9b-b05e-6b7c8d9eafb0")

# One fully populated instance per event type, optional fields included.
SAMPLES: dict[str, AnalyticsEvent] = {
    "auth_login_attempt": AuthLoginAttempt(
        user_id=None,
        method=LoginMethod.PASSWORD,
        success=False,
        failure_reason=LoginFailureReason.UNKNOWN_USER,
    ),
    "auth_code_verified": AuthCodeVerified(user_id=USER, success=True),
    "auth_token_refresh": AuthTokenRefresh(user_id=USER, success=False),
    "auth_session_validated": AuthSessionValidated(user_id=USER, success=True),
    "task_created": TaskCreated(
        task_id=TASK, user_id=USER, project_id=PROJECT, cocoon_id=COCOON, command="make test"
    ),
    "task_started": TaskStarted(task_id=TASK, user_id=USER, cocoon_id=COCOON),
    "task_completed": TaskCompleted(task_id=TASK, user_id=USER, duration_ms=1_234),
    "task_failed": TaskFailed(task_id=TASK, user_id=USER, error="exit status 2", duration_ms=17),
    "task_cancelled": TaskCancelled(task_id=TASK, user_id=USER, reason="user pressed stop"),
    "integration_connected": IntegrationConnected(
        user_id=USER, provider="github", integration_id=OTHER
    ),
    "integration_disconnected": IntegrationDisconnected(
        user_id=USER, provider="google-drive", integration_id=OTHER
    ),
    "integration_used": IntegrationUsed(
        user_id=USER, provider="github", integration_id=OTHER, action="list_repos", duration_ms=88
    ),
    "integration_error": IntegrationError(
        user_id=USER,
        provider="github",
        integration_id=OTHER,
        action="list_repos",
        error="401 Bad credentials",
    ),
    "oauth_flow_started": OAuthFlowStarted(user_id=USER, provider="slack"),
    "oauth_flow_completed": OAuthFlowCompleted(
        user_id=USER, provider="slack", success=False, error="access_denied"
    ),
    "webhook_received": WebhookReceived(
        provider="github", delivery_id="72d3162e-cc78-11e3-81ab-4c9367dc0958", webhook_event="push"
    ),
    "webhook_processed": WebhookProcessed(
        provider="github",
        delivery_id="72d3162e-cc78-11e3-81ab-4c9367dc0958",
        success=False,
        duration_ms=12,
        error="signature mismatch",
    ),
    "cocoon_registered": CocoonRegistered(cocoon_id=COCOON, user_id=USER, platform="linux-x86_64"),
    "cocoon_connected": CocoonConnected(cocoon_id=COCOON, user_id=USER, session_id=OTHER),
    "cocoon_disconnected": CocoonDisconnected(
        cocoon_id=COCOON,
        user_id=USER,
        session_id=OTHER,
        session_duration_ms=3_600_000,
        reason="laptop went to sleep",
    ),
    "cocoon_claimed": CocoonClaimed(cocoon_id=COCOON, user_id=USER),
    "cocoon_setup_token_created": CocoonSetupTokenCreated(user_id=USER, token_id=OTHER),
    "cocoon_setup_token_used": CocoonSetupTokenUsed(token_id=OTHER, cocoon_id=COCOON, user_id=USER),
    "project_created": ProjectCreated(project_id=PROJECT, user_id=USER),
    "project_updated": ProjectUpdated(
        project_id=PROJECT, user_id=USER, changed_fields=("name", "description")
    ),
    "project_deleted": ProjectDeleted(project_id=PROJECT, user_id=USER),
    "api_request": ApiRequest(
        method=HttpMethod.PATCH,
        route="/tasks/{id}",
        status_code=204,
        latency_ms=3.25,
        user_id=USER,
    ),
    "database_query": DatabaseQuery(
        operation="select_tasks", duration_ms=0.75, success=True, rows=42
    ),
    "application_error": ApplicationError(
        error_kind="KeyError",
        message="'project_id'",
        severity=Severity.ERROR,
        user_id=USER,
        route="/projects/{id}",
    ),
}

# Instances with every optional field left out, for the types that have optional fields.
MINIMAL: list[AnalyticsEvent] = [
    AuthLoginAttempt(user_id=USER, method=LoginMethod.PASSKEY, success=True),
    TaskCreated(task_id=TASK, user_id=USER, command="ls"),
    TaskStarted(task_id=TASK, user_id=USER),
    TaskFailed(task_id=TASK, user_id=USER, error="boom"),
    TaskCancelled(task_id=TASK, user_id=USER),
    IntegrationUsed(user_id=USER, provider="github", integration_id=OTHER, action="clone"),
    IntegrationError(user_id=None, provider="github", error="timeout"),
    OAuthFlowCompleted(user_id=USER, provider="slack", success=True),
    WebhookProcessed(provider="stripe", delivery_id="evt_1", success=True, duration_ms=0),
    CocoonRegistered(cocoon_id=COCOON),
    CocoonConnected(cocoon_id=COCOON, session_id=OTHER),
    CocoonDisconnected(cocoon_id=COCOON, session_id=OTHER),
    CocoonSetupTokenUsed(token_id=OTHER, cocoon_id=COCOON),
    ApiRequest(method=HttpMethod.GET, route="/health", status_code=200, latency_ms=0.0),
    DatabaseQuery(operation="ping", duration_ms=0.1, success=False),
    ApplicationError(error_kind="TimeoutError", message="upstream", severity=Severity.WARNING),
]

FAMILIES: dict[EventFamily, set[str]] = {
    EventFamily.AUTH: {
        "auth_login_attempt",
        "auth_code_verified",
        "auth_token_refresh",
        "auth_session_validated",
    },
    EventFamily.TASK: {
        "task_created",
        "task_started",
        "task_completed",
        "task_failed",
        "task_cancelled",
    },
    EventFamily.INTEGRATION: {
        "integration_connected",
        "integration_disconnected",
        "integration_used",
        "integration_error",
        "oauth_flow_started",
        "oauth_flow_completed",
    },
    EventFamily.WEBHOOK: {"webhook_received", "webhook_processed"},
    EventFamily.COCOON: {
        "cocoon_registered",
        "cocoon_connected",
        "cocoon_disconnected",
        "cocoon_claimed",
        "cocoon_setup_token_created",
        "cocoon_setup_token_used",
    },
    EventFamily.PROJECT: {"project_created", "project_updated", "project_deleted"},
    EventFamily.API: {"api_request", "database_query", "application_error"},
}

ALL_TYPES = set().union(*FAMILIES.values())


def _snake_case(class_name: str) -> str:
    # "OAuth" is one word in the event names: OAuthFlowStarted -> oauth_flow_started.
    name = class_name.replace("OAuth", "Oauth")
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")


def _parse_error(payload: Any) -> InvalidEventError:
    with pytest.raises(InvalidEventError) as caught:
        parse_event(payload)
    return caught.value


# --- The set of event types --------------------------------------------------------------------


def test_event_types_are_exactly_the_29_snake_case_class_names() -> None:
    assert len(ALL_TYPES) == 29
    assert set(EVENT_TYPES) == ALL_TYPES
    for event_type, cls in EVENT_TYPES.items():
        assert _snake_case(cls.__name__) == event_type
        assert cls.model_fields["event_type"].default == event_type
        assert cls.__doc__, f"{cls.__name__} needs a docstring saying when it is emitted"


def test_every_event_model_is_exported() -> None:
    for cls in EVENT_TYPES.values():
        assert cls.__name__ in events.__all__
        assert getattr(events, cls.__name__) is cls


def test_samples_cover_every_event_type() -> None:
    assert set(SAMPLES) == set(EVENT_TYPES)
    for event_type, event in SAMPLES.items():
        assert type(event) is EVENT_TYPES[event_type]
        assert event.event_type == event_type


# --- Round trips -------------------------------------------------------------------------------


@pytest.mark.parametrize("event", [*SAMPLES.values(), *MINIMAL], ids=lambda e: e.event_type)
def test_event_round_trips_through_parse_event(event: BaseEvent) -> None:
    from_str = parse_event(event.model_dump_json())
    from_bytes = parse_event(event.model_dump_json().encode())
    from_mapping = parse_event(event.model_dump(mode="json"))

    for parsed in (from_str, from_bytes, from_mapping):
        assert type(parsed) is type(event)
        assert parsed == event


def test_models_are_frozen_and_hashable() -> None:
    event = TaskCompleted(task_id=TASK, user_id=USER, duration_ms=1)
    with pytest.raises(ValidationError, match="Instance is frozen"):
        event.duration_ms = 5
    assert hash(event) == hash(parse_event(event.model_dump_json()))


# --- Families ----------------------------------------------------------------------------------


def test_family_of_covers_every_event_type() -> None:
    for family, event_types in FAMILIES.items():
        for event_type in event_types:
            assert family_of(event_type) is family
            assert family_of(SAMPLES[event_type]) is family


def test_family_of_unknown_event_type_names_the_valid_ones() -> None:
    with pytest.raises(UnknownEventTypeError) as caught:
        family_of("task_exploded")
    assert str(caught.value) == (
        "event_type: unknown event type 'task_exploded'; expected one of: " + ", ".join(EVENT_TYPES)
    )


# --- Invalid payloads --------------------------------------------------------------------------


def test_invalid_field_error_names_the_field_path() -> None:
    payload = {"event_type": "task_completed", "task_id": str(TASK), "user_id": str(USER)}
    error = _parse_error(json.dumps({**payload, "duration_ms": -1}))

    assert str(error) == (
        "invalid analytics event: "
        "task_completed.duration_ms: Input should be greater than or equal to 0"
    )
    assert error.details == (
        "task_completed.duration_ms: Input should be greater than or equal to 0",
    )
    assert isinstance(error, ValueError)
    assert isinstance(error.__cause__, ValidationError)


def test_every_problem_is_reported_with_its_path() -> None:
    error = _parse_error(
        {
            "event_type": "project_updated",
            "project_id": "not-a-uuid",
            "changed_fields": ["name", ""],
            "colour": "blue",
        }
    )
    # Pydantic words the bad-UUID reason differently across versions; the path is ours.
    assert error.details[0].startswith("project_updated.project_id: Input should be a valid UUID")
    assert error.details[1:] == (
        "project_updated.user_id: Field required",
        "project_updated.changed_fields.1: String should have at least 1 character",
        "project_updated.colour: Extra inputs are not permitted",
    )
    assert str(error) == "invalid analytics event: " + "; ".join(error.details)


def test_input_values_are_not_quoted_in_messages() -> None:
    error = _parse_error({"event_type": "task_created", "user_id": "jane@example.com"})
    assert "jane@example.com" not in str(error)


@pytest.mark.parametrize(
    ("payload", "detail"),
    [
        (
            {
                "event_type": "api_request",
                "method": "GET",
                "route": "/x",
                "status_code": 600,
                "latency_ms": 1,
            },
            "api_request.status_code: Input should be less than or equal to 599",
        ),
        (
            {
                "event_type": "api_request",
                "method": "BREW",
                "route": "/x",
                "status_code": 418,
                "latency_ms": 1,
            },
            "api_request.method: Input should be 'GET', 'POST', 'PUT', 'PATCH', "
            "'DELETE', 'HEAD' or 'OPTIONS'",
        ),
        (
            {
                "event_type": "api_request",
                "method": "GET",
                "route": "/x",
                "status_code": 200,
                "latency_ms": math.inf,
            },
            "api_request.latency_ms: Input should be a finite number",
        ),
        (
            {
                "event_type": "task_completed",
                "task_id": str(TASK),
                "user_id": str(USER),
                "duration_ms": 2**53,
            },
            "task_completed.duration_ms: Input should be less than or equal to 9007199254740991",
        ),
        (
            {"event_type": "oauth_flow_started", "user_id": str(USER), "provider": "GitHub"},
            "oauth_flow_started.provider: String should match pattern '^[a-z0-9][a-z0-9_.-]*$'",
        ),
        (
            {
                "event_type": "task_created",
                "task_id": str(TASK),
                "user_id": str(USER),
                "command": "x" * 10_001,
            },
            "task_created.command: String should have at most 10000 characters",
        ),
        (
            {
                "event_type": "project_updated",
                "project_id": str(PROJECT),
                "user_id": str(USER),
                "changed_fields": [],
            },
            "project_updated.changed_fields: Tuple should have at least 1 item after validation, "
            "not 0",
        ),
    ],
)
def test_constraint_violations_are_named(payload: dict[str, Any], detail: str) -> None:
    assert _parse_error(payload).details == (detail,)


def test_unknown_event_type_is_rejected_with_the_valid_names() -> None:
    error = _parse_error('{"event_type": "task_exploded", "task_id": "x"}')

    assert type(error) is UnknownEventTypeError
    assert str(error) == (
        "invalid analytics event: event_type: unknown event type 'task_exploded'; "
        "expected one of: " + ", ".join(EVENT_TYPES)
    )
    assert isinstance(error.__cause__, ValidationError)


def test_missing_event_type_is_rejected() -> None:
    error = _parse_error({"user_id": str(USER)})
    assert type(error) is InvalidEventError
    assert str(error) == (
        "invalid analytics event: "
        "event_type: missing; every event needs an event_type such as 'task_created'"
    )


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ("{not json", "invalid analytics event: payload: Invalid JSON: "),
        ("[1, 2]", "invalid analytics event: payload: Input should be an object"),
        ([1, 2], "payload: expected JSON text or a mapping, got list"),
    ],
)
def test_payload_that_is_not_an_object_is_rejected(payload: Any, message: str) -> None:
    # The JSON parser's own explanation (after "Invalid JSON: ") is its wording, not ours.
    assert str(_parse_error(payload)).startswith(message)


def test_nul_characters_are_accepted_and_left_to_the_writer() -> None:
    event = TaskFailed(task_id=TASK, user_id=USER, error="bad\x00byte")
    assert parse_event(event.model_dump_json()) == event
    assert '"error":"bad\\u0000byte"' in event_payload_json(event)


# --- The auth login rule -----------------------------------------------------------------------


def test_successful_login_has_no_failure_reason() -> None:
    event = AuthLoginAttempt(user_id=USER, method=LoginMethod.SSO, success=True)
    assert event.failure_reason is None

    error = _parse_error(
        {
            "event_type": "auth_login_attempt",
            "user_id": str(USER),
            "method": "sso",
            "success": True,
            "failure_reason": "rate_limited",
        }
    )
    assert error.details == (
        "auth_login_attempt.failure_reason: Value error, must be null when success is true",
    )


def test_failed_login_requires_a_failure_reason() -> None:
    event = AuthLoginAttempt(
        user_id=None,
        method=LoginMethod.PASSWORD,
        success=False,
        failure_reason=LoginFailureReason.INVALID_CREDENTIALS,
    )
    assert event.failure_reason is LoginFailureReason.INVALID_CREDENTIALS

    for payload in (
        {
            "event_type": "auth_login_attempt",
            "user_id": None,
            "method": "password",
            "success": False,
        },
        {
            "event_type": "auth_login_attempt",
            "user_id": None,
            "method": "password",
            "success": False,
            "failure_reason": None,
        },
    ):
        assert _parse_error(payload).details == (
            "auth_login_attempt.failure_reason: Value error, is required when success is false",
        )


def test_login_user_id_must_be_given_even_when_unknown() -> None:
    error = _parse_error({"event_type": "auth_login_attempt", "method": "oauth", "success": True})
    assert error.details == ("auth_login_attempt.user_id: Field required",)


# --- JSON schema -------------------------------------------------------------------------------


def test_json_schema_has_one_entry_per_event_type() -> None:
    schema = event_json_schema()

    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert len(schema["oneOf"]) == 29
    assert schema["discriminator"]["propertyName"] == "event_type"
    assert set(schema["discriminator"]["mapping"]) == set(EVENT_TYPES)
    for event_type, cls in EVENT_TYPES.items():
        ref = schema["discriminator"]["mapping"][event_type]
        assert ref == f"#/$defs/{cls.__name__}"
        definition = schema["$defs"][cls.__name__]
        assert definition["properties"]["event_type"]["const"] == event_type
        assert definition["required"][0] == "event_type"
        assert definition["additionalProperties"] is False
    json.dumps(schema)  # plain JSON, nothing Python-specific


def test_json_schema_is_a_fresh_copy() -> None:
    event_json_schema()["oneOf"].clear()
    assert len(event_json_schema()["oneOf"]) == 29


# --- The data document -------------------------------------------------------------------------


@pytest.mark.parametrize("event", [*SAMPLES.values(), *MINIMAL], ids=lambda e: e.event_type)
def test_payload_json_is_every_field_but_event_type(event: BaseEvent) -> None:
    document = json.loads(event_payload_json(event))

    expected = event.model_dump(mode="json")
    del expected["event_type"]
    assert document == expected
    assert list(document) == [name for name in type(event).model_fields if name != "event_type"]


def test_payload_json_writes_missing_optionals_as_null() -> None:
    event = TaskCreated(task_id=TASK, user_id=USER, command="ls")
    assert event_payload_json(event) == (
        f'{{"task_id":"{TASK}","user_id":"{USER}","project_id":null,"cocoon_id":null,'
        '"command":"ls"}'
    )


# --- Event ids ---------------------------------------------------------------------------------


def test_event_id_is_a_version_7_uuid_carrying_the_current_millisecond() -> None:
    before_ms = time.time_ns() // 1_000_000
    event_id = new_event_id()
    after_ms = time.time_ns() // 1_000_000

    assert event_id.version == 7
    assert event_id.variant == uuid.RFC_4122
    assert before_ms <= event_id.int >> 80 <= after_ms


def test_event_id_behaves_like_any_uuid() -> None:
    event_id = new_event_id()
    same = uuid.UUID(str(event_id))

    assert event_id == same
    assert hash(event_id) == hash(same)
    assert event_id.is_safe is uuid.SafeUUID.unknown
    assert pickle.loads(pickle.dumps(event_id)) == event_id


def test_event_ids_are_ordered_across_milliseconds() -> None:
    batches = []
    for _ in range(5):
        batches.append([new_event_id() for _ in range(50)])
        time.sleep(0.002)

    for earlier, later in itertools.pairwise(batches):
        assert max(earlier) < min(later)
        # PostgreSQL compares uuids bytewise, which is the order of their text form too.
        assert max(map(str, earlier)) < min(map(str, later))


def test_event_ids_are_unique() -> None:
    assert len({new_event_id() for _ in range(100_000)}) == 100_000


def test_event_ids_as_bytes_have_the_same_layout_and_are_unique() -> None:
    before_ms = time.time_ns() // 1_000_000
    raw = new_event_ids(100_000)
    after_ms = time.time_ns() // 1_000_000

    assert len(raw) == 100_000
    assert len(set(raw)) == 100_000
    for event_id in map(uuid.UUID, map(bytes.hex, raw[:1_000])):
        assert event_id.version == 7
        assert event_id.variant == uuid.RFC_4122
        assert before_ms <= event_id.int >> 80 <= after_ms


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_does_not_repeat_the_parents_ids() -> None:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: report one id and leave without running pytest's teardown
        os.write(write_end, new_event_id().bytes)
        os._exit(0)
    os.close(write_end)
    parent_id = new_event_id()
    with os.fdopen(read_end, "rb") as reader:
        child_id = uuid.UUID(bytes=reader.read())
    os.waitpid(pid, 0)

    random_bits = (1 << 74) - 1
    assert (child_id.int & random_bits) != (parent_id.int & random_bits)


# --- Enriched events ---------------------------------------------------------------------------


def test_enriched_event_rejects_naive_datetime() -> None:
    with pytest.raises(ValidationError) as caught:
        EnrichedEvent.of(SAMPLES["task_created"], "api", timestamp=datetime(2024, 5, 1, 12))
    assert caught.value.errors()[0]["loc"] == ("timestamp",)
    assert caught.value.errors()[0]["msg"] == (
        "Value error, timestamp is a naive datetime (2024-05-01T12:00:00): pass a "
        "timezone-aware one such as datetime.now(UTC)"
    )


def test_enriched_event_rejects_naive_timestamp_text() -> None:
    enriched = EnrichedEvent.of(SAMPLES["task_created"], "api")
    document = json.loads(enriched.model_dump_json())
    document["timestamp"] = "2024-05-01T12:00:00"

    with pytest.raises(ValidationError) as caught:
        EnrichedEvent.model_validate(document)
    assert caught.value.errors()[0]["msg"] == "Input should have timezone info"


def test_enriched_event_normalises_timestamp_to_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    enriched = EnrichedEvent.of(
        SAMPLES["task_created"], "api", timestamp=datetime(2024, 5, 1, 12, 30, tzinfo=plus_two)
    )
    assert enriched.timestamp == datetime(2024, 5, 1, 10, 30, tzinfo=UTC)
    assert enriched.timestamp.tzinfo is UTC

    from_text = EnrichedEvent.model_validate_json(
        enriched.model_dump_json().replace("2024-05-01T10:30:00Z", "2024-05-01T12:30:00+02:00")
    )
    assert from_text.timestamp.tzinfo is UTC
    assert from_text == enriched


def test_enriched_event_defaults_come_from_one_clock_reading() -> None:
    before = datetime.now(UTC)
    enriched = EnrichedEvent.of(SAMPLES["task_completed"], "worker")
    after = datetime.now(UTC)

    assert before <= enriched.timestamp <= after
    assert enriched.timestamp.tzinfo is UTC
    assert enriched.event_id.version == 7
    timestamp_ms = (enriched.timestamp - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(
        milliseconds=1
    )
    assert enriched.event_id.int >> 80 == timestamp_ms


def test_enriched_event_keeps_given_timestamp_and_id() -> None:
    at = datetime(2024, 5, 1, tzinfo=UTC)
    event_id = uuid.UUID("018f3a4b-0000-7000-8000-000000000001")
    enriched = EnrichedEvent.of(SAMPLES["project_created"], "api", at, event_id)

    assert (enriched.timestamp, enriched.event_id, enriched.service) == (at, event_id, "api")


def test_enriched_event_user_id_comes_from_the_event() -> None:
    assert EnrichedEvent.of(SAMPLES["task_created"], "api").user_id == USER
    assert EnrichedEvent.of(SAMPLES["webhook_received"], "api").user_id is None
    assert EnrichedEvent.of(SAMPLES["auth_login_attempt"], "api").user_id is None


@pytest.mark.parametrize("service", ["", "s" * 101])
def test_enriched_event_service_is_bounded(service: str) -> None:
    with pytest.raises(ValidationError) as caught:
        EnrichedEvent.of(SAMPLES["task_created"], service)
    assert caught.value.errors()[0]["loc"] == ("service",)


def test_enriched_event_round_trips_through_json() -> None:
    enriched = EnrichedEvent.of(SAMPLES["cocoon_disconnected"], "gateway")
    assert EnrichedEvent.model_validate_json(enriched.model_dump_json()) == enriched
