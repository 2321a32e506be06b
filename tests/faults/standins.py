"""Stand-ins for the fault suite: servers that stall. TEST-ONLY.

All real sockets on 127.0.0.1 (or a unix socket in the test's tmp dir); nothing is mocked.

    stalled_tcp()       -> (host_url, Stalled): accepts, reads, never answers.
    stalled_unix(path)  -> Stalled: the same on a unix socket (a hung Docker engine).
    refusing_engine(path) -> a Docker engine API on a unix socket that answers /_ping and
                           /version and refuses every other request with HTTP 500.

A registry answering 500 or an HTML error page: support.registry.http_answer (every request), or
support.registry.manifest_refusing_registry (takes the blobs, refuses the manifest: no engine retries).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class Stalled:
    """A listening socket whose connections are accepted, read, and never answered."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.connections: list[socket.socket] = []
        self.received: list[bytes] = []
        self._stop = threading.Event()
        self._readers: list[threading.Thread] = []
        self._server = threading.Thread(target=self._serve, daemon=True)
        self._server.start()

    def _serve(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections.append(conn)
            reader = threading.Thread(target=self._read, args=(conn,), daemon=True)
            self._readers.append(reader)
            reader.start()

    def _read(self, conn: socket.socket) -> None:
        conn.settimeout(0.5)
        data = b""
        while not self._stop.is_set():
            try:
                chunk = conn.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            if not chunk:
                break
            data += chunk
        self.received.append(data)

    def close(self) -> None:
        """Stop serving; `received` is complete when this returns (the readers are joined, so a
        test reading it next never races a reader still appending under load)."""
        self._stop.set()
        self._server.join(timeout=5)
        for reader in list(self._readers):
            reader.join(timeout=5)
        for conn in self.connections:
            conn.close()
        self.sock.close()


@contextmanager
def stalled_tcp() -> Iterator[tuple[str, Stalled]]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    stalled = Stalled(sock)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}", stalled
    finally:
        stalled.close()


@contextmanager
def stalled_unix(path: Path) -> Iterator[Stalled]:
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(path))
    sock.listen(64)
    stalled = Stalled(sock)
    try:
        yield stalled
    finally:
        stalled.close()




@contextmanager
def refusing_engine(path: Path) -> Iterator[list[str]]:
    """A Docker engine on the unix socket PATH that pings fine and answers every other request
    (a push, say) with HTTP 500 {"message": "refused by the test engine"}. Yields the request
    lines received."""
    import json
    import socketserver
    from http.server import BaseHTTPRequestHandler

    received: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, status: int, body: object) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Api-Version", "1.41")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _any(self) -> None:
            received.append(self.requestline)
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            if self.path.endswith("/_ping"):
                self._answer(200, "OK")
            elif self.path.endswith("/version"):
                self._answer(200, {"ApiVersion": "1.41", "Version": "20.10.0", "Os": "linux", "Arch": "amd64"})
            else:
                self._answer(500, {"message": "refused by the test engine"})

        do_GET = do_POST = do_HEAD = do_DELETE = _any

        def log_message(self, *args: object) -> None:
            pass

        def address_string(self) -> str:  # a unix socket has no (host, port)
            return "unix"

    class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
        daemon_threads = True

    server = Server(str(path), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield received
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
