"""The collector's counters, and ``/metrics`` in the Prometheus text format (version 0.0.4).

Counted on the event loop's thread only, so plain integers suffice. The client's own
counters (``ClientStats``) are read when scraped, as one consistent snapshot.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from analytics_core.tracker import ClientStats

__all__ = ["Counts", "render"]


class Counts:
    """Requests by route, method and status; items by outcome."""

    def __init__(self) -> None:
        self.requests: Counter[tuple[str, str, int]] = Counter()
        #: accepted (queued), rejected (invalid), refused (503: the queue was full),
        #: forbidden (403: a family the key may not write).
        self.items: Counter[str] = Counter()

    def request(self, route: str, method: str, status: int) -> None:
        self.requests[route, method, status] += 1


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _family(name: str, kind: str, help_text: str) -> Iterator[str]:
    yield f"# HELP {name} {help_text}"
    yield f"# TYPE {name} {kind}"


def render(counts: Counts, stats: ClientStats, max_queue_size: int) -> str:
    """The exposition text of every metric."""
    lines: list[str] = []
    name = "analytics_collector_requests_total"
    lines += _family(name, "counter", "HTTP requests answered, by route, method and status.")
    for (route, method, status), value in sorted(counts.requests.items()):
        lines.append(
            f'{name}{{route="{_escape(route)}",method="{method}",status="{status}"}} {value}'
        )
    name = "analytics_collector_items_total"
    lines += _family(
        name, "counter", "Ingested items by outcome: accepted, rejected, refused, forbidden."
    )
    for outcome in ("accepted", "rejected", "refused", "forbidden"):
        lines.append(f'{name}{{outcome="{outcome}"}} {counts.items[outcome]}')
    for field, help_text in (
        ("accepted", "Events the client accepted into its queue."),
        ("written", "Events written to the database."),
        ("dropped", "Events the client gave up without writing them."),
        ("failed", "Events the database rejected."),
        ("retried", "Write attempts repeated after a transient error."),
        ("batches", "COPY statements committed."),
    ):
        name = f"analytics_client_{field}_total"
        lines += _family(name, "counter", help_text)
        lines.append(f"{name} {getattr(stats, field)}")
    lines += _family(
        "analytics_client_queue_depth", "gauge", "Events accepted and not yet resolved."
    )
    lines.append(f"analytics_client_queue_depth {stats.queue_depth}")
    lines += _family("analytics_client_queue_capacity", "gauge", "The client's max_queue_size.")
    lines.append(f"analytics_client_queue_capacity {max_queue_size}")
    lines += _family(
        "analytics_client_erroring", "gauge", "1 while the client reports a current error."
    )
    lines.append(f"analytics_client_erroring {int(stats.last_error is not None)}")
    return "\n".join(lines) + "\n"
