"""Start-up cost as a property, not a time (issue 12): which modules `import dcs_magic`,
`%load_ext dcs_magic`, `dcs --help`, `dcs render` and `dcs build` load, each in a fresh
interpreter.

Only what the package controls is compared: its own modules, and the third-party packages a
path must not load. Which standard-library modules an interpreter loads before any user code
differs from one environment to the next (a plain venv has not imported `importlib` yet; one
with .pth files has), so they are not counted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from dcs_magic import settings
from dcs_magic.cli import commands as cli
from dcs_magic.model import exports

# Third-party packages none of the three may import: the engine, HTTP, templates, widgets,
# the Databricks SDK, and the dcs_magic modules that carry them or the big tables.
HEAVY = ("docker", "requests", "urllib3", "jinja2", "ipywidgets", "anywidget", "databricks", "yaml",
         "rich", "pygments", "nbformat", "jsonschema")  # nbformat: seconds, for jsonschema's format checkers
HEAVY_OWN = ("dcs_magic.ops.build", "dcs_magic.ops.push", "dcs_magic.ops.runner", "dcs_magic.model.progress",
             "dcs_magic.jupyter.widgets", "dcs_magic.adapters.engine",
             "dcs_magic.adapters.workspace", "dcs_magic.model.spec", "dcs_magic.model.runtime", "dcs_magic.ops.check",
             "dcs_magic.model.template", "dcs_magic.ops.context", "dcs_magic.jupyter.launch", "dcs_magic.model.results",
             "dcs_magic.ops.recipe", "dcs_magic.model.exports", "dcs_magic.preflight")
# The notebook front-end: the `dcs` command reads and renders notebooks without any of it.
FRONT_END = ("IPython", "ipywidgets", "anywidget", "dcs_magic.jupyter")


def _new_modules(setup: str, code: str, *, cwd: Path | None = None, env: dict[str, str] | None = None,
                 ) -> list[str]:
    """The modules CODE adds to sys.modules after SETUP, in a fresh interpreter."""
    script = (
        f"import json, sys\n{setup}\nbefore = set(sys.modules)\n{code}\n"
        "print(json.dumps(sorted(set(sys.modules) - before)))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                         cwd=cwd, env=env)
    assert out.returncode == 0, out.stderr
    added: list[str] = json.loads(out.stdout.strip().splitlines()[-1])
    return added


def _own(added: list[str]) -> list[str]:
    return [m for m in added if m == "dcs_magic" or m.startswith("dcs_magic.")]


def _packages(added: list[str], names: tuple[str, ...]) -> list[str]:
    """The modules of ADDED that belong to one of the packages NAMES (`IPython` takes
    `IPython.core.magic`, `dcs_magic.jupyter` takes `dcs_magic.jupyter.magics`)."""
    return [m for m in added if any(m == n or m.startswith(n + ".") for n in names)]


def _outside_stdlib(added: list[str]) -> list[str]:
    return [m for m in added if m.split(".")[0] not in sys.stdlib_module_names and not _own([m])]


def test_import_loads_only_the_package_itself() -> None:
    added = _new_modules("", "import dcs_magic")
    assert _own(added) == ["dcs_magic", "dcs_magic._version"]
    assert _outside_stdlib(added) == []
    # Not even `typing` or `__future__`: everything else is a lazy (PEP 562) name.
    assert not {"typing", "__future__", "dataclasses"} & set(added)


def test_lazy_names_import_only_their_module() -> None:
    added = _new_modules("", "from dcs_magic import BuildError, DcsError")
    assert "dcs_magic.errors" in added
    assert not [m for m in added if m.startswith(("dcs_magic.model.results", "dataclasses", *HEAVY))]
    added = _new_modules("import dcs_magic", "dcs_magic.CheckReport")
    assert "dcs_magic.model.results" in added
    assert not [m for m in added if m.split(".")[0] in HEAVY]


def test_load_ext_imports_no_heavy_module() -> None:
    setup = ("from IPython.core.interactiveshell import InteractiveShell\n"
             "from traitlets.config import Config\n"
             "config = Config()\nconfig.HistoryManager.enabled = False\n"
             "shell = InteractiveShell.instance(config=config)")
    added = _new_modules(setup, "shell.run_line_magic('load_ext', 'dcs_magic')\n"
                                "assert 'dcs_build' in shell.magics_manager.magics['line']")
    assert _own(added) == [
        "dcs_magic", "dcs_magic._version", "dcs_magic.errors", "dcs_magic.jupyter", "dcs_magic.jupyter.magics",
        "dcs_magic.settings"]
    assert not [m for m in added if m.split(".")[0] in HEAVY or m.startswith(HEAVY_OWN)]


def test_dcs_help_imports_argparse_and_the_cli_only() -> None:
    code = ("from dcs_magic.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "try:\n    main(['launch', '--help'])\nexcept SystemExit:\n    pass")
    added = _new_modules("", code)
    assert _own(added) == ["dcs_magic", "dcs_magic._version", "dcs_magic.cli", "dcs_magic.cli.commands",
                           "dcs_magic.settings"]
    assert not [m for m in added if m.split(".")[0] in HEAVY]


def test_settings_import_nothing_but_os() -> None:
    """The settings are read by `dcs --help` and `%load_ext`: importing them costs one module."""
    assert _new_modules("import dcs_magic", "import dcs_magic.settings") == ["dcs_magic.settings"]


def _notebook(folder: Path) -> Path:
    """A small recipe notebook: a parameters cell, a %%dockerfile, a %%dcs_file, an %%init_script."""
    path = folder / "recipe.ipynb"

    def cell(kind: str, source: str, tags: tuple[str, ...] = ()) -> dict[str, object]:
        extra: dict[str, object] = {"outputs": [], "execution_count": None} if kind == "code" else {}
        return {"cell_type": kind, "metadata": {"tags": list(tags)} if tags else {}, "source": source, **extra}

    cells = [
        cell("markdown", "# A recipe"),
        cell("code", "base = 'dcs-test/startup-base:1'", ("parameters",)),
        cell("code", "%%dockerfile app --base dcs-test/startup-base:1\nFROM {{ base }}\nCOPY req.txt /\n"),
        cell("code", "%%dcs_file app req.txt\nsix\n"),
        cell("code", "%%init_script setup\n#!/bin/bash\necho ready\n"),
    ]
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 4}))
    return path


def _headless_env(tmp_path: Path) -> dict[str, str]:
    """The environment with an engine address where nothing answers: `dcs build` stops at its
    first engine call, after the notebook was read and rendered."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DCS_VAR_", "DOCKER_"))}
    return {**env, "DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"}


