"""Adapter on `docker.APIClient`: the one module of dcs-magic that imports docker.

Connect with a clear error, yield decoded build/push/pull events, run a probe container,
exec in a running one, inspect, list, stop and remove; and the `.dockerignore` matcher the
build uses. Everything that knows docker-py (or the `requests` exceptions it raises) lives
here, so error translation and container cleanup live once:

- `Engine._translated(what, image=...)` turns docker-py / requests failures into dcs-magic
  errors: an image missing locally is `ImageNotFoundError`, an engine that does not answer
  (or answers with an error) is `EngineError` naming the host, with a hint.
- `Engine.remove_container` is the one container-removal helper; containers created for a
  short while (probes, launches in progress) are removed at interpreter exit too, when the
  thread that made them is a daemon thread that never reaches its `finally`.

The engine is the one the Docker CLI would use (adapters/engine_address.py reads it):
`DOCKER_HOST` (+ `DOCKER_TLS_VERIFY` / `DOCKER_CERT_PATH`), else the current docker context
(`DOCKER_CONTEXT` or `currentContext` in the Docker config), else the default socket; a
unix socket, `tcp://` with or without TLS, or `ssh://` (adapters/ssh_transport.py: the
docker CLI's `ssh HOST docker system dial-stdio`). A connection that fails says why in one
paragraph that names where the address came from and how to fix it (`_unreachable`).
Credentials are Docker's own (config file and credential helpers, as docker-py reads them)
unless the caller passes an `auth_config` for one push.

Errors inside an HTTP 200 stream are raised as `StreamError` carrying the engine's event; the
pipeline decides which dcs-magic error they become, since only it knows the progress state.
"""

from __future__ import annotations

import atexit
import hashlib
import http.client
import json
import os
import re
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import docker
import docker.errors
import requests.exceptions
import urllib3.exceptions
from docker.utils import build as build_utils
from docker.utils import fnmatch as docker_fnmatch
from requests.sessions import merge_setting

from ..errors import BuildError, ContextError, EngineError, ImageNotFoundError, PushError
from ..model.imageref import parse_reference
from ..model.tail import Tail, text_tail
from ..settings import DOCKER_CLIENT_TIMEOUT, DOCKER_CLIENT_TIMEOUT_S, env
from .engine_address import DEFAULT_SOCKET, EngineAddress, resolve
from .owner import OWNER_LABEL, is_gone, this_process
from .ssh_transport import SshAdapter, ssh_argv
from .tarstream import Rule, TarStream, iter_walk, walk

if TYPE_CHECKING:  # Python 3.10 has no typing.Self
    from typing_extensions import Self

__all__ = ["CONTAINER_LOG_TAIL", "EXEC_TAIL", "ContainerRun", "Engine", "ExecResult", "StreamAborted",
           "StreamError", "buildkit_context", "connect", "context_excludes", "context_paths", "engine_address",
           "engine_host",
           "remove_held_containers"]

_START_HINT = ("Start a Docker engine (Docker Desktop, `sudo systemctl start docker`, or `dockerd`), "
               "or point DOCKER_HOST / `docker context use` at a running one.")
# Directory inside a build context that is never sent to the engine (build logs live there).
PRIVATE_DIR = ".dcs"
_BROKEN_STREAM_HINT = ("The Docker engine closed the connection or restarted mid-stream; check that it "
                       "is running (`docker info`) and try again.")
EXEC_TAIL = 8 * 2**20
"""The most of a command's output `Engine.exec` keeps by default (its end): a command run in a
container may print without end, and what dcs-magic itself runs there prints little (a read-back
of a log file's 1 MiB tail is the most)."""
CONTAINER_LOG_TAIL = 2**20
"""The most of each of stdout and stderr `Engine.run_container` keeps (its end). Its callers
run short commands and parse what they print: the check's probe (`key=value` facts, about 5 KB
with parity) and `python3 --version`; an image that makes them print more than this is cut
(`ContainerRun.truncated`)."""


class StreamError(Exception):
    """An `error` record inside an engine stream. `event` is the record as decoded."""

    def __init__(self, event: dict[str, Any]) -> None:
        detail = event.get("errorDetail") or {}
        self.event = event
        self.message = str(detail.get("message") or event.get("error") or "unknown engine error").strip()
        self.code = detail.get("code")
        super().__init__(self.message)


def engine_host() -> str:
    """The engine address `connect()` would use, e.g. `unix:///var/run/docker.sock`."""
    return resolve().host


def engine_address() -> EngineAddress:
    """The engine `connect()` would use, with its TLS files, source and `label`."""
    return resolve()


class StreamAborted(Exception):
    """The stream was closed on purpose by `Engine.abort()` (a cancelled build or push)."""


class _SshFailed(docker.errors.DockerException):
    """No answer through ssh; `ssh_said`: ssh's last words on stderr (why it failed)."""

    def __init__(self, message: str, ssh_said: str | None) -> None:
        super().__init__(message)
        self.ssh_said = ssh_said


