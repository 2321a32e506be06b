"""HTTP plumbing for a JSON API on 127.0.0.1: an explicit route table, admission before the body.

Shared by the preflight workspace (`server.py`) and the test suite's scripted Clusters API
(`tests/support/clusters_api.py`); neither knows the other's semantics:

    server = JsonApiServer(routes={("GET", "/api/2.1/clusters/get"): handler, ...})
    server.start(); server.host  # http://127.0.0.1:PORT

A handler takes a `Request` and returns `(status, JSON-able body or None)`; raising
`ApiFailure(status, error_code, message)` answers Databricks' `{"error_code", "message"}`.
A route path ending in `*` matches every path with that prefix (`/api/2.0/fs/files/*`).
A HEAD route may share its GET handler: the answer's body sets Content-Length and is not sent.

What a request may cost is bounded before it costs anything: `admit(request)` (the token
check) runs on the request line and headers, before the body is read; a body larger than
`max_body_bytes` is refused from its Content-Length; at most `max_connections` connections
are served at once; a connection idle for `idle_timeout_s` is closed. A request head (request
line and headers) must arrive within `head_timeout_s` of its first byte, however slowly it
trickles in, else the connection is closed; and when every slot is taken, a new connection
takes the slot of the connection that has waited longest for a head (for at least
`_EVICT_AFTER_S`), so clients that dribble headers cannot keep real requests out (only when
none is waiting does a new one get 503). The Host header must name this server
(`127.0.0.1:PORT`, `localhost:PORT`, `[::1]:PORT`): a page of another site that rebinds its
DNS name to 127.0.0.1 gets 403 and reads nothing. Connections that clients drop early end
silently (no traceback on stderr).
"""

from __future__ import annotations

import io
import json
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = ["MAX_BODY_BYTES", "Answer", "ApiFailure", "Handler", "JsonApiServer", "Request"]

MAX_BODY_BYTES = 64 * 2**20
"""Largest request body accepted (init scripts and JSON bodies are far smaller)."""
MAX_CONNECTIONS = 64
IDLE_TIMEOUT_S = 30.0
HEAD_TIMEOUT_S = 10.0
"""Longest time from a request's first byte to the end of its headers."""

Answer = tuple[Any, ...]
"""(HTTP status, JSON-able body[, extra headers]): None for an empty body, bytes sent as they are."""


