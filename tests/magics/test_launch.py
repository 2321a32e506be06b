"""The launch form: pure form logic, the widget driven from Python against the local Clusters
API server, and `%dcs_launch` in a real InteractiveShell. No secret may reach widget state."""

from __future__ import annotations

import html
import json
import re
import time
from collections.abc import Iterator

import ipywidgets
import pytest
from IPython.core.error import UsageError
from ipywidgets.embed import embed_data
from support.images import build_image, push_image

from dcs_magic import ClusterSpec, ConfigError, PushResult, SpecError, Workspace
from dcs_magic.jupyter.launch import LaunchWidget
from dcs_magic.model.form_values import FormValues, parse_key_values
from dcs_magic.model.spec import BasicAuth, DockerImage, NamedInitScript, node_type_problem

PINNED = "registry.example.com/team/app@sha256:" + "d" * 64
LITERAL = "hunter2-Literal-Registry-Password"


pytestmark = pytest.mark.usefixtures("no_databricks_config")


def preview_json(widget: LaunchWidget) -> dict:
    match = re.search(r"<pre[^>]*>(.*)</pre>", widget.preview.value, re.DOTALL)
    assert match, widget.preview.value
    return json.loads(html.unescape(match[1]))


def every_widget_state(root: ipywidgets.Widget) -> str:
    """The state of every widget in the tree, as the front-end and a saved notebook get it."""
    states, stack = [], [root]
    while stack:
        widget = stack.pop()
        states.append(widget.get_state())
        stack.extend(getattr(widget, "children", ()) or ())
    return json.dumps(states, default=str)


def assert_no_secret(widget: LaunchWidget, secret: str) -> None:
    assert secret not in every_widget_state(widget)
    assert secret not in json.dumps(ipywidgets.Widget.get_manager_state(), default=str)
    assert secret not in json.dumps(embed_data(views=[widget]), default=str)


# -- pure form logic ------------------------------------------------------------------------------


def test_parse_key_values():
    assert parse_key_values("", "spark_conf") is None
    assert parse_key_values("# comment\n a = b \n\nc=d=e\nempty=", "spark_conf") == \
        {"a": "b", "c": "d=e", "empty": ""}
    with pytest.raises(SpecError, match=r"custom_tags, line 2: 'oops' is not key=value") as info:
        parse_key_values("team=data\noops", "custom_tags")
    assert info.value.field == "custom_tags"
    with pytest.raises(SpecError, match="line 2: a is given twice"):
        parse_key_values("a=1\na=2", "spark_env_vars")


def test_form_values_to_spec():
    values = FormValues(cluster_name=" demo ", spark_version="15.4.x-scala2.12", node_type_id="i3.xlarge",
                        workers_mode="autoscale", min_workers=1, max_workers=3, autotermination_minutes=20,
                        image=PINNED, auth_mode="secret", username="robot",
                        password_secret="{{secrets/ci/registry}}", init_script_names=("setup",),
                        init_script_destinations="dbfs:/init/a.sh\ns3://bucket/b.sh region=eu-west-1\n",
                        spark_conf="spark.databricks.driverNfs.enabled=false", custom_tags="team=data")
    scripts = {"setup": NamedInitScript("setup", "echo", "/Volumes/main/default/s/setup.sh")}
    body = values.to_spec(scripts=scripts).to_dict()
    assert body == {
        "cluster_name": "demo", "spark_version": "15.4.x-scala2.12", "node_type_id": "i3.xlarge",
        "autoscale": {"min_workers": 1, "max_workers": 3},
        "docker_image": {"url": PINNED, "basic_auth": {"username": "robot", "password": "{{secrets/ci/registry}}"}},
        # The spec's own scripts first, in order; selected %%init_script cells after them.
        "init_scripts": [{"dbfs": {"destination": "dbfs:/init/a.sh"}},
                         {"s3": {"destination": "s3://bucket/b.sh", "region": "eu-west-1"}},
                         {"volumes": {"destination": "/Volumes/main/default/s/setup.sh"}}],
        "spark_conf": {"spark.databricks.driverNfs.enabled": "false"}, "custom_tags": {"team": "data"},
        "autotermination_minutes": 20, "data_security_mode": "DATA_SECURITY_MODE_DEDICATED",
        # a new form has Databricks deliver the cluster's logs (dcs why reads them)
        "cluster_log_conf": {"volumes": {"destination": "/Volumes/main/default/logs/cluster-logs"}},
    }


def test_form_values_errors_name_the_line():
    with pytest.raises(SpecError, match="init script destinations, line 2"):
        FormValues(spark_version="15.4.x-scala2.12", init_script_destinations="/Workspace/a.sh\nnope.sh"
                   ).to_spec()
    with pytest.raises(SpecError, match="'missing' is not known") as info:
        FormValues(init_script_names=("missing",)).to_spec()
    assert "%%init_script missing" in info.value.hint


def test_form_values_round_trip_a_spec_and_keep_fields_the_form_does_not_show():
    spec = ClusterSpec(cluster_name="c", spark_version="16.4.x-scala2.12", node_type_id="m5d.large", num_workers=2,
                       autotermination_minutes=45, data_security_mode="SINGLE_USER", single_user_name="me@x.com",
                       docker_image={"url": PINNED, "basic_auth": {"username": "u", "password": "{{secrets/a/b}}"}},
                       init_scripts=[{"s3": {"destination": "s3://b/i.sh", "endpoint": "https://s3.example"}}],
                       spark_env_vars={"A": "1"}, custom_tags={"t": "v"}, policy_id="P1",
                       aws_attributes={"zone_id": "auto"}, extra={"future": 1})
    values = FormValues.from_spec(spec)
    assert values.auth_mode == "secret" and values.workers_mode == "fixed"
    assert values.to_spec(base=spec).to_dict() == spec.to_dict()


