"""%load_ext dcs_magic: the magics it registers, what it imports, the public surface."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from typing import Any

import pytest
from IPython.core.error import UsageError as MagicUsageError

import dcs_magic
from dcs_magic.ops.runner import Cancelled

CELL_MAGICS = {"dockerfile", "dcs_file", "init_script"}
LINE_MAGICS = {"dcs_build", "dcs_push", "dcs_check", "dcs_outdated", "dcs_launch"}
HEAVY_MODULES = ("docker", "requests", "ipywidgets", "anywidget", "databricks")


def test_load_ext_registers_all_seven_magics(shell: Any) -> None:
    magics = shell.magics_manager.magics
    assert set(magics["cell"]) >= CELL_MAGICS
    assert set(magics["line"]) >= LINE_MAGICS
    for name in CELL_MAGICS:
        assert type(magics["cell"][name].__self__).__name__ == "DcsMagics"
    for name in LINE_MAGICS:
        assert type(magics["line"][name].__self__).__name__ == "DcsMagics"


def test_load_ext_stays_cheap() -> None:
    """A fresh interpreter: loading the extension and rendering imports no heavy module."""
    script = (
        "import json, os, sys, tempfile\n"
        "from IPython.core.interactiveshell import InteractiveShell\n"
        "os.chdir(tempfile.mkdtemp())\n"
        "shell = InteractiveShell.instance()\n"
        "shell.run_line_magic('load_ext', 'dcs_magic')\n"
        "shell.run_cell_magic('dockerfile', '--quiet', 'FROM ubuntu:22.04')\n"
        f"heavy = {HEAVY_MODULES!r}\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in heavy)))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_public_names_are_pinned() -> None:
    assert dcs_magic.__all__ == sorted(dcs_magic.__all__)
    assert dcs_magic.__all__ == [
        "ApiError",
        "BuildError",
        "BuildResult",
        "CheckItem",
        "CheckReport",
        "ClusterError",
        "ClusterSpec",
        "ConfigError",
        "ContextError",
        "DcsError",
        "EngineError",
        "LockError",
        "NotebookError",
        "PushError",
        "PushResult",
        "SpecError",
        "TemplateError",
        "Workspace",
        "__version__",
        "build",
        "check",
        "load_ipython_extension",
        "push",
    ]


def test_every_public_name_resolves() -> None:
    for name in dcs_magic.__all__:
        assert getattr(dcs_magic, name) is not None, name
    assert set(dir(dcs_magic)) >= set(dcs_magic.__all__)


class _OtherError(Exception):
    pass


def test_unload_restores_the_handler_installed_before_ours(shell: Any) -> None:
    """Another extension's set_custom_exc handler survives our load + unload."""
    shell.extension_manager.unload_extension("dcs_magic")
    seen: list[str] = []

    def other(shell_: Any, etype: type, value: BaseException, tb: Any, tb_offset: Any = None) -> None:
        seen.append(str(value))

    shell.set_custom_exc((_OtherError,), other)
    try:
        shell.run_line_magic("load_ext", "dcs_magic")
        assert shell.custom_exceptions == (dcs_magic.DcsError, KeyboardInterrupt)
        shell.extension_manager.unload_extension("dcs_magic")
        assert shell.custom_exceptions == (_OtherError,)
        shell.user_ns["_OtherError"] = _OtherError
        shell.run_cell("raise _OtherError('handled by the other extension')")
        assert seen == ["handled by the other extension"]
    finally:
        shell.set_custom_exc((), None)


def test_unload_keeps_a_handler_installed_after_ours(shell: Any) -> None:
    """An extension that installed its handler after us keeps it when we unload."""
    def later(shell_: Any, etype: type, value: BaseException, tb: Any, tb_offset: Any = None) -> None:
        return None

    shell.set_custom_exc((_OtherError,), later)
    installed = shell.CustomTB
    try:
        shell.extension_manager.unload_extension("dcs_magic")
        assert shell.custom_exceptions == (_OtherError,) and shell.CustomTB is installed
    finally:
        shell.set_custom_exc((), None)


def test_unload_without_another_handler_leaves_none(shell: Any) -> None:
    assert shell.custom_exceptions == (dcs_magic.DcsError, KeyboardInterrupt)
    shell.extension_manager.unload_extension("dcs_magic")
    assert shell.custom_exceptions == ()


def test_cancelled_shows_one_line_a_plain_interrupt_keeps_its_traceback(shell: Any, capsys: Any) -> None:
    """The handler takes every KeyboardInterrupt (naming Cancelled would import the pipeline on
    %load_ext): Cancelled is its one line, any other interrupt IPython's own traceback."""
    shell.user_ns["Cancelled"] = Cancelled
    shell.run_cell("raise Cancelled('Build cancelled')")
    out = capsys.readouterr()
    assert "Build cancelled" in out.out + out.err and "Traceback" not in out.out + out.err
    shell.run_cell("def interrupted():\n    raise KeyboardInterrupt\ninterrupted()")
    out = capsys.readouterr()
    text = re.sub(r"\x1b\[[0-9;]*m", "", out.out + out.err)  # IPython colours its traceback
    assert "KeyboardInterrupt" in text and "----> 3 interrupted()" in text


def test_parsers_are_built_on_first_use_and_help_is_intact(shell: Any) -> None:
    """%load_ext builds no argparse parser (most of its former cost); `%dcs_build?` still shows
    the usage line and every option, and the first call parses with the full parser."""
    script = (
        "from IPython.core.interactiveshell import InteractiveShell\n"
        "shell = InteractiveShell.instance()\n"
        "shell.run_line_magic('load_ext', 'dcs_magic')\n"
        "from dcs_magic.jupyter.magics import DcsMagics\n"
        "print(sorted(n for n in ('dockerfile', 'dcs_file', 'init_script', 'dcs_build', 'dcs_push',\n"
        "                         'dcs_check', 'dcs_launch', 'dcs_run') if getattr(DcsMagics, n)._parser))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"
    doc = shell.find_line_magic("dcs_build").__doc__
    assert "%dcs_build [-t TAGS]" in doc and "--no-cache" in doc and "Build NAME's context" in doc
    assert "%dockerfile [--base BASE]" in shell.find_cell_magic("dockerfile").__doc__
    with pytest.raises(MagicUsageError, match="unrecognized arguments: --bogus"):
        shell.run_line_magic("dcs_check", "img --bogus")
