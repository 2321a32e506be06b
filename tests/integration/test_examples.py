"""Every notebook in examples/, executed top to bottom in a real Jupyter kernel (nbclient).

The notebooks run as shipped, as "Run All" runs them: in an ipykernel started from the
`python3` kernelspec, widget state saved into the notebook (nbclient's default), with only
the environment a user of `scripts/demo.sh` has: `DCS_EXAMPLE_*` pointing at the realistic
local base (`dcs_base_image`) and the htpasswd registry (`auth_registry`); no
`DCS_SECRET_*` variable, so each launch resolves the secret the notebook stored itself (its
push's `--store-secret --local`, or `dcs secrets put --local`). Nothing in the notebooks is rewritten. One cell is appended, where
a user would look at the results: it writes the local preflight workspace's token to a file
(never to an output) and prints the magics' last results as JSON.

Then, per notebook: no cell has an error output; every launch reached RUNNING with the
pushed image pinned by digest, and was terminated; each pushed digest is the registry's own
(its HTTP API); each build carries the sha256 of the Dockerfile the notebook rendered; the
saved .ipynb holds the progress widgets' state but neither the registry password nor the
local workspace token. The images the notebooks built and pushed are removed afterwards.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell
from support.cleanup import DockerCleanup
from support.examples import (
    EXAMPLE_LIST,
    EXAMPLES,
    LAUNCH_LINE,
    OS_BASE,
    Example,
    copy_examples,
    example_environment,
    secrets_found,
)
from support.registry import Registry

pytestmark = [pytest.mark.docker, pytest.mark.slow,
              # the base image is cached; from_scratch's apt step takes a minute or two
              pytest.mark.timeout(1200)]

CELL_TIMEOUT_S = 600
RESULT_PREFIX = "DCS-TEST-RESULT "

RESULTS_CELL = """\
import json as _json
from pathlib import Path as _Path
from dcs_magic.preflight import ensure_server as _ensure_server

