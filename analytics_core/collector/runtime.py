"""What one collector process holds while it runs: its client, read connections, counters.

Made by the app's lifespan at start and closed by it at shutdown; handlers reach it through
``runtime_of(request)``.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from analytics_core.client import AnalyticsClient
from analytics_core.collector.config import CollectorConfig
from analytics_core.collector.live_feed import LiveFeed
from analytics_core.collector.prometheus import Counts
from analytics_core.collector.readers import Readers

__all__ = ["Runtime", "runtime_of"]


@dataclass(slots=True)
class Runtime:
    """The process's one ``AnalyticsClient`` and what the handlers share."""

    config: CollectorConfig
    client: AnalyticsClient
    readers: Readers
    live: LiveFeed
    counts: Counts

    @classmethod
    def start(cls, config: CollectorConfig, counts: Counts) -> Runtime:
        """Open the client (it connects when its first batch is due) and the read side."""
        client = AnalyticsClient(
            config.database_url,
            # Every event carries its key's service; this one is only the client's name.
            service="analytics-collector",
            batch_size=config.batch_size,
            flush_interval=config.flush_interval,
            max_queue_size=config.max_queue_size,
            shutdown_timeout=config.shutdown_timeout,
        )
        readers = Readers(config.database_url, config.read_connections)
        return cls(config, client, readers, LiveFeed(config.live_interval), counts)

    def queue_room(self) -> int:
        """How many more events the client's queue takes now."""
        return self.config.max_queue_size - self.client.stats.queue_depth

    async def close(self) -> bool:
        """Drain the client within ``shutdown_timeout``; True when nothing was lost."""
        self.readers.close()
        return await self.client.aclose(self.config.shutdown_timeout)


def runtime_of(request: Request) -> Runtime:
    """The runtime of the app serving ``request``."""
    runtime: Runtime = request.app.state.runtime
    return runtime
