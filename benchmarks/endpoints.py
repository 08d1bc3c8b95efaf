"""Where the peers benchmark's clients send to, each in a process of its own.

- ``HttpSink``: a local HTTP server that accepts the batch uploads of the HTTP analytics
  SDKs (PostHog's ``/batch/``, Segment's ``/v1/batch``: a JSON object whose ``batch`` holds
  the events), answers 200 at once and counts what arrived: events, distinct events and
  duplicates (by the ``task_id`` property every benchmark event carries).
- ``TcpGate``: a loopback TCP forwarder in front of the database, for analytics-core's side
  of the outage: when down, it refuses connections and cuts the open ones, as a database
  that went away does.

Both run in a separate process, so that their CPU time is not the client's, and both can be
taken down and brought back up on the same port (``control.down()``, ``control.up()``, also
from another process). ``up()`` returns the
``time.monotonic()`` at which the port listened again (the clock is the same in every process
on Linux), and the sink remembers when the first batch arrived after it.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import multiprocessing
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from multiprocessing.connection import Connection
from types import TracebackType
from typing import Any, Final, Self

__all__ = ["HttpSink", "Remote", "SinkCounts", "TcpGate", "dead_port"]

_LOOPBACK: Final = "127.0.0.1"
_REPLY_TIMEOUT_S: Final = 30.0
_CHUNK: Final = 65536


@dataclass(frozen=True, slots=True)
class SinkCounts:
    """What the sink received since it started (or since ``reset``)."""

    events: int
    distinct: int
    requests: int
    #: Monotonic time of the first batch after the latest ``up()``; None if none came.
    first_after_up: float | None

    @property
    def duplicated(self) -> int:
        return self.events - self.distinct


class Remote:
    """The controls of an endpoint, through its pipe; picklable, so a child process that
    drives an outage can be handed them (one process uses them at a time)."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def _ask(self, *command: object) -> Any:
        self._connection.send(command)
        if not self._connection.poll(_REPLY_TIMEOUT_S):
            raise RuntimeError(f"the endpoint did not answer {command[0]!r}")
        return self._connection.recv()

    def down(self) -> None:
        """Stop listening and cut every open connection: connections are refused."""
        self._ask("down")

    def up(self) -> float:
        """Listen again on the same port; the monotonic time it did."""
        at: float = self._ask("up")
        return at

    def counts(self) -> SinkCounts:
        """What the sink received (a sink only)."""
        events, distinct, requests, first = self._ask("counts")
        return SinkCounts(events, distinct, requests, first)

    def reset(self) -> None:
        """Forget what arrived so far (a sink only)."""
        self._ask("reset")


class _Endpoint:
    """A child process serving one port, driven through ``control``."""

    def __init__(self, target: Any, *args: object) -> None:
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe()
        self.control = Remote(parent)
        self._process = context.Process(target=target, args=(child, *args), daemon=True)
        self._process.start()
        self.port: int = self.control._ask("port")

    def close(self) -> None:
        with contextlib.suppress(OSError, EOFError, RuntimeError):
            self.control._ask("stop")
        self._process.join(5)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(5)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class HttpSink(_Endpoint):
    """The HTTP sink, in its own process; ``url`` is what the SDKs get as their host."""

    def __init__(self) -> None:
        super().__init__(_serve_sink)

    @property
    def url(self) -> str:
        return f"http://{_LOOPBACK}:{self.port}"


class TcpGate(_Endpoint):
    """A TCP forwarder to ``host:port`` in its own process; connect to ``self.port``."""

    def __init__(self, host: str, port: int) -> None:
        super().__init__(_serve_gate, host, port)


def dead_port() -> socket.socket:
    """A socket bound to a loopback port and never listening: connections to it are refused.

    Keep it open while the port must stay dead (nobody else can take it meanwhile).
    """
    placeholder = socket.socket()
    placeholder.bind((_LOOPBACK, 0))
    return placeholder


# --- In the child processes ----------------------------------------------------------------------


def _listener(port: int) -> socket.socket:
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((_LOOPBACK, port))
    listener.listen(128)
    return listener


