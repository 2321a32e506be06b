"""The launch form and the Python-made HTML in a real JupyterLab + Chromium (issues 11 and 13).

- Save JSON writes a new file that keeps `{{secrets/...}}` references (read back from disk),
  never the --spec file unless asked; a secret typed in the env-vars box is taken out before
  the notebook (widget state included) is saved.
- Against the local preflight workspace: Create stays disabled while the cluster it made is
  pending or running, Terminate stops it, Create comes back (`finished_widget = 'keep'`); no
  "Open cluster" link. With the default ('record'), a start that fails leaves the record in the
  form's place, with the diagnosis; a terminated cluster's record says it was terminated here.
- The check table, the Dockerfile view, its lint box and a magic's short error in the light
  and the dark theme: every text's computed contrast is >= 4.5:1 (WCAG AA), asserted as numbers.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest
from jupyterlab_driver import (
    save_notebook,
    set_lab_theme,
    text_contrast,
    wait_for_theme,
)
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser]

OUTPUT = ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell >> nth={} >> .jp-OutputArea"
PINNED_IMAGE = "127.0.0.1:5000/dcs-test/app@sha256:" + "ab" * 32
WCAG_AA = 4.5


def _spec(image: str, **extra: Any) -> dict[str, Any]:
    return {"cluster_name": "dcs-test-browser-launch", "spark_version": "15.4.x-scala2.12",
            "node_type_id": "local", "num_workers": 0, "autotermination_minutes": 60,
            "data_security_mode": "DATA_SECURITY_MODE_DEDICATED", "docker_image": {"url": image}, **extra}


def _label(text: str) -> re.Pattern[str]:
    """A button's accessible name: exactly `text` after its icon (a Font Awesome glyph)."""
    return re.compile(rf"^\W*{re.escape(text)}$")


def _widget_values(saved: dict) -> list[Any]:
    store = saved["metadata"]["widgets"]["application/vnd.jupyter.widget-state+json"]
    return [model["state"].get("value") for model in store["state"].values()]


@pytest.mark.docker
@pytest.mark.timeout(180)
def test_save_json_keeps_secret_references_and_typed_secrets_are_not_saved(
        page, notebook, notebook_dir, screenshot):
    spec = _spec(PINNED_IMAGE, spark_env_vars={"MY_API_TOKEN": "{{secrets/dcs-test/api-token}}"})
    spec["docker_image"]["basic_auth"] = {"username": "robot", "password": "{{secrets/dcs-test/registry}}"}
    original = json.dumps(spec, indent=2)
    (notebook_dir / "cluster.json").write_text(original)
    notebook(["%load_ext dcs_magic", "%dcs_launch --local --spec cluster.json"])
    form = page.locator(OUTPUT.format(1))
    expect(form).to_contain_text("Workspace: local preflight workspace (http://127.0.0.1:")
    preview = form.locator(".widget-html pre", has_text='"spark_version"')
    expect(preview).to_contain_text('"password": "{{secrets/dcs-test/registry}}"')
    # Labels line up (one width, in pixels) and the pinned image fits its field.
    labels = ["Cluster name", "Runtime", "Node type", "Workers", "Auto-terminate (min)", "Image", "Registry auth"]
    widths = {round(form.locator(".widget-label", has_text=re.compile(f"^{re.escape(n)}$")).first
                    .evaluate("e => e.getBoundingClientRect().width")) for n in labels}
    assert len(widths) == 1 and min(widths) > 100
    image = form.get_by_label("Image", exact=True)
    expect(image).to_have_value(PINNED_IMAGE)
    assert image.evaluate("e => e.scrollWidth <= e.clientWidth && e.scrollHeight <= e.clientHeight"), \
        "the pinned image is cut off"
    # Every button label and the export choice fit, uncut (issue 24.8: "Check worksp...").
    for button in form.locator("button.jupyter-button").all():
        assert button.evaluate("e => e.scrollWidth <= e.clientWidth"), button.inner_text()
    export = form.locator("select").filter(has_text="Asset bundle (YAML)")
    assert export.evaluate("""e => { const c = document.createElement('canvas').getContext('2d');
        const s = getComputedStyle(e); c.font = s.font;
        return c.measureText(e.options[e.selectedIndex].text).width + 24 <= e.clientWidth; }"""), \
        "'Asset bundle (YAML)' is cut"

    # Save JSON: a new file by default, holding the references exactly as the spec had them.
    save_to = form.get_by_label("Save to")
    expect(save_to).to_have_value("cluster.saved.json")
    form.get_by_role("button", name=_label("Save JSON")).click()
    expect(form).to_contain_text("Saved cluster.saved.json")
    assert json.loads((notebook_dir / "cluster.saved.json").read_text()) == spec
    assert "****" not in (notebook_dir / "cluster.saved.json").read_text()
    # Onto the --spec file only with the explicit choice.
    save_to.fill("cluster.json")
    form.get_by_role("button", name=_label("Save JSON")).click()
    expect(form).to_contain_text("tick 'Overwrite an existing file'")
    assert (notebook_dir / "cluster.json").read_text() == original

    # A literal secret typed into the env vars box leaves the box (and so widget state) at once.
    literal = f"ghp-{secrets.token_hex(16)}"
    form.get_by_role("button", name="Show init scripts, Spark conf, env vars, tags").click()
    env = form.get_by_label("Env vars")
    expect(env).to_have_value("MY_API_TOKEN={{secrets/dcs-test/api-token}}")
    env.fill(f"MY_API_TOKEN={{{{secrets/dcs-test/api-token}}}}\nGH_TOKEN={literal}")
    env.blur()
    expect(form).to_contain_text("the value of GH_TOKEN looks like a secret")
    expect(env).to_have_value(re.compile(r"^MY_API_TOKEN=\{\{secrets/dcs-test/api-token\}\}\n# GH_TOKEN="))
    assert literal not in env.input_value() and literal not in page.content()
    env.scroll_into_view_if_needed()
    screenshot("launch-form-secret-taken-out")

    save_notebook(page)
    text = (notebook_dir / "test.ipynb").read_text()
    assert literal not in text
    values = [v for v in _widget_values(json.loads(text)) if isinstance(v, str)]
    assert any(v.startswith("MY_API_TOKEN={{secrets/dcs-test/api-token}}\n# GH_TOKEN=") for v in values)


