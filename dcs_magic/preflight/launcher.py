"""Launch a cluster the way Databricks Container Services starts a driver, on the local engine.

One worker thread per cluster, every Docker call through `dcs_magic.adapters.engine.Engine`:

    pull docker_image.url with its basic_auth (a real pull from the registry)
        auth refused                  -> IMAGE_PULL_PERMISSION_DENIED
        missing image / unreachable   -> DOCKER_IMAGE_PULL_FAILURE
    at the same time (the driver is created while the check's probe runs; the check's
    verdict wins when both fail):
        checks.check(image, runtime=spark_version)
            not linux/amd64               -> DOCKER_INVALID_OS_EXCEPTION
            java, bash, python... missing -> CONTAINER_LAUNCH_FAILURE (names what is missing)
        create + start the "driver" container (entrypoint replaced by an idle loop,
            spark_env_vars + DB_* variables as its environment, label LABEL=cluster id)
                                          -> DOCKER_CONTAINER_CREATION_EXCEPTION
    init scripts in order (`file:` inside the image; workspace/volumes/dbfs ones from what
        was uploaded to the server), each with its stdout and stderr in its log files on the
        node (/databricks/init_scripts/<time>_<id>_<script>.sh.stdout.log, .stderr.log)
                                      missing / non-zero exit -> INIT_SCRIPT_FAILURE (the
                                      message has the exit code, never the output)
    -> RUNNING, or TERMINATED with termination_reason {code, type, parameters}.

Every step also writes a line of the launch's own log (`Launcher.log`, log4j's shape): the
pull and its outcome, the check's failing rows (`<Exception>: <CODE>: <row>: <detail>`), the
driver's start and IP, each init script (destination, status, exit code), the termination
(code and message; ERROR unless it is a SUCCESS type). With a `cluster_log_conf`, logs.py
delivers it as driver/log4j-active.log, with the driver's stdout/stderr and the init scripts'
logs, when the cluster reaches RUNNING and when it terminates (before the driver container is
removed; a terminate during the launch delivers what the driver wrote so far first). A
delivery failure is recorded in `cluster_log_status`, never changes the outcome.

A job cluster (a run's `new_cluster`) takes the same steps, then runs the run's task in
the driver instead of idling (`start(cluster, job=...)`, see runs.py) and terminates
(JOB_FINISHED) when the task ends.

A failed or terminated launch leaves no container behind: terminating removes the driver
at once (a running init script ends with it, as on Databricks), and at interpreter exit the
launches still running are cancelled and their workers given time to clean up (the probe
and driver containers are also held by the engine for removal at exit).
"""

from __future__ import annotations

import atexit
import io
import os
import tarfile
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..adapters.engine import EXEC_TAIL, Engine, ExecResult, StreamError, connect, remove_held_containers
from ..adapters.owner import OWNER_LABEL, is_gone
from ..adapters.registry import ManifestAnswer, docker_login_reads, fetch_manifest
from ..adapters.secret_store import SecretStore
from ..errors import DcsError, EngineError
from ..model.credentials import Secret
from ..model.requirements import OS_ITEMS, parse_runtime
from ..model.secrets import is_secret_reference
from ..ops.check import check
from ..settings import env, secret_variable
from . import ended
from .logs import NODE_INIT_DIR, deliver, exception_line, init_log_name, log4j_line, log_destination, s3_message
from .store import NODE_TYPE_ID, Cluster, Store, dbfs_key, now_ms, workspace_key

__all__ = ["DOCKER_TIMEOUT_S", "LABEL", "JobTask", "Launcher", "Terminate", "runtime_of", "user_request"]

LABEL = "dcs_magic.local_cluster"
"""Label on driver containers: its value is the cluster id."""
_ENDS_LABEL = "dcs_magic.ends_with_owner"  # "1": a kernel's cluster, ended with the kernel
_AUTOTERMINATION_LABEL = "dcs_magic.autotermination_minutes"
RUNNING_MARKER = "/.dcs-local-running"
"""Written into a driver when it reaches RUNNING: a driver without it was never RUNNING."""

# Generous: init scripts may install packages; an engine that hangs longer is broken.
DOCKER_TIMEOUT_S = 1200
# PID 1 of the driver container: idles, and exits at once on `docker stop` (SIGTERM).
_IDLE = "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done"
_INIT_DIR = "/tmp/dcs-init-scripts"
# An init script, run by bash with its output in its two log files on the node ($2, $3).
_RUN_LOGGED = f'mkdir -p {NODE_INIT_DIR} && exec /bin/bash "$1" >"$2" 2>"$3"'
# At interpreter exit, how long the launch workers get to clean up after being cancelled.
_EXIT_GRACE_S = 20.0


_FETCHABLE = ("file", "workspace", "volumes", "dbfs")


@dataclass
class ScriptRun:
    """One init script's outcome: an `InitScriptExecutionDetails` status, whole seconds, the
    error message, and (when it ran) its exit code. Its output stays in its log files (on the
    node, and delivered by cluster_log_conf): it can hold secrets, so no message carries it."""

    status: str
    seconds: int
    error: str | None
    exit_code: int | None = None
    log_name: str | None = None  # its logs on the node: NODE_INIT_DIR/<log_name>.stdout.log, .stderr.log


