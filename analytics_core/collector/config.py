"""What the collector is told: its API keys and its limits, validated once at start.

No web framework here: the keys and the configuration load and check without the ``server``
extra, so ``analytics-collector new-key`` and the tests of a key file need nothing more.

A key file is TOML, one ``[[keys]]`` table per key. Only the SHA-256 of each key is stored:

.. code-block:: toml

    [[keys]]
    name = "platform-backend"    # shown in logs and metrics, never the key
    kind = "server"              # server: any event family, no browser origin needed
    service = "platform"         # written with every event; a payload cannot change it
    sha256 = "9f86d0..."         # hex SHA-256 of the key: `analytics-collector new-key`

    [[keys]]
    name = "web-app"
    kind = "browser"             # a key shipped to browsers: limited families and origins
    service = "web"
    families = ["task", "project"]
    origins = ["https://app.example.com"]
    sha256 = "..."

    [[keys]]
    name = "dashboard"
    kind = "read"                # the read endpoints, the live stream and the dashboard
    sha256 = "..."
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from analytics_core._checks import bounded_int, seconds
from analytics_core.client._config import check_service
from analytics_core.errors import AnalyticsCoreError
from analytics_core.events import EventFamily

__all__ = [
    "ApiKey",
    "CollectorConfig",
    "KeyFileError",
    "KeyKind",
    "KeyRing",
    "hash_key",
    "load_keys",
    "new_key",
]

_HEX_SHA256_LENGTH: Final = 64


class KeyFileError(AnalyticsCoreError, ValueError):
    """The key file cannot be read or a key in it is not valid; the message says which."""


class KeyKind(enum.StrEnum):
    """What a key may do."""

    #: Write events of any family, from anywhere (a backend service).
    SERVER = "server"
    #: Write events of its ``families`` only, from its ``origins`` only (a web page).
    BROWSER = "browser"
    #: Read: the metrics endpoints, the live stream and the dashboard's data.
    READ = "read"


@dataclass(frozen=True, slots=True)
class ApiKey:
    """One configured key: its name, the SHA-256 of its secret and what it may do.

    - ``service``: written with every event sent with the key (writing keys only).
    - ``families``: the event families a browser key may write (server keys: all).
    - ``origins``: the ``Origin`` values a browser key is accepted from (CORS).
    """

    name: str
    sha256: bytes = field(repr=False)
    kind: KeyKind
    service: str | None = None
    families: frozenset[EventFamily] = frozenset(EventFamily)
    origins: frozenset[str] = frozenset()

    @property
    def writes(self) -> bool:
        """Whether the key may send events."""
        return self.kind is not KeyKind.READ


def hash_key(secret: str) -> str:
    """The hex SHA-256 of ``secret``: what a key file stores in place of the key."""
    return hashlib.sha256(secret.encode()).hexdigest()


def new_key() -> str:
    """A new random key (256 bits, URL-safe)."""
    return "ak_" + secrets.token_urlsafe(32)


class KeyRing:
    """The configured keys, looked up by the secret a request presents."""

    def __init__(self, keys: Iterable[ApiKey]) -> None:
        self._keys = tuple(keys)
        names = [key.name for key in self._keys]
        if len(set(names)) != len(names):
            raise KeyFileError("two keys have the same name; names must be unique")
        if len({key.sha256 for key in self._keys}) != len(self._keys):
            raise KeyFileError("two keys have the same sha256; give each producer its own key")
        #: Every origin some browser key accepts: what a CORS preflight (which carries no key)
        #: is answered for.
        self.browser_origins: frozenset[str] = frozenset().union(
            *(key.origins for key in self._keys if key.kind is KeyKind.BROWSER)
        )

    def __len__(self) -> int:
        return len(self._keys)

    def find(self, secret: str) -> ApiKey | None:
        """The key whose hash is ``secret``'s, or None.

        Compares the digests in constant time and always with every key, so that the time
        taken tells nothing of which key (or how much of one) matched.
        """
        digest = hashlib.sha256(secret.encode()).digest()
        found = None
        for key in self._keys:
            if hmac.compare_digest(digest, key.sha256):
                found = key
        return found


def load_keys(path: str | Path) -> KeyRing:
    """The keys of a TOML key file (see the module docstring); ``KeyFileError`` naming the
    key and the field for anything that is not valid."""
    try:
        document = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise KeyFileError(f"cannot read the key file {path}: {error.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise KeyFileError(f"the key file {path} is not valid TOML: {error}") from None
    entries = document.get("keys")
    if not isinstance(entries, list) or not entries:
        raise KeyFileError(f"the key file {path} has no [[keys]] tables")
    return KeyRing(_key(entry, i) for i, entry in enumerate(entries))


def _key(entry: Any, index: int) -> ApiKey:
    where = f"keys[{index}]"
    if not isinstance(entry, Mapping):
        raise KeyFileError(f"{where} is not a table")
    known = {"name", "kind", "service", "families", "origins", "sha256"}
    unknown = sorted(set(entry) - known)
    if unknown:
        raise KeyFileError(f"{where} has unknown fields: {', '.join(unknown)}")
    name = entry.get("name")
    if not isinstance(name, str) or not name:
        raise KeyFileError(f"{where}.name: required, a non-empty string")
    where = f"key {name!r}"
    try:
        kind = KeyKind(str(entry.get("kind")))
    except ValueError:
        raise KeyFileError(
            f"{where}: kind must be one of {', '.join(k.value for k in KeyKind)}"
        ) from None
    digest = entry.get("sha256")
    if not (
        isinstance(digest, str)
        and len(digest) == _HEX_SHA256_LENGTH
        and all(c in "0123456789abcdefABCDEF" for c in digest)
    ):
        raise KeyFileError(
            f"{where}: sha256 must be 64 hex digits, the SHA-256 of the key "
            "(`analytics-collector new-key` prints a key and its line)"
        )
    service = entry.get("service")
    if kind is KeyKind.READ:
        if any(field in entry for field in ("service", "families", "origins")):
            raise KeyFileError(f"{where}: a read key takes no service, families or origins")
        return ApiKey(name, bytes.fromhex(digest), kind)
    try:
        service = check_service(service)
    except (TypeError, ValueError) as error:
        raise KeyFileError(f"{where}: service: {error}") from None
    if kind is KeyKind.SERVER:
        if "families" in entry or "origins" in entry:
            raise KeyFileError(
                f"{where}: families and origins are for browser keys; a server key writes all"
            )
        return ApiKey(name, bytes.fromhex(digest), kind, service)
    return ApiKey(
        name,
        bytes.fromhex(digest),
        kind,
        service,
        families=_families(entry.get("families"), where),
        origins=_origins(entry.get("origins"), where),
    )


def _families(value: Any, where: str) -> frozenset[EventFamily]:
    names = ", ".join(family.value for family in EventFamily)
    if not isinstance(value, list) or not value:
        raise KeyFileError(f"{where}: a browser key needs families, a list of: {names}")
    try:
        return frozenset(EventFamily(item) for item in value)
    except ValueError:
        raise KeyFileError(f"{where}: families must be among: {names}") from None


def _origins(value: Any, where: str) -> frozenset[str]:
    if not isinstance(value, list) or not value:
        raise KeyFileError(
            f'{where}: a browser key needs origins, e.g. ["https://app.example.com"]'
        )
    for origin in value:
        if not (
            isinstance(origin, str)
            and origin.startswith(("https://", "http://"))
            and "/" not in origin.split("://", 1)[1]
        ):
            raise KeyFileError(
                f"{where}: each origin is a scheme and host without a path, such as "
                '"https://app.example.com" or "http://localhost:3000"'
            )
    return frozenset(value)


@dataclass(frozen=True, slots=True)
class CollectorConfig:
    """The collector's settings, checked at construction (``TypeError``/``ValueError``).

    - ``database_url``: the database holding ``analytics_events`` (migrated).
    - ``keys``: the API keys (``load_keys``).
    - ``max_body_bytes`` (1 MB): a larger request body is refused with 413.
    - ``max_batch_events`` (1000): a batch with more items is refused with 413.
    - ``batch_size`` (500), ``flush_interval`` (1.0 s), ``max_queue_size`` (50 000): the
      ``AnalyticsClient``'s; a request whose events do not fit in the queue gets 503.
    - ``retry_after`` (2 s): the ``Retry-After`` of a 503.
    - ``live_interval`` (2.0 s): how often the live stream sends a snapshot.
    - ``heartbeat_interval`` (15.0 s): the longest silence on the live stream.
    - ``shutdown_timeout`` (10.0 s): how long shutdown waits for the client to drain.
    - ``read_connections`` (4): most database connections the read side holds open.
    """

    database_url: str
    keys: KeyRing
    max_body_bytes: int = 1_000_000
    max_batch_events: int = 1_000
    batch_size: int = 500
    flush_interval: float = 1.0
    max_queue_size: int = 50_000
    retry_after: int = 2
    live_interval: float = 2.0
    heartbeat_interval: float = 15.0
    shutdown_timeout: float = 10.0
    read_connections: int = 4

    def __post_init__(self) -> None:
        if not isinstance(self.keys, KeyRing):
            raise TypeError(f"keys must be a KeyRing (load_keys), not {type(self.keys).__name__}")
        bounded_int(self.max_body_bytes, "max_body_bytes", minimum=1_024, maximum=2**30)
        bounded_int(self.max_batch_events, "max_batch_events", minimum=1, maximum=100_000)
        bounded_int(self.batch_size, "batch_size", minimum=1, maximum=100_000)
        bounded_int(self.max_queue_size, "max_queue_size", minimum=1, maximum=2**31 - 1)
        seconds(self.flush_interval, "flush_interval", allow_zero=False)
        bounded_int(self.retry_after, "retry_after", minimum=1, maximum=3_600)
        bounded_int(self.read_connections, "read_connections", minimum=1, maximum=64)
        seconds(self.live_interval, "live_interval", allow_zero=False)
        seconds(self.heartbeat_interval, "heartbeat_interval", allow_zero=False)
        seconds(self.shutdown_timeout, "shutdown_timeout")
        if self.max_queue_size < max(self.max_batch_events, self.batch_size):
            raise ValueError(
                f"max_queue_size ({self.max_queue_size}) is below max_batch_events "
                f"({self.max_batch_events}) or batch_size ({self.batch_size}): a full batch "
                "could never be queued"
            )
