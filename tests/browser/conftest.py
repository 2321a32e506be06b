"""Fixtures for the browser tests: a real JupyterLab and Debian's Chromium, via Playwright.

Session fixtures
    jupyter_lab     `jupyter lab` on 127.0.0.1:<free port>, no token, private config and
                    settings (no news prompt, widget state saved with the notebook); stopped
                    with its kernels at the end. Fails (never skips) when it cannot start.
    browser         Chromium from /usr/bin/chromium (Playwright's driver only).

Function fixtures
    page            a fresh browser context + page (1280x900); on teardown the page is closed
                    and every kernel shut down, so tests do not share kernels or CPU.
    notebook_dir    `<lab root>/<test name>/`, fresh per test: the notebook's directory and so
                    the kernel's cwd (files a test puts there are readable from cells).
    notebook        `notebook(cells, expect_error=False) -> NotebookRun`: writes the cells as
                    `notebook_dir/test.ipynb`, opens it in `page`, runs all cells from the
                    Run menu and waits until the kernel is idle (see jupyterlab_driver).
    screenshot      `screenshot(name) -> Path`: the page as a PNG under /tmp/dcs-browser-shots/
                    (JupyterLab scrolls inside its panels: scroll the element into view first).
    dark_theme      the lab in "JupyterLab Dark" for pages opened during the test (light again
                    after it).
    dcs_base_image  (session) the realistic DCS base image (tests/integration/conftest.py's).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))

from integration.conftest import dcs_base_image  # noqa: F401 - the same session fixture
from jupyterlab_driver import (
    JupyterLab,
    LabStartError,
    NotebookRun,
    launch_chromium,
    run_notebook_cells,
    set_lab_theme,
    start_jupyterlab,
)

SHOTS_DIR = Path("/tmp/dcs-browser-shots")
DEFAULT_TIMEOUT_MS = 60_000


@pytest.fixture(scope="session")
def jupyter_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterLab]:
    """A JupyterLab server for the session (stopped, with its kernels, at the end)."""
    try:
        lab = start_jupyterlab(tmp_path_factory.mktemp("jupyterlab"))
    except LabStartError as exc:
        pytest.fail(str(exc), pytrace=False)
    yield lab
    lab.stop()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Debian's Chromium driven by Playwright."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        try:
            chromium = launch_chromium(playwright)
        except FileNotFoundError as exc:
            pytest.fail(str(exc), pytrace=False)
        yield chromium
        chromium.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Remember each phase's report on the item, so `page` can tell whether the test failed."""
    report = yield
    setattr(item, f"_report_{report.when}", report)
    return report


@pytest.fixture
def page(browser: Any, jupyter_lab: JupyterLab, request: pytest.FixtureRequest
         ) -> Iterator[Any]:
    """A fresh page (own context); kernels are shut down when the test ends.

    When the test failed, the page is saved as /tmp/dcs-browser-shots/<test>-FAILED.png first.
    """
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(DEFAULT_TIMEOUT_MS)
    page = context.new_page()
    yield page
    report = getattr(request.node, "_report_call", None)
    if report is not None and report.failed:
        SHOTS_DIR.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS_DIR / f"{_test_dir_name(request)}-FAILED.png"))
    context.close()
    jupyter_lab.shutdown_kernels()


def _test_dir_name(request: pytest.FixtureRequest) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)[:80]


@pytest.fixture
def notebook_dir(jupyter_lab: JupyterLab, request: pytest.FixtureRequest) -> Path:
    """This test's directory under the lab root: the notebook's and the kernel's cwd."""
    path = jupyter_lab.root / _test_dir_name(request)
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def notebook(page: Any, jupyter_lab: JupyterLab, notebook_dir: Path
             ) -> Callable[..., NotebookRun]:
    """Run cells in `notebook_dir/test.ipynb`; see run_notebook_cells."""
    name = f"{notebook_dir.name}/test.ipynb"

    def run(cells: Sequence[str], *, expect_error: bool = False) -> NotebookRun:
        return run_notebook_cells(page, cells, lab=jupyter_lab, name=name,
                                  expect_error=expect_error)

    return run


@pytest.fixture
def screenshot(page: Any, request: pytest.FixtureRequest) -> Callable[[str], Path]:
    """Save the page as /tmp/dcs-browser-shots/<test>-<name>.png."""

    def shoot(name: str) -> Path:
        SHOTS_DIR.mkdir(parents=True, exist_ok=True)
        path = SHOTS_DIR / f"{_test_dir_name(request)}-{name}.png"
        page.screenshot(path=str(path))
        return path

    return shoot


@pytest.fixture
def lab_setting(jupyter_lab: JupyterLab) -> Iterator[Callable[[str, dict], None]]:
    """`lab_setting(plugin, values)`: change a JupyterLab user setting for this test only
    (e.g. the dark theme, or widget state not saved as JupyterLab's default); the session's
    settings are restored afterwards."""
    from jupyterlab_driver import LAB_SETTINGS, set_lab_setting

    changed: list[str] = []

    def put(plugin: str, values: dict) -> None:
        changed.append(plugin)
        set_lab_setting(jupyter_lab, plugin, values)

    yield put
    for plugin in dict.fromkeys(changed):
        package, _, name = plugin.partition(":")
        set_lab_setting(jupyter_lab, plugin, LAB_SETTINGS.get(f"{package}/{name}", {}))


@pytest.fixture
def dark_theme(jupyter_lab: JupyterLab) -> Iterator[str]:
    """JupyterLab Dark for the pages this test opens; the light theme again afterwards."""
    set_lab_theme(jupyter_lab, "dark")
    yield "dark"
    set_lab_theme(jupyter_lab, "light")
