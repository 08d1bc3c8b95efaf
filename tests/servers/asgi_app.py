"""A Starlette application for uvicorn: ``GET /track/<id>`` tracks one event and answers 200.

The client is closed by ``closing_lifespan``, as the README recommends for ASGI servers.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from analytics_core.asgi import closing_lifespan
from tests.servers.common import client, track_call


async def track(request: Request) -> PlainTextResponse:
    track_call(request.path_params["call_id"])
    return PlainTextResponse("tracked")


app = Starlette(routes=[Route("/track/{call_id}", track)], lifespan=closing_lifespan(client))
