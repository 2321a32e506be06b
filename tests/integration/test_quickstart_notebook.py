"""examples/quickstart.ipynb, executed end to end in a real Jupyter kernel (nbclient).

The notebook runs as a user runs it: every cell in order, in an ipykernel started from the
`python3` kernelspec, widget state saved into the notebook's metadata (nbclient's default).
Only what a user would change is changed: the registry `127.0.0.1:5000` becomes the test
registry and the parameters cell's `base_image` the test's DCS base. Three cells are appended
where the user would act on the launch widget and look at the results:

1. fill the launch form as its markdown says (registry password from an environment
   variable, the uploaded `%%init_script` selected), click Create, wait for RUNNING;
2. report the magics' results (build, check, push) and the launched cluster as JSON;
3. terminate the cluster through `Workspace.local()`.

Between 1 and 3, the test process looks at the driver container itself (init script log,
image), and after the run it checks the outcomes against the engine and the registry's own
HTTP API, and that the saved .ipynb holds the progress widgets' state but no secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import secrets
import shutil
import time
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell
from support.cleanup import DockerCleanup
from support.registry import Registry

pytestmark = [pytest.mark.docker, pytest.mark.slow,
              # base image (cached; minutes only the first time) + a notebook of ~5 min
              pytest.mark.timeout(1800)]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
NOTEBOOK_REGISTRY = "127.0.0.1:5000"
REPO, TAG = "dcs-quickstart", "0.1.0"
CELL_TIMEOUT_S = 600
PASSWORD_VAR = "DCS_TEST_REGISTRY_PASSWORD"
RESULT_PREFIX = "DCS-TEST-RESULT "
TEST_TAG = "dcs-test"  # cell tag of the appended cells

# Appended cell 1: what the launch form's markdown tells the user to do, then Create.
LAUNCH_CELL = f"""\
import json
from dcs_magic.launch import LaunchWidget

w = _  # the widget %dcs_launch returned (the cell above)
assert isinstance(w, LaunchWidget), type(w)
w.controls["auth_mode"].value = "env"
w.controls["password_env"].value = {PASSWORD_VAR!r}
w.controls["init_script_names"].value = ("quickstart-workspace",)
w.create_button.click()
cluster_id = w.wait(timeout={CELL_TIMEOUT_S - 60})
if w.error is not None:
    raise w.error
assert w.cluster_info is not None, "Create did not finish in time"
print({RESULT_PREFIX!r} + json.dumps({{
    "cluster_id": cluster_id,
    "state": w.cluster_info["state"],
    "image": w.cluster_info["docker_image"]["url"],
    "basic_auth": w.cluster_info["docker_image"].get("basic_auth"),
    "init_scripts": w.cluster_info.get("init_scripts"),
    "state_html": w.state.value,
}}))
"""

# Appended cell 2: the magics' results. The local workspace's token goes to a file, never
# to an output (the test then checks that it appears nowhere in the saved notebook).
RESULTS_CELL = """\
from pathlib import Path
from dcs_magic.preflight import ensure_server

magics = get_ipython().find_magic("dcs_build").__self__
build, push, report = magics.last_build, magics.last_push, magics.last_check
Path({token_file!r}).write_text(ensure_server()[1])
print({prefix!r} + json.dumps({{
    "build": {{"image_id": build.image_id, "tags": build.tags,
              "dockerfile_sha256": build.dockerfile_sha256}},
    "push": {{"reference": push.reference, "digest": push.digest, "pinned": push.pinned}},
    "check": {{"ok": report.ok, "failed": [repr(c) for c in report.failures]}},
}}))
"""

# Appended cell 3: leave nothing running.
TERMINATE_CELL = f"""\
from dcs_magic import Workspace

workspace = Workspace.local()
workspace.terminate_cluster(cluster_id)
info = workspace.get_cluster(cluster_id)
print({RESULT_PREFIX!r} + json.dumps({{
    "state": info["state"], "termination_code": info.get("termination_reason", {{}}).get("code")}}))