class Terminate(Exception):
    """Ends a launch: the termination reason a real cluster would get for the same failure."""

    def __init__(self, code: str, message: str, *, type_: str = "CLIENT_ERROR",
                 **parameters: str) -> None:
        super().__init__(message)
        self.code, self.type, self.message = code, type_, message
        self.parameters = {"databricks_error_message": message, **parameters}

    def as_dict(self) -> dict[str, Any]:
        """The `termination_reason` object: {code, type, parameters}."""
        return {"code": self.code, "type": self.type, "parameters": dict(self.parameters)}


def user_request() -> Terminate:
    """The termination of a cluster the user terminated (or whose run was cancelled)."""
    return Terminate("USER_REQUEST", "Terminated by the user", type_="SUCCESS", username="local")




class JobTask(Protocol):
    """What a job cluster runs once it is up (runs.py): `run` in the launch's worker thread
    (Terminate to end it early), `ended` after the cluster terminated, however it ended."""

    def run(self, launcher: Launcher, engine: Engine, cluster: Cluster) -> None: ...

    def ended(self, cluster: Cluster) -> None: ...


def _resolve_secret(reference: str, secrets: SecretStore | None) -> str:
    """The value of a `{{secrets/scope/key}}` reference, as the cluster's secret resolution
    would give it: from the local workspace's secret store (`dcs secrets put --local`, the
    Secrets API), else from the fallback environment variable `secret_variable(reference)` of
    this process (DCS_SECRET_<SCOPE>_<KEY>). A missing secret fails here as it would there.
    """
    scope, key = reference.strip("{} ").split("/", 2)[1:]
    value = secrets.resolve(scope, key) if secrets is not None else None
    if value:
        return value.decode("utf-8", "replace")
    variable = secret_variable(reference)
    fallback = env(variable)
    if not fallback:
        raise Terminate("SECRET_RESOLUTION_ERROR",
                        f"The registry password {reference.strip()} cannot be resolved: the local preflight "
                        f"workspace reads secret references from its secret store (no key {key} in scope "
                        f"{scope}: `dcs secrets put --local --create-scope {scope} {key}` stores it), then from "
                        f"the environment variable {variable}, which is not set in the process that runs it")
    return fallback


def runtime_of(spark_version: str | None) -> str | None:
    """The runtime line of a key, or None when it names none (the check then skips it)."""
    try:
        line = parse_runtime(spark_version)
    except ValueError:
        return None
    return str(line) if line else None


