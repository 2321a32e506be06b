"""The examples as a user runs them: opened in JupyterLab (and the quickstart in Notebook 7),
Run > Run All Cells, in Debian's Chromium (the ones with widgets of their own: `IN_LAB`; every
example runs headless in tests/integration/test_examples.py).

The servers here are this module's own: their kernels must see the settings `scripts/demo.sh`
gives a user (`DCS_EXAMPLE_*` pointing at the local base and the htpasswd registry; the
notebooks store the registry password in the local workspace's secret store themselves), which
a server started earlier without them would not pass on.
Each run: every code cell gets an execution count (Run All stops at the first error), the
notebook saved from the browser (Ctrl+S, widget state included) has no error output and
neither the registry password nor the local workspace's token (read from the kernel by the
test harness over the kernel's own REST session, never printed into the page). Screenshots
of each run go to /tmp/dcs-browser-shots/ (the CI artifact directory).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from jupyterlab_driver import (
    JupyterLab,
    LabStartError,
    _free_port,
    _write_settings,
    cell_outputs,
    open_notebook,
    run_all_cells,
    start_jupyterlab,
)
from support.examples import (
    EXAMPLE_LIST,
    OS_BASE,
    Example,
    copy_examples,
    ensure_dcs_base,
    example_environment,
    secrets_found,
)

pytestmark = [pytest.mark.browser, pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(1500)]

SHOTS_DIR = Path("/tmp/dcs-browser-shots")
RUN_TIMEOUT_MS = 900_000
_PROMPTS_JS = """() => Array.from(document.querySelectorAll(
    '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell .jp-InputArea-prompt'))
    .map(e => e.textContent.trim())"""


@pytest.fixture(scope="module")
def example_env(auth_registry: Any, docker_client: Any, _protected_images: set[str],
                dcs_base_image: str) -> dict[str, str]:
    # dcs_base_image: built by the session fixture (and this file ordered after those that do
    # not need it, tests/conftest.py); ensure_dcs_base checks its debootstrap root too.
    _protected_images.update({OS_BASE, "dcs-magic/dcs-base:bookworm"})
    try:
        base = ensure_dcs_base(docker_client)
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    _protected_images.add(base)
    return example_environment(auth_registry, base)


def _with_env(env: dict[str, str], start: Any, *args: Any) -> JupyterLab:
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        return start(*args)
    except LabStartError as exc:
        pytest.fail(str(exc), pytrace=False)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def start_notebook7(base: Path, timeout_s: float = 60.0) -> JupyterLab:
    """`jupyter notebook` (Notebook 7) on a free 127.0.0.1 port, set up like start_jupyterlab."""
    root, home = base / "notebooks", base / "home"
    root.mkdir(parents=True)
    _write_settings(home / "user-settings")
    port = _free_port()
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(home / "config"), JUPYTER_DATA_DIR=str(home / "data"),
               JUPYTER_RUNTIME_DIR=str(home / "runtime"), IPYTHONDIR=str(home / "ipython"),
               JUPYTER_PLATFORM_DIRS="0")
    cmd = [sys.executable, "-m", "jupyter", "notebook", "--no-browser",
           "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
           f"--ServerApp.root_dir={root}", "--IdentityProvider.token=", "--ServerApp.password=",
           "--ServerApp.disable_check_xsrf=True", "--ServerApp.allow_root=True",
           "--JupyterNotebookApp.news_url=None",
           f"--JupyterNotebookApp.user_settings_dir={home / 'user-settings'}",
           f"--JupyterNotebookApp.workspaces_dir={home / 'workspaces'}"]
    log_path = home / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(cmd, env=env, cwd=root, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    server = JupyterLab(process=process, url=f"http://127.0.0.1:{port}", root=root, home=home,
                        log_path=log_path)
    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            raise LabStartError(f"jupyter notebook exited ({process.returncode}):\n{server.log_tail()}")
        try:
            server.api("GET", "/api/status", timeout=2)
            return server
        except OSError:
            if time.monotonic() > deadline:
                server.stop()
                raise LabStartError(f"jupyter notebook did not answer:\n{server.log_tail()}") from None
            time.sleep(0.25)


@pytest.fixture(scope="module")
def examples_lab(tmp_path_factory: pytest.TempPathFactory, example_env: dict[str, str]
                 ) -> Iterator[JupyterLab]:
    lab = _with_env(example_env, start_jupyterlab, tmp_path_factory.mktemp("examples-lab"))
    yield lab
    lab.stop()


@pytest.fixture(scope="module")
def examples_notebook7(tmp_path_factory: pytest.TempPathFactory, example_env: dict[str, str]
                       ) -> Iterator[JupyterLab]:
    server = _with_env(example_env, start_notebook7, tmp_path_factory.mktemp("examples-nb7"))
    yield server
    server.stop()


def _shot(page: Any, name: str) -> Path:
    SHOTS_DIR.mkdir(parents=True, exist_ok=True)
    path = SHOTS_DIR / f"examples-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def _kernel_token(server: JupyterLab) -> str:
    """The local preflight workspace's token, from the notebook's kernel, without a cell.

    A second client on the kernel's connection file (as a console or debugger attaches) runs
    `ensure_server()`; its output goes to that client only, so nothing reaches the page or the
    saved notebook.
    """
    from jupyter_client import BlockingKernelClient

    (kernel,) = server.api("GET", "/api/kernels")
    connection = server.home / "runtime" / f"kernel-{kernel['id']}.json"
    client = BlockingKernelClient(connection_file=str(connection))
    client.load_connection_file()
    client.start_channels()
    found: list[dict[str, Any]] = []
    try:
        reply = client.execute_interactive(
            "from dcs_magic.preflight import ensure_server as _e; print(_e()[1], end='')",
            store_history=False, output_hook=found.append, timeout=60)
    finally:
        client.stop_channels()
    assert reply["content"]["status"] == "ok"
    return "".join(m["content"].get("text", "") for m in found if m["msg_type"] == "stream")


def _wait_for_idle_kernel(server: JupyterLab, timeout_s: float = 60.0) -> None:
    """Notebook 7 has no status bar: ask the server until the notebook's kernel is idle."""
    deadline = time.monotonic() + timeout_s
    while not any(k.get("execution_state") == "idle" for k in server.api("GET", "/api/kernels")):
        if time.monotonic() > deadline:
            raise AssertionError(f"no idle kernel after {timeout_s:.0f}s:\n{server.log_tail()}")
        time.sleep(0.5)


