"""`build()` / `push()`: engine events -> progress state -> results, with throttled sinks.

The functions behind `%dcs_build`, `%dcs_push` and the `dcs` command. They take plain keyword
arguments and an optional progress sink (any object with `update(snapshot)` and
`close(snapshot)`; see dcs_magic.widgets). The sink gets at most one `update()` per
`interval` seconds whatever the event rate, then exactly one `close()` with the final state.

`Job` runs either function in a background thread (`%dcs_build --bg`).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import closing, contextmanager, suppress
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from .._version import __version__
from ..errors import BuildError, ContextError, EngineError, PushError
from ..model.credentials import Secret, reveal
from ..model.dockerfile import final_base, secret_build_arg_warnings, with_label_instruction
from ..model.imageref import ImageRef, parse_reference
from ..model.progress import BuildState, ProgressSnapshot, PushState, Throttle
from ..model.results import BuildResult, PushResult
from .context import dockerfile_sha256

if TYPE_CHECKING:  # imported lazily at run time
    from ..adapters.engine import Engine

__all__ = ["CancelToken", "Cancelled", "Job", "ProgressSink", "build", "parse_pairs", "push"]

SHA_LABEL = "dcs_magic.dockerfile.sha256"
VERSION_LABEL = "dcs_magic.version"
BASE_DIGEST_LABEL = "dcs_magic.base.digest"
DCS_PLATFORM = "linux/amd64"
_CLEANUP_WAIT_S = 10.0
# The classic builder's own warnings in the build output, e.g. "[Warning] One or more
# build-args [FOO] were not consumed", "[WARNING]: Empty continuation line found in: ...".
_ENGINE_WARNING = re.compile(r"^\s*\[warning\]:?\s*(.+)$", re.IGNORECASE)


class ProgressSink(Protocol):
    """Where snapshots go: a widget, a text printer, a test recorder.

    A sink may also have `bind_cancel(cancel)`: build/push call it once at the start with a
    function that stops this run (thread-safe, idempotent, returns at once), e.g. for a
    Stop button. Sinks without it are fine.
    """

    def update(self, snapshot: ProgressSnapshot) -> None: ...

    def close(self, snapshot: ProgressSnapshot) -> None: ...


class Cancelled(KeyboardInterrupt):
    """A build or push was stopped: Ctrl-C, Kernel > Interrupt, a Stop button, `Job.cancel()`.

    A KeyboardInterrupt, so code that handles Ctrl-C handles it too; its message is the one
    line notebooks show ("Build cancelled; step container removed", "Push cancelled").
    """

    def __init__(self, message: str = "Cancelled") -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class CancelToken:
    """Cancellation of one run, shared by whoever may stop it and whatever must react.

    `cancel()` is thread-safe and idempotent and returns at once; it runs the callbacks
    registered with `on_cancel()` (e.g. `Engine.abort`, which closes the stream so a reader
    blocked on a silent step wakes up and the engine aborts). A callback registered after
    the cancellation runs immediately.
    """

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[], Any]] = []

    def cancel(self) -> None:
        """Stop the run now (from any thread); later calls do nothing."""
        with self._lock:
            if self._event.is_set():
                return
            self._event.set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            _quietly(callback)

    set = cancel  # threading.Event's spelling, for code written against `cancel: Event`

    def is_set(self) -> bool:
        """True once cancelled."""
        return self._event.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until cancelled or `timeout` s passed; True when cancelled."""
        return self._event.wait(timeout)

    def on_cancel(self, callback: Callable[[], Any]) -> Callable[[], None]:
        """Run `callback()` on cancellation (now, if already cancelled); returns an unregister."""
        with self._lock:
            if not self._event.is_set():
                self._callbacks.append(callback)
                return lambda: self._forget(callback)
        _quietly(callback)
        return lambda: None

    def _forget(self, callback: Callable[[], Any]) -> None:
        with self._lock:
            if callback in self._callbacks:
                self._callbacks.remove(callback)


def _quietly(callback: Callable[[], Any]) -> None:
    # A failing reaction (a widget gone, an engine already closed) must not stop the others.
    with suppress(Exception):
        callback()


def _token(cancel: CancelToken | threading.Event | None) -> CancelToken:
    """The run's token; a plain Event (older callers) is honoured at the next engine event."""
    if isinstance(cancel, CancelToken):
        return cancel
    token = CancelToken()
    if cancel is not None:
        token._event = cancel  # same flag: honoured at the next event (no callbacks on an Event)
    return token