def test_spec_numbers_the_form_cannot_hold_are_spec_errors():
    with pytest.raises(SpecError, match="num_workers must be a whole number") as info:
        FormValues.from_spec(ClusterSpec(spark_version="15.4.x-scala2.12", num_workers="many"))
    assert info.value.field == "num_workers"


def test_literal_password_from_a_spec_file_is_kept_out_of_the_form():
    spec = ClusterSpec(spark_version="15.4.x-scala2.12", num_workers=0,
                       docker_image={"url": PINNED, "basic_auth": {"username": "u", "password": LITERAL}})
    values = FormValues.from_spec(spec)
    assert values.auth_mode == "keep" and LITERAL not in repr(values)
    assert values.to_spec(base=spec).to_dict()["docker_image"]["basic_auth"]["password"] == LITERAL


# -- the widget against the local Clusters API ------------------------------------------------------


def test_lists_leave_out_what_dcs_cannot_run(ws):
    widget = LaunchWidget(ws)
    runtimes = [key for _, key in widget.controls["spark_version"].options]
    assert runtimes == ["16.4.x-scala2.12", "16.2.x-scala2.12", "15.4.x-scala2.12", "13.3.x-scala2.12"]  # newest first
    assert widget.controls["spark_version"].value == "16.4.x-scala2.12"  # the default stays the newest LTS
    nodes = [key for _, key in widget.controls["node_type_id"].options]
    assert nodes == ["m5d.large", "g4dn.xlarge", "i3.xlarge"]
    assert not widget.create_button.disabled and widget.notice.value == ""


def test_preview_follows_the_controls(ws):
    widget = LaunchWidget(ws, image=PINNED)
    c = widget.controls
    c["cluster_name"].value = "dcs-preview"
    c["node_type_id"].value = "i3.xlarge"
    c["workers_mode"].value = "autoscale"
    c["min_workers"].value, c["max_workers"].value = 2, 5
    c["custom_tags"].value = "team=data\nowner=me"
    c["spark_conf"].value = "spark.databricks.unityCatalog.volumes.enabled=true"
    body = preview_json(widget)
    assert body["cluster_name"] == "dcs-preview" and body["autoscale"] == {"min_workers": 2, "max_workers": 5}
    assert "num_workers" not in body and body["docker_image"] == {"url": PINNED}
    assert body["custom_tags"] == {"team": "data", "owner": "me"}
    assert widget.spec.to_dict() == body
    assert c["num_workers"].layout.display == "none" and c["min_workers"].layout.display is None
    assert widget.problems.value == ""
    c["autotermination_minutes"].value = 5
    assert "between 10 and 10000" in widget.problems.value
    c["custom_tags"].value = "broken"
    assert "custom_tags, line 1" in widget.problems.value
    # A problem with a hint: the hint on a line of its own, not run into the message.
    c["custom_tags"].value = ""
    c["auth_mode"].value, c["username"].value, c["password_secret"].value = "secret", "", "{{secrets/a/b}}"
    assert "docker_image.basic_auth needs a username<br>Hint: " in widget.problems.value


def test_tag_image_gets_a_pinning_note(ws):
    widget = LaunchWidget(ws, image="registry.example.com/team/app:latest")
    assert "pin it by digest" in widget.problems.value


def test_create_follows_the_cluster_to_running(ws, api, monkeypatch):
    monkeypatch.setenv("DCS_TEST_REGISTRY_PASSWORD", LITERAL)
    api.script({"state": "PENDING", "state_message": "Pulling image"}, {"state": "RUNNING", "state_message": ""})
    widget = LaunchWidget(ws, image=PINNED, sleep=lambda s: None)
    c = widget.controls
    c["cluster_name"].value = "dcs-create"
    c["auth_mode"].value = "env"
    c["username"].value = "robot"
    c["password_env"].value = "DCS_TEST_REGISTRY_PASSWORD"
    assert preview_json(widget)["docker_image"]["basic_auth"] == {"username": "robot", "password": "****"}
    widget.create_button.click()
    cluster_id = widget.wait(30)
    assert cluster_id and widget.cluster_id == cluster_id
    assert "RUNNING" in widget.state.value and widget.cluster_info["state"] == "RUNNING"
    assert ws.cluster_url(cluster_id) in widget.link.value
    [create] = api.requests_to("/clusters/create")
    assert create.json["docker_image"]["basic_auth"] == {"username": "robot", "password": LITERAL}  # read at send
    assert create.json["cluster_name"] == "dcs-create" and api.create_rejections == []
    assert_no_secret(widget, LITERAL)


def test_the_form_polls_as_fast_as_its_workspace(api):
    """The workspace's own pauses reach the form (the local workspace polls every 0.1 s): five
    PENDING answers take well under the 1+2+3+4+5 s of the default policy, with no sleep given."""
    api.script(*[{"state": "PENDING"}] * 5, {"state": "RUNNING"})
    with Workspace(host=api.host, token=api.token, poll_s=(0.05, 0.05)) as fast:
        widget = LaunchWidget(fast, image=PINNED)
        started = time.monotonic()
        widget.create_button.click()
        assert widget.wait(30)
        took = time.monotonic() - started
        assert widget.cluster_info["state"] == "RUNNING" and took < 3
        assert len(api.requests_to("/clusters/get")) >= 6
        widget.close()
        assert widget.wait_ended(5)  # close() cuts the running beat short


def test_failed_start_shows_code_message_and_hint(ws, api):
    api.script({"state": "PENDING"},
               {"state": "TERMINATED", "state_message": "Failed to pull image: manifest unknown",
                "termination_reason": {"code": "DOCKER_IMAGE_PULL_FAILURE", "type": "CLIENT_ERROR"}})
    widget = LaunchWidget(ws, image=PINNED, sleep=lambda s: None)
    widget.create_button.click()
    widget.wait(30)
    state = html.unescape(widget.state.value)
    assert "TERMINATED" in state and "DOCKER_IMAGE_PULL_FAILURE" in state
    assert state.count("TERMINATED") == 1, state  # not "TERMINATED cluster X is TERMINATED" (issue 24.8)
    assert "manifest unknown" in state and "Hint:" in state and "could not pull" in state
    assert widget.error.termination_code == "DOCKER_IMAGE_PULL_FAILURE"
    assert not widget.create_button.disabled


