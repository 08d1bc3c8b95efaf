"""Error responses: one JSON shape for every refusal, ``{"error": "..."}`` plus details.

Handlers raise :class:`Problem`; the app turns it into the response. Messages say what to do
and never quote a request's values or a key.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

__all__ = ["Problem", "problem_response"]


class Problem(Exception):
    """An HTTP error to answer with: ``status``, a message, optional fields and headers."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
        **details: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})
        self.details = details


async def problem_response(request: Request, exc: Exception) -> Response:
    """The JSON response for a ``Problem`` (registered as the app's exception handler)."""
    assert isinstance(exc, Problem)
    return JSONResponse(
        {"error": exc.message, **exc.details}, status_code=exc.status, headers=exc.headers
    )
