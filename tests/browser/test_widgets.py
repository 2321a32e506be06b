"""dcs-magic's notebook output in a real JupyterLab + Chromium: what a user actually sees.

Each test writes a notebook, runs it from the Run menu and asserts on the page's DOM (the
rendered widgets), not on the kernel's text output.
"""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]

# The output area of the index-th code cell of the visible notebook.
OUTPUT = ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell >> nth={} >> .jp-OutputArea"


def test_dockerfile_output_is_highlighted(page, notebook, screenshot):
    run = notebook([
        'greeting = "hello from jinja"',
        "%load_ext dcs_magic",
        "%%dockerfile demo --base dcs-test/busybox:1\n"
        "FROM {{ base }}\n"
        "RUN echo {{ greeting }} > /greeting.txt\n",
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
def test_build_widget_shows_steps_log_and_image_id(page, notebook, screenshot, docker_client,
                                                    busybox_image, build_tag):
    notebook([
        "%load_ext dcs_magic",
        _dockerfile_cell(busybox_image, "echo one > /one", "echo two > /two",
                         # The shell computes the marker: only real step output contains it.
                         "echo dcs-browser-marker-$((6*7))"),
        f"result = %dcs_build -t {build_tag}",
    ])
    widget = page.locator(OUTPUT.format(2)).locator('.dcs-progress[data-status="done"]')
    widget.wait_for()
    # FROM + 3 RUN steps, all shown as done.
    assert widget.locator(".dcs-step-label").inner_text() == "Step 4/4"
    assert widget.locator(".dcs-badge").inner_text() == "done"
    assert "echo dcs-browser-marker" in widget.locator(".dcs-instruction").inner_text()
    # The image id shown is the one the engine gave the tag.
    engine_id = docker_client.images.get(build_tag).id
    result = widget.locator(".dcs-result")
    assert result.is_visible()
    assert widget.locator(".dcs-result-text").inner_text() == engine_id
    assert not widget.locator(".dcs-error").is_visible()
    # The log tail is collapsed; opening it shows the container's own output.
    log = widget.locator(".dcs-log-text")
    assert not log.is_visible()
    widget.locator(".dcs-log-summary").click()
    log.wait_for()
    assert "dcs-browser-marker-42" in log.inner_text()
    widget.scroll_into_view_if_needed()
    screenshot("build-done")


@pytest.mark.docker
def test_build_widget_shows_failure(page, notebook, screenshot, docker_client, busybox_image,
                                    build_tag):
    run = notebook([
        "%load_ext dcs_magic",
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
    # The failing step stays on screen, and it stands out (the theme's error colour).
    assert widget.locator(".dcs-step-label").inner_text() == "Step 3/3"
    assert widget.locator(".dcs-badge").inner_text() == "failed"
    assert not widget.locator(".dcs-result").is_visible()
    color = "e => getComputedStyle(e).color"
    assert (widget.locator(".dcs-error-title").evaluate(color)
            != widget.locator(".dcs-title").evaluate(color))
    error.scroll_into_view_if_needed()
    screenshot("build-failed")
    images = docker_client.images.list(name=build_tag.split(":")[0])
    assert not any(build_tag in image.tags for image in images)
