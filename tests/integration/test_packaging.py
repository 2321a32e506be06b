"""The wheel ships the widget front-end and the `dcs` entry point (built for real with hatchling)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(out)], check=True, capture_output=True, text=True)
    (built,) = out.glob("dcs_magic-*.whl")
    return built


def test_wheel_contains_the_front_end_and_the_console_script(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        for asset in ("progress.js", "progress.css"):
            assert f"dcs_magic/static/{asset}" in names
            assert archive.read(f"dcs_magic/static/{asset}") == (ROOT / "js" / asset).read_bytes()
        entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        assert "dcs = dcs_magic.cli:main" in archive.read(entry_points).decode()
    assert not [n for n in names if n.startswith(("tests/", "dcs_magic/static/.."))]


def test_installed_package_reads_the_shipped_front_end(wheel: Path, tmp_path: Path) -> None:
    """Unpacked as an installed wheel is, the widget finds static/, not the checkout's js/."""
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = "import dcs_magic.jupyter.widgets as w; print(w.asset_path('progress.js'))"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env={"PYTHONPATH": str(site)},
                         check=True, capture_output=True, text=True).stdout.strip()
    assert out == str(site / "dcs_magic" / "static" / "progress.js")


def test_installed_package_provides_the_local_workspace(wheel: Path, tmp_path: Path) -> None:
    """`Workspace.local()` finds the preflight workspace through the wheel's entry point
    (`dcs_magic.workspaces`: local), not by importing it from the client."""
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    (entry_points,) = site.glob("dcs_magic-*.dist-info/entry_points.txt")
    assert "[dcs_magic.workspaces]\nlocal = dcs_magic.preflight:local_workspace" in entry_points.read_text()
    code = ("import sys\nfrom dcs_magic import Workspace\n"
            "assert 'dcs_magic.preflight' not in sys.modules\n"
            "ws = Workspace.local()\nprint(sys.modules['dcs_magic.preflight'].__file__)\n"
            "print(ws.spark_versions()[0]['name'].endswith('(local preflight)'))")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env={"PYTHONPATH": str(site)},
                         check=True, capture_output=True, text=True).stdout.splitlines()
    assert out == [str(site / "dcs_magic" / "preflight" / "__init__.py"), "True"]