def _bind(sink: Any, cancel: Callable[[], None]) -> None:
    """Give a sink with `bind_cancel` (a widget's Stop button) the way to stop this run."""
    bind = getattr(sink, "bind_cancel", None)
    if callable(bind):
        bind(cancel)


def _run_stoppable(token: CancelToken, fn: Callable[[], Any]) -> Any:
    """Run `fn()`; in the main thread, in a worker so that an interrupt acts at once.

    A blocking socket read does not see `_thread.interrupt_main()` (nor, on Windows, Ctrl-C),
    so the main thread only waits; on KeyboardInterrupt it cancels the token (which closes
    the stream) and waits for the worker's cleanup, then raises the worker's `Cancelled`.
    Off the main thread (a `--bg` Job) `fn` runs right there: no signal reaches it anyway.
    """
    if threading.current_thread() is not threading.main_thread():
        return fn()
    outcome: dict[str, Any] = {}
    done = threading.Event()

    def work() -> None:
        try:
            outcome["result"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
            outcome["error"] = exc
        finally:
            done.set()

    threading.Thread(target=work, name="dcs-run", daemon=True).start()
    try:
        while not done.wait(0.1):
            pass
    except KeyboardInterrupt:
        token.cancel()
        deadline = time.monotonic() + _CLEANUP_WAIT_S + 5
        while not done.is_set() and time.monotonic() < deadline:
            try:
                done.wait(0.1)
            except KeyboardInterrupt:  # pressed again: the cleanup is already under way
                pass
        if not done.is_set():
            raise Cancelled("Cancelled; the cleanup goes on in the background") from None
    if "error" in outcome:
        raise outcome.pop("error")
    return outcome["result"]


# -- throttled reporting ----------------------------------------------------------------


class _Reporter:
    """Applies events to a state and sends throttled snapshots to a sink.

    The event loop sends when the throttle allows; when events pause (a silent RUN step), a
    small flusher thread sends what is still unsent, so the display never lags more than one
    interval behind. Both go through one lock and one Throttle, so the rate bound holds.
    """

    def __init__(self, state: BuildState | PushState, sink: ProgressSink | None, interval: float,
                 cancel: CancelToken | None = None, clock: Callable[[], float] = time.monotonic
                 ) -> None:
        self.state = state
        self.sink = sink
        self.cancel = cancel
        self.clock = clock
        self.started = clock()
        self._throttle = Throttle(interval, clock)
        self._lock = threading.RLock()
        self._dirty = False
        self._stop = threading.Event()
        self._flusher: threading.Thread | None = None
        if sink is not None:
            self._send()  # show the widget's first state at once
            if interval > 0:
                self._flusher = threading.Thread(target=self._flush_loop, args=(interval,),
                                                 name="dcs-progress", daemon=True)
                self._flusher.start()

    @property
    def elapsed_s(self) -> float:
        return self.clock() - self.started

    def apply(self, event: dict) -> list[str]:
        return self.apply_many((event,))

    def apply_many(self, events: list[dict] | tuple[dict, ...]) -> list[str]:
        """Fold events (one read's worth) into the state under one lock acquisition, one
        cancel check and one throttle check; the log lines they completed."""
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled(f"{self.state.kind.capitalize()} cancelled")
        with self._lock:
            lines = self.state.apply_many(events)
            self._changed()
        return lines

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run a state method under the lock (finish, fail, warn, cancel)."""
        with self._lock:
            result = fn(*args)
            self._changed()
        return result

    def close(self) -> None:
        """Stop the flusher; send the final snapshot with `close()`."""
        self._stop.set()
        if self._flusher is not None and self._flusher is not threading.current_thread():
            self._flusher.join(timeout=5)
        if self.sink is not None:
            with self._lock:
                self.sink.close(self._snapshot())

    def _changed(self) -> None:
        self._dirty = True
        if self.sink is not None and self._running() and self._throttle.ready():
            self._send()

    def _running(self) -> bool:
        # Once the state says how the run ended, only close() shows it: an update() with
        # the same outcome made text sinks print "cancelled" (or "failed") twice.
        return self.state.status == "running"

    def _snapshot(self) -> ProgressSnapshot:
        return self.state.snapshot(elapsed_s=self.elapsed_s)

    def _send(self) -> None:
        self._dirty = False
        if self.sink is not None:
            self.sink.update(self._snapshot())

    def _flush_loop(self, interval: float) -> None:
        while not self._stop.wait(interval):
            with self._lock:
                if self._stop.is_set():
                    return
                if self._dirty and self._running() and self._throttle.ready():
                    try:
                        self._send()
                    except Exception:  # noqa: BLE001 - a broken display must not break the build
                        return


def parse_pairs(items: list[str] | tuple[str, ...] | None, option: str) -> dict[str, str]:
    """`["K=V", ...]` -> `{K: V}`; ValueError naming the option and the bad item."""
    pairs: dict[str, str] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{option} expects KEY=VALUE, got {item!r}")
        pairs[key.strip()] = value
    return pairs


# -- build ------------------------------------------------------------------------------


def build(context_dir: str | Path, *, tags: list[str] | tuple[str, ...] = (), name: str = "default",
          build_args: dict[str, str] | None = None, platform: str = DCS_PLATFORM,
          no_cache: bool = False, pull: bool = False, target: str | None = None,
          labels: dict[str, str] | None = None, progress: ProgressSink | None = None,
          interval: float = 0.1, cancel: CancelToken | None = None) -> BuildResult:
    """Build `context_dir` (its Dockerfile) with the Docker engine; return a BuildResult.

    The image is labelled `dcs_magic.dockerfile.sha256` and `dcs_magic.version`; the full log
    goes to `context_dir/.dcs/build-<timestamp>.log` (never sent to the engine). Raises
    ContextError (no Dockerfile), EngineError (no engine), BuildError (bad tag, rejected
    Dockerfile, failing step: the message names the step and ends with its last output
    lines).

    Stopping: Ctrl-C / Kernel > Interrupt, `cancel.cancel()` from another thread, or the
    function a sink's `bind_cancel` received. Within about a second the stream is closed (the
    engine aborts the step), the step's container is removed and `Cancelled` is raised
    ("Build cancelled; step container removed"); the sink's final status is "cancelled".
    """
    token = _token(cancel)
    state = BuildState(title=name)
    reporter = _Reporter(state, progress, interval, token)
    _bind(progress, token.cancel)
    return _run_stoppable(token, lambda: _reported(
        reporter, _build, reporter, state, Path(context_dir).expanduser(), token, tags=list(tags),
        name=name, build_args=build_args, platform=platform, no_cache=no_cache, pull=pull,
        target=target, labels=labels))


def _reported(reporter: _Reporter, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run `fn`; whatever happens, the sink gets a final snapshot that says how it ended."""
    state = reporter.state
    try:
        result = fn(*args, **kwargs)
    except KeyboardInterrupt:
        reporter.call(state.cancel)
        reporter.close()
        raise
    except BaseException as exc:
        # The error's full message (step, last lines, hint) replaces the engine's short one.
        reporter.call(state.fail, str(exc) or type(exc).__name__)
        reporter.close()
        raise
    reporter.close()
    return result


