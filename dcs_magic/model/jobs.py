"""One-time job runs on a job cluster made from a `ClusterSpec`. Pure: no I/O.

Request builders for `POST /api/2.2/jobs/runs/submit` and the reading of `runs/get` and
`runs/get-output` answers; `Workspace.submit_run`, `get_run`, `get_run_output` and
`wait_for_run` send them. The run's `new_cluster` is the same validated clusters/create body
a cluster gets (docker_image included), so a spec that `create_cluster` refuses is refused
here too, before any request.

    body = submit_body(spec, python_file="/Workspace/Shared/etl.py", parameters=["--day", "1"])
    run_id = workspace.submit_run(body)
    result = run_result(workspace.wait_for_run(run_id), workspace.get_run_output(task_run_id(...)))

(`dcs_magic.ops.runs.follow_run(workspace, run_id)` does those last two steps: it is I/O.)

While a run is followed, each state change the follower sees is a `RunStateChange` (its time,
state and message), and `RunProgress` (the run's id, page and changes so far, then its final
state) is the one message every view of a run reads: `dcs run` prints its lines, `%dcs_run`
shows it as HTML with a text/plain twin (a static record: nothing needs the kernel to read it).

A `--python-file` that is not a remote path (`is_remote_path`: /Workspace/..., dbfs:/...,
/Volumes/..., file:/..., cloud URIs) names a file on this machine; it is uploaded, content
addressed, to `staged_path(user, name, content)`:
/Workspace/Users/<user>/.dcs/runs/<sha256 first 16 hex>/<name> (the same file goes to the same
path, and no other file is ever written over).

A workspace that serves these endpoints (the local preflight one) reads a body with
`read_submit` (the same validation), runs `task_command(task, path)` in the driver container
(a notebook's code from `notebook_code`), and answers a finished task with
`task_outcome(exit_code, output)`, which is exactly what `run_result` reads back.

States: `life_cycle_state` PENDING, QUEUED, BLOCKED, RUNNING, TERMINATING go on; TERMINATED,
SKIPPED, INTERNAL_ERROR end the run; `result_state` SUCCESS is the only success (FAILED,
TIMEDOUT, CANCELED, ... are not).
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import DcsError, UsageError
from .results import RECORD_ACCENTS, RECORD_STYLE
from .spec import ClusterSpec
from .tail import utf8_tail

__all__ = [
    "FINAL_STATES",
    "IMAGE_PYTHON",
    "LOGS_MAX_BYTES",
    "REMOTE_PREFIXES",
    "RunError",
    "RunProgress",
    "RunResult",
    "RunStateChange",
    "SubmittedTask",
    "TRUNCATED_NOTE",
    "is_remote_path",
    "job_cluster",
    "job_cluster_body",
    "last_lines",
    "notebook_code",
    "read_submit",
    "run_result",
    "staged_path",
    "submit_body",
    "task_command",
    "task_outcome",
    "task_payload",
    "task_run_id",
]

FINAL_STATES = ("TERMINATED", "SKIPPED", "INTERNAL_ERROR")
"""`life_cycle_state` values after which a run changes no more."""
LAST_LINES = 20
"""How many lines of a failed run's output its error shows."""
LOGS_MAX_BYTES = 5 * 2**20
"""How much of a task's output runs/get-output answers in `logs`: its last 5 MB ("Databricks
restricts this API to return the last 5 MB of these logs", with `logs_truncated: true` when
cut; databricks-sdk `jobs.RunOutput`)."""
TRUNCATED_NOTE = "(output truncated: only its last 5 MB are shown)"
"""Said before a run's output when runs/get-output answered `logs_truncated`."""

# Fields that make no sense on a job cluster: it ends with its run.
_NOT_FOR_JOB_CLUSTERS = ("autotermination_minutes",)

_EXIT_CODE = re.compile(r"exit(?:ed)?(?: with)?(?: (?:exit|status))? code[: ]+(-?\d+)", re.IGNORECASE)


