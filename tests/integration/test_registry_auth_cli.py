"""`dcs launch --print` and `dcs export` with `--registry-auth KIND` (issue 26, item 4): the body
printed, the warnings on stderr, the exit status. One case runs `python -m dcs_magic.cli` as a
subprocess; the others call the same `main(argv)` in this process (a CLI start costs seconds on a
busy machine). Engine-free: `--print` and `export` send nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dcs_magic.cli.commands import main

CLI = [sys.executable, "-m", "dcs_magic.cli"]
GAR = "europe-west1-docker.pkg.dev/project/repo/app@sha256:" + "b" * 64
ECR = "123456789012.dkr.ecr.us-west-2.amazonaws.com/team/app@sha256:" + "c" * 64
ARTIFACT = "1234567890123456.containers.us-west-2.cloud.databricks.com/main.default.app@sha256:" + "e" * 64
REF = "{{secrets/ci/registry}}"
PASSWORD = "Pw-registry-cli-4711-kR2"  # made up; must not be printed


def dcs(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("DCS_VAR_", "DATABRICKS_"))}
    environ.update(env or {})
    return subprocess.run([*CLI, *args], cwd=cwd, env=environ, capture_output=True, text=True, timeout=120,
                          check=False)


class Ran:
    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch):
    """`dcs ARGS` in this process: (exit status, stdout, stderr)."""
    for name in [n for n in os.environ if n.startswith(("DCS_VAR_", "DATABRICKS_"))]:
        monkeypatch.delenv(name)

    def call(*args: str, cwd: Path, env: dict[str, str] | None = None) -> Ran:
        monkeypatch.chdir(cwd)
        for name, value in (env or {}).items():
            monkeypatch.setenv(name, value)
        capsys.readouterr()
        try:
            status = main(list(args))
        except SystemExit as exc:  # argparse's usage errors
            status = int(exc.code or 0)
        out, err = capsys.readouterr()
        return Ran(status, out, err)

    return call


def spec_file(tmp_path: Path, docker_image: dict, **fields: object) -> Path:
    path = tmp_path / "cluster.json"
    path.write_text(json.dumps({"cluster_name": "c", "spark_version": "15.4.x-scala2.12", "num_workers": 0,
                                "node_type_id": "i3.xlarge", "data_security_mode": "SINGLE_USER",
                                "docker_image": docker_image, **fields}))
    return path


def test_gar_fills_in_json_key(tmp_path: Path, run) -> None:
    spec = spec_file(tmp_path, {"url": GAR, "basic_auth": {"password": REF}})
    proc = dcs("launch", "--spec", str(spec), "--print", "--registry-auth", "gar", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["docker_image"] == {"url": GAR, "basic_auth": {"username": "_json_key",
                                                                                   "password": REF}}
    # Without the kind, the spec's missing username is the spec's problem, as before.
    proc = run("launch", "--spec", str(spec), "--print", cwd=tmp_path)
    assert proc.returncode == 1 and "username" in proc.stderr


def test_gar_with_password_env_needs_no_username(tmp_path: Path, run) -> None:
    spec = spec_file(tmp_path, {"url": GAR})
    proc = run("launch", "--spec", str(spec), "--print", "--registry-auth", "gar", "--password-env", "GAR_KEY",
               "--allow-literal-password", cwd=tmp_path, env={"GAR_KEY": PASSWORD})
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["docker_image"]["basic_auth"] == {"username": "_json_key", "password": PASSWORD}
    assert PASSWORD not in proc.stderr


def test_none_leaves_basic_auth_out(tmp_path: Path, run) -> None:
    spec = spec_file(tmp_path, {"url": ECR, "basic_auth": {"username": "AWS", "password": REF}},
                     aws_attributes={"instance_profile_arn": "arn:aws:iam::123456789012:instance-profile/ecr"})
    proc = run("launch", "--spec", str(spec), "--print", "--registry-auth", "none", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["docker_image"] == {"url": ECR}
    assert "Warning" not in proc.stderr
    proc = run("export", "bundle", "--spec", str(spec), "--registry-auth", "none", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "basic_auth" not in proc.stdout and ECR in proc.stdout
    proc = run("launch", "--spec", str(spec), "--print", "--registry-auth", "none", "--username", "AWS",
               cwd=tmp_path)
    assert proc.returncode == 2 and "--registry-auth none sends no basic_auth" in proc.stderr


def test_ecr_with_basic_auth_warns_about_12_hours(tmp_path: Path, run) -> None:
    spec = spec_file(tmp_path, {"url": ECR, "basic_auth": {"username": "AWS", "password": REF}})
    for kind in ((), ("--registry-auth", "ecr")):  # the host says ECR without the flag too
        proc = run("launch", "--spec", str(spec), "--print", *kind, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert "Warning: ECR with basic_auth" in proc.stderr and "12 hours" in proc.stderr
        assert "instance profile" in proc.stderr


def test_a_kind_that_does_not_fit_the_host_warns(tmp_path: Path, run) -> None:
    spec = spec_file(tmp_path, {"url": GAR, "basic_auth": {"username": "sp-app-id", "password": REF}})
    proc = run("launch", "--spec", str(spec), "--print", "--registry-auth", "acr", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "is not <name>.azurecr.io" in proc.stderr and "looks like Google Artifact Registry" in proc.stderr


def test_an_artifact_registry_image_warns(tmp_path: Path, run) -> None:
    proc = run("launch", "--spec", str(spec_file(tmp_path, {"url": ARTIFACT})), "--print", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Artifact Registry" in proc.stderr and "classic DCS clusters are not among them" in proc.stderr


def test_an_unknown_kind_is_bad_usage(tmp_path: Path, run) -> None:
    proc = run("launch", "--spec", str(spec_file(tmp_path, {"url": GAR})), "--print", "--registry-auth", "quay",
               cwd=tmp_path)
    assert proc.returncode == 2 and "invalid choice: 'quay'" in proc.stderr
