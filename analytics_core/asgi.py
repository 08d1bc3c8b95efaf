"""Close an ``AnalyticsClient`` when an ASGI application shuts down (Starlette, FastAPI, ...).

ASGI servers end their workers in ways that skip ``atexit``: uvicorn, after its graceful
shutdown on SIGTERM, restores the default handler and raises the signal again, so the process
dies by it and the exit hook that would close the client never runs. The ASGI lifespan's
shutdown is the one moment every such server gives the application: requests are done, the
process is still alive. ``closing_lifespan`` closes the client there::

    client = AnalyticsClient(DATABASE_URL, service="api")
    app = Starlette(routes=routes, lifespan=closing_lifespan(client))

An application with a lifespan of its own passes it in; the client is closed after it ends,
so events tracked during the application's own shutdown are written too::

    app = FastAPI(lifespan=closing_lifespan(client, app_lifespan))

No import of any framework: a lifespan is just ``app -> async context manager``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

from analytics_core._checks import seconds
from analytics_core.client import AnalyticsClient

__all__ = ["closing_lifespan"]

_App = TypeVar("_App")
Lifespan = Callable[[_App], contextlib.AbstractAsyncContextManager[Any]]


def closing_lifespan(
    client: AnalyticsClient,
    app_lifespan: Lifespan[_App] | None = None,
    *,
    timeout: float | None = None,
) -> Lifespan[_App]:
    """A lifespan that runs ``app_lifespan`` (if any), then closes ``client``.

    The close waits at most ``timeout`` seconds (default: the client's ``shutdown_timeout``)
    and runs in a thread, so the event loop keeps serving what the server still runs. It
    happens however the application's own shutdown ends, an exception included. The state
    ``app_lifespan`` yields is passed on to the server.
    """
    wait = client._shutdown_timeout if timeout is None else seconds(timeout, "timeout")

    @contextlib.asynccontextmanager
    async def lifespan(app: _App) -> AsyncIterator[Any]:
        try:
            if app_lifespan is None:
                yield None
            else:
                async with app_lifespan(app) as state:
                    yield state
        finally:
            await client.aclose(wait)

    return lifespan