class RunError(DcsError):
    """A job run ended without SUCCESS, or did not end in time. Carries `run_id`,
    `life_cycle_state`, `result_state`, `exit_code` (when known), `last_lines` of its output
    and `run_page_url`."""

    def __init__(self, message: str, *, run_id: int | None = None, life_cycle_state: str | None = None,
                 result_state: str | None = None, exit_code: int | None = None,
                 last_lines: list[str] | None = None, run_page_url: str | None = None, hint: str = "") -> None:
        super().__init__(message, hint=hint)
        self.run_id = run_id
        self.life_cycle_state = life_cycle_state
        self.result_state = result_state
        self.exit_code = exit_code
        self.last_lines = list(last_lines or [])
        self.run_page_url = run_page_url


# -- requests --------------------------------------------------------------------------------


def task_payload(*, python_file: str | None = None, notebook: str | None = None,
                 parameters: Sequence[str] | Mapping[str, str] = ()) -> dict[str, Any]:
    """`{"spark_python_task": {python_file, parameters}}` or `{"notebook_task": {notebook_path,
    base_parameters}}`. Notebook parameters are `NAME=VALUE` strings or a dict."""
    if bool(python_file) == bool(notebook):
        raise UsageError("give exactly one of a Python file and a notebook to run",
                         hint="--python-file PATH (a .py file) or --notebook PATH (a workspace notebook)")
    if python_file:
        if isinstance(parameters, Mapping):
            raise UsageError("a Python file takes a list of parameters (its sys.argv), not NAME=VALUE pairs")
        task: dict[str, Any] = {"python_file": str(python_file)}
        if parameters:
            task["parameters"] = [str(p) for p in parameters]
        return {"spark_python_task": task}
    notebook_task: dict[str, Any] = {"notebook_path": str(notebook)}
    base = _notebook_parameters(parameters)
    if base:
        notebook_task["base_parameters"] = base
    return {"notebook_task": notebook_task}


def _notebook_parameters(parameters: Sequence[str] | Mapping[str, str]) -> dict[str, str]:
    if isinstance(parameters, Mapping):
        return {str(k): str(v) for k, v in parameters.items()}
    out = {}
    for item in parameters:
        name, sep, value = str(item).partition("=")
        if not sep or not name:
            raise UsageError(f"notebook parameter {item!r} is not NAME=VALUE",
                             hint="notebook widgets take named values: --parameters day=2024-01-01 mode=full")
        out[name] = value
    return out


def job_cluster(body: Mapping[str, Any]) -> dict[str, Any]:
    """A clusters/create BODY as the `new_cluster` of a job or run: without the fields a job
    cluster does not take (`autotermination_minutes`: it ends with its run)."""
    return {k: v for k, v in body.items() if k not in _NOT_FOR_JOB_CLUSTERS}


def job_cluster_body(spec: ClusterSpec | Mapping[str, Any]) -> dict[str, Any]:
    """The `new_cluster` of a job or run: the validated clusters/create body (docker_image
    included) without the fields a job cluster does not take (`job_cluster`).

    Reads a `password_env` variable like `to_dict()`: this is a body that is sent.
    """
    spec = spec if isinstance(spec, ClusterSpec) else ClusterSpec.from_dict(spec)
    return job_cluster(spec.to_dict(validate=True))


def submit_body(spec: ClusterSpec | Mapping[str, Any], *, python_file: str | None = None,
                notebook: str | None = None, parameters: Sequence[str] | Mapping[str, str] = (),
                run_name: str | None = None, task_key: str = "main",
                timeout_seconds: int | None = None) -> dict[str, Any]:
    """The runs/submit body: one task on a new job cluster made from `spec`.

    SpecError (before any request) when the spec is not a valid cluster; UsageError for
    a task that is neither or both of a Python file and a notebook.
    """
    spec = spec if isinstance(spec, ClusterSpec) else ClusterSpec.from_dict(spec)
    payload = task_payload(python_file=python_file, notebook=notebook, parameters=parameters)
    new_cluster = job_cluster_body(spec)
    what = python_file or notebook
    body: dict[str, Any] = {
        "run_name": run_name or f"dcs run {str(what).rsplit('/', 1)[-1]}",
        "tasks": [{"task_key": task_key, "new_cluster": new_cluster, **payload}],
    }
    if timeout_seconds is not None:
        body["timeout_seconds"] = int(timeout_seconds)
    return body


# -- answers ----------------------------------------------------------------------------------


