"""Find the Docker engine, or start `dockerd` and wait (bounded) until it answers."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import docker
from docker.errors import DockerException

__all__ = ["EngineUnavailable", "connect", "connect_or_start", "start_dockerd"]


class EngineUnavailable(RuntimeError):
    """The Docker engine does not answer and could not be started."""


def connect() -> docker.DockerClient:
    """A client for the engine named by the usual environment (DOCKER_HOST, default socket).

    Raises DockerException when the engine does not answer: `version="auto"` asks it for
    its API version right away, so a dead socket fails here and not in the first test.
    """
    client = docker.from_env(version="auto")
    client.ping()
    return client


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def start_dockerd(log_path: Path) -> subprocess.Popen:
    """Start `dockerd` in its own session (it outlives the tests: other sessions share it)."""
    binary = shutil.which("dockerd")
    if binary is None:
        raise EngineUnavailable(
            "The Docker engine does not answer and `dockerd` is not installed. "
            "Run `bash scripts/dev-env.sh deps` (installs docker.io) as root.")
    with log_path.open("ab") as log:  # the child keeps its own descriptor
        return subprocess.Popen([binary], stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)


def connect_or_start(timeout_s: float = 60.0, exit_grace_s: float = 5.0) -> docker.DockerClient:
    """Connect to the engine; start `dockerd` when nothing answers on the default socket.

    A `DOCKER_HOST` pointing elsewhere is never second-guessed: if it does not answer, we
    fail instead of starting a local engine the tests would then not be talking to.
    """
    try:
        return connect()
    except DockerException as exc:
        first_error = exc
    if os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock") != "unix:///var/run/docker.sock":
        raise EngineUnavailable(
            f"DOCKER_HOST={os.environ['DOCKER_HOST']} does not answer ({first_error}). "
            "Start that engine or unset DOCKER_HOST.") from first_error

    log_path = Path(tempfile.mkstemp(prefix="dcs-test-dockerd-", suffix=".log")[1])
    proc = start_dockerd(log_path)
    deadline = time.monotonic() + timeout_s
    exited_at: float | None = None
    while True:
        try:
            return connect()
        except DockerException as exc:
            last_error = exc
        now = time.monotonic()
        if proc.poll() is not None and exited_at is None:
            # Our dockerd died; another session may be starting one at the same time, so
            # keep polling the socket a little before giving up.
            exited_at = now
        if now > deadline or (exited_at is not None and now - exited_at > exit_grace_s):
            break
        time.sleep(0.5)
    status = "still running" if proc.poll() is None else f"exited with status {proc.returncode}"
    raise EngineUnavailable(
        f"Started dockerd ({status}) but the engine did not answer within {timeout_s:.0f} s: "
        f"{last_error}\n--- last lines of {log_path} ---\n{_tail(log_path)}") from last_error
