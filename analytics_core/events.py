"""The typed product-analytics events: one Pydantic model per event type.

Every event is a frozen model whose ``event_type`` literal is the snake_case of its class name
(``TaskCreated`` -> ``"task_created"``). ``AnalyticsEvent`` is the discriminated union of all of
them and the single source of truth: ``EVENT_TYPES``, ``family_of`` and ``event_json_schema``
are derived from it.

The field names are a contract. The ``data`` JSONB column holds ``event_payload_json(event)``
and the SQL continuous aggregates read fields out of it by name (``data ->> 'duration_ms'``),
so renaming a field breaks the aggregates; add an optional field instead.

What the models deliberately do not check: strings may contain NUL (``"\\u0000"``), which
PostgreSQL's JSONB rejects. Rejecting it here would hide the case from the writer, which must
isolate such poison rows without losing the rest of their batch.
"""

from __future__ import annotations

import enum
import os
import random
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Annotated, Any, ClassVar, Literal, Self, TypeAlias, get_args

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import ErrorDetails

from analytics_core._checks import aware_datetime
from analytics_core.errors import AnalyticsCoreError

__all__ = [
    "EVENT_TYPES",
    "AnalyticsEvent",
    "ApiRequest",
    "ApplicationError",
    "AuthCodeVerified",
    "AuthLoginAttempt",
    "AuthSessionValidated",
    "AuthTokenRefresh",
    "BaseEvent",
    "CocoonClaimed",
    "CocoonConnected",
    "CocoonDisconnected",
    "CocoonRegistered",
    "CocoonSetupTokenCreated",
    "CocoonSetupTokenUsed",
    "DatabaseQuery",
    "EnrichedEvent",
    "EventFamily",
    "HttpMethod",
    "IntegrationConnected",
    "IntegrationDisconnected",
    "IntegrationError",
    "IntegrationUsed",
    "InvalidEventError",
    "LoginFailureReason",
    "LoginMethod",
    "OAuthFlowCompleted",
    "OAuthFlowStarted",
    "ProjectCreated",
    "ProjectDeleted",
    "ProjectUpdated",
    "Severity",
    "TaskCancelled",
    "TaskCompleted",
    "TaskCreated",
    "TaskFailed",
    "TaskStarted",
    "UnknownEventTypeError",
    "WebhookProcessed",
    "WebhookReceived",
    "event_json_schema",
    "event_payload_bytes",
    "event_payload_json",
    "family_of",
    "new_event_id",
    "new_event_id_bytes",
    "new_event_ids",
    "parse_event",
]


# --- Closed sets -------------------------------------------------------------------------------


class EventFamily(enum.StrEnum):
    """The product area an event type belongs to."""

    AUTH = "auth"
    TASK = "task"
    INTEGRATION = "integration"
    WEBHOOK = "webhook"
    COCOON = "cocoon"
    PROJECT = "project"
    API = "api"


class LoginMethod(enum.StrEnum):
    """How a user tried to log in."""

    PASSWORD = "password"
    EMAIL_CODE = "email_code"
    OAUTH = "oauth"
    SSO = "sso"
    API_KEY = "api_key"
    PASSKEY = "passkey"


class LoginFailureReason(enum.StrEnum):
    """Why a login attempt failed."""

    INVALID_CREDENTIALS = "invalid_credentials"
    UNKNOWN_USER = "unknown_user"
    ACCOUNT_LOCKED = "account_locked"
    RATE_LIMITED = "rate_limited"
    EXPIRED_CODE = "expired_code"
    OTHER = "other"


class HttpMethod(enum.StrEnum):
    """The HTTP method of an API request."""

    GET = "GET"
    POST = "POST"
    PUT = "PUT"
    PATCH = "PATCH"
    DELETE = "DELETE"
    HEAD = "HEAD"
    OPTIONS = "OPTIONS"


class Severity(enum.StrEnum):
    """How bad an application error is."""

    WARNING = "warning"
    ERROR = "error"
    CRITICAL = "critical"


