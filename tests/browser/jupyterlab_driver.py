"""Drive a real JupyterLab in Debian's Chromium (Playwright, its driver only).

Plain functions and small classes, usable from a REPL as well as from the fixtures in
tests/browser/conftest.py:

    lab = start_jupyterlab(tmp_dir)                  # server on 127.0.0.1:<free port>
    browser = launch_chromium(playwright)
    run = run_notebook_cells(page, ["1 + 1"], lab=lab)   # open, Run All, wait until idle
    lab.stop()

The server gets its own config/data/runtime/settings/workspace directories so nothing from
the machine's ~/.jupyter leaks in; the installed lab extensions (ipywidgets' manager,
anywidget) are found in sys.prefix as usual. Only 127.0.0.1 is used.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path
from typing import Any

import nbformat

__all__ = [
    "CHROMIUM",
    "CHROMIUM_ARGS",
    "COLOUR_JS",
    "CONTRAST_JS",
    "THEME_PLUGIN",
    "WIDGETS_PLUGIN",
    "JupyterLab",
    "LabStartError",
    "NotebookRun",
    "cell_outputs",
    "launch_chromium",
    "open_notebook",
    "run_all_cells",
    "run_notebook_cells",
    "save_notebook",
    "set_lab_setting",
    "set_lab_theme",
    "start_jupyterlab",
    "text_contrast",
    "text_contrasts",
    "wait_for_theme",
    "write_notebook",
]

CHROMIUM = "/usr/bin/chromium"
# No sandbox (root in a container), and nothing that talks to anything but 127.0.0.1.
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
)
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}
START_TIMEOUT_S = 60.0

# User settings written before the server starts (JupyterLab reads them from
# LabApp.user_settings_dir). Keys are "<extension package>/<plugin>".
LAB_SETTINGS: dict[str, dict[str, Any]] = {
    # No "get notified about Jupyter news?" prompt, no update check (both go online).
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false",
                                                    "checkForUpdates": False},
    # Every cell stays in the DOM so selectors reach outputs scrolled out of view.
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
    # Store widget state in the saved notebook, as nbclient does by default: the tests that
    # look for secrets in the .ipynb must see what a user who enabled it would save.
    "@jupyter-widgets/jupyterlab-manager/plugin": {"saveState": True},
}


class LabStartError(RuntimeError):
    """JupyterLab did not answer /api/status in time (the message ends with its log)."""


@dataclass
class JupyterLab:
    """A running `jupyter lab` process serving `root` on `url` (no token, 127.0.0.1)."""

    process: subprocess.Popen[bytes]
    url: str
    root: Path
    home: Path
    log_path: Path
    _workspaces: Any = field(default_factory=lambda: count(1))

    def api(self, method: str, path: str, timeout: float = 10.0) -> Any:
        """Call the server's REST API (JSON in, JSON out; None for an empty body)."""
        req = urllib.request.Request(self.url + path, method=method)
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # 127.0.0.1 only
            body = resp.read()
        return json.loads(body) if body else None

    def notebook_url(self, path: str) -> str:
        """URL opening `path` (relative to root) in a fresh, never-used lab workspace.

        A new workspace per page keeps one test's open notebooks (and their kernels) from
        being restored into the next test's page.
        """
        return f"{self.url}/lab/workspaces/dcs-test-{next(self._workspaces)}/tree/{path}"

    def shutdown_kernels(self) -> None:
        """Delete every session (which shuts its kernel down)."""
        for session in self.api("GET", "/api/sessions"):
            try:
                self.api("DELETE", f"/api/sessions/{session['id']}", timeout=30)
            except urllib.error.HTTPError as exc:
                if exc.code != 404:  # gone already
                    raise

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the server log, for failure messages."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"

    def stop(self, timeout: float = 20.0) -> None:
        """Stop the server and its kernels (the whole process group), then drop its dirs."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout)
        shutil.rmtree(self.home, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _write_settings(settings_dir: Path) -> None:
    for key, values in LAB_SETTINGS.items():
        package, _, plugin = key.rpartition("/")
        target = settings_dir / package / f"{plugin}.jupyterlab-settings"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(values))


def start_jupyterlab(base: Path, timeout_s: float = START_TIMEOUT_S) -> JupyterLab:
    """Start `jupyter lab` on a free 127.0.0.1 port; wait (bounded) for /api/status.

    `base/notebooks` is the server root; `base/home` holds its private config, data,
    runtime, settings and workspace directories.
    """
    root, home = base / "notebooks", base / "home"
    root.mkdir(parents=True)
    _write_settings(home / "user-settings")
    port = _free_port()
    env = dict(
        os.environ,
        JUPYTER_CONFIG_DIR=str(home / "config"),
        JUPYTER_DATA_DIR=str(home / "data"),  # sys.prefix data (lab extensions) still counts
        JUPYTER_RUNTIME_DIR=str(home / "runtime"),
        IPYTHONDIR=str(home / "ipython"),
        JUPYTER_PLATFORM_DIRS="0",
    )
    cmd = [
        sys.executable, "-m", "jupyter", "lab", "--no-browser",
        "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
        f"--ServerApp.root_dir={root}",
        "--IdentityProvider.token=", "--ServerApp.password=",
        # Tests call the REST API with plain urllib (no XSRF cookie dance); 127.0.0.1 only.
        "--ServerApp.disable_check_xsrf=True",
        "--ServerApp.allow_root=True",  # CI runs as root
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        f"--LabApp.user_settings_dir={home / 'user-settings'}",
        f"--LabApp.workspaces_dir={home / 'workspaces'}",
    ]
    log_path = home / "server.log"
    with log_path.open("wb") as log:
        # Own process group: stop() takes the kernels down with the server.
        process = subprocess.Popen(cmd, env=env, cwd=root, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    lab = JupyterLab(process=process, url=f"http://127.0.0.1:{port}", root=root, home=home,
                     log_path=log_path)
    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            raise LabStartError(f"jupyter lab exited with status {process.returncode}:\n"
                                f"{lab.log_tail()}")
        try:
            lab.api("GET", "/api/status", timeout=2)
            return lab
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            if time.monotonic() > deadline:
                lab.stop()
                raise LabStartError(f"jupyter lab did not answer {lab.url}/api/status within "
                                    f"{timeout_s:.0f}s:\n{lab.log_tail()}") from None
            time.sleep(0.25)


def launch_chromium(playwright: Any) -> Any:
    """Debian's Chromium through Playwright (never `playwright install`)."""
    if not Path(CHROMIUM).exists():
        raise FileNotFoundError(f"{CHROMIUM} is missing: run `bash scripts/dev-env.sh deps` "
                                "(installs Debian's chromium).")
    return playwright.chromium.launch(executable_path=CHROMIUM, args=list(CHROMIUM_ARGS))