def test_dcs_render_imports_no_notebook_front_end(tmp_path: Path) -> None:
    """The `dcs` command reads notebooks with the cells' own grammar (model/cells.py): neither
    IPython nor the widgets, nor the Docker engine, which rendering does not need."""
    notebook = _notebook(tmp_path)
    code = ("from dcs_magic.cli import main\n"
            f"assert main(['render', {str(notebook)!r}, '--out', 'out']) == 0")
    added = _new_modules("", code, cwd=tmp_path, env=_headless_env(tmp_path))
    assert (tmp_path / "out" / "app" / "Dockerfile").read_text() == "FROM dcs-test/startup-base:1\nCOPY req.txt /\n"
    assert (tmp_path / "out" / "init-scripts" / "setup.sh").is_file()
    assert "dcs_magic.ops.notebook" in added and "dcs_magic.model.template" in added  # the path ran
    assert _packages(added, FRONT_END) == []
    assert _packages(added, ("docker", "dcs_magic.adapters.engine")) == []


def test_dcs_build_imports_no_notebook_front_end(tmp_path: Path) -> None:
    notebook = _notebook(tmp_path)
    code = ("import contextlib, io\nfrom dcs_magic.cli import main\n"
            "err = io.StringIO()\n"
            "with contextlib.redirect_stderr(err):\n"
            f"    status = main(['build', {str(notebook)!r}, '--out', 'out', '-t', 'dcs-test/startup:1',"
            " '--progress', 'plain'])\n"
            "assert status == 1 and 'EngineError: Cannot reach the Docker engine' in err.getvalue(), err.getvalue()")
    added = _new_modules("", code, cwd=tmp_path, env=_headless_env(tmp_path))
    assert (tmp_path / "out" / "app" / "Dockerfile").read_text() == "FROM dcs-test/startup-base:1\nCOPY req.txt /\n"
    assert "dcs_magic.ops.notebook" in added and "dcs_magic.adapters.engine" in added  # up to the engine
    assert _packages(added, FRONT_END) == []


def test_cli_defaults_are_the_settings() -> None:
    """`dcs --help` shows the library's defaults (read from settings, not written out)."""
    parser = cli.make_parser()
    build = parser.parse_args(["build", "nb.ipynb", "-t", "a:1"])
    launch = parser.parse_args(["launch", "--spec", "c.json"])
    run = parser.parse_args(["run", "--spec", "c.json", "--python-file", "job.py"])
    assert build.platform == settings.PLATFORM
    assert launch.timeout == settings.CLUSTER_TIMEOUT_S and run.timeout == settings.RUN_TIMEOUT_S
    # cli.py writes the export kinds out (so `dcs --help` imports no model module); they must agree.
    assert tuple(cli.EXPORT_KINDS) == tuple(exports.EXPORT_KINDS)


def test_dcs_outdated_asks_the_registry_without_the_engine(tmp_path: Path) -> None:
    """`dcs outdated` reads the lock and asks registries over HTTP: no Docker engine, no notebook
    front-end, no templates (here the registry does not answer: exit 2)."""
    from dcs_magic.ops.lock import ImageLock, Lock, lock_path, write_lock

    notebook = tmp_path / "app.ipynb"
    entry = ImageLock(dockerfile_sha256="0" * 64, base="127.0.0.1:9/team/base:1", base_digest="sha256:" + "a" * 64)
    write_lock(lock_path(notebook), Lock(images={"app": entry.seal()}))
    code = ("import contextlib, io\nfrom dcs_magic.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            f"    assert main(['outdated', {str(notebook)!r}, '--timeout', '5']) == 2\n")
    added = _new_modules("", code, cwd=tmp_path, env=_headless_env(tmp_path))
    assert "dcs_magic.adapters.registry" in added and "dcs_magic.model.drift" in added  # the path ran
    assert _packages(added, (*FRONT_END, "docker", "dcs_magic.adapters.engine", "jinja2")) == []
