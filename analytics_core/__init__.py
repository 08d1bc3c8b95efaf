"""analytics-core: typed product-analytics events, a non-blocking writer and their schema."""

from __future__ import annotations

__all__: list[str] = []