def task_run_id(run: Mapping[str, Any]) -> int | None:
    """The run id of a one-task run's task (what runs/get-output takes); the run's own id when
    the answer lists no tasks."""
    tasks = run.get("tasks") or []
    if tasks and tasks[0].get("run_id") is not None:
        return int(tasks[0]["run_id"])
    return int(run["run_id"]) if run.get("run_id") is not None else None


def last_lines(text: str | None, count: int = LAST_LINES) -> list[str]:
    """The last `count` non-empty-tail lines of an output. Only its end is split: an output of
    millions of lines costs no more than a short one."""
    if count <= 0:
        return []
    text = (text or "").rstrip("\n")
    start = len(text)
    for _ in range(count):  # the text after the last `count` newlines holds the last `count` lines
        start = text.rfind("\n", 0, start)
        if start < 0:
            break
    return text[start + 1:].splitlines()[-count:]


@dataclass
class RunResult:
    """A run as `runs/get` (and `runs/get-output` for its task) describe it. `logs` is what the
    workspace answered: on Databricks (and the local workspace) the output's last 5 MB, with
    `logs_truncated` when it was cut."""

    run_id: int
    life_cycle_state: str | None
    result_state: str | None = None
    state_message: str = ""
    run_page_url: str | None = None
    task_run_id: int | None = None
    logs: str = ""
    error: str = ""
    error_trace: str = ""
    notebook_result: str | None = None
    exit_code: int | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)
    logs_truncated: bool = False

    @property
    def done(self) -> bool:
        return self.life_cycle_state in FINAL_STATES

    @property
    def ok(self) -> bool:
        return self.life_cycle_state == "TERMINATED" and self.result_state == "SUCCESS"

    @property
    def state(self) -> str:
        """`TERMINATED/SUCCESS`, `RUNNING`, ...: what a progress line shows."""
        return "/".join(s for s in (self.life_cycle_state, self.result_state) if s) or "UNKNOWN"

    @property
    def outcome(self) -> str:
        """`TERMINATED/FAILED (exit code 3)`: the final state line `dcs run` and `%dcs_run` show."""
        code = f" (exit code {self.exit_code})" if self.exit_code is not None else ""
        return self.state + code

    @property
    def output(self) -> str:
        """What the run printed (logs), else the notebook's exit value."""
        return self.logs or (self.notebook_result or "")

    @property
    def shown_output(self) -> str:
        """`output` as `dcs run` and `%dcs_run` print it: after a line saying it was cut when
        the workspace kept only its end (`logs_truncated`)."""
        output = self.output
        if self.logs_truncated and self.logs:
            return f"{TRUNCATED_NOTE}\n{output}"
        return output

    def to_error(self) -> RunError:
        """The RunError describing a run that did not succeed (exit code, last lines)."""
        code = f", exit code {self.exit_code}" if self.exit_code is not None else ""
        reason = self.error or self.state_message
        tail = last_lines(self.error_trace or self.logs)
        text = f"run {self.run_id} ended {self.state}{code}"
        if reason:
            text += f": {reason}"
        if tail:
            text += "\nLast lines of its output:\n" + "\n".join(f"  {line}" for line in tail)
        hint = _hint(self)
        if self.run_page_url:
            hint += f"; run page: {self.run_page_url}"
        return RunError(text, run_id=self.run_id, life_cycle_state=self.life_cycle_state,
                        result_state=self.result_state, exit_code=self.exit_code, last_lines=tail,
                        run_page_url=self.run_page_url, hint=hint)

    def raise_for_state(self) -> RunResult:
        """Raise RunError unless the run ended TERMINATED/SUCCESS; return self."""
        if not self.ok:
            raise self.to_error()
        return self

    def __repr__(self) -> str:
        code = f", exit code {self.exit_code}" if self.exit_code is not None else ""
        return f"RunResult(run {self.run_id}: {self.state}{code}, {self.run_page_url or 'no run page'})"


def _hint(result: RunResult) -> str:
    text = f"{result.error} {result.state_message} {result.error_trace}".lower()
    if "does not exist" in text or "no such file" in text or "not found" in text:
        return ("the file is not where the run looks: a python_file is read from the workspace "
                "(/Workspace/..., dbfs:/...) or the image (file:/...); upload it or fix the path "
                "(a file on this machine, `dcs run --python-file ./job.py`, is uploaded for you)")
    if result.result_state == "CANCELED":
        return "the run was cancelled"
    if result.result_state == "TIMEDOUT":
        return "the run exceeded timeout_seconds; raise it or make the task faster"
    if result.life_cycle_state == "INTERNAL_ERROR":
        return "the job cluster did not start or the task could not run: read the run page's cluster events"
    return "fix the script (its output is above) and run again"


