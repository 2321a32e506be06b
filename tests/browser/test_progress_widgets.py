"""The build/push progress widget in a real JupyterLab + Chromium (issues 11 and 12).

What a user sees and what the page loads: the dark theme's contrast of every text element
of a failed build and a failed push (computed, as numbers), the push total weighted by bytes,
the static record a notebook saved with JupyterLab's default settings (no widget state)
shows when reopened without a kernel, the widget code loaded once per page (also after a
reload), and the Stop button of a scripted background run. Stop on real foreground and --bg
builds: test_stop_builds.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest
from jupyterlab_driver import (
    THEME_PLUGIN,
    WIDGETS_PLUGIN,
    save_notebook,
    text_contrasts,
    wait_for_theme,
)
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]

OUTPUT = ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell >> nth={} >> .jp-OutputArea"
WIDGET = ".dcs-progress"
RECORD = ".dcs-record"
AA = 4.5  # WCAG 2 AA, normal text
SHOTS_DIR = Path("/tmp/dcs-browser-shots")  # as the `screenshot` fixture (that one shoots `page`)


def _dockerfile_cell(base: str, *run_steps: str) -> str:
    return "\n".join([f"%%dockerfile --base {base}", "FROM {{ base }}",
                      *(f"RUN {step}" for step in run_steps)]) + "\n"


def _assert_contrast(locator, what: str) -> int:
    """Every shown text element under `locator` has >= 4.5:1 contrast; returns how many."""
    results = text_contrasts(locator)
    low = [r for r in results if r["ratio"] < AA]
    assert not low, f"{what}: text below {AA}:1: {json.dumps(low, indent=1)}"
    return len(results)


def _scripted_push_cell(reference: str) -> str:
    """A push widget fed with push events of the engine's shape, left mid-push: two 10 kB
    layers pushed, 79 kB of a 280 kB layer sent (99 of 300 kB: 33%, by layers it would be 76%)."""
    return f"""
from dcs_magic.model.progress import PushState
from dcs_magic.jupyter.widgets import progress_sink
state = PushState({reference!r})
sink = progress_sink("push", "widget", title=state.reference)
for layer, size in (("aaaaaaaaaaaa", 10_000), ("bbbbbbbbbbbb", 10_000), ("cccccccccccc", 280_000)):
    state.apply({{"id": layer, "status": "Pushing", "progressDetail": {{"current": 0, "total": size}}}})