def test_api_error_on_create_is_shown(ws, api):
    api.fail("/clusters/create", 400, {"error_code": "INVALID_PARAMETER_VALUE",
                                       "message": "Custom containers are turned off for your deployment"})
    widget = LaunchWidget(ws, image=PINNED)
    widget.create_button.click()
    widget.wait(30)
    assert widget.cluster_id is None
    assert "Custom containers are turned off" in html.unescape(widget.state.value)


def test_invalid_form_sends_nothing(ws, api):
    widget = LaunchWidget(ws, image="Not A Reference")
    widget.create_button.click()
    assert widget.wait(5) is None
    assert api.requests_to("/clusters/create") == []
    assert "SpecError" in widget.state.value and "docker_image.url" in html.unescape(widget.problems.value)


def test_a_password_typed_in_the_wrong_field_is_cleared(ws, monkeypatch):
    monkeypatch.delenv("DCS_TEST_NOT_SET", raising=False)
    widget = LaunchWidget(ws, image=PINNED)
    c = widget.controls
    c["auth_mode"].value = "secret"
    c["username"].value = "robot"
    c["password_secret"].value = LITERAL
    assert c["password_secret"].value == "" and "it was cleared" in html.unescape(widget.problems.value)
    c["password_secret"].value = "{{secrets/ci/registry}}"
    assert preview_json(widget)["docker_image"]["basic_auth"]["password"] == "{{secrets/ci/registry}}"
    assert "cleared" not in widget.problems.value
    c["auth_mode"].value = "env"
    c["password_env"].value = LITERAL  # a password where the variable NAME belongs
    assert c["password_env"].value == "" and "was cleared" in html.unescape(widget.problems.value)
    c["password_env"].value = "DCS_TEST_NOT_SET"  # a name, but not set: may be a password too
    assert c["password_env"].value == ""
    assert_no_secret(widget, LITERAL)


def test_spec_file_with_a_literal_password_never_shows_it(ws, api):
    spec = ClusterSpec(spark_version="15.4.x-scala2.12", num_workers=0,
                       docker_image=DockerImage(PINNED, BasicAuth("robot", LITERAL)))
    widget = LaunchWidget(ws, spec=spec, sleep=lambda s: None)
    assert widget.controls["auth_mode"].value == "keep"
    assert preview_json(widget)["docker_image"]["basic_auth"]["password"] == "****"
    assert_no_secret(widget, LITERAL)
    widget.create_button.click()
    widget.wait(30)
    assert api.requests_to("/clusters/create")[0].json["docker_image"]["basic_auth"]["password"] == LITERAL


def test_copy_box_is_the_masked_preview(ws, monkeypatch):
    monkeypatch.setenv("DCS_TEST_REGISTRY_PASSWORD", LITERAL)
    widget = LaunchWidget(ws, image=PINNED)
    c = widget.controls
    c["auth_mode"].value, c["username"].value, c["password_env"].value = "env", "robot", "DCS_TEST_REGISTRY_PASSWORD"
    assert widget.copy_box.layout.display == "none"
    widget.copy_button.click()
    assert widget.copy_box.layout.display is None and json.loads(widget.copy_box.value) == preview_json(widget)
    assert preview_json(widget)["docker_image"]["basic_auth"]["password"] == "****"
    assert_no_secret(widget, LITERAL)


SPEC_WITH_REFERENCES = {
    "cluster_name": "from-file", "spark_version": "15.4.x-scala2.12", "node_type_id": "m5d.large",
    "num_workers": 1, "autotermination_minutes": 30, "data_security_mode": "DATA_SECURITY_MODE_DEDICATED",
    "docker_image": {"url": PINNED, "basic_auth": {"username": "robot", "password": "{{secrets/ci/registry}}"}},
    "spark_env_vars": {"MY_API_TOKEN": "{{secrets/ci/api-token}}", "PLAIN": "1"},
    "spark_conf": {"spark.hadoop.fs.azure.account.oauth2.client.secret": "{{secrets/ci/sp}}"},
    "custom_tags": {"team": "data"},
}


def test_save_json_keeps_references_and_never_overwrites_the_spec_file(ws, tmp_path):
    spec_file = tmp_path / "cluster.json"
    original = json.dumps(SPEC_WITH_REFERENCES, indent=2)
    spec_file.write_text(original)
    widget = LaunchWidget(ws, spec=ClusterSpec.load(spec_file), spec_path=spec_file)
    # The default target is a new file beside the spec, never the spec itself.
    assert widget.save_path.value == str(tmp_path / "cluster.saved.json")
    widget.save_button.click()
    saved = json.loads((tmp_path / "cluster.saved.json").read_text())
    assert saved == SPEC_WITH_REFERENCES  # references and names exactly as they were
    assert "****" not in (tmp_path / "cluster.saved.json").read_text()
    assert widget.save_path.value == str(tmp_path / "cluster.saved-2.json")  # the next save: another new file
    # Saving onto the spec file needs the explicit choice.
    widget.controls["cluster_name"].value = "renamed"
    widget.save_path.value = str(spec_file)
    widget.save_button.click()
    assert spec_file.read_text() == original
    assert "the --spec file" in html.unescape(widget.state.value) and "Overwrite" in widget.state.value
    widget.overwrite.value = True
    widget.save_button.click()
    assert json.loads(spec_file.read_text()) == {**SPEC_WITH_REFERENCES, "cluster_name": "renamed"}
    assert widget.overwrite.value is False  # asked again next time
    # Read back, the saved spec pre-fills the same form and sends the same references.
    again = LaunchWidget(ws, spec=ClusterSpec.load(spec_file), spec_path=spec_file)
    assert again.spec.to_dict() == {**SPEC_WITH_REFERENCES, "cluster_name": "renamed"}