# --- Field types shared by the models ----------------------------------------------------------

# Integer bounds stop at 2**53 - 1: beyond it a JSON number loses precision in JavaScript and
# other double-based parsers, and the aggregates' ``::bigint`` casts can never overflow.
_MAX_SAFE_INT = 2**53 - 1

_DurationMs = Annotated[
    int, Field(ge=0, le=_MAX_SAFE_INT, description="Elapsed wall-clock time in milliseconds.")
]
_LatencyMs = Annotated[
    float,
    Field(ge=0, allow_inf_nan=False, description="Elapsed time in (fractional) milliseconds."),
]
_Count = Annotated[int, Field(ge=0, le=_MAX_SAFE_INT)]
_StatusCode = Annotated[int, Field(ge=100, le=599, description="HTTP status code.")]
_Provider = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_.-]*$"),
    Field(description="The integration's name as a lowercase slug, e.g. 'github'."),
]
# A short identifier-like string: an action, a route template, an operation, a class name.
_Label = Annotated[str, StringConstraints(min_length=1, max_length=200)]
# A human-written explanation, such as a cancellation or disconnect reason.
_Reason = Annotated[str, StringConstraints(min_length=1, max_length=1_000)]
# Free text that can be long: a command, an error message.
_Text = Annotated[str, StringConstraints(min_length=1, max_length=10_000)]


def _require_event_type(schema: dict[str, Any], cls: type[Any]) -> None:
    # ``event_type`` has a default so Python callers need not repeat it, but on the wire it is
    # the discriminator and must be present; say so to producers in other languages.
    required = schema.setdefault("required", [])
    if "event_type" not in required:
        required.insert(0, "event_type")


# --- Base and families -------------------------------------------------------------------------


class BaseEvent(BaseModel):
    """Common base of every event model. Not an event itself: instantiate a subclass."""

    model_config = ConfigDict(frozen=True, extra="forbid", json_schema_extra=_require_event_type)

    family: ClassVar[EventFamily]
    event_type: str


class _AuthEvent(BaseEvent):
    family: ClassVar[EventFamily] = EventFamily.AUTH


class _TaskEvent(BaseEvent):
    family: ClassVar[EventFamily] = EventFamily.TASK


class _IntegrationEvent(BaseEvent):
    family: ClassVar[EventFamily] = EventFamily.INTEGRATION


class _WebhookEvent(BaseEvent):
    family: ClassVar[EventFamily] = EventFamily.WEBHOOK


class _CocoonEvent(BaseEvent):
    family: ClassVar[EventFamily] = EventFamily.COCOON


class _ProjectEvent(BaseEvent):
    family: ClassVar[EventFamily] = EventFamily.PROJECT


class _ApiEvent(BaseEvent):
    family: ClassVar[EventFamily] = EventFamily.API


# --- Auth --------------------------------------------------------------------------------------


class AuthLoginAttempt(_AuthEvent):
    """Emitted once per login attempt, successful or not.

    ``user_id`` is None when the account is unknown. A successful attempt has no
    ``failure_reason``; a failed one must have one.
    """

    event_type: Literal["auth_login_attempt"] = "auth_login_attempt"
    user_id: uuid.UUID | None
    method: LoginMethod
    success: bool
    # Validated even when defaulted, so that a failed attempt cannot omit its reason.
    failure_reason: LoginFailureReason | None = Field(default=None, validate_default=True)

    @field_validator("failure_reason")
    @classmethod
    def _reason_matches_outcome(
        cls, value: LoginFailureReason | None, info: ValidationInfo
    ) -> LoginFailureReason | None:
        success = info.data.get("success")
        if success is True and value is not None:
            raise ValueError("must be null when success is true")
        if success is False and value is None:
            raise ValueError("is required when success is false")
        return value


class AuthCodeVerified(_AuthEvent):
    """Emitted when a user submits a one-time (email) code, with whether it was accepted."""

    event_type: Literal["auth_code_verified"] = "auth_code_verified"
    user_id: uuid.UUID
    success: bool


