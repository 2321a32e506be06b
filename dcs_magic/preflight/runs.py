"""A submitted run's task, executed in its job cluster's driver container.

The job cluster is launched like any cluster (launcher.py: pull, check, driver, init
scripts); then `RunTask.run` takes over in the launch's worker thread:

    find the file   python_file: uploaded to the local workspace (/Workspace/..., /Users/...,
                    dbfs:/..., /Volumes/...; `dcs run --python-file ./job.py` uploads a local
                    file to /Workspace/Users/<user>/.dcs/runs/<hash>/job.py), else `file:/...`
                    or an absolute path inside the image;
                    notebook_path: an uploaded .ipynb or source notebook, its code (jobs.notebook_code)
        missing  -> INTERNAL_ERROR / FAILED "... does not exist ..." naming the path
    run it          jobs.task_command with the image's /databricks/python3/bin/python3,
                    the driver's environment, as root (like a cluster's init scripts); its
                    stdout and stderr also teed to /databricks/driver/logs/stdout and stderr,
                    the driver's own logs (delivered by cluster_log_conf, see logs.py); its
                    output streamed from the engine, only its last jobs.LOGS_MAX_BYTES (5 MB)
                    kept, however much it prints
    report          jobs.task_outcome(exit code, output): SUCCESS, or FAILED with the exit code
                    and the output's last lines; runs/get-output answers the kept end as
                    `logs`, with `logs_truncated` when the task printed more (as Databricks)

and the launcher then terminates the job cluster (its driver container is removed).
As on Databricks, the run is TERMINATING (its result known) while its cluster goes away, and
`RunTask.ended`, called once the cluster is TERMINATED, makes it final: TERMINATED with the
task's outcome, or for a cluster that never got to the task, INTERNAL_ERROR with the
cluster's termination message (a cancel: TERMINATED/CANCELED). So a client that saw the run
end also sees its job cluster's termination and no container left.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from ..model.jobs import LOGS_MAX_BYTES, SubmittedTask, notebook_code, task_command, task_outcome
from ..model.tail import text_tail
from .launcher import DOCKER_TIMEOUT_S, Launcher, copy_file, user_request
from .logs import NODE_DRIVER_LOGS
from .store import Cluster, Run, Store, dbfs_key, workspace_key

if TYPE_CHECKING:
    from ..adapters.engine import Engine

__all__ = ["CANCEL_MESSAGE", "TASK_DIR", "RunTask", "teed"]

TASK_DIR = "/tmp/dcs-job"
"""Where an uploaded Python file or a notebook's code is copied in the driver container."""

CANCEL_MESSAGE = "Run cancelled at the user's request"