def _build(reporter: _Reporter, state: BuildState, context: Path, token: CancelToken, *,
           tags: list[str], name: str,
           build_args: dict[str, str] | None, platform: str, no_cache: bool, pull: bool,
           target: str | None, labels: dict[str, str] | None) -> BuildResult:
    from ..adapters import engine as engine_mod  # docker is imported only when a build starts

    dockerfile = context / "Dockerfile"
    if not dockerfile.is_file():
        raise ContextError(f"Build context {name!r} has no Dockerfile ({dockerfile})",
                           hint=f"Run a %%dockerfile {name} cell first (or pass the context "
                                "directory that holds the Dockerfile).")
    tags = [_checked_tag(tag) for tag in tags]
    text = dockerfile.read_bytes()
    sha = dockerfile_sha256(text)  # the same hash %%dockerfile reports
    source = text.decode("utf-8", "replace")
    base = final_base(source, build_args, target)
    own_labels = {SHA_LABEL: sha, VERSION_LABEL: __version__}
    log_path = _new_log_path(context / engine_mod.PRIVATE_DIR)  # never sent to the engine
    started = time.time()
    with closing(engine_mod.connect()) as engine, closing(_BuildLog(log_path)) as log, \
            _aborting(token, engine):
        # Provenance: the base's registry digest, when the engine has the base already (a base
        # pulled during the build is resolved afterwards, for the result and the lock file).
        base_local, base_digest = engine.local_repo_digest(base) if base and not pull else (False, None)
        if base_digest:
            own_labels[BASE_DIGEST_LABEL] = base_digest
        # dcs-magic's labels go in one LABEL instruction appended to the Dockerfile the engine
        # gets (one step; the file on disk is unchanged); the build option `labels`, which
        # the engine turns into one LABEL step per label, carries the user's --label ones, and
        # all of ours when the built stage is not the last (--target) or the file ends oddly.
        appended = with_label_instruction(source, own_labels) if target is None else None
        api_labels = {k: v for k, v in (labels or {}).items() if appended is None or k not in own_labels}
        dockerfile_bytes = None
        if appended is None:
            api_labels.update(own_labels)
        else:
            dockerfile_bytes = text + appended[len(source):].encode("utf-8")
        # Those LABEL steps come after the user's and are not theirs (issue 11.8).
        state.label_steps = len(api_labels) + (appended is not None)
        state.log_path = str(log_path)
        for warning in _platform_warnings(platform) + secret_build_arg_warnings(build_args):
            reporter.call(state.warn, warning)
        # The engine's platform (its /version) is asked while the build starts, not before it.
        platform_check = _background(_warn_engine_platform, reporter, engine, platform)
        if token.is_set():
            raise Cancelled("Build cancelled")
        events = engine.build_batches(context, tags=tags[:1], platform=platform, labels=api_labels,
                                      buildargs=build_args, nocache=no_cache, pull=pull, target=target,
                                      dockerfile_bytes=dockerfile_bytes)
        try:
            _consume(reporter, events, log, token)
        except engine_mod.StreamError as exc:
            log.writelines(f"{line}\n" for line in reporter.apply(exc.event))
            raise _build_error(state, log_path, platform) from exc
        except BuildError as exc:  # rejected before any step ran (Dockerfile parse error)
            log.write(f"ERROR: {exc.message}\n")
            raise
        except KeyboardInterrupt as exc:
            log.write("INTERRUPTED\n")
            token.cancel()  # Ctrl-C in this thread: make sure the stream is shut too
            running = state.container
            if running:  # stop it now rather than wait for the engine to notice
                _quietly(lambda: engine.remove_container(running))
            removed = _remove_leftovers(engine, state, since=started)
            what = "Build cancelled; step container removed" if running or removed else "Build cancelled"
            raise Cancelled(what) from exc
        platform_check.join(_CLEANUP_WAIT_S)  # its warning belongs in the result
        log.writelines(f"{line}\n" for line in reporter.call(state.finish))
        if not state.image_id:
            raise BuildError("The engine ended the build without an image id", log_path=str(log_path),
                             hint=f"See the full log: {log_path}")
        for tag in tags[1:]:  # docker-py's build takes one tag; the rest are added here
            engine.tag(state.image_id, tag)
            log.writelines(f"{line}\n" for line in reporter.apply({"stream": f"Successfully tagged {tag}\n"}))
        if base and not base_digest and not base_local:  # the build pulled it: ask now
            base_digest = engine.repo_digest(base)
    return BuildResult(image_id=state.image_id, tags=tags, dockerfile_sha256=sha,
                       duration_s=round(reporter.elapsed_s, 3), log_path=str(log_path), name=name,
                       base_image=base, base_digest=base_digest, platform=platform,
                       warnings=list(state.warnings))


