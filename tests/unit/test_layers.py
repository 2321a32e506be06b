"""The package's floor plan, read from its source (docs/architecture.md draws it).

dcs_magic is layered; a module imports only from its own layer and the layers below it, at
module level or inside a function alike, and the project's own modules form no import circle:

    front-ends   dcs_magic.jupyter (magics, widgets, launch form)  |  dcs_magic.cli (`dcs`)
    preflight    dcs_magic.preflight: the local workspace, on top of ops
    ops          dcs_magic.ops: what a user asks for (build, push, check, lock, recipe, doctor...)
    adapters     dcs_magic.adapters: one per outside system (Docker engine, workspace, registry)
    model        dcs_magic.model: pure, no I/O
    base         dcs_magic.errors, dcs_magic.settings, dcs_magic._version

The two front-ends are peers: neither imports the other. `dcs_magic/__init__.py` (the public
names, imported lazily) stands above everything and nothing in the package imports it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "dcs_magic"
NAME = PACKAGE.name

# (rank, layer) per top-level part of a module name under dcs_magic; higher imports lower.
LAYERS: dict[str, tuple[int, str]] = {
    "_version": (0, "base"), "errors": (0, "base"), "settings": (0, "base"),
    "model": (1, "model"),
    "adapters": (2, "adapters"),
    "ops": (3, "ops"),
    "preflight": (4, "preflight"),
    "jupyter": (5, "jupyter"),
    "cli": (5, "cli"),
}
TOP = (9, "package")


def modules(root: Path = PACKAGE) -> dict[str, Path]:
    found = {}
    for path in root.rglob("*.py"):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def imports(module: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The project's modules MODULE imports anywhere in its source (functions included):
    `from .x import y` names `x`, and `x.y` too when that is a module (as
    shared/tools/import-cycles.py counts them)."""
    out: set[str] = set()
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            targets = [prefix] + [f"{prefix}.{alias.name}" for alias in node.names]
        else:
            continue
        # A module's own ancestor packages run before it whatever it imports: not an edge.
        out |= {t for t in targets if t in known and t != module and not module.startswith(t + ".")}
    return out


def layer(module: str) -> tuple[int, str]:
    parts = module.split(".")
    if len(parts) == 1:
        return TOP
    return LAYERS[parts[1]]


def upward_edges(graph: dict[str, set[str]]) -> list[str]:
    bad = []
    for source, targets in sorted(graph.items()):
        (rank, name) = layer(source)
        for target in sorted(targets):
            (target_rank, target_name) = layer(target)
            if target_rank > rank or (target_rank == rank and target_name != name):
                bad.append(f"{source} ({name}) imports {target} ({target_name})")
    return bad


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def graph_of(root: Path = PACKAGE) -> dict[str, set[str]]:
    known = modules(root)
    return {module: imports(module, path, known) for module, path in known.items()}


GRAPH = graph_of()


def test_every_module_is_in_a_layer() -> None:
    assert not [m for m in GRAPH if len(m.split(".")) > 1 and m.split(".")[1] not in LAYERS]


def test_no_import_points_up_or_across() -> None:
    assert upward_edges(GRAPH) == []


def test_no_import_circle() -> None:
    assert circles(GRAPH) == []


def test_the_package_init_is_imported_by_nobody() -> None:
    assert [m for m, targets in GRAPH.items() if NAME in targets] == []


def test_docs_name_every_layer() -> None:
    text = (PACKAGE.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
    assert all(f"dcs_magic/{part}" in text for part in LAYERS if part != "_version")


# The scans above find what they look for: a small package made on disk with one upward
# import hidden in a function, one across the front-ends and one circle.
@pytest.fixture
def toy(tmp_path: Path) -> Path:
    root = tmp_path / NAME
    files = {
        "__init__.py": "",
        "errors.py": "",
        "model/__init__.py": "",
        "model/a.py": "from . import b\n",
        "model/b.py": "def f():\n    from .a import x\n    from ..ops.run import go\n",
        "ops/__init__.py": "",
        "ops/run.py": "from ..model.a import x\nfrom ..errors import E\n",
        "cli/__init__.py": "",
        "cli/main.py": "import dcs_magic.jupyter.view\n",
        "jupyter/__init__.py": "",
        "jupyter/view.py": "from ..ops import run\n",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_the_scans_find_what_they_look_for(toy: Path) -> None:
    graph = graph_of(toy)
    assert upward_edges(graph) == [
        "dcs_magic.cli.main (cli) imports dcs_magic.jupyter.view (jupyter)",
        "dcs_magic.model.b (model) imports dcs_magic.ops.run (ops)",
    ]
    assert circles(graph) == [["dcs_magic.model.a", "dcs_magic.model.b", "dcs_magic.ops.run"]]
    assert graph["dcs_magic.jupyter.view"] == {"dcs_magic.ops", "dcs_magic.ops.run"}