_Path({token_file!r}).write_text(_ensure_server()[1])
_magics = get_ipython().find_magic("dcs_build").__self__
_build, _push = _magics.last_build, _magics.last_push
print({prefix!r} + _json.dumps({{
    "build": _build and {{"image_id": _build.image_id, "tags": _build.tags,
                         "dockerfile_sha256": _build.dockerfile_sha256}},
    "push": _push and {{"reference": _push.reference, "digest": _push.digest, "pinned": _push.pinned}},
}}))
"""


def test_every_example_is_tested() -> None:
    assert sorted(p.stem for p in EXAMPLES.glob("*.ipynb")) == sorted(e.name for e in EXAMPLE_LIST)


def test_examples_open_without_a_kernel_prompt() -> None:
    """Saved with kernelspec metadata (JupyterLab opens no "Select Kernel" dialog), no
    outputs, and an introduction first."""
    for example in EXAMPLE_LIST:
        nb = nbformat.read(EXAMPLES / example.file, as_version=4)
        nbformat.validate(nb)
        assert nb.metadata["kernelspec"]["name"] == "python3", example.name
        assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# "), example.name
        assert all(not c.get("outputs") and not c.get("execution_count")
                   for c in nb.cells if c.cell_type == "code"), example.name
        settings = next(c.source for c in nb.cells if "DCS_EXAMPLE_REGISTRY" in c.source and c.cell_type == "code")
        # The password is only ever named, never read, by the notebook itself.
        assert 'os.environ.get("DCS_EXAMPLE_REGISTRY_PASSWORD"' not in settings
        assert all("os.environ[\"DCS_EXAMPLE_REGISTRY_PASSWORD\"]" not in c.source for c in nb.cells)


def result_of(nb: Any) -> dict[str, Any]:
    """The JSON the appended cell printed."""
    for output in nb.cells[-1].outputs:
        if output.output_type == "stream" and output.name == "stdout":
            for line in output.text.splitlines():
                if line.startswith(RESULT_PREFIX):
                    return json.loads(line[len(RESULT_PREFIX):])
    raise AssertionError(f"no result line in the appended cell: {nb.cells[-1].outputs}")


def stdout_of(nb: Any) -> str:
    return "".join(o.text for c in nb.cells if c.cell_type == "code" for o in c.outputs
                   if o.output_type == "stream" and o.name == "stdout")


def leftover_drivers(client: Any, registry_host: str) -> list[str]:
    """Local-workspace driver containers of images from this registry (any state)."""
    from dcs_magic.preflight import LABEL

    return [c["Id"] for c in client.api.containers(all=True, filters={"label": LABEL})
            if (c.get("Labels") or {}).get("dcs_magic.image", "").startswith(registry_host + "/")]


@pytest.mark.parametrize("example", EXAMPLE_LIST, ids=lambda e: e.name)
def test_example_runs_top_to_bottom(
        example: Example, tmp_path: Path, auth_registry: Registry, dcs_base_image: str,
        docker_client: Any, docker_cleanup: DockerCleanup, _protected_images: set[str]) -> None:
    _protected_images.add(OS_BASE)  # from_scratch's stand-in for debian:bookworm-slim
    docker_client.images.get(OS_BASE)  # made by scripts/make-base-image.sh with the base
    for repo, tag in example.pushes:
        docker_cleanup.add(f"{auth_registry.host}/{repo}:{tag}")
    nb_dir = copy_examples(tmp_path / "examples")
    path = nb_dir / example.file
    token_file = tmp_path / "local-workspace-token"
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(new_code_cell(RESULTS_CELL.format(token_file=str(token_file), prefix=RESULT_PREFIX),
                                  metadata={"tags": ["dcs-test"]}))
    env = {**os.environ, **example_environment(auth_registry, dcs_base_image)}
    client = NotebookClient(nb, kernel_name="python3", timeout=CELL_TIMEOUT_S, startup_timeout=120,
                            resources={"metadata": {"path": str(nb_dir)}})
    try:
        client.execute(env=env)
    finally:
        nbformat.write(nb, path)  # the executed notebook, as Jupyter would save it
        for container in leftover_drivers(docker_client, auth_registry.host):
            docker_cleanup.add(container)  # only when the notebook failed before terminating
    saved = nbformat.read(path, as_version=4)

    # Every cell ran, none failed (nbclient raises on an error output; make sure anyway).
    code_cells = [c for c in saved.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code_cells)
    assert [o for c in code_cells for o in c.outputs if o.output_type == "error"] == []

    # Each pushed digest is the registry's own; the launch used the first one, pinned.
    out = stdout_of(saved)
    pinned = {}
    for repo, tag in example.pushes:
        digest = auth_registry.manifest_digest(repo, tag)
        pinned[repo] = docker_cleanup.add(f"{auth_registry.host}/{repo}@{digest}")
    launches = LAUNCH_LINE.findall(out)
    if example.pushes:
        assert [image for _, image in launches] == [pinned[example.pushes[0][0]]]
        assert "terminated: TERMINATED" in out
    else:  # gpu: this engine has no NVIDIA runtime, and the notebook says what it skipped
        assert "nvidia" not in docker_client.info().get("Runtimes", {})
        assert launches == [] and "Skipped: no GPU engine here" in out
        assert (nb_dir / "dcs-build" / "gpu" / "Dockerfile").read_text().startswith(
            "FROM databricksruntime/gpu-pytorch:cuda11.8\n")
    assert leftover_drivers(docker_client, auth_registry.host) == []

    # The magics' results: the build carries the sha256 of what the notebook rendered, and
    # %dcs_push returned the registry's digest.
    results = result_of(saved)
    if results["build"] is not None:
        (tag,) = results["build"]["tags"]
        built = docker_client.images.get(tag)
        assert built.id == results["build"]["image_id"]
        assert built.labels["dcs_magic.dockerfile.sha256"] == results["build"]["dockerfile_sha256"]
        rendered = [p for p in (nb_dir / "dcs-build").glob("*/Dockerfile")
                    if hashlib.sha256(p.read_bytes()).hexdigest() == results["build"]["dockerfile_sha256"]]
        assert len(rendered) == 1
    if results["push"] is not None:
        repo, _, tag = results["push"]["reference"].removeprefix(auth_registry.host + "/").partition(":")
        assert results["push"]["digest"] == auth_registry.manifest_digest(repo, tag)
        assert results["push"]["pinned"] == pinned[repo]
        # The saved notebook keeps each finished progress widget's static record in its place
        # (issue 24.1): one per build and push, done, the push's pinned digest in it.
        records = [html for cell in saved.cells for out in cell.get("outputs", [])
                   if 'class="dcs-record"' in (html := str(out.get("data", {}).get("text/html", "")))]
        kinds = {kind: [r for r in records if f'data-kind="{kind}"' in r] for kind in ("build", "push")}
        assert kinds["build"] and kinds["push"], records
        assert all('data-status="done"' in r for r in kinds["build"] + kinds["push"])
        assert any(pinned[repo].split("@")[1] in r for r in kinds["push"])
    if example.name == "parameters":  # built by `dcs build` with two --var values; lock written
        lock = (nb_dir / "parameters.dcs.lock.json").read_text()
        assert pinned["dcs-params-etl"] in lock and auth_registry.password not in lock

    # No secret anywhere in the saved notebook: not the registry password, not the token.
    token = token_file.read_text()
    assert len(token) >= 32
    assert secrets_found(path.read_text(), {"registry password": auth_registry.password,
                                            "local workspace token": token}) == []
