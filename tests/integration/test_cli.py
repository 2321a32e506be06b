"""`dcs` run as a subprocess against the real engine, real registries and the local workspace."""

from __future__ import annotations

import inspect
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from dcs_magic.ops.lock import lock_path, read_lock

CLI = [sys.executable, "-m", "dcs_magic.cli"]
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
LOCAL_SPARK_VERSION = "15.4.x-scala2.12"


def dcs(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 600,
        stdin: str | None = None) -> subprocess.CompletedProcess:
    """Run `python -m dcs_magic.cli ARGS` with a clean DCS_VAR_* environment."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("DCS_VAR_", "DATABRICKS_"))}
    environ.update(env or {})
    return subprocess.run([*CLI, *args], cwd=cwd, env=environ, capture_output=True, text=True,
                          timeout=timeout, input=stdin, check=False)


def write_notebook(path: Path, *cells: Any) -> Path:
    nbformat.write(new_notebook(cells=list(cells)), path)
    return path


def params(source: str) -> Any:
    return new_code_cell(source, metadata={"tags": ["parameters"]})


def app_notebook(path: Path, base: str, greeting: str = "hello") -> Path:
    """A notebook whose image COPYs a %%dcs_file and RUNs a local command (no network)."""
    return write_notebook(
        path,
        new_markdown_cell("# An app image"),
        params(f"base_image = {base!r}\ngreeting = {greeting!r}\n"),
        new_code_cell("x = undefined_function()  # never executed by dcs"),
        new_code_cell("%%dockerfile app\nFROM {{ base_image }}\nCOPY greeting.txt /opt/app/greeting.txt\n"
                      "COPY run.sh /opt/app/run.sh\nRUN /opt/app/run.sh > /opt/app/out.txt\n"),
        new_code_cell("%%dcs_file app greeting.txt\n{{ greeting }}, world\n"),
        new_code_cell("%%dcs_file app run.sh\n#!/bin/sh\ncat /opt/app/greeting.txt\n"),
        new_code_cell("%%init_script setup\n#!/bin/bash\necho started\n"),
    )


def no_traceback(proc: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in proc.stderr, proc.stderr


# -- without the engine ------------------------------------------------------------------------


def test_help_for_every_subcommand(tmp_path: Path) -> None:
    out = dcs("--help", cwd=tmp_path)
    assert out.returncode == 0
    for command in ("render", "build", "check", "launch", "terminate"):
        assert command in out.stdout
        sub = dcs(command, "--help", cwd=tmp_path)
        assert sub.returncode == 0 and f"usage: dcs {command}" in sub.stdout
    console_script = Path(sys.executable).with_name("dcs")
    if console_script.exists():  # the installed entry point runs the same main()
        assert subprocess.run([str(console_script), "--help"], capture_output=True, text=True,
                              check=True).stdout == out.stdout


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    for args in ((), ("build", "nb.ipynb"), ("launch",), ("launch", "--spec", "x", "--local", "--profile", "p")):
        proc = dcs(*args, cwd=tmp_path)
        assert proc.returncode == 2, (args, proc.stderr)
        assert "usage:" in proc.stderr


def test_render_writes_contexts_with_variable_precedence(tmp_path: Path) -> None:
    nb = write_notebook(
        tmp_path / "nb.ipynb",
        params("base_image = 'from-param:1'\nwho = 'param'\nwhere = 'param'\n"),
        new_code_cell("%%dockerfile\nFROM {{ base_image }}\nLABEL who={{ who }} where={{ where }}\n"),
        new_code_cell("%%dockerfile other --context custom-ctx\nFROM {{ base_image }}\n"),
        new_code_cell("%%dcs_file default conf/app.txt\n{{ who }}\n"),
        new_code_cell("%%init_script setup --upload /Workspace/Shared/setup.sh\n#!/bin/bash\necho {{ raw }}\n"),
    )
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    proc = dcs("render", str(nb), "--var", "who=cli", cwd=elsewhere, env={"DCS_VAR_who": "env", "DCS_VAR_where": "env"})
    assert proc.returncode == 0, proc.stderr
    default, other = tmp_path / "dcs-build" / "default", tmp_path / "custom-ctx"
    script = tmp_path / "dcs-build" / "init-scripts" / "setup.sh"
    assert proc.stdout.splitlines() == [str(default), str(other), str(script)]
    assert (default / "Dockerfile").read_text() == "FROM from-param:1\nLABEL who=cli where=env\n"
    assert (default / "conf" / "app.txt").read_text() == "cli\n"
    assert (other / "Dockerfile").read_text() == "FROM from-param:1\n"
    assert script.read_text() == "#!/bin/bash\necho {{ raw }}\n"  # init scripts are kept verbatim
    assert not (elsewhere / "dcs-build").exists()

    proc = dcs("render", str(nb), "--name", "other", "--out", "out", cwd=elsewhere)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == str(elsewhere / "out" / "other")
    assert (elsewhere / "out" / "other" / "Dockerfile").is_file()
    assert not (elsewhere / "out" / "default").exists()


def test_render_is_deterministic(tmp_path: Path) -> None:
    nb = app_notebook(tmp_path / "nb.ipynb", "base:1")
    assert dcs("render", str(nb), cwd=tmp_path).returncode == 0
    ctx = tmp_path / "dcs-build" / "app"
    first = {p.name: (p.read_bytes(), p.stat().st_mode) for p in ctx.iterdir()}
    assert dcs("render", str(nb), cwd=tmp_path).returncode == 0
    assert {p.name: (p.read_bytes(), p.stat().st_mode) for p in ctx.iterdir()} == first
    assert first["run.sh"][1] & 0o777 == 0o755 and first["greeting.txt"][1] & 0o777 == 0o644


def _bad_notebooks(tmp_path: Path) -> dict[str, tuple[Path, list[str], str]]:
    not_json = tmp_path / "text.ipynb"
    not_json.write_text("print('hello')\n")
    dockerfile = new_code_cell("%%dockerfile\nFROM {{ base_image }}\n")
    return {
        "missing": (tmp_path / "nope.ipynb", [], r"notebook .*nope\.ipynb does not exist"),
        "not a notebook": (not_json, [], r"text\.ipynb is not a Jupyter notebook"),
        "no dockerfile": (write_notebook(tmp_path / "empty.ipynb", new_code_cell("%%dcs_file default a\nx\n")),
                          [], r"has no %%dockerfile cell"),
        "duplicate": (write_notebook(tmp_path / "dup.ipynb", new_code_cell("%%dockerfile app\nFROM a\n"),
                                     new_markdown_cell("m"), new_code_cell("%%dockerfile app\nFROM b\n")),
                      [], r"two %%dockerfile cells are named 'app': cell 1 and cell 3"),
        "missing variable": (write_notebook(tmp_path / "var.ipynb", dockerfile), [],
                             r"var\.ipynb, %%dockerfile cell 1: undefined variable 'base_image'"),
        "code in parameters": (write_notebook(tmp_path / "code.ipynb", params("base_image = get_base()"), dockerfile),
                               [], r"parameters cell 1, line 1: `base_image = get_base\(\)`"),
        "bad --var": (write_notebook(tmp_path / "ok.ipynb", dockerfile), ["--var", "novalue"],
                      r"--var 'novalue' is not NAME=VALUE"),
        "unknown name": (tmp_path / "ok.ipynb", ["--name", "zzz", "--var", "base_image=x"],
                         r"no %%dockerfile cell named 'zzz'"),
    }


@pytest.mark.parametrize("case", ["missing", "not a notebook", "no dockerfile", "duplicate", "missing variable",
                                  "code in parameters", "bad --var", "unknown name"])
def test_bad_notebooks_fail_with_a_clear_message(tmp_path: Path, case: str) -> None:
    path, extra, message = _bad_notebooks(tmp_path)[case]
    for command in (["render"], ["build", "-t", "dcs-test-never:1"]):
        proc = dcs(*command, str(path), *extra, cwd=tmp_path)
        assert proc.returncode == (2 if case == "bad --var" else 1), proc.stderr  # a bad --var is usage
        assert re.search(message, proc.stderr), proc.stderr
        assert proc.stdout == ""
        no_traceback(proc)


def test_missing_variable_hint_names_all_sources(tmp_path: Path) -> None:
    nb = write_notebook(tmp_path / "nb.ipynb", new_code_cell("%%dockerfile\nFROM x\nENV A={{ registry }}\n"))
    proc = dcs("render", str(nb), cwd=tmp_path)
    assert proc.returncode == 1
    assert "line 2" in proc.stderr and "--var registry=VALUE" in proc.stderr and "DCS_VAR_registry" in proc.stderr
    assert dcs("--debug", "render", str(nb), cwd=tmp_path).stderr.count("Traceback") >= 1


def test_launch_print_is_a_create_body(tmp_path: Path) -> None:
    from databricks.sdk.service import compute

    body = {"cluster_name": "dcs", "spark_version": "15.4.x-scala2.12", "node_type_id": "i3.xlarge",
            "num_workers": 1, "data_security_mode": "SINGLE_USER", "single_user_name": "me@example.com",
            "docker_image": {"url": "registry.example.com/team/app:1",
                             "basic_auth": {"username": "u", "password": "{{secrets/ci/registry}}"}},
            "init_scripts": [{"workspace": {"destination": "/Workspace/Shared/setup.sh"}}],
            "spark_env_vars": {"A": "1"}, "custom_tags": {"team": "x"}, "autotermination_minutes": 30}
    spec = tmp_path / "cluster.json"
    spec.write_text(json.dumps(body))
    pinned = "registry.example.com/team/app@sha256:" + "a" * 64
    proc = dcs("launch", "--spec", str(spec), "--image", pinned, "--print", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    printed = json.loads(proc.stdout)
    assert printed == {**body, "docker_image": {**body["docker_image"], "url": pinned}}
    # What the Databricks SDK (and so `databricks clusters create --json`) reads, field for field.
    assert compute.ClusterSpec.from_dict(printed).as_dict() == printed
    assert set(printed) <= set(inspect.signature(compute.ClustersAPI.create).parameters)
    assert proc.stderr == ""  # pinned: no warning

    proc = dcs("launch", "--spec", str(spec), "--print", cwd=tmp_path)
    assert proc.returncode == 0 and "is a tag, which can move" in proc.stderr


def test_launch_print_refuses_literal_passwords_and_invalid_specs(tmp_path: Path) -> None:
    spec = tmp_path / "cluster.json"
    spec.write_text(json.dumps({"spark_version": "15.4.x-scala2.12", "num_workers": 0, "docker_image": {
        "url": "r.example.com/a@sha256:" + "b" * 64, "basic_auth": {"username": "u", "password": "hunter2"}}}))
    proc = dcs("launch", "--spec", str(spec), "--print", cwd=tmp_path)
    assert proc.returncode == 1 and "literal password" in proc.stderr and "{{secrets/" in proc.stderr
    assert "hunter2" not in proc.stdout + proc.stderr
    proc = dcs("launch", "--spec", str(spec), "--print", "--allow-literal-password", cwd=tmp_path)
    assert proc.returncode == 0 and json.loads(proc.stdout)["docker_image"]["basic_auth"]["password"] == "hunter2"

    spec.write_text(json.dumps({"spark_version": "15.4.x-cpu-ml-scala2.12", "num_workers": 0}))
    proc = dcs("launch", "--spec", str(spec), "--print", cwd=tmp_path)
    assert proc.returncode == 1 and "SpecError" in proc.stderr
    no_traceback(proc)
    spec.write_text("{not json")
    proc = dcs("launch", "--spec", str(spec), "--print", cwd=tmp_path)
    assert proc.returncode == 1 and "not valid JSON" in proc.stderr
    proc = dcs("launch", "--spec", str(tmp_path / "none.json"), "--print", cwd=tmp_path)
    assert proc.returncode == 1 and "cannot read the cluster spec file" in proc.stderr
    spec.write_text(json.dumps({"spark_version": "15.4.x-scala2.12", "num_workers": 0}))
    proc = dcs("launch", "--spec", str(spec), "--lock", str(tmp_path / "nb.ipynb"), "--print", cwd=tmp_path)
    assert proc.returncode == 1 and "no lock file" in proc.stderr


def test_examples_render_and_print(tmp_path: Path) -> None:
    proc = dcs("render", str(EXAMPLES / "quickstart.ipynb"), "--out", "out", cwd=tmp_path)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr  # no lint warnings either
    context = tmp_path / "out" / "quickstart"
    assert (context / "Dockerfile").read_text().startswith("FROM databricksruntime/standard:15.4-LTS\n")
    assert {p.relative_to(context).as_posix() for p in context.rglob("*") if p.is_file()} == {
        "Dockerfile", "requirements.txt", "quickstart_helpers.py", "init/quickstart-init.sh"}
    assert (tmp_path / "out" / "init-scripts" / "quickstart-workspace.sh").is_file()

    proc = dcs("launch", "--spec", str(EXAMPLES / "cluster.json"), "--image",
               "registry.example.com/dcs-quickstart@sha256:" + "c" * 64, "--print", cwd=tmp_path)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    body = json.loads(proc.stdout)
    assert body["docker_image"]["basic_auth"]["password"].startswith("{{secrets/")
    assert body["init_scripts"] == [{"file": {"destination": "file:/databricks/scripts/quickstart-init.sh"}}]


# -- with the engine and registries -----------------------------------------------------------


def _steps_and_cache_hits(stderr: str) -> tuple[int, int]:
    steps = len(re.findall(r"^Step \d+/\d+ : ", stderr, re.MULTILINE))
    return steps, stderr.count(" ---> Using cache")


@pytest.mark.docker
def test_build_push_rebuild_and_locked(tmp_path: Path, busybox_image: str, registry: Any,
                                       docker_client: Any, docker_cleanup: Any) -> None:
    nb = app_notebook(tmp_path / "app.ipynb", busybox_image)
    repo = docker_cleanup.unique("cli")
    tag = docker_cleanup.add(f"{registry.host}/{repo}:1")

    first = dcs("build", str(nb), "-t", tag, "--push", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    digest = registry.manifest_digest(repo, "1")
    assert first.stdout == f"{registry.host}/{repo}@{digest}\n"  # stdout: only the result
    assert "Step 1/" in first.stderr and "Pushed" in first.stderr  # plain progress on stderr
    image = docker_client.images.get(tag)
    assert image.labels["dcs_magic.dockerfile.sha256"]

    lock = read_lock(lock_path(nb))
    entry = lock.images["app"]
    assert lock_path(nb) == tmp_path / "app.dcs.lock.json"
    assert entry.image_id == image.id and entry.tags == [tag]
    assert entry.push == {"reference": tag, "digest": digest, "pinned": f"{registry.host}/{repo}@{digest}"}
    assert entry.dockerfile == (tmp_path / "dcs-build" / "app" / "Dockerfile").read_text()
    assert set(entry.files) == {"greeting.txt", "run.sh"} and entry.base == busybox_image
    lock_text = lock_path(nb).read_text()

    # Unchanged notebook: every step after FROM comes from the cache, same image, same lock,
    # although the render rewrote the context files (new mtimes: the cache keys on content).
    copied = tmp_path / "dcs-build" / "app" / "greeting.txt"
    mtime = copied.stat().st_mtime_ns
    second = dcs("build", str(nb), "-t", tag, "--locked", "--progress", "plain", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert copied.stat().st_mtime_ns != mtime
    steps, hits = _steps_and_cache_hits(second.stderr)
    assert steps >= 4 and hits == steps - 1, second.stderr
    assert second.stdout.strip() == image.id
    assert lock_path(nb).read_text() == lock_text  # the push still describes the same image

    # A changed template: --locked fails before building and shows what changed.
    app_notebook(nb, busybox_image, greeting="bonjour")
    logs = set((tmp_path / "dcs-build" / "app" / ".dcs").iterdir())
    failed = dcs("build", str(nb), "-t", tag, "--locked", cwd=tmp_path)
    assert failed.returncode == 1 and failed.stdout == ""
    assert "--locked: the rendered build no longer matches" in failed.stderr
    assert re.search(r"file 'greeting.txt' of 'app' changed: sha256 [0-9a-f]{12} -> [0-9a-f]{12}", failed.stderr)
    assert "Step " not in failed.stderr and set((tmp_path / "dcs-build" / "app" / ".dcs").iterdir()) == logs
    assert docker_client.images.get(tag).id == image.id  # nothing was built
    no_traceback(failed)
    assert lock_path(nb).read_text() == lock_text

    # The same change made in the Dockerfile: the message carries a diff.
    nb_text = nb.read_text().replace("RUN /opt/app/run.sh", "RUN sh /opt/app/run.sh")
    nb.write_text(nb_text)
    failed = dcs("build", str(nb), "-t", tag, "--locked", "--var", "greeting=hello", cwd=tmp_path)
    assert failed.returncode == 1
    assert "Dockerfile for 'app' changed" in failed.stderr
    assert "-RUN /opt/app/run.sh > /opt/app/out.txt" in failed.stderr
    assert "+RUN sh /opt/app/run.sh > /opt/app/out.txt" in failed.stderr

    # Without --locked the change is built and recorded.
    third = dcs("build", str(nb), "-t", tag, cwd=tmp_path)
    assert third.returncode == 0, third.stderr
    new_entry = read_lock(lock_path(nb)).images["app"]
    assert new_entry.dockerfile_sha256 != entry.dockerfile_sha256 and new_entry.push is None
    assert dcs("build", str(nb), "-t", tag, "--locked", cwd=tmp_path).returncode == 0


def _push(client: Any, reference: str) -> None:
    repository, tag = reference.rsplit(":", 1)
    errors = [e for e in client.api.push(repository, tag=tag, stream=True, decode=True) if "error" in e]
    assert not errors, errors


@pytest.mark.docker
def test_base_digest_is_recorded_and_a_moved_base_tag_fails_locked(
        tmp_path: Path, busybox_image: str, registry: Any, docker_client: Any, docker_cleanup: Any) -> None:
    base_repo = docker_cleanup.unique("base")
    base = docker_cleanup.add(f"{registry.host}/{base_repo}:1")
    assert docker_client.images.get(busybox_image).tag(f"{registry.host}/{base_repo}", "1")
    _push(docker_client, base)
    digest = registry.manifest_digest(base_repo, "1")
    nb = write_notebook(tmp_path / "nb.ipynb", params(f"base_image = {base!r}"),
                        new_code_cell("%%dockerfile\nFROM {{ base_image }}\nRUN echo derived > /derived\n"))
    tag = docker_cleanup.add(f"{docker_cleanup.unique('derived')}:1")
    proc = dcs("build", str(nb), "-t", tag, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert docker_client.images.get(tag).labels["dcs_magic.base.digest"] == digest
    entry = read_lock(lock_path(nb)).images["default"]
    assert (entry.base, entry.base_digest) == (base, digest)

    # Someone pushes another image under the same base tag: the tag moved.
    moved = tmp_path / "moved"
    moved.mkdir()
    (moved / "Dockerfile").write_text(f"FROM {busybox_image}\nRUN echo moved > /moved\n")
    docker_client.images.build(path=str(moved), tag=base, rm=True)
    _push(docker_client, base)
    new_digest = registry.manifest_digest(base_repo, "1")
    assert new_digest != digest
    proc = dcs("build", str(nb), "-t", tag, "--locked", cwd=tmp_path)
    assert proc.returncode == 1
    assert f"base image {base} of 'default' now resolves to {new_digest} (lock: {digest})" in proc.stderr
    no_traceback(proc)


@pytest.mark.docker
def test_push_failures_exit_non_zero_with_the_reason(tmp_path: Path, busybox_image: str, auth_registry: Any,
                                                     docker_cleanup: Any) -> None:
    nb = app_notebook(tmp_path / "app.ipynb", busybox_image)
    unreachable = docker_cleanup.add(f"127.0.0.1:9/{docker_cleanup.unique('nowhere')}:1")
    proc = dcs("build", str(nb), "-t", unreachable, "--push", cwd=tmp_path)
    assert proc.returncode == 1 and proc.stdout == ""
    assert "Push of" in proc.stderr and "registry unreachable at 127.0.0.1:9" in proc.stderr
    no_traceback(proc)

    tag = docker_cleanup.add(f"{auth_registry.host}/{docker_cleanup.unique('auth')}:1")
    proc = dcs("build", str(nb), "-t", tag, "--push", cwd=tmp_path)
    assert proc.returncode == 1 and "did not accept the credentials" in proc.stderr

    env = {"DCS_TEST_REGISTRY_PASSWORD": auth_registry.password}
    proc = dcs("build", str(nb), "-t", tag, "--push", "--username", auth_registry.username,
               "--password-env", "DCS_TEST_REGISTRY_PASSWORD", cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"{tag.rsplit(':', 1)[0]}@sha256:")
    assert auth_registry.password not in proc.stdout + proc.stderr + lock_path(nb).read_text()

    proc = dcs("build", str(nb), "-t", tag, "--push", "--username", auth_registry.username,
               "--password-env", "DCS_TEST_UNSET_VARIABLE", cwd=tmp_path)
    assert proc.returncode == 2 and "DCS_TEST_UNSET_VARIABLE" in proc.stderr  # UsageError: usage
    proc = dcs("build", str(nb), "-t", tag, "--push", "--username", auth_registry.username, cwd=tmp_path)
    assert proc.returncode == 2 and "--password-env" in proc.stderr  # no terminal to prompt on


@pytest.mark.docker
def test_build_failure_names_the_step(tmp_path: Path, busybox_image: str, docker_cleanup: Any) -> None:
    nb = write_notebook(tmp_path / "nb.ipynb",
                        new_code_cell(f"%%dockerfile\nFROM {busybox_image}\nRUN echo about to fail && exit 3\n"))
    proc = dcs("build", str(nb), "-t", docker_cleanup.add(f"{docker_cleanup.unique('fail')}:1"), cwd=tmp_path)
    assert proc.returncode == 1 and proc.stdout == ""
    assert "BuildError: Step 2/" in proc.stderr and "about to fail" in proc.stderr
    assert not lock_path(nb).exists()
    no_traceback(proc)


@pytest.mark.docker
def test_build_with_buildkit_and_a_secret_records_the_builder(tmp_path: Path, busybox_image: str,
                                                              docker_cleanup: Any) -> None:
    value = "t0ken-" + "7" * 16
    nb = write_notebook(tmp_path / "nb.ipynb", new_code_cell(
        f"%%dockerfile\nFROM {busybox_image}\nRUN --mount=type=secret,id=pip test -s /run/secrets/pip\n"))
    tag = docker_cleanup.add(f"{docker_cleanup.unique('bkcli')}:1")
    proc = dcs("build", str(nb), "-t", tag, "--secret", "id=pip,env=DCS_TEST_PIP", "--progress", "plain",
               cwd=tmp_path, env={"DCS_TEST_PIP": value})
    if proc.returncode and "no docker CLI here can build with BuildKit" in proc.stderr:
        pytest.skip("no BuildKit-capable docker CLI")
    assert proc.returncode == 0, proc.stderr
    assert "[build default (BuildKit)]" in proc.stderr
    lock = lock_path(nb).read_text()
    assert json.loads(lock)["images"]["default"]["builder"] == "buildkit"
    assert value not in lock and value not in proc.stderr and value not in proc.stdout
    proc = dcs("build", str(nb), "-t", tag, "--builder", "classic", "--secret", "id=pip,env=DCS_TEST_PIP", cwd=tmp_path)
    assert proc.returncode != 0 and "--secret needs BuildKit" in proc.stderr
    no_traceback(proc)


@pytest.mark.docker
def test_check_exit_status(tmp_path: Path, busybox_image: str) -> None:
    proc = dcs("check", busybox_image, cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stdout.startswith(f"{busybox_image}: FAILED") and "[FAIL] java" in proc.stdout
    proc = dcs("check", "dcs-test-no-such-image:0", cwd=tmp_path)
    assert proc.returncode == 1 and proc.stderr.startswith("dcs: ")
    no_traceback(proc)


@pytest.mark.docker
@pytest.mark.slow
def test_quickstart_example_builds_pushes_and_launches_locally(
        tmp_path: Path, dcs_base_image: str, auth_registry: Any, docker_client: Any, docker_cleanup: Any) -> None:
    from dcs_magic.preflight import LABEL

    for name in ("quickstart.ipynb", "cluster.json"):
        shutil.copy(EXAMPLES / name, tmp_path / name)
    tag = docker_cleanup.add(f"{auth_registry.host}/{docker_cleanup.unique('quickstart')}:1")
    env = {"DCS_VAR_base_image": dcs_base_image, "DCS_TEST_REGISTRY_PASSWORD": auth_registry.password}
    credentials = ["--username", auth_registry.username, "--password-env", "DCS_TEST_REGISTRY_PASSWORD"]
    # As examples/ci/ does: render, then the notebook's pip packages as wheels on the host.
    assert dcs("render", "quickstart.ipynb", cwd=tmp_path, env=env).returncode == 0
    context = tmp_path / "dcs-build" / "quickstart"
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:",
                    "-r", str(context / "requirements.txt"), "-d", str(context / "wheels")], check=True)
    built = dcs("build", "quickstart.ipynb", "-t", tag, "--push", *credentials, cwd=tmp_path, env=env, timeout=900)
    assert built.returncode == 0, built.stderr
    pinned = built.stdout.strip()
    # The RUN step importing the helper module may come from the build cache; that the helper
    # works in the image is checked in the driver container below.
    # The user's 8 steps, counted as written (dcs-magic's LABEL step is neither counted nor shown).
    assert "Step 6/8 : RUN" in built.stderr and "/9 :" not in built.stderr and "LABEL" not in built.stderr
    assert dcs("check", tag, cwd=tmp_path).returncode == 0

    # The example's password is a {{secrets/...}} reference; the CI-style --password-env
    # replaces it here (the secret-variable path is tested in test_local_workspace.py).
    proc = dcs("launch", "--spec", "cluster.json", "--lock", "quickstart.ipynb", "--local", "--wait",
               *credentials, cwd=tmp_path, env=env, timeout=600)
    cluster_id = proc.stdout.strip()
    stopped = None
    try:
        assert proc.returncode == 0, proc.stderr
        assert re.fullmatch(r"[0-9]{4}-[0-9]{6}-[0-9a-f]{8}", cluster_id)
        assert "RUNNING" in proc.stderr and auth_registry.password not in proc.stderr
        # No URL of the local workspace, which ends with the command; how to follow the cluster
        # from later commands instead, and that advice holds.
        assert "/compute/clusters/" not in proc.stderr
        assert f"dcs why {cluster_id} --local" in proc.stderr and f"dcs terminate {cluster_id} --local" in proc.stderr
        later = dcs("why", cluster_id, "--local", cwd=tmp_path, timeout=120)
        assert later.returncode == 0 and f"cluster {cluster_id} is RUNNING" in later.stdout, later.stderr
        (container,) = docker_client.api.containers(filters={"label": f"{LABEL}={cluster_id}"})
        assert container["Labels"]["dcs_magic.image"] == pinned  # the lock's pinned digest was launched
        driver = docker_client.containers.get(container["Id"])
        assert f"cluster {cluster_id} is starting" in driver.exec_run(["cat", "/tmp/quickstart-init.log"]).output.decode()
        helper = driver.exec_run(["/databricks/python3/bin/python3", "-c", "import quickstart_helpers as q; print(q.describe())"])
        assert helper.exit_code == 0 and b"dcs quickstart" in helper.output
        cluster = read_lock(lock_path(tmp_path / "quickstart.ipynb")).images["quickstart"].cluster
        assert cluster["docker_image"]["url"] == pinned
        assert cluster["docker_image"]["basic_auth"] == {"username": auth_registry.username, "password": "****"}
        assert auth_registry.password not in lock_path(tmp_path / "quickstart.ipynb").read_text()
    finally:
        if cluster_id:  # a new process's server finds the cluster through its labels
            stopped = dcs("terminate", cluster_id, "--local", cwd=tmp_path, timeout=120)
    assert stopped is not None and stopped.returncode == 0, stopped and stopped.stderr
    assert docker_client.api.containers(all=True, filters={"label": f"{LABEL}={cluster_id}"}) == []

    # Without DCS_SECRET_DCS_QUICKSTART_REGISTRY_PASSWORD the secret reference cannot be resolved
    # locally: TERMINATED, exit 1,
    # with the termination code, the message and a hint on stderr.
    proc = dcs("launch", "--spec", "cluster.json", "--lock", "quickstart.ipynb", "--local", "--wait",
               cwd=tmp_path, timeout=600)
    assert proc.returncode == 1, proc.stderr
    assert "ClusterError" in proc.stderr and "TERMINATED (SECRET_RESOLUTION_ERROR)" in proc.stderr
    assert "Hint:" in proc.stderr and "/compute/clusters/" not in proc.stderr
    no_traceback(proc)