state.snapshot(elapsed_s=0.0)
state.apply({{"id": "aaaaaaaaaaaa", "status": "Pushed", "progressDetail": {{}}}})
state.apply({{"id": "bbbbbbbbbbbb", "status": "Pushed", "progressDetail": {{}}}})
state.apply({{"id": "cccccccccccc", "status": "Pushing", "progressDetail": {{"current": 79_000, "total": 280_000}}}})
sink.update(state.snapshot(elapsed_s=2.0))
"""


# -- dark theme: failed build and failed push ------------------------------------------------


@pytest.mark.docker
def test_failed_build_and_push_are_readable_in_the_dark_theme(
        page, notebook, lab_setting, screenshot, docker_client, docker_cleanup, busybox_image):
    tag = docker_cleanup.add("dcs-test/browser-dark:1")
    unreachable = docker_cleanup.add("127.0.0.1:9/dcs-test/browser-dark:1")  # nothing listens on :9
    docker_client.images.get(busybox_image).tag(*unreachable.rsplit(":", 1))
    lab_setting(THEME_PLUGIN, {"theme": "JupyterLab Dark"})
    run = notebook([
        "%load_ext dcs_magic\n%config DcsMagics.finished_widget = 'keep'",  # examined after the run
        _dockerfile_cell(busybox_image, "echo fine", "echo about-to-fail && exit 3"),
        f"try:\n    %dcs_build -t {tag}\nexcept Exception as exc:\n    build_error = exc",
        f"%dcs_push {unreachable}",
    ], expect_error=True)
    assert run.executed == [True, True, True, True]
    wait_for_theme(page, "JupyterLab Dark")
    assert page.evaluate("document.body.dataset.jpThemeLight") == "false"

    build = page.locator(OUTPUT.format(2)).locator(f'{WIDGET}[data-status="failed"]')
    push = page.locator(OUTPUT.format(3)).locator(f'{WIDGET}[data-status="failed"]')
    build.wait_for()
    push.wait_for()
    # The widgets are drawn with the dark theme's colours: --jp-layout-color1 is grey 900.
    assert build.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(33, 33, 33)"
    for widget, kind in ((build, "build"), (push, "push")):
        expect(widget.locator(".dcs-error")).to_be_visible()
        assert widget.locator(".dcs-error").get_attribute("role") == "alert"
        assert widget.locator(".dcs-badge").get_attribute("aria-live") == "polite"
        assert widget.locator(".dcs-badge").inner_text() == "failed"
        # The failure is marked by the theme's error colour on the border, not by red text.
        border = widget.locator(".dcs-error").evaluate("e => getComputedStyle(e).borderLeftColor")
        error_color = widget.evaluate(
            "e => { const p = document.createElement('span'); p.style.color = 'var(--jp-error-color1)';"
            " e.appendChild(p); const c = getComputedStyle(p).color; p.remove(); return c; }")
        assert border == error_color
        # Nothing keeps moving on a failed run (no "Preparing" bar animating).
        names = widget.locator(".dcs-bar-fill").evaluate_all(
            "els => els.map(e => getComputedStyle(e).animationName)")
        assert all(name == "none" for name in names), names
        checked = _assert_contrast(widget, f"failed {kind} widget")
        assert checked >= 5, checked
    assert "non-zero code: 3" in build.locator(".dcs-error-text").inner_text()
    assert build.locator(".dcs-step-label").inner_text() == "Step 3/3"  # not 4/4 with the LABEL step
    # The static records under the widgets: readable too, and say how each run ended.
    for index, kind in ((2, "build"), (3, "push")):
        record = page.locator(OUTPUT.format(index)).locator(RECORD)
        expect(record).to_have_attribute("data-status", "failed")
        assert record.get_attribute("role") == "alert"
        assert _assert_contrast(record, f"{kind} record") >= 2
    # The failure is shown once: the raised error under the widget is one line and its hint.
    error_text = page.locator(OUTPUT.format(3)).locator(".jp-RenderedText[data-mime-type="
                                                        "'application/vnd.jupyter.stderr']").inner_text()
    lines = [line for line in error_text.strip().splitlines() if line.strip()]
    assert lines[0].startswith(f"PushError: Push of {unreachable} failed") and len(lines) <= 2, lines
    push.scroll_into_view_if_needed()
    screenshot("dark-failed")


# -- push: the total bar by bytes -------------------------------------------------------------


@pytest.mark.docker
def test_push_widget_total_is_weighted_by_bytes(page, notebook, screenshot, registry, docker_client,
                                                docker_cleanup, busybox_image):
    reference = docker_cleanup.add(f"{registry.host}/dcs-test/browser-push:1")
    docker_client.images.get(busybox_image).tag(*reference.rsplit(":", 1))
    notebook([
        "%load_ext dcs_magic\n%config DcsMagics.finished_widget = 'keep'",  # examined after the run
        _scripted_push_cell(f"{registry.host}/dcs-test/weights:1"),
        f"result = %dcs_push {reference}",
    ])
    scripted = page.locator(OUTPUT.format(1)).locator(WIDGET)
    scripted.wait_for()
    total = scripted.locator(".dcs-total .dcs-bar")
    expect(total).to_have_attribute("aria-valuenow", "33")
    assert total.get_attribute("role") == "progressbar"
    assert scripted.locator(".dcs-total-pct").inner_text() == "33%"
    fill = scripted.locator(".dcs-total .dcs-bar-fill").evaluate("e => e.style.width")
    assert fill == "33%"  # 33.0% as the browser normalises it
    label = scripted.locator(".dcs-total-label").inner_text()
    assert label.startswith("2/3 layers, 99.0 kB / 300.0 kB, ") and label.endswith(" left"), label
    assert scripted.locator(".dcs-layer").count() == 3
    scripted.scroll_into_view_if_needed()
    screenshot("push-by-bytes")

    # A real push to the local registry ends full, pinned, with its record under it.
    pushed = page.locator(OUTPUT.format(2)).locator(f'{WIDGET}[data-status="done"]')
    pushed.wait_for()
    expect(pushed.locator(".dcs-total .dcs-bar")).to_have_attribute("aria-valuenow", "100")
    pinned = pushed.locator(".dcs-result-text").inner_text()
    assert re.fullmatch(rf"{re.escape(registry.host)}/dcs-test/browser-push@sha256:[0-9a-f]{{64}}", pinned)
    record = page.locator(OUTPUT.format(2)).locator(RECORD)
    expect(record).to_contain_text(f"Pinned: {pinned}")
    assert not pushed.locator(".dcs-stop").is_visible()  # nothing to stop any more


# -- a notebook saved with JupyterLab's defaults, reopened without a kernel --------------------


def _open_without_kernel(page, lab, path: str, n_cells: int) -> None:
    page.goto(lab.notebook_url(path))
    page.wait_for_function(
        f"() => document.querySelectorAll('.jp-NotebookPanel .jp-CodeCell').length === {n_cells}")
    no_kernel = page.locator(".jp-Dialog").get_by_role("button", name="No Kernel", exact=True)
    no_kernel.wait_for(timeout=15_000)
    no_kernel.click()
    page.wait_for_function("() => Array.from(document.querySelectorAll('.jp-StatusBar-TextItem'))"
                           ".some(e => /No Kernel/.test(e.textContent))")


@pytest.mark.docker
def test_reopened_notebook_without_widget_state_shows_each_outcome(
        page, browser, request, notebook, notebook_dir, jupyter_lab, lab_setting, registry,
        docker_client, docker_cleanup, busybox_image):
    lab_setting(WIDGETS_PLUGIN, {"saveState": False})  # JupyterLab's default
    tag = docker_cleanup.add(f"{registry.host}/dcs-test/browser-reopen:1")
    notebook([
        "%load_ext dcs_magic",
        _dockerfile_cell(busybox_image, "echo reopen > /reopen"),
        f"built = %dcs_build -t {tag}",
        f"pushed = %dcs_push {tag}",
        "print(built.image_id)\nprint(pushed.pinned)",
    ])
    image_id, pinned = page.locator(OUTPUT.format(4)).inner_text().split()
    assert image_id == docker_client.images.get(tag).id
    save_notebook(page)
    saved = nbformat.read(notebook_dir / "test.ipynb", as_version=4)
    assert "widgets" not in saved.metadata  # as a user with default settings saves it

    # Reopen a copy with no kernel at all: only what the file holds can be shown.
    nb = nbformat.read(notebook_dir / "test.ipynb", as_version=4)
    nb.metadata.pop("kernelspec", None)
    nb.metadata.pop("language_info", None)  # JupyterLab would start a kernel of that language
    copy = notebook_dir / "reopened.ipynb"
    nbformat.write(nb, copy)
    jupyter_lab.shutdown_kernels()
    # A fresh browser context, as a new visitor: nothing remembered from the run above.
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    request.addfinalizer(context.close)
    page = context.new_page()
    _open_without_kernel(page, jupyter_lab, f"{notebook_dir.name}/reopened.ipynb", 5)
    build_record = page.locator(OUTPUT.format(2)).locator(RECORD)
    push_record = page.locator(OUTPUT.format(3)).locator(RECORD)
    expect(build_record).to_contain_text(f"Image: {image_id}")
    expect(build_record).to_contain_text(re.compile(r"Build default: done in \d+(\.\d)?s"))
    expect(build_record).to_contain_text("Log: ")
    expect(push_record).to_contain_text(f"Pinned: {pinned}")
    expect(push_record).to_contain_text(f"Push {tag}: done")
    # The widgets themselves cannot be drawn without their state: the records are what remain.
    assert page.locator(WIDGET).count() == 0
    build_record.scroll_into_view_if_needed()
    SHOTS_DIR.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS_DIR / "test_reopened_notebook_without_widget_state-reopened.png"))
    # The text/plain twin is saved beside the HTML (for nbconvert, GitHub, terminals).
    texts = ["".join(o.get("data", {}).get("text/plain", "")) for cell in saved.cells
             for o in cell.get("outputs", [])]
    assert any(t.startswith("Build default: done in ") and f"Image: {image_id}" in t for t in texts)
    assert any(t.startswith(f"Push {tag}: done") and f"Pinned: {pinned}" in t for t in texts)


# -- the widget's code: once per page -------------------------------------------------------------


def test_widget_code_loads_once_per_page_also_after_a_reload(page, notebook, notebook_dir, screenshot):
    from dcs_magic.jupyter.widgets import asset_path, compact_source

    cells = ["%load_ext dcs_magic"] + [_scripted_push_cell(f"127.0.0.1:5000/dcs-test/once-{i}:1")
                                       for i in range(3)]
    notebook(cells)
    expect(page.locator(WIDGET)).to_have_count(3)
    expect(page.locator(".dcs-total-pct")).to_have_text(["33%", "33%", "33%"])
    # What is sent: the files without their comments and indentation.
    code_bytes = sum(len(compact_source(asset_path(name).read_text())) for name in ("progress.js", "progress.css"))
    loads = page.evaluate("() => [globalThis.__dcsMagicProgress.loads, globalThis.__dcsMagicProgress.loadedBytes]")
    assert loads == [1, code_bytes]
    assert page.locator("style[id^='dcs-progress-css-']").count() == 1

    # What the kernel sent: each widget's own code is the small loader, the code once.
    save_notebook(page)
    saved = json.loads((notebook_dir / "test.ipynb").read_text())
    states = [m["state"] for m in
              saved["metadata"]["widgets"]["application/vnd.jupyter.widget-state+json"]["state"].values()]
    loaders = [len(s["_esm"]) for s in states if s.get("_model_name") == "AnyModel" and "kind" in s]
    modules = [s for s in states if "js" in s and "hash" in s]
    assert len(loaders) == 3 and max(loaders) < 1500, loaders
    assert len(modules) == 1 and len(modules[0]["js"]) + len(modules[0]["css"]) == code_bytes

    # After a reload the page gets the widgets from the kernel again, and the code once.
    page.reload()
    expect(page.locator(WIDGET)).to_have_count(3, timeout=60_000)
    expect(page.locator(".dcs-total-pct")).to_have_text(["33%", "33%", "33%"])
    assert page.evaluate("() => globalThis.__dcsMagicProgress.loads") == 1
    screenshot("three-widgets-after-reload")


# -- Stop of a background run: the page messages the kernel, which calls the bound cancel ----------

_BACKGROUND_RUN = """
import threading
from dcs_magic.model.progress import BuildState
from dcs_magic.jupyter.widgets import progress_sink
state = BuildState("bg")
sink = progress_sink("build", "widget", title="bg", foreground=False, keep=True)
stopped = threading.Event()
sink.bind_cancel(stopped.set)  # what the pipeline does at the start of a --bg job

