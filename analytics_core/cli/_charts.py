"""Small in-terminal charts: sparklines and bars out of unicode block characters."""

from __future__ import annotations

from collections.abc import Callable, Sequence

__all__ = ["bar", "sparkline"]

_LEVELS = "▁▂▃▄▅▆▇█"
_EIGHTHS = " ▏▎▍▌▋▊▉█"


def _squeeze(
    values: Sequence[float | None], width: int, combine: Callable[[list[float]], float]
) -> list[float | None]:
    """``values`` in at most ``width`` consecutive groups, each combined into one value."""
    if len(values) <= width:
        return list(values)
    groups: list[float | None] = []
    for index in range(width):
        lo, hi = index * len(values) // width, (index + 1) * len(values) // width
        known = [v for v in values[lo:hi] if v is not None]
        groups.append(combine(known) if known else None)
    return groups


def sparkline(
    values: Sequence[float | None],
    width: int = 60,
    combine: Callable[[list[float]], float] = max,
) -> str:
    """One character per value, ``▁`` for zero up to ``█`` for the largest; a space for None.

    Longer series are squeezed to ``width`` characters, combining neighbours with
    ``combine`` (``max`` by default, ``sum`` suits counts).
    """
    points = _squeeze(values, width, combine)
    top = max((v for v in points if v is not None), default=0.0)
    if top <= 0:
        return "".join(" " if v is None else _LEVELS[0] for v in points)
    return "".join(
        " " if v is None else _LEVELS[round(max(v, 0.0) / top * (len(_LEVELS) - 1))] for v in points
    )


def bar(value: float, maximum: float, width: int = 20) -> str:
    """A horizontal bar ``width`` cells long at ``maximum``, in eighths of a cell."""
    if maximum <= 0 or value <= 0:
        return ""
    eighths = round(min(value / maximum, 1.0) * width * 8)
    full, rest = divmod(eighths, 8)
    return "█" * full + (_EIGHTHS[rest] if rest else "")
