"""One-time job runs, the I/O half of `dcs run` / `%dcs_run`: upload a local file, submit,
follow the run to its end.

The run bodies and the reading of the answers are pure (`dcs_magic.model.jobs`); this module
asks a workspace (any object with the `Workspace` run methods, the local preflight one
included) for them. Both front-ends call the same three steps and only show what they are
told (`on_upload`, `on_change`):

    source = python_file_source("job.py")          # a local Path, or the remote path as it is
    run_id = submit_run(workspace, spec, python_file=source, on_upload=print)
    result = follow_run(workspace, run_id, on_change=lambda change: print(change.line()))
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ApiError, DcsError, UsageError
from ..model.jobs import RunResult, RunStateChange, is_remote_path, run_result, staged_path, task_run_id
from ..settings import RUN_TIMEOUT_S

if TYPE_CHECKING:  # imported lazily at run time: the workspace adapter loads requests
    from ..adapters.workspace import Workspace
    from ..model.spec import ClusterSpec

__all__ = ["Upload", "follow_run", "python_file_source", "submit_run", "upload_python_file"]

_REMOTE_FORMS = ("/Workspace/..., /Volumes/..., dbfs:/... (read from the workspace) or file:/... "
                 "(inside the image)")


@dataclass(frozen=True)
class Upload:
    """A local file uploaded for a run: `source` as the user named it, `destination` the
    workspace path the run reads."""

    source: str
    destination: str

    def __str__(self) -> str:
        return f"Uploaded {self.source} to {self.destination}"


def python_file_source(path: str) -> str | Path:
    """What a `--python-file` names: a remote path (`jobs.is_remote_path`) as it is, else the
    file on this machine (a Path, to be uploaded by `submit_run`). UsageError naming the path
    when it is neither: no such local file, or a directory. Asks no workspace."""
    if is_remote_path(path):
        return path
    local = Path(path).expanduser()
    if local.is_file():
        return local
    if local.is_dir():
        raise UsageError(f"--python-file {path} is a directory, not a Python file",
                         hint="name the .py file to run")
    raise UsageError(f"--python-file {path}: no such file on this machine, and not a workspace path",
                     hint=f"give a local .py file (it is uploaded before the run), or a path the run reads: "
                          f"{_REMOTE_FORMS}")


def upload_python_file(workspace: Workspace, local: Path, *, source: str | None = None) -> Upload:
    """Upload LOCAL to the user's run folder, `/Workspace/Users/<userName>/.dcs/runs/<hash>/<name>`
    (`jobs.staged_path`: content addressed, so the same file is uploaded to the same path and
    nothing else of the user's is written over); return the Upload."""
    try:
        data = local.read_bytes()
    except OSError as exc:
        raise UsageError(f"--python-file {source or local} cannot be read: {exc.strerror or exc}") from exc
    user = workspace.current_user().get("userName")
    if not isinstance(user, str) or not user or "/" in user:
        raise ApiError(f"scim/v2/Me answered no usable userName ({user!r}): there is no "
                       "/Workspace/Users/<you> folder to upload the run's file to", status=200,
                       hint=f"upload it yourself (databricks workspace import) and pass that path: {_REMOTE_FORMS}")
    destination = staged_path(user, local.name, data)
    # Overwriting is safe: a file at this path has this content (its hash is in the path).
    workspace.upload(destination, data, overwrite=True)
    return Upload(source or str(local), destination)


def submit_run(workspace: Workspace, spec: ClusterSpec | Mapping[str, Any], *, python_file: str | Path | None = None,
               notebook: str | None = None, parameters: Any = (), run_name: str | None = None,
               on_upload: Callable[[Upload], Any] | None = None) -> int:
    """Submit a one-time run on a job cluster made from SPEC; return its run_id. A local
    `python_file` (a Path, from `python_file_source`) is uploaded first (`upload_python_file`,
    then `on_upload(upload)`) and the run reads the uploaded copy."""
    if isinstance(python_file, Path):
        upload = upload_python_file(workspace, python_file)
        if on_upload is not None:
            on_upload(upload)
        python_file = upload.destination
    return workspace.submit_run(spec, python_file=python_file, notebook=notebook, parameters=parameters,
                                run_name=run_name)


def follow_run(workspace: Workspace, run_id: int, *, timeout_s: float = RUN_TIMEOUT_S,
               on_state: Callable[[dict[str, Any]], Any] | None = None,
               on_change: Callable[[RunStateChange], Any] | None = None,
               first: Mapping[str, Any] | None = None, now: Callable[[], float] = time.time,
               **wait: Any) -> RunResult:
    """Wait for the run to end, fetch its task's output, and return the RunResult (which
    may be a failure: `result.ok`, `result.raise_for_state()`).

    At each change of the run's state (or state message) `on_state(run)` gets the runs/get
    answer and `on_change(change)` a `RunStateChange` stamped with `now()`: what `dcs run`
    prints and `%dcs_run` shows. `first`, a runs/get answer the caller already has (for the
    run page URL), is reported first and not again. `wait` goes to `wait_for_run` (its
    `sleep` / `clock`)."""
    reported: list[tuple[Any, ...]] = []

    def changed(run: Mapping[str, Any]) -> None:
        change = RunStateChange.from_run(run, now())
        key = (change.life_cycle_state, change.result_state, change.state_message)
        if reported and reported[-1] == key:  # `first` again: the follower's first answer
            return
        reported.append(key)
        if on_state is not None:
            on_state(dict(run))
        if on_change is not None:
            on_change(change)

    report = on_state is not None or on_change is not None
    if first is not None and report:
        changed(first)
    run = workspace.wait_for_run(run_id, timeout_s=timeout_s, on_state=changed if report else None, **wait)
    task = task_run_id(run)
    output = None
    if task is not None:
        try:
            output = workspace.get_run_output(task)
        except DcsError as exc:  # the run's state still says what happened
            output = {"error": f"(its output could not be read: {exc.message})"}
    result = run_result(run, output)
    if not result.run_page_url:
        result.run_page_url = workspace.run_url(run)
    return result