def run_result(run: Mapping[str, Any], output: Mapping[str, Any] | None = None) -> RunResult:
    """A RunResult from a runs/get answer and, when fetched, its task's runs/get-output answer."""
    state = run.get("state") or {}
    output = output or {}
    notebook = output.get("notebook_output") or {}
    error = str(output.get("error") or "")
    exit_code = output.get("exit_code")
    if exit_code is None:
        match = _EXIT_CODE.search(error) or _EXIT_CODE.search(str(state.get("state_message") or ""))
        exit_code = int(match[1]) if match else None
    return RunResult(
        run_id=int(run.get("run_id") or 0),
        life_cycle_state=state.get("life_cycle_state"),
        result_state=state.get("result_state"),
        state_message=str(state.get("state_message") or ""),
        run_page_url=run.get("run_page_url"),
        task_run_id=task_run_id(run),
        logs=str(output.get("logs") or ""),
        error=error,
        error_trace=str(output.get("error_trace") or ""),
        notebook_result=notebook.get("result"),
        exit_code=None if exit_code is None else int(exit_code),
        raw=dict(run),
        logs_truncated=output.get("logs_truncated") is True,
    )


# -- following a run: its state changes, for every view (terminal lines, notebook HTML) ---------


@dataclass(frozen=True)
class RunStateChange:
    """A change of a run's state (or of its state message) as its follower saw it, at `at`
    (seconds since the epoch, this machine's clock: runs/get gives no time per state)."""

    at: float
    life_cycle_state: str | None
    result_state: str | None = None
    state_message: str = ""

    @classmethod
    def from_run(cls, run: Mapping[str, Any], at: float) -> RunStateChange:
        """The change a runs/get answer shows, seen at `at`."""
        state = run.get("state") or {}
        return cls(at=at, life_cycle_state=state.get("life_cycle_state"), result_state=state.get("result_state"),
                   state_message=str(state.get("state_message") or ""))

    @property
    def state(self) -> str:
        """`PENDING`, `TERMINATED/SUCCESS`, ...: the life cycle state and the result, when known."""
        return "/".join(s for s in (self.life_cycle_state, self.result_state) if s) or "UNKNOWN"

    @property
    def clock(self) -> str:
        """The local time of day it was seen, `HH:MM:SS`."""
        return time.strftime("%H:%M:%S", time.localtime(self.at))

    def line(self) -> str:
        """`12:00:01 PENDING: Waiting for cluster`: the line `dcs run` prints on stderr."""
        return f"{self.clock} {self.state}" + (f": {self.state_message}" if self.state_message else "")