class _StreamingClient(docker.APIClient):
    """APIClient whose streams can be stopped at once and have no read timeout.

    - A stream's HTTP response is closed when its consumer stops (KeyboardInterrupt, an error)
      and by `abort()` from any thread. Closing it is what tells the engine to abort a build
      or a push; docker-py otherwise leaves it to the garbage collector, and a consumer
      blocked in `recv()` on a silent step would only notice at the engine's next output.
    - Streams (build, push) get no read timeout: the engine may rightly say nothing for
      minutes (a silent compile, a registry slow to accept a layer) and detects a stalled
      registry itself. Ordinary API calls keep the client's timeout.
    """

    def __init__(self, address: EngineAddress, timeout: float) -> None:
        self._streams: set[Any] = set()
        self._streams_lock = threading.Lock()
        self.aborted = False
        self.ssh: SshAdapter | None = None
        if not address.is_ssh:
            if address.host.startswith("unix://"):
                _answering_socket(address.host[len("unix://"):], timeout)
            super().__init__(base_url=address.host, version="auto", tls=_tls_config(address), timeout=timeout)
            return
        # docker-py's ssh adapter needs paramiko: set up as for a unix socket (with a version
        # given, no request is made), then the ssh adapter takes the socket's place.
        super().__init__(base_url=DEFAULT_SOCKET, version=docker.constants.DEFAULT_DOCKER_API_VERSION,
                         timeout=timeout)
        self.adapters["http+docker://"].close()  # the unix socket's, never used
        self.ssh = SshAdapter(address.host, timeout)
        self._custom_adapter: Any = self.ssh
        self.mount("http+docker://", self.ssh)
        self.base_url = "http+docker://localhost"  # the host part is unused, as for a unix socket
        try:
            self._version = self._retrieve_server_version()
        except docker.errors.DockerException as exc:
            said = self.ssh.last_error  # the failed connection was closed (ssh reaped) on the way here
            self.close()
            raise _SshFailed(str(exc), said) from exc

    def _retrieve_server_version(self) -> str:
        # `version="auto"`: the engine's API version from `/_ping`'s API-Version header, as
        # the Docker CLI learns it. docker-py asks `/version`, for which the engine also asks
        # containerd and runs `runc --version`: 10-80 ms against about 1 ms, on every connect().
        # An engine whose ping has no such header is asked docker-py's way; one that does not
        # answer fails as docker-py's check would ("Error while fetching server API version").
        try:
            response = self._get(self._url("/_ping", versioned_api=False))
        except Exception as exc:  # noqa: BLE001 - what docker-py raises for the same failure
            raise docker.errors.DockerException(f"Error while fetching server API version: {exc}") from exc
        version = response.headers.get("API-Version") if response.status_code == 200 else None
        return version or str(super()._retrieve_server_version())

    def version(self, api_version: bool = True) -> dict[str, Any]:
        """The engine's `/version`, asked once per client (`Engine.platform()` reads Os/Arch)."""
        info: dict[str, Any] | None = getattr(self, "_version_info", None)
        if info is None:
            info = self._version_info = dict(super().version(api_version))
        return info

    def merge_environment_settings(self, url: str, proxies: Any, stream: Any, verify: Any, cert: Any
                                   ) -> dict[str, Any]:
        # An engine on a local socket (docker-py's `http+docker://` URLs: unix socket, named
        # pipe, ssh) is never reached through a proxy, .netrc or CA bundle: skip requests'
        # per-request environment lookups (milliseconds of proxy-bypass checks per call).
        # A TLS engine (`https://`) is verified against the CA its own settings name
        # (DOCKER_CERT_PATH, the context's ca.pem), never against REQUESTS_CA_BUNDLE /
        # CURL_CA_BUNDLE, which requests would otherwise put in its place.
        if not url.startswith("http+docker://"):
            merged = dict(super().merge_environment_settings(url, proxies, stream, verify, cert))
            merged["verify"] = merge_setting(verify, self.verify)
            return merged
        return {"proxies": merge_setting(proxies, self.proxies), "stream": merge_setting(stream, self.stream),
                "verify": merge_setting(verify, self.verify), "cert": merge_setting(cert, self.cert)}

    def _post(self, url: str, **kwargs: Any) -> Any:
        if not kwargs.get("stream"):
            return super()._post(url, **kwargs)
        kwargs["timeout"] = (self.timeout, None)  # (connect, read): no read timeout
        response = super()._post(url, **kwargs)
        with self._streams_lock:
            self._streams.add(response)
            aborted = self.aborted
        if aborted:  # abort() came while the request was being sent
            _shut(response)
        return response

    def _stream_helper(self, response: Any, decode: bool = False) -> Any:
        # docker-py's build/push/pull return what this returns. Decoded streams are read by
        # `_EventStream` (large reads, whole-batch JSON decoding); raw ones as docker-py does.
        if decode:
            return _EventStream(self, response)
        return self._raw_stream(response)

    def _raw_stream(self, response: Any) -> Iterator[Any]:
        try:
            yield from super()._stream_helper(response, False)
        finally:
            self._forget(response)

    def _forget(self, response: Any) -> None:
        """The stream is over: no longer ours to abort; close its response."""
        with self._streams_lock:
            self._streams.discard(response)
        response.close()

    def abort(self) -> None:
        """Close every open stream now; safe from any thread, idempotent."""
        with self._streams_lock:
            self.aborted = True
            streams = list(self._streams)
        for response in streams:
            _shut(response)


_READ_SIZE = 64 * 1024


class _EventStream:
    """The decoded events of one engine stream (build, push, pull), read in large blocks.

    docker-py reads a chunked response one HTTP chunk at a time (a 1-byte read, then the
    chunk's rest) and decodes each chunk with `raw_decode`: per event, several Python-level
    reads and a decoder call, the bottleneck of a build that prints 200,000 lines. Here each
    read takes whatever the socket has (up to 64 KiB), the chunked framing is undone on that
    block, and its complete lines (the engine writes one JSON object per `\\r\\n`-ended line)
    are decoded by one `json.loads` of them all. Objects that are not newline-aligned are
    split with `raw_decode`, as docker-py does.

    Iterating gives events one by one; `batches()` gives the events of each read as a list,
    so a consumer can fold a whole batch under one lock and one throttle check. A response
    that is not chunked (the engine refused the request at once) is docker-py's: its error
    is raised when the stream is first read. `close()` closes the response (idempotent).
    """

    def __init__(self, client: _StreamingClient, response: Any) -> None:
        self._client = client
        self._response = response
        self._closed = False
        self._events: Iterator[dict[str, Any]] | None = None

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return self

    def __next__(self) -> dict[str, Any]:  # an iterator, as docker-py's generator was
        if self._events is None:
            self._events = (event for batch in self.batches() for event in batch)
        return next(self._events)

    def batches(self) -> Iterator[list[dict[str, Any]]]:
        """Lists of decoded events, one list per read from the engine (never empty)."""
        try:
            fp = _body_file(self._response)
            if fp is None:  # not chunked (an error answer) or an unknown transport
                for event in docker.APIClient._stream_helper(self._client, self._response, True):
                    yield [event]
                return
            yield from _read_batches(fp)
        finally:
            self.close()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._client._forget(self._response)


def _body_file(response: Any) -> Any:
    """The buffered socket file under a chunked, unread, unencoded response; None otherwise."""
    raw = getattr(response, "raw", None)
    http_response = getattr(raw, "_fp", None)
    if (http_response is None or not getattr(http_response, "chunked", False)
            or getattr(http_response, "chunk_left", None) is not None  # http.client started on it
            or response.headers.get("Content-Encoding", "identity") not in ("", "identity")):
        return None
    fp = getattr(http_response, "fp", None)
    return fp if fp is not None and hasattr(fp, "read1") else None


def _read_batches(fp: Any, read_size: int = _READ_SIZE) -> Iterator[list[dict[str, Any]]]:
    """Undo the chunked transfer coding of the body in `fp` and decode its JSON lines.

    Yields the events completed by each read. A body that ends before its last (empty)
    chunk raises urllib3's ProtocolError, as a broken stream does under docker-py.
    """
    framed = b""  # bytes read but not yet unframed
    left = 0  # bytes of the current chunk still to come, its closing CRLF included
    body = b""  # unframed bytes after the last complete line
    done = False
    while not done:
        data = fp.read1(read_size)
        if not data:
            raise urllib3.exceptions.ProtocolError(
                "Response ended prematurely (the engine closed the stream before its end)")
        framed = framed + data if framed else data
        pieces = [body] if body else []
        pos, end = 0, len(framed)
        while pos < end:
            if left:
                take = min(left, end - pos)
                data_bytes = min(take, left - 2)  # the chunk's own bytes, not its closing CRLF
                if data_bytes > 0:
                    pieces.append(framed[pos:pos + data_bytes])
                pos += take
                left -= take
                continue
            newline = framed.find(b"\r\n", pos)
            if newline < 0:
                break  # the chunk-size line is incomplete: wait for more
            size_text = framed[pos:newline].split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise urllib3.exceptions.ProtocolError(
                    f"Invalid chunk size {size_text[:20]!r} in the engine's stream") from None
            pos = newline + 2
            if size == 0:  # the last chunk: the stream is complete (trailers are not used)
                done = True
                break
            left = size + 2
        framed = framed[pos:]
        body = b"".join(pieces)
        cut = body.rfind(b"\n") + 1
        if done:
            cut = len(body)
        elif not cut:
            if not body.rstrip().endswith(b"}"):
                continue  # no complete line yet
            # Maybe objects without a newline (the case docker-py's splitter is for).
            events, rest = _split_objects(body, final=False)
            body = rest
            if events:
                yield events
            continue
        lines, body = body[:cut], body[cut:]
        events = _decode_lines(lines)
        if events:
            yield events


def _decode_lines(lines: bytes) -> list[dict[str, Any]]:
    """Newline-separated JSON objects -> events: one `json.loads` of them all as an array
    (a raw newline never occurs inside a JSON value); line by line when that fails."""
    text = lines.rstrip()
    if not text:
        return []
    try:
        events: list[dict[str, Any]] = json.loads(b"[" + text.replace(b"\n", b",") + b"]")
    except ValueError:  # a blank line, several objects on one line, invalid UTF-8
        events = []
        for line in text.split(b"\n"):
            if line.strip():
                events += _split_objects(line, final=True)[0]
    return events


