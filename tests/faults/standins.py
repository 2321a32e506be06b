"""Stand-ins for the fault suite: servers that stall. TEST-ONLY.

All real sockets on 127.0.0.1 (or a unix socket in the test's tmp dir); nothing is mocked.

    stalled_tcp()       -> (host_url, Stalled): accepts, reads, never answers.
    stalled_unix(path)  -> Stalled: the same on a unix socket (a hung Docker engine).

A registry answering 500 or an HTML error page: support.registry.http_answer.
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


