"""Usage, errors and last success and failure per integration provider, read from
``INTEGRATION_HEALTH_DAILY``.

That aggregate (``analytics_integration_health_daily``) holds one row per UTC day and provider.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from analytics_core.queries._fetch import utc
from analytics_core.queries._ratio import ratio
from analytics_core.queries._results import Result
from analytics_core.queries._window import TimeWindow
from analytics_core.queries.metrics._buckets import read_buckets
from analytics_core.schema import INTEGRATION_HEALTH_DAILY

__all__ = ["IntegrationHealthReport", "ProviderHealth", "integration_health"]


@dataclass(frozen=True, slots=True)
class ProviderHealth(Result):
    """One integration provider over the window.

    - ``provider``: the payload's ``provider``; ``(unknown)`` for events without one.
    - ``connected``, ``disconnected``, ``used``, ``errors``: ``integration_connected``,
      ``integration_disconnected``, ``integration_used`` and ``integration_error`` events.
    - ``error_rate``: ``errors / (used + errors)``, the share of the provider's calls that
      failed, from 0 to 1; None when there were neither.
    - ``oauth_started``: ``oauth_flow_started`` events; ``oauth_succeeded``: completed flows
      whose ``success`` is ``true``; ``oauth_failed``: every other completed flow.
    - ``last_success_at``: the latest connection, use or successful OAuth flow in the window
      (UTC); None when there was none.
    - ``last_failure_at``: the latest error or failed OAuth flow in the window (UTC); None when
      there was none.
    """

    provider: str
    connected: int
    disconnected: int
    used: int
    errors: int
    error_rate: float | None
    oauth_started: int
    oauth_succeeded: int
    oauth_failed: int
    last_success_at: datetime | None
    last_failure_at: datetime | None


@dataclass(frozen=True, slots=True)
class IntegrationHealthReport(Result):
    """Integration health over a window.

    - ``window``: the whole UTC days answered for: the requested window widened to midnights.
    - ``providers``: one per provider with any integration or OAuth event, by provider name.
    """

    window: TimeWindow
    providers: tuple[ProviderHealth, ...]


def integration_health(
    conn: psycopg.Connection[Any], window: TimeWindow
) -> IntegrationHealthReport:
    """Usage, errors, error rate and last success and failure per integration provider.

    Reads ``analytics_integration_health_daily``; every figure is exact over the UTC days the
    window overlaps. Events without a provider appear under ``(unknown)``.
    """
    covered, rows = read_buckets(
        conn,
        INTEGRATION_HEALTH_DAILY,
        window,
        """
        SELECT provider,
               sum(connected_count)::bigint, sum(disconnected_count)::bigint,
               sum(used_count)::bigint, sum(error_count)::bigint,
               sum(oauth_started_count)::bigint, sum(oauth_succeeded_count)::bigint,
               sum(oauth_failed_count)::bigint,
               max(last_success_at), max(last_failure_at)
        FROM {view}
        WHERE {t} >= %(start)s AND {t} < %(end)s
        GROUP BY provider
        ORDER BY provider
        """,
    )
    return IntegrationHealthReport(
        covered,
        tuple(
            ProviderHealth(
                provider=provider,
                connected=connected,
                disconnected=disconnected,
                used=used,
                errors=errors,
                error_rate=ratio(errors, used + errors),
                oauth_started=oauth_started,
                oauth_succeeded=oauth_succeeded,
                oauth_failed=oauth_failed,
                last_success_at=utc(last_success),
                last_failure_at=utc(last_failure),
            )
            for (
                provider,
                connected,
                disconnected,
                used,
                errors,
                oauth_started,
                oauth_succeeded,
                oauth_failed,
                last_success,
                last_failure,
            ) in rows
        ),
    )