"""


def prepare_notebook(nb_dir: Path, registry_host: str, base_image: str, token_file: Path) -> Path:
    """The example notebook + cluster.json in nb_dir, pointed at the test registry and base,
    with the three cells above appended."""
    nb_dir.mkdir()
    shutil.copy(EXAMPLES / "cluster.json", nb_dir / "cluster.json")
    nb = nbformat.read(EXAMPLES / "quickstart.ipynb", as_version=4)
    (params,) = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    params.source, count = re.subn(r'(?m)^base_image = "[^"]*"', f"base_image = {base_image!r}",
                                   params.source)
    assert count == 1, params.source
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.source = cell.source.replace(NOTEBOOK_REGISTRY, registry_host)
    launch = [i for i, c in enumerate(nb.cells) if c.source.startswith("%dcs_launch")]
    assert launch == [max(i for i, c in enumerate(nb.cells) if c.cell_type == "code")], \
        "the appended cells expect %dcs_launch to be the notebook's last code cell"
    results = RESULTS_CELL.format(token_file=str(token_file), prefix=RESULT_PREFIX)
    for name, source in (("launch", LAUNCH_CELL), ("results", results), ("terminate", TERMINATE_CELL)):
        nb.cells.append(new_code_cell(source, metadata={"tags": [TEST_TAG, f"{TEST_TAG}-{name}"]}))
    path = nb_dir / "quickstart.ipynb"
    nbformat.write(nb, path)
    return path


def result_of(cell: Any) -> dict[str, Any]:
    """The JSON an appended cell printed."""
    for output in cell.outputs:
        if output.output_type == "stream" and output.name == "stdout":
            for line in output.text.splitlines():
                if line.startswith(RESULT_PREFIX):
                    return json.loads(line[len(RESULT_PREFIX):])
    raise AssertionError(f"no result line in the outputs of {cell.source[:60]!r}: {cell.outputs}")


def tagged(nb: Any, name: str) -> Any:
    (cell,) = [c for c in nb.cells if f"{TEST_TAG}-{name}" in c.metadata.get("tags", [])]
    return cell


def decoded_data_uris(text: str) -> str:
    """The decoded payloads of the `;base64,` data URIs in text (the launch form's download
    link), so a secret encoded there is found too."""
    found = []
    for payload in re.findall(r";base64,([A-Za-z0-9+/=]+)", text):
        try:
            found.append(base64.b64decode(payload).decode("utf-8", "replace"))
        except (binascii.Error, ValueError):
            continue
    return "\n".join(found)


def widget_states(nb: Any) -> list[dict[str, Any]]:
    saved = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {})
    return [model["state"] for model in saved.get("state", {}).values()]


def leftover_drivers(client: Any, registry_host: str) -> list[str]:
    """Local-workspace driver containers of this test's image (any state)."""
    from dcs_magic.preflight import LABEL

    return [c["Id"] for c in client.api.containers(all=True, filters={"label": LABEL})
            if (c.get("Labels") or {}).get("dcs_magic.image", "").startswith(f"{registry_host}/{REPO}")]


