"""`build()`: a build context's Dockerfile -> the Docker engine -> a BuildResult.

The function behind `%dcs_build` and `dcs build`. It takes plain keyword arguments and an
optional progress sink (see ops/runner.py: throttled updates, one final `close()`, a Stop
button through `bind_cancel`); this module holds what is the build's own: the labels dcs-magic
adds, the build log in `.dcs/`, platform warnings, the error that names the failing step, and
the removal of a step's container after an interrupt.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import closing
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._version import __version__
from ..errors import BuildError, ContextError, DcsError, EngineError, UsageError
from ..model.buildkit import BuildKitState, SecretSpec, secret_specs
from ..model.dockerfile import final_base, with_label_instruction
from ..model.imageref import parse_reference
from ..model.lint import secret_build_arg_warnings
from ..model.progress import BuildState
from ..model.results import BuildResult
from ..settings import PLATFORM
from .builder import BuilderChoice, choose_builder
from .context import dockerfile_sha256
from .runner import (
    CLEANUP_WAIT_S,
    Cancelled,
    CancelToken,
    ProgressSink,
    Reporter,
    aborting,
    consume,
    offer_cancel,
    quietly,
    reported,
    run_stoppable,
    token_for,
)

if TYPE_CHECKING:  # imported lazily at run time
    from ..adapters.buildkit import DockerCli
    from ..adapters.engine import Engine

__all__ = ["BASE_DIGEST_LABEL", "KEEP_BUILD_LOGS", "SHA_LABEL", "VERSION_LABEL", "build",
           "parse_pairs"]

SHA_LABEL = "dcs_magic.dockerfile.sha256"
VERSION_LABEL = "dcs_magic.version"
BASE_DIGEST_LABEL = "dcs_magic.base.digest"
BUILDKIT_DOCKERFILE_SENT = (
    ".dockerignore leaves out the Dockerfile, but BuildKit reads it from the context dcs-magic streams "
    "to the docker CLI, so `COPY .` also copies the Dockerfile into the image (the CLI building a folder "
    "sends it apart). Copy named paths instead of `.`, or build with --builder classic, whose context "
    "leaves it out as `docker build` does.")


def parse_pairs(items: list[str] | tuple[str, ...] | None, option: str) -> dict[str, str]:
    """`["K=V", ...]` -> `{K: V}`; ValueError naming the option and the bad item."""
    pairs: dict[str, str] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{option} expects KEY=VALUE, got {item!r}")
        pairs[key.strip()] = value
    return pairs


def build(context_dir: str | Path, *, tags: list[str] | tuple[str, ...] = (), name: str = "default",
          build_args: dict[str, str] | None = None, platform: str = PLATFORM,
          no_cache: bool = False, pull: bool = False, target: str | None = None,
          labels: dict[str, str] | None = None, progress: ProgressSink | None = None,
          interval: float = 0.1, cancel: CancelToken | None = None, hash_files: bool = False,
          builder: str = "auto", secrets: Sequence[str | SecretSpec] | None = None) -> BuildResult:
    """Build `context_dir` (its Dockerfile) with the Docker engine; return a BuildResult.

    `builder`: `auto` (BuildKit when the Dockerfile needs it, `RUN --mount`, heredocs,
    `# syntax=`, or `secrets` are given, and a BuildKit-capable docker CLI is found; the
    classic builder otherwise), `classic` (docker-py) or `buildkit` (the docker CLI, see
    ops/builder.py). `secrets`: `id=NAME,env=VAR` / `id=NAME,src=FILE` (or SecretSpec), for
    `RUN --mount=type=secret,id=NAME`; BuildKit only, values never on a command line, in the
    log, the image or the result. The result's `builder` says which one built.

    The image is labelled `dcs_magic.dockerfile.sha256` and `dcs_magic.version`; the full log
    goes to `context_dir/.dcs/build-<timestamp>.log` (never sent to the engine). Raises
    ContextError (no Dockerfile), EngineError (no engine), BuildError (bad tag, rejected
    Dockerfile, failing step: the message names the step and ends with its last output
    lines).

    Stopping: Ctrl-C / Kernel > Interrupt, `cancel.cancel()` from another thread, or the
    function a sink's `bind_cancel` received. Within about a second the stream is closed (the
    engine aborts the step), the step's container is removed and `Cancelled` is raised
    ("Build cancelled; step container removed"); the sink's final status is "cancelled".

    `hash_files=True`: the result's `context_files` holds the sha256 of every file the engine
    received (the Dockerfile aside), hashed as it was streamed: what the lock records.
    """
    token = token_for(cancel)
    context = Path(context_dir).expanduser()
    try:
        specs = secret_specs(secrets)
    except ValueError as exc:
        raise UsageError(str(exc), hint="e.g. --secret id=pip,env=PIP_INDEX_URL or --secret id=npmrc,src=.npmrc") from exc
    chosen: BuilderChoice | None = None
    refused: DcsError | None = None
    try:
        chosen = choose_builder(builder, context / "Dockerfile", specs)
    except BuildError as exc:  # shown by the progress view like any failure
        refused = exc
    state: BuildState
    if chosen is not None and chosen.cli is not None:
        state = BuildKitState(title=name, dockerfile=_text_or_none(context / "Dockerfile"))
    else:
        state = BuildState(title=name)
    state.builder = chosen.builder if chosen is not None else ""
    reporter = Reporter(state, progress, interval, token)
    offer_cancel(progress, token.cancel)
    if chosen is None:
        assert refused is not None
        error = refused
        return reported(reporter, _raise, error)
    options: dict[str, Any] = {
        "tags": list(tags), "name": name, "build_args": build_args, "platform": platform, "no_cache": no_cache,
        "pull": pull, "target": target, "labels": labels, "hash_files": hash_files}
    if chosen.cli is not None:
        assert isinstance(state, BuildKitState)
        kit_state, cli = state, chosen.cli
        return run_stoppable(token, lambda: reported(
            reporter, _build_buildkit, reporter, kit_state, context, token, cli=cli, secrets=specs, **options))
    return run_stoppable(token, lambda: reported(reporter, _build, reporter, state, context, token, **options))


def _raise(error: BaseException) -> BuildResult:
    raise error


def _text_or_none(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def _build(reporter: Reporter, state: BuildState, context: Path, token: CancelToken, *,
           tags: list[str], name: str,
           build_args: dict[str, str] | None, platform: str, no_cache: bool, pull: bool,
           target: str | None, labels: dict[str, str] | None, hash_files: bool) -> BuildResult:
    from ..adapters import engine as engine_mod  # docker is imported only when a build starts

    tags, text, sha, source, base = _read_context(context, name, tags, build_args, target)
    own_labels = {SHA_LABEL: sha, VERSION_LABEL: __version__}
    log_path = _new_log_path(context / engine_mod.PRIVATE_DIR)  # never sent to the engine
    started = time.time()
    with closing(engine_mod.connect()) as engine, closing(_BuildLog(log_path)) as log, \
            aborting(token, engine):
        reporter.call(state.use_engine, engine.label)  # the views say which engine builds
        # Provenance: the base's registry digest, when the engine has the base already (a base
        # pulled during the build is resolved afterwards, for the result and the lock file).
        base_local, base_digest = engine.local_repo_digest(base) if base and not pull else (False, None)
        if base_digest:
            own_labels[BASE_DIGEST_LABEL] = base_digest
        # dcs-magic's labels go in one LABEL instruction appended to a copy of the Dockerfile,
        # sent beside the user's files (one step; the context arrives as `docker build` sends
        # it: engine.Aside); the build option `labels`, which the engine turns into one LABEL
        # step per label, carries the user's --label ones, and all of ours when the built stage
        # is not the last (--target), the file ends oddly, or the copy cannot be hidden.
        appended = with_label_instruction(source, own_labels) if target is None else None
        aside = engine_mod.dockerfile_aside(context, text + appended[len(source):].encode("utf-8")) \
            if appended is not None else None
        api_labels = {k: v for k, v in (labels or {}).items() if aside is None or k not in own_labels}
        if aside is None:
            api_labels.update(own_labels)
        # Those LABEL steps come after the user's and are not theirs (issue 11.8).
        state.label_steps = len(api_labels) + (aside is not None)
        state.log_path = str(log_path)
        for warning in _platform_warnings(platform) + secret_build_arg_warnings(build_args):
            reporter.call(state.warn, warning)
        # The engine's platform (its /version) is asked while the build starts, not before it.
        platform_check = _background(_warn_engine_platform, reporter, engine, platform)
        if token.is_set():
            raise Cancelled("Build cancelled")
        streamed: dict[str, str] | None = {} if hash_files else None
        events = engine.build_batches(context, tags=tags[:1], platform=platform, labels=api_labels,
                                      buildargs=build_args, nocache=no_cache, pull=pull, target=target,
                                      aside=aside, hashes=streamed)
        try:
            consume(reporter, events, log, token)
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
                quietly(lambda: engine.remove_container(running))
            removed = _remove_leftovers(engine, state, since=started)
            what = "Build cancelled; step container removed" if running or removed else "Build cancelled"
            raise Cancelled(what) from exc
        platform_check.join(CLEANUP_WAIT_S)  # its warning belongs in the result
        log.writelines(f"{line}\n" for line in reporter.call(state.finish))
        if not state.image_id:
            raise BuildError("The engine ended the build without an image id", log_path=str(log_path),
                             hint=f"See the full log: {log_path}")
        for tag in tags[1:]:  # docker-py's build takes one tag; the rest are added here
            engine.tag(state.image_id, tag)
            log.writelines(f"{line}\n" for line in reporter.apply({"stream": f"Successfully tagged {tag}\n"}))
        if base and not base_digest and not base_local:  # the build pulled it: ask now
            base_digest = engine.repo_digest(base)
    return _result(reporter, state, builder="classic", tags=tags, sha=sha, log_path=log_path, name=name,
                   base=base, base_digest=base_digest, platform=platform, streamed=streamed)


def _build_buildkit(reporter: Reporter, state: BuildKitState, context: Path, token: CancelToken, *,
                    cli: DockerCli, secrets: list[SecretSpec], tags: list[str], name: str,
                    build_args: dict[str, str] | None, platform: str, no_cache: bool, pull: bool,
                    target: str | None, labels: dict[str, str] | None, hash_files: bool) -> BuildResult:
    """`_build` with BuildKit through the docker CLI (adapters/buildkit.py): the same labels,
    log file, warnings, provenance and result; dcs-magic's labels go as `--label` (BuildKit
    makes no step of a label). Stopping ends the CLI's process group, which cancels the build
    in the engine."""
    from ..adapters import engine as engine_mod
    from ..adapters.buildkit import BuildkitRun

    tags, text, sha, source, base = _read_context(context, name, tags, build_args, target)
    own_labels = {SHA_LABEL: sha, VERSION_LABEL: __version__}
    log_path = _new_log_path(context / engine_mod.PRIVATE_DIR)
    with closing(engine_mod.connect()) as engine, closing(_BuildLog(log_path)) as log:
        reporter.call(state.use_engine, engine.label)  # the views say which engine builds
        base_local, base_digest = engine.local_repo_digest(base) if base and not pull else (False, None)
        if base_digest:
            own_labels[BASE_DIGEST_LABEL] = base_digest
        state.log_path = str(log_path)
        log.write(f"BuildKit: {cli.describe()}, engine {engine.label}\n")
        for warning in _platform_warnings(platform) + secret_build_arg_warnings(build_args):
            reporter.call(state.warn, warning)
        if engine_mod.dockerfile_left_out(context):
            reporter.call(state.warn, BUILDKIT_DOCKERFILE_SENT)
        platform_check = _background(_warn_engine_platform, reporter, engine, platform)
        if token.is_set():
            raise Cancelled("Build cancelled")
        streamed: dict[str, str] | None = {} if hash_files else None
        stream = engine_mod.buildkit_context(context, cancelled=token.is_set, hashes=streamed)
        # The CLI talks to the engine docker-py connected to: its address and TLS files given as
        # the CLI's global options (the rest of the environment is the process's own).
        run = BuildkitRun(cli, stream, engine_args=engine.address.cli_args(), dockerfile="Dockerfile", tags=tags,
                          labels={**(labels or {}), **own_labels}, build_args=build_args,
                          platform=platform, no_cache=no_cache, pull=pull, target=target, secrets=secrets)
        forget = token.on_cancel(run.stop)
        try:
            consume(reporter, run.batches(), log, token)
            if token.is_set():  # stopped between two lines: the CLI ended quietly
                raise Cancelled("Build cancelled")
            image_id = run.image_id()
        except KeyboardInterrupt as exc:
            log.write("INTERRUPTED\n")
            token.cancel()  # Ctrl-C in this thread: make sure the CLI is stopped too
            run.stop()
            ended = run.wait_stopped()
            raise Cancelled("Build cancelled; the BuildKit build was stopped" if ended else
                            "Build cancelled; the docker CLI is still stopping") from exc
        finally:
            forget()
            run.close()
        if run.upload_error is not None:
            failure = run.upload_error
            raise ContextError(getattr(failure, "strerror", None) or str(failure),
                               hint="Make the file readable, or leave it out of the build with "
                                    "a .dockerignore pattern.") from failure
        if run.returncode != 0:
            reporter.call(state.fail, state.error or state.summary_error()
                          or f"docker build exited with status {run.returncode}")
            raise _build_error(state, log_path, platform)
        platform_check.join(CLEANUP_WAIT_S)
        if image_id:
            state.image_id = image_id
        log.writelines(f"{line}\n" for line in reporter.call(state.finish))
        if not state.image_id:
            raise BuildError("The docker CLI ended the build without an image id", log_path=str(log_path),
                             hint=f"See the full log: {log_path}")
        if base and not base_digest and not base_local:
            base_digest = engine.repo_digest(base)
    return _result(reporter, state, builder="buildkit", tags=tags, sha=sha, log_path=log_path, name=name,
                   base=base, base_digest=base_digest, platform=platform, streamed=streamed)


def _result(reporter: Reporter, state: BuildState, *, builder: str, tags: list[str], sha: str, log_path: Path,
            name: str, base: str | None, base_digest: str | None, platform: str,
            streamed: dict[str, str] | None) -> BuildResult:
    """The BuildResult either builder returns (`streamed`: the hashes of the files sent, as
    `context_files`, the Dockerfile left out)."""
    assert state.image_id is not None
    return BuildResult(image_id=state.image_id, tags=tags, dockerfile_sha256=sha,
                       duration_s=round(reporter.elapsed_s, 3), log_path=str(log_path), name=name,
                       base_image=base, base_digest=base_digest, platform=platform,
                       warnings=list(state.warnings), builder=builder,
                       context_files=None if streamed is None else
                       {k: v for k, v in sorted(streamed.items()) if k != "Dockerfile"})


def _read_context(context: Path, name: str, tags: list[str], build_args: dict[str, str] | None,
                  target: str | None) -> tuple[list[str], bytes, str, str, str | None]:
    """What both builders start from: the tags checked, the Dockerfile's bytes, its sha256 (the
    same hash %%dockerfile reports), its text and the final stage's base; a ContextError
    naming the cell to run when there is no Dockerfile."""
    dockerfile = context / "Dockerfile"
    if not dockerfile.is_file():
        raise ContextError(f"Build context {name!r} has no Dockerfile ({dockerfile})",
                           hint=f"Run a %%dockerfile {name} cell first (or pass the context "
                                "directory that holds the Dockerfile).")
    checked = [_checked_tag(tag) for tag in tags]
    text = dockerfile.read_bytes()
    source = text.decode("utf-8", "replace")
    return checked, text, dockerfile_sha256(text), source, final_base(source, build_args, target)


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
    # Absolute (the result outlives a change of directory), but the log directory itself is
    # not resolved: a committed `.dcs -> elsewhere` link must not redirect logs or deletions.
    directory = directory.parent.resolve() / directory.name
    _refuse_link(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ContextError(f"Cannot create the build log directory {directory}: {exc.strerror}",
                           hint="Make the build context writable.") from exc
    _refuse_link(directory)  # made a link meanwhile
    # Timestamped names sort by age; keep room for the new one. unlink removes a link itself,
    # never what it points to.
    for old in sorted(directory.glob("build-*.log"))[:-(KEEP_BUILD_LOGS - 1)]:
        old.unlink(missing_ok=True)
    return directory / f"build-{datetime.now().strftime('%Y%m%d-%H%M%S-%f')}.log"


def _refuse_link(directory: Path) -> None:
    """ContextError when the build log directory DIRECTORY is a symlink: dcs-magic never writes
    or deletes through one (a link committed to a repository could point anywhere)."""
    if directory.is_symlink():
        raise ContextError(f"The build log directory {directory} is a symlink (to {os.readlink(directory)}); "
                           "dcs-magic does not write or delete build logs through a link",
                           hint=f"Remove the link (rm {directory}); the next build creates the directory.")


class _BuildLog:
    """The build log file: a failed write (disk full, file size limit) is a ContextError that
    names the file, and stops the build (the stream is closed), instead of an OSError."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._failed = False
        try:
            # O_EXCL | O_NOFOLLOW: a new file, never through a link planted under the name.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
            self._file = os.fdopen(fd, "w", encoding="utf-8")
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
    if platform and platform != PLATFORM:
        return [f"Building for {platform}: Databricks Container Services runs {PLATFORM} "
                "images only, so this image will not start on a cluster."]
    return []


def _engine_platform_warnings(platform: str | None, engine_platform: str) -> list[str]:
    wanted = platform or engine_platform
    if wanted.split("/")[:2] != engine_platform.split("/")[:2]:
        return [f"The Docker engine runs {engine_platform} but the image is built for {wanted}: "
                "RUN steps need emulation (binfmt/QEMU) on this engine and may fail with "
                "'exec format error'."]
    return []


def _warn_engine_platform(reporter: Reporter, engine: Engine, platform: str | None) -> None:
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
    deadline = time.monotonic() + CLEANUP_WAIT_S
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
