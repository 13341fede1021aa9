"""An API sandbox base for adapter tests: real HTTP on 127.0.0.1 in a background thread, with faults.

A sandbox subclass implements `handle(request) -> Reply`. Faults are injected around it:
`when="before"` answers instead of the handler (nothing is written), `when="after"` runs the
handler first (the write happens) and then answers with the fault, which is what makes an
outcome uncertain for the client. Out-of-tree adapter packages build their sandboxes on this.
"""

from __future__ import annotations

import json
import random
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    """An HTTP request as the sandbox saw it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8")) if self.body else None

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name.lower(), default)


@dataclass
class Reply:
    """What the sandbox answers."""

    status: int = 200
    body: bytes | str | Any = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"

    def payload(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode("utf-8")
        return json.dumps(self.body).encode("utf-8")


@dataclass
class Fault:
    """One injected failure: an HTTP status, a 'timeout', a 'reset' or a 'truncate'."""

    kind: str  # "status", "timeout", "reset", "truncate"
    status: int = 500
    when: str = "before"  # "before": the handler does not run; "after": it runs, then the fault
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


class FaultPlan:
    """Decides, per request, whether to inject a fault: queued faults first, then a seeded rate."""

    def __init__(self, seed: int = 7) -> None:
        self._queue: list[tuple[Callable[[Request], bool], Fault]] = []
        self._random = random.Random(seed)  # noqa: S311 - fault sampling, not cryptography
        self.rate = 0.0
        self.choices: list[Fault] = []
        self.matches: Callable[[Request], bool] = lambda request: True
        self._lock = threading.Lock()

    def queue(
        self, fault: Fault, matches: Callable[[Request], bool] = lambda r: True, times: int = 1
    ) -> None:
        with self._lock:
            self._queue.extend([(matches, fault)] * times)

    def random(
        self, rate: float, choices: list[Fault], matches: Callable[[Request], bool] | None = None
    ) -> None:
        with self._lock:
            self.rate = rate
            self.choices = choices
            if matches is not None:
                self.matches = matches

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()
            self.rate = 0.0

    def pick(self, request: Request) -> Fault | None:
        with self._lock:
            for index, (matches, fault) in enumerate(self._queue):
                if matches(request):
                    del self._queue[index]
                    return fault
            if self.rate and self.choices and self.matches(request) and self._random.random() < self.rate:
                return self._random.choice(self.choices)
        return None


class Sandbox:
    """Base class: start() binds 127.0.0.1 on a free port; subclasses implement handle()."""

    def __init__(self) -> None:
        self.faults = FaultPlan()
        # Seconds every answer takes, as a remote API's round trip does (benchmarks of overlap)
        self.latency = 0.0
        self.log: list[Request] = []
        self.lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- to implement -------------------------------------------------------------------
    def handle(self, request: Request) -> Reply:
        raise NotImplementedError

    # -- lifecycle ----------------------------------------------------------------------
    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("sandbox not started")
        host, port = self._server.server_address[:2]
        return f"http://{_text(host)}:{port}"

    def start(self) -> Sandbox:
        sandbox = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out in separate writes

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _serve(self) -> None:
                sandbox._dispatch(self)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        server = self._server
        # A short poll interval makes stop() quick: shutdown waits for the loop's next poll.
        self._thread = threading.Thread(target=lambda: server.serve_forever(poll_interval=0.05), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def count(self, method: str | None = None, path_prefix: str = "") -> int:
        """How many requests were received (optionally by method and path prefix)."""
        with self.lock:
            return sum(
                1
                for r in self.log
                if (method is None or r.method == method) and r.path.startswith(path_prefix)
            )

    # -- internals ----------------------------------------------------------------------
    def _dispatch(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        request = Request(
            method=handler.command,
            path=parts.path,
            query=parse_qs(parts.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in handler.headers.items()},
            body=body,
        )
        with self.lock:
            self.log.append(request)
        if self.latency:
            time.sleep(self.latency)
        fault = self.faults.pick(request)
        if fault is not None and fault.when == "before":
            self._fail(handler, fault, None)
            return
        try:
            reply = self.handle(request)
        except Exception as exc:  # a sandbox bug must show up as a 500, not a hang
            reply = Reply(500, {"error": f"sandbox error: {exc!r}"})
        if fault is not None:
            self._fail(handler, fault, reply)
            return
        self._send(handler, reply)

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, reply: Reply) -> None:
        payload = reply.payload()
        handler.send_response(reply.status)
        handler.send_header("Content-Type", reply.content_type)
        handler.send_header("Content-Length", str(len(payload)))
        for key, value in reply.headers.items():
            handler.send_header(key, value)
        handler.end_headers()
        handler.wfile.write(payload)

    def _fail(self, handler: BaseHTTPRequestHandler, fault: Fault, reply: Reply | None) -> None:
        if fault.kind == "timeout":
            time.sleep(fault.delay or 2.0)
            handler.close_connection = True
            return
        if fault.kind == "reset":
            _reset(handler.connection)
            handler.close_connection = True
            return
        if fault.kind == "truncate":
            payload = (reply.payload() if reply else b'{"partial": true, "more": "')[:10]
            handler.send_response(200)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(payload) + 100))
            handler.end_headers()
            handler.wfile.write(payload)
            handler.wfile.flush()
            _reset(handler.connection)
            handler.close_connection = True
            return
        status_reply = Reply(fault.status, {"error": f"injected {fault.status}"}, dict(fault.headers))
        self._send(handler, status_reply)


def _text(host: str | bytes | bytearray) -> str:
    return host if isinstance(host, str) else bytes(host).decode("ascii")


def _reset(connection: socket.socket) -> None:
    """Close with SO_LINGER 0 so the peer sees a connection reset."""
    try:
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        connection.close()
    except OSError:
        pass
