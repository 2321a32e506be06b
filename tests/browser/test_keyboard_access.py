"""Keyboard and screen-reader access in a real JupyterLab + Chromium (issue 24, item 6).

- The launch form, in the light and the dark theme, operated with Tab, arrows, Enter and Space
  only: the "init scripts, Spark conf, env vars, tags" section opens and closes; the workers
  choice is a radio group whose checked state is in the accessibility tree; every button's
  accessible name starts with a word (no icon glyph); a focused text field, number field,
  text area or select shows an outline of at least 3:1 against what surrounds it; after
  Create the focus is on Terminate. After Terminate: in the light theme with
  `finished_widget = 'keep'` back on Create; in the dark theme with the default 'record' the
  form is replaced by its record and the focus is on the notebook cell (never the page). The
  form talks to the test Clusters API server (tests/support/clusters_api.py): no Docker, a few
  seconds. (Notebook 7 and the Done button: test_outcome_blocks.py's combined test.)
- The progress widget's Stop, pressed with the keyboard on a real build: the focus stays on
  it while it stops; then (the default 'record') the record replaces the widget and the focus
  is on the notebook cell, never dropped to the page.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from jupyterlab_driver import COLOUR_JS, set_lab_theme, wait_for_theme, wait_until_done
from playwright.sync_api import expect
from support.clusters_api import ClustersApi
from test_stop_builds import _assert_nothing_left, _start, _steps_cell, _wait_for_running_step

pytestmark = [pytest.mark.browser]

OUTPUT = ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell >> nth={} >> .jp-OutputArea"
CELL = ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell >> nth={}"
NON_TEXT_CONTRAST = 3.0  # WCAG 2.2, 1.4.11 and 2.4.13: a focus indicator against its surroundings
ADVANCED = "init scripts, Spark conf, env vars, tags"
MAX_TABS = 40

# What has the focus, and (for a form field) its focus outline: width, style, colour and the
# colour's contrast against the background painted behind the field (ancestors composited
# from the page down, over white when nothing is painted).
_FOCUSED_JS = r"""() => {
  const el = document.activeElement;
  if (!el) return null;""" + COLOUR_JS + r"""
  const bg = backdrop(el.parentElement);
  const s = getComputedStyle(el);
  const ring = parse(s.outlineColor);
  const fg = ring ? over(ring, bg) : bg;
  const label = (el.labels && el.labels[0] ? el.labels[0].textContent : el.textContent || '').trim();
  return {tag: el.tagName.toLowerCase(), type: el.type || '', label: label.slice(0, 60),
          checked: el.checked === true, outline: s.outlineStyle, width: parseFloat(s.outlineWidth) || 0,
          color: s.outlineColor, ratio: contrast(fg, bg)};
}"""


def _focused(page: Any) -> dict[str, Any]:
    return page.evaluate(_FOCUSED_JS)


def _tab_to(page: Any, matches: Any, seen: list[dict[str, Any]] | None = None, *, key: str = "Tab"
            ) -> dict[str, Any]:
    """Press Tab (or `key`) until the focused element matches; every element passed is added to `seen`."""
    for _ in range(MAX_TABS):
        page.keyboard.press(key)
        focused = _focused(page)
        if seen is not None:
            seen.append(focused)
        if matches(focused):
            return focused
    raise AssertionError(f"not reached with {MAX_TABS} Tabs; last focused: {_focused(page)}")


def _button_names(snapshot: str) -> list[str]:
    return re.findall(r'^\s*- button "([^"]*)"', snapshot, flags=re.MULTILINE)


@pytest.fixture(params=["light", "dark"])
def theme(request: pytest.FixtureRequest, jupyter_lab: Any) -> Iterator[str]:
    set_lab_theme(jupyter_lab, request.param)
    yield request.param
    set_lab_theme(jupyter_lab, "light")


def operate_launch_form(page: Any, form: Any, cell: Any, *, keep: bool, shot: Any = None, tag: str = "") -> None:
    """The launch form in FORM (a cell's output area; the test Clusters API scripted to RUNNING),
    by keyboard and through the accessibility tree, as the module docstring says: Create, then
    Terminate. With `keep` the form stays (focus back on Create); else its record replaces it
    and CELL (the notebook cell) has the focus. `shot(name)` takes screenshots."""
    create = form.get_by_role("button", name="Create", exact=True)
    terminate = form.get_by_role("button", name="Terminate", exact=True)
    expect(create).to_be_enabled()

    # The accessibility tree: radios with their checked state; no name starts with a glyph.
    tree = form.aria_snapshot()
    assert re.search(r'- radio "Fixed size" \[checked\]', tree), tree
    assert re.search(r'- radio "Autoscale"$', tree, flags=re.MULTILINE), tree
    names = _button_names(tree)
    assert {"Create", "Terminate", "Save JSON", f"Show {ADVANCED}", "Done (leave the record)"} <= set(names), names
    assert [n for n in names if not re.match(r"\w", n)] == [], names

    # Keyboard only from the first field on. In command mode JupyterLab takes the arrow keys
    # from any focused element that is not a text field (notebook:move-cursor-down): the
    # radios, being ungrouped (no name), are one Tab stop each and Space checks one.
    form.get_by_label("Cluster name").focus()
    seen = [_focused(page)]
    assert _tab_to(page, lambda f: f["type"] == "radio", seen)["label"] == "Fixed size"
    page.keyboard.press("Tab")
    page.keyboard.press(" ")
    chosen = _focused(page)
    assert chosen["label"] == "Autoscale" and chosen["checked"], chosen
    expect(form.get_by_label("Min workers")).to_be_visible()
    assert re.search(r'- radio "Autoscale" \[checked\]', form.aria_snapshot())
    assert re.search(r'- radio "Fixed size"$', form.aria_snapshot(), flags=re.MULTILINE)
    page.keyboard.press("Shift+Tab")
    page.keyboard.press(" ")
    expect(form.get_by_label("Number of workers")).to_be_visible()
    expect(form.get_by_label("Min workers")).to_be_hidden()

    # The section: a button reached by Tab, opened by Enter, closed by Space.
    _tab_to(page, lambda f: f["tag"] == "button" and ADVANCED in f["label"], seen)
    env = form.get_by_label("Env vars")
    expect(env).to_be_hidden()
    page.keyboard.press("Enter")
    expect(env).to_be_visible()
    expect(form.get_by_role("button", name=f"Hide {ADVANCED}")).to_be_focused()
    _tab_to(page, lambda f: f["label"] == "Env vars", seen)
    env.scroll_into_view_if_needed()
    if shot:
        shot(f"env-vars-focused-{tag}")
    _tab_to(page, lambda f: f["tag"] == "button" and ADVANCED in f["label"], key="Shift+Tab")
    page.keyboard.press(" ")
    expect(env).to_be_hidden()
    expect(form.get_by_role("button", name=f"Show {ADVANCED}")).to_be_focused()

    # Every field passed shows a focus outline that reaches 3:1 in this theme.
    fields = [f for f in seen if f["tag"] in ("input", "textarea", "select") and f["type"] != "radio"]
    kinds = {f["type"] if f["tag"] == "input" else f["tag"] for f in fields}
    assert {"text", "number", "textarea", "select"} <= kinds, fields
    weak = [(f["label"], f["outline"], f["width"], f["color"], round(f["ratio"], 2)) for f in fields
            if f["outline"] == "none" or f["width"] < 2 or f["ratio"] < NON_TEXT_CONTRAST]
    assert weak == [], f"focus indicators below {NON_TEXT_CONTRAST}:1 or thinner than 2px: {weak}"
    print(tag, sorted({(f["color"], round(f["ratio"], 2)) for f in fields}))

    # Create by keyboard: the focus lands on Terminate; Terminate: back on Create (keep), or on
    # the cell whose form the record replaced.
    _tab_to(page, lambda f: f["tag"] == "button" and f["label"] == "Create")
    page.keyboard.press("Enter")
    expect(terminate).to_be_focused(timeout=30_000)
    expect(form.locator(".widget-html", has_text=re.compile(r"^RUNNING "))).to_be_visible(timeout=30_000)
    expect(create).to_be_disabled()
    form.scroll_into_view_if_needed()
    if shot:
        shot(f"terminate-focused-{tag}")
    page.keyboard.press("Enter")
    if keep:
        expect(form).to_contain_text("terminated from this form", timeout=60_000)
        expect(create).to_be_focused()
        expect(terminate).to_be_disabled()
        return
    record = form.locator(".dcs-record")
    expect(record).to_contain_text("Note: terminated from this form", timeout=60_000)
    expect(form.locator(".dcs-launch")).to_have_count(0)
    expect(cell).to_be_focused()
    assert record.get_attribute("data-state") == "TERMINATED"


@pytest.mark.timeout(240)
def test_launch_form_by_keyboard_and_screen_reader(page, notebook, notebook_dir, screenshot, theme):
    keep = theme == "light"  # light: the form stays open (Create again); dark: its record replaces it
    with ClustersApi() as api:
        api.script({"state": "RUNNING"})
        spec = {"cluster_name": "dcs-test-keyboard", "spark_version": "15.4.x-scala2.12",
                "node_type_id": "i3.xlarge", "num_workers": 0, "autotermination_minutes": 60,
                "docker_image": {"url": "registry.example.com/team/app@sha256:" + "ab" * 32}}
        (notebook_dir / "cluster.json").write_text(json.dumps(spec))
        notebook(["%load_ext dcs_magic" + ("\n%config DcsMagics.finished_widget = 'keep'" if keep else ""),
                  f"import os\nos.environ.update(DATABRICKS_HOST={api.host!r}, DATABRICKS_TOKEN={api.token!r})",
                  "%dcs_launch --spec cluster.json"])
        wait_for_theme(page, theme)
        operate_launch_form(page, page.locator(OUTPUT.format(2)), page.locator(CELL.format(2)), keep=keep,
                            shot=screenshot, tag=theme)
        assert len(api.requests_to("/clusters/create")) == 1 and len(api.requests_to("/clusters/delete")) == 1


@pytest.mark.docker
@pytest.mark.timeout(240)
def test_stop_by_keyboard_leaves_the_focus_in_the_cell(page, jupyter_lab, notebook_dir, docker_client,
                                                       docker_cleanup, busybox_image, screenshot):
    tag = docker_cleanup.add(f"{docker_cleanup.unique('browser-stop-keys')}:1")
    marker = f"dcs-test-stop-{uuid.uuid4().hex[:12]}"
    # The default finished_widget ('record'): the stopped widget is replaced by its record.
    _start(page, jupyter_lab, notebook_dir, [
        "%load_ext dcs_magic", _steps_cell(busybox_image, marker),
        f"%dcs_build slow -t {tag} --no-cache"])
    widget = page.locator(OUTPUT.format(2)).locator(".dcs-progress")
    widget.locator(".dcs-step-label", has_text="Step 3/3").wait_for(timeout=90_000)
    _wait_for_running_step(docker_client, marker)

    stop = widget.get_by_role("button", name="Stop", exact=True)
    assert "- button \"Stop\"" in widget.aria_snapshot()
    stop.focus()
    page.keyboard.press("Enter")
    # While it stops, the button keeps the focus (aria-disabled, not disabled) ...
    assert widget.get_attribute("role") == "group" and widget.get_attribute("aria-label") == "Build slow"
    expect(widget.get_by_role("button", name="Stopping…")).to_be_focused()
    # ... and once the record replaced the widget, the notebook cell has it: not the page's body.
    record = page.locator(OUTPUT.format(2)).locator(".dcs-record")
    expect(record).to_contain_text("Build slow: cancelled", timeout=30_000)
    wait_until_done(page, 60_000)
    expect(widget).to_have_count(0)
    expect(page.locator(CELL.format(2))).to_be_focused()
    record.scroll_into_view_if_needed()
    screenshot("stopped-focus-on-cell")
    _assert_nothing_left(docker_client, marker, notebook_dir / "dcs-build" / "slow")