def test_save_json_never_writes_a_masked_or_literal_secret(ws, tmp_path, monkeypatch):
    monkeypatch.setenv("DCS_TEST_REGISTRY_PASSWORD", LITERAL)
    widget = LaunchWidget(ws, image=PINNED)
    c = widget.controls
    c["auth_mode"].value, c["username"].value, c["password_env"].value = "env", "robot", "DCS_TEST_REGISTRY_PASSWORD"
    target = widget.save(tmp_path / "ci" / "env.json")
    text = target.read_text()
    assert LITERAL not in text and "****" not in text
    assert json.loads(text)["docker_image"] == {"url": PINNED, "basic_auth": {"username": "robot"}}
    assert "--password-env DCS_TEST_REGISTRY_PASSWORD" in html.unescape(widget.state.value)
    # A literal password kept from a spec file: refused, nothing written.
    spec = ClusterSpec(spark_version="15.4.x-scala2.12", num_workers=0,
                       docker_image=DockerImage(PINNED, BasicAuth("robot", LITERAL)))
    keep = LaunchWidget(ws, spec=spec)
    assert keep.save(tmp_path / "keep.json") is None and not (tmp_path / "keep.json").exists()
    state = html.unescape(keep.state.value)
    assert "Not saved" in state and "docker_image.basic_auth.password" in state and LITERAL not in state
    assert "Download JSON" not in keep.download.value
    assert_no_secret(keep, LITERAL)


def test_default_save_path_is_always_a_new_file(tmp_path):
    from dcs_magic.ops.launch_form import default_save_path

    assert default_save_path(directory=tmp_path) == tmp_path / "cluster.json"
    (tmp_path / "cluster.json").write_text("{}")
    assert default_save_path(directory=tmp_path) == tmp_path / "cluster-2.json"
    assert default_save_path(tmp_path / "cluster.json") == tmp_path / "cluster.saved.json"


SECRET_LOOKING = {
    "spark_env_vars": {"MY_API_TOKEN": "tok-" + "7" * 20, "PLAIN": "1"},
    "spark_conf": {"spark.hadoop.fs.azure.account.oauth2.client.secret": "sp-secret-" + "8" * 16,
                   "spark.databricks.driverNfs.enabled": "false"},
    "custom_tags": {"token_budget": "42", "team": "data"},
}


def test_create_sends_the_real_values_the_preview_masks(ws, api):
    spec = ClusterSpec(spark_version="15.4.x-scala2.12", num_workers=0, docker_image={"url": PINNED},
                       **SECRET_LOOKING)
    widget = LaunchWidget(ws, spec=spec, sleep=lambda s: None)
    preview = preview_json(widget)
    assert preview["spark_env_vars"] == {"MY_API_TOKEN": "****", "PLAIN": "1"}
    assert preview["spark_conf"]["spark.hadoop.fs.azure.account.oauth2.client.secret"] == "****"
    assert preview["custom_tags"] == {"token_budget": "****", "team": "data"}
    widget.create_button.click()
    assert widget.wait(30)
    [create] = api.requests_to("/clusters/create")
    for name, values in SECRET_LOOKING.items():
        assert create.json[name] == values  # the real values, not ****
    for name in ("spark_env_vars", "spark_conf"):
        for value in SECRET_LOOKING[name].values():
            if value not in ("1", "false"):
                assert_no_secret(widget, value)
    widget.close()


def test_mask_placeholder_without_a_spec_value_is_refused(ws):
    widget = LaunchWidget(ws, image=PINNED)
    widget.controls["spark_env_vars"].value = "OTHER_TOKEN=****"
    assert "OTHER_TOKEN=**** has no value" in html.unescape(widget.problems.value)


def test_a_secret_typed_in_the_key_value_boxes_is_taken_out(ws):
    literal = "ghp-" + "x1" * 18
    widget = LaunchWidget(ws, image=PINNED)
    c = widget.controls
    assert c["spark_env_vars"].continuous_update is False  # one sync on blur, not one per keystroke
    c["spark_env_vars"].value = f"GH_TOKEN={literal}\nPLAIN=1"
    assert literal not in c["spark_env_vars"].value
    assert c["spark_env_vars"].value.splitlines()[0].startswith("# GH_TOKEN=")
    problems = html.unescape(widget.problems.value)
    assert "GH_TOKEN looks like a secret" in problems and "{{secrets/<scope>/<key>}}" in problems
    assert preview_json(widget)["spark_env_vars"] == {"PLAIN": "1"}
    c["spark_conf"].value = f"spark.my.client.secret={literal}"
    assert literal not in c["spark_conf"].value
    assert_no_secret(widget, literal)
    # A reference is what belongs there: kept, sent as is, the message goes away.
    c["spark_env_vars"].value = "GH_TOKEN={{secrets/ci/gh}}\nPLAIN=1"
    assert preview_json(widget)["spark_env_vars"] == {"GH_TOKEN": "{{secrets/ci/gh}}", "PLAIN": "1"}
    c["spark_conf"].value = ""
    assert "looks like a secret" not in widget.problems.value


def test_create_is_disabled_until_the_cluster_ends_and_terminate_stops_it(ws, api):
    api.script({"state": "PENDING", "state_message": "Pulling image"}, {"state": "RUNNING", "state_message": ""})
    widget = LaunchWidget(ws, image=PINNED, sleep=lambda s: None, running_poll_s=30)
    assert [widget.create_button.description, widget.terminate_button.description,
            widget.save_button.description] == ["Create", "Terminate", "Save JSON"]
    assert widget.terminate_button.disabled and not widget.create_button.disabled
    widget.create_button.click()
    cluster_id = widget.wait(30)
    assert widget.cluster_info["state"] == "RUNNING" and "RUNNING" in widget.state.value
    assert widget.create_button.disabled and not widget.terminate_button.disabled
    widget.create_button.click()  # a second click while it runs: no duplicate
    widget.create()
    assert len(api.requests_to("/clusters/create")) == 1
    timeline = html.unescape(widget.timeline.value)
    assert "CREATING" in timeline and "RUNNING" in timeline
    widget.terminate_button.click()
    assert widget.wait_ended(30)  # Terminate wakes the follower at once (not after running_poll_s)
    assert [r.json for r in api.requests_to("/clusters/delete")] == [{"cluster_id": cluster_id}]
    assert "TERMINATED" in widget.state.value and "terminated from this form" in widget.state.value
    assert widget.error is None
    assert not widget.create_button.disabled and widget.terminate_button.disabled
    assert "TERMINATING" in html.unescape(widget.timeline.value)
    # Editing the form clears the old cluster's outcome.
    widget.controls["cluster_name"].value = "next"
    assert widget.state.value == "" and widget.timeline.value == ""


