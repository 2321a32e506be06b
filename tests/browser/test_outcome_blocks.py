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

One more notebook runs in Notebook 7 with the dark theme (items 3, 4 and 6 there; JupyterLab has
them in both themes in test_widgets / test_progress_widgets, test_run_states_in_lab and
test_keyboard_access): a three-step busybox build (the running step's time ticks, no LABEL
step, 3 steps), `%dcs_run` against the test Clusters API (its states as they come), and two
launch forms operated by keyboard: one terminated (its record replaces it), one closed with
Done while its cluster runs; the focus lands on the cell each time. Saved, no output refers to
a widget; reopened without a kernel in Notebook 7 (light) and JupyterLab (dark): each record
once, no "model not found", readable.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import nbformat
import pytest
from jupyterlab_driver import (
    THEME_PLUGIN,
    WIDGETS_PLUGIN,
    run_all_cells,
    save_notebook,
    set_lab_setting,
    text_contrasts,
    wait_for_theme,
    write_notebook,
)
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.docker, pytest.mark.timeout(300)]

OUTPUT = ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell >> nth={} >> .jp-OutputArea"
RECORD = ".dcs-record"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
SHOTS_DIR = Path("/tmp/dcs-browser-shots")
AA = 4.5


@pytest.fixture(scope="module")
def notebook7(tmp_path_factory: pytest.TempPathFactory):
    """One Notebook 7 server for this module's tests (each test shuts its kernels down)."""
    from test_examples_in_lab import start_notebook7

    server = start_notebook7(tmp_path_factory.mktemp("notebook7"))
    yield server
    server.stop()


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
        page, browser, notebook, notebook_dir, jupyter_lab, lab_setting, docker_client,
        docker_cleanup, busybox_image, notebook7):
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
    nb7 = notebook7
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


# -- Notebook 7, dark: steps, run states, keyboard; the launch forms' records reopened -----------

_RUN_SEEN_JS = """() => { const el = document.querySelector('.dcs-run');
    return el ? [el.dataset.status, [...el.querySelectorAll('li b')].map(b => b.textContent)] : null; }"""