class Launcher:
    """Runs launches for the clusters of a `Store` on one engine (`docker_host`, default:
    the one the Docker CLI would use)."""

    def __init__(self, store: Store, *, docker_host: str | None = None, minute_s: float = 60.0) -> None:
        self.store = store
        self.docker_host = docker_host
        self.minute_s = minute_s  # how long a minute of autotermination_minutes is (shorter in tests)
        self.clusters_end_with_process = False  # a kernel's clusters end with the kernel
        self.records: Path | None = None  # where ended clusters' records go (ended.py); None: nowhere
        self.secrets: SecretStore | None = None  # where {{secrets/...}} references resolve first
        self._workers: dict[str, threading.Thread] = {}
        _LAUNCHERS.add(self)

    def connect(self) -> Engine:
        """An engine connection, or Terminate saying the engine is down."""
        try:
            return connect(timeout=DOCKER_TIMEOUT_S, host=self.docker_host)
        except EngineError as exc:
            raise _engine_failure(exc) from exc

    # -- entry points (called by the server) ---------------------------------------------

    def start(self, cluster: Cluster, job: JobTask | None = None) -> None:
        """Launch `cluster` (registered, busy) in its own worker thread; with `job`, as a job
        cluster that runs `job` instead of idling, then terminates."""
        worker = threading.Thread(target=self._launch, args=(cluster, job), daemon=True,
                                  name=f"dcs-local-{cluster.cluster_id}")
        self._workers[cluster.cluster_id] = worker
        worker.start()

    def terminate(self, cluster: Cluster, reason: Terminate | None = None) -> None:
        """Terminate at the user's request (or for `reason`: inactivity, the kernel ended). A
        launch in progress is stopped at once: its driver container is removed, which also
        ends a running init script."""
        reason = reason or user_request()
        store = self.store
        with store.lock:
            if cluster.state in ("TERMINATED", "TERMINATING"):
                return
            cluster.cancel.set()
            cluster.ending = reason
            previous, previous_message = cluster.state, cluster.state_message
            store.update(cluster, state="TERMINATING", state_message=reason.message)
            busy, container = cluster.busy, cluster.container
        try:
            engine = self.connect()
        except Terminate:  # engine down: the driver container cannot be removed now
            if busy:  # the worker ends the launch at its next step anyway
                self._terminating_event(cluster, reason)
                return
            with store.lock:
                store.update(cluster, state=previous, state_message=previous_message, ending=None)
                cluster.cancel.clear()
            raise
        self._terminating_event(cluster, reason)
        with engine:
            if busy:
                # What the driver wrote so far (a running init script's output) is delivered
                # before it goes; the worker's own delivery then adds the termination.
                self.log(cluster, "INFO", f"Terminate requested ({reason.code}): {reason.message}")
                deliver(self.store, cluster, engine)
                engine.remove_container(container, quiet=True)  # the worker notices and finishes
            else:
                self._finish(cluster, reason, engine)

    def _terminating_event(self, cluster: Cluster, reason: Terminate) -> None:
        """The TERMINATING event, once per cluster: it carries the termination reason (there
        is no TERMINATED event on Databricks)."""
        with self.store.lock:
            if any(e["type"] == "TERMINATING" for e in cluster.events):
                return
            details: dict[str, Any] = {"reason": reason.as_dict()}
            if reason.code == "USER_REQUEST":
                details["user"] = reason.parameters.get("username", "local")
            self.store.event(cluster, "TERMINATING", details)

    def adopt(self, filters: dict[str, str]) -> list[Cluster]:
        """Register the driver containers (of another or an earlier process) this store lacks.

        A driver that reached RUNNING (it holds the RUNNING marker) is listed RUNNING. One that
        did not, whose launching process is gone (killed mid-launch), is removed and listed
        TERMINATED with the reason: never adopted as RUNNING. So is a RUNNING one whose kernel
        is gone, for a kernel's clusters end with it. A launch another live process is running
        is left to it.
        """
        adopted = []
        with self.connect() as engine:
            for container in engine.list_containers({**filters, "status": "running"}):
                labels = container.get("Labels") or {}
                cluster_id = labels.get(LABEL, "")
                if not cluster_id or self.store.get(cluster_id) is not None:
                    continue
                name = (container.get("Names") or ["/"])[0].lstrip("/")
                owner_gone = is_gone(labels.get(OWNER_LABEL))
                running = engine.path_exists(name, RUNNING_MARKER)
                if not running and not owner_gone:
                    continue  # a live process is launching it
                spec = {"cluster_name": labels.get("dcs_magic.cluster_name", ""),
                        "spark_version": labels.get("dcs_magic.spark_version", ""),
                        "docker_image": {"url": labels.get("dcs_magic.image", container.get("Image"))},
                        "num_workers": 0}
                minutes = labels.get(_AUTOTERMINATION_LABEL, "")
                if minutes.isdigit() and int(minutes):
                    spec["autotermination_minutes"] = int(minutes)
                start = int(labels.get("dcs_magic.start_time") or now_ms())
                if running and not (owner_gone and labels.get(_ENDS_LABEL) == "1"):
                    cluster = self.store.add(Cluster(
                        cluster_id, spec, state="RUNNING", container=name, start_time=start,
                        state_message="Local preflight: driver container found running"))
                    self._arm_autotermination(cluster, since_ms=start)
                else:
                    engine.remove_container(name, quiet=True)
                    reason = (_kernel_ended() if running else Terminate(
                        "UNEXPECTED_LAUNCH_FAILURE",
                        "The launch was interrupted: the process running the local preflight workspace "
                        "ended before the cluster was RUNNING (its driver container was removed)",
                        type_="SERVICE_FAULT", instance_id=name))
                    cluster = self.store.add(Cluster(
                        cluster_id, spec, state="TERMINATED", start_time=start, state_message=reason.message,
                        terminated_time=now_ms(), termination_reason=reason.as_dict()))
                    self._terminating_event(cluster, reason)
                adopted.append(cluster)
        return adopted

    def recorded(self, cluster_id: str) -> Cluster | None:
        """An ended cluster another process ran, from its record (`ended.py`), registered in
        this store with its events and delivered logs; None when there is no record."""
        found = ended.load(self.records, cluster_id) if self.records is not None else None
        if found is None:
            return None
        info, events, files = found
        with self.store.lock:
            known = self.store.get(cluster_id)
            if known is not None:
                return known
            cluster = Cluster(cluster_id, info, state="TERMINATED", state_message=str(info.get("state_message") or ""),
                              start_time=int(info.get("start_time") or now_ms()),
                              terminated_time=info.get("terminated_time"),
                              termination_reason=info.get("termination_reason"),
                              source=str(info.get("cluster_source") or "API"), events=list(events),
                              log_status=info.get("cluster_log_status"))
            self.store.add(cluster)
            for key, data in files.items():
                self.store.put_file(key, data, overwrite=False)
        return cluster

    def sweep(self) -> None:
        """What killed processes left (at a server's start): probe containers of checks whose
        process is gone are removed, and half-launched drivers are ended (`adopt`)."""
        with self.connect() as engine:
            engine.sweep_orphans("dcs_magic.check")
        self.adopt({"label": LABEL})

    def _arm_autotermination(self, cluster: Cluster, *, since_ms: int | None = None) -> None:
        """autotermination_minutes, honoured: nothing runs on a local cluster, so it is
        inactive from RUNNING on and ends after that many minutes (INACTIVITY)."""
        minutes = cluster.spec.get("autotermination_minutes")
        if not isinstance(minutes, int) or isinstance(minutes, bool) or minutes <= 0:
            return
        elapsed = (now_ms() - since_ms) / 1000 if since_ms is not None else 0.0
        timer = threading.Timer(max(0.0, minutes * self.minute_s - elapsed), self._inactive,
                                args=(cluster, minutes))
        timer.daemon = True
        timer.start()

    def _inactive(self, cluster: Cluster, minutes: int) -> None:
        if cluster.state != "RUNNING":
            return
        try:
            self.terminate(cluster, Terminate(
                "INACTIVITY", f"Inactive for {minutes} minutes (autotermination_minutes)", type_="SUCCESS",
                inactivity_duration_min=str(minutes)))
        except Terminate:
            pass  # engine down: the next look at the cluster finds it again

    def shutdown(self, grace_s: float = _EXIT_GRACE_S) -> None:
        """Cancel every launch in progress and let its worker clean up (at interpreter exit,
        when the workers, daemon threads, would otherwise just stop)."""
        busy = self.store.busy()
        for cluster in busy:
            cluster.cancel.set()
        if not busy:
            return
        # Unblock workers waiting on a probe or an init script: the containers the engine
        # holds for this process go now; each worker then sees `cancel` and finishes.
        remove_held_containers()
        deadline = time.monotonic() + grace_s
        for cluster in busy:
            worker = self._workers.get(cluster.cluster_id)
            if worker is not None:
                worker.join(max(0.0, deadline - time.monotonic()))

    # -- the launch (worker thread) ------------------------------------------------------

    def _launch(self, cluster: Cluster, job: JobTask | None = None) -> None:
        engine = None
        spec = cluster.spec
        self.log(cluster, "INFO", f"Local preflight launch of cluster {cluster.cluster_id} "
                 f"({spec.get('cluster_name') or 'unnamed'}): image {cluster.image}, runtime "
                 f"{spec.get('spark_version')}, node type {spec.get('node_type_id') or NODE_TYPE_ID}"
                 + (", job cluster" if job is not None else ""))
        try:
            engine = self.connect()
            self._pull(engine, cluster)
            self._check_and_start_driver(engine, cluster)
            self._run_init_scripts(engine, cluster)
            if job is None:
                self._running(cluster, engine)
            else:
                job.run(self, engine, cluster)
                raise Terminate("JOB_FINISHED", "The job's run finished", type_="SUCCESS")
        except Terminate as exc:
            self._finish(cluster, exc, engine)
        except Exception as exc:  # noqa: BLE001 - whatever failed, the cluster ends TERMINATED with a reason
            self._finish(cluster, user_request() if cluster.cancel.is_set() else _unexpected(exc), engine)
        finally:
            if engine is not None:
                engine.close()
            self._workers.pop(cluster.cluster_id, None)
            if job is not None:
                job.ended(cluster)

    def step(self, cluster: Cluster, message: str) -> None:
        """Enter a launch step; a terminate request since the last one ends the launch here."""
        with self.store.lock:
            if cluster.cancel.is_set():
                raise user_request()
            self.store.update(cluster, state_message=message)

    def log(self, cluster: Cluster, level: str, message: str) -> None:
        """One line of the launch's own log (delivered as driver/log4j-active.log): what a step
        did, in log4j's shape. Never a password or the driver's environment."""
        with self.store.lock:
            cluster.launch_log.append(log4j_line(level, message))

    def _pull(self, engine: Engine, cluster: Cluster) -> None:
        """Pull as a fresh cluster VM does: first ask the registry for the manifest of the exact
        reference with exactly basic_auth (never this machine's docker login, never the copy
        already in the engine), then let the engine pull it (a local copy with another digest
        is replaced by what the registry serves)."""
        self.step(cluster, f"Pulling {cluster.image}")
        auth = dict(cluster.auth or {})
        cluster.auth = None  # the password is not needed after the pull
        try:
            username = str(auth.get("username") or "") or None
            # Held as a Secret from here on (no frame of a failed pull holds the value): the
            # engine adapter reveals it inside the pull call only.
            password = Secret(str(auth.pop("password", None) or ""))
            if username and is_secret_reference(password.reveal()):
                password = Secret(_resolve_secret(password.reveal(), self.secrets))
            self.log(cluster, "INFO", f"Pulling {cluster.image} "
                     + (f"with docker_image.basic_auth of {username}" if username else "without basic_auth"))
            answer = fetch_manifest(cluster.image, username, password if username else None)
            if cluster.cancel.is_set():
                raise user_request()
            if not answer.ok:
                # A cluster has only basic_auth; this machine's docker login (a credential helper
                # included) is asked only to say, when it can read the image, what to put there.
                mine = docker_login_reads(cluster.image) if answer.status in (401, 403) else None
                raise _manifest_refusal(cluster.image, answer, username, mine)
            # `{}` rather than None: only basic_auth counts, as on a cluster.
            auth_config: dict[str, Any] = {"username": username, "password": password} if username else {}
            for _event in engine.pull_events(cluster.image, auth_config=auth_config):
                if cluster.cancel.is_set():
                    raise user_request()
            self.log(cluster, "INFO", f"Pulled {cluster.image}"
                     + (f" (registry digest {answer.digest})" if answer.digest else ""))
        except StreamError as exc:
            raise _pull_failure(cluster.image, exc.message) from exc
        finally:
            auth.clear()

    def _check_and_start_driver(self, engine: Engine, cluster: Cluster) -> None:
        """The DCS check and the driver's create + start, overlapped: the driver container
        is created and started (on its own engine connection, in a helper thread) while the
        check's probe runs, so a launch waits for the longer of the two, not their sum.

        The check's verdict comes first: an image that fails it terminates the cluster with
        the check's reason (CONTAINER_LAUNCH_FAILURE, DOCKER_INVALID_OS_EXCEPTION) even when
        its driver could not start either, and the driver started meanwhile is removed by
        `_finish` like any other. Init scripts run only after both, as before.
        """
        failure: list[BaseException] = []

        def start_driver() -> None:
            try:
                with self.connect() as own:
                    self._start_driver(own, cluster)
            except BaseException as exc:  # noqa: BLE001 - handed to the launch thread below
                failure.append(exc)

        starter = threading.Thread(target=start_driver, daemon=True,
                                   name=f"dcs-local-{cluster.cluster_id}-driver")
        starter.start()
        try:
            self._check(engine, cluster, driver=True)
        finally:
            starter.join()  # before _finish: it removes the driver this thread created
        if failure:
            raise failure[0]

    def _check(self, engine: Engine, cluster: Cluster, *, driver: bool = False) -> None:
        runtime = runtime_of(cluster.spec.get("spark_version"))
        self.step(cluster, "Checking the image against the Databricks Container Services requirements"
                   + (f" for runtime {runtime}" if runtime else "")
                   + (" while the driver container starts" if driver else ""))
        try:
            report = check(cluster.image, runtime=runtime, engine=engine)
        except DcsError as exc:
            if cluster.cancel.is_set():
                raise user_request() from exc
            raise Terminate("CONTAINER_LAUNCH_FAILURE", f"The image could not be started: {exc.message}",
                            type_="SERVICE_FAULT") from exc
        failed = [c for c in report.checks if not c.ok and c.severity == "error"]
        for item in report.checks:
            if not item.ok and item.severity != "error":
                self.log(cluster, "WARN", f"Image check: {item.name}: {item.detail}")
        if not failed:
            self.log(cluster, "INFO", f"Image check passed ({len(report.checks)} requirements: "
                     + ", ".join(c.name for c in report.checks) + ")")
            return
        if cluster.cancel.is_set():  # the probe was removed under it: its verdict means nothing
            raise user_request()
        code = ("DOCKER_INVALID_OS_EXCEPTION" if any(c.name in OS_ITEMS for c in failed)
                else "CONTAINER_LAUNCH_FAILURE")
        for item in failed:  # the check's own rows, one ERROR line each
            self.log(cluster, "ERROR", exception_line(code, f"{item.name}: {item.detail}"))
        summary = "; ".join(f"{c.name}: {c.detail}" for c in failed)
        fixes = " | ".join(f"{c.name}: {c.fix}" for c in failed if c.fix)
        fixes = f". Fix: {fixes}" if fixes else ""
        if any(c.name in OS_ITEMS for c in failed):
            raise Terminate("DOCKER_INVALID_OS_EXCEPTION",
                            f"The image cannot run on Databricks' linux/amd64 hosts: {summary}" + fixes)
        names = ", ".join(c.name for c in failed)
        raise Terminate("CONTAINER_LAUNCH_FAILURE",
                        f"The image does not meet the Databricks Container Services requirements "
                        f"(missing or wrong: {names}): {summary}" + fixes)

    def exec_in_driver(self, engine: Engine, cluster: Cluster, container: str, command: list[str],
                       environment: dict[str, str], *, tail: int = EXEC_TAIL) -> ExecResult:
        """Run `command` as root in the driver, keeping the last `tail` bytes of its output (see
        `Engine.exec`); a terminate (or cancel) while it runs removes the driver and ends here as
        USER_REQUEST, not as the engine's error."""
        try:
            ran = engine.exec(container, command, user="0", environment=environment, tail=tail)
        except EngineError as exc:
            if cluster.cancel.is_set():  # the driver was removed under the command
                raise user_request() from exc
            raise
        if cluster.cancel.is_set():
            raise user_request()
        return ran

    def environment(self, cluster: Cluster) -> dict[str, str]:
        """The driver's environment: spark_env_vars and the DB_* variables of a driver."""
        spec = cluster.spec
        env = {str(k): str(v) for k, v in (spec.get("spark_env_vars") or {}).items()}
        env.update(DB_CLUSTER_ID=cluster.cluster_id, DB_CLUSTER_NAME=str(spec.get("cluster_name", "")),
                   DB_IS_DRIVER="TRUE", DB_IS_JOB_CLUSTER="TRUE" if cluster.source == "JOB" else "FALSE",
                   DB_INSTANCE_TYPE=str(spec.get("node_type_id") or NODE_TYPE_ID))
        runtime = runtime_of(spec.get("spark_version"))
        if runtime:
            env.setdefault("DATABRICKS_RUNTIME_VERSION", runtime)
        return env

    def _start_driver(self, engine: Engine, cluster: Cluster) -> None:
        """Create and start the driver (in the helper thread of `_check_and_start_driver`: the
        state message stays the check's, which names both)."""
        if cluster.cancel.is_set():
            raise user_request()
        name = f"dcs-local-{cluster.cluster_id}"
        spec = cluster.spec
        labels = {LABEL: cluster.cluster_id, "dcs_magic.cluster_name": str(spec.get("cluster_name", "")),
                  "dcs_magic.spark_version": str(spec.get("spark_version", "")),
                  "dcs_magic.image": cluster.image, "dcs_magic.start_time": str(cluster.start_time),
                  _AUTOTERMINATION_LABEL: str(spec.get("autotermination_minutes") or 0),
                  _ENDS_LABEL: "1" if self.clusters_end_with_process else "0"}
        # Set first: a failed create still gets cleaned up by name, also at interpreter exit.
        self.store.update(cluster, container=name)
        engine.hold_until_exit(name)
        try:
            engine.create_container(cluster.image, name=name, entrypoint=["/bin/sh", "-c", _IDLE],
                                    hostname="driver", user="0", environment=self.environment(cluster),
                                    labels=labels)
            engine.start(name)
            self.store.update(cluster, driver_ip=_ip_address(engine.inspect_container(name)))
            self.log(cluster, "INFO", f"Driver container {name} started (hostname driver, IP "
                     f"{cluster.driver_ip or 'none'})")
        except EngineError as exc:
            if cluster.cancel.is_set():
                raise user_request() from exc
            raise Terminate("DOCKER_CONTAINER_CREATION_EXCEPTION",
                            f"The driver container could not be started: {exc.message}") from exc

    def _run_init_scripts(self, engine: Engine, cluster: Cluster) -> None:
        """Run the init scripts in order; INIT_SCRIPTS_STARTED / INIT_SCRIPTS_FINISHED events as
        Databricks sends them (`details.init_scripts.cluster[]`: the destination, `status`,
        `execution_duration_seconds`, `error_message`). After a failure the rest are SKIPPED;
        a launch ended meanwhile leaves the rest NOT_EXECUTED."""
        scripts = cluster.spec.get("init_scripts") or []
        if not scripts:
            return
        self.store.event(cluster, "INIT_SCRIPTS_STARTED", {"init_scripts": {"reported_for_node": "driver"}})
        results: list[dict[str, Any]] = []
        failed: tuple[int, str, ScriptRun] | None = None
        try:
            for index, item in enumerate(scripts, 1):
                kind, dest = next(iter(item.items()))
                where = _where(kind, dest["destination"])
                entry: dict[str, Any] = {kind: {"destination": dest["destination"]}}
                if failed is not None:
                    results.append({**entry, "status": "SKIPPED", "execution_duration_seconds": 0,
                                    "error_message": f"Skipped: init script {failed[0]} failed"})
                    self.log(cluster, "INFO", f"Init script {index}/{len(scripts)} {where}: SKIPPED "
                             f"(init script {failed[0]} failed)")
                    continue
                self.step(cluster, f"Running init script {index}/{len(scripts)} ({where})")
                self.log(cluster, "INFO", f"Running init script {index}/{len(scripts)} {where}")
                ran = self._run_init_script(engine, cluster, index, kind, dest["destination"])
                results.append({**entry, "status": ran.status, "execution_duration_seconds": ran.seconds,
                                **({"error_message": ran.error} if ran.error else {})})
                self._log_script(cluster, f"{index}/{len(scripts)}", where, ran)
                if ran.status != "SUCCEEDED":
                    failed = (index, where, ran)
        finally:
            for item in scripts[len(results):]:
                kind, dest = next(iter(item.items()))
                results.append({kind: {"destination": dest["destination"]}, "status": "NOT_EXECUTED",
                                "execution_duration_seconds": 0})
            self.store.event(cluster, "INIT_SCRIPTS_FINISHED",
                             {"init_scripts": {"cluster": results, "reported_for_node": "driver"}})
        if failed is not None:
            raise _init_failure(*failed)

    def _log_script(self, cluster: Cluster, place: str, where: str, ran: ScriptRun) -> None:
        """The script's line: its destination, status, exit code, and where its output is."""
        ended = (f"exit code {ran.exit_code}, " if ran.exit_code is not None else "") + f"{ran.seconds} s"
        logs = ""
        if ran.log_name:
            node = f"{cluster.cluster_id}_{(cluster.driver_ip or '127.0.0.1').replace('.', '_')}"
            logs = f"; its output: init_scripts/{node}/{ran.log_name}.stderr.log and .stdout.log"
        if ran.status == "SUCCEEDED":
            self.log(cluster, "INFO", f"Init script {place} {where}: SUCCEEDED ({ended}){logs}")
            return
        self.log(cluster, "ERROR", exception_line("INIT_SCRIPT_FAILURE", f"Init script {place} {where}: "
                                                  f"{ran.status} ({ended}): {ran.error}{logs}"))

    def _run_init_script(self, engine: Engine, cluster: Cluster, index: int, kind: str,
                         destination: str) -> ScriptRun:
        """Run one init script with bash in the driver, its stdout and stderr written to its
        log files on the node (NODE_INIT_DIR, as Databricks keeps them): never held here whole,
        delivered by cluster_log_conf (logs.py reads back their tails)."""
        path = self._place_init_script(engine, cluster, index, kind, destination)
        if path is None:
            missing = ("does not exist in the image" if kind == "file" else
                       "was not uploaded to the local preflight workspace" if kind in _FETCHABLE else
                       f"cannot be fetched by the local preflight workspace ({kind} init scripts); upload "
                       "it to /Workspace, /Volumes or dbfs:/ of the local workspace (%%init_script NAME "
                       "--upload DEST --local)")
            return ScriptRun("FAILED_FETCH", 0, f"The script {_where(kind, destination)} {missing}")
        started = time.monotonic()
        assert cluster.container is not None
        name = init_log_name(index, destination)
        with self.store.lock:
            cluster.init_logs.append(name)
        log = f"{NODE_INIT_DIR}/{name}"
        ran = self.exec_in_driver(engine, cluster, cluster.container,
                                  ["/bin/sh", "-c", _RUN_LOGGED, "sh", path, f"{log}.stdout.log", f"{log}.stderr.log"],
                                  self.environment(cluster))
        seconds = round(time.monotonic() - started)
        if ran.timed_out:
            return ScriptRun("FAILED_EXECUTION", seconds, f"Script did not finish within {DOCKER_TIMEOUT_S} s",
                             log_name=name)
        if ran.exit_code != 0:
            self.driver_alive(engine, cluster, f"init script {index} ({_where(kind, destination)}) ran")
        if ran.exit_code == 0:
            return ScriptRun("SUCCEEDED", seconds, None, 0, name)
        return ScriptRun("FAILED_EXECUTION", seconds, "Script exit status is non-zero", ran.exit_code, name)

    def driver_alive(self, engine: Engine, cluster: Cluster, while_: str) -> None:
        """A script killed with the container is not the script's fault: say what happened."""
        info = engine.inspect_container(cluster.container or "")
        if not (info or {}).get("State", {}).get("Running"):
            raise Terminate("CONTAINER_LAUNCH_FAILURE", f"The driver container {cluster.container} "
                            f"stopped or was removed outside dcs-magic while {while_}",
                            type_="SERVICE_FAULT")

    def _place_init_script(self, engine: Engine, cluster: Cluster, index: int, kind: str,
                           destination: str) -> str | None:
        """The script's path inside the driver (uploaded ones are copied in); None if missing."""
        container = cluster.container or ""
        if kind == "file":
            path = destination.removeprefix("file:")
            found = engine.exec(container, ["/bin/sh", "-c", '[ -f "$1" ]', "sh", path])
            return path if found.exit_code == 0 else None
        to_key: Callable[[str], str | None] = {"workspace": workspace_key, "volumes": lambda p: p.strip(),
                                               "dbfs": dbfs_key}.get(kind, lambda p: None)
        key = to_key(destination)
        if key is None:
            return None
        data = self.store.file(key)
        if data is None:
            return None
        return copy_file(engine, container, _INIT_DIR, f"{index}-{os.path.basename(key) or 'init.sh'}", data)

    def _running(self, cluster: Cluster, engine: Engine) -> None:
        # The marker first: another process adopts a driver as RUNNING only with it.
        engine.put_archive(cluster.container or "", "/", _single_file_tar(RUNNING_MARKER.lstrip("/"), b""))
        where = log_destination(cluster.spec)
        undelivered = s3_message(where[1]) if where is not None and where[0] == "s3" else ""
        if undelivered:
            self.log(cluster, "WARN", undelivered)
        self.log(cluster, "INFO", f"Cluster {cluster.cluster_id} is RUNNING (driver container "
                 f"{cluster.container}; no Spark on a local preflight cluster)")
        deliver(self.store, cluster, engine)  # before RUNNING: whoever sees RUNNING finds the logs
        with self.store.lock:  # with _step's cancel check: a terminate request cannot slip between
            self.step(cluster, f"Local preflight: driver container {cluster.container} is running "
                       "(image pulled and checked, init scripts run; no Spark)"
                       + ("; it ends with this kernel" if self.clusters_end_with_process else "")
                       + (f". {undelivered}" if undelivered else ""))
            self.store.update(cluster, state="RUNNING", busy=False)
        if not self.clusters_end_with_process:
            engine.release(cluster.container or "")  # a running cluster outlives this process
        # else it stays held: removed when this process (the kernel) exits
        self.store.event(cluster, "RUNNING", {"current_num_workers": 0, "target_num_workers": 0})
        self._arm_autotermination(cluster)

    def _finish(self, cluster: Cluster, reason: Terminate, engine: Engine | None) -> None:
        """Remove the driver container (if any) and mark the cluster TERMINATED (a terminate
        request's reason wins over the worker's USER_REQUEST)."""
        reason = cluster.ending if cluster.ending is not None and reason.code == "USER_REQUEST" else reason
        self._terminating_event(cluster, reason)
        if reason.type == "SUCCESS":
            self.log(cluster, "INFO", f"Cluster terminated: {reason.code}: {reason.message}")
        else:
            self.log(cluster, "ERROR", exception_line(reason.code, reason.message))
        deliver(self.store, cluster, engine)  # the driver's output and files first, then it goes
        removed = False
        if engine is not None and cluster.container:
            try:
                engine.remove_container(cluster.container)
                removed = True  # or it was gone already
            except EngineError:
                pass  # engine gone: the container stays known, and held for removal at exit
            if removed:
                engine.release(cluster.container)
        with self.store.lock:
            cluster.auth = None
            self.store.update(cluster, busy=False, state="TERMINATED", state_message=reason.message,
                              terminated_time=now_ms(), termination_reason=reason.as_dict(),
                              container=None if removed else cluster.container)
        self._keep(cluster)

    def _keep(self, cluster: Cluster) -> None:
        """The ended cluster's record for later processes (`ended.py`), with its delivered logs."""
        if self.records is None:
            return
        found = log_destination(cluster.spec)
        files = (self.store.files_under(f"{found[1]}/{cluster.cluster_id}")
                 if found is not None and found[0] in ("volumes", "dbfs") else {})
        ended.save(self.records, cluster.info(), self.store.events(cluster), files)