def _saved_after_run(server: JupyterLab, page: Any, rel: str, n_code: int) -> Any:
    """Save from the browser (Ctrl+S) and read the notebook the server wrote."""
    page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-InputPrompt").first.click()
    page.keyboard.press("Escape")
    page.keyboard.press("Control+s")
    path = server.root / rel
    deadline = time.monotonic() + 60
    while True:
        nb = nbformat.read(path, as_version=4)
        counts = [c.execution_count for c in nb.cells if c.cell_type == "code"]
        if len(counts) == n_code and all(counts):
            return nb
        if time.monotonic() > deadline:
            raise AssertionError(f"{rel} was not saved with every cell executed: {counts}")
        time.sleep(0.5)


def _run_in_browser(server: JupyterLab, page: Any, example: Example, url: str, ui: str,
                    docker_cleanup: Any, registry: Any) -> tuple[Any, Path]:
    for repo, tag in example.pushes:
        docker_cleanup.add(f"{registry.host}/{repo}:{tag}")
    folder = f"{ui}-{example.name}"
    copy_examples(server.root / folder)
    rel = f"{folder}/{example.file}"
    n_code = sum(c.cell_type == "code" for c in nbformat.read(server.root / rel, as_version=4).cells)
    if ui == "lab":
        open_notebook(page, server, rel, n_code)
    else:
        page.goto(url + rel)
        page.wait_for_function(
            f"() => document.querySelectorAll('.jp-NotebookPanel .jp-CodeCell').length === {n_code}")
        _wait_for_idle_kernel(server)
    run_all_cells(page)
    # Run All marks every cell "[*]:" at once: wait for the run to start, then to end.
    page.wait_for_function(f"() => ({_PROMPTS_JS})().some(p => p !== '[ ]:' && p !== '')",
                           timeout=RUN_TIMEOUT_MS)
    try:
        page.wait_for_function(f"() => !({_PROMPTS_JS})().includes('[*]:')", timeout=RUN_TIMEOUT_MS)
    finally:
        shot = _shot(page, folder)
    prompts = page.evaluate(_PROMPTS_JS)
    assert all(p[1:-2].isdigit() for p in prompts), (prompts, "\n---\n".join(cell_outputs(page)))
    token = _kernel_token(server)
    nb = _saved_after_run(server, page, rel, n_code)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert errors == []
    assert len(token) >= 32
    assert secrets_found((server.root / rel).read_text(), {
        "registry password": registry.password, "local workspace token": token}) == []
    for repo, tag in example.pushes:  # what the notebook pushed is in the registry
        docker_cleanup.add(f"{registry.host}/{repo}@{registry.manifest_digest(repo, tag)}")
    return nb, shot


# In the browser: the examples whose cells show what the others do not (build, push, check and
# launch widgets; init-script cells; a private registry's auth). from_scratch (an apt build),
# parameters and gpu add no widget of their own: they run Run All headless, in a real kernel,
# in tests/integration/test_examples.py with every example (CI time is the browser's cost).
# The quickstart runs in the browser in Notebook 7 (below), and headless, from the README and
# through the CLI elsewhere: in JupyterLab only the two with widgets of their own (CI time).
IN_LAB = tuple(e for e in EXAMPLE_LIST if e.name in ("init_scripts", "private_registry"))


@pytest.mark.parametrize("example", IN_LAB, ids=lambda e: e.name)
def test_example_runs_in_jupyterlab(example: Example, browser: Any, examples_lab: JupyterLab,
                                    auth_registry: Any, docker_cleanup: Any) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(60_000)
    page = context.new_page()
    try:
        nb, _ = _run_in_browser(examples_lab, page, example, examples_lab.url, "lab",
                                docker_cleanup, auth_registry)
    finally:
        context.close()
        examples_lab.shutdown_kernels()
    if example.pushes:
        assert "RUNNING with" in json.dumps(nb.dict())


def _shoot_records(page: Any, path: Path) -> None:
    """The build cell and the record its widget left when the build ended: the README's
    docs/img/widgets.png is this file."""
    cell = page.locator(".dcs-record[data-kind='build']").first.locator(
        "xpath=ancestor::div[contains(concat(' ', normalize-space(@class), ' '), ' jp-Cell ')][1]")
    cell.scroll_into_view_if_needed()
    cell.screenshot(path=str(path))


def test_quickstart_runs_in_notebook7(browser: Any, examples_notebook7: JupyterLab,
                                      auth_registry: Any, docker_cleanup: Any) -> None:
    (quickstart,) = [e for e in EXAMPLE_LIST if e.name == "quickstart"]
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(60_000)
    page = context.new_page()
    try:
        nb, _ = _run_in_browser(examples_notebook7, page, quickstart, f"{examples_notebook7.url}/notebooks/",
                                "nb7", docker_cleanup, auth_registry)
        _shoot_records(page, SHOTS_DIR / "examples-widgets.png")
    finally:
        context.close()
        examples_notebook7.shutdown_kernels()
    assert "RUNNING with" in json.dumps(nb.dict())