def test_create_is_enabled_again_after_the_cluster_fails(ws, api):
    api.script({"state": "PENDING"}, {"state": "ERROR", "state_message": "Spark failed",
                                      "termination_reason": {"code": "SPARK_STARTUP_FAILURE"}})
    widget = LaunchWidget(ws, image=PINNED, sleep=lambda s: None)
    widget.create_button.click()
    widget.wait(30)
    assert widget.wait_ended(30)
    assert "ERROR" in widget.state.value and "SPARK_STARTUP_FAILURE" in widget.state.value
    assert not widget.create_button.disabled and widget.terminate_button.disabled


def test_form_html_takes_colours_from_the_theme_only(ws, api):
    api.script({"state": "PENDING"}, {"state": "TERMINATED", "state_message": "boom",
                                      "termination_reason": {"code": "SPARK_STARTUP_FAILURE"}})
    widget = LaunchWidget(None, image="registry.example.com/team/app:latest", unavailable="no host")
    widget.controls["custom_tags"].value = "broken"
    failing = LaunchWidget(ws, image=PINNED, sleep=lambda s: None)
    failing.create()
    failing.wait_ended(30)
    pages = [w.value for root in (widget, failing) for w in _walk(root) if isinstance(w, ipywidgets.HTML)]
    styled = re.findall(r"(?:color|background|border[a-z-]*)\s*:\s*([^;\"']+)", "".join(pages))
    assert len(styled) >= 4  # the notice, two problems, the error state
    assert [c for c in styled if "var(--jp-" not in c or re.search(r"#[0-9a-fA-F]{3,8}\b|rgb", c)] == []


def _walk(root: ipywidgets.Widget) -> Iterator[ipywidgets.Widget]:
    stack = [root]
    while stack:
        widget = stack.pop()
        yield widget
        stack.extend(getattr(widget, "children", ()) or ())


def test_form_names_the_workspace_host_never_the_token(ws, api):
    widget = LaunchWidget(ws, image=PINNED)
    assert api.host in widget.target.value and api.token not in every_widget_state(widget)
    assert "none (preview only)" in LaunchWidget(None, image=PINNED).target.value


def test_preview_only_without_a_workspace():
    widget = LaunchWidget(None, image=PINNED, unavailable="No Databricks workspace host configured")
    assert widget.create_button.disabled
    assert "Preview only: No Databricks workspace host configured" in widget.notice.value
    assert isinstance(widget.controls["spark_version"], ipywidgets.Text)  # no list to pick from: type it
    # No list to pick from and no checked image: the newest LTS line dcs-magic knows.
    from dcs_magic.model import runtime
    newest_lts = [line for line in runtime.LINES if line.lts and line.supported()][-1]
    assert preview_json(widget)["spark_version"] == newest_lts.key
    widget.create()
    assert widget.cluster_id is None and "preview only" in widget.state.value


def test_known_init_scripts_are_offered(ws):
    scripts = {"setup": NamedInitScript("setup", "echo", "/Workspace/Shared/setup.sh"),
               "draft": NamedInitScript("draft", "echo")}
    widget = LaunchWidget(ws, image=PINNED, init_scripts=scripts)
    assert widget.controls["init_script_names"].options == (("setup (/Workspace/Shared/setup.sh)", "setup"),)
    widget.controls["init_script_names"].value = ("setup",)
    assert preview_json(widget)["init_scripts"] == [{"workspace": {"destination": "/Workspace/Shared/setup.sh"}}]
    assert "draft" in every_widget_state(widget)  # listed as "not uploaded yet"


def test_uploaded_init_scripts_are_preselected(ws):
    scripts = {"setup": NamedInitScript("setup", "echo", "/Workspace/Shared/setup.sh"),
               "listed": NamedInitScript("listed", "echo", "dbfs:/init/listed.sh"),
               "draft": NamedInitScript("draft", "echo")}
    spec = ClusterSpec(spark_version="15.4.x-scala2.12", num_workers=0,
                       init_scripts=[{"dbfs": {"destination": "dbfs:/init/listed.sh"}}])
    widget = LaunchWidget(ws, image=PINNED, spec=spec, init_scripts=scripts)
    assert widget.controls["init_script_names"].value == ("setup",)  # "listed" is in the spec already
    assert preview_json(widget)["init_scripts"] == [{"dbfs": {"destination": "dbfs:/init/listed.sh"}},
                                                    {"workspace": {"destination": "/Workspace/Shared/setup.sh"}}]


# -- %dcs_launch -------------------------------------------------------------------------------------


def test_a_magic_without_configuration_says_the_notebooks_way_too(shell, capsys):
    """The library's configuration hint is the command line's (no `%config`); a notebook adds it."""
    ran = shell.run_cell("%dcs_why 0101-000000-nothing")
    assert isinstance(ran.error_in_exec, ConfigError)
    shown = capsys.readouterr()
    assert "--profile NAME" in shown.out + shown.err
    assert "%config DcsMagics.profile = 'NAME'" in shown.out + shown.err