class AuthTokenRefresh(_AuthEvent):
    """Emitted when a client exchanges a refresh token for a new access token."""

    event_type: Literal["auth_token_refresh"] = "auth_token_refresh"
    user_id: uuid.UUID
    success: bool


class AuthSessionValidated(_AuthEvent):
    """Emitted when an existing session is checked, with whether it was still valid."""

    event_type: Literal["auth_session_validated"] = "auth_session_validated"
    user_id: uuid.UUID
    success: bool


# --- Task --------------------------------------------------------------------------------------


class TaskCreated(_TaskEvent):
    """Emitted when a user submits a task (a command for a cocoon to run)."""

    event_type: Literal["task_created"] = "task_created"
    task_id: uuid.UUID
    user_id: uuid.UUID
    project_id: uuid.UUID | None = None
    cocoon_id: uuid.UUID | None = None
    command: _Text


class TaskStarted(_TaskEvent):
    """Emitted when a task begins running, on the cocoon that picked it up if known."""

    event_type: Literal["task_started"] = "task_started"
    task_id: uuid.UUID
    user_id: uuid.UUID
    cocoon_id: uuid.UUID | None = None


class TaskCompleted(_TaskEvent):
    """Emitted when a task finishes successfully; ``duration_ms`` is start to finish."""

    event_type: Literal["task_completed"] = "task_completed"
    task_id: uuid.UUID
    user_id: uuid.UUID
    duration_ms: _DurationMs


class TaskFailed(_TaskEvent):
    """Emitted when a task ends in an error; ``duration_ms`` is None if it never started."""

    event_type: Literal["task_failed"] = "task_failed"
    task_id: uuid.UUID
    user_id: uuid.UUID
    error: _Text
    duration_ms: _DurationMs | None = None


class TaskCancelled(_TaskEvent):
    """Emitted when a task is cancelled before it finished, by the user or the system."""

    event_type: Literal["task_cancelled"] = "task_cancelled"
    task_id: uuid.UUID
    user_id: uuid.UUID
    reason: _Reason | None = None


# --- Integration -------------------------------------------------------------------------------


class IntegrationConnected(_IntegrationEvent):
    """Emitted when a user connects a third-party integration to their account."""

    event_type: Literal["integration_connected"] = "integration_connected"
    user_id: uuid.UUID
    provider: _Provider
    integration_id: uuid.UUID


class IntegrationDisconnected(_IntegrationEvent):
    """Emitted when a user (or an expired grant) removes an integration."""

    event_type: Literal["integration_disconnected"] = "integration_disconnected"
    user_id: uuid.UUID
    provider: _Provider
    integration_id: uuid.UUID


class IntegrationUsed(_IntegrationEvent):
    """Emitted when the product calls an integration for a user, e.g. ``action="list_repos"``."""

    event_type: Literal["integration_used"] = "integration_used"
    user_id: uuid.UUID
    provider: _Provider
    integration_id: uuid.UUID
    action: _Label
    duration_ms: _DurationMs | None = None


class IntegrationError(_IntegrationEvent):
    """Emitted when a call to or from an integration fails; ids are None when not yet known."""

    event_type: Literal["integration_error"] = "integration_error"
    user_id: uuid.UUID | None
    provider: _Provider
    integration_id: uuid.UUID | None = None
    action: _Label | None = None
    error: _Text


class OAuthFlowStarted(_IntegrationEvent):
    """Emitted when a user is redirected to a provider to authorise an integration."""

    event_type: Literal["oauth_flow_started"] = "oauth_flow_started"
    user_id: uuid.UUID
    provider: _Provider


class OAuthFlowCompleted(_IntegrationEvent):
    """Emitted when the provider redirects back, with whether authorisation succeeded."""

    event_type: Literal["oauth_flow_completed"] = "oauth_flow_completed"
    user_id: uuid.UUID
    provider: _Provider
    success: bool
    error: _Text | None = None


