"""What every tracker shares: the ``Tracker`` protocol, its ``ClientStats``, ``OnError``.

``AnalyticsClient`` and the test doubles in ``analytics_core.testing`` implement the same
surface, so application code can accept a ``Tracker`` and tests can hand it a
``RecordingClient``. :func:`check_event` and :func:`check_timestamp` are the part of
``track()`` that does no I/O and is the same for all of them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Final, Protocol, Self, TypeAlias, runtime_checkable

from analytics_core._checks import aware_datetime
from analytics_core.events import EVENT_TYPES, AnalyticsEvent, BaseEvent

__all__ = [
    "EARLIEST_TIMESTAMP",
    "EVENT_CLASSES",
    "MAX_CLOCK_SKEW",
    "ClientStats",
    "OnError",
    "Tracker",
    "check_event",
    "check_timestamp",
    "in_range",
]

OnError: TypeAlias = Callable[[Sequence[AnalyticsEvent], BaseException], None]
"""``on_error(events, exception)``: called on the writer thread with events that cannot be
written (the database rejected them); must not block for long, call ``flush()`` or ``close()``."""

#: The concrete event models: ``type(event) in EVENT_CLASSES`` is the cheap check of track().
EVENT_CLASSES: Final = frozenset(EVENT_TYPES.values())
_EVENT_CLASS_TUPLE: Final = tuple(EVENT_TYPES.values())


@dataclass(frozen=True, slots=True)
class ClientStats:
    """A consistent snapshot of a tracker's counters, all taken at one instant.

    - ``accepted``: calls of ``track()`` with a valid event, including those then dropped.
    - ``written``: events in the table (for the test doubles: delivered to memory or nowhere).
      An event found already present after an in-doubt commit counts here, once.
    - ``dropped``: events given up without being written: the queue was full, the client was
      closed, or ``close()`` timed out with them still pending.
    - ``failed``: events the database rejected (bad data); each was passed to ``on_error``.
    - ``retried``: write attempts repeated after a transient error (connection lost, ...).
    - ``batches``: COPY statements that committed.
    - ``queue_depth``: events accepted but not yet written, failed or dropped (the bound of
      ``max_queue_size`` applies to this number, in-flight batches included).
    - ``last_error``: the error behind current trouble, as ``"SQLSTATE Class: message"``: a
      retried attempt's, or the latest batch's last rejected row's; None once a batch is
      written cleanly (and before any error).

    Always ``accepted == written + failed + dropped + queue_depth``; at rest
    ``queue_depth == 0``.
    """

    accepted: int
    written: int
    dropped: int
    failed: int
    retried: int
    batches: int
    queue_depth: int
    last_error: str | None


@runtime_checkable
class Tracker(Protocol):
    """The surface shared by ``AnalyticsClient``, ``NullClient`` and ``RecordingClient``.

    Type your application code against this so tests can substitute an in-memory tracker.
    """

    def track(self, event: AnalyticsEvent, *, timestamp: datetime | None = None) -> bool:
        """Queue ``event``; False when it was dropped. Never blocks, does no I/O."""
        ...

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait at most ``timeout`` s for everything tracked so far; True when it was."""
        ...

    def close(self, timeout: float = 5.0) -> bool:
        """Stop intake, drain within ``timeout`` s, release resources. Idempotent."""
        ...

    async def aflush(self, timeout: float = 5.0) -> bool:
        """``flush()`` without blocking the event loop."""
        ...

    async def aclose(self, timeout: float = 5.0) -> bool:
        """``close()`` without blocking the event loop."""
        ...

    @property
    def stats(self) -> ClientStats:
        """A consistent snapshot of the counters."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


def check_event(event: object) -> None:
    """Raise ``TypeError`` unless ``event`` is an analytics event model instance.

    The slow path of ``track()``'s check, for subclasses of the event models and for mistakes.
    """
    if isinstance(event, _EVENT_CLASS_TUPLE):
        return
    if isinstance(event, BaseEvent):
        raise TypeError(
            f"{type(event).__name__} is not one of the analytics event types; track() takes "
            "a model from analytics_core.events such as TaskCreated(...)"
        )
    raise TypeError(
        f"track() takes an analytics event model such as TaskCreated(...), not "
        f"{type(event).__name__}; build one from a raw payload with "
        "analytics_core.events.parse_event(payload)"
    )


#: The oldest time ``track()`` accepts. Late mobile clients send times days or weeks old;
#: a time before 2000 is a device whose clock was reset (to 1970, typically), not an event.
EARLIEST_TIMESTAMP: Final = datetime(2000, 1, 1, tzinfo=UTC)
#: How far ahead of this machine's clock a time may be: the producers' clock skew. Beyond
#: it, a time is a bug that would sort ahead of every real event (and from the year 10000
#: on, one PostgreSQL stores but Python cannot read back).
MAX_CLOCK_SKEW: Final = timedelta(days=1)


def check_timestamp(timestamp: object) -> datetime:
    """``timestamp`` if it is a timezone-aware datetime within the accepted range, from
    :data:`EARLIEST_TIMESTAMP` to :data:`MAX_CLOCK_SKEW` past now; else ``TypeError`` or
    ``ValueError``."""
    if not (isinstance(timestamp, datetime) and timestamp.utcoffset() is not None):
        timestamp = aware_datetime(timestamp, "timestamp")
    # The caller's zone is kept until the row is encoded: track() stays cheap.
    if not in_range(timestamp):
        raise ValueError(
            f"timestamp {timestamp.isoformat()} is outside the times analytics-core accepts: "
            f"from {EARLIEST_TIMESTAMP.isoformat()} to {MAX_CLOCK_SKEW} after now (clock skew); "
            "pass the time the event happened, or leave it out for now"
        )
    return timestamp


def in_range(timestamp: datetime) -> bool:
    """Whether an aware ``timestamp`` lies in the range ``track()`` accepts."""
    global _horizon  # noqa: PLW0603 - a cache: replacing it is atomic, and any value is safe
    # The clock is read only when a time passes the cached horizon, which lags the true
    # one: two comparisons are most of what track() pays for an explicit timestamp.
    if EARLIEST_TIMESTAMP <= timestamp <= _horizon:
        return True
    if timestamp < EARLIEST_TIMESTAMP:
        return False
    _horizon = datetime.now(UTC) + MAX_CLOCK_SKEW
    return timestamp <= _horizon


_horizon = datetime.now(UTC) + MAX_CLOCK_SKEW