def test_magic_without_configuration_is_a_preview_saying_what_is_missing(shell):
    widget = shell.run_line_magic("dcs_launch", f"--image {PINNED}")
    assert isinstance(widget, LaunchWidget) and widget.workspace is None
    notice = html.unescape(widget.notice.value)
    assert "Preview only" in notice and "DATABRICKS_HOST" in notice and "%config DcsMagics.profile" in notice
    assert preview_json(widget)["docker_image"]["url"] == PINNED


def test_magic_uses_the_profile_the_last_push_and_a_spec_file(shell, dcs_magics, api, tmp_path, monkeypatch):
    config = tmp_path / "databrickscfg"
    config.write_text(f"[dev]\nhost = {api.host}\ntoken = {api.token}\n")
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(config))
    shell.run_line_magic("config", "DcsMagics.profile = 'dev'")
    dcs_magics.last_push = PushResult(reference="registry.example.com/team/app:1", digest="sha256:" + "d" * 64,
                                      pinned=PINNED)
    spec_file = tmp_path / "cluster.json"
    spec_file.write_text(json.dumps({"cluster_name": "from-file", "spark_version": "13.3.x-scala2.12",
                                     "num_workers": 3, "docker_image": {"url": "old/image:1"},
                                     "aws_attributes": {"zone_id": "auto"}}))
    widget = shell.run_line_magic("dcs_launch", f"--spec {spec_file}")
    assert widget.workspace.host == api.host and widget.workspace.profile == "dev"
    body = preview_json(widget)
    assert body["cluster_name"] == "from-file" and body["num_workers"] == 3
    assert body["docker_image"]["url"] == PINNED  # the last push wins over the file's image
    assert body["aws_attributes"] == {"zone_id": "auto"}  # fields the form does not show are kept
    other = shell.run_line_magic("dcs_launch", "--image registry.example.com/team/other@sha256:" + "e" * 64)
    assert preview_json(other)["docker_image"]["url"].endswith("e" * 64)


