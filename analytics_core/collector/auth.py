"""Who may do what: the key a request presents, and the origin a browser key may come from.

A key comes in ``Authorization: Bearer <key>`` (or ``X-API-Key: <key>``), never in the URL,
where logs and browser history would keep it. Without a valid key: 401. With a key of the
wrong kind, or a browser key from an origin it does not list: 403. The key's name (never the
key) is put on the request for the access log.
"""

from __future__ import annotations

from starlette.requests import Request

from analytics_core.collector.config import ApiKey, KeyKind, KeyRing
from analytics_core.collector.problems import Problem

__all__ = ["ALLOWED_HEADERS", "cors_headers", "require_reader", "require_writer"]

#: The request headers a browser may send to the write endpoints (the CORS preflight).
ALLOWED_HEADERS = "authorization, content-type, x-api-key"


def _presented(request: Request) -> str | None:
    authorization = request.headers.get("authorization")
    if authorization is not None:
        scheme, _, secret = authorization.partition(" ")
        return secret.strip() if scheme.lower() == "bearer" and secret.strip() else None
    return request.headers.get("x-api-key") or None


def _authenticate(request: Request, keys: KeyRing) -> ApiKey:
    secret = _presented(request)
    if secret is None:
        raise Problem(
            401,
            "an API key is required: send it as 'Authorization: Bearer <key>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    key = keys.find(secret)
    if key is None:
        raise Problem(401, "the API key is not valid", headers={"WWW-Authenticate": "Bearer"})
    request.state.key_name = key.name
    return key


def require_writer(request: Request, keys: KeyRing) -> ApiKey:
    """The request's key, which must be allowed to send events from the request's origin."""
    key = _authenticate(request, keys)
    if not key.writes:
        raise Problem(403, f"key {key.name!r} is a read key; sending events needs a write key")
    if key.kind is KeyKind.BROWSER:
        origin = request.headers.get("origin")
        if origin is None or origin not in key.origins:
            raise Problem(
                403,
                f"browser key {key.name!r} is not allowed from this origin; add the origin "
                "to the key's origins",
            )
    return key


def require_reader(request: Request, keys: KeyRing) -> ApiKey:
    """The request's key, which must be a read key."""
    key = _authenticate(request, keys)
    if key.kind is not KeyKind.READ:
        raise Problem(403, f"key {key.name!r} may send events but not read; use a read key")
    return key


def cors_headers(request: Request, keys: KeyRing) -> dict[str, str]:
    """The CORS response headers for a request from a browser origin some key accepts.

    A preflight carries no key, so it is answered for every origin of every browser key;
    the request that follows is checked against its own key's origins.
    """
    origin = request.headers.get("origin")
    if origin is None or origin not in keys.browser_origins:
        return {}
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Methods": "POST, OPTIONS",
        "Access-Control-Allow-Headers": ALLOWED_HEADERS,
        "Access-Control-Max-Age": "600",
        "Vary": "Origin",
    }