def _consume(reporter: _Reporter, events: Any, log: Any = None, token: CancelToken | None = None) -> None:
    """Feed a stream to the reporter: events one by one, or lists of them (one per read from
    the engine, `Engine.build_batches`), each list applied at once; log lines to `log`."""
    # closing(): if we stop early (interrupt, cancel, a sink error) the generator's finally
    # closes the HTTP response at once, which is what makes the engine abort the build.
    build = isinstance(reporter.state, BuildState)
    try:
        with closing(events):
            for item in events:
                lines = reporter.apply_many(item if item.__class__ is list else (item,))
                if not lines:
                    continue
                text = "\n".join(lines) + "\n"
                if log is not None:
                    log.write(text)
                if build and "[" in text:  # the builder's "[Warning] ..." lines: rare, regex only then
                    for line in lines:
                        if "[" in line and (warning := _ENGINE_WARNING.match(line)):
                            reporter.call(reporter.state.warn, warning[1].strip())
    except Exception as exc:
        # A stream shut by a cancel ends with whatever the transport says (StreamAborted, a
        # reset connection): that is the cancellation, not a failure.
        if token is not None and token.is_set():
            raise Cancelled(f"{reporter.state.kind.capitalize()} cancelled") from exc
        raise


@contextmanager
def _aborting(token: CancelToken, engine: Engine) -> Iterator[None]:
    """While inside: cancelling the token aborts the engine's stream (from any thread)."""
    forget = token.on_cancel(engine.abort)
    try:
        yield
    finally:
        forget()