@dataclass
class RunProgress:
    """A followed run as its views show it: `Run ID: URL`, then one line per state change,
    then (once it ended) its outcome. `dcs run` prints `heading()` and each change's line;
    `%dcs_run` shows this whole object, updated at each change (`_repr_mimebundle_`: HTML
    with the run page as a link, and the same lines as text/plain). Holds no credential: the
    run page URL is the workspace's own (the local workspace's pages need no token)."""

    run_id: int
    url: str | None  # None: the local workspace of a `dcs run --local`, whose pages end with it
    changes: list[RunStateChange] = field(default_factory=list)
    outcome: str | None = None  # `TERMINATED/SUCCESS (exit code 0)` once the run ended
    ok: bool | None = None

    def add(self, change: RunStateChange) -> RunProgress:
        self.changes.append(change)
        return self

    def finish(self, result: RunResult) -> RunProgress:
        """The run ended (or was followed to its end): its outcome is the last line."""
        self.outcome, self.ok = result.outcome, result.ok
        return self

    @property
    def status(self) -> str:
        """`running`, `done` or `failed` (what the record's border says)."""
        return "running" if self.ok is None else ("done" if self.ok else "failed")

    def heading(self) -> str:
        if self.url is None:
            return f"Run {self.run_id} on the local preflight workspace (its pages end with this command)"
        return f"Run {self.run_id}: {self.url}"

    def lines(self) -> list[str]:
        lines = [self.heading(), *(f"  {change.line()}" for change in self.changes)]
        if self.outcome:
            lines.append(f"State: {self.outcome}")
        return lines

    def __repr__(self) -> str:
        return "\n".join(self.lines())

    def _repr_html_(self) -> str:
        from html import escape

        url = escape(self.url or "")
        # Only a web address becomes a link: the page is what the workspace answered.
        link = (f'<a href="{url}" target="_blank" rel="noopener noreferrer">{url}</a>'
                if (self.url or "").startswith(("https://", "http://")) else
                f"<code>{url}</code>" if url else "on the local preflight workspace")
        items = "".join(
            f'<li><time datetime="{escape(_iso(change.at))}">{escape(change.clock)}</time> '
            f"<b>{escape(change.state)}</b>" + (f": {escape(change.state_message)}" if change.state_message else "")
            + "</li>" for change in self.changes)
        outcome = f"<div><b>State:</b> {escape(self.outcome)}</div>" if self.outcome else ""
        accent = RECORD_ACCENTS[self.status]
        role = ' role="alert"' if self.status == "failed" else ' role="status" aria-live="polite"'
        return (f'<div class="dcs-run" data-run-id="{self.run_id}" data-status="{self.status}"{role} '
                f'style="{RECORD_STYLE.format(accent=accent)}"><b>Run {self.run_id}</b>: {link}'
                f'<ul style="margin:0;padding-left:1em;list-style:none">{items}</ul>{outcome}</div>')

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        return {"text/plain": repr(self), "text/html": self._repr_html_()}


def _iso(at: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(at))


# -- a run's Python file: remote, or on this machine (uploaded first) ---------------------------

REMOTE_PREFIXES = ("/Workspace/", "/Users/", "/Shared/", "/Repos/", "/Volumes/", "dbfs:", "file:")
"""Paths a run reads where it runs (the workspace, a volume, DBFS, the image): never local."""
_CLOUD_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+://")  # s3://, abfss://, gs://, ...
STAGING_DIR = ".dcs/runs"
"""Where, under the user's workspace home, local files are uploaded for runs."""


def is_remote_path(path: str) -> bool:
    """Whether a run's `python_file` names a place the run reads from where it runs (a
    workspace, volume, DBFS or cloud storage path, or `file:/...` inside the image), rather
    than a file on this machine."""
    path = path.strip()
    return path.startswith(REMOTE_PREFIXES) or bool(_CLOUD_URI.match(path))


def staged_path(user: str, name: str, content: bytes) -> str:
    """Where a local file NAME with CONTENT is uploaded for USER's runs:
    `/Workspace/Users/<user>/.dcs/runs/<sha256 first 16 hex>/<name>`. Content addressed, so the
    same file always lands on the same path and no other file is written over."""
    digest = hashlib.sha256(content).hexdigest()[:16]
    return f"/Workspace/Users/{user}/{STAGING_DIR}/{digest}/{name}"


# -- the server side (for the local preflight workspace's jobs endpoints) ----------------------


@dataclass
class SubmittedTask:
    """One task of a runs/submit body, read and validated: what a workspace must run."""

    task_key: str
    spec: ClusterSpec
    python_file: str | None = None
    notebook: str | None = None
    parameters: list[str] | dict[str, str] = field(default_factory=list)


def read_submit(body: Any) -> list[SubmittedTask]:
    """The tasks of a runs/submit body, each `new_cluster` validated like clusters/create.
    SpecError or UsageError (a 400 INVALID_PARAMETER_VALUE for a server) when it is not a
    body this project can run: tasks need a `new_cluster` and a spark_python_task or notebook_task."""
    if not isinstance(body, Mapping) or not isinstance(body.get("tasks"), list) or not body["tasks"]:
        raise UsageError("a runs/submit body needs a non-empty tasks list")
    tasks = []
    for index, task in enumerate(body["tasks"]):
        if not isinstance(task, Mapping) or not task.get("task_key"):
            raise UsageError(f"tasks[{index}] needs a task_key")
        if not isinstance(task.get("new_cluster"), Mapping):
            raise UsageError(f"tasks[{index}] needs a new_cluster (existing clusters and serverless are not "
                             "supported for a custom image)")
        spec = ClusterSpec.from_dict(task["new_cluster"]).validate()
        python = task.get("spark_python_task")
        notebook = task.get("notebook_task")
        if isinstance(python, Mapping) and python.get("python_file"):
            tasks.append(SubmittedTask(str(task["task_key"]), spec, python_file=str(python["python_file"]),
                                       parameters=[str(p) for p in python.get("parameters") or []]))
        elif isinstance(notebook, Mapping) and notebook.get("notebook_path"):
            tasks.append(SubmittedTask(str(task["task_key"]), spec, notebook=str(notebook["notebook_path"]),
                                       parameters={str(k): str(v) for k, v in
                                                   (notebook.get("base_parameters") or {}).items()}))
        else:
            raise UsageError(f"tasks[{index}] needs a spark_python_task with python_file or a notebook_task "
                             "with notebook_path")
    return tasks