def write_notebook(path: Path, cells: Sequence[str]) -> Path:
    """Write code cells as a notebook with kernelspec metadata (no "Select Kernel" dialog)."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata["language_info"] = {"name": "python"}
    nb.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


# JS predicates evaluated in the page. The kernel status lives in the status bar as
# "<kernel display name> | <status>".
_KERNEL_IDLE_JS = """() => Array.from(document.querySelectorAll('.jp-StatusBar-TextItem'))
    .some(e => /\\| Idle$/.test(e.textContent.trim()))"""
_PROMPTS_JS = """() => Array.from(document.querySelectorAll(
    '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell .jp-InputArea-prompt'))
    .map(e => e.textContent.trim())"""


def open_notebook(page: Any, lab: JupyterLab, path: str, n_cells: int,
                  timeout_ms: float = 60_000) -> None:
    """Open `path` in a fresh workspace; wait until its cells are shown and its kernel idles."""
    page.goto(lab.notebook_url(path))
    page.wait_for_function(
        f"() => document.querySelectorAll('.jp-NotebookPanel .jp-CodeCell').length === {n_cells}",
        timeout=timeout_ms)
    page.wait_for_function(_KERNEL_IDLE_JS, timeout=timeout_ms)


def run_all_cells(page: Any) -> None:
    """Click Run > Run All Cells in the menu bar, as a user would."""
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()


@dataclass
class NotebookRun:
    """What a run left in the page: the notebook's path and each code cell's prompt."""

    path: Path
    prompts: list[str]

    @property
    def executed(self) -> list[bool]:
        """Per code cell: did it get an execution count (`[3]:`)?"""
        return [p[1:-2].isdigit() for p in self.prompts]


def wait_until_done(page: Any, timeout_ms: float) -> list[str]:
    """Wait for the run to start, then for no cell to be queued/running and the kernel idle."""
    # Run All marks every cell "[*]:" at once; wait for that first, or a fast run could be
    # mistaken for one that never started.
    page.wait_for_function(f"() => ({_PROMPTS_JS})().some(p => p !== '[ ]:' && p !== '')",
                           timeout=timeout_ms)
    page.wait_for_function(
        f"() => !({_PROMPTS_JS})().includes('[*]:') && ({_KERNEL_IDLE_JS})()",
        timeout=timeout_ms)
    return page.evaluate(_PROMPTS_JS)


def cell_outputs(page: Any) -> list[str]:
    """The text of every code cell's output area (for failure messages)."""
    return page.evaluate("""() => Array.from(document.querySelectorAll(
        '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell'))
        .map(c => (c.querySelector('.jp-OutputArea') || {innerText: ''}).innerText)""")


