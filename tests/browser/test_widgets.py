"""dcs-magic's notebook output in a real JupyterLab + Chromium: what a user actually sees.

Each test writes a notebook, runs it from the Run menu and asserts on the page's DOM (the
rendered widgets), not on the kernel's text output.
"""

from __future__ import annotations

import json
import re
import secrets

import pytest
from jupyterlab_driver import save_notebook
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]

# The output area of the index-th code cell of the visible notebook.
OUTPUT = ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell >> nth={} >> .jp-OutputArea"


def test_dockerfile_output_is_highlighted(page, notebook, screenshot):
    run = notebook([
        'greeting = "hello from jinja"',
        "%load_ext dcs_magic",
        ("%%dockerfile demo --base dcs-test/busybox:1\n"
         "FROM {{ base }}\n"
         "RUN echo {{ greeting }} > /greeting.txt\n"),
    ])
    highlight = page.locator(OUTPUT.format(2)).locator(".highlight pre")
    highlight.wait_for()
    # The template was rendered with the notebook's variable and --base.
    assert "FROM dcs-test/busybox:1" in highlight.inner_text()
    assert "RUN echo hello from jinja > /greeting.txt" in highlight.inner_text()
    # Pygments turned the instructions into coloured spans; the browser applies the colour.
    keyword = highlight.locator("span", has_text="FROM").first
    plain_color = highlight.evaluate("e => getComputedStyle(e).color")
    assert keyword.evaluate("e => getComputedStyle(e).color") != plain_color
    assert highlight.locator("span", has_text="RUN").count() >= 1
    # What the page shows is what was written to the build context.
    dockerfile = run.path.parent / "dcs-build" / "demo" / "Dockerfile"
    assert dockerfile.read_text().splitlines()[:2] == [
        "FROM dcs-test/busybox:1", "RUN echo hello from jinja > /greeting.txt"]
    highlight.scroll_into_view_if_needed()
    screenshot("dockerfile")


# -- the build progress widget (dcs_magic/widgets.py ProgressWidget, js/progress.js) --------

BUILD_TAG = "dcs-test/browser:1"


def _dockerfile_cell(base: str, *run_steps: str) -> str:
    return "\n".join([f"%%dockerfile --base {base}", "FROM {{ base }}",
                      *(f"RUN {step}" for step in run_steps)]) + "\n"


@pytest.fixture
def build_tag(docker_client, docker_cleanup) -> str:
    """The tag the notebook builds; removed (with what the build left) after the test."""
    docker_cleanup.add(BUILD_TAG)
    return BUILD_TAG


@pytest.mark.docker
def run_log_path(notebook_dir) -> str:
    """The build log the notebook's one build wrote (dcs-build/default/.dcs/build-*.log)."""
    logs = sorted((notebook_dir / "dcs-build" / "default" / ".dcs").glob("build-*.log"))
    assert len(logs) == 1, logs
    return str(logs[0].resolve())


def test_build_widget_shows_steps_log_and_image_id(page, notebook, notebook_dir, screenshot,
                                                    docker_client, busybox_image, build_tag):
    notebook([
        "%load_ext dcs_magic\n%config DcsMagics.finished_widget = 'keep'",  # examined after the run
        _dockerfile_cell(busybox_image, "echo one > /one", "echo two > /two",
                         # The shell computes the marker: only real step output contains it.
                         "echo dcs-browser-marker-$((6*7))"),
        f"result = %dcs_build -t {build_tag}",
    ])
    widget = page.locator(OUTPUT.format(2)).locator('.dcs-progress[data-status="done"]')
    widget.wait_for()
    assert widget.locator(".dcs-badge").inner_text() == "done"
    # The user's 4 steps (FROM + 3 RUN), all done: the one LABEL step dcs-magic appends (its
    # labels in one instruction; an image history entry) is not counted.
    built, base = docker_client.images.get(build_tag), docker_client.images.get(busybox_image)
    assert len(built.history()) - len(base.history()) == 3 + 1  # 3 RUN + 1 LABEL layer
    assert widget.locator(".dcs-step-label").inner_text() == "Step 4/4"
    # Each step with its duration, in the steps list.
    widget.locator(".dcs-steps-summary").click()
    items = widget.locator(".dcs-step-item")
    expect(items).to_have_count(4)
    assert all(re.fullmatch(r"\d+\.\ds", t) for t in widget.locator(".dcs-step-time").all_inner_texts())
    # The image id shown is the one the engine gave the tag.
    result = widget.locator(".dcs-result")
    assert result.is_visible()
    assert widget.locator(".dcs-result-text").inner_text() == built.id
    assert not widget.locator(".dcs-error").is_visible()
    # The copy button puts that id on the clipboard.
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    result.get_by_role("button", name="Copy").click()
    expect(result.get_by_role("button")).to_have_text("Copied")
    assert page.evaluate("() => navigator.clipboard.readText()") == built.id
    # The log tail is collapsed; opening it shows the container's own output.
    log = widget.locator(".dcs-log-text")
    assert not log.is_visible()
    widget.locator(".dcs-log-summary").click()
    log.wait_for()
    assert "dcs-browser-marker-42" in log.inner_text()
    # ... and where the full log is; the static record under the widget says the same.
    log_path = run_log_path(notebook_dir)
    expect(widget.locator(".dcs-log-path")).to_have_text(f"Full log: {log_path}")
    record = page.locator(OUTPUT.format(2)).locator(".dcs-record")
    expect(record).to_contain_text(f"Image: {built.id}")
    expect(record).to_contain_text(f"Log: {log_path}")
    widget.scroll_into_view_if_needed()
    screenshot("build-done")