# --- Webhook -----------------------------------------------------------------------------------


class WebhookReceived(_WebhookEvent):
    """Emitted when a provider's webhook delivery arrives, before it is processed."""

    event_type: Literal["webhook_received"] = "webhook_received"
    provider: _Provider
    delivery_id: _Label
    webhook_event: _Label = Field(description="The provider's event name, e.g. 'push'.")


class WebhookProcessed(_WebhookEvent):
    """Emitted when processing of a webhook delivery ends, successfully or not."""

    event_type: Literal["webhook_processed"] = "webhook_processed"
    provider: _Provider
    delivery_id: _Label
    success: bool
    duration_ms: _DurationMs
    error: _Text | None = None


# --- Cocoon (a user's device or agent) ---------------------------------------------------------


class CocoonRegistered(_CocoonEvent):
    """Emitted when a new cocoon registers itself, before any user has claimed it."""

    event_type: Literal["cocoon_registered"] = "cocoon_registered"
    cocoon_id: uuid.UUID
    user_id: uuid.UUID | None = None
    platform: _Label | None = Field(default=None, description="e.g. 'linux-x86_64'.")


class CocoonConnected(_CocoonEvent):
    """Emitted when a cocoon opens a session to the backend."""

    event_type: Literal["cocoon_connected"] = "cocoon_connected"
    cocoon_id: uuid.UUID
    user_id: uuid.UUID | None = None
    session_id: uuid.UUID


class CocoonDisconnected(_CocoonEvent):
    """Emitted when a cocoon's session ends; ``session_duration_ms`` is None if unknown."""

    event_type: Literal["cocoon_disconnected"] = "cocoon_disconnected"
    cocoon_id: uuid.UUID
    user_id: uuid.UUID | None = None
    session_id: uuid.UUID
    session_duration_ms: _DurationMs | None = None
    reason: _Reason | None = None


class CocoonClaimed(_CocoonEvent):
    """Emitted when a user takes ownership of a registered cocoon."""

    event_type: Literal["cocoon_claimed"] = "cocoon_claimed"
    cocoon_id: uuid.UUID
    user_id: uuid.UUID


class CocoonSetupTokenCreated(_CocoonEvent):
    """Emitted when a user creates a one-time token to set up a new cocoon."""

    event_type: Literal["cocoon_setup_token_created"] = "cocoon_setup_token_created"
    user_id: uuid.UUID
    token_id: uuid.UUID


class CocoonSetupTokenUsed(_CocoonEvent):
    """Emitted when a cocoon redeems a setup token."""

    event_type: Literal["cocoon_setup_token_used"] = "cocoon_setup_token_used"
    token_id: uuid.UUID
    cocoon_id: uuid.UUID
    user_id: uuid.UUID | None = None


# --- Project -----------------------------------------------------------------------------------


class ProjectCreated(_ProjectEvent):
    """Emitted when a user creates a project."""

    event_type: Literal["project_created"] = "project_created"
    project_id: uuid.UUID
    user_id: uuid.UUID


class ProjectUpdated(_ProjectEvent):
    """Emitted when a user changes a project; ``changed_fields`` names what changed."""

    event_type: Literal["project_updated"] = "project_updated"
    project_id: uuid.UUID
    user_id: uuid.UUID
    changed_fields: tuple[_Label, ...] = Field(min_length=1, max_length=100)


class ProjectDeleted(_ProjectEvent):
    """Emitted when a user deletes a project."""

    event_type: Literal["project_deleted"] = "project_deleted"
    project_id: uuid.UUID
    user_id: uuid.UUID


# --- API and system ----------------------------------------------------------------------------


class ApiRequest(_ApiEvent):
    """Emitted once per HTTP request served, after the response status is known."""

    event_type: Literal["api_request"] = "api_request"
    method: HttpMethod
    route: _Label = Field(description="The route template, e.g. '/tasks/{id}', not the raw path.")
    status_code: _StatusCode
    latency_ms: _LatencyMs
    user_id: uuid.UUID | None = None


