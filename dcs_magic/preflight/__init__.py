"""The local preflight workspace: a Clusters API subset on 127.0.0.1, backed by Docker.

`Workspace.local()` talks to it over HTTP exactly as `Workspace` talks to Databricks, so the
launch form, `wait_for_cluster` and the CLI use one code path. The client does not import
this package: it finds `local_workspace` through the `dcs_magic.workspaces` entry point
group (see pyproject.toml), so the emulator is a provider the client looks up by name.

    http.py      JSON-over-HTTP plumbing: explicit route table, token checked before the
                 body, bounded bodies and connections (shared with the tests' Clusters API)
    store.py     cluster records, files (uploads, delivered logs) with their listing, events
                 (thread-safe, no I/O)
    launcher.py  the registry asked as a fresh VM, pull, check, driver container, init
                 scripts, RUNNING marker, autotermination, terminate, leftovers (through the Engine)
    logs.py      cluster_log_conf delivery: the driver's stdout/stderr, the launch's own
                 log4j-active.log, the init scripts' logs, at RUNNING and at termination
    runs.py      a submitted run's task on its job cluster
    pages.py     the tokenless read-only HTML status pages
    node_types.py  `local` and the clouds' own node type names, as list-node-types answers
    server.py    the routes and their handlers

No Spark runs: this checks what a cluster start would check, before a real cluster is paid
for. A Docker engine that does not answer terminates the cluster (CONTAINER_LAUNCH_FAILURE,
type SERVICE_FAULT) with a message saying so; `create` itself only validates the body.
"""

from __future__ import annotations

import sys
import threading
from typing import TYPE_CHECKING, Any

from ..settings import secret_variable
from .launcher import LABEL
from .server import SPARK_VERSIONS, LocalWorkspaceServer

if TYPE_CHECKING:
    from ..adapters.workspace import Workspace

__all__ = ["LABEL", "SPARK_VERSIONS", "LocalWorkspaceServer", "ensure_server", "local_workspace",
           "secret_variable"]

_SERVER: LocalWorkspaceServer | None = None
_SERVER_LOCK = threading.Lock()


def ensure_server(*, clusters_end_with_process: bool | None = None) -> tuple[str, str]:
    """Start this process's local preflight workspace once; return (host, token).

    `clusters_end_with_process` (default: whether this process is a Jupyter kernel): the
    clusters created from now on are terminated when this process exits, as a kernel's
    clusters end with the kernel. A `dcs` command's clusters outlive it (`dcs terminate`)."""
    global _SERVER
    with _SERVER_LOCK:
        if _SERVER is None:
            _SERVER = LocalWorkspaceServer().start()
        if clusters_end_with_process is None:
            clusters_end_with_process = _in_kernel()
        if clusters_end_with_process:
            _SERVER.launcher.clusters_end_with_process = True
        return _SERVER.host, _SERVER.token


def _in_kernel() -> bool:
    """Whether this process is a running Jupyter (ipykernel) kernel."""
    app = sys.modules.get("ipykernel.kernelapp")
    return bool(app is not None and app.IPKernelApp.initialized())


LOCAL_POLL_S = (0.1, 0.1)


def local_workspace(**kwargs: Any) -> Workspace:
    """A `Workspace` on this process's local preflight workspace (started on first use).

    The `dcs_magic.workspaces` entry point `local`: what `Workspace.local(**kwargs)` returns.
    """
    from ..adapters.workspace import Workspace

    host, token = ensure_server(clusters_end_with_process=kwargs.pop("clusters_end_with_process", None))
    # Polling a server on this machine is cheap: a state change is seen within 0.1 s.
    kwargs.setdefault("poll_s", LOCAL_POLL_S)
    workspace = Workspace(host=host, token=token, sdk_auth=False, **kwargs)
    workspace.not_found_hint = not_found_hint()
    workspace.is_local = True
    # Its pages are this process's: linked only when its clusters end with it too (a kernel's).
    assert _SERVER is not None
    workspace.page_links = _SERVER.launcher.clusters_end_with_process
    return workspace


def not_found_hint() -> str:
    """What the local workspace knows, for an id or path it does not (no "30 days" here)."""
    from ..settings import local_state_dir
    from .ended import KEEP

    return ("not known to the local preflight workspace: it knows the clusters whose driver containers run "
            f"in this machine's Docker engine, the last {KEEP} that ended (their records in {local_state_dir()}) "
            "and the runs and uploads of this process; check the id (`dcs launch --local` prints it)")
