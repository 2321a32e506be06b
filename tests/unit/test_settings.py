"""settings.py: the one owner of defaults, environment variable names and the
`DCS_SECRET_<SCOPE>_<KEY>` naming; no other module reads the environment itself."""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest

from dcs_magic import settings
from dcs_magic.preflight import secret_variable as preflight_secret_variable

PACKAGE = Path(__file__).resolve().parents[2] / "dcs_magic"


@pytest.mark.parametrize(("reference", "variable"), [
    ("{{secrets/dcs/registry}}", "DCS_SECRET_DCS_REGISTRY"),
    ("{{secrets/dcs-test/registry.password}}", "DCS_SECRET_DCS_TEST_REGISTRY_PASSWORD"),
    ("{{ secrets/Team/acr-sp }}", "DCS_SECRET_TEAM_ACR_SP"),
    ("{{secrets/a.b/c_d}}", "DCS_SECRET_A_B_C_D"),
    ("{{secrets/scope/kéy}}", "DCS_SECRET_SCOPE_K_Y"),
])
def test_secret_variable_names(reference: str, variable: str) -> None:
    assert settings.secret_variable(reference) == variable
    assert preflight_secret_variable is settings.secret_variable  # the local workspace's public name


def test_env_is_read_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DCS_TEST_SETTING", raising=False)
    assert settings.env("DCS_TEST_SETTING") is None and settings.env("DCS_TEST_SETTING", "x") == "x"
    monkeypatch.setenv("DCS_TEST_SETTING", "")
    assert settings.env("DCS_TEST_SETTING", "x") == ""  # set but empty: the caller decides
    monkeypatch.setenv("DCS_TEST_SETTING", "1")
    assert settings.env("DCS_TEST_SETTING") == "1" and settings.environment()["DCS_TEST_SETTING"] == "1"


def test_docker_config_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(settings.DOCKER_CONFIG, str(tmp_path))
    assert settings.docker_config_dir() == str(tmp_path)
    monkeypatch.delenv(settings.DOCKER_CONFIG)
    assert settings.docker_config_dir() == os.path.expanduser("~/.docker")


def _environment_reads(path: Path) -> list[str]:
    """`os.environ` / `os.getenv` / `os.putenv` uses and `from os import environ, getenv`."""
    found = []
    names = {"environ", "environb", "getenv", "getenvb", "putenv", "unsetenv"}
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Attribute) and node.attr in names and isinstance(node.value, ast.Name) \
                and node.value.id == "os":
            found.append(f"line {node.lineno}: os.{node.attr}")
        elif isinstance(node, ast.ImportFrom) and node.module == "os":
            found += [f"line {node.lineno}: from os import {a.name}" for a in node.names if a.name in names]
    return found


def test_only_settings_reads_the_environment() -> None:
    offenders = {path.relative_to(PACKAGE.parent).as_posix(): reads
                 for path in sorted(PACKAGE.rglob("*.py")) if path.name != "settings.py"
                 for reads in [_environment_reads(path)] if reads}
    assert offenders == {}, "read environment variables through dcs_magic.settings (env(), environment())"


def test_the_reader_finds_what_it_looks_for(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("import os\nfrom os import getenv\nx = os.environ.get('A')\n", encoding="utf-8")
    assert _environment_reads(sample) == ["line 2: from os import getenv", "line 3: os.environ"]
