"""What the server test applications share: the client made at import, one event per call."""

from __future__ import annotations

import os
import uuid

from analytics_core import AnalyticsClient
from analytics_core.events import TaskCreated
from tests.servers import DSN_VARIABLE

client = AnalyticsClient(
    os.environ[DSN_VARIABLE], service="server-test", batch_size=10_000, flush_interval=3600
)


def track_call(call_id: str) -> None:
    """One event whose ``command`` is ``call_id``, so the test can match rows to calls."""
    if not client.track(TaskCreated(task_id=uuid.uuid4(), user_id=uuid.uuid4(), command=call_id)):
        raise RuntimeError("the client dropped an event")