class DatabaseQuery(_ApiEvent):
    """Emitted for a timed database operation; ``rows`` is None when not applicable."""

    event_type: Literal["database_query"] = "database_query"
    operation: _Label
    duration_ms: _LatencyMs
    success: bool
    rows: _Count | None = None


class ApplicationError(_ApiEvent):
    """Emitted when a service catches or logs an unexpected error."""

    event_type: Literal["application_error"] = "application_error"
    error_kind: _Label = Field(description="A stable kind, e.g. the exception class name.")
    message: _Text
    severity: Severity
    user_id: uuid.UUID | None = None
    route: _Label | None = None


# --- The union and what is derived from it -----------------------------------------------------

AnalyticsEvent: TypeAlias = Annotated[
    AuthLoginAttempt
    | AuthCodeVerified
    | AuthTokenRefresh
    | AuthSessionValidated
    | TaskCreated
    | TaskStarted
    | TaskCompleted
    | TaskFailed
    | TaskCancelled
    | IntegrationConnected
    | IntegrationDisconnected
    | IntegrationUsed
    | IntegrationError
    | OAuthFlowStarted
    | OAuthFlowCompleted
    | WebhookReceived
    | WebhookProcessed
    | CocoonRegistered
    | CocoonConnected
    | CocoonDisconnected
    | CocoonClaimed
    | CocoonSetupTokenCreated
    | CocoonSetupTokenUsed
    | ProjectCreated
    | ProjectUpdated
    | ProjectDeleted
    | ApiRequest
    | DatabaseQuery
    | ApplicationError,
    Field(discriminator="event_type"),
]
"""Any analytics event; ``event_type`` selects the model."""


def _event_types() -> Mapping[str, type[BaseEvent]]:
    (union, *_) = get_args(AnalyticsEvent)
    table: dict[str, type[BaseEvent]] = {}
    for cls in get_args(union):
        (tag,) = get_args(cls.model_fields["event_type"].annotation)
        table[tag] = cls
    return MappingProxyType(table)


EVENT_TYPES: Mapping[str, type[BaseEvent]] = _event_types()
"""Every event type name mapped to its model class, in family order. Read-only."""

_EVENT_ADAPTER: TypeAdapter[AnalyticsEvent] = TypeAdapter(AnalyticsEvent)


