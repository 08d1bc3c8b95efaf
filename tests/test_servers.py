"""The client in the servers services run: gunicorn, uvicorn and Celery, as real processes.

Each test serves ``tests/servers``' applications under bounded load, reloads or recycles their
workers while requests keep coming, then stops the server with SIGTERM as a deployment does,
and matches the table's rows to the calls that succeeded: every one written, none twice,
nothing else. The applications' clients never write on their own before shutdown, so each
event gets in only through the way the server ends its processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg
import pytest

from analytics_core import AnalyticsClient
from analytics_core.asgi import closing_lifespan
from analytics_core.events import TaskCreated
from analytics_core.schema import EVENTS_TABLE
from tests.servers import BROKER_DIR_VARIABLE, DSN_VARIABLE

pytestmark = pytest.mark.server

REPOSITORY = Path(__file__).resolve().parent.parent
#: How long a server may take to start, and to stop once sent SIGTERM.
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 60.0
#: Load: a few callers, each pausing between calls, for a bounded number of calls in all.
CALLERS = 4
CALL_PAUSE_S = 0.01


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def server_env(dsn: str, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        DSN_VARIABLE: dsn,
        "PYTHONPATH": str(REPOSITORY),
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


@contextlib.contextmanager
def running(
    command: list[str], env: dict[str, str], log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """Start ``command`` (output to ``log``); on the way out make sure it is gone."""
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, cwd=REPOSITORY, env=env, stdout=output, stderr=subprocess.STDOUT
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def stop(process: subprocess.Popen[bytes], log: Path) -> int:
    """SIGTERM, as a deployment stops a server; its exit code once it has ended."""
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the server did not stop within {STOP_TIMEOUT_S:g}s:\n{log.read_text()}")


def wait_listening(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the server exited with {process.returncode}:\n{log.read_text()}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    pytest.fail(f"the server did not listen on {port} within {START_TIMEOUT_S:g}s")


class Load:
    """``CALLERS`` threads calling ``GET /track/<id>``, each on a new connection, until stopped."""

    def __init__(self, port: int) -> None:
        self._port = port
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.succeeded: list[str] = []
        self.failed: list[str] = []
        self._threads = [threading.Thread(target=self._call_until_stopped) for _ in range(CALLERS)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def wait_for(self, calls: int, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.succeeded) < calls:
            assert time.monotonic() < deadline, f"only {len(self.succeeded)} calls succeeded"
            time.sleep(0.02)

    def _call_until_stopped(self) -> None:
        while not self._stop.is_set():
            call_id = uuid.uuid4().hex
            ok = self._call(call_id)
            with self._lock:
                (self.succeeded if ok else self.failed).append(call_id)
            time.sleep(CALL_PAUSE_S)

    def _call(self, call_id: str) -> bool:
        connection = http.client.HTTPConnection("127.0.0.1", self._port, timeout=10)
        try:
            connection.request("GET", f"/track/{call_id}")
            response = connection.getresponse()
            response.read()
            return response.status == 200
        except (OSError, http.client.HTTPException):
            return False
        finally:
            connection.close()


def assert_every_success_written_once(url: str, succeeded: list[str], failed: list[str]) -> None:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            f"SELECT data->>'command' FROM {EVENTS_TABLE} WHERE service = 'server-test'"
        ).fetchall()
    written = Counter(command for (command,) in rows)
    assert succeeded, "no call succeeded"
    doubled = [call for call, times in written.items() if times > 1]
    assert doubled == [], doubled
    missing = set(succeeded) - set(written)
    assert not missing, f"{len(missing)} of {len(succeeded)} successful calls not written"
    # A call that failed may have been tracked before its connection broke, never anything else.
    assert set(written) <= set(succeeded) | set(failed)


# --- gunicorn ----------------------------------------------------------------------------------


@pytest.mark.parametrize("preload", [False, True], ids=["sync", "sync-preload"])
def test_gunicorn_reloads_recycles_and_stops_without_losing_an_event(
    events_url: str, preload: bool, tmp_path: Path
) -> None:
    port = free_port()
    log = tmp_path / "gunicorn.log"
    command = [
        sys.executable, "-m", "gunicorn", "tests.servers.wsgi_app:app",
        "--bind", f"127.0.0.1:{port}", "--workers", "2",
        # Recycling: each worker is replaced after 40 to 50 requests.
        "--max-requests", "40", "--max-requests-jitter", "10",
        "--graceful-timeout", "30", "--log-level", "info", "--no-control-socket",
        *(["--preload"] if preload else []),
    ]  # fmt: skip
    with running(command, server_env(events_url), log) as server:
        wait_listening(port, server, log)
        with Load(port) as load:
            load.wait_for(100)
            server.send_signal(signal.SIGHUP)  # graceful reload: new workers, old ones drain
            load.wait_for(250)
        assert stop(server, log) == 0, log.read_text()
    assert "Worker exiting" in log.read_text()
    assert_every_success_written_once(events_url, load.succeeded, load.failed)
    assert load.failed == []


# --- uvicorn -----------------------------------------------------------------------------------


@pytest.mark.parametrize("workers", [1, 2], ids=["single", "workers"])
def test_uvicorn_with_the_closing_lifespan_stops_without_losing_an_event(
    events_url: str, workers: int, tmp_path: Path
) -> None:
    port = free_port()
    log = tmp_path / "uvicorn.log"
    command = [
        sys.executable, "-m", "uvicorn", "tests.servers.asgi_app:app",
        "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
        "--timeout-graceful-shutdown", "20",
    ]  # fmt: skip
    with running(command, server_env(events_url), log) as server:
        wait_listening(port, server, log)
        with Load(port) as load:
            load.wait_for(100)
            if workers > 1:
                server.send_signal(signal.SIGHUP)  # rolling restart of the workers
            load.wait_for(250)
        # A single uvicorn process ends by re-raising the SIGTERM it handled, past atexit:
        # only the lifespan closes the client there.
        expected_exit = -signal.SIGTERM if workers == 1 else 0
        assert stop(server, log) == expected_exit, log.read_text()
    assert_every_success_written_once(events_url, load.succeeded, load.failed)
    assert load.failed == []


# --- Celery ------------------------------------------------------------------------------------


def test_celery_prefork_recycles_and_stops_without_losing_an_event(
    events_url: str, tmp_path: Path
) -> None:
    broker = tmp_path / "broker"
    env = server_env(events_url, **{BROKER_DIR_VARIABLE: str(broker)})
    log = tmp_path / "celery.log"
    command = [
        sys.executable, "-m", "celery", "--app", "tests.servers.celery_app", "worker",
        "--pool", "prefork", "--concurrency", "2", "--max-tasks-per-child", "15",
        "--loglevel", "INFO", "--without-heartbeat", "--without-mingle", "--without-gossip",
    ]  # fmt: skip
    producer = subprocess.run(
        [sys.executable, "-c", PRODUCER, "send", "120"],
        cwd=REPOSITORY, env=env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    sent = producer.stdout.split()
    with running(command, env, log) as worker:
        collected = subprocess.run(
            [sys.executable, "-c", PRODUCER, "collect", *sent],
            cwd=REPOSITORY, env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert collected.returncode == 0, collected.stderr + log.read_text()
        assert stop(worker, log) == 0, log.read_text()
    succeeded = collected.stdout.split()
    assert sorted(succeeded) == sorted(sent)
    assert_every_success_written_once(events_url, succeeded, [])


# Sends tasks (printing their ids), or waits for the results of those ids (printing each).
PRODUCER = """
import sys, uuid
from tests.servers.celery_app import app, track

