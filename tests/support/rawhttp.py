"""HTTP spoken by hand on a raw socket, for tests that send what no client library would
(a slow head, a 3 GB announcement, a half-closed connection) and read the one answer."""

from __future__ import annotations

import socket


def connect(host: str, timeout_s: float = 10) -> socket.socket:
    """A TCP connection to HOST (`http://127.0.0.1:PORT` or `127.0.0.1:PORT`)."""
    port = int(host.rsplit(":", 1)[1])
    return socket.create_connection(("127.0.0.1", port), timeout=timeout_s)


def read_answer(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One HTTP answer from SOCK: (status, headers lower-cased, body of Content-Length bytes)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before an answer: {data!r}"
        data += chunk
    top, _, rest = data.partition(b"\r\n\r\n")
    lines = top.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed inside the body: {len(rest)} of {length} bytes"
        rest += chunk
    return int(lines[0].split()[1]), headers, rest[:length]
