"""`%dcs_outdated [NOTEBOOK]` in a real InteractiveShell, against a registry on 127.0.0.1 speaking
the distribution API (support/oci_registry.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError as MagicUsageError
from support.oci_registry import Store, multi_arch, serving

from dcs_magic.errors import LockError
from dcs_magic.model.drift import OutdatedReport
from dcs_magic.ops.lock import ImageLock, Lock, lock_path, write_lock


def notebook_with_lock(tmp_path: Path, base: str, digest: str) -> Path:
    notebook = tmp_path / "app.ipynb"
    notebook.write_text("{}")
    entry = ImageLock(dockerfile_sha256="0" * 64, base=base, base_digest=digest, tags=["127.0.0.1:5000/team/app:1"],
                      platform="linux/amd64").seal()
    write_lock(lock_path(notebook), Lock(images={"app": entry}, notebook=notebook.name))
    return notebook


def test_dcs_outdated_reads_this_notebook_s_lock_when_the_front_end_says_which(shell: Any, dcs_magics: Any,
                                                                                 tmp_path: Path) -> None:
    store = Store()
    old, _, _ = multi_arch(store)
    with serving(store) as host:
        nb = notebook_with_lock(tmp_path, f"{host}/team/base:1", old)
        with pytest.raises(MagicUsageError, match="needs the notebook whose lock to read"):
            shell.run_line_magic("dcs_outdated", "")
        shell.user_ns["__session__"] = str(nb)  # what ipykernel sets from Jupyter Server's JPY_SESSION_NAME
        report = shell.run_line_magic("dcs_outdated", "")
        assert isinstance(report, OutdatedReport) and report.exit_code == 0 and dcs_magics.last_outdated is report
        new, _, _ = multi_arch(store, python="3.12.3")
        moved = shell.run_line_magic("dcs_outdated", f"{nb} --name app")
    assert moved.exit_code == 1 and moved["app"].current == new
    assert "Python: 3.11.9 -> 3.12.3" in repr(moved) and "update: <code>dcs build" in moved._repr_html_()


def test_dcs_outdated_without_a_lock_raises_a_lock_error(shell: Any, tmp_path: Path) -> None:
    shell.user_ns["__vsc_ipynb_file__"] = str(tmp_path / "missing.ipynb")  # not a file: not this notebook
    with pytest.raises(MagicUsageError):
        shell.run_line_magic("dcs_outdated", "")
    with pytest.raises(LockError, match="there is no lock file"):
        shell.run_line_magic("dcs_outdated", "other.ipynb")