class RunTask:
    """The job cluster's work for one run (a launcher.JobTask)."""

    def __init__(self, store: Store, run: Run, task: SubmittedTask) -> None:
        self.store, self.run_record, self.task = store, run, task
        self.outcome: dict[str, Any] | None = None  # the task's final state, applied by ended()

    # -- in the launch's worker thread, once the driver is up and its init scripts ran ---------

    def run(self, launcher: Launcher, engine: Engine, cluster: Cluster) -> None:
        run = self.run_record
        container = cluster.container or ""
        launcher.step(cluster, f"Running the task {self.task.task_key}")
        what = self.task.python_file or self.task.notebook or ""
        path, missing = self._place(engine, container)
        if path is None:
            self._settle(launcher, cluster, *task_outcome(None, "", error=missing))
            return
        with self.store.lock:
            if cluster.cancel.is_set():
                raise user_request()
            self.store.update_run(run, life_cycle_state="RUNNING",
                                  state_message=f"Running {what} in the job cluster's driver container")
        command = task_command(self.task, path)
        launcher.log(cluster, "INFO", f"Running the task {self.task.task_key} of run {run.run_id}: {what}")
        ran = launcher.exec_in_driver(engine, cluster, container, teed(command),
                                      {**launcher.environment(cluster), "PYTHONUNBUFFERED": "1"},
                                      tail=LOGS_MAX_BYTES)
        if ran.timed_out:
            self._settle(launcher, cluster,
                         *task_outcome(None, "", error=f"{what} did not finish within {DOCKER_TIMEOUT_S} s"))
            return
        if ran.exit_code != 0:
            launcher.driver_alive(engine, cluster, f"{what} ran")
        text = text_tail(ran.output, cut=ran.truncated)
        state, output = task_outcome(ran.exit_code, text, truncated=ran.truncated)
        if state["result_state"] == "FAILED" and self.task.python_file is None:
            state["state_message"] = output["error"] = f"Notebook {what} exited with code {ran.exit_code}"
        self._settle(launcher, cluster, state, output)

    def _settle(self, launcher: Launcher, cluster: Cluster, state: dict[str, Any],
                output: dict[str, Any]) -> None:
        """The task's outcome: a line of the launch's log, and shown at once as TERMINATING
        (result and output known), made final by `ended` after the job cluster terminated. A
        task stopped by a cancel or the run's timeout has no outcome of its own: `ended` says
        CANCELED or TIMEDOUT."""
        task = f"task {self.task.task_key} of run {self.run_record.run_id}"
        if state.get("result_state") == "SUCCESS":
            launcher.log(cluster, "INFO", f"The {task} succeeded (exit code 0)")
        else:
            exit_code = output.get("exit_code")
            launcher.log(cluster, "ERROR", f"TaskFailedException: {state.get('result_state')}: The {task} failed: "
                         f"{state.get('state_message')}"
                         + (" (its output: driver/stdout, driver/stderr)" if exit_code is not None else ""))
        with self.store.lock:
            if self.run_record.cluster.cancel.is_set():
                return
            self.outcome = state
            self.store.update_run(self.run_record, output=output, **{**state, "life_cycle_state": "TERMINATING"})

    def _place(self, engine: Engine, container: str) -> tuple[str | None, str]:
        """(the file's path inside the driver, "") or (None, why it was not found)."""
        if self.task.notebook is not None:
            source = self.task.notebook
            data = self._uploaded(source, notebook=True)
            if data is None:
                return None, (f"Notebook {source} does not exist in the local preflight workspace: "
                              "upload it first (`databricks workspace import`, or Workspace.upload in Python)")
            return copy_file(engine, container, TASK_DIR, _file_name(source, ".py"),
                             notebook_code(data).encode("utf-8")), ""
        source = self.task.python_file or ""
        data = self._uploaded(source)
        if data is not None:
            return copy_file(engine, container, TASK_DIR, _file_name(source, ".py"), data), ""
        in_image = _image_path(source)
        if in_image is None:
            return None, (f"{source} does not exist in the local preflight workspace: give the file on this "
                          f"machine instead (`dcs run --local --python-file ./{_base_name(source)}` uploads it), "
                          "or a file:/... path inside the image")
        found = engine.exec(container, ["/bin/sh", "-c", '[ -f "$1" ]', "sh", in_image])
        if found.exit_code != 0:
            return None, (f"{source} does not exist in the image (nor was {in_image} uploaded to the "
                          "local preflight workspace)")
        return in_image, ""

    def _uploaded(self, source: str, *, notebook: bool = False) -> bytes | None:
        """What was uploaded to the local workspace at `source` (a notebook also without or
        with its .ipynb / .py extension, as workspace imports name it)."""
        if source.startswith("dbfs:"):
            keys = [dbfs_key(source)]
        elif source.startswith("/Volumes/"):
            keys = [source.strip()]
        elif source.startswith("/"):
            key = workspace_key(source)
            keys = [key]
            if notebook:
                stem = key.removesuffix(".ipynb").removesuffix(".py")
                keys += [stem, f"{stem}.ipynb", f"{stem}.py"]
        else:
            return None
        for key in dict.fromkeys(keys):
            data = self.store.file(key)
            if data is not None:
                return data
        return None

    # -- after the job cluster terminated -----------------------------------------------------------

    def ended(self, cluster: Cluster) -> None:
        """Make the run final: the task's outcome, cancelled, or the cluster never got to it."""
        run = self.run_record
        with self.store.lock:
            if run.done:
                return
            if self.outcome is not None:
                self.store.update_run(run, end=True, **self.outcome)
                return
            if cluster.cancel.is_set() and run.timed_out:
                message = f"Run timed out after {run.timeout_s} s (timeout_seconds)"
                self.store.update_run(run, output={"error": message}, end=True, life_cycle_state="TERMINATED",
                                      result_state="TIMEDOUT", state_message=message)
                return
            if cluster.cancel.is_set():
                self.store.update_run(run, end=True, life_cycle_state="TERMINATED", result_state="CANCELED",
                                      state_message=CANCEL_MESSAGE)
                return
            reason = cluster.termination_reason or {}
            message = (f"The job cluster {cluster.cluster_id} terminated before the task ran "
                       f"({reason.get('code', 'UNKNOWN')}): {cluster.state_message}")
            state, output = task_outcome(None, "", error=message)
            self.store.update_run(run, output=output, end=True, **state)


# The task with its stdout and stderr each teed to a file ($1, $2) and still sent on as they
# were (the exec's output, runs/get-output's logs); its exit status is the task's. bash waits
# for every part of a pipeline, so both files are complete when it returns.
_TEED = ('out=$1 err=$2; shift 2; mkdir -p "${out%/*}" "${err%/*}"; '
         '{ "$@" 2>&1 1>&3 3>&- | tee -a "$err" >&2 3>&-; exit "${PIPESTATUS[0]}"; } 3>&1 | tee -a "$out"; '
         'exit "${PIPESTATUS[0]}"')


def teed(command: list[str], directory: str = NODE_DRIVER_LOGS) -> list[str]:
    """`command` run by bash with its stdout and stderr also appended to DIRECTORY/stdout and
    DIRECTORY/stderr (the driver's logs on a cluster node)."""
    return ["/bin/bash", "-c", _TEED, "bash", f"{directory}/stdout", f"{directory}/stderr", *command]


def _file_name(source: str, suffix: str) -> str:
    """A file name for the copy in the driver: the source's base name, ending in `suffix`."""
    base = os.path.basename(source.rstrip("/")) or "task"
    stem = base.removesuffix(".ipynb").removesuffix(".py")
    return f"{int(time.time() * 1000)}-{stem}{suffix}"


def _base_name(source: str) -> str:
    return os.path.basename(source.rstrip("/")) or "job.py"


def _image_path(source: str) -> str | None:
    """The path inside the image a python_file names, or None when it names a workspace place."""
    if source.startswith("file:/"):
        return source[len("file:"):]
    if source.startswith("/") and not source.startswith(("/Workspace/", "/Volumes/", "/Users/", "/Shared/",
                                                          "/Repos/")):
        return source
    return None