@pytest.mark.docker
def test_build_widget_shows_failure(page, notebook, screenshot, docker_client, busybox_image,
                                    build_tag):
    run = notebook([
        "%load_ext dcs_magic\n%config DcsMagics.finished_widget = 'keep'",  # examined after the run
        _dockerfile_cell(busybox_image, "echo fine", "echo about-to-fail && exit 3"),
        f"result = %dcs_build -t {build_tag}",
        "print('never runs')",
    ], expect_error=True)
    assert run.executed == [True, True, True, False]  # the BuildError stopped Run All
    widget = page.locator(OUTPUT.format(2)).locator('.dcs-progress[data-status="failed"]')
    widget.wait_for()
    error = widget.locator(".dcs-error")
    assert error.is_visible()
    assert widget.locator(".dcs-error-title").inner_text() == "Build failed"
    assert "non-zero code: 3" in widget.locator(".dcs-error-text").inner_text()
    # The failing step stays on screen (LABEL steps would have followed it).
    assert widget.locator(".dcs-step-label").inner_text() == "Step 3/3"
    assert "exit 3" in widget.locator(".dcs-instruction").inner_text()
    assert widget.locator(".dcs-badge").inner_text() == "failed"
    assert not widget.locator(".dcs-result").is_visible()
    # It stands out by the theme's error colour on its border (its text keeps the readable
    # text colour), and it is announced (role="alert").
    assert error.get_attribute("role") == "alert"
    border = error.evaluate("e => getComputedStyle(e).borderLeftColor")
    assert border != widget.locator(".dcs-title").evaluate("e => getComputedStyle(e).color")
    assert border == widget.locator(".dcs-badge").evaluate("e => getComputedStyle(e).borderTopColor")
    error.scroll_into_view_if_needed()
    screenshot("build-failed")
    images = docker_client.images.list(name=build_tag.split(":")[0])
    assert not any(build_tag in image.tags for image in images)


# -- the launch widget (dcs_magic/launch.py LaunchWidget, %dcs_launch --local) ---------------

PASSWORD_VAR = "DCS_TEST_REGISTRY_PASSWORD"
PINNED_IMAGE = "127.0.0.1:5000/dcs-test/app@sha256:" + "ab" * 32


def _widget_states(saved: dict) -> list[dict]:
    """The widget models' states stored in a saved notebook's metadata."""
    store = saved["metadata"]["widgets"]["application/vnd.jupyter.widget-state+json"]
    return [model["state"] for model in store["state"].values()]


@pytest.mark.docker
def test_launch_form_previews_json_and_saves_no_secret(page, notebook, notebook_dir,
                                                       screenshot):
    from dcs_magic.model.form_values import AUTH_MODES

    # The kernel reads the password from a file: it never appears in a cell, so finding it
    # in the saved notebook could only mean the widget leaked it.
    secret = f"s3cr3t-{secrets.token_hex(12)}"
    (notebook_dir / "secret.txt").write_text(secret)
    notebook([
        f"import os, pathlib\nos.environ[{PASSWORD_VAR!r}] = pathlib.Path('secret.txt').read_text()",
        "%load_ext dcs_magic",
        f"%dcs_launch --local --image {PINNED_IMAGE}",
        # The local workspace's token: the saved notebook must not contain it either.
        ("from dcs_magic.preflight import ensure_server\n"
         "pathlib.Path('token.txt').write_text(ensure_server()[1])"),
    ])
    form = page.locator(OUTPUT.format(2))
    cluster_name = form.get_by_label("Cluster name", exact=True)
    cluster_name.wait_for()
    preview = form.locator(".widget-html pre", has_text='"spark_version"')
    expect(preview).to_contain_text(PINNED_IMAGE)

    # Typing in the browser updates the JSON preview (the kernel recomputes it).
    cluster_name.press_sequentially("dcs-browser-cluster")
    expect(preview).to_contain_text('"cluster_name": "dcs-browser-cluster"')

    form.get_by_label("Registry auth").select_option(label=AUTH_MODES["env"])
    form.get_by_label("Username", exact=True).fill("dcs-test-user")
    expect(preview).to_contain_text('"username": "dcs-test-user"')
    password_var = form.get_by_label("Password variable")
    # A password typed where the variable NAME belongs is thrown away, with a message.
    password_var.fill(secret)
    password_var.press("Enter")
    expect(form).to_contain_text("There is no environment variable with that name")
    expect(password_var).to_have_value("")
    # The variable's name is kept; the preview masks the password.
    password_var.fill(PASSWORD_VAR)
    password_var.press("Enter")
    expect(form).not_to_contain_text("There is no environment variable with that name")
    expect(preview).to_contain_text('"password": "****"')
    expect(password_var).to_have_value(PASSWORD_VAR)
    assert secret not in page.content()
    cluster_name.scroll_into_view_if_needed()
    screenshot("launch-form")

    save_notebook(page)
    path = notebook_dir / "test.ipynb"
    text = path.read_text()
    assert secret not in text
    assert (notebook_dir / "token.txt").read_text() not in text
    # Not vacuous: the form's state was saved, with what was typed in the browser.
    values = [state.get("value") for state in _widget_states(json.loads(text))]
    assert "dcs-browser-cluster" in values
    assert "dcs-test-user" in values
    assert PASSWORD_VAR in values