class InvalidEventError(AnalyticsCoreError, ValueError):
    """A payload or event type is not a valid analytics event.

    ``str(error)`` names every offending field by path (``task_completed.duration_ms: ...``);
    ``details`` holds the same lines one per problem. When raised by ``parse_event`` the
    Pydantic ``ValidationError`` is the ``__cause__``. Input values are never quoted, since
    payloads may carry personal data, except an unknown event type name.
    """

    def __init__(self, message: str, details: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.details = details


class UnknownEventTypeError(InvalidEventError):
    """The ``event_type`` names no known event; see ``EVENT_TYPES`` for the valid names."""


def _unknown_type_detail(event_type: str) -> str:
    shown = event_type if len(event_type) <= 64 else event_type[:64] + "..."
    return f"event_type: unknown event type {shown!r}; expected one of: {', '.join(EVENT_TYPES)}"


def _describe(error: ErrorDetails) -> str:
    kind = error["type"]
    if kind == "union_tag_invalid":
        return _unknown_type_detail(str(error.get("ctx", {}).get("tag", "")))
    if kind == "union_tag_not_found":
        return "event_type: missing; every event needs an event_type such as 'task_created'"
    path = ".".join(str(part) for part in error["loc"]) or "payload"
    return f"{path}: {error['msg']}"


_MAX_DETAILS_IN_MESSAGE = 10


def parse_event(payload: bytes | str | Mapping[str, Any]) -> AnalyticsEvent:
    """Validate an untrusted payload (JSON text or an already-decoded mapping) into an event.

    Raises ``UnknownEventTypeError`` when ``event_type`` names no known event and
    ``InvalidEventError`` for any other problem, including malformed JSON.
    """
    try:
        if isinstance(payload, str | bytes):
            return _EVENT_ADAPTER.validate_json(payload)
        if not isinstance(payload, Mapping):
            raise InvalidEventError(
                f"payload: expected JSON text or a mapping, got {type(payload).__name__}"
            )
        return _EVENT_ADAPTER.validate_python(
            payload if isinstance(payload, dict) else dict(payload)
        )
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        details = tuple(_describe(error) for error in errors)
        shown = "; ".join(details[:_MAX_DETAILS_IN_MESSAGE])
        if len(details) > _MAX_DETAILS_IN_MESSAGE:
            shown += f"; and {len(details) - _MAX_DETAILS_IN_MESSAGE} more"
        error_class = (
            UnknownEventTypeError
            if any(error["type"] == "union_tag_invalid" for error in errors)
            else InvalidEventError
        )
        raise error_class(f"invalid analytics event: {shown}", details) from exc


def family_of(event: BaseEvent | str) -> EventFamily:
    """The family of an event or of an event type name.

    Raises ``UnknownEventTypeError`` for a name that is not in ``EVENT_TYPES``.
    """
    if isinstance(event, str):
        cls = EVENT_TYPES.get(event)
        if cls is None:
            detail = _unknown_type_detail(event)
            raise UnknownEventTypeError(detail, (detail,))
        return cls.family
    return event.family


def event_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of ``AnalyticsEvent``, for producers in other languages.

    A ``oneOf`` over every event model with an OpenAPI-style ``discriminator`` mapping on
    ``event_type``. Returns a fresh dict on every call.
    """
    schema = _EVENT_ADAPTER.json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "AnalyticsEvent",
        **schema,
    }


# A set because that is what the serializer accepts; never mutated.
_NOT_IN_PAYLOAD: set[str] = {"event_type"}


def event_payload_json(event: BaseEvent) -> str:
    """The JSON document stored in the ``data`` column for ``event``.

    Every field except ``event_type`` (it has its own column). Optional fields that are None
    are written as ``null`` rather than left out, so all documents of one event type have the
    same keys and a reader of the table sees the whole shape; aggregates get SQL NULL from
    ``data ->> 'field'`` either way. Strings are not checked for NUL, which JSONB rejects.
    """
    return event_payload_bytes(event).decode()


def event_payload_bytes(event: BaseEvent) -> bytes:
    """``event_payload_json(event)`` encoded as UTF-8, without building the ``str`` between."""
    return event.__pydantic_serializer__.to_json(event, exclude=_NOT_IN_PAYLOAD)


# --- Event ids ---------------------------------------------------------------------------------

# A per-process generator seeded from the OS: os.urandom per id costs a system call, which
# the hot path of ``track()`` cannot afford. A forked child reseeds (the same object, so the
# bound method below stays valid) so that parent and child never produce the same sequence.
_rng = random.Random(os.urandom(32))
os.register_at_fork(after_in_child=lambda: _rng.seed(os.urandom(32)))

# UUIDv7 (RFC 9562): 48-bit unix ms | version 0b0111 | 12 random bits | variant 0b10 | 62 random.
_RANDOM_MASK = ~((0xF << 76) | (0x3 << 62)) & ((1 << 80) - 1)
_VERSION_AND_VARIANT = (0x7 << 76) | (0x2 << 62)

# Bound once: attribute lookups are a measurable share of a ~0.5 us call.
_getrandbits = _rng.getrandbits
_time_ns = time.time_ns
_new_object = object.__new__
_set_slot = object.__setattr__
_UUID = uuid.UUID
_SAFE_UNKNOWN = uuid.SafeUUID.unknown


def _event_id_at(unix_ms: int) -> uuid.UUID:
    # uuid.UUID(int=...) re-checks its arguments and costs more than everything else here;
    # this fills the same two slots it would, as CPython 3.14's own uuid7() does.
    new_id: uuid.UUID = _new_object(_UUID)
    _set_slot(
        new_id, "int", (unix_ms << 80) | (_getrandbits(80) & _RANDOM_MASK) | _VERSION_AND_VARIANT
    )
    _set_slot(new_id, "is_safe", _SAFE_UNKNOWN)
    return new_id


def new_event_ids(count: int) -> list[bytes]:
    """``count`` new event ids as 16 bytes each (``uuid.UUID.bytes``), like ``new_event_id``.

    All share one clock reading. For the writer, which sends ids to the database as raw
    bytes: no ``uuid.UUID`` object is built (that is most of the cost of ``new_event_id``).
    """
    stamped = ((_time_ns() // 1_000_000) << 80) | _VERSION_AND_VARIANT
    return [(stamped | (_getrandbits(80) & _RANDOM_MASK)).to_bytes(16) for _ in range(count)]


def new_event_id_bytes() -> bytes:
    """One new event id as its 16 bytes (``uuid.UUID.bytes``), like ``new_event_id``.

    For the client, which encodes each row as the event is tracked: no ``uuid.UUID`` object
    and no list, so it costs a few hundred nanoseconds rather than a microsecond.
    """
    return (
        ((_time_ns() // 1_000_000) << 80) | (_getrandbits(80) & _RANDOM_MASK) | _VERSION_AND_VARIANT
    ).to_bytes(16)


def new_event_id() -> uuid.UUID:
    """A new time-ordered event id (UUIDv7 layout: unix milliseconds, then 74 random bits).

    Ids from later milliseconds sort after earlier ones, so inserts land at the right edge of
    the ``event_id`` index; within one millisecond their order is random. Follows the wall
    clock, so a clock stepped backwards yields ids that sort earlier. Non-blocking, thread- and
    fork-safe; not for secrets.
    """
    return _event_id_at(_time_ns() // 1_000_000)


# --- Enriched event ----------------------------------------------------------------------------


class EnrichedEvent(BaseModel):
    """An event with what the writer adds: when, which service, and a unique id.

    One ``EnrichedEvent`` is one row of ``analytics_events``. ``timestamp`` must be
    timezone-aware and is stored converted to UTC.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    event: AnalyticsEvent
    timestamp: AwareDatetime
    service: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    event_id: uuid.UUID

    @field_validator("timestamp", mode="before")
    @classmethod
    def _reject_naive(cls, value: Any) -> Any:
        return aware_datetime(value, "timestamp") if isinstance(value, datetime) else value

    @field_validator("timestamp")
    @classmethod
    def _to_utc(cls, value: datetime) -> datetime:
        return aware_datetime(value, "timestamp")

    # A property rather than a computed field: a computed field would be serialised, and the
    # serialised form would then fail to validate back under extra="forbid".
    @property
    def user_id(self) -> uuid.UUID | None:
        """The event's ``user_id`` if its model has one, else None (the ``user_id`` column)."""
        user_id: uuid.UUID | None = getattr(self.event, "user_id", None)
        return user_id

    @classmethod
    def of(
        cls,
        event: AnalyticsEvent,
        service: str,
        timestamp: datetime | None = None,
        event_id: uuid.UUID | None = None,
    ) -> Self:
        """Enrich ``event``, defaulting ``timestamp`` to now and ``event_id`` to a new id.

        When both are defaulted they come from one clock reading, so the id's embedded
        millisecond equals the timestamp's. Raises ``pydantic.ValidationError`` (a
        ``ValueError``) for a naive ``timestamp`` or an empty or over-long ``service``.
        """
        if timestamp is None or event_id is None:
            now_us = _time_ns() // 1_000
            if timestamp is None:
                # Exact until 2242 (2**33 s): the float is within half a microsecond of now_us
                # and fromtimestamp rounds to the nearest microsecond.
                timestamp = datetime.fromtimestamp(now_us / 1e6, UTC)
            if event_id is None:
                event_id = _event_id_at(now_us // 1_000)
        return cls(event=event, timestamp=timestamp, service=service, event_id=event_id)
