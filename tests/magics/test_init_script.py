"""`%%init_script NAME [--upload DEST] [--profile P]` in a real InteractiveShell, uploading to
the local Clusters API server."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest
from support.clusters_api import ClustersApi, isolate_databricks_config

from dcs_magic import ClusterSpec, ConfigError, SpecError
from dcs_magic.model.spec import NamedInitScript

SCRIPT = "#!/bin/bash\nset -euo pipefail\necho 'hello from init' >> /tmp/init.log\n"


@pytest.fixture(autouse=True)
def no_databricks_config(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    isolate_databricks_config(monkeypatch, tmp_path)


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[ClustersApi]:
    with ClustersApi() as server:
        monkeypatch.setenv("DATABRICKS_HOST", server.host)
        monkeypatch.setenv("DATABRICKS_TOKEN", server.token)
        yield server


def test_keeps_the_script_without_upload(shell, dcs_magics):
    script = shell.run_cell_magic("init_script", "setup", SCRIPT)
    assert dcs_magics.init_scripts["setup"] is script
    assert (script.name, script.text, script.destination) == ("setup", SCRIPT, None)
    assert "not uploaded" in repr(script)


@pytest.mark.parametrize("dest, kind", [
    ("/Workspace/Shared/dcs/setup.sh", "workspace"),
    ("/Volumes/main/default/scripts/setup.sh", "volumes"),
    ("dbfs:/databricks/init/setup.sh", "dbfs"),
])
def test_upload_sends_it_and_the_spec_references_it(shell, dcs_magics, api, dest, kind):
    script = shell.run_cell_magic("init_script", f"setup --upload {dest}", SCRIPT)
    assert script.destination == dest
    assert api.files[dest] == SCRIPT.encode()
    assert all(r.headers["Authorization"] == f"Bearer {api.token}" for r in api.requests if r.path.startswith("/api/"))
    spec = ClusterSpec(spark_version="15.4.x-scala2.12", num_workers=0, init_scripts=[script])
    assert spec.to_dict()["init_scripts"] == [{kind: {"destination": dest}}]


def test_upload_with_a_profile(shell, api, tmp_path, monkeypatch):
    monkeypatch.delenv("DATABRICKS_HOST")
    monkeypatch.delenv("DATABRICKS_TOKEN")
    config = tmp_path / "databrickscfg"
    config.write_text(f"[staging]\nhost = {api.host}\ntoken = {api.token}\n")
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(config))
    shell.run_cell_magic("init_script", "setup --upload /Workspace/Shared/s.sh --profile staging", SCRIPT)
    assert api.files["/Workspace/Shared/s.sh"] == SCRIPT.encode()
    imported = api.requests_to("/workspace/import")[0].json
    assert imported["overwrite"] is True and base64.b64decode(imported["content"]).decode() == SCRIPT


def test_file_destination_is_recorded_without_upload(shell, dcs_magics):
    script = shell.run_cell_magic("init_script", "baked --upload file:/databricks/scripts/baked.sh", SCRIPT)
    assert script.info() == {"file": {"destination": "file:/databricks/scripts/baked.sh"}}
    assert isinstance(dcs_magics.init_scripts["baked"], NamedInitScript)


def test_bad_destination_fails_before_any_request(shell, dcs_magics, api):
    with pytest.raises(SpecError, match="not a known type"):
        shell.run_cell_magic("init_script", "setup --upload setup.sh", SCRIPT)
    with pytest.raises(SpecError, match="well-formed volumes"):
        shell.run_cell_magic("init_script", "setup --upload /Volumes/main/setup.sh", SCRIPT)
    assert api.requests == [] and "setup" not in dcs_magics.init_scripts


@pytest.mark.parametrize("dest", ["s3://bucket/setup.sh", "gs://bucket/setup.sh",
                                  "abfss://c@a.dfs.core.windows.net/setup.sh"])
def test_cloud_storage_cannot_be_uploaded_through_the_workspace(shell, dest):
    # No workspace is configured here: the refusal comes first, before any configuration or request.
    with pytest.raises(SpecError, match="uploads only to") as info:
        shell.run_cell_magic("init_script", f"setup --upload {dest}", SCRIPT)
    assert "copy the file there yourself" in info.value.hint


def test_upload_without_configuration_says_how_to_configure(shell, dcs_magics):
    with pytest.raises(ConfigError) as info:
        shell.run_cell_magic("init_script", "setup --upload /Workspace/Shared/setup.sh", SCRIPT)
    assert "DATABRICKS_HOST" in str(info.value) and "setup" not in dcs_magics.init_scripts


def test_uploaded_script_is_offered_by_the_launch_form(shell, api):
    shell.run_cell_magic("init_script", "setup --upload /Workspace/Shared/setup.sh", SCRIPT)
    widget = shell.run_line_magic("dcs_launch", "--image registry.example.com/app@sha256:" + "f" * 64)
    assert widget.controls["init_script_names"].options == (("setup (/Workspace/Shared/setup.sh)", "setup"),)
    widget.controls["init_script_names"].value = ("setup",)
    assert widget.spec.to_dict()["init_scripts"] == [{"workspace": {"destination": "/Workspace/Shared/setup.sh"}}]