class _Tally:
    """The sink's counts; handler threads add to them under the lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.seen: set[str] = set()
        self.events = 0
        self.requests = 0
        self.first_after_up: float | None = None

    def add(self, keys: list[str]) -> None:
        now = time.monotonic()
        with self.lock:
            self.requests += 1
            self.events += len(keys)
            self.seen.update(keys)
            if self.first_after_up is None and keys:
                self.first_after_up = now


def _event_key(event: Any) -> str:
    if isinstance(event, dict):
        properties = event.get("properties")
        if isinstance(properties, dict) and "task_id" in properties:
            return str(properties["task_id"])
        for name in ("uuid", "messageId"):
            if name in event:
                return str(event[name])
    return json.dumps(event, sort_keys=True)


def _sink_handler(tally: _Tally, connections: set[socket.socket]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the SDKs' sessions expect
        # The reply's headers and body go out in two writes: with Nagle's algorithm the
        # body would wait for the client's delayed ACK of the headers (40 ms a request).
        disable_nagle_algorithm = True

        def setup(self) -> None:
            super().setup()
            connections.add(self.connection)

        def finish(self) -> None:
            connections.discard(self.connection)
            super().finish()

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            document = json.loads(body)
            batch = document.get("batch", []) if isinstance(document, dict) else document
            tally.add([_event_key(event) for event in batch])
            reply = b"{}"
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet

    return Handler


def _serve_sink(control: Connection) -> None:
    tally = _Tally()
    connections: set[socket.socket] = set()
    handler = _sink_handler(tally, connections)
    first = ThreadingHTTPServer((_LOOPBACK, 0), handler)
    first.daemon_threads = True
    port = first.server_address[1]

    def start(current: ThreadingHTTPServer) -> None:
        threading.Thread(target=current.serve_forever, args=(0.05,), daemon=True).start()

    start(first)
    server: ThreadingHTTPServer | None = first
    while True:
        command, *_ = control.recv()
        if command == "port":
            control.send(port)
        elif command == "down":
            if server is not None:
                server.shutdown()
                server.server_close()
                server = None
            for connection in list(connections):
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)
            control.send(None)
        elif command == "up":
            if server is None:
                ThreadingHTTPServer.allow_reuse_address = True
                server = ThreadingHTTPServer((_LOOPBACK, port), handler)
                server.daemon_threads = True
                start(server)
            with tally.lock:
                tally.first_after_up = None
                up_at = time.monotonic()
            control.send(up_at)
        elif command == "counts":
            with tally.lock:
                control.send((tally.events, len(tally.seen), tally.requests, tally.first_after_up))
        elif command == "reset":
            with tally.lock:
                tally.seen.clear()
                tally.events = tally.requests = 0
                tally.first_after_up = None
            control.send(None)
        elif command == "stop":
            control.send(None)
            return


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(_CHUNK):
            sink.sendall(data)
    except OSError:
        pass
    for sock in (source, sink):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()


def _serve_gate(control: Connection, host: str, port: int) -> None:
    open_sockets: set[socket.socket] = set()
    lock = threading.Lock()
    first = _listener(0)
    gate_port = first.getsockname()[1]
    listener: socket.socket | None = first

    def accept(current: socket.socket) -> None:
        while True:
            try:
                client, _ = current.accept()
            except OSError:
                return  # closed: the gate is down
            try:
                server = socket.create_connection((host, port), timeout=10)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with lock:
                open_sockets.update((client, server))
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=_pump, args=(source, sink), daemon=True).start()

    threading.Thread(target=accept, args=(first,), daemon=True).start()
    while True:
        command, *_ = control.recv()
        if command == "port":
            control.send(gate_port)
        elif command == "down":
            if listener is not None:
                # shutdown() wakes the accept() blocked on it; close() alone would not.
                with contextlib.suppress(OSError):
                    listener.shutdown(socket.SHUT_RDWR)
                listener.close()
                listener = None
            with lock:
                cut, open_sockets = open_sockets, set()
            for sock in cut:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            control.send(None)
        elif command == "up":
            if listener is None:
                listener = _listener(gate_port)
                threading.Thread(target=accept, args=(listener,), daemon=True).start()
            control.send(time.monotonic())
        elif command == "stop":
            control.send(None)
            return
