"""Job runs, exports and `dcs doctor` against real HTTP: the local Clusters/Jobs API server
(tests/support/clusters_api.py) and a real `docker-registry` with htpasswd for the registry check.

No Docker engine is used here: the run's outcome is the server's (scripted) answer; running a
file inside the image is the local preflight workspace's job (tested with it).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from databricks.sdk.service import compute, jobs
from support.clock import FakeTime
from support.clusters_api import ClustersApi, jobs_state

from dcs_magic import ClusterSpec, SpecError, Workspace
from dcs_magic.cli.commands import main
from dcs_magic.model.jobs import RunError, submit_body
from dcs_magic.ops.doctor import doctor
from dcs_magic.ops.lock import ImageLock, Lock, lock_path, write_lock
from dcs_magic.ops.runs import follow_run

PINNED = "registry.example.com/team/app@sha256:" + "b" * 64
SPEC = ClusterSpec(cluster_name="dcs-test-run", spark_version="15.4.x-scala2.12", node_type_id="i3.xlarge",
                   num_workers=0, autotermination_minutes=30, data_security_mode="SINGLE_USER",
                   single_user_name="test@example.com",
                   docker_image={"url": PINNED, "basic_auth": {"username": "svc", "password": "{{secrets/dcs/reg}}"}})


pytestmark = pytest.mark.usefixtures("no_databricks_config")


@pytest.fixture
def env(api: ClustersApi, monkeypatch: pytest.MonkeyPatch) -> ClustersApi:
    """DATABRICKS_HOST/TOKEN point at the server, for the `dcs` command."""
    monkeypatch.setenv("DATABRICKS_HOST", api.host)
    monkeypatch.setenv("DATABRICKS_TOKEN", api.token)
    return api


@pytest.fixture
def spec_file(tmp_path: Path) -> Path:
    path = tmp_path / "cluster.json"
    path.write_text(json.dumps(SPEC.to_dict()))
    return path


# -- runs -----------------------------------------------------------------------------------------


def test_submit_sends_the_validated_body_and_follows_the_run(ws, api):
    api.files["/Workspace/Shared/etl.py"] = b"print('hi')\n"
    jobs_state(api).script_run({"life_cycle_state": "PENDING"}, {"life_cycle_state": "RUNNING"},
                               {"life_cycle_state": "TERMINATED", "result_state": "SUCCESS"},
                               output={"logs": "hi\n"})
    run_id = ws.submit_run(SPEC, python_file="/Workspace/Shared/etl.py", parameters=["--day", "1"])
    [submit] = api.requests_to("/api/2.2/jobs/runs/submit")
    sent = dict(submit.json)
    assert sent.pop("idempotency_token")
    assert sent == submit_body(SPEC, python_file="/Workspace/Shared/etl.py", parameters=["--day", "1"])
    assert jobs_state(api).submit_rejections == []  # the SDK's SubmitTask/ClusterSpec read it unchanged
    seen: list[str] = []
    fake = FakeTime()
    run = ws.wait_for_run(run_id, on_state=lambda r: seen.append(r["state"]["life_cycle_state"]),
                          sleep=fake.sleep, clock=fake.clock)
    assert seen == ["PENDING", "RUNNING", "TERMINATED"]
    assert fake.sleeps == [1.0, 1.0]  # each poll saw a new state: the pause started over
    assert jobs.Run.from_dict(run).state.life_cycle_state == jobs.RunLifeCycleState.TERMINATED
    result = follow_run(ws, run_id, sleep=fake.sleep, clock=fake.clock)
    assert result.ok and result.output == "hi\n"
    assert api.requests_to("/api/2.2/jobs/runs/get-output")[-1].query["run_id"] == [str(result.task_run_id)]
    assert result.run_page_url.startswith(api.host)


def test_a_failing_script_reports_exit_code_and_last_lines(ws, api):
    api.files["/Workspace/Shared/fail.py"] = b"raise SystemExit(3)\n"
    logs = "".join(f"step {i}\n" for i in range(40)) + "ValueError: bad input\n"
    jobs_state(api).script_run({"life_cycle_state": "RUNNING"},
                               {"life_cycle_state": "TERMINATED", "result_state": "FAILED",
                                "state_message": "Workload failed, see run output for details"},
                               output={"error": "Python script exited with code 3", "logs": logs})
    run_id = ws.submit_run(SPEC, python_file="/Workspace/Shared/fail.py")
    fake = FakeTime()
    result = follow_run(ws, run_id, timeout_s=60, sleep=fake.sleep, clock=fake.clock)
    assert not result.ok
    with pytest.raises(RunError) as info:
        result.raise_for_state()
    assert info.value.exit_code == 3
    assert info.value.last_lines[-1] == "ValueError: bad input"
    assert "TERMINATED/FAILED" in str(info.value)


def test_a_file_that_does_not_exist_fails_the_run_with_a_clear_error(ws, api):
    fake = FakeTime()
    run_id = ws.submit_run(SPEC, python_file="/Workspace/Shared/missing.py")
    result = follow_run(ws, run_id, sleep=fake.sleep, clock=fake.clock)
    assert result.life_cycle_state == "INTERNAL_ERROR"
    error = result.to_error()
    assert "/Workspace/Shared/missing.py" in str(error) and "does not exist" in str(error)
    assert "upload it or fix the path" in error.hint
    # uploaded, the same run succeeds
    ws.upload("/Workspace/Shared/missing.py", "print(1)\n")
    again = ws.submit_run(SPEC, python_file="/Workspace/Shared/missing.py")
    assert follow_run(ws, again, sleep=fake.sleep, clock=fake.clock).ok


def test_an_invalid_job_cluster_fails_before_any_request(ws, api):
    before = len(api.requests)
    with pytest.raises(SpecError) as info:
        ws.submit_run(SPEC.replace(spark_version="15.4.x-cpu-ml-scala2.12"), python_file="/Workspace/a.py")
    assert info.value.field == "spark_version"
    assert len(api.requests) == before


def test_wait_for_run_times_out_with_the_last_state(ws, api):
    jobs_state(api).script_run({"life_cycle_state": "RUNNING"})
    run_id = ws.submit_run(SPEC, python_file="file:/databricks/app/main.py")
    fake = FakeTime()
    with pytest.raises(RunError) as info:
        ws.wait_for_run(run_id, timeout_s=5, sleep=fake.sleep, clock=fake.clock)
    assert info.value.life_cycle_state == "RUNNING"
    assert "cancel" in info.value.hint
    ws.cancel_run(run_id)
    assert ws.get_run(run_id)["state"]["result_state"] == "CANCELED"


# -- dcs run / dcs export ------------------------------------------------------------------------


def test_dcs_run_prints_url_state_and_output(env, spec_file, capsys):
    env.files["/Workspace/Shared/etl.py"] = b"print('done')\n"
    jobs_state(env).script_run({"life_cycle_state": "TERMINATED", "result_state": "SUCCESS"},
                               output={"logs": "done\n"})
    code = main(["run", "--spec", str(spec_file), "--python-file", "/Workspace/Shared/etl.py", "--wait",
                 "--parameters", "--day", "2026-01-01"])
    out = capsys.readouterr().out
    assert code == 0
    [submit] = env.requests_to("/api/2.2/jobs/runs/submit")
    assert submit.json["tasks"][0]["spark_python_task"]["parameters"] == ["--day", "2026-01-01"]
    assert f"{env.host}/?o=0#job/runs/" in out
    assert "State: TERMINATED/SUCCESS" in out
    assert out.rstrip().endswith("done")


def test_dcs_run_exits_1_on_failure_with_the_exit_code(env, spec_file, capsys):
    jobs_state(env).script_run({"life_cycle_state": "TERMINATED", "result_state": "FAILED"},
                               output={"error": "Python script exited with code 7", "logs": "oops\n"})
    other = "127.0.0.1:5000/team/app@sha256:" + "e" * 64
    code = main(["run", "--spec", str(spec_file), "--python-file", "file:/app/x.py", "--image", other, "--wait"])
    captured = capsys.readouterr()
    assert code == 1
    assert "State: TERMINATED/FAILED (exit code 7)" in captured.out
    assert "exit code 7" in captured.err and "oops" in captured.err
    [submit] = env.requests_to("/api/2.2/jobs/runs/submit")
    assert submit.json["tasks"][0]["new_cluster"]["docker_image"]["url"] == other


def test_dcs_export_writes_parsable_exports_and_refuses_literals(spec_file, tmp_path, capsys):
    assert main(["export", "bundle", "--spec", str(spec_file)]) == 0
    bundle = yaml.safe_load(capsys.readouterr().out)
    cluster = next(iter(bundle["resources"]["clusters"].values()))
    assert compute.ClusterSpec.from_dict(cluster).as_dict() == cluster == SPEC.to_dict()
    out = tmp_path / "policy.json"
    assert main(["export", "policy", "--spec", str(spec_file), "--out", str(out)]) == 0
    assert json.loads(out.read_text())["docker_image.url"]["value"] == PINNED
    literal = tmp_path / "literal.json"
    literal.write_text(json.dumps({**SPEC.to_dict(), "docker_image": {
        "url": PINNED, "basic_auth": {"username": "svc", "password": "s3cr3t-literal"}}}))
    capsys.readouterr()
    assert main(["export", "terraform", "--spec", str(literal)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "{{secrets/SCOPE/KEY}}" in captured.err and "s3cr3t-literal" not in captured.err


def test_dcs_export_from_a_lock_uses_the_pinned_image(tmp_path, capsys):
    notebook = tmp_path / "quickstart.ipynb"
    other = "127.0.0.1:5000/team/app@sha256:" + "c" * 64
    entry = ImageLock(dockerfile_sha256="d" * 64, push={"reference": "127.0.0.1:5000/team/app:1",
                                                        "digest": "sha256:" + "c" * 64, "pinned": other},
                      cluster=SPEC.masked()).seal()
    write_lock(lock_path(notebook), Lock(images={"default": entry}, notebook=notebook.name))
    # Nothing serves 127.0.0.1:5000: the registry check (tests/faults/test_lock_registry.py) is skipped.
    assert main(["export", "pool", "--lock", str(notebook), "--no-registry-check"]) == 0
    pool = json.loads(capsys.readouterr().out)
    assert pool["preloaded_docker_images"][0]["url"] == other
    assert main(["export", "pool"]) == 2  # bad usage
    assert "--spec FILE or --lock NOTEBOOK" in capsys.readouterr().err


# -- doctor -----------------------------------------------------------------------------------------


def registry_spec(registry, password: str | None = None) -> ClusterSpec:
    auth = {"username": registry.username, "password": password or "{{secrets/dcs/registry}}"}
    return SPEC.replace(docker_image={"url": f"{registry.host}/team/app@sha256:" + "a" * 64, "basic_auth": auth})


def test_doctor_all_checks_hold(ws, api, auth_registry, monkeypatch):
    monkeypatch.setenv("DCS_SECRET_DCS_REGISTRY", auth_registry.password)
    report = doctor(ws, registry_spec(auth_registry))
    assert [c.name for c in report.checks] == ["workspace", "credentials", "container services", "runtime",
                                               "node types", "registry"]
    assert report.ok, report
    assert all(c.ok for c in report.checks), report
    assert "test@example.com" in report["credentials"].detail
    assert f"as {auth_registry.username}" in report["registry"].detail
    assert api.requests_to("/api/2.0/workspace-conf")[0].query == {"keys": ["enableDcs"]}


def test_doctor_without_container_services_says_how_to_enable_it(ws, api, env, spec_file, capsys):
    jobs_state(api).conf["enableDcs"] = "false"
    item = doctor(ws, None)["container services"]
    assert not item.ok
    assert "enableDcs = false" in item.detail
    assert "Compute > Container Services" in item.fix and '{"enableDcs": "true"}' in item.fix
    assert main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert "[FAIL] container services" in out and "PATCH /api/2.0/workspace-conf" in out


def test_doctor_rejected_registry_credentials(ws, auth_registry):
    report = doctor(ws, registry_spec(auth_registry, password="wrong-password"))
    assert not report["registry"].ok
    assert "refused the credentials" in report["registry"].detail
    assert "wrong-password" not in repr(report)


def test_doctor_secret_reference_not_resolvable_here_is_a_warning(ws, auth_registry):
    report = doctor(ws, registry_spec(auth_registry))
    item = report["registry"]
    assert not item.ok and item.severity == "warning"
    assert "DCS_SECRET_DCS_REGISTRY" in item.detail
    assert report.ok  # the other checks hold; an unverifiable reference does not fail the doctor


def test_doctor_runtime_and_node_types_not_offered(ws, auth_registry, monkeypatch):
    monkeypatch.setenv("DCS_SECRET_DCS_REGISTRY", auth_registry.password)
    spec = registry_spec(auth_registry).replace(spark_version="14.3.x-scala2.12", node_type_id="Standard_DS3_v2")
    report = doctor(ws, spec)
    assert not report.ok
    assert "14.3.x-scala2.12 is not offered" in report["runtime"].detail
    assert "15.4.x-scala2.12" in report["runtime"].fix
    assert "Node type Standard_DS3_v2 is not supported" in report["node types"].detail


def test_doctor_bad_token_and_unreachable_workspace(api):
    with Workspace(host=api.host, token="dapi-wrong", retries=0) as bad, \
            Workspace(host=api.host, token=api.token, retries=0, timeout=2) as gone:
        report = doctor(bad, None)
        assert [(c.name, c.ok) for c in report.checks[:2]] == [("workspace", True), ("credentials", False)]
        assert "dapi-wrong" not in repr(report)
        api.stop()  # the workspace goes away
        report = doctor(gone, None)
    assert not report["workspace"].ok and "does not answer" in report["workspace"].detail


def test_dcs_doctor_exit_0_when_all_hold(env, capsys):
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "[ok] credentials: they work: test@example.com" in out
    assert "[WARN] registry" in out  # no spec: the registry could not be asked


# -- %dcs_run ---------------------------------------------------------------------------------------


def test_dcs_run_magic_returns_the_result_and_raises_on_failure(shell, dcs_magics, env, spec_file, capsys):
    env.files["/Workspace/Shared/etl.py"] = b"print('ok')\n"
    jobs_state(env).script_run({"life_cycle_state": "TERMINATED", "result_state": "SUCCESS"},
                               output={"logs": "ok from the job\n"})
    result = shell.run_line_magic("dcs_run", f"--spec {spec_file} --python-file /Workspace/Shared/etl.py")
    assert result.ok and dcs_magics.last_run is result
    assert "ok from the job" in capsys.readouterr().out
    [submit] = env.requests_to("/api/2.2/jobs/runs/submit")
    assert submit.json["tasks"][0]["new_cluster"]["docker_image"]["url"] == PINNED
    jobs_state(env).script_run({"life_cycle_state": "TERMINATED", "result_state": "FAILED"},
                               output={"error": "Python script exited with code 2", "logs": "Traceback\nKeyError: x\n"})
    with pytest.raises(RunError) as info:
        shell.run_line_magic("dcs_run", f"--spec {spec_file} --python-file /Workspace/Shared/etl.py")
    assert info.value.exit_code == 2 and info.value.last_lines[-1] == "KeyError: x"


def test_doctor_when_the_setting_cannot_be_read_is_a_warning(ws, api):
    api.fail("/api/2.0/workspace-conf", 403, {"error_code": "PERMISSION_DENIED", "message": "Only admins"})
    item = doctor(ws, None)["container services"]
    assert not item.ok and item.severity == "warning"
    assert "Only admins" in item.detail and "Compute > Container Services" in item.fix
