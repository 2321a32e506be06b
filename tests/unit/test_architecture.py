"""The package's seams, read from its source (ast, nothing imported from dcs_magic):

- engine.py is the one adapter on Docker: no other module imports `docker` (or `docker.*`);
- the Databricks SDK is used through its public names only: no `databricks.sdk` module or
  name starting with `_` is imported, read as an attribute, or overridden in a subclass;
- the workspace client does not know its emulator: workspace.py does not import the
  preflight package (`Workspace.local()` finds it through an entry point).
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "dcs_magic"
MODULES = sorted(PACKAGE.rglob("*.py"))


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _rel(path: Path) -> str:
    return path.relative_to(PACKAGE.parent).as_posix()


def imported_modules(tree: ast.AST) -> list[str]:
    """Every absolute module an import statement names (relative imports are the package's)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append(node.module)
    return found


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_sdk_uses(tree: ast.AST) -> list[str]:
    """`databricks.sdk` private names the module imports, reads or overrides."""
    problems: list[str] = []
    sdk_names: dict[str, object] = {}  # local name -> the SDK object it is bound to
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("databricks.sdk"):
                    if any(_private(part) for part in alias.name.split(".")):
                        problems.append(f"line {node.lineno}: import {alias.name}")
                    if alias.asname:
                        sdk_names[alias.asname] = importlib.import_module(alias.name)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith(
                "databricks.sdk"):
            module = str(node.module)
            if any(_private(part) for part in module.split(".")):
                problems.append(f"line {node.lineno}: from {module} import ...")
            for alias in node.names:
                if _private(alias.name):
                    problems.append(f"line {node.lineno}: from {module} import {alias.name}")
                else:
                    loaded = importlib.import_module(module)
                    sdk_names[alias.asname or alias.name] = getattr(loaded, alias.name, None)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            root = node.value
            while isinstance(root, ast.Attribute):
                root = root.value
            if isinstance(root, ast.Name) and root.id in sdk_names:
                problems.append(f"line {node.lineno}: {root.id}...{node.attr}")
        if isinstance(node, ast.ClassDef):
            bases = [sdk_names[b.id] for b in node.bases if isinstance(b, ast.Name) and b.id in sdk_names]
            for item in node.body:
                names = ([item.name] if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) else
                         [t.id for t in getattr(item, "targets", [getattr(item, "target", None)])
                          if isinstance(t, ast.Name)])
                for name in names:
                    if _private(name) and any(hasattr(base, name) for base in bases):
                        problems.append(f"line {item.lineno}: class {node.name} overrides {name}")
                # super()._private() inside a subclass of an SDK class
                for sub in ast.walk(item):
                    if (bases and isinstance(sub, ast.Attribute) and _private(sub.attr)
                            and isinstance(sub.value, ast.Call) and isinstance(sub.value.func, ast.Name)
                            and sub.value.func.id == "super"):
                        problems.append(f"line {sub.lineno}: super().{sub.attr} in {node.name}")
    return problems


def test_the_package_has_modules_to_check() -> None:
    names = {_rel(path) for path in MODULES}
    assert {"dcs_magic/adapters/engine.py", "dcs_magic/ops/check.py", "dcs_magic/ops/build.py",
            "dcs_magic/ops/push.py", "dcs_magic/adapters/workspace.py", "dcs_magic/preflight/launcher.py"} <= names


def test_only_engine_imports_docker() -> None:
    offenders = {_rel(path): mods for path in MODULES
                 if (mods := [m for m in imported_modules(_tree(path)) if m == "docker" or m.startswith("docker.")])
                 and path != PACKAGE / "adapters" / "engine.py"}
    assert offenders == {}
    assert "docker" in imported_modules(_tree(PACKAGE / "adapters" / "engine.py"))


def test_the_docker_scan_finds_a_docker_import() -> None:
    """The scan above would see each way of importing docker (so its empty answer means something)."""
    for source in ("import docker", "import docker.errors as e", "from docker.utils.build import exclude_paths",
                   "def f():\n    from docker import APIClient\n"):
        assert any(m.split(".")[0] == "docker" for m in imported_modules(ast.parse(source))), source
    assert imported_modules(ast.parse("from .engine import connect\nimport dockerfile_parse")) == [
        "dockerfile_parse"]


def test_no_private_databricks_sdk_names() -> None:
    offenders = {_rel(path): found for path in MODULES if (found := private_sdk_uses(_tree(path)))}
    assert offenders == {}


@pytest.mark.parametrize("source, expected", [
    ("from databricks.sdk.core import Config\nConfig._attributes", "Config..._attributes"),
    ("from databricks.sdk.core import Config\nclass C(Config):\n    def _resolve_host_metadata(self): ...",
     "overrides _resolve_host_metadata"),
    ("from databricks.sdk.core import Config\nclass C(Config):\n    def x(self):\n        super()._init_auth()",
     "super()._init_auth"),
    ("from databricks.sdk._base_client import _BaseClient", "import _BaseClient"),
])
def test_the_sdk_scan_finds_private_uses(source: str, expected: str) -> None:
    assert any(expected in problem for problem in private_sdk_uses(ast.parse(source)))


def test_public_sdk_uses_pass_the_scan() -> None:
    source = ("from databricks.sdk.core import Config\nfrom databricks.sdk import errors\n"
              "c = Config(host='https://x', token='t')\nc.authenticate()\nerrors.NotFound\n"
              "class C(Config):\n    def __init__(self, **kw):\n        super().__init__(**kw)\n")
    assert private_sdk_uses(ast.parse(source)) == []


def test_the_client_does_not_import_its_emulator() -> None:
    tree = _tree(PACKAGE / "adapters" / "workspace.py")
    relative = [("." * node.level) + (node.module or "") for node in ast.walk(tree)
                if isinstance(node, ast.ImportFrom) and node.level]
    absolute = imported_modules(tree)
    assert not [m for m in relative if m.lstrip(".").split(".")[0] in ("preflight", "local_workspace")]
    assert not [m for m in absolute if m.startswith(("dcs_magic.preflight", "dcs_magic.local_workspace"))]
    # nor through importlib: the only way in is the entry point group
    calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call)
             and getattr(node.func, "attr", getattr(node.func, "id", "")) in ("import_module", "__import__")]
    assert calls == []
