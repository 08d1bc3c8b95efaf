"""The HTTP collector: events over HTTP, the read side as JSON, a live stream, a dashboard.

For producers that cannot import :class:`~analytics_core.AnalyticsClient` (browsers, mobile
apps, services in other languages). One ASGI app (Starlette, served by uvicorn) per process,
with one ``AnalyticsClient`` behind it. Needs the ``server`` extra::

    pip install 'analytics-core[server]'
    analytics-collector serve --keys-file keys.toml      # see analytics_core.cli.collector

>>> from analytics_core.collector import CollectorConfig, create_app, load_keys
>>> app = create_app(CollectorConfig(DATABASE_URL, load_keys("keys.toml")))  # doctest: +SKIP

One module per job: ``config`` (keys, limits), ``auth`` (who may do what), ``ingest`` (the
write endpoints), ``items`` (one item of a batch, validated), ``reads`` (the metrics as
JSON), ``readers`` (the read side's connections), ``windows`` (time windows from query
strings), ``live`` (the SSE stream), ``dashboard`` (the page and its files, in ``static/``),
``health`` (``/healthz``, ``/readyz``), ``prometheus`` (``/metrics``), ``access_log``,
``problems`` (error responses) and ``app`` (the factory and its lifespan).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from analytics_core.collector.config import (
    ApiKey,
    CollectorConfig,
    KeyFileError,
    KeyKind,
    KeyRing,
    hash_key,
    load_keys,
    new_key,
)

if TYPE_CHECKING:
    from analytics_core.collector.app import create_app

__all__ = [
    "ApiKey",
    "CollectorConfig",
    "KeyFileError",
    "KeyKind",
    "KeyRing",
    "create_app",
    "hash_key",
    "load_keys",
    "new_key",
]


def __getattr__(name: str) -> Any:
    # The app needs the server extra; the keys and the configuration do not, so that the
    # package imports (and `analytics-collector new-key` runs) without it.
    if name != "create_app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        import starlette  # noqa: F401, PLC0415
        import uvicorn  # noqa: F401, PLC0415
    except ImportError as error:
        raise ImportError(
            f"the HTTP collector needs the 'server' extra ({error.name} is missing): "
            "pip install 'analytics-core[server]'"
        ) from error
    from analytics_core.collector.app import create_app  # noqa: PLC0415

    return create_app
