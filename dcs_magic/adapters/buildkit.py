"""The docker CLI as a BuildKit builder: find a capable one, run `docker build -` on our
streamed build context, hand its progress over line by line, stop it.

docker-py cannot drive BuildKit (it needs BuildKit's gRPC session, docker/docker-py#2230), so
BuildKit builds run the docker CLI. Which CLI (`find_cli`, answer cached per setting):
`DCS_DOCKER_CLI` when set, else `docker` on PATH, then /usr/bin/docker; the first that has
`docker buildx` (progress as rawjson SolveStatus objects) or is a client older than 23.0
(the BuildKit built into `docker build` with `DOCKER_BUILDKIT=1`, plain progress). A newer
client without buildx cannot build with BuildKit at all (`DOCKER_BUILDKIT=1` asks for buildx).

`BuildkitRun` streams the context (`TarStream`, the same tar the classic builder uploads:
`.dockerignore` applied, `.dcs/` left out, no temp tar file) into the CLI's stdin; the CLI
runs in its own process group with the environment it would have in a shell (DOCKER_CONFIG
and the rest) plus DOCKER_BUILDKIT=1, and `engine_args` (`EngineAddress.cli_args()`: `--host`
and TLS files) name the engine docker-py talks to. Build argument values and secret values are never on its command
line: `--build-arg NAME` takes the value from the child's environment, and a secret is
`src=FILE` (a secret from a variable, for a client without `env=` support, is written to a
0600 file in a private temporary directory removed when the run ends).
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import BuildError
from ..model.buildkit import SecretSpec
from ..settings import DOCKER_BUILDKIT, DOCKER_CLI, DOCKER_CLI_CANDIDATES, PATH, docker_config_dir, env, environment
from .docker_login import docker_config
from .tarstream import TarStream

__all__ = ["BuildkitRun", "DockerCli", "find_cli", "forget_cli", "probe_report"]

PROBE_TIMEOUT_S = 20.0
STOP_GRACE_S = 0.5
"""After SIGINT, how long the CLI has to exit before SIGKILL. The docker 20.10 client usually
exits at once on SIGINT, but not always (measured: now and then it ignored it until killed);
either way its connections close and the engine cancels the build."""
STOP_WAIT_S = 10.0
_VERSION = re.compile(r"Docker version (\d+)\.(\d+)")


@dataclass(frozen=True)
class DockerCli:
    """A docker CLI that builds with BuildKit: `buildx` (rawjson progress) or the client's
    own BuildKit (a client older than 23.0, plain progress)."""

    path: str
    version: str
    buildx: bool

    @property
    def progress(self) -> str:
        return "rawjson" if self.buildx else "plain"

    def describe(self) -> str:
        how = "docker buildx" if self.buildx else "the client's built-in BuildKit"
        return f"{self.path} {self.version} ({how}, {self.progress} progress)"


_cache: dict[tuple[str | None, str | None, str], tuple[DockerCli | None, tuple[str, ...]]] = {}
_cache_lock = threading.Lock()


def find_cli() -> DockerCli | None:
    """The first BuildKit-capable docker CLI (see the module docstring), or None. Asked once
    per DCS_DOCKER_CLI / PATH / DOCKER_CONFIG value; `probe_report()` says what was tried."""
    return _probe()[0]


def probe_report() -> tuple[str, ...]:
    """One line per CLI tried: its path and why it can or cannot build with BuildKit."""
    return _probe()[1]


def forget_cli() -> None:
    """Forget the cached answer (tests; after installing a CLI)."""
    with _cache_lock:
        _cache.clear()


def _probe() -> tuple[DockerCli | None, tuple[str, ...]]:
    override, path = env(DOCKER_CLI), env(PATH)
    key = (override, path, docker_config_dir())  # the config folder: where buildx may be
    with _cache_lock:
        if key in _cache:
            return _cache[key]
        candidates = (override,) if override else DOCKER_CLI_CANDIDATES
        tried: list[str] = []
        found: DockerCli | None = None
        seen: set[str] = set()
        buildx_plugin = _buildx_plugin()  # the same folders for every CLI tried
        for candidate in candidates:
            resolved = shutil.which(candidate, path=path) if os.sep not in candidate else candidate
            if not resolved or not os.access(resolved, os.X_OK):
                tried.append(f"{candidate}: not found")
                continue
            real = os.path.realpath(resolved)
            if real in seen:
                continue
            seen.add(real)
            cli, why = _capable(resolved, buildx_plugin)
            tried.append(f"{resolved}: {why}")
            if cli is not None:
                found = cli
                break
        _cache[key] = (found, tuple(tried))
        return _cache[key]


def _capable(path: str, buildx_plugin: bool = True) -> tuple[DockerCli | None, str]:
    version = _run([path, "--version"])
    if version is None:
        return None, "does not run"
    match = _VERSION.search(version)
    number = version.split("version", 1)[-1].split(",")[0].strip() or "?"
    if buildx_plugin and _run([path, "buildx", "version"]) is not None:
        return DockerCli(path, number, buildx=True), f"docker {number} with buildx"
    if match and int(match[1]) < 23:
        return DockerCli(path, number, buildx=False), f"docker {number}, built-in BuildKit"
    return None, f"docker {number} without buildx (since 23.0 the client builds with BuildKit only through buildx)"


_SYSTEM_PLUGIN_DIRS = ("/usr/local/lib/docker/cli-plugins", "/usr/local/libexec/docker/cli-plugins",
                       "/usr/lib/docker/cli-plugins", "/usr/libexec/docker/cli-plugins")


def _buildx_plugin() -> bool:
    """Whether a `docker-buildx` plugin file is where the docker CLI looks for plugins (its
    config folder's `cli-plugins`, config.json's `cliPluginsExtraDirs`, the system folders):
    without one, `docker buildx version` cannot succeed and is not run (a process start saved
    per CLI tried)."""
    folders = [os.path.join(docker_config_dir(), "cli-plugins")]
    extra = docker_config().get("cliPluginsExtraDirs")
    if isinstance(extra, list):
        folders += [os.path.expanduser(folder) for folder in extra if isinstance(folder, str)]
    folders += _SYSTEM_PLUGIN_DIRS
    return any(os.access(os.path.join(folder, "docker-buildx"), os.X_OK) for folder in folders)


def _run(argv: list[str]) -> str | None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=PROBE_TIMEOUT_S,
                              stdin=subprocess.DEVNULL, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


class BuildkitRun:
    """One `docker build` with BuildKit on a streamed context.

    Iterate `batches()` for the CLI's output as lists of events (`{"line": ...}` /
    `{"solve": ...}`, see model/buildkit.py); then `returncode` and `image_id()`. `stop()`
    (any thread, idempotent, returns at once) ends the CLI's process group: SIGINT first (the
    CLI cancels the build), SIGKILL when it has not exited within STOP_GRACE_S; its
    connections to the engine close, which makes the engine cancel the build and end the
    step. `close()` stops it if still running and removes the temporary directory.
    """

    def __init__(self, cli: DockerCli, context: TarStream, *, engine_args: Sequence[str] = (),
                 dockerfile: str, tags: Sequence[str],
                 labels: Mapping[str, str], build_args: Mapping[str, str] | None = None,
                 platform: str | None = None, no_cache: bool = False, pull: bool = False,
                 target: str | None = None, secrets: Sequence[SecretSpec] = ()) -> None:
        self.cli = cli
        self.context = context
        self._tmp = Path(tempfile.mkdtemp(prefix="dcs-buildkit-"))  # 0700
        self._iidfile = self._tmp / "iid"
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self.returncode: int | None = None
        self.upload_error: BaseException | None = None
        self._engine_args = list(engine_args)
        try:
            self._start(dockerfile, tags, labels, build_args, platform, no_cache, pull, target, secrets)
        except BaseException:
            self.close()
            raise
        self._writer = threading.Thread(target=self._upload, name="dcs-buildkit-context", daemon=True)
        self._writer.start()

    def _start(self, dockerfile: str, tags: Sequence[str], labels: Mapping[str, str],
               build_args: Mapping[str, str] | None, platform: str | None, no_cache: bool, pull: bool,
               target: str | None, secrets: Sequence[SecretSpec]) -> None:
        cli = self.cli
        child_env = dict(environment())
        child_env[DOCKER_BUILDKIT] = "1"
        argv = [cli.path, *self._engine_args, *(["buildx", "build", "--load"] if cli.buildx else ["build"]),
                f"--progress={cli.progress}", "-f", dockerfile, "--iidfile", str(self._iidfile)]
        for tag in tags:
            argv += ["-t", tag]
        for key, value in labels.items():
            argv += ["--label", f"{key}={value}"]
        for name, value in (build_args or {}).items():
            child_env[name] = value  # `--build-arg NAME`: the CLI reads the value from its environment
            argv += ["--build-arg", name]
        if platform:
            argv += ["--platform", platform]
        if no_cache:
            argv.append("--no-cache")
        if pull:
            argv.append("--pull")
        if target:
            argv += ["--target", target]
        for secret in secrets:
            argv += ["--secret", self._secret_arg(secret)]
        argv.append("-")
        self.argv = argv
        try:
            self._process = subprocess.Popen(
                argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                env=child_env, start_new_session=True, close_fds=True)
        except OSError as exc:
            raise BuildError(f"Cannot run the docker CLI {cli.path}: {exc.strerror or exc}",
                             hint="Set DCS_DOCKER_CLI to a working docker CLI, or build with --builder classic.") from exc

    def _secret_arg(self, secret: SecretSpec) -> str:
        if secret.src is not None:
            source = Path(secret.src).expanduser()
            if not source.is_file():
                raise BuildError(f"--secret {secret.id}: the file {source} does not exist",
                                 hint="Give src= an existing file (its content is the secret).")
            return f"id={secret.id},src={source}"
        assert secret.env is not None
        value = env(secret.env)
        if value is None:
            raise BuildError(f"--secret {secret.id}: the environment variable {secret.env} is not set",
                             hint=f"Set {secret.env} in the environment of the kernel or the `dcs` command.")
        if self.cli.buildx:  # buildx reads the variable itself
            return f"id={secret.id},env={secret.env}"
        # The 20.10 client reads secrets from files only: a private file in our 0700 directory.
        path = self._tmp / f"secret-{secret.id}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(value)
        return f"id={secret.id},src={path}"

    def _upload(self) -> None:
        stdin = self._process.stdin
        assert stdin is not None
        chunks = iter(self.context)
        try:
            for chunk in chunks:
                if self._stopped.is_set():
                    break
                stdin.write(chunk)
        except BrokenPipeError:  # the CLI ended (failed, stopped) before reading it all
            pass
        except BaseException as exc:  # noqa: BLE001 - a context that cannot be read: stop the build
            self.upload_error = exc
            self.stop()
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
            try:
                stdin.close()
            except OSError:
                pass

    def batches(self) -> Iterator[list[dict[str, Any]]]:
        """The CLI's output, a list of events per read, until it exits."""
        stdout = self._process.stdout
        assert stdout is not None
        rawjson = self.cli.buildx
        lines: queue.Queue[bytes | None] = queue.Queue()

        def read() -> None:
            try:
                for raw in iter(stdout.readline, b""):
                    lines.put(raw)
            finally:
                lines.put(None)

        threading.Thread(target=read, name="dcs-buildkit-output", daemon=True).start()
        ended = False
        while not ended:
            item = lines.get()
            batch: list[dict[str, Any]] = []
            while True:
                if item is None:
                    ended = True
                    break
                batch.append(_event(item, rawjson))
                try:
                    item = lines.get_nowait()
                except queue.Empty:
                    break
            if batch:
                yield batch
        self.returncode = self._process.wait()
        self._writer.join(timeout=5)

    def image_id(self) -> str | None:
        try:
            text = self._iidfile.read_text(encoding="utf-8").strip()
        except OSError:
            return None
        return text or None

    def stop(self) -> None:
        """End the CLI and what it started (its process group); returns at once."""
        with self._lock:
            if self._stopped.is_set():
                return
            self._stopped.set()
        if self._process.poll() is None:
            _signal_group(self._process.pid, signal.SIGINT)
            threading.Thread(target=self._kill_later, name="dcs-buildkit-stop", daemon=True).start()

    def _kill_later(self) -> None:
        try:
            self._process.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            _signal_group(self._process.pid, signal.SIGKILL)

    def wait_stopped(self, timeout: float = STOP_WAIT_S + 5) -> bool:
        """After `stop()`: wait for the CLI to exit; True when it did."""
        try:
            self._process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    def close(self) -> None:
        process = getattr(self, "_process", None)
        if process is not None and process.poll() is None:
            self.stop()
            self.wait_stopped()
        if process is not None and process.stdout is not None:
            process.stdout.close()
        shutil.rmtree(self._tmp, ignore_errors=True)


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)  # start_new_session: the group id is the CLI's pid
    except (ProcessLookupError, PermissionError):
        pass


def _event(raw: bytes, rawjson: bool) -> dict[str, Any]:
    text = raw.decode("utf-8", "replace").rstrip("\r\n")
    if rawjson and text.startswith("{"):
        try:
            value = json.loads(text)
        except ValueError:
            return {"line": text}
        if isinstance(value, dict):
            return {"solve": value}
    return {"line": text}