def run():  # a background job's loop: log lines until cancelled
    state.apply({"stream": "Step 1/1 : RUN sleep 600\\n"})
    for i in range(6000):
        if stopped.wait(0.1):
            state.cancel()
            break
        state.apply({"stream": f"tick {i}\\n"})
        sink.update(state.snapshot(elapsed_s=i / 10))
    sink.close(state.snapshot(elapsed_s=1.0))

threading.Thread(target=run, daemon=True).start()
"""


def test_stop_button_of_a_background_run_calls_the_bound_cancel(page, notebook, screenshot):
    notebook(["%load_ext dcs_magic", _BACKGROUND_RUN, "print('the kernel is idle')"])
    widget = page.locator(OUTPUT.format(1)).locator(WIDGET)
    expect(widget.locator(".dcs-log-summary")).to_have_text(re.compile(r"Log: ([2-9]|\d\d+) lines"))
    stop = widget.get_by_role("button", name="Stop")
    stop.click()
    expect(widget).to_have_attribute("data-status", "cancelled", timeout=10_000)
    assert widget.locator(".dcs-badge").inner_text() == "cancelled"  # not "failed: Cancelled"
    assert not stop.is_visible()
    # The record under the widget was filled in from the job's thread, in this cell.
    expect(page.locator(OUTPUT.format(1)).locator(RECORD)).to_contain_text("Build bg: cancelled")
    widget.scroll_into_view_if_needed()
    screenshot("background-stopped")
