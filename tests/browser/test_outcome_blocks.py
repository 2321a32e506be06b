"""One outcome block per cell (issue 24.1) and links in outputs (24.9), in a real JupyterLab and
Notebook 7 with Chromium.

One notebook runs once in JupyterLab: a build that succeeds, `%dcs_check` of a busybox image
(it fails several checks), a build that fails. Each build's widget is replaced by its static
record when it ends: the cell shows the record once (the returned BuildResult is not shown
again), the failure's error once (the raised error is one line that says what failed), the
log as a link; the check report puts failures first and folds the passed checks. The notebook,
saved as JupyterLab saves it by default (no widget state), is reopened without a kernel in
JupyterLab and in Notebook 7, light and dark: each outcome once, no "Error displaying widget",
every text of the records readable (WCAG AA).
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from jupyterlab_driver import (
    THEME_PLUGIN,
    WIDGETS_PLUGIN,
    save_notebook,
    set_lab_setting,
    text_contrasts,
    wait_for_theme,
)
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.docker, pytest.mark.timeout(300)]

OUTPUT = ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell >> nth={} >> .jp-OutputArea"
RECORD = ".dcs-record"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
SHOTS_DIR = Path("/tmp/dcs-browser-shots")
AA = 4.5


def _dockerfile(name: str, base: str, step: str) -> str:
    return f"%%dockerfile {name} --base {base} --quiet\nFROM {{{{ base }}}}\nRUN {step}\n"


def _open_without_kernel(page, url: str, n_cells: int) -> None:
    """Open URL (a notebook without kernelspec) and choose No Kernel in the dialog."""
    page.goto(url)
    page.wait_for_function(
        f"() => document.querySelectorAll('.jp-NotebookPanel .jp-CodeCell').length === {n_cells}")
    no_kernel = page.locator(".jp-Dialog").get_by_role("button", name="No Kernel", exact=True)
    no_kernel.wait_for(timeout=30_000)
    no_kernel.click()
    expect(page.locator(".jp-Dialog")).to_have_count(0, timeout=15_000)


def _assert_one_block_each(page, where: str, image_id: str) -> None:
    ok, check, bad = (page.locator(OUTPUT.format(i)) for i in (2, 4, 5))
    expect(ok.locator(RECORD)).to_have_count(1)
    expect(ok.locator(RECORD)).to_contain_text(f"Image: {image_id}")
    assert ok.locator(".jp-OutputArea-output").count() == 1, f"{where}: {ok.inner_text()}"
    expect(bad.locator(RECORD)).to_have_count(1)
    # (Not by data-* attributes: a reopened notebook is untrusted, its HTML sanitized.)
    expect(bad.locator(RECORD)).to_contain_text("Build bad: failed in ")
    shown = bad.inner_text()
    assert shown.count("non-zero code: 3") == 1, f"{where}: {shown}"
    assert shown.count("failing-42") == 1, f"{where}: {shown}"  # the step's last output line, in the record
    errors = [line for line in bad.locator("[data-mime-type='application/vnd.jupyter.stderr']").inner_text()
              .splitlines() if line.strip()]
    assert errors == ["BuildError: Step 2/2 failed (details above)"], f"{where}: {errors}"
    for record in (ok.locator(RECORD), bad.locator(RECORD)):
        # A path relative to the notebook: the front-end resolves it to the server's file (and
        # opens it in a tab when clicked).
        href = record.locator("a", has_text=".log").get_attribute("href") or ""
        assert re.search(r"/files/(?:[^?]*/)?dcs-build/(ok|bad)/\.dcs/build-[^/?]+\.log", href), f"{where}: {href}"
    # Failures first; the passed checks folded into one line.
    first_mark = check.locator(".dcs-mark").first.inner_text()
    assert first_mark.endswith(("FAIL", "WARN")), f"{where}: {first_mark}"
    passed = check.locator("details.dcs-check-passed")
    expect(passed.locator("summary")).to_have_text(re.compile(r"\d+ checks? passed"))
    assert passed.get_attribute("open") is None
    assert page.get_by_text("Error displaying widget").count() == 0, where
    assert page.get_by_text("model not found").count() == 0, where
    for record in (ok.locator(RECORD), bad.locator(RECORD)):
        low = [r for r in text_contrasts(record) if r["ratio"] < AA]
        assert not low, f"{where}: text below {AA}:1: {low}"


def test_each_outcome_once_live_and_reopened_in_lab_and_notebook7(
        page, browser, request, notebook, notebook_dir, jupyter_lab, lab_setting, docker_client,
        docker_cleanup, busybox_image, tmp_path_factory):
    from test_examples_in_lab import start_notebook7

    lab_setting(WIDGETS_PLUGIN, {"saveState": False})  # JupyterLab's default
    ok_tag = docker_cleanup.add(docker_cleanup.unique("browser-outcome-ok") + ":1")
    bad_tag = docker_cleanup.add(docker_cleanup.unique("browser-outcome-bad") + ":1")
    cells = [
        "%load_ext dcs_magic",
        _dockerfile("ok", busybox_image, "echo fine > /fine"),
        f"%dcs_build ok -t {ok_tag}",
        _dockerfile("bad", busybox_image, "echo failing-$((6*7)) && exit 3"),
        f"%dcs_check {busybox_image}",
        f"%dcs_build bad -t {bad_tag}",
    ]
    run = notebook(cells, expect_error=True)
    assert run.executed == [True] * len(cells)
    image_id = docker_client.images.get(ok_tag).id
    _assert_one_block_each(page, "live, JupyterLab light", image_id)
    save_notebook(page)
    saved = nbformat.read(notebook_dir / "test.ipynb", as_version=4)
    for index in (2, 5):
        assert not any(WIDGET_MIME in o.get("data", {}) for o in saved.cells[index].outputs)
        assert sum(o.output_type == "display_data" for o in saved.cells[index].outputs) == 1

    # The saved file, without kernelspec (nothing to start), reopened by new visitors.
    nb = nbformat.read(notebook_dir / "test.ipynb", as_version=4)
    nb.metadata.pop("kernelspec", None)
    nb.metadata.pop("language_info", None)
    jupyter_lab.shutdown_kernels()
    nb7 = start_notebook7(tmp_path_factory.mktemp("notebook7"))
    request.addfinalizer(nb7.stop)
    nbformat.write(nb, notebook_dir / "reopened.ipynb")
    nbformat.write(nb, nb7.root / "reopened.ipynb")
    SHOTS_DIR.mkdir(parents=True, exist_ok=True)
    views = [("lab", "light"), ("lab", "dark"), ("nb7", "light"), ("nb7", "dark")]
    for ui, theme in views:
        server = jupyter_lab if ui == "lab" else nb7
        name = "JupyterLab Dark" if theme == "dark" else "JupyterLab Light"
        if ui == "lab":
            lab_setting(THEME_PLUGIN, {"theme": name})
        else:
            set_lab_setting(nb7, THEME_PLUGIN, {"theme": name})
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        try:
            view = context.new_page()
            url = (server.notebook_url(f"{notebook_dir.name}/reopened.ipynb") if ui == "lab"
                   else f"{nb7.url}/notebooks/reopened.ipynb")
            _open_without_kernel(view, url, len(cells))
            wait_for_theme(view, name)
            _assert_one_block_each(view, f"reopened, {ui} {theme}", image_id)
            view.locator(OUTPUT.format(5)).scroll_into_view_if_needed()
            view.screenshot(path=str(SHOTS_DIR / f"outcome-blocks-{ui}-{theme}.png"))
        finally:
            context.close()