# Launchers of this process, for the exit handler (weak: a stopped server's can go).
_LAUNCHERS: weakref.WeakSet[Launcher] = weakref.WeakSet()


@atexit.register
def _shutdown_all() -> None:
    """Ctrl-C in `dcs launch --local --wait` ends the main thread: before the interpreter
    stops the daemon workers, cancel their launches and let them remove their containers."""
    for launcher in list(_LAUNCHERS):
        launcher.shutdown()


def _kernel_ended() -> Terminate:
    return Terminate("USER_REQUEST", "Terminated with the Jupyter kernel that created it (local preflight "
                     "clusters end with their kernel)", type_="SUCCESS", username="local")


def _unexpected(exc: BaseException) -> Terminate:
    """A lost engine connection mid-launch, or else a failure nobody foresaw (named as such)."""
    if isinstance(exc, EngineError):
        return _engine_failure(exc)
    return Terminate("CONTAINER_LAUNCH_FAILURE", f"The local launch failed unexpectedly "
                     f"({type(exc).__name__}: {_short(exc)}); please report this dcs-magic bug",
                     type_="SERVICE_FAULT")


def _engine_failure(exc: BaseException) -> Terminate:
    return Terminate("CONTAINER_LAUNCH_FAILURE",
                     f"The local Docker engine is not reachable or failed ({_short(exc)}); start Docker, "
                     "then create the cluster again", type_="SERVICE_FAULT")


