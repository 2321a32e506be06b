"""One outcome block per cell (issue 24.1): the live widget's output becomes its static record,
the raised error says only what failed, the result is not shown a second time, and the launch
form leaves a masked record under it. Engine-free: scripted snapshots, a recorded display_pub."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from dcs_magic import BuildResult, ClusterSpec
from dcs_magic.jupyter.launch import LaunchWidget
from dcs_magic.jupyter.widgets import ProgressWidget, progress_sink
from dcs_magic.model.spec import BasicAuth, DockerImage

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
PINNED = "registry.example.com/team/app@sha256:" + "d" * 64
LITERAL = "hunter2-Literal-Registry-Password"

pytestmark = pytest.mark.usefixtures("no_databricks_config")


@pytest.fixture
def published(shell: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    """Every display_data / update_display_data the shell publishes: data, display id, update."""
    seen: list[dict[str, Any]] = []

    def publish(data: dict[str, Any], metadata: Any = None, source: Any = None, *, transient: Any = None,
                update: bool = False, **_: Any) -> None:
        seen.append({"data": data, "id": (transient or {}).get("display_id"), "update": update})

    monkeypatch.setattr(shell.display_pub, "publish", publish)
    yield seen


def failed_build_snapshot() -> dict[str, Any]:
    error = ("Step 2/2 : RUN exit 3 failed: The command returned a non-zero code: 3\n"
             "Full log: /tmp/ctx/.dcs/build-1.log\nLast output lines:\n    about to fail")
    return {"kind": "build", "title": "app", "status": "failed", "elapsed_s": 1.5, "failed_step": 2,
            "total_steps": 2, "steps": [{"n": 2, "instruction": "RUN exit 3"}], "error": error,
            "log_path": "/tmp/ctx/.dcs/build-1.log"}


def test_the_widget_output_becomes_the_record_and_the_model_closes(shell: Any, published: list) -> None:
    sink = progress_sink("build", "widget", title="app")
    assert isinstance(sink, ProgressWidget)
    [shown] = published
    assert WIDGET_MIME in shown["data"] and shown["id"] and not shown["update"]
    sink.close(failed_build_snapshot())
    [_, replaced] = published
    assert replaced["update"] and replaced["id"] == shown["id"]  # the same output, not a new one
    assert set(replaced["data"]) == {"text/plain", "text/html"}  # no widget left to be "not found"
    text = replaced["data"]["text/plain"]
    assert text.startswith("Build app: failed in 1.5s")
    assert "Failed at: Step 2/2 : RUN exit 3" in text and "about to fail" in text
    assert text.count("non-zero code: 3") == 1
    assert sink.recorded and sink.comm is None


def test_a_widget_displayed_by_hand_keeps_showing_the_final_state(shell: Any, published: list) -> None:
    sink = progress_sink("build", "widget", title="app", display=False)
    sink.close(failed_build_snapshot())
    assert published == [] and not sink.recorded and sink.status == "failed"


def test_the_error_under_a_record_is_one_line_without_the_hint_again() -> None:
    from dcs_magic.errors import BuildError, PushError
    from dcs_magic.jupyter.magics import _one_line

    build = BuildError("Step 3/3 : RUN make && exit 3 failed: The command returned a non-zero code: 3\n"
                       "Full log: /tmp/x.log\nLast output lines:\n    boom", step=3, hint="Fix the failing step")
    assert _one_line(build) == "BuildError: Step 3/3 failed (details above)"
    push = PushError("Push of 127.0.0.1:9/x:1 failed: connection refused", hint="Check the registry address")
    assert _one_line(push) == "PushError: Push of 127.0.0.1:9/x:1 failed (details above)"


def test_a_result_whose_record_the_cell_shows_is_not_shown_again(shell: Any, dcs_magics: Any,
                                                                 published: list) -> None:
    result = BuildResult("sha256:" + "a" * 64, ["x:1"], "0" * 64, 1.0, "/tmp/x.log", name="app")

    class Recorded:
        recorded = True

    assert dcs_magics._mark_recorded(Recorded(), result) is result
    assert shell.display_formatter.format(result) == ({}, {}) and published == []  # this cell: once
    shell.execution_count += 1
    shell.display_formatter.format(result)  # a later cell that shows `result`: its record
    [later] = published
    assert later["data"]["text/plain"].startswith("BuildResult(") and "dcs-record" in later["data"]["text/html"]


def test_the_launch_form_leaves_a_masked_record(shell: Any, ws: Any, api: Any, published: list) -> None:
    spec = ClusterSpec(spark_version="15.4.x-scala2.12", num_workers=0,
                       docker_image=DockerImage(PINNED, BasicAuth("robot", LITERAL)))
    api.script({"state": "PENDING", "state_message": "Pulling image"}, {"state": "RUNNING", "state_message": ""})
    widget = LaunchWidget(ws, spec=spec, sleep=lambda s: None)
    shell.display_formatter.format(widget)  # what the cell's value shows
    form, record = published[:2]
    assert WIDGET_MIME in form["data"] and set(record["data"]) == {"text/plain", "text/html"}
    assert record["data"]["text/plain"].startswith("Launch form: no cluster created")
    widget.create_button.click()
    cluster_id = widget.wait(30)
    assert cluster_id
    updates = [p for p in published if p["update"] and p["id"] == record["id"]]
    last = updates[-1]["data"]
    assert f"Launch: cluster {cluster_id} RUNNING" in last["text/plain"]
    assert "clusters/create JSON sent (passwords masked)" in last["text/plain"]
    assert f'href="{ws.cluster_url(cluster_id)}" target="_blank" rel="noopener"' in last["text/html"]
    assert LITERAL not in json.dumps(published) and '"password": "****"' in last["text/plain"]
    # Closing the form leaves only its record: the form's output is emptied.
    widget.close()
    assert widget.wait_ended(5)
    emptied = [p for p in published if p["update"] and p["id"] == form["id"]]
    assert emptied and emptied[-1]["data"] == {"text/plain": ""}


def test_keep_leaves_the_finished_widget_with_its_record_under_it(shell: Any, dcs_magics: Any,
                                                                  published: list) -> None:
    """`%config DcsMagics.finished_widget = 'keep'` (progress_sink(keep=True)): the widget stays,
    showing the final state, and the record fills the output under it."""
    shell.run_line_magic("config", "DcsMagics.finished_widget = 'keep'")
    assert dcs_magics.finished_widget == "keep"
    sink = progress_sink("build", "widget", title="app", keep=True)
    widget, placeholder = published
    assert WIDGET_MIME in widget["data"] and placeholder["data"] == {"text/plain": ""}
    sink.close(failed_build_snapshot())
    update = published[-1]
    assert update["update"] and update["id"] == placeholder["id"]
    assert update["data"]["text/plain"].startswith("Build app: failed")
    assert sink.recorded and sink.comm is not None and sink.status == "failed"


# -- the launch form leaves its record when its cluster ended, or on Done (issue 24.1) ---------


def _form_and_record(published: list) -> tuple[dict[str, Any], dict[str, Any]]:
    form, record = published[:2]
    assert WIDGET_MIME in form["data"] and set(record["data"]) == {"text/plain", "text/html"}
    return form, record


def _last(published: list, display_id: str) -> dict[str, Any]:
    return [p for p in published if p["id"] == display_id][-1]["data"]


def test_a_terminated_cluster_replaces_the_form_by_its_record(shell: Any, ws: Any, api: Any,
                                                              published: list) -> None:
    api.script({"state": "RUNNING"})
    widget = LaunchWidget(ws, spec=ClusterSpec(spark_version="15.4.x-scala2.12", num_workers=0,
                                               docker_image=DockerImage(PINNED)), sleep=lambda s: None)
    assert widget.finished == "record"
    shell.display_formatter.format(widget)
    form, record = _form_and_record(published)
    widget.create_button.click()
    cluster_id = widget.wait(30)
    assert _last(published, form["id"]) == form["data"]  # running: the form stays
    widget.terminate_button.click()
    assert widget.wait_ended(30)
    assert _last(published, form["id"]) == {"text/plain": ""}  # one block left: the record
    text = _last(published, record["id"])["text/plain"]
    assert text.startswith(f"Launch: cluster {cluster_id} TERMINATED") and "Note: terminated from this form" in text
    html = _last(published, record["id"])["text/html"]
    assert "--jp-error-color1" not in html  # asked for: not marked as a failure
    assert widget.create_button.comm is None and widget.comm is None  # the widgets are closed


def test_a_failed_start_leaves_the_record_with_its_diagnosis(shell: Any, ws: Any, api: Any,
                                                             published: list) -> None:
    api.script({"state": "PENDING"},
               {"state": "TERMINATED", "state_message": "Failed to pull image: manifest unknown",
                "termination_reason": {"code": "DOCKER_IMAGE_PULL_FAILURE", "type": "CLIENT_ERROR"}})
    widget = LaunchWidget(ws, image=PINNED, sleep=lambda s: None)
    shell.display_formatter.format(widget)
    form, record = _form_and_record(published)
    widget.create_button.click()
    widget.wait(30)
    assert widget.wait_ended(30)
    assert _last(published, form["id"]) == {"text/plain": ""}
    text = _last(published, record["id"])["text/plain"]
    assert "Error: " in text and "DOCKER_IMAGE_PULL_FAILURE" in text and "  Why: Cause" in text, text
    assert "Note:" not in text
    assert 'data-row="diagnosis"' in _last(published, record["id"])["text/html"]


def test_keep_keeps_the_form_of_an_ended_cluster_open(shell: Any, ws: Any, api: Any, published: list) -> None:
    api.script({"state": "PENDING"}, {"state": "ERROR", "state_message": "Spark failed",
                                      "termination_reason": {"code": "SPARK_STARTUP_FAILURE"}})
    widget = LaunchWidget(ws, image=PINNED, sleep=lambda s: None, finished="keep")
    shell.display_formatter.format(widget)
    form, record = _form_and_record(published)
    widget.create_button.click()
    widget.wait(30)
    assert widget.wait_ended(30)
    assert _last(published, form["id"]) == form["data"]  # still the live form: Create again
    assert not widget.create_button.disabled and widget.create_button.comm is not None
    assert "SPARK_STARTUP_FAILURE" in _last(published, record["id"])["text/plain"]
    with pytest.raises(ValueError, match="'record' or 'keep'"):
        LaunchWidget(ws, image=PINNED, finished="close")


def test_done_leaves_the_record_and_the_cluster_running(shell: Any, ws: Any, api: Any, published: list) -> None:
    api.script({"state": "RUNNING"})
    widget = LaunchWidget(ws, image=PINNED, sleep=lambda s: None, finished="keep")
    assert widget.done_button.description == "Done (leave the record)" and not widget.done_button.disabled
    shell.display_formatter.format(widget)
    form, record = _form_and_record(published)
    widget.create_button.click()
    cluster_id = widget.wait(30)
    widget.done_button.click()
    assert widget.wait_ended(5)
    assert _last(published, form["id"]) == {"text/plain": ""}
    text = _last(published, record["id"])["text/plain"]
    assert text.startswith(f"Launch: cluster {cluster_id} RUNNING")
    assert "Note: form closed with Done while the cluster was RUNNING; it kept running" in text
    assert api.requests_to("/clusters/delete") == []  # Done terminates nothing


def test_the_magic_passes_finished_widget_to_the_form(shell: Any, dcs_magics: Any) -> None:
    assert shell.run_line_magic("dcs_launch", "").finished == "record"
    shell.run_line_magic("config", "DcsMagics.finished_widget = 'keep'")
    assert shell.run_line_magic("dcs_launch", "").finished == "keep"


def test_the_records_diagnosis_masks_a_token_from_the_logs() -> None:
    from types import SimpleNamespace

    token = "ghp_" + "A1b2C3d4E5" * 4
    widget = LaunchWidget(None, image=PINNED)
    widget.diagnosis = SimpleNamespace(failed=True, lines=lambda: [  # type: ignore[assignment]
        "Cause (certain): the init script failed", f"  evidence init.log:3: export GH_TOKEN={token}"])
    record = widget.record()
    assert record.diagnosis[0] == "Cause (certain): the init script failed"
    assert token not in repr(record) and token not in record._repr_html_() and "export ****" in repr(record)
    widget.close()