def test_quickstart_notebook_runs_end_to_end_in_a_kernel(
        tmp_path: Path, registry: Registry, dcs_base_image: str, docker_client: Any,
        docker_cleanup: DockerCleanup) -> None:
    from dcs_magic.preflight import LABEL

    image = docker_cleanup.add(f"{registry.host}/{REPO}:{TAG}")
    token_file = tmp_path / "local-workspace-token"
    nb_dir = tmp_path / "nb"
    path = prepare_notebook(nb_dir, registry.host, dcs_base_image, token_file)
    secret = "dcs-test-secret-" + secrets.token_urlsafe(18)

    # While the cluster runs (after appended cell 1), look at the driver from outside.
    seen: dict[str, Any] = {}

    def on_cell_executed(cell: Any, cell_index: int, execute_reply: Any) -> None:
        if f"{TEST_TAG}-launch" not in cell.metadata.get("tags", []):
            return
        try:
            cluster_id = result_of(cell)["cluster_id"]
            (container,) = docker_client.api.containers(filters={"label": f"{LABEL}={cluster_id}"})
            driver = docker_client.containers.get(container["Id"])
            seen["labels"] = container["Labels"]
            seen["init_log"] = driver.exec_run(["cat", "/tmp/quickstart-init.log"]).output.decode()
            helper = driver.exec_run(["/databricks/python3/bin/python3", "-c",
                                      "import quickstart_helpers as q; print(q.describe())"])
            seen["helper"] = (helper.exit_code, helper.output.decode())
            seen["driver_env"] = driver.attrs["Config"]["Env"]
        except Exception as exc:  # noqa: BLE001 - reported by the asserts below, after cleanup
            seen["error"] = repr(exc)

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, kernel_name="python3", timeout=CELL_TIMEOUT_S, startup_timeout=120,
                            resources={"metadata": {"path": str(nb_dir)}},
                            on_cell_executed=on_cell_executed)
    started = time.monotonic()
    try:
        client.execute(env={**os.environ, PASSWORD_VAR: secret})
    finally:
        nbformat.write(nb, path)  # the executed notebook, as Jupyter would save it
        for container in leftover_drivers(docker_client, registry.host):
            docker_cleanup.add(container)  # only when the notebook failed before terminating
    duration = time.monotonic() - started

    # Every cell ran, none failed (nbclient raises on an error output; make sure anyway).
    saved = nbformat.read(path, as_version=4)
    code_cells = [c for c in saved.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code_cells)
    errors = [o for c in code_cells for o in c.outputs if o.output_type == "error"]
    assert errors == []

    # Build: the image carries the sha256 of the Dockerfile the notebook rendered.
    results = result_of(tagged(saved, "results"))
    rendered = (nb_dir / "dcs-build" / "quickstart" / "Dockerfile").read_bytes()
    assert f"FROM {dcs_base_image}\n".encode() in rendered
    built = docker_client.images.get(image)
    assert built.labels["dcs_magic.dockerfile.sha256"] == hashlib.sha256(rendered).hexdigest()
    assert results["build"] == {"image_id": built.id, "tags": [image],
                                "dockerfile_sha256": hashlib.sha256(rendered).hexdigest()}
    assert (nb_dir / "dcs-build" / "quickstart" / "init" / "quickstart-init.sh").is_file()

    # Check and push: ok, and the digest is the registry's own.
    assert results["check"] == {"ok": True, "failed": []}
    digest = registry.manifest_digest(REPO, TAG)
    pinned = docker_cleanup.add(f"{registry.host}/{REPO}@{digest}")
    assert results["push"] == {"reference": image, "digest": digest, "pinned": pinned}

    # Launch: RUNNING, with the pushed image pinned by digest, both init scripts run.
    launched = result_of(tagged(saved, "launch"))
    assert launched["state"] == "RUNNING" and "RUNNING" in launched["state_html"]
    assert launched["image"] == pinned
    assert launched["basic_auth"] == {"username": "dcs-ci"}  # the password is never echoed
    # The spec's own script first, then the %%init_script selected in the form; run in that order.
    assert launched["init_scripts"] == [
        {"file": {"destination": "file:/databricks/scripts/quickstart-init.sh"}},
        {"workspace": {"destination": "/Workspace/Shared/dcs-quickstart/workspace-init.sh"}}]
    assert "error" not in seen, seen
    assert seen["labels"]["dcs_magic.image"] == pinned
    baked, uploaded = seen["init_log"].splitlines()
    assert f"cluster {launched['cluster_id']} is starting" in baked
    assert "workspace init script ran" in uploaded
    assert seen["helper"][0] == 0 and "dcs quickstart: Python 3" in seen["helper"][1]
    assert not any(secret in entry for entry in seen["driver_env"])

    # Terminated by the notebook: nothing left running.
    assert result_of(tagged(saved, "terminate")) == {"state": "TERMINATED", "termination_code": "USER_REQUEST"}
    assert leftover_drivers(docker_client, registry.host) == []

    # The saved notebook keeps the widgets' state (progress widgets finished) ...
    states = widget_states(saved)
    progress = {s.get("kind"): s for s in states if s.get("_model_name") == "AnyModel" and "kind" in s}
    assert progress.get("build", {}).get("status") == "done", progress.keys()
    assert progress["build"]["image_id"] == built.id
    assert progress.get("push", {}).get("status") == "done"
    assert progress["push"]["pinned"] == pinned
    assert any(s.get("value") == PASSWORD_VAR for s in states)  # the form kept the NAME ...
    # ... and no secret: not the registry password, not the local workspace's token.
    token = token_file.read_text()
    assert len(token) >= 32
    text = path.read_text()
    assert '"password": "****"' in decoded_data_uris(text)  # the form's download link, masked
    for value in (secret, token):
        assert value not in text
        assert value not in decoded_data_uris(text)
    print(f"quickstart notebook: {len(code_cells)} code cells in {duration:.0f} s")
