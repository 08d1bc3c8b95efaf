"""Trackers for your application's own tests: no database, no threads, same surface.

Type your code against ``analytics_core.Tracker`` (or ``AnalyticsClient``) and hand it one of:

- ``NullClient``: accepts valid events and discards them (the same as
  ``AnalyticsClient(..., enabled=False)``).
- ``RecordingClient``: keeps every event in memory, enriched with its timestamp, service and a
  fresh ``event_id`` as the real client would, for assertions::

      from analytics_core.events import TaskCreated
      from analytics_core.testing import RecordingClient

      def test_submitting_a_task_is_tracked():
          analytics = RecordingClient()
          submit_task(analytics, command="build")
          (created,) = analytics.of_type(TaskCreated)
          assert created.command == "build"

Both validate exactly like ``AnalyticsClient.track()`` (``TypeError`` for a non-event,
``ValueError`` for a naive timestamp), count an accepted event as written at once, and drop
(return False, counted) after ``close()``. ``flush()`` returns True at once.
"""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime
from typing import TypeVar

from analytics_core.client import AnalyticsClient
from analytics_core.client._queue import LocalIntake, Stamp
from analytics_core.events import AnalyticsEvent, BaseEvent, EnrichedEvent

__all__ = ["NullClient", "RecordingClient"]

_E = TypeVar("_E", bound=BaseEvent)


class NullClient(AnalyticsClient):
    """A tracker that accepts events and discards them; ``stats.written`` counts them."""

    def __init__(self, *, service: str = "test") -> None:
        super().__init__("", service=service, enabled=False)


class RecordingClient(AnalyticsClient):
    """A tracker that keeps events in memory, in the order they were tracked. Thread-safe."""

    def __init__(self, *, service: str = "test") -> None:
        self._records: list[EnrichedEvent] = []
        self._records_lock = threading.Lock()
        super().__init__("", service=service, enabled=False, _intake=LocalIntake(keep=self._keep))

    @property
    def records(self) -> list[EnrichedEvent]:
        """Every kept event with its timestamp (UTC), service and event id; a copy."""
        with self._records_lock:
            return list(self._records)

    @property
    def events(self) -> list[AnalyticsEvent]:
        """Every kept event, as tracked; a copy."""
        with self._records_lock:
            return [record.event for record in self._records]

    def of_type(self, event_type: type[_E]) -> list[_E]:
        """The kept events that are instances of ``event_type``, e.g. ``of_type(TaskCreated)``."""
        with self._records_lock:
            return [r.event for r in self._records if isinstance(r.event, event_type)]

    def clear(self) -> None:
        """Forget the kept events (``stats`` keep counting from where they are)."""
        with self._records_lock:
            self._records.clear()

    def _keep(self, event: AnalyticsEvent, stamp: Stamp) -> None:
        timestamp = (
            stamp
            if isinstance(stamp, datetime)
            else datetime.fromtimestamp(stamp // 1_000 / 1e6, UTC)
        )
        # What the caller chose with AnalyticsClient.track_all (a CallerStamp), if anything.
        chosen_id = getattr(stamp, "event_id", None)
        record = EnrichedEvent.of(
            event,
            getattr(stamp, "service", self.service),
            timestamp=timestamp,
            event_id=None if chosen_id is None else uuid.UUID(bytes=chosen_id),
        )
        with self._records_lock:
            self._records.append(record)