KERNEL_STATES_CELL = """import json, ipywidgets, dcs_magic
from pathlib import Path
Path("kernel-widgets.json").write_text(json.dumps({"dcs_magic": dcs_magic.__file__,
    "states": ipywidgets.Widget.get_manager_state(drop_defaults=False)}, default=str))"""


@pytest.mark.timeout(240)
def test_store_as_secret_sends_the_password_once_and_no_saved_state_holds_it(
        page, notebook, notebook_dir, screenshot):
    """The launch form's password box (a SecretInput): typed, Store as secret puts the password
    into the local workspace's secret store and the preview sends its reference. What was typed,
    stored or only left in the box (the focus gone elsewhere, Store never clicked), is in no
    kernel-side widget state and not in the notebook saved with widget state."""
    import dcs_magic
    from dcs_magic.adapters.secret_store import SecretStore

    password = f"Pw-{secrets.token_hex(12)}"  # made up; looked for wherever it must not be
    left_typed = f"Pw-left-{secrets.token_hex(12)}"  # typed, never stored
    key = f"browser-{secrets.token_hex(4)}"
    notebook(["%load_ext dcs_magic", f"%dcs_launch --local --image {PINNED_IMAGE} --registry-auth basic",
              KERNEL_STATES_CELL])
    kernel_dump = notebook_dir / "kernel-widgets.json"
    # The kernel runs the code under test (the Jupyter server and its kernels inherit PYTHONPATH).
    assert json.loads(kernel_dump.read_text())["dcs_magic"] == dcs_magic.__file__
    form = page.locator(OUTPUT.format(1))
    expect(form).to_contain_text("Workspace: local preflight workspace (http://127.0.0.1:")
    form.get_by_label("key", exact=True).fill(key)
    box = form.get_by_label("Password to store")  # the label is tied to the native input
    expect(box).to_have_attribute("type", "password")
    expect(box).to_have_attribute("autocomplete", "off")
    box.fill(password)
    form.get_by_role("button", name="Store as secret").click()

    reference = f"{{{{secrets/dcs-registry/{key}}}}}"
    expect(form).to_contain_text(f"Stored dcs-registry/{key} on ")
    preview = form.locator(".widget-html pre", has_text='"docker_image"')
    expect(preview).to_contain_text(f'"password": "{reference}"')
    expect(box).to_have_value("")
    assert SecretStore().resolve("dcs-registry", key) == password.encode()
    assert password not in page.content()
    _assert_readable("the password box", text_contrast(form.locator(".dcs-secret-input").locator("label, button")), 2)
    form.locator(".widget-html", has_text=f"Stored dcs-registry/{key}").scroll_into_view_if_needed()
    screenshot("store-as-secret")
    # Typed and left there: the focus moves on (Tab to the button), Store is never clicked.
    box.fill(left_typed)
    box.press("Tab")
    expect(form.get_by_role("button", name="Store as secret")).to_be_focused()
    expect(box).to_have_value(left_typed)  # still in the page's box, and only there

    # The kernel's widget states, taken again now (the third cell run once more).
    kernel_dump.unlink()
    page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell >> nth=2 >> .jp-InputPrompt").click()
    page.keyboard.press("Shift+Enter")
    kernel = _json_when_written(page, kernel_dump)
    states = kernel["states"]["state"]
    boxes = [m["state"] for m in states.values() if m["state"].get("label") == "Password to store"]
    assert len(boxes) == 1 and "value" not in boxes[0]  # the SecretInput is there, with no value
    assert password not in json.dumps(kernel) and left_typed not in json.dumps(kernel)

    save_notebook(page)
    text = (notebook_dir / "test.ipynb").read_text()
    saved = json.loads(text)["metadata"]["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    assert any(m["state"].get("label") == "Password to store" for m in saved.values())  # saved with widget state
    assert any(reference in str(v) for v in _widget_values(json.loads(text)))
    assert password not in text and left_typed not in text


def _json_when_written(page: Any, path: Any, timeout_s: float = 60.0) -> dict[str, Any]:
    """The JSON a cell writes to `path`, once the file is there and whole."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return json.loads(path.read_text())
        except (FileNotFoundError, ValueError):
            assert time.monotonic() < deadline, f"{path.name} was not written within {timeout_s:.0f}s"
            page.wait_for_timeout(200)


@pytest.fixture
def pushed_base(dcs_base_image: str, registry: Any, docker_client: Any, docker_cleanup: Any) -> Iterator[str]:
    """The DCS base image pushed to the plain local registry, pinned by its digest."""
    repo = f"{registry.host}/dcs-test-launch-form"
    docker_client.api.tag(dcs_base_image, repo, "1")
    docker_cleanup.add(f"{repo}:1")
    events = list(docker_client.api.push(repo, tag="1", stream=True, decode=True))
    assert not [e for e in events if "error" in e], events
    digest = next(e["aux"]["Digest"] for e in events if "Digest" in (e.get("aux") or {}))
    yield f"{repo}@{digest}"


@pytest.mark.docker
@pytest.mark.timeout(600)
def test_create_is_disabled_while_the_cluster_runs_and_terminate_stops_it(
        page, notebook, notebook_dir, screenshot, pushed_base, docker_client):
    from dcs_magic.preflight import LABEL

    (notebook_dir / "cluster.json").write_text(json.dumps(_spec(pushed_base)))
    # The form stays open when its cluster ended (Create again), its record under it.
    notebook(["%load_ext dcs_magic\n%config DcsMagics.finished_widget = 'keep'", "%dcs_launch --local --spec cluster.json"])
    form = page.locator(OUTPUT.format(1))
    create = form.get_by_role("button", name=_label("Create"))
    terminate = form.get_by_role("button", name=_label("Terminate"))
    expect(create).to_be_enabled()
    expect(terminate).to_be_disabled()
    create.click()
    expect(create).to_be_disabled()
    state = form.locator(".widget-html", has_text=re.compile(r"^RUNNING \d{4}-\d{6}-"))
    expect(state).to_be_visible(timeout=300_000)
    cluster_id = re.search(r"RUNNING (\S+)", state.inner_text())[1]
    # Still running: a second Create would make a duplicate, so it stays disabled.
    expect(create).to_be_disabled()
    expect(terminate).to_be_enabled()
    timeline = form.locator(".dcs-timeline li")
    event_types = "() => [...document.querySelectorAll('.dcs-timeline li')].map(e => e.textContent.split(' ')[1])"
    assert page.evaluate(event_types) == ["CREATING", "RUNNING"]  # the local workspace's events, as they came
    assert form.get_by_role("link", name=re.compile("Open cluster")).count() == 0  # no page behind a token
    assert docker_client.api.containers(filters={"label": f"{LABEL}={cluster_id}"}) != []
    form.scroll_into_view_if_needed()
    screenshot("launch-form-running")

    terminate.click()
    expect(form).to_contain_text("terminated from this form", timeout=120_000)
    expect(create).to_be_enabled()
    expect(terminate).to_be_disabled()
    expect(timeline).to_have_count(3)
    assert page.evaluate(event_types) == ["CREATING", "RUNNING", "TERMINATING"]
    assert docker_client.api.containers(all=True, filters={"label": f"{LABEL}={cluster_id}"}) == []
    screenshot("launch-form-terminated")


# -- contrast in the light and dark themes ---------------------------------------------------


@pytest.fixture(params=["light", "dark"])
def theme(request: pytest.FixtureRequest, jupyter_lab: Any) -> Iterator[str]:
    set_lab_theme(jupyter_lab, request.param)
    yield request.param
    set_lab_theme(jupyter_lab, "light")


def _assert_readable(what: str, measured: list[dict[str, Any]], minimum_count: int) -> None:
    """Every measured text reaches WCAG AA; the numbers are in the failure message."""
    assert len(measured) >= minimum_count, f"{what}: only {len(measured)} elements measured"
    low = [(round(m["ratio"], 2), m["color"], m["text"]) for m in measured if m["ratio"] < WCAG_AA]
    assert low == [], f"{what}: contrast below {WCAG_AA}:1: {low}"


@pytest.mark.docker
@pytest.mark.timeout(240)
def test_check_table_dockerfile_and_errors_are_readable(page, notebook, screenshot, theme, busybox_image):
    notebook([
        "%load_ext dcs_magic",
        ("%%dockerfile demo --base dcs-test/busybox:1\n"
         "# built in the browser test\n"
         "FROM {{ base }}\n"
         "ARG GREETING=hello\n"
         'RUN echo "$GREETING" > /greeting.txt && ls -l /tmp | wc -l\n'
         'CMD ["sh"]\n'),
        f"%dcs_check {busybox_image}",
        "%dcs_build nothing-here -t dcs-test/never:1",
    ], expect_error=True)
    wait_for_theme(page, theme)

    dockerfile = page.locator(OUTPUT.format(1))
    tokens = dockerfile.locator(".dcs-highlight pre span").filter(has_text=re.compile(r"\S"))
    measured = text_contrast(tokens)
    _assert_readable("Dockerfile tokens", measured, 15)
    assert len({m["color"] for m in measured}) >= 5  # highlighted: keywords, strings, comments...
    _assert_readable("summary and lint box", text_contrast(
        dockerfile.locator(".dcs-summary, .dcs-lint b, .dcs-lint li, .dcs-lint code")), 4)
    dockerfile.scroll_into_view_if_needed()
    screenshot(f"dockerfile-{theme}")

    table = page.locator(OUTPUT.format(2)).locator(".dcs-check")
    marks = table.locator("td.dcs-mark")
    # Failures first; the passed checks folded into one line (issue 24.1), opened to be measured.
    assert marks.first.inner_text().split()[-1] == "FAIL"
    table.locator("details.dcs-check-passed > summary").click()
    assert {t.split()[-1] for t in marks.all_inner_texts()} == {"ok", "FAIL", "WARN"}
    _assert_readable("check table", text_contrast(table.locator("p, th, td, td code, summary")), 12 * 4)
    table.scroll_into_view_if_needed()
    screenshot(f"check-table-{theme}")

    error = page.locator(OUTPUT.format(3)).locator("pre")
    expect(error).to_contain_text("ContextError: Build context 'nothing-here' has no Dockerfile")
    assert page.locator(OUTPUT.format(3)).locator(".dcs-progress").count() == 0  # no widget drawn
    _assert_readable("short error", text_contrast(error), 1)
    error.scroll_into_view_if_needed()
    screenshot(f"error-{theme}")


@pytest.mark.docker
@pytest.mark.timeout(600)
def test_create_asks_again_before_a_start_it_can_see_fails(
        page, notebook, notebook_dir, screenshot, pushed_base, docker_client, theme):
    """Issue 20.4 as a user meets it: a 3.11 image on a 3.12 runtime is flagged before Create;
    the first click sends nothing and says what sending it costs ("Create anyway"), readable in
    both themes; fixing the runtime puts Create back, and the second form lists the cluster."""
    from dcs_magic.preflight import LABEL

    (notebook_dir / "cluster.json").write_text(json.dumps(_spec(pushed_base, spark_version="17.3.x-scala2.13")))
    notebook(["%load_ext dcs_magic", "%dcs_launch --local --spec cluster.json"])
    wait_for_theme(page, theme)
    form = page.locator(OUTPUT.format(1))
    expect(form).to_contain_text("Runtime does not fit the image", timeout=60_000)
    create = form.get_by_role("button", name=_label("Create"))
    create.click()
    anyway = form.get_by_role("button", name=_label("Create anyway"))
    expect(anyway).to_be_visible()
    note = form.get_by_role("alert").filter(has_text="billed cluster time")
    expect(note).to_be_visible()
    assert docker_client.api.containers(all=True, filters={"label": LABEL}) == []  # nothing was sent
    _assert_readable("the warning and its note", text_contrast(form.get_by_role("alert")), 2)
    _assert_readable("the Create anyway button", text_contrast(anyway), 1)
    note.scroll_into_view_if_needed()
    screenshot(f"create-anyway-{theme}")

    expect(form).to_contain_text("Databricks delivers the driver and init-script logs here")
    if theme == "dark":
        # Sent anyway, the start fails as flagged; the form looks up why (`dcs why`: the
        # termination reason, events and delivered logs), then leaves its record in its place
        # (the default finished_widget), diagnosis included, readable in the dark theme.
        anyway.click()
        record = form.locator(".dcs-record")
        expect(form.locator(".dcs-launch")).to_have_count(0, timeout=240_000)
        expect(record).to_have_count(1)
        expect(record).to_contain_text("Why: Cause (certain)")
        expect(record).to_contain_text("caught before a start by: %dcs_check")
        expect(record).to_contain_text("Error: ")
        _assert_readable("the record and its diagnosis", text_contrast(record.locator("div, li")), 5)
        record.scroll_into_view_if_needed()
        screenshot("why-dark")
        return  # the fix and the start below are the same in both themes: run once
    # The fix: a runtime that runs the image's Python. Create is Create again, and sends.
    runtime = form.get_by_label("Runtime")
    runtime.select_option(label=runtime.locator("option", has_text="15.4 LTS").first.inner_text())
    expect(form.get_by_role("button", name=_label("Create"))).to_be_visible()
    expect(form).not_to_contain_text("Runtime does not fit the image")
    form.get_by_role("button", name=_label("Create")).click()
    running = form.locator(".widget-html", has_text=re.compile(r"^RUNNING "))
    ended = form.locator(".dcs-record[data-state='TERMINATED'], .dcs-record[data-state='ERROR']")
    expect(running.or_(ended).first).to_be_visible(timeout=240_000)
    assert ended.count() == 0, f"the start failed: {form.locator('.dcs-record').inner_text()}"
    cluster_id = re.search(r"RUNNING (\S+)", form.inner_text())[1]
    form.get_by_role("button", name=_label("Terminate")).click()
    # Terminated here: the record replaces the form and says so.
    expect(form.locator(".dcs-record")).to_contain_text("Note: terminated from this form", timeout=120_000)
    expect(form.locator(".dcs-launch")).to_have_count(0)
    assert docker_client.api.containers(all=True, filters={"label": f"{LABEL}={cluster_id}"}) == []


OUTDATED_CELL = '''from dcs_magic.model.drift import BaseDrift, Change, OutdatedReport
OLD, NEW = "sha256:" + "1" * 64, "sha256:" + "2" * 64
OutdatedReport("nb.dcs.lock.json", [
    BaseDrift("app", "r/base:1", "moved", recorded=OLD, current=NEW,
              changes=[Change("Python", "3.11.9", "3.12.3", "18 LTS runs 3.12"), Change("created", "a", "b", matters=False)],
              update="dcs build nb.ipynb -t r/app:1 --push --pull"),
    BaseDrift("tools", "r/tools:1", "current", recorded=OLD, current=OLD),
    BaseDrift("other", "r/other:1", "unreachable", recorded=OLD, notes=["cannot connect (Connection refused)"])])'''


@pytest.mark.timeout(180)
def test_outdated_report_is_readable(page, notebook, screenshot, theme):
    """`%dcs_outdated`'s report (issue 21.5) in both themes: every text reaches WCAG AA."""
    notebook([OUTDATED_CELL])
    wait_for_theme(page, theme)
    report = page.locator(OUTPUT.format(0)).locator(".dcs-outdated")
    expect(report).to_contain_text("update: dcs build nb.ipynb")
    _assert_readable("outdated report", text_contrast(report.locator("p, b, li, code")), 8)
    report.scroll_into_view_if_needed()
    screenshot(f"outdated-{theme}")