if sys.argv[1] == "send":
    for _ in range(int(sys.argv[2])):
        call_id = uuid.uuid4().hex
        track.apply_async((call_id,), task_id=call_id)
        print(call_id)
else:
    for call_id in sys.argv[2:]:
        print(app.AsyncResult(call_id).get(timeout=60))
"""


# --- closing_lifespan, driven directly -----------------------------------------------------------


def test_closing_lifespan_closes_the_client_after_the_applications_own_shutdown(
    events_url: str,
) -> None:
    client = AnalyticsClient(events_url, service="server-test", flush_interval=3600)
    seen: list[str] = []

    @contextlib.asynccontextmanager
    async def app_lifespan(app: object) -> AsyncIterator[dict[str, str]]:
        seen.append("startup")
        yield {"state": "shared"}
        # Tracked while the application shuts down: written all the same.
        client.track(TaskCreated(task_id=uuid.uuid4(), user_id=uuid.uuid4(), command="bye"))
        seen.append("shutdown")

    async def serve() -> object:
        async with closing_lifespan(client, app_lifespan)(object()) as state:
            assert client.track(
                TaskCreated(task_id=uuid.uuid4(), user_id=uuid.uuid4(), command="hello")
            )
            return state

    assert asyncio.run(serve()) == {"state": "shared"}
    assert seen == ["startup", "shutdown"]
    assert (client.stats.written, client.stats.queue_depth) == (2, 0)
    late = TaskCreated(task_id=uuid.uuid4(), user_id=uuid.uuid4(), command="late")
    assert (client.track(late), client.stats.dropped) == (False, 1)  # closed


def test_closing_lifespan_closes_the_client_when_startup_fails(events_url: str) -> None:
    client = AnalyticsClient(events_url, service="server-test", flush_interval=3600)

    @contextlib.asynccontextmanager
    async def failing(app: object) -> AsyncIterator[None]:
        client.track(TaskCreated(task_id=uuid.uuid4(), user_id=uuid.uuid4(), command="boot"))
        raise RuntimeError("no configuration")
        yield

    async def serve() -> None:
        async with closing_lifespan(client, failing)(object()):
            pass

    with pytest.raises(RuntimeError, match="no configuration"):
        asyncio.run(serve())
    assert (client.stats.written, client.stats.queue_depth) == (1, 0)


@pytest.mark.parametrize(("timeout", "error"), [(-1, ValueError), ("5", TypeError)])
def test_closing_lifespan_refuses_a_bad_timeout_when_made(
    timeout: object, error: type[Exception]
) -> None:
    client = AnalyticsClient("postgresql://localhost/unused", service="x", enabled=False)
    with pytest.raises(error, match="timeout"):
        closing_lifespan(client, timeout=timeout)  # type: ignore[arg-type]