def _wait_for_idle_kernel(server, timeout_s: float = 60.0) -> None:
    """Notebook 7 has no status bar: ask the server until the notebook's kernel is idle (a kernel
    just starting can make /api/kernels answer 500 once: asked again)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if any(k.get("execution_state") == "idle" for k in server.api("GET", "/api/kernels")):
                return
        except OSError:  # urllib's HTTPError included
            pass
        assert time.monotonic() < deadline, f"no idle kernel after {timeout_s:.0f}s:\n{server.log_tail()}"
        time.sleep(0.5)


def _seconds(text: str) -> float:
    """A step time as the widget shows it ("2.0s", "1m 05s")."""
    match = re.fullmatch(r"(?:(\d+)m )?(\d+(?:\.\d)?)s", text.strip())
    assert match, text
    return 60 * int(match[1] or 0) + float(match[2])


def test_notebook7_dark_steps_run_states_keyboard_and_launch_records_reopened(
        browser, request, jupyter_lab, lab_setting, docker_cleanup, busybox_image, notebook7):
    """Issue 24's items 3, 4 and 6 in Notebook 7 with the dark theme (JupyterLab has them in the
    light and dark themes elsewhere), then each outcome once after reopening without a kernel,
    the launch forms included (one replaced by its record when its cluster ended, one closed
    with Done while its cluster ran): one notebook, a three-step busybox build, a `%dcs_run`
    and two launch forms against the test Clusters API (no cluster container)."""
    from support.clusters_api import ClustersApi, jobs_state
    from test_examples_in_lab import _PROMPTS_JS
    from test_keyboard_access import CELL, _tab_to, operate_launch_form

    nb7 = notebook7
    request.addfinalizer(nb7.shutdown_kernels)
    set_lab_setting(nb7, THEME_PLUGIN, {"theme": "JupyterLab Dark"})
    tag = docker_cleanup.add(docker_cleanup.unique("browser-nb7-steps") + ":1")
    api = ClustersApi().start()
    request.addfinalizer(api.stop)
    api.script({"state": "RUNNING"})
    jobs_state(api)  # runs walk PENDING, RUNNING, TERMINATED/SUCCESS
    (nb7.root / "cluster.json").write_text(json.dumps({
        "cluster_name": "dcs-test-nb7", "spark_version": "15.4.x-scala2.12", "node_type_id": "i3.xlarge",
        "num_workers": 0, "autotermination_minutes": 60,
        "docker_image": {"url": "registry.example.com/team/app@sha256:" + "ab" * 32}}))
    (nb7.root / "nb7_job.py").write_text("print('nb7 job')\n")
    cells = [
        f"%load_ext dcs_magic\nimport os\nos.environ.update(DATABRICKS_HOST={api.host!r}, DATABRICKS_TOKEN={api.token!r})",
        f"%%dockerfile steps --base {busybox_image} --quiet\nFROM {{{{ base }}}}\nRUN echo one\nRUN sleep 4 && echo two\n",
        f"%dcs_build steps -t {tag} --no-cache",
        "%dcs_run --spec cluster.json --python-file nb7_job.py",
        "%dcs_launch --spec cluster.json",
        "%dcs_launch --spec cluster.json",
    ]
    write_notebook(nb7.root / "nb7-live.ipynb", cells)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(60_000)
    request.addfinalizer(context.close)
    page = context.new_page()
    page.goto(f"{nb7.url}/notebooks/nb7-live.ipynb")
    page.wait_for_function(f"() => document.querySelectorAll('.jp-NotebookPanel .jp-CodeCell').length === {len(cells)}")
    _wait_for_idle_kernel(nb7)
    wait_for_theme(page, "dark")
    run_all_cells(page)

    # Item 3: the user's steps (3, not 4 with the appended LABEL), the running one's time ticking.
    widget = page.locator(OUTPUT.format(2)).locator(".dcs-progress")
    expect(widget.locator(".dcs-step-label")).to_have_text("Step 3/3", timeout=60_000)
    expect(widget.locator(".dcs-instruction")).to_have_text("RUN sleep 4 && echo two")
    expect(widget.locator(".dcs-steps-summary")).to_have_text(re.compile(r"^Steps: 2 of 3 done"))
    running = widget.locator(".dcs-step-running .dcs-step-time")
    expect(running).to_have_text(re.compile(r"\ds$"))
    first = _seconds(running.text_content())  # (in the folded step list: text, not rendered)
    page.wait_for_timeout(1100)
    assert _seconds(running.text_content()) > first, "the running step's time does not tick"
    assert "LABEL" not in widget.text_content()  # steps, instruction and log tail
    _assert_readable_texts(widget, "build widget, Notebook 7 dark")

    # Item 4: the run's state changes, shown as they come.
    seen: list[tuple[str, tuple[str, ...]]] = []
    while not seen or seen[-1][0] != "done":
        now = page.evaluate(_RUN_SEEN_JS)
        if now is not None and (not seen or seen[-1] != (now[0], tuple(now[1]))):
            seen.append((now[0], tuple(now[1])))
        page.wait_for_timeout(100)
    assert seen[0][0] == "running" and any(s == "running" and "RUNNING" in states for s, states in seen), seen
    assert [s for s in seen[-1][1] if not s.startswith("TERMINATING")] == ["PENDING", "RUNNING", "TERMINATED/SUCCESS"]
    run = page.locator(OUTPUT.format(3)).locator(".dcs-run")
    expect(run.get_by_role("link")).to_have_attribute("href", re.compile(r"#job/runs/\d+$"))
    _assert_readable_texts(run, "run states, Notebook 7 dark")
    page.wait_for_function(f"() => !({_PROMPTS_JS})().includes('[*]:')")
    build = page.locator(OUTPUT.format(2))
    expect(build.locator(RECORD)).to_contain_text("Build steps: done")
    assert build.locator(".dcs-progress").count() == 0 and "LABEL" not in build.inner_text()

    # Item 6 in Notebook 7: the first form by keyboard; its cluster terminated, the record
    # replaces it and the cell has the focus. The second: Create, then Done (by keyboard).
    operate_launch_form(page, page.locator(OUTPUT.format(4)), page.locator(CELL.format(4)), keep=False)
    second = page.locator(OUTPUT.format(5))
    second.get_by_role("button", name="Create", exact=True).focus()
    page.keyboard.press("Enter")
    expect(second.get_by_role("button", name="Terminate", exact=True)).to_be_focused(timeout=30_000)
    expect(second.locator(".widget-html", has_text=re.compile(r"^RUNNING "))).to_be_visible(timeout=30_000)
    _tab_to(page, lambda f: f["tag"] == "button" and f["label"] == "Done (leave the record)")
    page.keyboard.press("Enter")
    expect(second.locator(RECORD)).to_contain_text("form closed with Done while the cluster was RUNNING")
    expect(second.locator(".dcs-launch")).to_have_count(0)
    expect(page.locator(CELL.format(5))).to_be_focused()
    assert len(api.requests_to("/clusters/create")) == 2 and len(api.requests_to("/clusters/delete")) == 1

    # Saved: no cell refers to a widget any more; reopened without a kernel, each outcome once.
    page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-InputPrompt").first.click()
    page.keyboard.press("Escape")
    page.keyboard.press("Control+s")
    deadline = time.monotonic() + 30
    while True:
        nb = nbformat.read(nb7.root / "nb7-live.ipynb", as_version=4)
        if all(c.execution_count for c in nb.cells) and "kept running" in json.dumps(nb.cells[5].outputs):
            break
        assert time.monotonic() < deadline, "the notebook was not saved"
        time.sleep(0.3)
    widget_outputs = [i for i, c in enumerate(nb.cells) for o in c.outputs if WIDGET_MIME in o.get("data", {})]
    assert widget_outputs == [], widget_outputs
    nb.metadata.pop("kernelspec", None)
    nb.metadata.pop("language_info", None)
    nb.metadata.pop("widgets", None)  # as JupyterLab saves by default
    context.close()
    nb7.shutdown_kernels()
    nbformat.write(nb, nb7.root / "nb7-reopened.ipynb")
    lab_dir = jupyter_lab.root / "nb7-reopened"
    lab_dir.mkdir(exist_ok=True)
    nbformat.write(nb, lab_dir / "reopened.ipynb")
    set_lab_setting(nb7, THEME_PLUGIN, {"theme": "JupyterLab Light"})
    lab_setting(THEME_PLUGIN, {"theme": "JupyterLab Dark"})
    for ui, theme, url in [("nb7", "light", f"{nb7.url}/notebooks/nb7-reopened.ipynb"),
                           ("lab", "dark", jupyter_lab.notebook_url("nb7-reopened/reopened.ipynb"))]:
        view_context = browser.new_context(viewport={"width": 1280, "height": 900})
        try:
            view = view_context.new_page()
            _open_without_kernel(view, url, len(cells))
            wait_for_theme(view, theme)
            where = f"reopened, {ui} {theme}"
            assert view.get_by_text("Error displaying widget").count() == 0, where
            assert view.get_by_text("model not found").count() == 0, where
            expect(view.locator(OUTPUT.format(2)).locator(RECORD)).to_contain_text("Build steps: done")
            expect(view.locator(OUTPUT.format(3)).locator(".dcs-run")).to_contain_text("TERMINATED/SUCCESS")
            for index, text in ((4, "Note: terminated from this form"), (5, "kept running")):
                launch = view.locator(OUTPUT.format(index))
                expect(launch.locator(RECORD)).to_have_count(1)
                expect(launch.locator(RECORD)).to_contain_text(text)
                _assert_readable_texts(launch.locator(RECORD), f"{where}, launch record {index}")
            view.locator(OUTPUT.format(5)).scroll_into_view_if_needed()
            view.screenshot(path=str(SHOTS_DIR / f"nb7-records-{ui}-{theme}.png"))
        finally:
            view_context.close()


def _assert_readable_texts(locator, where: str) -> None:
    low = [r for r in text_contrasts(locator) if r["ratio"] < AA]
    assert not low, f"{where}: text below {AA}:1: {low}"
