"""The official databricks-sdk client for a local preflight workspace, and waiting on it. TEST-ONLY.

    w = sdk_client(server, folder)      # WorkspaceClient for server.host/token only: an empty
                                        # config file, so no ~/.databrickscfg profile leaks in
    details = settle(w, cluster_id)     # clusters/get until RUNNING, TERMINATED or ERROR
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from databricks.sdk import WorkspaceClient
from databricks.sdk.service import compute

__all__ = ["sdk_client", "settle"]


def sdk_client(server: Any, folder: Path) -> WorkspaceClient:
    """A WorkspaceClient for the local workspace `server` (its host and token), configured from
    an empty config file in `folder`."""
    config_file = folder / "databrickscfg"
    config_file.write_text("")
    return WorkspaceClient(host=server.host, token=server.token, auth_type="pat", config_file=str(config_file))


def settle(w: WorkspaceClient, cluster_id: str, timeout_s: float = 240) -> compute.ClusterDetails:
    """Poll clusters/get (through the SDK) until RUNNING, TERMINATED or ERROR."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        details = w.clusters.get(cluster_id)
        if details.state in (compute.State.RUNNING, compute.State.TERMINATED, compute.State.ERROR):
            return details
        time.sleep(0.2)
    raise AssertionError(f"{cluster_id} did not settle within {timeout_s} s")