def task_outcome(exit_code: int | None, output: str, *, error: str | None = None, truncated: bool = False,
                 tail: int = 200) -> tuple[dict[str, Any], dict[str, Any]]:
    """(runs/get `state`, runs/get-output answer) of a finished task: exit code 0 is SUCCESS,
    anything else FAILED with "... exited with code N" and the output's last `tail` lines as
    `error_trace`; `error` (e.g. "file:/x.py does not exist in the image") fails it with that
    reason. `logs` is the output's last LOGS_MAX_BYTES, `logs_truncated` whether anything was
    cut, here or before (`truncated`: `output` is already the end of a longer one)."""
    logs, cut = utf8_tail(output, LOGS_MAX_BYTES)
    truncated = truncated or cut
    if error is None and exit_code == 0:
        return ({"life_cycle_state": "TERMINATED", "result_state": "SUCCESS", "state_message": ""},
                {"logs": logs, "logs_truncated": truncated, "exit_code": 0})
    reason = error or f"Python script exited with code {exit_code}"
    trace = "\n".join(last_lines(logs, tail)) + ("\n" if logs else "")
    answer: dict[str, Any] = {"logs": logs, "logs_truncated": truncated, "error": reason, "error_trace": trace}
    if exit_code is not None:
        answer["exit_code"] = exit_code
    return ({"life_cycle_state": "TERMINATED" if error is None else "INTERNAL_ERROR", "result_state": "FAILED",
             "state_message": reason}, answer)


IMAGE_PYTHON = "/databricks/python3/bin/python3"
"""The interpreter a task runs with inside the image (PYSPARK_PYTHON of a DCS image)."""


def task_command(task: SubmittedTask, path_in_container: str | None = None) -> list[str]:
    """The command that runs a task in the driver container: the image's Python, the file
    (`path_in_container`, by default a `file:/...` python_file's own path) and its parameters.
    A notebook's code is run as a file too (see `notebook_code`); its parameters become
    `--NAME VALUE` arguments."""
    if path_in_container is None:
        source = task.python_file or ""
        if not source.startswith("file:/"):
            raise UsageError(f"{source or task.notebook} is not inside the image; copy it into the container "
                             "and pass that path")
        path_in_container = source[len("file:"):]
    if isinstance(task.parameters, Mapping):
        arguments = [part for name, value in task.parameters.items() for part in (f"--{name}", value)]
    else:
        arguments = list(task.parameters)
    return [IMAGE_PYTHON, path_in_container, *arguments]


def notebook_code(content: bytes | str) -> str:
    """The Python code of a notebook as a workspace holds it: an `.ipynb` document's code
    cells in order, or a source-format notebook (`# Databricks notebook source`) as it is
    (its cell separators and `# MAGIC` lines are comments). Lines starting with `%` or `!`
    (IPython magics and shell escapes) are left out: plain Python cannot run them."""
    import json

    text = content.decode("utf-8") if isinstance(content, bytes) else content
    try:
        document = json.loads(text)
    except ValueError:
        document = None
    if isinstance(document, dict) and isinstance(document.get("cells"), list):
        cells = []
        for cell in document["cells"]:
            if cell.get("cell_type") == "code":
                source = cell.get("source") or ""
                cells.append("".join(source) if isinstance(source, list) else str(source))
        text = "\n\n".join(cells)
    lines = [line for line in text.splitlines() if not line.lstrip().startswith(("%", "!"))]
    return "\n".join(lines) + "\n"
