"""The Docker engine over ssh, reached as the docker CLI reaches it.

Each HTTP connection to an `ssh://[user@]host[:port]` engine is one
`ssh -o BatchMode=yes -T [-l USER] [-p PORT] -- HOST docker system dial-stdio` process: the
remote docker CLI joins its stdin/stdout to the engine's socket there. ssh's stdin and stdout
are one end of a local socketpair and the HTTP connection is the other end, so the client
reads and writes a real socket (timeouts, poll, `shutdown` for Stop all work as on a unix
socket) and the build context streams through it as it is tarred (no file in between).

Why not docker-py's: its ssh support imports paramiko (no dependency of dcs-magic), and its
shell-out variant lets ssh's stderr go to the process's stderr, so "Permission denied" or
"Connection refused" never reach the error the user sees; here the last words ssh said are
kept (`SshAdapter.last_error`) for that error.

Safety: ssh runs with `BatchMode=yes` (never a prompt: a kernel has no terminal to answer it)
in its own session (a Ctrl-C meant for a build does not kill the connection under it); the
user's ssh configuration decides the rest (known_hosts and StrictHostKeyChecking, keys from
ssh-agent or ~/.ssh, ~/.ssh/config's User/Port/ProxyJump/IdentityFile). Nothing here turns
host key checking off.

No docker import: `engine.py` mounts the adapter on its docker-py client.
"""

from __future__ import annotations

import os
import socket
import subprocess
import threading
from typing import Any
from urllib.parse import urlsplit

import requests.adapters
import urllib3.connection
import urllib3.connectionpool

__all__ = ["SshAdapter", "ssh_argv"]

_REAP_WAIT_S = 2.0  # ssh ends as soon as its stdin closes; after this it is killed
_STDERR_KEEP = 2000


def ssh_argv(url: str, *, connect_timeout_s: float = 30.0) -> list[str]:
    """The ssh command line for the engine at `url` (`ssh://[user@]host[:port]`)."""
    parts = urlsplit(url)
    if parts.scheme != "ssh" or not parts.hostname:
        raise ValueError(f"not an ssh://[user@]host[:port] address: {url!r}")
    args = ["ssh", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={max(1, round(connect_timeout_s))}", "-T"]
    if parts.username:
        args += ["-l", parts.username]
    if parts.port:
        args += ["-p", str(parts.port)]
    return [*args, "--", parts.hostname, "docker", "system", "dial-stdio"]


class _SshConnection(urllib3.connection.HTTPConnection):
    """An HTTP connection whose socket is the local end of one `ssh ... dial-stdio`."""

    def __init__(self, adapter: SshAdapter) -> None:
        super().__init__("localhost", timeout=adapter.timeout)
        self._adapter = adapter
        self._proc: subprocess.Popen[bytes] | None = None

    def connect(self) -> None:
        ours, theirs = socket.socketpair()
        try:
            self._proc = subprocess.Popen(self._adapter.argv, stdin=theirs.fileno(), stdout=theirs.fileno(),
                                          stderr=subprocess.PIPE, start_new_session=True)
        except OSError as exc:
            ours.close()
            self._adapter.note(f"cannot run ssh: {exc.strerror or exc}")
            raise
        finally:
            theirs.close()
        ours.settimeout(self._adapter.timeout)
        self.sock = ours

    def close(self) -> None:
        try:
            super().close()
        finally:
            proc, self._proc = self._proc, None
            if proc is not None:
                self._adapter.reap(proc)


class _SshPool(urllib3.connectionpool.HTTPConnectionPool):
    def __init__(self, adapter: SshAdapter, maxsize: int) -> None:
        super().__init__("localhost", timeout=adapter.timeout, maxsize=maxsize)
        self._adapter = adapter

    def _new_conn(self) -> _SshConnection:
        self.num_connections += 1
        return _SshConnection(self._adapter)


class SshAdapter(requests.adapters.HTTPAdapter):
    """A requests adapter sending every request through ssh to the engine at `url`."""

    def __init__(self, url: str, timeout: float, max_pool_size: int = 10) -> None:
        self.argv = ssh_argv(url, connect_timeout_s=min(timeout, 30.0))
        self.timeout = timeout
        self.last_error: str | None = None  # what ssh last said on stderr when it failed
        self._lock = threading.Lock()
        super().__init__()
        self._pool = _SshPool(self, max_pool_size)

    def get_connection_with_tls_context(self, request: Any, verify: Any, proxies: Any = None,
                                        cert: Any = None) -> urllib3.connectionpool.HTTPConnectionPool:
        return self._pool

    def get_connection(self, url: Any, proxies: Any = None) -> urllib3.connectionpool.HTTPConnectionPool:
        return self._pool  # requests < 2.32.2

    def request_url(self, request: Any, proxies: Any) -> str:
        return str(request.path_url)  # no proxy is ever asked about an ssh engine

    def close(self) -> None:
        super().close()
        self._pool.close()

    def note(self, text: str) -> None:
        with self._lock:
            self.last_error = text[-_STDERR_KEEP:]

    def reap(self, proc: subprocess.Popen[bytes]) -> None:
        """Wait for a connection's ssh to end (its stdin is closed), kill it if it does not;
        keep what it said on stderr when it failed."""
        try:
            proc.wait(_REAP_WAIT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        said = b""
        if proc.stderr is not None:
            try:  # without blocking: an ssh ControlMaster it started may hold the pipe open
                os.set_blocking(proc.stderr.fileno(), False)
                said = proc.stderr.read() or b""
            except (OSError, ValueError):
                pass
            finally:
                proc.stderr.close()
        if proc.returncode not in (0, -9):
            lines = [line.strip() for line in said.decode("utf-8", "replace").splitlines() if line.strip()]
            if lines:
                self.note(" ".join(lines[-3:]))
            else:
                self.note(f"ssh exited with status {proc.returncode}")
