"""The launch form without widgets (`ops/launch_form.py`, `model/form_values.py`): what it opens
with, its guards, the preview, Save JSON, exports, readiness and how an ended cluster is told.
No ipywidgets here (the view is tested in tests/magics/test_launch.py)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from support.registry import http_answer

from dcs_magic.errors import ClusterError, SpecError
from dcs_magic.model.form_values import FormValues, event_text, secret_references
from dcs_magic.model.results import CheckItem, CheckReport, PushResult
from dcs_magic.model.spec import BasicAuth, ClusterSpec, DockerImage, NamedInitScript, node_type_problem
from dcs_magic.ops.launch_form import (
    CREATE_REFUSED,
    START_FAILS,
    LaunchForm,
    Readiness,
    cluster_line,
    ended_error,
    image_notes,
    private_registries,
    slow_start_error,
    unexpected_error,
    workspace_lists,
)

PINNED = "registry.example.com/team/app@sha256:" + "d" * 64
LITERAL = "hunter2-Literal-Registry-Password"
# What `%dcs_push registry.example.com/team/app:1 --username robot ... --secret-ref ci/registry` leaves.
PUSHED = PushResult(reference="registry.example.com/team/app:1", digest="sha256:" + "d" * 64, pinned=PINNED,
                    username="robot", secret_ref="{{secrets/ci/registry}}")
OFFERED = [{"node_type_id": "i3.xlarge", "num_cores": 4.0, "memory_mb": 31232},
           {"node_type_id": "m5d.large", "num_cores": 2.0, "memory_mb": 8192},
           {"node_type_id": "m6gd.large", "num_cores": 2.0, "memory_mb": 8192, "is_graviton": True}]


def values(**changes: Any) -> FormValues:
    base = FormValues(spark_version="15.4.x-scala2.12", image=PINNED)
    for name, value in changes.items():
        setattr(base, name, value)
    return base


def test_the_model_imports_no_widget_or_ipython_code() -> None:
    code = ("import sys\nimport dcs_magic.ops.launch_form, dcs_magic.model.form_values, dcs_magic.adapters.follow\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('ipywidgets', 'anywidget', 'IPython')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "[]"


# -- what the form opens with ------------------------------------------------------------------------


def test_initial_values_preselect_uploaded_scripts_the_spec_does_not_list() -> None:
    scripts = {"setup": NamedInitScript("setup", "echo hi", destination="/Workspace/Shared/setup.sh"),
               "listed": NamedInitScript("listed", "echo", destination="/Workspace/Shared/listed.sh"),
               "local": NamedInitScript("local", "echo")}
    spec = ClusterSpec(spark_version="15.4.x-scala2.12", num_workers=0,
                       init_scripts=[{"workspace": {"destination": "/Workspace/Shared/listed.sh"}}])
    form = LaunchForm(spec, init_scripts=scripts)
    opened = form.initial_values(PINNED)
    assert opened.image == PINNED and opened.spark_version == "15.4.x-scala2.12"
    assert opened.init_script_names == ("setup",)
    assert form.script_choices() == [("setup (/Workspace/Shared/setup.sh)", "setup"),
                                     ("listed (/Workspace/Shared/listed.sh)", "listed")]
    assert form.unsent_scripts() == ["local"]


def test_initial_runtime_fits_the_checked_python_among_those_offered() -> None:
    form = LaunchForm(image_python="3.11.2")
    offered = ["16.4.x-scala2.12", "15.4.x-scala2.12", "13.3.x-scala2.12"]
    assert form.initial_values(PINNED, offered).spark_version == "15.4.x-scala2.12"
    assert LaunchForm().initial_values(PINNED, offered).spark_version == "16.4.x-scala2.12"


def test_without_a_workspace_the_lists_are_empty_and_say_why() -> None:
    assert workspace_lists(None, "no host configured") == (["Preview only: no host configured"], [], [], [])
    assert workspace_lists(None) == (["Preview only: no workspace given."], [], [], [])


# -- guards ------------------------------------------------------------------------------------------


def test_a_password_field_keeps_only_a_reference_or_a_set_variable_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DCS_TEST_SET", "x")
    monkeypatch.delenv("DCS_TEST_NOT_SET", raising=False)
    form = LaunchForm()
    assert form.guard("password_secret", LITERAL) == "" and "it was cleared" in form.guards["password_secret"]
    assert form.guard("password_secret", "") == "" and "password_secret" in form.guards  # its own clearing
    assert form.guard("password_secret", "{{secrets/ci/pw}}") == "{{secrets/ci/pw}}"
    assert "password_secret" not in form.guards
    assert form.guard("password_env", LITERAL) == "" and "was cleared" in form.guards["password_env"]
    assert form.guard("password_env", "DCS_TEST_NOT_SET") == ""  # a name, but not set: may be a password
    assert form.guard("password_env", "DCS_TEST_SET") == "DCS_TEST_SET" and "password_env" not in form.guards
    assert form.guard("cluster_name", LITERAL) == LITERAL  # not a guarded field


def test_a_literal_secret_in_a_key_value_box_is_taken_out_and_the_message_stays() -> None:
    literal = "ghp-" + "x1" * 18
    form = LaunchForm()
    kept = form.guard("spark_env_vars", f"GH_TOKEN={literal}\nPLAIN=1")
    assert literal not in kept and kept.splitlines()[0].startswith("# GH_TOKEN=") and "PLAIN=1" in kept
    assert "GH_TOKEN looks like a secret" in form.guards["spark_env_vars"]
    assert form.guard("spark_env_vars", kept) == kept  # the box now holds the rewrite: the message stays
    assert "spark_env_vars" in form.guards
    assert form.guard("spark_env_vars", "GH_TOKEN={{secrets/ci/gh}}") == "GH_TOKEN={{secrets/ci/gh}}"
    assert "spark_env_vars" not in form.guards
    assert form.guard("custom_tags", "oops") == "oops"  # unreadable: a problem, nothing to take out
    form.guard("custom_tags", "token_budget=42")
    assert "tags cannot hold secrets" in form.guards["custom_tags"]


# -- preview -----------------------------------------------------------------------------------------


def test_preview_is_masked_and_lists_guards_errors_and_notes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DCS_TEST_PW", LITERAL)
    form = LaunchForm(image_python="3.11.2")
    shown = form.preview(values(auth_mode="env", username="robot", password_env="DCS_TEST_PW"))
    assert shown.spec is not None and json.loads(shown.text)["docker_image"]["basic_auth"]["password"] == "****"
    assert LITERAL not in shown.text and shown.body is not None and LITERAL not in json.dumps(shown.body)
    assert shown.problems == []
    form.guard("password_secret", LITERAL)  # a guard message only shows while its field is in use
    assert form.preview(values(auth_mode="env", username="r", password_env="DCS_TEST_PW")).problems == []
    assert "was cleared" in form.preview(values(auth_mode="secret", username="r")).problems[0]
    tagged = form.preview(values(image="registry.example.com/team/app:latest", spark_version="16.4.x-scala2.12"))
    assert any("pin it by digest" in p for p in tagged.problems)
    assert any(p.startswith("Runtime does not fit the image") for p in tagged.problems)
    broken = form.preview(values(spark_conf="no equals sign"))
    assert broken.spec is None and broken.text == "" and "not key=value" in broken.problems[-1]


def test_preview_has_no_download_body_for_a_literal_secret() -> None:
    spec = ClusterSpec(spark_version="15.4.x-scala2.12", num_workers=0,
                       docker_image=DockerImage(PINNED, BasicAuth("robot", LITERAL)))
    form = LaunchForm(spec)
    shown = form.preview(form.initial_values())
    assert shown.spec is not None and shown.body is None and LITERAL not in shown.text


# -- what the form can see will fail (issue 20.4) -----------------------------------------------------


def test_the_push_pre_fills_registry_auth_for_the_image_it_pushed() -> None:
    form = LaunchForm(push=PUSHED)
    opened = form.initial_values(PINNED)
    assert (opened.auth_mode, opened.username, opened.password_secret) == ("secret", "robot", "{{secrets/ci/registry}}")
    assert form.preview(opened).problems == []
    other = form.initial_values("registry.example.com/team/other@sha256:" + "e" * 64)
    assert (other.auth_mode, other.username) == ("none", "")  # another image: nothing from the push
    own = ClusterSpec(spark_version="15.4.x-scala2.12", num_workers=0,
                      docker_image=DockerImage(PINNED, BasicAuth("svc", "{{secrets/a/b}}")))
    assert LaunchForm(own, push=PUSHED).initial_values().username == "svc"  # the spec's own auth wins
    plain = dataclasses.replace(PUSHED, username=None, secret_ref=None)  # Docker's own login
    assert LaunchForm(push=plain).initial_values(PINNED).auth_mode == "none"


def test_a_push_with_credentials_but_no_secret_ref_says_how_to_name_one() -> None:
    pushed = dataclasses.replace(PUSHED, secret_ref=None)
    form = LaunchForm(push=pushed)
    opened = form.initial_values(PINNED)
    assert (opened.auth_mode, opened.username, opened.password_secret) == ("secret", "robot", "")
    shown = form.preview(opened)
    assert "the push used --username robot, but no secret reference is set" in shown.problems[0]
    assert f"%dcs_push {pushed.reference} --username robot --password-env VAR --secret-ref SCOPE/KEY" \
        in shown.problems[0]
    assert any("needs a password" in p for p in shown.problems[1:])  # Create refuses it as it is
    opened.password_secret = "{{secrets/ci/registry}}"
    assert form.preview(opened).problems == []


def test_risks_say_what_ignoring_them_costs() -> None:
    form = LaunchForm(image_python="3.11.2", private={"registry.example.com": "the push used --username robot"},
                      node_types=OFFERED)
    shown = form.preview(values(spark_version="16.4.x-scala2.12", node_type_id="Standard_DS3_v2"))
    assert [r.cost for r in shown.risks] == [START_FAILS, START_FAILS, CREATE_REFUSED]
    runtime, auth, node = shown.risks
    assert "Python 3.11.2 does not fit 16.4 LTS" in runtime.message
    assert str(runtime).startswith("On Databricks this start would fail after ~5-10 minutes of billed cluster time: "
                                   "Runtime does not fit the image")
    assert "Registry auth is None, but the registry registry.example.com needs credentials (the push used " \
           "--username robot)" in auth.message
    # The one node-type rule's own words (create, doctor and the form never disagree).
    assert node.message == f"{node_type_problem('Standard_DS3_v2', OFFERED)}."
    assert "Standard_DS3_v2" in node.message
    assert str(node).startswith("Databricks would refuse this create request: ")
    assert [p for p in shown.problems if p in {r.message for r in shown.risks}] == [r.message for r in shown.risks]
    fixed = form.preview(values(node_type_id="i3.xlarge", auth_mode="secret", username="robot",
                                password_secret="{{secrets/ci/registry}}"))
    assert fixed.risks == [] and fixed.problems == []
    # A Graviton type the spec itself refuses is said once, as the error that stops Create.
    graviton = form.preview(values(node_type_id="m6gd.large", auth_mode="secret", username="robot",
                                   password_secret="{{secrets/ci/registry}}"))
    assert graviton.risks == [] and sum("Graviton" in p for p in graviton.problems) == 1
    # Without the workspace's list (preview only) there is nothing to judge a node type by.
    assert LaunchForm().preview(values(node_type_id="Standard_DS3_v2")).risks == []


def test_a_local_form_names_the_secret_variable_the_kernel_lacks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DCS_SECRET_CI_REGISTRY", raising=False)
    chosen = values(auth_mode="secret", username="robot", password_secret="{{secrets/ci/registry}}")
    [note] = LaunchForm(local=True).preview(chosen).problems
    assert "DCS_SECRET_CI_REGISTRY" in note and "SECRET_RESOLUTION_ERROR" in note
    assert LaunchForm().preview(chosen).problems == []  # a real workspace resolves it from its scope
    monkeypatch.setenv("DCS_SECRET_CI_REGISTRY", "set")
    assert LaunchForm(local=True).preview(chosen).problems == []


def test_private_registries_asks_a_cheap_registry_and_falls_back_on_the_push() -> None:
    with http_answer(401, b"{}", "application/json", {"WWW-Authenticate": 'Basic realm="r"'}) as host:
        assert private_registries(f"{host}/team/app:1") == {host: "it refuses an anonymous pull of the image (HTTP 401)"}
    with http_answer(200, b"{}", "application/json") as host:
        pushed = PushResult(reference=f"{host}/team/app:1", digest="sha256:" + "d" * 64,
                            pinned=f"{host}/team/app@sha256:{'d' * 64}", username="robot")
        assert private_registries(pushed.pinned, pushed) == {}  # it serves anyone: the answer wins
    silent = PushResult(reference="127.0.0.1:9/team/app:1", digest="sha256:" + "d" * 64,
                        pinned=f"127.0.0.1:9/team/app@sha256:{'d' * 64}", username="robot")
    assert private_registries(silent.pinned, silent) == {"127.0.0.1:9": "the push used --username robot"}
    assert private_registries(None, silent) == {} and private_registries("Not A Reference", silent) == {}


def test_cluster_line_names_the_cluster() -> None:
    info = {"cluster_id": "c-1", "cluster_name": "etl", "state": "RUNNING", "docker_image": {"url": PINNED}}
    assert cluster_line(info) == f"etl (c-1): RUNNING, {PINNED}"
    assert cluster_line({"cluster_id": "c-2", "state": "PENDING"}) == "(no name) (c-2): PENDING"


# -- save, export, readiness -----------------------------------------------------------------------------


def test_save_writes_the_real_body_and_never_overwrites_unasked(tmp_path: Path) -> None:
    spec_file = tmp_path / "team.json"
    spec_file.write_text(json.dumps({"spark_version": "15.4.x-scala2.12", "num_workers": 0,
                                     "docker_image": {"url": PINNED, "basic_auth": {
                                         "username": "robot", "password": "{{secrets/ci/pw}}"}}}))
    form = LaunchForm(ClusterSpec.load(spec_file), spec_path=spec_file)
    opened = form.initial_values()
    assert form.default_save_path() == tmp_path / "team.saved.json"
    saved = form.save(opened)
    assert saved.path == tmp_path / "team.saved.json" and saved.problem is None
    assert json.loads(saved.path.read_text())["docker_image"]["basic_auth"]["password"] == "{{secrets/ci/pw}}"
    assert form.default_save_path() == tmp_path / "team.saved-2.json"
    refused = form.save(opened, spec_file)
    assert refused.path is None and "the --spec file that exists" in (refused.problem or "")
    assert form.save(opened, spec_file, overwrite=True).path == spec_file
    assert not list(tmp_path.glob(".*.tmp"))


def test_save_refuses_a_literal_secret_and_notes_a_variable(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    spec = ClusterSpec(spark_version="15.4.x-scala2.12", num_workers=0,
                       docker_image=DockerImage(PINNED, BasicAuth("robot", LITERAL)))
    keep = LaunchForm(spec)
    refused = keep.save(keep.initial_values(), tmp_path / "keep.json")
    assert refused.path is None and "docker_image.basic_auth.password" in (refused.problem or "")
    assert LITERAL not in (refused.problem or "") and not (tmp_path / "keep.json").exists()
    monkeypatch.setenv("DCS_TEST_PW", LITERAL)
    saved = LaunchForm().save(values(auth_mode="env", username="robot", password_env="DCS_TEST_PW"),
                              tmp_path / "ci" / "env.json")
    assert saved.path is not None and LITERAL not in saved.path.read_text()
    assert any("--password-env DCS_TEST_PW" in n for n in saved.notes)


def test_export_keeps_references_and_refuses_what_it_cannot_write(monkeypatch: pytest.MonkeyPatch) -> None:
    form = LaunchForm()
    bundle = form.export(values(auth_mode="secret", username="ci", password_secret="{{secrets/ci/registry}}"))
    assert "resources:" in bundle and "{{secrets/ci/registry}}" in bundle
    monkeypatch.setenv("DCS_TEST_PW", "hunter2-not-in-any-export")
    with pytest.raises(SpecError):
        form.export(values(auth_mode="env", username="ci", password_env="DCS_TEST_PW"), "terraform")


def test_readiness_counts_what_holds() -> None:
    readiness = Readiness(CheckReport("https://ws", [CheckItem("workspace", True, "answers"),
                                                     CheckItem("enableDcs", False, "off", "ask an admin")]))
    assert readiness.head == "Workspace readiness: 1/2 checks hold"
    assert [item.name for item in readiness.failed] == ["enableDcs"]


# -- a followed cluster ---------------------------------------------------------------------------------


def test_ended_cluster_is_an_error_unless_the_form_terminated_it() -> None:
    by_user = {"cluster_id": "c-1", "state": "TERMINATED", "termination_reason": {"code": "USER_REQUEST"}}
    assert ended_error(by_user, terminating=True, url=None) is None
    error = ended_error(by_user, terminating=False, url="https://ws/compute/clusters/c-1")
    assert isinstance(error, ClusterError) and error.termination_code == "USER_REQUEST"
    failed = {"cluster_id": "c-1", "state": "TERMINATED", "state_message": "manifest unknown",
              "termination_reason": {"code": "DOCKER_IMAGE_PULL_FAILURE"}}
    error = ended_error(failed, terminating=True, url="https://ws/compute/clusters/c-1")
    assert error is not None and "could not pull" in (error.hint or "") and "https://ws/compute" in (error.hint or "")


def test_a_local_secret_error_names_the_variables_to_set() -> None:
    sent = ClusterSpec(spark_version="15.4.x-scala2.12", num_workers=0,
                       docker_image=DockerImage(PINNED, BasicAuth("robot", "{{secrets/dcs-test/pw}}")),
                       spark_env_vars={"TOKEN": "{{secrets/ci/gh}}", "AGAIN": "{{secrets/ci/gh}}"})
    assert secret_references(sent) == ["{{secrets/dcs-test/pw}}", "{{secrets/ci/gh}}"]
    info = {"cluster_id": "c-1", "state": "TERMINATED", "termination_reason": {"code": "SECRET_RESOLUTION_ERROR"}}
    error = ended_error(info, terminating=False, url=None, sent=sent, local=True)
    assert error is not None and "DCS_SECRET_DCS_TEST_PW, DCS_SECRET_CI_GH" in (error.hint or "")
    remote = ended_error(info, terminating=False, url=None, sent=sent)  # not local: the workspace's own hint
    assert remote is not None and "DCS_SECRET_" not in (remote.hint or "")


def test_slow_start_unexpected_errors_and_event_lines() -> None:
    slow = slow_start_error("c-1", "PENDING", 1200)
    assert slow.state == "PENDING" and "still PENDING after 1200 s" in slow.message and "Terminate" in (slow.hint or "")
    assert "unexpected KeyError" in unexpected_error(KeyError("x")).message
    line = event_text({"timestamp": None, "type": "TERMINATING",
                       "details": {"reason": {"code": "USER_REQUEST"}, "user": "me@example.com"}})
    assert line == "--:--:-- TERMINATING - USER_REQUEST; user=me@example.com"
    assert image_notes(PINNED) == [] and image_notes("registry.example.com/a:latest")


def test_log_delivery_defaults_to_a_volume_and_reads_back_from_a_spec() -> None:
    sent = FormValues(spark_version="15.4.x-scala2.12", image=PINNED).to_spec().to_dict()
    assert sent["cluster_log_conf"] == {"volumes": {"destination": "/Volumes/main/default/logs/cluster-logs"}}
    # cleared: no delivery; dbfs and a spec file's s3 destination are kept as written
    assert "cluster_log_conf" not in FormValues(spark_version="15.4.x-scala2.12", image=PINNED,
                                                log_destination=" ").to_spec().to_dict()
    dbfs = FormValues(spark_version="15.4.x-scala2.12", image=PINNED, log_destination="dbfs:/cluster-logs/")
    assert dbfs.to_spec().to_dict()["cluster_log_conf"] == {"dbfs": {"destination": "dbfs:/cluster-logs"}}
    s3 = {"s3": {"destination": "s3://bucket/logs", "region": "us-west-2"}}
    base = ClusterSpec.from_dict({"spark_version": "15.4.x-scala2.12", "cluster_log_conf": s3})
    shown = FormValues.from_spec(base)
    assert shown.log_destination == "s3://bucket/logs"
    assert shown.to_spec(base).to_dict()["cluster_log_conf"] == s3


@pytest.mark.parametrize("text", ["/Volumes/main/logs", "s3://bucket/x", "/tmp/logs", "dbfs:/", "/Volumes/a/b/c d"])
def test_a_log_destination_that_is_not_a_volume_or_dbfs_path_says_what_to_write(text: str) -> None:
    with pytest.raises(SpecError, match=r"cluster logs: .* is not a volume or DBFS path") as caught:
        FormValues(spark_version="15.4.x-scala2.12", image=PINNED, log_destination=text).to_spec()
    assert "/Volumes/<catalog>/<schema>/<volume>/cluster-logs" in caught.value.hint