class ApiFailure(Exception):
    """An error answer: HTTP status + Databricks' {"error_code", "message"}."""

    def __init__(self, status: int, error_code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.error_code, self.message = status, error_code, message

    def answer(self) -> Answer:
        return self.status, {"error_code": self.error_code, "message": self.message}


@dataclass
class Request:
    """One request: `path` is unquoted, `query` as parse_qs gives it, `body` read once admitted."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: Message
    body: bytes = b""
    target: str = ""  # the request target as sent (path still quoted, with the query)

    def params(self) -> dict[str, Any]:
        """Query parameters (last value wins) updated with the JSON object in the body."""
        params: dict[str, Any] = {k: v[-1] for k, v in self.query.items()}
        if self.body.strip():
            try:
                data = json.loads(self.body)
            except ValueError as exc:  # also a number of more than 4300 digits
                raise ApiFailure(400, "MALFORMED_REQUEST", f"the request body is not JSON: {exc}") from exc
            except RecursionError as exc:
                raise ApiFailure(400, "MALFORMED_REQUEST",
                                 "the request body nests too deeply (JSON arrays and objects)") from exc
            if not isinstance(data, dict):
                raise ApiFailure(400, "MALFORMED_REQUEST", "the request body must be a JSON object")
            params.update(data)
        return params


Handler = Callable[[Request], Answer]


class JsonApiServer:
    """ThreadingHTTPServer on 127.0.0.1:<free port> answering from an explicit route table.

    Subclasses may override `admit` (runs before the body is read) and `dispatch`.
    """

    def __init__(self, routes: Mapping[tuple[str, str], Handler], *, name: str = "dcs-json-api",
                 max_body_bytes: int = MAX_BODY_BYTES, max_connections: int = MAX_CONNECTIONS,
                 idle_timeout_s: float = IDLE_TIMEOUT_S, head_timeout_s: float = HEAD_TIMEOUT_S) -> None:
        self._exact = {key: fn for key, fn in routes.items() if not key[1].endswith("*")}
        self._prefix = sorted(((m, p[:-1], fn) for (m, p), fn in routes.items() if p.endswith("*")),
                              key=lambda item: -len(item[1]))
        self.name = name
        self.max_body_bytes = max_body_bytes
        handler = type("_BoundHandler", (_HttpHandler,), {"app": self, "timeout": idle_timeout_s,
                                                          "head_timeout_s": head_timeout_s})
        self._httpd = _BoundedServer(("127.0.0.1", 0), handler, max_connections,
                                     evict_after_s=min(_EVICT_AFTER_S, head_timeout_s / 4))
        port = self._httpd.server_address[1]
        self.hosts = frozenset(f"{name}:{port}" for name in ("127.0.0.1", "localhost", "[::1]"))
        """The Host header values this server answers (any other: 403)."""
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        """`http://127.0.0.1:PORT`."""
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def start(self) -> JsonApiServer:
        if self._thread is None:
            self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                            daemon=True, name=self.name)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread = None
        self._httpd.server_close()

    def route(self, method: str, path: str) -> Handler | None:
        """The handler for (method, path): an exact route, else the longest prefix route."""
        found = self._exact.get((method, path))
        if found is not None:
            return found
        return next((fn for m, prefix, fn in self._prefix if m == method and path.startswith(prefix)), None)

    def admit(self, request: Request) -> None:
        """Raise ApiFailure to refuse a request before its body is read (default: admit)."""

    def check_host(self, request: Request) -> None:
        """The Host header must name this server: a DNS-rebinding page sends its own name."""
        host = str(request.headers.get("Host") or "").strip().lower()
        if host not in self.hosts:
            shown = (host[:60] + "...") if len(host) > 60 else host
            raise ApiFailure(403, "PERMISSION_DENIED",
                             f"Host {shown or '(none)'!r} is not this server: {self.name} answers only "
                             f"requests for {', '.join(sorted(self.hosts))}")

    def dispatch(self, request: Request) -> Answer:
        """Route an admitted request (body read). Never raises."""
        handler = self.route(request.method, request.path)
        try:
            if handler is None:
                raise ApiFailure(404, "ENDPOINT_NOT_FOUND",
                                 f"{request.method} {request.path} is not served by {self.name}")
            return handler(request)
        except ApiFailure as exc:
            return exc.answer()
        except Exception as exc:  # noqa: BLE001 - a bug in a handler must be an answer, not a dropped connection
            return 500, {"error_code": "INTERNAL_ERROR", "message": f"{type(exc).__name__}: {exc}"}


_BUSY_BODY = json.dumps({"error_code": "TEMPORARILY_UNAVAILABLE",
                        "message": "too many open connections; retry"}).encode()
_BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\n"
         b"Retry-After: 1\r\nContent-Length: " + str(len(_BUSY_BODY)).encode() + b"\r\n\r\n" + _BUSY_BODY)


_EVICT_AFTER_S = 1.0
"""A connection waiting for its request head this long may lose its slot to a new one."""


class _BoundedServer(ThreadingHTTPServer):
    """At most `limit` connections served at once. With all slots taken, a new connection
    takes the slot of the one waiting longest (at least `evict_after_s`) for a request head;
    with none waiting, it gets a 503 and is closed."""

    daemon_threads = True
    request_queue_size = 128  # listen backlog: a burst of connects is accepted, not SYN-dropped

    def __init__(self, address: tuple[str, int], handler: type, limit: int, *, evict_after_s: float) -> None:
        super().__init__(address, handler)
        self._slots = threading.BoundedSemaphore(limit)
        self._evict_after_s = evict_after_s
        self._waiting: dict[socket.socket, float] = {}  # connections waiting for a head, oldest first
        self._waiting_lock = threading.Lock()

    def waiting(self, connection: socket.socket) -> None:
        """`connection` waits for (or reads) a request head: it may be evicted."""
        with self._waiting_lock:
            self._waiting.pop(connection, None)
            self._waiting[connection] = time.monotonic()

    def served(self, connection: socket.socket) -> bool:
        """`connection`'s head arrived: no longer evictable. False if it was evicted meanwhile."""
        with self._waiting_lock:
            return self._waiting.pop(connection, None) is not None

    def _evict(self) -> bool:
        """Close the connection waiting longest for a head (if long enough): its slot frees."""
        with self._waiting_lock:
            oldest = next(iter(self._waiting.items()), None)
            if oldest is None or time.monotonic() - oldest[1] < self._evict_after_s:
                return False
            del self._waiting[oldest[0]]
            try:
                oldest[0].shutdown(socket.SHUT_RDWR)  # its thread's read ends; the thread frees the slot
            except OSError:
                pass
            return True

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False) and not (self._evict() and self._slots.acquire(timeout=2.0)):
            try:
                request.sendall(_BUSY)
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._waiting_lock:
                self._waiting.pop(request, None)
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away (reset, broken pipe, timeout) ends its connection silently."""
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)


class _HeadClock(io.RawIOBase):
    """The connection's reads; while `deadline` is set, each read waits at most until then."""

    def __init__(self, sock: socket.socket, idle_timeout_s: float | None) -> None:
        self.sock, self.idle_timeout_s = sock, idle_timeout_s
        self.deadline: float | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.deadline is not None:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("the request head did not arrive in time")
            self.sock.settimeout(left if self.idle_timeout_s is None else min(left, self.idle_timeout_s))
        return self.sock.recv_into(buffer)

    def head_read(self) -> None:
        """The head is in: reads wait the idle timeout again."""
        self.deadline = None
        self.sock.settimeout(self.idle_timeout_s)