def _checked_tag(tag: str) -> str:
    try:
        ref = parse_reference(tag)
    except ValueError as exc:
        raise BuildError(f"Invalid tag {tag!r}: {exc}",
                         hint="Use -t [registry[:port]/]name[:tag], e.g. -t 127.0.0.1:5000/team/app:1") from exc
    if ref.digest:
        raise BuildError(f"Invalid tag {tag!r}: a tag cannot contain a digest (@sha256:...)",
                         hint="Drop the @sha256:... part; the digest is known after %dcs_push.")
    return str(ref) if ref.tag else f"{ref}:latest"


KEEP_BUILD_LOGS = 20
"""Build logs kept per context in `.dcs/` (the oldest are removed when a build starts)."""


def _new_log_path(directory: Path) -> Path:
    directory = directory.resolve()  # absolute: the result outlives a change of directory
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ContextError(f"Cannot create the build log directory {directory}: {exc.strerror}",
                           hint="Make the build context writable.") from exc
    # Timestamped names sort by age; keep room for the new one.
    for old in sorted(directory.glob("build-*.log"))[:-(KEEP_BUILD_LOGS - 1)]:
        old.unlink(missing_ok=True)
    return directory / f"build-{datetime.now().strftime('%Y%m%d-%H%M%S-%f')}.log"