def run_notebook_cells(page: Any, cells: Sequence[str], *, lab: JupyterLab,
                       name: str = "test.ipynb", expect_error: bool = False,
                       timeout_ms: float = 90_000) -> NotebookRun:
    """Write `cells` as a notebook under the lab root, open it, Run All, wait until idle.

    Unless `expect_error`, every cell must have run (an error stops Run All; the remaining
    cells keep an empty prompt): otherwise AssertionError with each cell's output.
    """
    path = write_notebook(lab.root / name, cells)
    open_notebook(page, lab, name, len(cells), timeout_ms)
    run_all_cells(page)
    run = NotebookRun(path=path, prompts=wait_until_done(page, timeout_ms))
    if not expect_error and not all(run.executed):
        outputs = "\n---\n".join(cell_outputs(page))
        raise AssertionError(f"not every cell ran: prompts {run.prompts}; outputs:\n{outputs}")
    return run


def save_notebook(page: Any, timeout_ms: float = 30_000) -> None:
    """Save the open notebook with Ctrl+S, as a user would; wait until it is saved.

    The notebook gets the focus first (a widget's text input keeps its keystrokes to
    itself); the tab's dirty mark going away means the server has written the file.
    """
    page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-InputPrompt").first.click()
    page.keyboard.press("Escape")
    page.keyboard.press("Control+s")
    page.wait_for_function(
        "() => document.querySelector('.lm-DockPanel-tabBar .lm-TabBar-tab.jp-mod-current') "
        "&& !document.querySelector('.lm-DockPanel-tabBar .lm-TabBar-tab.jp-mod-current.jp-mod-dirty')",
        timeout=timeout_ms)


# -- helpers for the progress widget tests (theme, settings, contrast) ----------------------


def set_lab_setting(lab: JupyterLab, plugin: str, values: dict[str, Any]) -> None:
    """Replace a JupyterLab user setting (e.g. "@jupyterlab/apputils-extension:themes") through
    the server's settings API; pages opened afterwards use it."""
    body = json.dumps({"raw": json.dumps(values)}).encode()
    req = urllib.request.Request(f"{lab.url}/lab/api/settings/{plugin}", data=body, method="PUT",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10):  # 127.0.0.1 only
        pass


# -- themes and contrast ------------------------------------------------------------------

THEMES = {"light": "JupyterLab Light", "dark": "JupyterLab Dark"}


def set_lab_theme(lab: JupyterLab, theme: str) -> None:
    """Make `theme` ("light", "dark" or a theme's full name) the lab's theme for pages opened
    from now on (the settings REST API, as the Settings > Theme menu stores it)."""
    set_lab_setting(lab, THEME_PLUGIN, {"theme": THEMES.get(theme, theme)})


THEME_PLUGIN = "@jupyterlab/apputils-extension:themes"
WIDGETS_PLUGIN = "@jupyter-widgets/jupyterlab-manager:plugin"


def wait_for_theme(page: Any, theme: str, timeout_ms: float = 30_000) -> None:
    """Wait until JupyterLab applied `theme` ("light", "dark" or a theme's full name): it marks
    <body data-jp-theme-name=...>."""
    name = THEMES.get(theme, theme)
    page.wait_for_function(f"() => document.body.dataset.jpThemeName === {json.dumps(name)}",
                           timeout=timeout_ms)


