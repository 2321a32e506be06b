"""dcs_magic.ops.recipe: what `dcs render/build/launch` do, called from Python (no command line).

The build tests use the real engine and registry; the launch tests a real HTTP Clusters API
server on 127.0.0.1 (tests/support/clusters_api.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook
from support.clusters_api import ClustersApi, isolate_databricks_config

from dcs_magic.adapters.workspace import Workspace
from dcs_magic.errors import LockError, SpecError, UsageError
from dcs_magic.model.spec import ClusterSpec
from dcs_magic.ops.lock import ImageLock, Lock, lock_path, read_lock, write_lock
from dcs_magic.ops.recipe import (
    build_notebook,
    create_cluster,
    launch_spec,
    render_notebook,
)

PINNED = "registry.example.com/team/app@sha256:" + "a" * 64
BODY = {"cluster_name": "recipe", "spark_version": "15.4.x-scala2.12", "node_type_id": "i3.xlarge",
        "num_workers": 0, "docker_image": {"url": "registry.example.com/team/app:1"}}


def notebook(path: Path, base: str, greeting: str = "hello") -> Path:
    nb = new_notebook(cells=[
        new_code_cell(f"base_image = {base!r}\ngreeting = {greeting!r}\n", metadata={"tags": ["parameters"]}),
        new_code_cell("%%dockerfile app\nFROM {{ base_image }}\nCOPY greeting.txt /greeting.txt\n"),
        new_code_cell("%%dcs_file app greeting.txt\n{{ greeting }}\n"),
        new_code_cell("%%init_script setup\n#!/bin/bash\necho {{ not_rendered }}\n"),
    ])
    nbformat.write(nb, path)
    return path


# -- render -------------------------------------------------------------------------------------------


def test_render_notebook_writes_contexts_and_init_scripts_and_reports_findings(tmp_path: Path) -> None:
    nb = notebook(tmp_path / "app.ipynb", "ubuntu")  # no tag: a lint finding
    warnings: list[str] = []
    rendered = render_notebook(nb, variables={"greeting": "bonjour"}, warn=warnings.append)
    [context] = rendered.contexts
    assert context.context_dir == tmp_path / "dcs-build" / "app"
    assert (context.context_dir / "greeting.txt").read_text() == "bonjour\n"
    assert rendered.init_scripts == (tmp_path / "dcs-build" / "init-scripts" / "setup.sh",)
    assert rendered.init_scripts[0].read_text() == "#!/bin/bash\necho {{ not_rendered }}\n"
    assert len(warnings) == 1 and warnings[0].startswith("app/Dockerfile ") and "mutable-base" in warnings[0]
    out = render_notebook(nb, out=tmp_path / "elsewhere")
    assert out.contexts[0].context_dir == tmp_path / "elsewhere" / "app"


# -- build -------------------------------------------------------------------------------------------


def test_bad_build_args_are_usage_errors_before_any_work(tmp_path: Path) -> None:
    nb = notebook(tmp_path / "app.ipynb", "busybox:1")
    with pytest.raises(UsageError, match="--build-arg expects KEY=VALUE, got 'oops'"):
        build_notebook(nb, tags=["dcs-test-recipe:1"], build_args=["oops"])
    with pytest.raises(UsageError, match="at least one tag"):
        build_notebook(nb, tags=[])
    with pytest.raises(UsageError, match="DCS_TEST_UNSET_VAR"):
        build_notebook(nb, tags=["dcs-test-recipe:1"], push=True, username="u", password_env="DCS_TEST_UNSET_VAR")
    assert not (tmp_path / "dcs-build").exists() and not lock_path(nb).exists()


@pytest.mark.docker
def test_build_notebook_builds_pushes_and_locks(tmp_path: Path, busybox_image: str, registry: Any,
                                                docker_client: Any, docker_cleanup: Any) -> None:
    nb = notebook(tmp_path / "app.ipynb", busybox_image)
    repo = docker_cleanup.unique("recipe")
    tag = docker_cleanup.add(f"{registry.host}/{repo}:1")
    built = build_notebook(nb, tags=[tag], push=True, labels={"team": "data"})
    digest = registry.manifest_digest(repo, "1")
    assert built.name == "app" and built.lock_file == lock_path(nb)
    assert built.references == [f"{registry.host}/{repo}@{digest}"]
    assert built.entry.pinned == built.references[0] and built.entry.image_id == built.build.image_id
    assert read_lock(built.lock_file).images["app"] == built.entry
    assert docker_client.images.get(tag).labels["team"] == "data"

    # Without push the result is the image id; the unchanged image keeps what was pushed.
    again = build_notebook(nb, tags=[tag], locked=True, labels=["team=data"])
    assert again.references == [built.build.image_id] and again.entry.pinned == built.entry.pinned

    # A changed variable: locked fails before building, naming the file that changed.
    with pytest.raises(LockError, match="file 'greeting.txt' of 'app' changed"):
        build_notebook(nb, tags=[tag], locked=True, variables={"greeting": "bonjour"})
    assert read_lock(built.lock_file).images["app"] == again.entry


# -- launch ------------------------------------------------------------------------------------------


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    isolate_databricks_config(monkeypatch, tmp_path)
    with ClustersApi() as server:
        yield server


def pushed_lock(tmp_path: Path, *names: str) -> Path:
    images = {name: ImageLock(dockerfile_sha256="0" * 64, image_id="sha256:" + "1" * 64,
                              push={"reference": "registry.example.com/team/app:1", "digest": "sha256:" + "a" * 64,
                                    "pinned": PINNED}).seal() for name in names}
    return write_lock(tmp_path / "app.dcs.lock.json", Lock(images=images, notebook="app.ipynb"))


def test_launch_spec_takes_the_pinned_image_from_the_lock_and_warns_about_tags(tmp_path: Path) -> None:
    spec_file = tmp_path / "cluster.json"
    spec_file.write_text(json.dumps(BODY))
    warnings: list[str] = []
    tagged = launch_spec(spec_file, warn=warnings.append)
    assert tagged.body["docker_image"]["url"] == BODY["docker_image"]["url"] and tagged.lock is None
    assert len(warnings) == 1 and "is a tag, which can move" in warnings[0]

    warnings.clear()
    pushed_lock(tmp_path, "app")
    # registry.example.com is no registry: asking it (issue 23 item 6) is tested in tests/faults.
    plan = launch_spec(spec_file, lock=tmp_path / "app.ipynb", warn=warnings.append, registry_check=False)
    assert plan.body["docker_image"]["url"] == PINNED and plan.name == "app" and warnings == []
    assert plan.lock_file == tmp_path / "app.dcs.lock.json"


def test_launch_spec_lock_errors(tmp_path: Path) -> None:
    spec = ClusterSpec.from_dict(BODY)
    with pytest.raises(LockError, match="no lock file"):
        launch_spec(spec, lock=tmp_path / "app.ipynb")
    pushed_lock(tmp_path, "app", "web")
    with pytest.raises(LockError, match="has 2 entries") as info:
        launch_spec(spec, lock=tmp_path / "app.dcs.lock.json")
    assert info.value.hint == "pass --name NAME"
    with pytest.raises(LockError, match="no entry 'db'"):
        launch_spec(spec, lock=tmp_path / "app.dcs.lock.json", name="db")
    assert launch_spec(spec, lock=tmp_path / "app.dcs.lock.json", name="web",
                       registry_check=False).body["docker_image"]["url"] == PINNED


def test_launch_spec_credentials_from_a_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = ClusterSpec.from_dict({**BODY, "docker_image": {"url": PINNED}})
    monkeypatch.delenv("DCS_TEST_PW", raising=False)
    with pytest.raises(UsageError, match="DCS_TEST_PW is not set"):
        launch_spec(spec, username="robot", password_env="DCS_TEST_PW")
    with pytest.raises(SpecError, match="needs both a username and a password"):
        launch_spec(spec, username="robot")
    monkeypatch.setenv("DCS_TEST_PW", "pw-from-the-environment")
    plan = launch_spec(spec, username="robot", password_env="DCS_TEST_PW")
    assert plan.body["docker_image"]["basic_auth"] == {"username": "robot", "password": "pw-from-the-environment"}
    assert plan.literal_password
    assert "pw-from-the-environment" not in repr(plan) + plan.spec.to_json()  # the spec holds the name only


def test_create_cluster_records_the_masked_body_in_the_lock(tmp_path: Path, api: ClustersApi,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    lock_file = pushed_lock(tmp_path, "app")
    monkeypatch.setenv("DCS_TEST_PW", "pw-from-the-environment")
    plan = launch_spec(ClusterSpec.from_dict(BODY), lock=lock_file, username="robot", password_env="DCS_TEST_PW",
                       registry_check=False)
    created: list[tuple[str, str]] = []
    with Workspace(host=api.host, token=api.token, backoff_factor=0) as ws:
        cluster_id = create_cluster(plan, workspace=ws, on_created=lambda *a: created.append(a))
        assert ws.get_cluster(cluster_id)["docker_image"]["url"] == PINNED  # still open: the caller's
    assert created == [(cluster_id, f"{api.host}/compute/clusters/{cluster_id}")]
    [create] = api.requests_to("/clusters/create")
    assert create.json["docker_image"]["basic_auth"]["password"] == "pw-from-the-environment"
    cluster = read_lock(lock_file).images["app"].cluster
    assert cluster["docker_image"] == {"url": PINNED, "basic_auth": {"username": "robot", "password": "****"}}
    assert "pw-from-the-environment" not in lock_file.read_text()