def _split_objects(data: bytes, *, final: bool) -> tuple[list[dict[str, Any]], bytes]:
    """JSON objects written back to back (not newline-aligned) -> (events, unparsed rest).

    `final`: the rest must be empty, or the stream carried something that is not JSON.
    """
    text = data.decode("utf-8", "replace")
    events: list[dict[str, Any]] = []
    pos, end = 0, len(text)
    while True:
        while pos < end and text[pos].isspace():
            pos += 1
        if pos >= end:
            return events, b""
        try:
            event, pos = _JSON.raw_decode(text, pos)
        except ValueError:
            if final:
                raise urllib3.exceptions.ProtocolError(
                    f"The engine's stream carried something that is not JSON: {text[pos:pos + 200]!r}") from None
            return events, text[pos:].encode("utf-8")
        events.append(event)


_JSON = json.JSONDecoder()


def _shut(response: Any) -> None:
    """Shut the response's socket down: wakes a reader blocked in `recv()` in another thread
    (closing the file descriptor alone would not) and makes the engine see the client gone."""
    sock = None
    try:
        sock = response.raw.connection.sock  # urllib3 2: the connection of a streamed response
    except AttributeError:
        pass
    if sock is None:
        try:  # urllib3 1.x / other transports: the socket under http.client's file
            raw = response.raw._fp.fp.raw
            sock = getattr(raw, "_sock", raw)
        except AttributeError:
            sock = None
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except (OSError, AttributeError, ValueError):
            pass  # already closed, or not a socket (npipe, ssh channel): closing below suffices
    # The consumer's own `finally` closes the response: closing it here, from another
    # thread, would race with http.client half-way through a read.


@dataclass(frozen=True)
class ContainerRun:
    """What one run-to-completion container left: its output and how it ended.

    `error` is the engine's reason when the container could not start (no /bin/sh, exec
    format error) or its wait status carried one; `timed_out` when it outlived the timeout;
    `truncated` when stdout or stderr was longer than CONTAINER_LOG_TAIL and holds its end only.
    """

    stdout: str
    stderr: str
    exit_code: int | None
    error: str = ""
    timed_out: bool = False
    truncated: bool = False


@dataclass(frozen=True)
class ExecResult:
    """A command run in a running container: exit code and combined stdout+stderr, its end
    only when it printed more than was asked to keep (`dropped`: how many bytes came before)."""

    exit_code: int | None
    output: bytes
    timed_out: bool = False
    dropped: int = 0

    @property
    def truncated(self) -> bool:
        return self.dropped > 0


# Engine address -> its platform (`Engine.platform()`), learnt once per process.
_PLATFORMS: dict[str, str] = {}

# Containers that must not outlive this process (probes, drivers of launches in progress):
# name -> its engine. Removed at exit when their owner (often a daemon thread) could not.
_TRANSIENT: dict[str, EngineAddress] = {}
_TRANSIENT_LOCK = threading.Lock()


