"""`%dcs_why CLUSTER_ID`: the diagnosis in the notebook, against a workspace that speaks the
Clusters and Files APIs (support/clusters_api.py); the fix names this kernel's %%dockerfile line."""

from __future__ import annotations

import time
from typing import Any

import pytest
from support.clusters_api import ClustersApi

from dcs_magic.adapters.workspace import Workspace


def test_dcs_why_shows_cause_evidence_and_the_cell_line(shell: Any, dcs_magics: Any, api: ClustersApi,
                                                         ws: Workspace, no_databricks_config: None,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABRICKS_HOST", api.host)
    monkeypatch.setenv("DATABRICKS_TOKEN", api.token)
    shell.run_cell("%%dockerfile app\nFROM ubuntu:22.04\nRUN apt-get update && apt-get install -y openjdk-17-jdk\n",
                   store_history=False)
    reason = {"code": "CONTAINER_LAUNCH_FAILURE", "type": "SERVICE_FAULT", "parameters": {
        "databricks_error_message": "Failed to launch spark container on instance i-0abc"}}
    api.script({"state": "TERMINATED", "termination_reason": reason, "terminated_time": int(time.time() * 1000)})
    cluster_id = ws.create_cluster({"cluster_name": "why", "spark_version": "15.4.x-scala2.12",
                                    "node_type_id": "i3.xlarge", "num_workers": 0,
                                    "cluster_log_conf": {"dbfs": {"destination": "dbfs:/logs"}},
                                    "docker_image": {"url": "registry.example.com/app:1"}})
    api.files[f"dbfs:/logs/{cluster_id}/driver/stderr"] = b"/databricks/spark/bin/spark-class: line 71: " \
                                                           b"/usr/lib/jvm/java-17/bin/java: No such file or directory\n"
    found = shell.run_line_magic("dcs_why", cluster_id)
    assert found is dcs_magics.last_why and found.causes, found
    assert "java" in found.causes[0].cause.lower()
    assert found.place and found.place.startswith("%%dockerfile app (its %%dockerfile cell in this notebook), line 3")
    html = found._repr_html_()
    assert 'class="dcs-why"' in html and "driver/stderr:1" in html and "var(--jp-" in html
    assert repr(found).startswith("Cause (")