class _BuildLog:
    """The build log file: a failed write (disk full, file size limit) is a ContextError that
    names the file, and stops the build (the stream is closed), instead of an OSError."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._failed = False
        try:
            self._file = path.open("w", encoding="utf-8")
        except OSError as exc:
            raise self._error(exc) from exc

    def _error(self, exc: OSError) -> ContextError:
        self._failed = True
        return ContextError(f"Cannot write the build log {self.path}: {exc.strerror or exc}",
                            hint=f"Free space on the disk that holds {self.path.parent} (or lift its "
                                 "size limit), then build again.")

    def write(self, text: str) -> None:
        try:
            self._file.write(text)
        except OSError as exc:
            raise self._error(exc) from exc

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def close(self) -> None:
        try:
            self._file.close()
        except OSError as exc:
            if not self._failed:  # a write already reported it
                raise self._error(exc) from exc


def _platform_warnings(platform: str | None) -> list[str]:
    if platform and platform != DCS_PLATFORM:
        return [f"Building for {platform}: Databricks Container Services runs {DCS_PLATFORM} "
                "images only, so this image will not start on a cluster."]
    return []


def _engine_platform_warnings(platform: str | None, engine_platform: str) -> list[str]:
    wanted = platform or engine_platform
    if wanted.split("/")[:2] != engine_platform.split("/")[:2]:
        return [f"The Docker engine runs {engine_platform} but the image is built for {wanted}: "
                "RUN steps need emulation (binfmt/QEMU) on this engine and may fail with "
                "'exec format error'."]
    return []


def _warn_engine_platform(reporter: _Reporter, engine: Engine, platform: str | None) -> None:
    try:
        engine_platform = engine.platform()
    except Exception:  # noqa: BLE001 - an engine that fails here fails the build itself, more clearly
        return
    for warning in _engine_platform_warnings(platform, engine_platform):
        reporter.call(reporter.state.warn, warning)


def _background(fn: Callable[..., Any], *args: Any) -> threading.Thread:
    """Start `fn(*args)` in a daemon thread (work that may overlap the build's start)."""
    thread = threading.Thread(target=fn, args=args, name="dcs-bg", daemon=True)
    thread.start()
    return thread


def _build_error(state: BuildState, log_path: Path, platform: str | None) -> BuildError:
    """The message names the failing step and ends with its last output lines."""
    where = (f"Step {state.failed_step}/{state.total_steps} : {state.failed_instruction}"
             if state.failed_step else "The build")
    lines = state.last_lines[-10:]
    message = f"{where} failed: {state.error}\nFull log: {log_path}"
    hint = ""
    if state.failed_step == 1 or (state.failed_instruction or "").upper().startswith("FROM"):
        hint = ("The base image could not be found or pulled: check its name and tag, and that "
                "its registry is reachable (or build/pull it locally first).")
    elif "exec format error" in (state.error or "") + "".join(lines):
        hint = f"The base image does not run on this engine's platform; build on an engine that runs {platform}."
    if lines:
        message += "\nLast output lines:\n" + "\n".join(f"    {line}" for line in lines)
    error = BuildError(message, step=state.failed_step, instruction=state.failed_instruction,
                       last_lines=lines, log_path=str(log_path), hint="" if lines else hint)
    return error


def _remove_leftovers(engine: Engine, state: BuildState, since: float) -> int:
    """After an interrupt: make sure the step's intermediate container is gone.

    Closing the stream makes the engine abort the build and (forcerm) remove the container
    itself; we wait a little for that, then remove what is left. A container created in the
    instant before the interrupt, not yet announced in the stream, is found as a container
    made after `since` (epoch seconds) directly from the last step's image and running the
    current step's command; nothing else (e.g. the user's own containers) is touched.
    """
    suspects = {state.container} if state.container else set()
    if state.last_image:
        suspects.update(cid for cid in engine.containers_from(state.last_image)
                        if _is_step_container(engine, cid, state, since))
    deadline = time.monotonic() + _CLEANUP_WAIT_S
    for cid in sorted(suspects):
        while time.monotonic() < deadline and engine.container_exists(cid):
            time.sleep(0.2)
        engine.remove_container(cid, quiet=True)
    return len(suspects)


def _is_step_container(engine: Engine, container_id: str, state: BuildState, since: float) -> bool:
    """A classic-builder container for the current step (see _remove_leftovers)."""
    try:
        info = engine.inspect_container(container_id)
    except EngineError:
        return False
    if info is None:  # gone already
        return False
    image = str(info.get("Image", "")).removeprefix("sha256:")
    created = _epoch(info.get("Created", ""))
    command = " ".join((info.get("Config") or {}).get("Cmd") or [])
    _, _, argument = state.instruction.partition(" ")
    return (image.startswith(state.last_image or "-") and created >= since - 1
            and ("#(nop)" in command or (bool(argument) and argument.strip() in command)))


def _epoch(timestamp: str) -> float:
    """Docker's RFC 3339 `Created` (nanoseconds, `Z`) -> epoch seconds; 0 when unreadable."""
    try:
        head, _, frac = timestamp.rstrip("Z").partition(".")
        return datetime.fromisoformat(head).replace(tzinfo=timezone.utc).timestamp() + float(f"0.{frac or 0}")
    except ValueError:
        return 0.0


# -- push -------------------------------------------------------------------------------


def push(reference: str, *, username: str | None = None, password: Secret | str | None = None,
         progress: ProgressSink | None = None, interval: float = 0.1,
         cancel: CancelToken | None = None) -> PushResult:
    """Push the local image `reference` (repo[:tag]) to its registry; return a PushResult.

    Credentials: Docker's own config and credential helpers, unless `username` is given with
    `password` (a `credentials.Secret` or a str); the password is passed to the engine for
    this one request and dropped.
    Failures raise PushError with the registry's reason (never a credential). Stopping works
    as for `build()` (closing the stream makes the engine abort the upload) and raises
    `Cancelled("Push cancelled")`.
    """
    token = _token(cancel)
    state = PushState(reference=reference)
    reporter = _Reporter(state, progress, interval, token)
    _bind(progress, token.cancel)
    # A one-item list: _push pops the credentials out, so no frame keeps them past the send.
    holder = [{"username": username, "password": password} if (username or password) else None]
    del password
    return _run_stoppable(token, lambda: _reported(reporter, _push, reporter, state, reference, holder, token))


def _push(reporter: _Reporter, state: PushState, reference: str, auth_holder: list,
          token: CancelToken) -> PushResult:
    from ..adapters import engine as engine_mod

    ref = _push_ref(reference)
    tag = ref.tag or "latest"
    pushed = state.reference = f"{ref.repository}:{tag}"
    auth = auth_holder.pop()
    if auth is not None:
        if not auth["username"] or not auth["password"]:
            raise PushError("A registry username needs a password and a password needs a username",
                            reference=pushed, hint="Pass --username U with --password-env VAR "
                            "(or answer the password prompt).")
        auth["serveraddress"] = ref.registry
    with closing(engine_mod.connect()) as engine, _aborting(token, engine):
        if token.is_set():
            raise Cancelled("Push cancelled")
        # No inspect first (the Docker CLI does none either): the engine refuses a missing
        # image in the stream, and only then do we ask whether the image is here.
        # The password stays a Secret (masked in tracebacks) up to this call to the engine.
        events = engine.push_events(ref.repository, tag, auth_config=None if auth is None else
                                    {**auth, "password": reveal(auth["password"])})
        del auth  # the generator holds it until the request is sent, then drops it
        try:
            _consume(reporter, events, token=token)
        except engine_mod.StreamError as exc:
            reporter.apply(exc.event)
            if _missing(engine, pushed):
                raise _no_local_image(pushed) from exc
            raise _push_error(pushed, ref.registry, exc.message) from exc
        except KeyboardInterrupt as exc:
            token.cancel()  # Ctrl-C in this thread: make sure the stream is shut too
            raise Cancelled("Push cancelled") from exc
        reporter.call(state.finish)
        if not state.digest:
            raise PushError(f"The push of {pushed} ended without a digest from the registry",
                            reference=pushed, reason="no digest")
    image = ImageRef(ref.domain, ref.path, tag, state.digest)
    return PushResult(reference=pushed, digest=state.digest, pinned=image.pinned(), image=image,
                      size=state.size, duration_s=round(reporter.elapsed_s, 3))


def _missing(engine: Engine, reference: str) -> bool:
    """After a failed push: is the image not in the engine at all? The engine says so in its
    own words ("An image does not exist locally with the tag", "tag does not exist"), but
    for a missing tag only after reaching the registry, so a registry that is also down or
    refusing would hide the real cause. An engine gone meanwhile: keep the push's error."""
    try:
        return not engine.image_exists(reference)
    except EngineError:
        return False


def _no_local_image(reference: str) -> PushError:
    return PushError(f"No local image {reference} to push", reference=reference, reason="image not found",
                     hint=f"Build it first: %dcs_build -t {reference}")


def _push_ref(reference: str) -> ImageRef:
    try:
        ref = parse_reference(reference)
    except ValueError as exc:
        raise PushError(f"Cannot push {reference!r}: {exc}", reference=reference,
                        hint="Write it as [registry[:port]/]name[:tag]") from exc
    if ref.digest:
        raise PushError(f"Cannot push {reference!r}: push a tag, not a digest", reference=reference,
                        hint="Drop the @sha256:... part; the digest is what the push returns.")
    return ref


# Registry / engine wording -> (what it means, how to fix). First match wins.
_PUSH_REASONS: list[tuple[tuple[str, ...], str, str]] = [
    (("429", "toomanyrequests", "too many requests"), "rate limited by the registry at {registry} (429 Too Many Requests)",
     "Wait a while and push again; authenticated pushes usually get higher limits."),
    (("connection refused", "no such host", "i/o timeout", "dial tcp", "no route to host", "network is unreachable"),
     "registry unreachable at {registry}", "Check the registry address and that the registry is running."),
    (("unauthorized", "authentication required", "no basic auth credentials", "incorrect username or password",
      "authentication failed"), "the registry at {registry} did not accept the credentials",
     "Log in with `docker login {registry}`, or pass --username U --password-env VAR."),
    (("denied", "forbidden"), "access denied by the registry at {registry}",
     "Check that the account may push to this repository."),
    (("does not exist locally", "no such image"), "no local image to push", "Build it first with %dcs_build -t REF."),
    (("unexpected http status: 5", "internal server error", "bad gateway", "service unavailable",
      "gateway timeout"), "the registry at {registry} failed on its side (HTTP 5xx)",
     "Push again in a while (layers already pushed are kept); if it persists, check the registry's status."),
]


def _push_error(reference: str, registry: str, message: str) -> PushError:
    lowered = message.lower()
    for needles, what, hint in _PUSH_REASONS:
        if any(needle in lowered for needle in needles):
            return PushError(f"Push of {reference} failed: {what.format(registry=registry)}: {message}",
                             reference=reference, reason=message, hint=hint.format(registry=registry))
    return PushError(f"Push of {reference} failed: {message}", reference=reference, reason=message)


# -- background jobs --------------------------------------------------------------------


class _TeeSink:
    """Keeps the last snapshot for `Job.state` and forwards to the real sink (if any)."""

    def __init__(self, sink: ProgressSink | None) -> None:
        self.sink = sink
        self.last: ProgressSnapshot | dict[str, Any] = {}

    def update(self, snapshot: ProgressSnapshot) -> None:
        self.last = snapshot
        if self.sink is not None:
            self.sink.update(snapshot)

    def close(self, snapshot: ProgressSnapshot) -> None:
        self.last = snapshot
        if self.sink is not None:
            self.sink.close(snapshot)

    def bind_cancel(self, cancel: Callable[[], None]) -> None:
        _bind(self.sink, cancel)


class Job:
    """A build or push running in a background thread (`--bg`).

    `status` ("running", "done", "failed", "cancelled"), `done()`, `result(timeout=None)`
    (returns the result or re-raises the failure; `Cancelled` after a cancel), `state` (the
    latest progress snapshot), `cancel()` (stops it within about a second, whatever the step
    prints, and cleans up like Ctrl-C), `add_done_callback(fn)`.

    Kernel > Interrupt interrupts the cell that is running, not a background job: stop a job
    with its widget's Stop button or `job.cancel()`.
    """

    def __init__(self, kind: str, title: str, fn: Callable[..., Any], *args: Any,
                 on_result: Callable[[Any], Any] | None = None, **kwargs: Any) -> None:
        """Start `fn(*args, **kwargs, progress=..., cancel=...)` in a daemon thread.

        `on_result(result)` runs in that thread after a success (e.g. to remember the result).
        """
        self.kind = kind
        self.title = title
        self._future: Future = Future()
        self._cancel = CancelToken()
        self._tee = _TeeSink(kwargs.pop("progress", None))
        self._thread = threading.Thread(target=self._run, args=(fn, args, kwargs, on_result),
                                        name=f"dcs-{kind}-{title}", daemon=True)
        self._thread.start()

    def _run(self, fn: Callable[..., Any], args: tuple, kwargs: dict,
             on_result: Callable[[Any], Any] | None) -> None:
        self._future.set_running_or_notify_cancel()
        try:
            result = fn(*args, progress=self._tee, cancel=self._cancel, **kwargs)
            if on_result is not None:
                on_result(result)
        except BaseException as exc:  # noqa: BLE001 - kept for result() / exception()
            self._future.set_exception(exc)
        else:
            self._future.set_result(result)

    @property
    def state(self) -> dict:
        """The latest progress snapshot (updated at most once per progress interval)."""
        return dict(self._tee.last)

    @property
    def status(self) -> str:
        """"running", "done", "failed" or "cancelled"."""
        if not self._future.done():
            return "running"
        error = self._future.exception()
        if error is None:
            return "done"
        return "cancelled" if isinstance(error, KeyboardInterrupt) else "failed"

    def done(self) -> bool:
        return self._future.done()

    def result(self, timeout: float | None = None) -> Any:
        """Wait for the result; re-raise the build's / push's error. TimeoutError if not done."""
        return self._future.result(timeout)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        return self._future.exception(timeout)

    def cancel(self, timeout: float | None = _CLEANUP_WAIT_S + 5) -> bool:
        """Stop the job now: the stream is closed at once (the engine aborts the step or the
        upload) and the step's container removed. Waits up to `timeout` s (None: no limit,
        0: not at all) for that cleanup; True when the job has ended. Safe to call twice."""
        self._cancel.cancel()
        if timeout == 0 or threading.current_thread() is self._thread:  # e.g. from a sink callback
            return self.done()
        self._thread.join(timeout)
        return self.done()

    def add_done_callback(self, fn: Callable[[Job], Any]) -> None:
        self._future.add_done_callback(lambda _future: fn(self))

    def _ipython_display_(self) -> None:
        """Show the job's line with a display id and replace it when the job ends, so a
        notebook never keeps a stale "running" line under a finished widget."""
        from IPython import get_ipython
        from IPython.display import display

        handle = display({"text/plain": repr(self)}, raw=True, display_id=True)
        # Only a notebook front-end replaces the line; a terminal would print it again later,
        # in the middle of whatever the user is typing.
        if handle is not None and getattr(get_ipython(), "kernel", None) is not None:
            self.add_done_callback(lambda job: _quietly(
                lambda: handle.update({"text/plain": repr(job)}, raw=True)))

    def __repr__(self) -> str:
        status = self.status
        if status == "running":
            state = self.state
            where = ""
            if state.get("total_steps"):
                where = f", step {state['step']}/{state['total_steps']}"
            elif state.get("layers_total"):
                where = f", {state['layers_done']}/{state['layers_total']} layers"
            return f"<Job {self.kind} {self.title!r}: running{where}, {state.get('elapsed_s', 0.0):.1f}s>"
        if status == "cancelled":
            return f"<Job {self.kind} {self.title!r}: cancelled>"
        error = self._future.exception()
        if error is not None:
            first = (getattr(error, "message", None) or str(error) or type(error).__name__).splitlines()[0]
            return f"<Job {self.kind} {self.title!r}: failed: {first}>"
        return f"<Job {self.kind} {self.title!r}: done -> {self._future.result()!r}>"