class Engine:
    """A connected Docker engine. Create with `connect()`; one per build/push (not shared).

    `api` is docker-py's client and is private to this module: every other module asks
    the engine through the methods below.
    """

    def __init__(self, api: docker.APIClient, host: str, *, address: EngineAddress | None = None) -> None:
        self.api = api
        self.host = host
        self.address = address or EngineAddress(host, "host argument")

    @property
    def label(self) -> str:
        """Which engine this is, as the views show it (`local`, `tcp://h:2376 (TLS)`, `ssh://u@h`)."""
        return self.address.label

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- facts -----------------------------------------------------------------------

    def platform(self) -> str:
        """The engine's own platform, e.g. `linux/amd64` (from `/version`, asked once per
        engine address in this process: an engine's architecture does not change)."""
        known = _PLATFORMS.get(self.host)
        if known is None:
            info = self.api.version()
            arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(info.get("Arch", ""), info.get("Arch", ""))
            known = _PLATFORMS[self.host] = f"{info.get('Os', 'linux')}/{arch}"
        return known

    def server_version(self) -> str:
        """The engine's version (`/version`'s Version, e.g. `20.10.24+dfsg1`), asked once."""
        with self._translated("tell its version"):
            return str(self.api.version().get("Version") or "unknown")

    def image_exists(self, reference: str) -> bool:
        try:
            self.inspect_image(reference)
        except ImageNotFoundError:
            return False
        return True

    def inspect_image(self, reference: str) -> dict[str, Any]:
        """`docker image inspect` attrs. ImageNotFoundError when the engine does not have it."""
        with self._translated(f"inspect the image {reference}", image=reference):
            return dict(self.api.inspect_image(reference))

    def inspect_container(self, container: str) -> dict[str, Any] | None:
        """`docker container inspect` attrs; None when there is no such container."""
        with self._translated(f"inspect the container {container}"):
            try:
                return dict(self.api.inspect_container(container))
            except docker.errors.NotFound:
                return None

    def list_containers(self, filters: Mapping[str, str | list[str]], *,
                        all: bool = True) -> list[dict[str, Any]]:
        """`docker ps` (`-a` unless all=False) with engine filters, e.g. {"label": "k=v"}."""
        with self._translated("list containers"):
            return list(self.api.containers(all=all, filters=dict(filters)))

    def container_exists(self, container: str) -> bool:
        """Whether a container with this id (or id prefix) exists, in any state."""
        with self._translated("list containers"):
            return bool(self.api.containers(all=True, quiet=True, filters={"id": container}))

    def repo_digest(self, reference: str) -> str | None:
        """The registry digest the engine knows for a local image (its RepoDigests entry for the
        same repository); the reference's own digest when pinned; None when unknown."""
        return self.local_repo_digest(reference)[1]

    def local_repo_digest(self, reference: str) -> tuple[bool, str | None]:
        """(whether the engine has the image, `repo_digest(reference)`): a build that does not
        pull cannot give a local image a digest it lacks, so its caller need not ask again."""
        try:
            ref = parse_reference(reference)
        except ValueError:
            return False, None
        if ref.digest:
            return True, ref.digest
        try:
            digests = self.api.inspect_image(reference).get("RepoDigests") or []
        except docker.errors.APIError:  # ImageNotFound included: not local (yet)
            return False, None
        return True, self._digest_for(ref.repository, digests)

    @staticmethod
    def _digest_for(repository: str, digests: list[str]) -> str | None:
        for item in digests:
            repo, _, digest = item.partition("@")
            if _hub_name(repo) == _hub_name(repository):
                return digest
        return None

    # -- streams ---------------------------------------------------------------------

    def build_batches(self, context_dir: str | Path, *, tags: list[str], platform: str | None,
                      labels: dict[str, str] | None = None, buildargs: dict[str, str] | None = None,
                      nocache: bool = False, pull: bool = False, target: str | None = None,
                      dockerfile: str = "Dockerfile", aside: Aside | None = None,
                      hashes: dict[str, str] | None = None) -> Iterator[list[dict[str, Any]]]:
        """Decoded build events for `context_dir` (its `.dockerignore` and `.dcs/` left out), as
        lists: the events of one read from the engine each, in order (see `_EventStream`).

        Raises BuildError at once for what the engine rejects before building (Dockerfile
        parse errors), StreamError for a failing step, EngineError when the engine is gone.
        `aside` (see `dockerfile_aside`): the engine builds from that Dockerfile, sent beside
        the user's files, which reach the engine exactly as `docker build` sends them.
        `hashes`: filled with the sha256 of each file as it is streamed (`TarStream`).
        """
        # A cancel while the context uploads stops the body (no response to shut down yet).
        stream = _context_tar(Path(context_dir), dockerfile, cancelled=lambda: self.aborted,
                              aside=aside, hashes=hashes)
        context = iter(stream)
        streaming = False  # True once the engine answered: later failures are a broken stream
        try:
            events = self.api.build(
                fileobj=context, custom_context=True, dockerfile=aside.name if aside else dockerfile,
                tag=tags[0] if tags else None,
                decode=True, rm=True, forcerm=True, platform=platform, labels=labels or None,
                buildargs=buildargs or None, nocache=nocache, pull=pull, target=target,
            )
            streaming = True
            yield from _checked_batches(events)
        except StreamError:
            raise
        except Exception as exc:
            if self.aborted:
                raise StreamAborted("build cancelled") from exc
            if stream.failure is not None:  # the upload broke because the context could not be read
                raise ContextError(stream.failure.strerror or str(stream.failure),
                                   hint="Make the file readable, or leave it out of the build with "
                                        "a .dockerignore pattern.") from stream.failure
            error = self._build_failure(exc, streaming)
            if error is exc:
                raise
            raise error from exc
        finally:
            context.close()

    def _build_failure(self, exc: Exception, streaming: bool) -> Exception:
        """What a failing build request or stream means, as a dcs-magic error."""
        if isinstance(exc, docker.errors.APIError):
            explanation = str(exc.explanation or exc)
            if "parse error" in explanation.lower():
                return BuildError(f"The engine could not parse the Dockerfile: {explanation}",
                                  hint="Fix the Dockerfile (re-run its %%dockerfile cell) and build again.")
            if exc.status_code == 400:
                return BuildError(f"The engine rejected the build: {explanation}",
                                  hint="Check the build options (--platform, --build-arg, --target).")
            return self._engine_error("build", exc)
        if streaming and _broken_stream(exc):
            return BuildError(f"The build's output stream from the Docker engine at {self.host} broke: "
                              f"{_short(exc)}", hint=_BROKEN_STREAM_HINT)
        if isinstance(exc, (requests.exceptions.RequestException, docker.errors.DockerException)):
            return self._engine_error("build", exc)
        return exc

    def push_events(self, repository: str, tag: str | None,
                    auth_config: Mapping[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        """Decoded push events. `auth_config=None`: Docker's own config & credential helpers.

        The caller's `auth_config` (`username`, `password` as a `credentials.Secret`,
        `serveraddress`) is used for this one request only and not kept. The password stays
        a Secret in every frame of ours: the dict docker-py gets is built inside the call
        expression, and when the request fails the finished frames below it (docker-py's, which
        held that dict) are cleared and the request's auth header masked, so a traceback
        (`%xmode Verbose` shows every frame's locals) never shows it.
        """
        streaming = False
        try:
            events = self.api.push(repository, tag, stream=True, decode=True,
                                   auth_config=None if auth_config is None else _revealed(auth_config))
            auth_config = None  # the request is sent: drop our reference to the credentials
            streaming = True
            yield from _checked(events)
        except StreamError:
            raise
        except Exception as exc:
            _forget_credentials(exc)
            if self.aborted:
                raise StreamAborted("push cancelled") from exc
            error = self._push_failure(exc, f"{repository}:{tag}" if tag else repository, streaming)
            if error is exc:
                raise
            raise error from exc

    def _push_failure(self, exc: Exception, reference: str, streaming: bool) -> Exception:
        """What a failing push request or stream means, as a dcs-magic error."""
        if isinstance(exc, docker.errors.APIError):
            if exc.status_code == 404:
                return PushError(f"No local image {reference} to push: {exc.explanation}",
                                 reference=reference, reason=str(exc.explanation),
                                 hint=f"Build it first, e.g. %dcs_build -t {reference}")
            if exc.status_code == 429:
                return PushError(f"The registry rate-limited the push of {reference} (429 Too Many Requests)",
                                 reference=reference, reason="rate limited",
                                 hint="Wait a while and push again.")
            return self._engine_error("push", exc)
        if streaming and _broken_stream(exc):
            return PushError(f"The push of {reference} lost its stream from the Docker engine at "
                             f"{self.host}: {_short(exc)}", reference=reference, reason=_short(exc),
                             hint=_BROKEN_STREAM_HINT)
        if isinstance(exc, (requests.exceptions.RequestException, docker.errors.DockerException)):
            return self._engine_error("push", exc)
        return exc

    def abort(self) -> None:
        """Stop the running build/push stream now (from any thread): the engine sees the
        client gone and aborts; the consumer's next read ends with StreamAborted."""
        abort = getattr(self.api, "abort", None)
        if abort is not None:
            abort()

    @property
    def aborted(self) -> bool:
        return bool(getattr(self.api, "aborted", False))

    def tag(self, image_id: str, reference: str) -> None:
        """Add `reference` (repo[:tag]) to an image (docker-py's build takes a single tag)."""
        ref = parse_reference(reference)
        try:
            self.api.tag(image_id, ref.repository, ref.tag or "latest", force=True)
        except docker.errors.APIError as exc:
            raise BuildError(f"Could not tag {image_id[:19]} as {reference}: {exc.explanation}") from exc

    def pull_events(self, reference: str, auth_config: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        """Decoded pull events for `reference` (repo[:tag] or repo@digest).

        `auth_config=None`: Docker's own config & credential helpers; `{}`: no credentials at
        all (a cluster pulls with its spec's basic_auth only, not this machine's login).
        Its password may be a Secret: revealed inside the engine call only.
        The pull failing, in the stream or refused by the engine up front (unknown
        manifest, unauthorized), raises StreamError with the engine's reason; an engine that
        is not there raises EngineError.
        """
        try:
            events = self.api.pull(reference, stream=True, decode=True,
                                   auth_config=_revealed(auth_config) if auth_config else auth_config)
            auth_config = None  # the request is sent: drop our reference to the credentials
            yield from _checked(events)
        except docker.errors.APIError as exc:
            _forget_credentials(exc)
            if exc.response is None or exc.status_code is None:
                raise self._engine_error(f"pull of {reference}", exc) from exc
            raise StreamError({"error": str(exc.explanation or exc)}) from exc
        except (requests.exceptions.RequestException, docker.errors.DockerException) as exc:
            _forget_credentials(exc)
            raise self._engine_error(f"pull of {reference}", exc) from exc

    # -- containers ------------------------------------------------------------------

    def create_container(self, image: str, *, name: str, entrypoint: list[str],
                         environment: Mapping[str, str] | None = None,
                         labels: Mapping[str, str] | None = None, hostname: str | None = None,
                         user: str = "0", network_disabled: bool = False) -> str:
        """Create (not start) a container named `name` with its entrypoint replaced; its id.
        It carries the owner label (adapters/owner.py), so `sweep_orphans` can tell leftovers.

        ImageNotFoundError when the image is not local; EngineError when the engine refuses.
        """
        with self._translated(f"create a container from {image}", image=image):
            created = self.api.create_container(
                image, entrypoint=list(entrypoint), name=name, hostname=hostname, user=user,
                environment=dict(environment) if environment else None,
                labels={OWNER_LABEL: this_process(), **(labels or {})}, network_disabled=network_disabled)
        return str(created["Id"])

    def start(self, container: str) -> None:
        """Start a created container; EngineError with the runtime's reason when it cannot."""
        with self._translated(f"start the container {container}"):
            self.api.start(container)

    def run_container(self, image: str, entrypoint: list[str], *, name: str, timeout_s: float,
                      labels: Mapping[str, str] | None = None, user: str = "0",
                      network_disabled: bool = True) -> ContainerRun:
        """Create, start and wait for one container, read its logs, and always remove it.

        Its stdout and stderr are each read as a stream and only their last CONTAINER_LOG_TAIL
        bytes (1 MiB) kept, so an image that prints without end cannot fill this process; more
        than callers parse (the check's probe prints about 5 KB), and a cut one is
        `truncated`. A container that cannot start (runc: no /bin/sh, exec format error) is a
        run with `error` set, not an exception: for a probe, that is a fact about the image.
        One that runs longer than `timeout_s` is a run with `timed_out`. The container is
        removed also on errors and KeyboardInterrupt, and at interpreter exit if its thread
        never got to it (a daemon thread stopped by the exit).
        """
        self._hold(name)
        try:
            self.create_container(image, name=name, entrypoint=entrypoint, labels=labels, user=user,
                                  network_disabled=network_disabled)
            try:
                self.api.start(name)
            except docker.errors.APIError as exc:
                return ContainerRun("", "", None, error=str(exc.explanation or exc))
            except (requests.exceptions.RequestException, docker.errors.DockerException) as exc:
                raise self._engine_error(f"start of {name}", exc) from exc
            try:
                status = self.api.wait(name, timeout=timeout_s)
            except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError) as exc:
                if not _timed_out(exc):
                    raise self._engine_error(f"wait for {name}", exc) from exc
                return ContainerRun("", "", None, timed_out=True)
            with self._translated(f"read the logs of {name}"):
                stdout = self._logs(name, stderr=False, limit=CONTAINER_LOG_TAIL)
                stderr = self._logs(name, stderr=True, limit=CONTAINER_LOG_TAIL)
            error = str((status.get("Error") or {}).get("Message") or "")
            return ContainerRun(_text(stdout), _text(stderr), status.get("StatusCode"), error=error,
                                truncated=stdout.truncated or stderr.truncated)
        finally:
            self.remove_container(name, quiet=True)
            self._release(name)

    def exec(self, container: str, argv: list[str], *, user: str = "0",
             environment: Mapping[str, str] | None = None, tail: int = EXEC_TAIL) -> ExecResult:
        """Run `argv` in a running container and wait for it. Output is stdout and stderr
        interleaved, read as a stream of which only the last `tail` bytes are kept (how many
        came before: `dropped`), so memory stays near `tail` however much the command prints.
        Longer than the client's timeout (`connect(timeout=...)`): a result with `timed_out`.
        A container stopped or removed meanwhile ends the command at once."""
        kept = Tail(tail)
        with self._translated(f"run {argv[0]} in {container}"):
            exec_id = self.api.exec_create(container, list(argv), user=user,
                                           environment=dict(environment) if environment else None)["Id"]
            try:
                chunks = self.api.exec_start(exec_id, stream=True, demux=False)
                try:
                    for chunk in chunks:
                        kept.add(chunk)
                finally:
                    self._finished(chunks)
            except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError) as exc:
                if not _timed_out(exc):
                    raise
                return ExecResult(None, kept.data, timed_out=True, dropped=kept.dropped)
            code = self.api.exec_inspect(exec_id).get("ExitCode")
        return ExecResult(code, kept.data, dropped=kept.dropped)

    def _finished(self, stream: Any) -> None:
        """An output stream (an exec's, logs) is over or abandoned: close its response (and
        forget it: the streaming client has no longer to abort it)."""
        response = getattr(stream, "_response", None)
        forget = getattr(self.api, "_forget", None)
        if response is not None and forget is not None:
            forget(response)
        elif response is not None:
            response.close()

    def log_tail(self, container: str, *, stderr: bool = False, limit: int) -> tuple[int, bytes] | None:
        """(size, last `limit` bytes) of the container's stdout (or stderr), read as a stream so
        memory stays near `limit` however much it wrote; None when the container is gone."""
        with self._translated(f"read the logs of {container}"):
            try:
                kept = self._logs(container, stderr=stderr, limit=limit)
            except docker.errors.NotFound:
                return None
        return kept.total, kept.data

    def _logs(self, container: str, *, stderr: bool, limit: int) -> Tail:
        """The container's stdout (or stderr) as a stream, its last `limit` bytes kept."""
        kept = Tail(limit)
        chunks = self.api.logs(container, stdout=not stderr, stderr=stderr, stream=True, follow=False)
        try:
            for chunk in chunks:
                kept.add(chunk)
        finally:
            self._finished(chunks)
        return kept

    def put_archive(self, container: str, path: str, data: bytes) -> None:
        """Extract the tar `data` into `path` (an existing directory) inside the container."""
        with self._translated(f"copy files into {container}"):
            self.api.put_archive(container, path, data)

    def stop(self, container: str, timeout_s: int = 10) -> bool:
        """`docker stop` (SIGTERM, then SIGKILL after timeout_s); False when it is gone."""
        with self._translated(f"stop the container {container}"):
            try:
                self.api.stop(container, timeout=timeout_s)
            except docker.errors.NotFound:
                return False
        return True

    def remove_container(self, container: str | None, *, quiet: bool = False) -> bool:
        """Force-remove a container (and its anonymous volumes); False when it is already gone.

        The one removal helper. `quiet=True` for cleanup after another failure: an engine
        that is gone by then cannot remove anything, and the caller already has an error.
        """
        if not container:
            return False
        try:
            with self._translated(f"remove the container {container}"):
                try:
                    self.api.remove_container(container, force=True, v=True)
                except docker.errors.NotFound:
                    return False
                except docker.errors.APIError as exc:
                    if exc.status_code == 409:  # another caller's removal is in progress: let it end,
                        self._wait_until_gone(container)  # so that "removed" means no longer listed
                        return False
                    raise
        except EngineError:
            if quiet:
                return False
            raise
        return True

    def _wait_until_gone(self, container: str, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                self.api.inspect_container(container)
            except docker.errors.NotFound:
                return
            time.sleep(0.05)

    def sweep_orphans(self, label: str) -> list[str]:
        """Remove the containers carrying `label` whose owner process is certainly gone (a
        process killed before it could clean up); their names. Live owners' are left alone."""
        removed = []
        for container in self.list_containers({"label": label}):
            if is_gone((container.get("Labels") or {}).get(OWNER_LABEL)):
                name = (container.get("Names") or ["/" + container["Id"]])[0].lstrip("/")
                self.remove_container(name, quiet=True)
                removed.append(name)
        return removed

    def path_exists(self, container: str, path: str) -> bool:
        """Whether `path` exists in the container (read by the engine: no command runs inside).
        For marker files: the archive of `path` is read whole (to free the connection)."""
        with self._translated(f"look into {container}"):
            try:
                stream, _stat = self.api.get_archive(container, path)
            except docker.errors.NotFound:
                return False
            for _chunk in stream:
                pass
        return True

    def containers_from(self, image_id: str) -> list[str]:
        """Ids of all containers (any state) created from `image_id`."""
        with self._translated("list containers"):
            found = self.api.containers(all=True, filters={"ancestor": image_id}, quiet=True)
        return [c["Id"] for c in found]

    def hold_until_exit(self, container: str) -> None:
        """Remove `container` at interpreter exit unless `release`d first (for containers
        made by a daemon thread, e.g. a local cluster's driver while its launch runs)."""
        self._hold(container)

    def release(self, container: str) -> None:
        """The container's owner took care of it (removed it, or it may now outlive us)."""
        self._release(container)

    def close(self) -> None:
        self.api.close()

    # -- helpers ---------------------------------------------------------------------

    def _hold(self, name: str) -> None:
        with _TRANSIENT_LOCK:
            _TRANSIENT[name] = self.address

    def _release(self, name: str) -> None:
        with _TRANSIENT_LOCK:
            _TRANSIENT.pop(name, None)

    @contextmanager
    def _translated(self, what: str, *, image: str | None = None) -> Iterator[None]:
        """The one translation of docker-py / requests failures into dcs-magic errors."""
        try:
            yield
        except docker.errors.ImageNotFound as exc:
            shown = image or "the image"
            raise ImageNotFoundError(
                f"Image {shown!r} is not in the local Docker engine ({self.host})", image=image,
                host=self.host, hint=f"Build it (%dcs_build -t {shown}) or pull it (docker pull {shown}) "
                "first.") from exc
        except docker.errors.APIError as exc:
            raise EngineError(f"The Docker engine at {self.host} refused to {what}: "
                              f"{exc.explanation or exc}", host=self.host,
                              hint="Check the reference and the engine's state (docker info).") from exc
        except (requests.exceptions.RequestException, docker.errors.DockerException) as exc:
            raise self._engine_error(what, exc) from exc

    def _engine_error(self, what: str, exc: Exception) -> EngineError:
        reason = getattr(exc, "explanation", None) or str(exc)
        return EngineError(f"The Docker engine at {self.host} failed during {what}: {reason}",
                           host=self.host, hint=_START_HINT)


def _checked(events: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Pass events through; an `error` record raises StreamError (errors come in HTTP 200s)."""
    for event in events:
        if "error" in event or "errorDetail" in event:
            raise StreamError(event)
        yield event


def _checked_batches(stream: Any) -> Iterator[list[dict[str, Any]]]:
    """`_checked` for batches (an `_EventStream`'s, or any iterable of event lists): the events
    before an `error` record still come (as a shorter batch), then StreamError. Closes the
    stream when done or stopped."""
    batches = stream.batches() if isinstance(stream, _EventStream) else stream
    try:
        for batch in batches:
            for index, event in enumerate(batch):
                if "error" in event or "errorDetail" in event:
                    if index:
                        yield batch[:index]
                    raise StreamError(event)
            yield batch
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()


def _text(kept: Tail) -> str:
    """A kept tail of a container's output as text (a character cut in two left out)."""
    return text_tail(kept.data, cut=kept.truncated)


def _timed_out(exc: Exception) -> bool:
    """A client-side read timeout (docker-py waits with the socket's timeout)."""
    return isinstance(exc, requests.exceptions.ReadTimeout) or "timed out" in str(exc).lower()


@atexit.register
def remove_held_containers() -> None:
    """Remove the containers held for this process (`run_container` probes, containers
    passed to `hold_until_exit`) whose owners did not get to it: daemon threads at exit.
    Registered with atexit; a caller may run it earlier to unblock such an owner."""
    with _TRANSIENT_LOCK:
        left = dict(_TRANSIENT)
        _TRANSIENT.clear()
    by_engine: dict[EngineAddress, list[str]] = {}
    for name, address in left.items():
        by_engine.setdefault(address, []).append(name)
    for address, names in by_engine.items():  # the same engine, TLS or ssh included
        try:
            api = _StreamingClient(address, 30.0)
        except (docker.errors.DockerException, EngineError):
            continue
        with api:
            for name in names:
                try:
                    api.remove_container(name, force=True, v=True)
                except (docker.errors.DockerException, requests.exceptions.RequestException):
                    pass


def _hub_name(repository: str) -> str:
    """`busybox` and `docker.io/library/busybox` name the same repository."""
    for prefix in ("docker.io/library/", "index.docker.io/library/", "docker.io/", "library/"):
        if repository.startswith(prefix):
            return repository[len(prefix):]
    return repository


def context_excludes(context_dir: Path, ignore_text: str | None = None) -> list[str]:
    """What the build leaves out of CONTEXT_DIR: `.dockerignore`'s patterns, then `.dcs/`.

    Build logs are written to `.dcs/` inside the context; leaving them out of what the engine
    receives keeps `COPY . /x` cache hits stable from one build to the next. They come last,
    so a `!` pattern cannot re-include them. IGNORE_TEXT: the `.dockerignore` already read
    (what is sent is then what was decided on, read once).
    """
    patterns: list[str] = []
    ignore = Path(context_dir) / ".dockerignore"
    if ignore_text is not None:
        text = ignore_text
        patterns = [p.strip() for p in text.splitlines() if p.strip() and not p.startswith("#")]
    elif ignore.is_file():
        try:
            text = ignore.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ContextError(f"Cannot read {ignore}: {getattr(exc, 'strerror', None) or exc}",
                               hint="Make .dockerignore a readable UTF-8 text file of patterns, "
                                    "one per line.") from exc
        patterns = [p.strip() for p in text.splitlines() if p.strip() and not p.startswith("#")]
    return patterns + [PRIVATE_DIR, f"{PRIVATE_DIR}/**"]


def _revealed(auth_config: Mapping[str, Any]) -> dict[str, Any]:
    """The auth dict docker-py takes, its password revealed (called inside that call only)."""
    from ..model.credentials import reveal

    return {**auth_config, "password": reveal(auth_config.get("password"))}


def _forget_credentials(exc: BaseException) -> None:
    """After a failed engine request that carried credentials: clear the locals of the finished
    frames in EXC's traceback (docker-py's, holding the auth dict; running frames are left
    alone) and mask the `X-Registry-Auth` header of the request the error keeps."""
    import traceback

    seen: set[int] = set()
    error: BaseException | None = exc
    while error is not None and id(error) not in seen:  # the error and the ones it was raised from
        seen.add(id(error))
        traceback.clear_frames(error.__traceback__)
        response = getattr(error, "response", None)
        request = getattr(response, "request", None)
        headers = getattr(request, "headers", None)
        if headers is not None and "X-Registry-Auth" in headers:
            headers["X-Registry-Auth"] = "****"
        error = error.__cause__ or error.__context__


def context_paths(context_dir: str | os.PathLike[str], dockerfile: str = "Dockerfile",
                  ignore_text: str | None = None) -> set[str]:
    """Relative paths (files and directories) the build sends from CONTEXT_DIR: what
    `context_excludes` leaves in, and the Dockerfile always. The same set as docker-py's
    `exclude_paths` (its own pattern parser and fnmatch), walked faster (`tarstream.walk`)."""
    root = Path(context_dir)
    rules = context_rules(context_excludes(root, ignore_text), dockerfile)
    try:
        return walk(root, rules)
    except OSError as exc:
        raise ContextError(f"Cannot list the build context {root}: {exc.strerror or exc}"
                           + (f" ({exc.filename})" if exc.filename else ""),
                           hint="Make the directory readable, or leave it out with a .dockerignore "
                                "pattern.") from exc


def dockerfile_left_out(context_dir: str | os.PathLike[str], dockerfile: str = "Dockerfile") -> bool:
    """Whether the context's `.dockerignore` leaves out DOCKERFILE (which the engine still needs:
    the classic builder removes it before the first step, the CLI's BuildKit sends it apart)."""
    try:
        return _top_level_excluded(context_excludes(Path(context_dir)), dockerfile)
    except re.error:  # context_paths says which pattern is wrong
        return False


def _top_level_excluded(patterns: list[str], name: str) -> bool:
    """Whether `.dockerignore` PATTERNS leave out NAME at the top of the context: the last
    pattern that matches it decides, case-sensitively as the CLI matches on Linux. A pattern
    that does not compile raises re.error."""
    excluded = False
    for text in patterns:
        pattern = build_utils.Pattern(text)
        if pattern.dirs and re.match(docker_fnmatch.translate(pattern.cleaned_pattern), name) is not None:
            excluded = not pattern.exclusion
    return excluded


def context_rules(patterns: list[str], dockerfile: str = "Dockerfile") -> list[Rule]:
    """`.dockerignore` PATTERNS compiled for `tarstream.walk`, as docker-py's `exclude_paths`
    reads them: its Pattern parser (`!`, `..`, slashes), its fnmatch translation (`**`),
    `!DOCKERFILE` and (docker-py's PatternMatcher adds it) `!.dockerignore` appended; but
    case-sensitive, as the docker CLI and the engine match on Linux (docker-py lower-cases
    both sides)."""
    matcher = build_utils.PatternMatcher([*patterns, f"!{dockerfile}"])
    rules = []
    for pattern in matcher.patterns:
        try:
            regex = re.compile(docker_fnmatch.translate(pattern.cleaned_pattern))
        except re.error as exc:  # e.g. a reversed range: [z-a]
            raise ContextError(f".dockerignore pattern {pattern.cleaned_pattern!r} is not valid: {exc}",
                               hint="Fix or remove the pattern (character ranges are written "
                                    "low-high, e.g. [a-z]).") from exc
        rules.append(Rule(regex, not pattern.exclusion, len(pattern.dirs), pattern.cleaned_pattern))
    return rules


def _context_tar(context_dir: Path, dockerfile: str, cancelled: Callable[[], bool] | None = None,
                 aside: Aside | None = None, hashes: dict[str, str] | None = None) -> TarStream:
    """The build context as tar chunks (iterate it), as `context_paths` selects them,
    written by a thread while the request uploads them (a chunked body), so tarring and
    uploading overlap and memory stays flat; docker-py's own `tar` would first write the
    whole context to a temporary file. Closing the iterator stops the writer.
    The paths are walked as they are sent (`iter_walk`, in the docker CLI's order), never
    collected: memory does not grow with the number of files. The `.dockerignore` patterns
    are compiled here, so a bad one fails before the upload starts.
    `aside`: a Dockerfile and `.dockerignore` sent besides (the user's Dockerfile is then not
    forced in: the engine sees the context `docker build` would leave after its removals)."""
    if aside is None:
        rules = context_rules(context_excludes(context_dir), dockerfile)
        return TarStream(context_dir, iter_walk(context_dir, rules), cancelled=cancelled, hashes=hashes,
                         ordered=True)
    # The .dockerignore dockerfile_aside read decides what is sent (not a second read of the file).
    user = aside.user_dockerignore.decode("utf-8") if aside.user_dockerignore is not None else None
    rules = context_rules(context_excludes(context_dir, user), aside.name)
    files = (path for path in iter_walk(context_dir, rules) if path != ".dockerignore")  # sent as aside's
    if hashes is not None and aside.user_dockerignore is not None:  # hashed as the user's, like the lock does
        hashes[".dockerignore"] = hashlib.sha256(aside.user_dockerignore).hexdigest()
    return TarStream(context_dir, files, cancelled=cancelled, hashes=hashes, ordered=True,
                     extra={aside.name: aside.dockerfile, ".dockerignore": aside.dockerignore},
                     extra_like=aside.like)


def buildkit_context(context_dir: str | Path, cancelled: Callable[[], bool] | None = None,
                     hashes: dict[str, str] | None = None) -> TarStream:
    """The build context for `docker build -` with BuildKit: the files `context_paths` selects,
    Dockerfile included (the CLI reads it from the tar), but `.dockerignore` left out when it
    lists itself, as BuildKit's own context transfer does (BuildKit does not apply the patterns
    to a tar again: the stream already did). `hashes`: as `TarStream`, `.dockerignore` hashed
    as the user's file (the lock records the same files whichever builder ran)."""
    root = Path(context_dir)
    aside = dockerfile_aside(root, b"")
    # The .dockerignore dockerfile_aside read decides what is sent (not a second read of the file).
    user = aside.user_dockerignore.decode("utf-8") if aside is not None and aside.user_dockerignore is not None \
        else None
    files = context_paths(root, "Dockerfile", user)
    if aside is not None and aside.user_dockerignore is not None:  # the user's .dockerignore excludes itself
        files.discard(".dockerignore")
        if hashes is not None:
            hashes[".dockerignore"] = hashlib.sha256(aside.user_dockerignore).hexdigest()
    return TarStream(root, files, cancelled=cancelled, hashes=hashes)


@dataclass(frozen=True)
class Aside:
    """A Dockerfile the engine builds from, sent beside the user's files under `name`, and
    the `.dockerignore` sent in place of the user's (theirs plus `name`).

    Why: dcs-magic's labels are one LABEL instruction appended to the Dockerfile (one step;
    the build option `labels` costs a step per label). Sending that text as `Dockerfile` would
    put it in the image with `COPY . /dst`; sent under another name that `.dockerignore`
    lists, the engine reads it and then removes it, and `.dockerignore` too when it lists
    itself, before any step runs (the classic builder's `removeDockerfile`, which is also how
    `docker build -f -` sends its Dockerfile). The user's files arrive byte for byte.
    """

    name: str
    dockerfile: bytes
    dockerignore: bytes
    like: os.stat_result
    user_dockerignore: bytes | None  # the user's own .dockerignore, when there is one


def dockerfile_aside(context_dir: str | Path, dockerfile: bytes) -> Aside | None:
    """An Aside for sending DOCKERFILE with CONTEXT_DIR, or None when the engine would keep
    it (or a changed `.dockerignore`) in the context: a `.dockerignore` that does not list
    itself, or is not a plain file. Then the caller sends the context as it is."""
    root = Path(context_dir)
    ignore = root / ".dockerignore"
    name = ".dcs-dockerfile." + secrets.token_hex(10)  # as the docker CLI names a Dockerfile from stdin
    if ignore.is_symlink() or (ignore.exists() and not ignore.is_file()):
        return None
    if ignore.exists():
        try:  # read once: these bytes decide, and are what is sent
            own = ignore.read_bytes()
            own_text = own.decode("utf-8")
        except (OSError, UnicodeDecodeError):
            return None  # the context's own reading says what is wrong with it
        try:
            if not _top_level_excluded(context_excludes(root, own_text), ".dockerignore"):
                return None
        except re.error:  # context_paths says which pattern is wrong
            return None
        user: bytes | None = own
        listed = own + (b"" if own.endswith(b"\n") or not own else b"\n") + name.encode() + b"\n"
    else:
        user, listed = None, f".dockerignore\n{name}\n".encode()
    try:
        like = os.stat(root / "Dockerfile")
    except OSError:
        return None
    return Aside(name, dockerfile, listed, like, user)


def api_timeout() -> float:
    """Seconds an ordinary API call may take: `DOCKER_CLIENT_TIMEOUT` (as docker-compose reads
    it), else 60. Build and push streams have no read timeout (see _StreamingClient)."""
    value = (env(DOCKER_CLIENT_TIMEOUT) or "").strip()
    try:
        seconds = float(value) if value else DOCKER_CLIENT_TIMEOUT_S
    except ValueError:
        raise EngineError(f"DOCKER_CLIENT_TIMEOUT={value!r} is not a number of seconds", host=None,
                          hint="Set DOCKER_CLIENT_TIMEOUT to a positive number, e.g. 120, or unset it.") from None
    if not seconds > 0 or seconds == float("inf"):
        raise EngineError(f"DOCKER_CLIENT_TIMEOUT={value!r} must be a positive number of seconds", host=None,
                          hint="Set DOCKER_CLIENT_TIMEOUT to a positive number, e.g. 120, or unset it.")
    return seconds


def connect(timeout: float | None = None, *, host: str | None = None) -> Engine:
    """Connect to the engine the Docker CLI would use (or `host`, e.g. `unix:///x.sock`), or
    raise EngineError saying where we tried, why it failed and how to fix it.

    `timeout`: seconds for ordinary API calls (default `api_timeout()`); streams have none.
    """
    timeout = api_timeout() if timeout is None else timeout
    address = resolve(host)
    return Engine(_client(address, timeout), address.shown_host, address=address)


def _client(address: EngineAddress, timeout: float) -> _StreamingClient:
    """A connected client (its API version asked), or the EngineError that says why not."""
    try:
        return _StreamingClient(address, timeout)
    except docker.errors.DockerException as exc:
        raise _unreachable(address, exc, exc.ssh_said if isinstance(exc, _SshFailed) else None) from exc


def _answering_socket(path: str, timeout: float) -> None:
    """Raise what docker-py raises for an engine socket nobody answers on (missing, refused,
    not permitted), without the socket docker-py's unix connection leaves open when its
    connect fails (a ResourceWarning later, in whatever code the garbage collector interrupts)."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(timeout)
        probe.connect(path)
    except OSError as exc:
        raise docker.errors.DockerException(f"Error while fetching server API version: {exc!r}") from exc
    finally:
        probe.close()


def _tls_config(address: EngineAddress) -> docker.tls.TLSConfig | None:
    tls = address.tls
    if tls is None:
        return None
    client_cert = (tls.cert, tls.key) if tls.cert and tls.key else None
    try:
        return docker.tls.TLSConfig(client_cert=client_cert, ca_cert=tls.ca, verify=tls.verify)
    except docker.errors.TLSParameterError as exc:  # a file went away since resolve() looked
        raise EngineError(f"The TLS files for {address.shown_host} ({address.source}) cannot be used: {exc}",
                          host=address.shown_host, hint=_tls_hint(address)) from exc


def _tls_hint(address: EngineAddress) -> str:
    if address.context:
        return (f"Re-create the context with the engine's CA and this client's certificate: `docker context "
                f"create {address.context} --docker host={address.shown_host},ca=ca.pem,cert=cert.pem,key=key.pem`.")
    return ("Point DOCKER_CERT_PATH at the folder holding the CA that signed the engine's certificate (ca.pem) "
            "and this client's certificate and key (cert.pem, key.pem), as `docker --tlsverify` uses them.")


def _origin(address: EngineAddress) -> str:
    """Where the address came from, as messages say it."""
    if address.source == "default socket":
        return "the default socket; DOCKER_HOST is not set"
    return address.source


def _unreachable(address: EngineAddress, exc: Exception, ssh_said: str | None = None) -> EngineError:
    """One paragraph for an engine that could not be reached: where (and from which setting),
    why, and how to fix it; no traceback needed."""
    where = f"{address.shown_host} ({_origin(address)})"
    text = _chain_text(exc)
    lowered = text.lower()
    elsewhere = ("`docker context use default`" if address.context else
                 "unset DOCKER_HOST" if address.source == "DOCKER_HOST" else "set DOCKER_HOST")
    if address.is_ssh:
        reason = ssh_said or _short(exc)
        command = " ".join(ssh_argv(address.host)[:-3]) + " docker version"
        return EngineError(
            f"Cannot reach the Docker engine at {where} through ssh: {reason}", host=address.shown_host,
            hint=f"Check that `{command}` works from here without a prompt: the host's key in "
                 "~/.ssh/known_hosts (connect once with ssh and compare its fingerprint), your key in "
                 "ssh-agent or ~/.ssh (ssh runs with BatchMode=yes), and docker usable by that user on the "
                 f"remote host; or {elsewhere} to use another engine.")
    tls = address.tls
    cert_dir = address.cert_dir or "DOCKER_CERT_PATH"
    if tls is not None and "certificate_verify_failed" in lowered:
        if "mismatch" in lowered or "doesn't match" in lowered or "not valid for" in lowered:
            return EngineError(
                f"The Docker engine at {where} presented a TLS certificate that is not valid for that host "
                "name or IP address.", host=address.shown_host,
                hint="Use the host name or IP address the engine's certificate names (its subjectAltName), or "
                     "have the engine's certificate re-issued for this address.")
        return EngineError(
            f"The Docker engine at {where} presented a TLS certificate that the CA in {cert_dir} "
            f"({tls.ca or 'the system CAs'}) did not sign: certificate verify failed.", host=address.shown_host,
            hint=_tls_hint(address))
    if tls is not None and any(word in lowered for word in (
            "certificate required", "bad certificate", "unknown ca", "certificate unknown", "alert")):
        have = "its certificate was refused" if tls.cert else f"there is no cert.pem / key.pem in {cert_dir}"
        return EngineError(
            f"The Docker engine at {where} requires a client certificate it trusts, and {have}.",
            host=address.shown_host, hint=_tls_hint(address))
    if tls is not None and ("wrong version number" in lowered or "record layer failure" in lowered):
        return EngineError(
            f"The Docker engine at {where} does not speak TLS on that port.", host=address.shown_host,
            hint="Unset DOCKER_TLS_VERIFY / DOCKER_TLS for a plain-HTTP engine (only on a trusted network), or "
                 "use the engine's TLS port (2376 by convention).")
    if "http request to an https server" in lowered:
        return EngineError(
            f"The Docker engine at {where} speaks TLS and this client did not use it.", host=address.shown_host,
            hint="export DOCKER_TLS_VERIFY=1 and DOCKER_CERT_PATH=<folder with ca.pem, cert.pem, key.pem> "
                 "(as for `docker --tlsverify`).")
    if address.is_local:
        return EngineError(f"Cannot reach the Docker engine at {where}: {_short(exc)}",
                           host=address.shown_host, hint=_START_HINT)
    return EngineError(
        f"The Docker engine at {where} does not answer: {_short(exc)}", host=address.shown_host,
        hint="Check that dockerd runs there and listens on that address (e.g. `dockerd -H tcp://0.0.0.0:2376 "
             f"--tlsverify ...`), that the port is open from here (firewall, VPN), or {elsewhere} to use "
             "another engine.")


def _chain_text(exc: BaseException) -> str:
    """The messages of EXC and the errors it was raised from (docker-py nests the reason)."""
    texts, seen = [], set()
    error: BaseException | None = exc
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        texts.append(f"{type(error).__name__}: {error}")
        error = error.__cause__ or error.__context__
    return " | ".join(texts)


def _broken_stream(exc: BaseException) -> bool:
    """A stream that ended mid-way (connection reset, truncated chunk, a read timeout)."""
    return isinstance(exc, (requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError,
                            urllib3.exceptions.HTTPError, http.client.HTTPException, ConnectionError))


def _short(exc: Exception) -> str:
    text = str(exc)
    # docker-py nests the urllib3 reason several levels deep; its tail is the useful part.
    for marker in ("Connection refused", "No such file or directory", "Permission denied",
                   "Name or service not known", "timed out"):
        if marker in text:
            return marker
    return text[:300]
