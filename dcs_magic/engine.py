"""Adapter on `docker.APIClient`: connect with a clear error, yield decoded build/push events.

Everything that knows docker-py lives here. The engine is the one the Docker CLI would use:
`DOCKER_HOST` (+ `DOCKER_TLS_VERIFY` / `DOCKER_CERT_PATH`), else the current docker context
(`DOCKER_CONTEXT` or `currentContext` in the Docker config), else the default socket.
Credentials are Docker's own (config file and credential helpers, as docker-py reads them)
unless the caller passes an `auth_config` for one push.

Errors inside an HTTP 200 stream are raised as `StreamError` carrying the engine's event; the
pipeline decides which dcs-magic error they become, since only it knows the progress state.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors
import requests.exceptions
from docker.context import ContextAPI
from docker.utils import build as build_utils

from .errors import BuildError, EngineError, PushError
from .imageref import parse_reference

__all__ = ["Engine", "StreamError", "connect", "engine_host"]

DEFAULT_SOCKET = "unix:///var/run/docker.sock"
_START_HINT = ("Start a Docker engine (Docker Desktop, `sudo systemctl start docker`, or `dockerd`), "
               "or point DOCKER_HOST / `docker context use` at a running one.")
# Directory inside a build context that is never sent to the engine (build logs live there).
PRIVATE_DIR = ".dcs"


class StreamError(Exception):
    """An `error` record inside an engine stream. `event` is the record as decoded."""

    def __init__(self, event: dict) -> None:
        detail = event.get("errorDetail") or {}
        self.event = event
        self.message = str(detail.get("message") or event.get("error") or "unknown engine error").strip()
        self.code = detail.get("code")
        super().__init__(self.message)


@dataclass(frozen=True)
class _Target:
    host: str
    tls: Any = None
    source: str = "default socket"


def _target() -> _Target:
    """Where the Docker CLI would connect, and why (for error messages)."""
    if os.environ.get("DOCKER_HOST"):
        kwargs = docker.utils.kwargs_from_env()
        return _Target(kwargs["base_url"], kwargs.get("tls"), "DOCKER_HOST")
    name = os.environ.get("DOCKER_CONTEXT") or docker.context.config.get_current_context_name()
    if name and name != "default":
        try:
            context = ContextAPI.get_context(name)
        except docker.errors.DockerException as exc:
            raise EngineError(f"docker context {name!r} could not be loaded: {exc}", host=None,
                              hint="Run `docker context ls` and `docker context use NAME`.") from exc
        if context is None:
            raise EngineError(f"docker context {name!r} does not exist", host=None,
                              hint="Run `docker context ls` and `docker context use NAME`.")
        host = re.sub(r"^http\+unix://", "unix://", context.Host or DEFAULT_SOCKET)  # docker-py's internal form
        return _Target(host, context.TLSConfig or None, f"docker context {name!r}")
    return _Target(DEFAULT_SOCKET, None, "default socket")


def engine_host() -> str:
    """The engine address `connect()` would use, e.g. `unix:///var/run/docker.sock`."""
    return _target().host


class _StreamingClient(docker.APIClient):
    """APIClient whose streams close their HTTP response when the consumer stops.

    Closing the response (on KeyboardInterrupt, a cancelled job, an error) is what tells the
    engine to abort a build; docker-py otherwise leaves it to the garbage collector.
    """

    def _stream_helper(self, response: Any, decode: bool = False) -> Iterator[Any]:
        try:
            yield from super()._stream_helper(response, decode)
        finally:
            response.close()


class Engine:
    """A connected Docker engine. Create with `connect()`; one per build/push (not shared)."""

    def __init__(self, api: docker.APIClient, host: str) -> None:
        self.api = api
        self.host = host

    # -- facts -----------------------------------------------------------------------

    def platform(self) -> str:
        """The engine's own platform, e.g. `linux/amd64` (from `/version`)."""
        info = self.api.version()
        arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(info.get("Arch", ""), info.get("Arch", ""))
        return f"{info.get('Os', 'linux')}/{arch}"

    def image_exists(self, reference: str) -> bool:
        try:
            self.api.inspect_image(reference)
        except docker.errors.ImageNotFound:
            return False
        return True

    def repo_digest(self, reference: str) -> str | None:
        """The registry digest the engine knows for a local image (its RepoDigests entry for the
        same repository); the reference's own digest when pinned; None when unknown."""
        try:
            ref = parse_reference(reference)
        except ValueError:
            return None
        if ref.digest:
            return ref.digest
        try:
            digests = self.api.inspect_image(reference).get("RepoDigests") or []
        except docker.errors.APIError:  # ImageNotFound included: not local (yet)
            return None
        for item in digests:
            repo, _, digest = item.partition("@")
            if _hub_name(repo) == _hub_name(ref.repository):
                return digest
        return None

    # -- streams ---------------------------------------------------------------------

    def build_events(self, context_dir: str | Path, *, tags: list[str], platform: str | None,
                     labels: dict[str, str] | None = None, buildargs: dict[str, str] | None = None,
                     nocache: bool = False, pull: bool = False, target: str | None = None,
                     dockerfile: str = "Dockerfile") -> Iterator[dict]:
        """Decoded build events for `context_dir` (its `.dockerignore` and `.dcs/` left out).

        Raises BuildError at once for what the engine rejects before building (Dockerfile
        parse errors), StreamError for a failing step, EngineError when the engine is gone.
        """
        context = _context_tar(Path(context_dir), dockerfile)
        try:
            events = self.api.build(
                fileobj=context, custom_context=True, dockerfile=dockerfile, tag=tags[0] if tags else None,
                decode=True, rm=True, forcerm=True, platform=platform, labels=labels or None,
                buildargs=buildargs or None, nocache=nocache, pull=pull, target=target,
            )
            yield from _checked(events)
        except docker.errors.APIError as exc:
            explanation = str(exc.explanation or exc)
            if "parse error" in explanation.lower():
                raise BuildError(f"The engine could not parse the Dockerfile: {explanation}",
                                 hint="Fix the Dockerfile (re-run its %%dockerfile cell) and build again.") from exc
            if exc.status_code == 400:
                raise BuildError(f"The engine rejected the build: {explanation}",
                                 hint="Check the build options (--platform, --build-arg, --target).") from exc
            raise self._engine_error("build", exc) from exc
        except (requests.exceptions.ConnectionError, docker.errors.DockerException) as exc:
            raise self._engine_error("build", exc) from exc
        finally:
            context.close()

    def push_events(self, repository: str, tag: str | None,
                    auth_config: dict | None = None) -> Iterator[dict]:
        """Decoded push events. `auth_config=None`: Docker's own config & credential helpers.

        The caller's `auth_config` dict is used for this one request only and not kept.
        """
        try:
            events = self.api.push(repository, tag, stream=True, decode=True, auth_config=auth_config)
            auth_config = None  # the request is sent: drop our reference to the credentials
            yield from _checked(events)
        except docker.errors.APIError as exc:
            reference = f"{repository}:{tag}" if tag else repository
            if exc.status_code == 404:
                raise PushError(f"No local image {reference} to push: {exc.explanation}",
                                reference=reference, reason=str(exc.explanation),
                                hint=f"Build it first, e.g. %dcs_build -t {reference}") from exc
            if exc.status_code == 429:
                raise PushError(f"The registry rate-limited the push of {reference} (429 Too Many Requests)",
                                reference=reference, reason="rate limited",
                                hint="Wait a while and push again.") from exc
            raise self._engine_error("push", exc) from exc
        except (requests.exceptions.ConnectionError, docker.errors.DockerException) as exc:
            raise self._engine_error("push", exc) from exc

    def tag(self, image_id: str, reference: str) -> None:
        """Add `reference` (repo[:tag]) to an image (docker-py's build takes a single tag)."""
        ref = parse_reference(reference)
        try:
            self.api.tag(image_id, ref.repository, ref.tag or "latest", force=True)
        except docker.errors.APIError as exc:
            raise BuildError(f"Could not tag {image_id[:19]} as {reference}: {exc.explanation}") from exc

    def remove_container(self, container_id: str) -> bool:
        """Force-remove a container; False when it is already gone."""
        try:
            self.api.remove_container(container_id, force=True)
        except docker.errors.NotFound:
            return False
        except docker.errors.APIError as exc:
            if exc.status_code == 409:  # removal already in progress on the engine side
                return False
            raise
        return True

    def containers_from(self, image_id: str) -> list[str]:
        """Ids of all containers (any state) created from `image_id`."""
        found = self.api.containers(all=True, filters={"ancestor": image_id}, quiet=True)
        return [c["Id"] for c in found]

    def close(self) -> None:
        self.api.close()

    # -- helpers ---------------------------------------------------------------------

    def _engine_error(self, what: str, exc: Exception) -> EngineError:
        reason = getattr(exc, "explanation", None) or str(exc)
        return EngineError(f"The Docker engine at {self.host} failed during {what}: {reason}",
                           host=self.host, hint=_START_HINT)