def test_magic_bad_spec_file_is_a_spec_error(shell, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(SpecError, match="not valid JSON"):
        shell.run_line_magic("dcs_launch", f"--spec {bad}")


def test_magic_local_targets_the_preflight_workspace(shell):
    widget = shell.run_line_magic("dcs_launch", f"--local --image {PINNED}")
    assert widget.workspace is not None and widget.workspace.host.startswith("http://127.0.0.1:")
    assert not widget.create_button.disabled and widget.controls["spark_version"].options
    assert widget.local and "local preflight workspace" in widget.target.value
    assert widget.workspace.host in widget.target.value


def test_magic_spec_file_is_not_the_default_save_target(shell, tmp_path):
    spec_file = tmp_path / "team.json"
    spec_file.write_text(json.dumps(SPEC_WITH_REFERENCES))
    widget = shell.run_line_magic("dcs_launch", f"--spec {spec_file}")
    assert widget.save_path.value == str(tmp_path / "team.saved.json")


@pytest.mark.docker
def test_local_secret_resolution_error_names_the_variable(shell, monkeypatch):
    """On the local workspace a reference resolves from DCS_SECRET_<SCOPE>_<KEY>; the hint says which."""
    monkeypatch.delenv("DCS_SECRET_DCS_TEST_MISSING_PW", raising=False)
    widget = shell.run_line_magic("dcs_launch", f"--local --image {PINNED}")
    widget._sleep = lambda s: __import__("time").sleep(0.2)
    c = widget.controls
    c["auth_mode"].value, c["username"].value = "secret", "robot"
    c["password_secret"].value = "{{secrets/dcs-test/missing-pw}}"
    widget.create_button.click()
    assert widget.wait(60) and widget.wait_ended(60)
    state = html.unescape(widget.state.value)
    assert "SECRET_RESOLUTION_ERROR" in state
    assert "Hint:" in state and "DCS_SECRET_DCS_TEST_MISSING_PW" in state
    assert "Open cluster" not in widget.link.value  # no link to a page that needs the token
    assert not widget.create_button.disabled


def test_default_runtime_is_the_newest_lts_that_runs_the_checked_python(ws):
    # The offered list holds 16.4 (Python 3.12) first; an image checked as Python 3.11 gets 15.4.
    widget = LaunchWidget(ws, image=PINNED, image_python="3.11.2")
    assert widget.controls["spark_version"].value == "15.4.x-scala2.12"
    assert "does not fit" not in widget.problems.value
    widget.controls["spark_version"].value = "16.4.x-scala2.12"
    assert "Runtime does not fit the image: Python 3.11.2 does not fit 16.4 LTS" in widget.problems.value
    assert "15.4 LTS" in widget.problems.value  # where it does fit


def test_unchecked_image_keeps_the_workspaces_first_runtime_and_no_note(ws):
    widget = LaunchWidget(ws, image=PINNED)
    assert widget.controls["spark_version"].value == "16.4.x-scala2.12"
    assert "does not fit" not in widget.problems.value


def test_default_runtime_without_a_workspace_list():
    from dcs_magic.model import runtime
    from dcs_magic.model.form_values import default_runtime
    newest_312 = runtime.default_runtime_for("3.12.3")
    assert newest_312 is not None and newest_312.python == "3.12" and newest_312.lts
    assert default_runtime([], "3.12.3") == newest_312.key
    assert default_runtime([], "3.11.9") == "15.4.x-scala2.12"
    assert default_runtime([], "2.7.18") == default_runtime([], None)  # no line runs it: the newest LTS


def test_export_menu_shows_each_export_and_keeps_secret_references(ws):
    widget = LaunchWidget(ws, image=PINNED)
    widget.controls["auth_mode"].value = "secret"
    widget.controls["username"].value = "ci-bot"
    widget.controls["password_secret"].value = "{{secrets/ci/registry}}"
    assert [kind for _, kind in widget.export_kind.options] == ["bundle", "terraform", "policy", "pool"]
    bundle = widget.export("bundle")
    assert bundle is not None and "resources:" in bundle and PINNED in bundle
    assert "{{secrets/ci/registry}}" in bundle and "{{secrets/ci/registry}}" in widget.export_out.value
    policy = json.loads(widget.export("policy") or "")
    assert policy["docker_image.url"] == {"type": "fixed", "value": PINNED}
    assert "resource \"databricks_cluster\"" in (widget.export("terraform") or "")
    assert "preloaded_docker_images" in (widget.export("pool") or "")


def test_export_refuses_a_password_from_an_environment_variable(ws, monkeypatch):
    monkeypatch.setenv("DCS_TEST_PW", "hunter2-not-in-any-export")
    widget = LaunchWidget(ws, image=PINNED)
    widget.controls["auth_mode"].value = "env"
    widget.controls["username"].value = "ci-bot"
    widget.controls["password_env"].value = "DCS_TEST_PW"
    assert widget.export("bundle") is None
    assert 'role="alert"' in widget.export_out.value and "{{secrets/" in widget.export_out.value
    assert "hunter2" not in every_widget_state(widget)


def test_check_workspace_shows_the_readiness_line(ws, registry):
    image = f"{registry.host}/dcs-test/never-pushed@sha256:{'a' * 64}"
    widget = LaunchWidget(ws, image=image)
    report = widget.check_workspace()
    held = sum(item.ok for item in report.checks)
    assert f"Workspace readiness: {held}/{len(report.checks)} checks hold" in widget.readiness.value
    assert {item.name for item in report.checks} >= {"workspace", "credentials", "container services"}
    for item in report.checks:
        assert (html.escape(item.name) in widget.readiness.value) == (not item.ok)


def test_check_workspace_is_disabled_without_a_workspace():
    widget = LaunchWidget(None, image=PINNED, unavailable="no host configured")
    assert widget.readiness_button.disabled


# -- the form never walks into a failure it can see (issue 20.4) --------------------------------------


@pytest.fixture
def python311_image(busybox_image: str, auth_registry, docker_client, docker_cleanup) -> str:
    """A tiny image whose /databricks/python3/bin/python3 answers `--version` like the 15.4 line's
    (Python 3.11): busybox plus that one script, tagged into the htpasswd registry (not pushed)."""
    ref = docker_cleanup.add(f"{auth_registry.host}/{docker_cleanup.unique('py311')}:1")
    build_image(docker_client, ref, f"FROM {busybox_image}\nCOPY python3 /databricks/python3/bin/python3\n",
                {"python3": b'#!/bin/sh\necho "Python 3.11.9"\n'})
    return ref


@pytest.mark.docker
def test_issue_20_form_after_a_push_fits_the_images_python_and_asks_for_the_secret(
        shell, dcs_magics, python311_image, auth_registry, monkeypatch):
    """The bug report: `%dcs_push REF --username U --password-env VAR`, no `%dcs_check`, then
    `%dcs_launch --local` opened on runtime 17.3 with registry auth "None", flagged nothing, and
    the start ended in CONTAINER_LAUNCH_FAILURE (a Python 3.11 image; 17.3 runs 3.12)."""
    monkeypatch.setenv("DCS_TEST_REGISTRY_PASSWORD", auth_registry.password)
    pushed = shell.run_line_magic("dcs_push", f"{python311_image} --username {auth_registry.username} "
                                              "--password-env DCS_TEST_REGISTRY_PASSWORD")
    assert (pushed.username, pushed.secret_ref) == (auth_registry.username, None)
    assert dcs_magics.last_check is None
    widget = shell.run_line_magic("dcs_launch", "--local")
    c = widget.controls
    assert c["image"].value == pushed.pinned
    assert widget.image_python == "3.11.9"  # a quick look at the image, without %dcs_check
    assert c["spark_version"].value == "15.4.x-scala2.12"  # the newest LTS line on Python 3.11, not 17.3
    assert (c["auth_mode"].value, c["username"].value, c["password_secret"].value) == \
        ("secret", auth_registry.username, "")
    problems = html.unescape(widget.problems.value)
    assert f"the push used --username {auth_registry.username}, but no secret reference is set" in problems
    assert "--secret-ref SCOPE/KEY" in problems and "does not fit" not in problems
    widget.create_button.click()
    assert widget.wait(5) is None and widget.cluster_id is None  # nothing sent: the password is missing
    assert "needs a password" in html.unescape(widget.state.value)
    # The runtime of the bug report is flagged before Create.
    c["spark_version"].value = "17.3.x-scala2.13"
    assert "Runtime does not fit the image: Python 3.11.9 does not fit 17.3 LTS" in html.unescape(widget.problems.value)
    assert_no_secret(widget, auth_registry.password)


@pytest.mark.docker
def test_push_secret_ref_fills_the_password_and_create_asks_again_before_a_failing_start(
        shell, dcs_magics, python311_image, auth_registry, monkeypatch):
    monkeypatch.setenv("DCS_TEST_REGISTRY_PASSWORD", auth_registry.password)
    login = f"--username {auth_registry.username} --password-env DCS_TEST_REGISTRY_PASSWORD"
    with pytest.raises(UsageError, match="--secret-ref: 'nokey' is not SCOPE/KEY"):
        shell.run_line_magic("dcs_push", f"{python311_image} {login} --secret-ref nokey")
    pushed = shell.run_line_magic("dcs_push", f"{python311_image} {login} --secret-ref dcs-test/registry-pw")
    assert pushed.secret_ref == "{{secrets/dcs-test/registry-pw}}"
    assert auth_registry.password not in repr(vars(pushed))
    monkeypatch.delenv("DCS_SECRET_DCS_TEST_REGISTRY_PW", raising=False)
    widget = shell.run_line_magic("dcs_launch", "--local")
    c = widget.controls
    assert preview_json(widget)["docker_image"]["basic_auth"] == {
        "username": auth_registry.username, "password": "{{secrets/dcs-test/registry-pw}}"}
    problems = html.unescape(widget.problems.value)
    assert "no secret reference" not in problems
    # The local workspace resolves the reference from the kernel's environment: it says which variable.
    assert "DCS_SECRET_DCS_TEST_REGISTRY_PW, which is not set in this kernel" in problems
    monkeypatch.setenv("DCS_SECRET_DCS_TEST_REGISTRY_PW", auth_registry.password)
    c["cluster_name"].value = "dcs-test-anyway"
    assert widget.problems.value == "" and widget.create_button.tooltip == "Create the cluster with this JSON"
    c["spark_version"].value = "17.3.x-scala2.13"
    assert "Asks again first: On Databricks" in widget.create_button.tooltip
    # First click: nothing is sent; beside the button, what sending it anyway costs.
    widget.create_button.click()
    assert widget.cluster_id is None and widget.busy is False
    assert widget.create_button.description == "Create anyway"
    confirm = html.unescape(widget.confirm.value)
    assert 'role="alert"' in confirm and "Not created yet." in confirm
    assert ("On Databricks this start would fail after ~5-10 minutes of billed cluster time: Runtime does not fit "
            "the image: Python 3.11.9 does not fit 17.3 LTS") in confirm
    # A change to the form asks again.
    c["num_workers"].value = 1
    assert widget.create_button.description == "Create" and widget.confirm.value == ""
    widget.create_button.click()
    assert widget.create_button.description == "Create anyway" and widget.cluster_id is None
    # The second, deliberate click creates it; the local start fails as the real one would.
    widget.create_button.click()
    assert widget.create_button.description == "Create" and widget.confirm.value == ""
    cluster_id = widget.wait(120)
    assert cluster_id is not None and widget.wait_ended(120)
    assert widget.cluster_info["state"] == "TERMINATED" and widget.error is not None
    assert_no_secret(widget, auth_registry.password)


@pytest.mark.docker
def test_a_private_registry_without_auth_is_flagged_before_create(
        shell, python311_image, auth_registry, registry, docker_client, docker_cleanup):
    # Pushed with Docker's own login (docker-py here), not %dcs_push: no username to go by.
    push_image(docker_client, python311_image, auth_registry.auth_config)
    widget = shell.run_line_magic("dcs_launch", f"--local --image {python311_image}")
    assert widget.controls["auth_mode"].value == "none"
    assert widget.controls["spark_version"].value == "15.4.x-scala2.12"  # the image's Python, by its tag
    problems = html.unescape(widget.problems.value)
    assert (f"Registry auth is None, but the registry {auth_registry.host} needs credentials (it refuses an "
            "anonymous pull of the image (HTTP 401))") in problems
    widget.create_button.click()
    assert widget.create_button.description == "Create anyway" and widget.cluster_id is None
    assert "billed cluster time: Registry auth is None" in html.unescape(widget.confirm.value)
    widget.controls["auth_mode"].value = "secret"  # choosing auth takes the warning away
    assert "Registry auth is None" not in html.unescape(widget.problems.value)
    # The same image in a registry that serves anyone: nothing to say.
    public = docker_cleanup.add(f"{registry.host}/{python311_image.split('/', 1)[1]}")
    docker_client.api.tag(python311_image, public.rsplit(":", 1)[0], "1")
    push_image(docker_client, public)
    open_registry = shell.run_line_magic("dcs_launch", f"--local --image {public}")
    assert "needs credentials" not in html.unescape(open_registry.problems.value)


def test_create_asks_again_before_sending_a_node_type_the_workspace_does_not_offer(ws, api):
    spec = ClusterSpec(spark_version="15.4.x-scala2.12", node_type_id="Standard_DS3_v2", num_workers=0,
                       docker_image={"url": PINNED})
    widget = LaunchWidget(ws, spec=spec, sleep=lambda s: None)
    reason = node_type_problem("Standard_DS3_v2", api.node_types)  # the one rule's own words
    assert reason is not None and reason in html.unescape(widget.problems.value)
    widget.create_button.click()
    assert api.requests_to("/clusters/create") == [] and widget.create_button.description == "Create anyway"
    assert f"Databricks would refuse this create request: {reason}" in html.unescape(widget.confirm.value)
    widget.create_button.click()
    assert widget.wait(30)
    assert len(api.requests_to("/clusters/create")) == 1
    assert widget.create_button.description == "Create" and widget.confirm.value == ""
    widget.close()


# -- the local workspace's clusters (issue 20.5, the form's half) -----------------------------------------


def test_a_local_form_lists_the_running_clusters_and_terminates_them(ws, api):
    """A cluster created by an earlier form (its widget gone with its output) can be stopped
    from a form opened later; the local form says that this kernel's clusters end with it."""
    earlier = ClusterSpec(cluster_name="dcs-test-earlier", spark_version="15.4.x-scala2.12", num_workers=0,
                          docker_image={"url": PINNED})
    running = ws.create_cluster(earlier)
    ended = ws.create_cluster(earlier.replace(cluster_name="dcs-test-ended"))
    ws.terminate_cluster(ended)
    widget = LaunchWidget(ws, image=PINNED, local=True)
    assert "Clusters created from this kernel are terminated when the kernel shuts down" in widget.target.value
    assert list(widget.listed) == [running]  # an ended cluster has nothing to terminate
    button = widget.listed[running]
    assert button.description == f"Terminate {running}" and not button.disabled
    assert f"dcs-test-earlier ({running}): PENDING, {PINNED}" in html.unescape(every_widget_state(widget))
    button.click()
    assert widget.wait_listed(30)
    assert [r.json for r in api.requests_to("/clusters/delete")] == [{"cluster_id": ended}, {"cluster_id": running}]
    assert button.disabled
    assert f"dcs-test-earlier ({running}): TERMINATED" in html.unescape(every_widget_state(widget))
    assert widget.cluster_id is None and not widget.create_button.disabled  # the form's own cluster is another
    remote = LaunchWidget(ws, image=PINNED)  # a Databricks workspace: its clusters are not the form's business
    assert remote.listed == {} and "kernel shuts down" not in remote.target.value