def _short(exc: BaseException) -> str:
    text = getattr(exc, "message", None) or str(exc)
    return text.splitlines()[0][:300] if text else type(exc).__name__


_DENIED = ("unauthorized", "authentication required", "denied", "no basic auth credentials",
           "incorrect username or password", "401")


def _manifest_refusal(image: str, answer: ManifestAnswer, username: str | None,
                      machine_login: str | None = None) -> Terminate:
    """What a cluster reports when the registry does not serve it the manifest: 401/403 ->
    IMAGE_PULL_PERMISSION_DENIED, anything else (404: no such tag or digest; no answer) ->
    DOCKER_IMAGE_PULL_FAILURE; the registry's own words in databricks_error_message.
    MACHINE_LOGIN: where this machine's docker login that can read the image lives (said, as
    what to give the cluster; it never lets the local launch pass)."""
    said = f"{answer.url} answered {answer.message}" if answer.status else f"{answer.url}: {answer.message}"
    if answer.status in (401, 403):
        who = (f"the credentials of {username} in docker_image.basic_auth" if username else
               "no credentials (docker_image has no basic_auth; the machine's own docker login does "
               "not count on a cluster)")
        mine = (f". This machine's docker login ({machine_login}) can read the image, but a cluster "
                "gets only docker_image.basic_auth: put that registry user there, with the password "
                "as a {{secrets/<scope>/<key>}} reference" if machine_login else "")
        return Terminate("IMAGE_PULL_PERMISSION_DENIED",
                         f"Failed to pull the image {image} with {who}: {said}{mine}. Check "
                         "docker_image.basic_auth (username and password or token; ACR: the service "
                         "principal's id and secret)")
    if answer.status == 404:
        return Terminate("DOCKER_IMAGE_PULL_FAILURE",
                         f"Failed to pull the image {image}: the registry has no such tag or digest "
                         f"({said}). Push it under this name, or fix docker_image.url")
    if answer.status is None:
        return Terminate("DOCKER_IMAGE_PULL_FAILURE",
                         f"Failed to pull the image {image}: the registry does not answer ({said}). Check "
                         "the registry host and that the cluster's network reaches it")
    return Terminate("DOCKER_IMAGE_PULL_FAILURE", f"Failed to pull the image {image}: {said}")