def _checked(events: Iterator[dict]) -> Iterator[dict]:
    """Pass events through; an `error` record raises StreamError (errors come in HTTP 200s)."""
    for event in events:
        if "error" in event or "errorDetail" in event:
            raise StreamError(event)
        yield event


def _hub_name(repository: str) -> str:
    """`busybox` and `docker.io/library/busybox` name the same repository."""
    for prefix in ("docker.io/library/", "index.docker.io/library/", "docker.io/", "library/"):
        if repository.startswith(prefix):
            return repository[len(prefix):]
    return repository


def context_excludes(context_dir: Path) -> list[str]:
    """What the build leaves out of CONTEXT_DIR: `.dockerignore`'s patterns, then `.dcs/`.

    Build logs are written to `.dcs/` inside the context; leaving them out of what the engine
    receives keeps `COPY . /x` cache hits stable from one build to the next. They come last,
    so a `!` pattern cannot re-include them.
    """
    patterns: list[str] = []
    ignore = Path(context_dir) / ".dockerignore"
    if ignore.is_file():
        patterns = [p.strip() for p in ignore.read_text(encoding="utf-8").splitlines()
                    if p.strip() and not p.startswith("#")]
    return patterns + [PRIVATE_DIR, f"{PRIVATE_DIR}/**"]


def _context_tar(context_dir: Path, dockerfile: str) -> io.BufferedRandom:
    """The build context as a tar, as `context_excludes` selects it."""
    return build_utils.tar(str(context_dir), exclude=context_excludes(context_dir),
                           dockerfile=(dockerfile, None), gzip=False)


def connect(timeout: int = 60) -> Engine:
    """Connect to the engine the Docker CLI would use, or raise EngineError saying where we tried."""
    target = _target()
    try:
        api = _StreamingClient(base_url=target.host, version="auto", tls=target.tls, timeout=timeout)
    except docker.errors.DockerException as exc:
        raise EngineError(
            f"Cannot reach the Docker engine at {target.host} ({target.source}): {_short(exc)}",
            host=target.host, hint=_START_HINT) from exc
    return Engine(api, target.host)


def _short(exc: Exception) -> str:
    text = str(exc)
    # docker-py nests the urllib3 reason several levels deep; its tail is the useful part.
    for marker in ("Connection refused", "No such file or directory", "Permission denied",
                   "Name or service not known", "timed out"):
        if marker in text:
            return marker
    return text[:300]