class _HttpHandler(BaseHTTPRequestHandler):
    """Request line + headers -> admit -> bounded body -> dispatch -> JSON."""

    app: JsonApiServer
    server: _BoundedServer
    head_timeout_s: float = HEAD_TIMEOUT_S
    protocol_version = "HTTP/1.1"
    server_version = "dcs-magic-local"

    def setup(self) -> None:
        super().setup()
        self._clock = _HeadClock(self.connection, self.timeout)
        self._reader = io.BufferedReader(self._clock)
        self.rfile = self._reader

    def handle_one_request(self) -> None:
        """Wait (idle timeout) for a request's first byte, then read its head by a deadline."""
        self._clock.head_read()  # between requests: the idle timeout (a 501 left its deadline set)
        self.server.waiting(self.connection)
        try:
            first = self._reader.peek(1)
        except OSError:  # also TimeoutError: idle too long
            first = b""
        if not first:
            self.close_connection = True
            return
        self._clock.deadline = time.monotonic() + self.head_timeout_s
        super().handle_one_request()  # request line + headers, then do_<METHOD>

    def _serve(self) -> None:
        self._clock.head_read()
        if not self.server.served(self.connection):  # evicted while its head came in
            self.close_connection = True
            return
        url = urlsplit(self.path)
        request = Request(self.command, unquote(url.path), parse_qs(url.query), self.headers, target=self.path)
        try:
            self.app.check_host(request)
            self.app.admit(request)
            request.body = self._body()
        except ApiFailure as exc:
            self.close_connection = True  # an unread body must not be parsed as the next request
            self._send(*exc.answer())
            return
        except (TimeoutError, OSError):
            self.close_connection = True
            return
        except Exception as exc:  # noqa: BLE001 - a bug in admit must be an answer, not a dropped connection
            self.close_connection = True
            self._send(500, {"error_code": "INTERNAL_ERROR", "message": f"{type(exc).__name__}: {exc}"})
            return
        self._send(*self.app.dispatch(request))

    def _body(self) -> bytes:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError as exc:
            raise ApiFailure(400, "MALFORMED_REQUEST", "Content-Length is not a number") from exc
        if length < 0:
            raise ApiFailure(400, "MALFORMED_REQUEST", "Content-Length is negative")
        if length > self.app.max_body_bytes:
            raise ApiFailure(413, "REQUEST_LIMIT_EXCEEDED", f"the request body ({length} bytes) is larger "
                             f"than {self.app.max_body_bytes} bytes")
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> None:
        data = (b"" if payload is None else payload if isinstance(payload, bytes)
                else json.dumps(payload).encode())
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if data and "Content-Type" not in (headers or {}):  # a handler may answer HTML
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if data and self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _serve

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: notebooks must not fill with access logs."""