def _pull_failure(image: str, detail: str) -> Terminate:
    if any(word in detail.lower() for word in _DENIED):
        return Terminate("IMAGE_PULL_PERMISSION_DENIED",
                         f"The registry refused to let the cluster pull {image}: {detail}. Check "
                         "docker_image.basic_auth (username and password or token)")
    return Terminate("DOCKER_IMAGE_PULL_FAILURE",
                     f"The image {image} could not be pulled: {detail}. Check that it was pushed "
                     "under this name and that the registry is reachable")


def _where(kind: str, destination: str) -> str:
    """`file:/x`, `dbfs:/x`, `workspace:/Users/...`: the script as users wrote it, kind first."""
    return destination if destination.startswith(f"{kind}:") else f"{kind}:{destination}"


def _init_failure(index: int, where: str, ran: ScriptRun) -> Terminate:
    """INIT_SCRIPT_FAILURE as Databricks words it ("Cluster scoped init script ... failed: ..."),
    with the exit code when it ran; never the script's output (it can hold secrets: it is in
    the script's stderr log, delivered by cluster_log_conf)."""
    message = f"Cluster scoped init script {where} failed: {ran.error}"
    if ran.exit_code is None:
        return Terminate("INIT_SCRIPT_FAILURE", message, instance_id="driver")
    return Terminate("INIT_SCRIPT_FAILURE", f"{message} (init script {index} exited with code {ran.exit_code})",
                     instance_id="driver")


def _ip_address(info: dict[str, Any] | None) -> str | None:
    """The container's IP address on its (first) network, None without one."""
    settings = (info or {}).get("NetworkSettings") or {}
    found = settings.get("IPAddress") or next(
        (n.get("IPAddress") for n in (settings.get("Networks") or {}).values() if n.get("IPAddress")), None)
    return str(found) if found else None


def copy_file(engine: Engine, container: str, directory: str, name: str, data: bytes) -> str:
    """Copy `data` into the running `container` as `directory/name` (mode 755); its path."""
    engine.exec(container, ["mkdir", "-p", directory])
    engine.put_archive(container, directory, _single_file_tar(name, data))
    return f"{directory}/{name}"


def _single_file_tar(name: str, data: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size, info.mode = len(data), 0o755
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()
