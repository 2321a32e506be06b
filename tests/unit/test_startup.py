"""Start-up cost as a property, not a time (issue 12): which modules `import dcs_magic`,
`%load_ext dcs_magic` and `dcs --help` load, each in a fresh interpreter."""

from __future__ import annotations

import json
import subprocess
import sys

from dcs_magic import settings
from dcs_magic.cli import commands as cli
from dcs_magic.model import exports

# Third-party packages none of the three may import: the engine, HTTP, templates, widgets,
# the Databricks SDK, and the dcs_magic modules that carry them or the big tables.
HEAVY = ("docker", "requests", "urllib3", "jinja2", "ipywidgets", "anywidget", "databricks", "yaml",
         "rich", "pygments")
HEAVY_OWN = ("dcs_magic.ops.build", "dcs_magic.ops.push", "dcs_magic.ops.runner", "dcs_magic.model.progress",
             "dcs_magic.jupyter.widgets", "dcs_magic.adapters.engine",
             "dcs_magic.adapters.workspace", "dcs_magic.model.spec", "dcs_magic.model.runtime", "dcs_magic.ops.check",
             "dcs_magic.model.template", "dcs_magic.ops.context", "dcs_magic.jupyter.launch", "dcs_magic.model.results",
             "dcs_magic.ops.recipe", "dcs_magic.model.exports", "dcs_magic.preflight")


def _new_modules(setup: str, code: str) -> list[str]:
    """The modules CODE adds to sys.modules after SETUP, in a fresh interpreter."""
    script = (
        f"import json, sys\n{setup}\nbefore = set(sys.modules)\n{code}\n"
        "print(json.dumps(sorted(set(sys.modules) - before)))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                         check=True)
    added: list[str] = json.loads(out.stdout.strip().splitlines()[-1])
    return added


def test_import_loads_only_the_package_itself() -> None:
    # Not even `typing` or `__future__`: everything else is a lazy (PEP 562) name.
    assert _new_modules("", "import dcs_magic") == ["dcs_magic", "dcs_magic._version"]


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
    assert [m for m in added if m.startswith("dcs_magic")] == [
        "dcs_magic", "dcs_magic._version", "dcs_magic.errors", "dcs_magic.jupyter", "dcs_magic.jupyter.magics",
        "dcs_magic.settings"]
    assert not [m for m in added if m.split(".")[0] in HEAVY or m.startswith(HEAVY_OWN)]


def test_dcs_help_imports_argparse_and_the_cli_only() -> None:
    code = ("from dcs_magic.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "try:\n    main(['launch', '--help'])\nexcept SystemExit:\n    pass")
    added = _new_modules("", code)
    assert [m for m in added if m.startswith("dcs_magic")] == ["dcs_magic", "dcs_magic._version", "dcs_magic.cli",
                                                               "dcs_magic.cli.commands", "dcs_magic.settings"]
    assert not [m for m in added if m.split(".")[0] in HEAVY]


def test_settings_import_nothing_but_os() -> None:
    """The settings are read by `dcs --help` and `%load_ext`: importing them costs one module."""
    assert _new_modules("import dcs_magic", "import dcs_magic.settings") == ["dcs_magic.settings"]


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
