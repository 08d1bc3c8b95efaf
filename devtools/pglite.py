"""`SqlSession` on PGlite with TimescaleDB Community edition, run as a Node subprocess.

The engine is `pglite/driver.mjs`; its header documents the JSON-lines protocol. It is one
PostgreSQL 17 backend in WASM: a single connection, no COPY over a socket, but the TSL
features (continuous aggregates, compression, policies) that the Apache-edition server lacks.
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import json
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO, Any, NoReturn

from .sql_session import Params, Row, SqlError, StatementResult
from .text_format import QueryFormatError, load_rows, to_text_query

DRIVER_DIR = Path(__file__).resolve().parent / "pglite"
DRIVER = DRIVER_DIR / "driver.mjs"
_INSTALLED_MARKER = DRIVER_DIR / "node_modules" / "@unni-craftsman" / "pglite" / "package.json"

STARTUP_TIMEOUT_S = 60.0
REQUEST_TIMEOUT_S = 120.0
NPM_CI_TIMEOUT_S = 300.0
CLOSE_TIMEOUT_S = 10.0
_STDERR_LINES_KEPT = 200


class PGliteError(SqlError):
    """PGlite rejected a statement; the session stays usable."""


class PGliteEngineError(RuntimeError):
    """The engine process could not start, died, or broke the protocol; the session is closed."""


class PGliteTimeoutError(PGliteEngineError, TimeoutError):
    """The engine did not answer in time; it was killed, as its state is unknown."""


def unavailable_reason() -> str | None:
    """Why a PGlite engine cannot run here (a missing tool), or None if it can."""
    if shutil.which("node") is None:
        return "Node.js ('node') is not on PATH; install Node.js 20 or newer"
    if not _INSTALLED_MARKER.exists() and shutil.which("npm") is None:
        return f"npm is not on PATH and {DRIVER_DIR / 'node_modules'} is missing"
    return None


def ensure_node_modules(timeout_s: float = NPM_CI_TIMEOUT_S) -> None:
    """Run `npm ci` in the driver's directory unless its packages are installed.

    Concurrent callers (pytest-xdist workers) wait for one another through a file lock.
    Raises `PGliteEngineError` if npm fails or `timeout_s` passes.
    """
    if _INSTALLED_MARKER.exists():
        return
    deadline = time.monotonic() + timeout_s
    lock_path = Path(tempfile.gettempdir()) / "analytics-core-pglite-npm.lock"
    with lock_path.open("w") as lock:
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise PGliteEngineError(
                        f"waited {timeout_s:.0f}s for another `npm ci` in {DRIVER_DIR}"
                    ) from None
                time.sleep(0.2)
        if _INSTALLED_MARKER.exists():
            return
        try:
            completed = subprocess.run(
                ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                cwd=DRIVER_DIR,
                capture_output=True,
                text=True,
                timeout=max(1.0, deadline - time.monotonic()),
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise PGliteEngineError(
                f"`npm ci` in {DRIVER_DIR} took over {timeout_s:.0f}s; run it by hand to see why"
            ) from exc
        if completed.returncode != 0:
            raise PGliteEngineError(
                f"`npm ci` in {DRIVER_DIR} failed (exit {completed.returncode}):\n"
                f"{completed.stderr[-2000:]}"
            )


class PGliteSession:
    """A fresh PGlite database with the timescaledb extension created, behind `SqlSession`.

    `start()` (or entering the context manager) spawns `node driver.mjs`, running `npm ci`
    first if needed, and waits at most `startup_timeout_s` for the engine. Every request waits
    at most `request_timeout_s` (overridable per call). Requests are serialised: one session
    may be shared between threads, but they take turns. Timestamps come back in UTC.
    """

    def __init__(
        self,
        *,
        startup_timeout_s: float = STARTUP_TIMEOUT_S,
        request_timeout_s: float = REQUEST_TIMEOUT_S,
        node: str = "node",
    ) -> None:
        self.startup_timeout_s = startup_timeout_s
        self.request_timeout_s = request_timeout_s
        self._node = node
        self._process: subprocess.Popen[bytes] | None = None
        self._answers: queue.Queue[str | None] = queue.Queue()
        # None marks the end of the engine's stderr.
        self._stderr: collections.deque[str | None] = collections.deque(maxlen=_STDERR_LINES_KEPT)
        self._readers: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._next_id = 0
        self._used = False
        self.info: dict[str, Any] = {}

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Spawn the engine and wait until it reports ready; a no-op if it runs already."""
        with self._lock:
            if self.running:
                return
            ensure_node_modules()
            self._spawn()

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def used(self) -> bool:
        """Whether any statement ran since the engine started or was last reset."""
        return self._used

    def reset(self) -> None:
        """Replace the database with a fresh one (timescaledb created, nothing else).

        Takes about half a second; restarts the engine if it is no longer running.
        """
        if not self.running:
            self.close()
            self.start()
            return
        self._request({"op": "reset"}, self.startup_timeout_s)
        self._used = False

    def close(self, timeout_s: float = CLOSE_TIMEOUT_S) -> None:
        """Stop the engine: end its input, then terminate and kill if it lingers. Idempotent."""
        process, self._process = self._process, None
        if process is None:
            return
        with contextlib.suppress(OSError):
            if process.stdin is not None:
                process.stdin.close()
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.terminate()
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=timeout_s)
        for reader in self._readers:
            reader.join(timeout=timeout_s)
        self._readers = []

    def __enter__(self) -> PGliteSession:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- SqlSession ----------------------------------------------------------------------------

    def execute(self, sql: str, *, timeout_s: float | None = None) -> None:
        self._used = True
        self._request({"op": "exec", "sql": sql}, timeout_s)

    def fetch(
        self, sql: str, params: Params | None = None, *, timeout_s: float | None = None
    ) -> list[Row]:
        return self.fetch_result(sql, params, timeout_s=timeout_s).dicts()

    def fetch_result(
        self, sql: str, params: Params | None = None, *, timeout_s: float | None = None
    ) -> StatementResult:
        self._used = True
        request: dict[str, Any] = {"op": "query", "sql": sql, "params": []}
        if params is not None:
            try:
                query = to_text_query(sql, params)
            except QueryFormatError as exc:
                raise PGliteError(str(exc), None) from exc
            request.update(sql=query.sql, params=query.params, types=query.type_oids)
        (result,) = self._decode(self._request(request, timeout_s))
        return result

    def fetch_all_results(
        self, sql: str, *, timeout_s: float | None = None
    ) -> list[StatementResult]:
        self._used = True
        return self._decode(self._request({"op": "exec", "sql": sql}, timeout_s))

    # --- engine process ------------------------------------------------------------------------

    def _spawn(self) -> None:
        try:
            process = subprocess.Popen(
                [self._node, str(DRIVER)],
                cwd=DRIVER_DIR,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
        except OSError as exc:
            raise PGliteEngineError(f"cannot run {self._node!r}: {exc}") from exc
        assert process.stdout is not None and process.stderr is not None
        self._process = process
        self._answers = queue.Queue()
        self._stderr.clear()
        self._readers = [
            threading.Thread(target=_pump, args=(process.stdout, self._answers.put), daemon=True),
            threading.Thread(target=_pump, args=(process.stderr, self._stderr.append), daemon=True),
        ]
        for reader in self._readers:
            reader.start()
        line = self._next_line(self.startup_timeout_s, "start")
        try:
            info = json.loads(line)
        except json.JSONDecodeError:
            info = None
        if not isinstance(info, dict) or info.get("ready") is not True:
            self._fail(f"engine sent {line[:200]!r} instead of its ready line")
        self.info = info
        self._used = False

    def _request(self, request: dict[str, Any], timeout_s: float | None) -> list[dict[str, Any]]:
        timeout = self.request_timeout_s if timeout_s is None else timeout_s
        with self._lock:
            if not self.running:
                self._fail("engine is not running; call start() (or reset()) first")
            self._next_id += 1
            request_id = self._next_id
            self._write_line(json.dumps({**request, "id": request_id}), timeout)
            deadline = time.monotonic() + timeout
            while True:
                line = self._next_line(deadline - time.monotonic(), f"answer {request['op']}")
                try:
                    answer = json.loads(line)
                except json.JSONDecodeError:
                    self._fail(f"engine sent a line that is not JSON: {line[:200]!r}")
                if answer.get("id") == request_id:
                    break
        if answer.get("ok"):
            results: list[dict[str, Any]] = answer["results"]
            return results
        error = answer.get("error") or {}
        raise PGliteError(
            str(error.get("message", "unknown error")),
            error.get("sqlstate"),
            detail=error.get("detail"),
            hint=error.get("hint"),
        )

    def _write_line(self, line: str, timeout_s: float) -> None:
        process = self._process
        assert process is not None and process.stdin is not None
        stdin = process.stdin
        failure: list[BaseException] = []

        def write() -> None:
            try:
                stdin.write(line.encode() + b"\n")
                stdin.flush()
            except OSError as exc:
                failure.append(exc)

        # A request larger than the pipe buffer blocks until the engine reads it; a thread
        # keeps that wait bounded too.
        writer = threading.Thread(target=write, daemon=True)
        writer.start()
        writer.join(timeout_s)
        if writer.is_alive():
            self._fail(f"engine did not read a request within {timeout_s:.0f}s", timeout=True)
        if failure:
            self._fail(f"cannot send to the engine: {failure[0]}")

    def _next_line(self, timeout_s: float, waiting_for: str) -> str:
        try:
            line = self._answers.get(timeout=max(0.0, timeout_s))
        except queue.Empty:
            self._fail(f"engine did not {waiting_for} within the time allowed", timeout=True)
        if line is None:
            self._fail(f"engine exited while we waited for it to {waiting_for}")
        return line

    def _fail(self, problem: str, *, timeout: bool = False) -> NoReturn:
        """Close the engine and raise, with its last stderr lines to say why."""
        process = self._process
        if process is not None and process.poll() is None:
            process.kill()
        self.close(timeout_s=5.0)
        exit_code = None if process is None else process.poll()
        stderr = "\n".join(line for line in self._stderr if line is not None)
        stderr = stderr or "(nothing on stderr)"
        message = (
            f"PGlite {problem} (exit code {exit_code}). "
            f"Engine stderr, last lines:\n{stderr}\n"
            f"To investigate, run `node driver.mjs` in {DRIVER_DIR} and send it requests."
        )
        raise (PGliteTimeoutError if timeout else PGliteEngineError)(message)

    @staticmethod
    def _decode(results: list[dict[str, Any]]) -> list[StatementResult]:
        decoded: list[StatementResult] = []
        for result in results:
            columns = result["columns"]
            decoded.append(
                StatementResult(
                    columns=tuple(c["name"] for c in columns),
                    rows=load_rows([c["type_oid"] for c in columns], result["rows"]),
                    affected=int(result["affected"]),
                )
            )
        return decoded


def _pump(stream: IO[bytes], sink: Callable[[str | None], object]) -> None:
    """Forward each line of `stream` to `sink` (without its newline), then `None` at the end."""
    with contextlib.suppress(ValueError, OSError):
        for raw in stream:
            sink(raw.decode(errors="replace").rstrip("\n"))
    sink(None)