# Contrast of every element that shows text under `root`, computed as WCAG 2 does: the text
# colour (alpha composited) over the first opaque background found walking up the ancestors
# (semi-transparent backgrounds composited on the way). Returns [{text, ratio, color, bg}].
CONTRAST_JS = """(root) => {
  const parse = (c) => {
    const m = c.match(/rgba?\\(([^)]+)\\)/);
    if (!m) return null;
    const p = m[1].split(/[ ,\\/]+/).filter(Boolean).map(Number);
    return { r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1 };
  };
  const over = (top, bottom) => {
    const a = top.a + bottom.a * (1 - top.a);
    const mix = (x, y) => (x * top.a + y * bottom.a * (1 - top.a)) / (a || 1);
    return { r: mix(top.r, bottom.r), g: mix(top.g, bottom.g), b: mix(top.b, bottom.b), a };
  };
  const background = (el) => {
    const layers = [];
    for (let e = el; e; e = e.parentElement) {
      const c = parse(getComputedStyle(e).backgroundColor);
      if (c && c.a > 0) { layers.push(c); if (c.a >= 1) break; }
    }
    let bg = { r: 255, g: 255, b: 255, a: 1 };
    for (const c of layers.reverse()) bg = over(c, bg);
    return bg;
  };
  const lum = (c) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b);
  };
  const out = [];
  for (const el of [root, ...root.querySelectorAll("*")]) {
    const own = Array.from(el.childNodes).filter((n) => n.nodeType === 3 && n.textContent.trim());
    if (!own.length || !el.getClientRects().length) continue;  // no own text, or not shown
    const style = getComputedStyle(el);
    if (style.visibility === "hidden") continue;
    const bg = background(el);
    const fg = over(parse(style.color), bg);
    const [hi, lo] = [lum(fg), lum(bg)].sort((x, y) => y - x);
    out.push({ text: own.map((n) => n.textContent.trim()).join(" ").slice(0, 60),
               ratio: (hi + 0.05) / (lo + 0.05), color: style.color,
               bg: `rgb(${Math.round(bg.r)}, ${Math.round(bg.g)}, ${Math.round(bg.b)})` });
  }
  return out;
}"""


def text_contrasts(locator: Any) -> list[dict[str, Any]]:
    """`CONTRAST_JS` on the element `locator` points at."""
    return locator.evaluate(CONTRAST_JS)
# Colour helpers for page scripts: `parse` a CSS rgb()/rgba() colour, composite `over` a
# background, WCAG 2 `lum`inance and `contrast`, and the `backdrop` painted behind an element:
# the background colours of START and its ancestors composited from the root down (alpha
# included), over white when nothing is painted.
COLOUR_JS = r"""
  const parse = (c) => {
    const m = /rgba?\(([^)]+)\)/.exec(c || '');
    if (!m) return null;
    const p = m[1].split(/[\s,\/]+/).filter(Boolean).map(Number);
    return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
  };
  const over = (top, bottom) => [0, 1, 2].map(i => top[i] * top[3] + bottom[i] * (1 - top[3])).concat([1]);
  const lum = (c) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]);
  };
  const contrast = (x, y) => { const a = lum(x), b = lum(y); return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05); };
  const backdrop = (start) => {
    const layers = [];
    for (let e = start; e; e = e.parentElement) {
      const c = parse(getComputedStyle(e).backgroundColor);
      if (c && c[3] > 0) layers.push(c);
    }
    let bg = [255, 255, 255, 1];
    for (let i = layers.length - 1; i >= 0; i--) bg = over(layers[i], bg);
    return bg;
  };
"""
# WCAG 2 contrast of an element's text colour against what is painted behind it.
_CONTRAST_JS = r"""(el) => {""" + COLOUR_JS + r"""
  const bg = backdrop(el);
  const fg = over(parse(getComputedStyle(el).color), bg);
  return {ratio: contrast(fg, bg), color: getComputedStyle(el).color, fg: fg, bg: bg,
          text: (el.textContent || '').trim().slice(0, 40)};
}"""


def text_contrast(locator: Any) -> list[dict[str, Any]]:
    """For every element `locator` matches: its text's contrast `ratio` against the painted
    background, with `color`, composited `fg`/`bg` and the start of its `text`."""
    return locator.evaluate_all(f"(els) => els.map({_CONTRAST_JS})")
