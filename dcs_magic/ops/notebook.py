"""Read what the `dcs` command needs from a notebook file, without running any of its code.

A notebook is a recipe: its `%%dockerfile`, `%%dcs_file` and `%%init_script` cells say what
to build, and its parameters cell says with which values. This module reads exactly those:

- Cells whose source starts with `%%dockerfile`, `%%dcs_file` or `%%init_script`; the magic
  line is parsed with the grammar the magics use too (model/cells.py), so the command line
  and the notebook can never disagree on what a line means.
- Parameters, following papermill's convention: code cells tagged `parameters` hold plain
  assignments (`name = literal`, `name: type = literal`). Only the right-hand sides are read,
  with `ast.literal_eval`; anything that would need code to run is an error naming the line.
  Several tagged cells are read in notebook order, later assignments winning, as they would
  when the notebook runs.

Variables a template sees (`resolve_variables`), strongest first:
1. `--var NAME=VALUE` on the command line,
2. the environment variable `DCS_VAR_<NAME>` (NAME exactly as the template writes it),
3. the parameters cells.
Values from 1 and 2 are strings, except where the parameters cell gives the name a
non-string literal (number, bool, list, ...): then the value is read as a Python literal
(`true`/`false`/`null` accepted too), so `{% if use_gpu %}` does not turn "False" into true.
A `--var NAME` that no template reads and no parameters cell sets is refused (`check_overrides`):
a misspelt name would otherwise change nothing.
Plain environment variables are deliberately not visible: a template must not pick up
whatever the CI runner happens to export (tokens included).

Cells are numbered from 1 counting every cell (markdown too), as they appear in the file.
"""

from __future__ import annotations

import ast
import json
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from ..errors import NotebookError, UsageError
from ..model.cells import (
    DockerfileLine,
    FileLine,
    InitScriptLine,
    parse_dockerfile_line,
    parse_file_line,
    parse_init_script_line,
    split_cell_magic,
)
from ..settings import VAR_PREFIX, environment

__all__ = [
    "DockerfileCell",
    "FileCell",
    "InitScriptCell",
    "Notebook",
    "RenderedContext",
    "check_overrides",
    "multiline_variables",
    "parse_parameters",
    "parse_var",
    "parse_vars",
    "read_notebook",
    "render_context",
    "resolve_variables",
]


_LITERAL_ALIASES = {"true": True, "false": False, "null": None, "none": None}


# A cell is its magic line's arguments (model/cells.py, the grammar the magics parse too), its
# body and its number in the notebook.


@dataclass(frozen=True, kw_only=True)
class DockerfileCell(DockerfileLine):
    """A `%%dockerfile [NAME] [--base IMAGE] [--context DIR] [--quiet]` cell."""

    template: str
    cell: int


@dataclass(frozen=True, kw_only=True)
class FileCell(FileLine):
    """A `%%dcs_file NAME PATH` cell: a file written into NAME's build context."""

    template: str
    cell: int


@dataclass(frozen=True, kw_only=True)
class InitScriptCell(InitScriptLine):
    """A `%%init_script NAME [--upload DEST]` cell."""

    text: str
    cell: int


@dataclass
class Notebook:
    """The parts of a notebook the `dcs` command uses. `dockerfiles` is keyed by NAME."""

    path: Path
    dockerfiles: dict[str, DockerfileCell]
    files: list[FileCell] = field(default_factory=list)
    init_scripts: dict[str, InitScriptCell] = field(default_factory=dict)
    parameters: dict[str, Any] = field(default_factory=dict)

    def dockerfile(self, name: str | None = None) -> DockerfileCell:
        """NAME's `%%dockerfile` cell; without NAME the only one (error when there are several)."""
        if name is None:
            if len(self.dockerfiles) == 1:
                return next(iter(self.dockerfiles.values()))
            names = ", ".join(sorted(self.dockerfiles))
            raise NotebookError(
                f"{self.path} has several %%dockerfile cells ({names}); say which one to use",
                hint="pass --name NAME",
            )
        try:
            return self.dockerfiles[name]
        except KeyError:
            names = ", ".join(sorted(self.dockerfiles))
            raise NotebookError(
                f"{self.path} has no %%dockerfile cell named {name!r} (it has: {names})",
                hint="check --name against the first line of the %%dockerfile cells",
            ) from None

    def files_for(self, name: str) -> list[FileCell]:
        """NAME's `%%dcs_file` cells in notebook order (a later cell for the same PATH wins)."""
        return [f for f in self.files if f.name == name]


def read_notebook(path: str | os.PathLike[str]) -> Notebook:
    """Read NOTEBOOK's build cells and parameters. Runs no notebook code.

    Raises NotebookError when the file is missing, is not a notebook, has no `%%dockerfile`
    cell, has two `%%dockerfile` cells with the same NAME, has a magic line the magics would
    reject, or has a parameters cell that is not plain literal assignments.
    """
    path = Path(path)
    cells = _load_cells(path)
    dockerfiles: dict[str, DockerfileCell] = {}
    files: list[FileCell] = []
    init_scripts: dict[str, InitScriptCell] = {}
    parameters: dict[str, Any] = {}
    for number, cell in enumerate(cells, start=1):
        if cell.get("cell_type") != "code":
            continue
        source = _source(cell)
        if "parameters" in _tags(cell, where=f"{path}, cell {number}"):
            parameters.update(parse_parameters(source, where=f"{path}, parameters cell {number}"))
        found = split_cell_magic(source)
        if found is None:
            continue
        magic, line, body = found
        where = f"{path}, cell {number}"
        if magic == "dockerfile":
            args = _parsed(parse_dockerfile_line, magic, line, where=where)
            if args.name in dockerfiles:
                first = dockerfiles[args.name].cell
                raise NotebookError(
                    f"{path}: two %%dockerfile cells are named {args.name!r}: cell {first} and "
                    f"cell {number} (cells counted from 1, markdown included)",
                    hint="give each %%dockerfile cell its own NAME, or delete the stale one",
                )
            dockerfiles[args.name] = DockerfileCell(**vars(args), template=body, cell=number)
        elif magic == "dcs_file":
            file_line = _parsed(parse_file_line, magic, line, where=where)
            files.append(FileCell(**vars(file_line), template=body, cell=number))
        else:
            script = _parsed(parse_init_script_line, magic, line, where=where)
            init_scripts[script.name] = InitScriptCell(**vars(script), text=body, cell=number)
    if not dockerfiles:
        raise NotebookError(
            f"{path} has no %%dockerfile cell, so there is nothing to build",
            hint="the first line of a code cell must be `%%dockerfile [NAME] [--base IMAGE]`",
        )
    return Notebook(path=path, dockerfiles=dockerfiles, files=files,
                    init_scripts=init_scripts, parameters=parameters)


def _load_cells(path: Path) -> list[dict[str, Any]]:
    """The cells of an nbformat 4 notebook, read as JSON (nbformat itself takes seconds to
    import, for jsonschema's format checkers); older notebooks are converted by nbformat."""
    if not path.exists():
        raise NotebookError(f"notebook {path} does not exist",
                            hint="check the path (it is relative to the current directory)")
    if not path.is_file():
        raise NotebookError(f"{path} is not a file", hint="pass the .ipynb file, not a directory")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise NotebookError(f"cannot read notebook {path}: {exc}") from exc
    try:
        nb = json.loads(text)
        if not isinstance(nb, dict) or not isinstance(nb.get("nbformat"), int):
            raise ValueError("no nbformat version number at its top level")
        if nb["nbformat"] < 4:
            import nbformat  # deferred: an nbformat 3 notebook (Jupyter before 2015) is converted

            nb = nbformat.reads(text, as_version=4)
    except Exception as exc:  # JSONDecodeError, ValueError, nbformat's NotJSONError, KeyError, ...
        raise NotebookError(
            f"{path} is not a Jupyter notebook (.ipynb JSON): {_first_line(exc)}",
            hint="pass the .ipynb file saved by Jupyter",
        ) from exc
    cells = nb.get("cells")
    if not isinstance(cells, list) or not all(isinstance(cell, dict) for cell in cells):
        raise NotebookError(f"{path} is not a Jupyter notebook: it has no list of cells",
                            hint="pass the .ipynb file saved by Jupyter")
    return cells


def _tags(cell: Mapping[str, Any], *, where: str) -> list[str]:
    """The cell's `metadata.tags` (a list of strings in nbformat 4); anything else is refused."""
    metadata = cell.get("metadata") or {}
    tags = metadata.get("tags") if isinstance(metadata, Mapping) else None
    if tags is None:
        return []
    if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
        raise NotebookError(f"{where}: metadata.tags must be a list of strings, not {tags!r:.80}",
                            hint='fix the cell\'s tags (Jupyter: the property inspector), e.g. "tags": ["parameters"]')
    return tags


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]


def _source(cell: Mapping[str, Any]) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


_Line = TypeVar("_Line")


def _parsed(parse: Callable[[str], _Line], magic: str, line: str, *, where: str) -> _Line:
    """LINE parsed with the magic's grammar (model/cells.py); a NotebookError naming the cell
    for a line the magic would reject."""
    try:
        return parse(line)
    except UsageError as exc:
        raise NotebookError(
            f"{where}: `%%{magic} {_printable(line)}` is not a valid magic line: {_first_line(exc)}",
            hint=f"run `%%{magic}?` in a notebook for its arguments",
        ) from exc


def _printable(line: str) -> str:
    """LINE for a message: control characters (a NUL byte) as escapes, never raw on a terminal."""
    return "".join(ch if ch.isprintable() or ch == " " else repr(ch)[1:-1] for ch in line)


# -- parameters --------------------------------------------------------------------------


def parse_parameters(source: str, *, where: str = "parameters cell") -> dict[str, Any]:
    """The literal assignments of a papermill-style parameters cell, in order.

    Accepts `name = literal`, `a = b = literal`, `name: type = literal`, comments, blank
    lines and bare string expressions (docstrings). Anything else raises NotebookError
    naming the line, because the `dcs` command runs no notebook code.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise NotebookError(
            f"{where}, line {exc.lineno}: not plain Python ({exc.msg}): {(exc.text or '').strip()!r}",
            hint="a parameters cell holds only `name = literal` lines (no magics, no ! commands)",
        ) from exc
    values: dict[str, Any] = {}
    lines = source.splitlines()
    for node in tree.body:
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) \
                and isinstance(node.value.value, str):
            continue  # a docstring-like comment
        targets, value = _assignment(node)
        if targets is None or value is None:
            raise _not_literal(where, node, lines, "is not a `name = value` assignment")
        try:
            literal = ast.literal_eval(value)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError) as exc:
            raise _not_literal(where, node, lines, "assigns something that is not a literal") from exc
        for target in targets:
            values[target] = literal
    return values


def _assignment(node: ast.stmt) -> tuple[list[str] | None, ast.expr | None]:
    if isinstance(node, ast.Assign) and all(isinstance(t, ast.Name) for t in node.targets):
        return [t.id for t in node.targets], node.value  # type: ignore[attr-defined]
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value:
        return [node.target.id], node.value
    return None, None


def _not_literal(where: str, node: ast.stmt, lines: list[str], what: str) -> NotebookError:
    text = lines[node.lineno - 1].strip() if 0 < node.lineno <= len(lines) else ""
    return NotebookError(
        f"{where}, line {node.lineno}: `{text}` {what}; the dcs command runs no notebook code",
        hint="use literals only (strings, numbers, True/False/None, lists, dicts), "
        "or pass the value with --var NAME=VALUE",
    )


# -- variables ---------------------------------------------------------------------------


def parse_var(text: str) -> tuple[str, str]:
    """`NAME=VALUE` -> (NAME, VALUE); UsageError (a bad `--var`) for anything else."""
    name, sep, value = text.partition("=")
    name = name.strip()
    if not sep or not name.isidentifier():
        raise UsageError(
            f"--var {text!r} is not NAME=VALUE with NAME a Python identifier",
            hint="write it like --var base_image=registry.example.com/base:1.0",
        )
    return name, value


def parse_vars(items: Iterable[str]) -> dict[str, str]:
    """Several `NAME=VALUE` strings -> dict (later ones win)."""
    return dict(parse_var(item) for item in items)


def check_overrides(notebook: Notebook, overrides: Mapping[str, str] | None) -> None:
    """UsageError when a `--var NAME` names a variable NOTEBOOK never uses: no `%%dockerfile` or
    `%%dcs_file` template reads it and no parameters cell sets it. `--var flavor=...` for a
    template's `flavour` would otherwise change nothing, silently; the error names the closest
    name it does use. A template that does not parse uses every name (rendering says what is
    wrong with it). `DCS_VAR_<NAME>` variables are not checked: a CI runner may export them
    for several notebooks."""
    if not overrides:
        return
    used = set(notebook.parameters)
    templates = [cell.template for cell in notebook.dockerfiles.values()] + [f.template for f in notebook.files]
    for template in templates:
        names = _template_names(template)
        if names is None:
            return
        used |= names
    for name in overrides:
        if name in used:
            continue
        import difflib

        close = difflib.get_close_matches(name, sorted(used), n=1)
        shown = ", ".join(sorted(used)[:12]) + (", ..." if len(used) > 12 else "")
        raise UsageError(
            f"--var {name}: {notebook.path} never uses a variable {name!r} (no %%dockerfile or %%dcs_file "
            "template reads it, no parameters cell sets it)" + (f"; did you mean {close[0]!r}?" if close else ""),
            hint=f"--var {close[0]}=VALUE" if close else
            f"the variables it uses: {shown}" if used else "its templates use no variable")


def resolve_variables(parameters: Mapping[str, Any], overrides: Mapping[str, str] | None = None,
                      environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Template variables: `overrides` (--var) > `DCS_VAR_<NAME>` in `environ` > `parameters`.

    `environ` defaults to the process environment. A string value replacing a non-string parameter is
    read as a Python literal (see the module docstring).
    """
    environ = environment() if environ is None else environ
    variables = dict(parameters)
    from_env = {k[len(VAR_PREFIX):]: v for k, v in environ.items()
                if k.startswith(VAR_PREFIX) and k[len(VAR_PREFIX):].isidentifier()}
    for source, values in ((f"environment variable {VAR_PREFIX}", from_env),
                           ("--var ", dict(overrides or {}))):
        for name, text in values.items():
            variables[name] = _typed(name, text, parameters, source)
    return variables


def multiline_variables(template: str, overrides: Mapping[str, str] | None = None,
                        environ: Mapping[str, str] | None = None) -> list[str]:
    """Where a `--var` or `DCS_VAR_<NAME>` value with a newline reaches TEMPLATE (a Dockerfile
    template), e.g. `["--var run_cmd"]`: pasted into a Dockerfile, each newline starts a new
    instruction. Names the template does not use are left out."""
    environ = environment() if environ is None else environ
    used = _template_names(template)
    found = []
    for name, text in sorted((overrides or {}).items()):
        if ("\n" in text or "\r" in text) and (used is None or name in used):
            found.append(f"--var {name}")
    for key, text in sorted(environ.items()):
        name = key[len(VAR_PREFIX):]
        if key.startswith(VAR_PREFIX) and name not in (overrides or {}) and ("\n" in text or "\r" in text) \
                and (used is None or name in used):
            found.append(f"{VAR_PREFIX}{name}")
    return found


def _template_names(template: str) -> set[str] | None:
    """The variables TEMPLATE reads; None when it does not parse (then every name counts)."""
    from ..model.template import template_variables

    return template_variables(template)


def _typed(name: str, text: str, parameters: Mapping[str, Any], source: str) -> Any:
    default = parameters.get(name)
    if name not in parameters or default is None or isinstance(default, str):
        return text
    stripped = text.strip()
    if stripped.lower() in _LITERAL_ALIASES:
        return _LITERAL_ALIASES[stripped.lower()]
    try:
        return ast.literal_eval(stripped)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError) as exc:
        raise NotebookError(
            f"{source}{name}: {text!r} is not a Python literal, but the parameters cell gives "
            f"{name} a {type(default).__name__} value ({default!r})",
            hint=f"give a {type(default).__name__} literal, e.g. {default!r}",
        ) from exc


# -- rendering ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RenderedContext:
    """NAME's build context written to disk: the Dockerfile and the `%%dcs_file` files."""

    name: str
    context_dir: Path
    dockerfile: str
    dockerfile_sha256: str
    files: tuple[Path, ...]
    base: str | None
    findings: tuple[Any, ...] = ()


def render_context(notebook: Notebook, name: str | None, variables: Mapping[str, Any],
                   context_dir: str | os.PathLike[str]) -> RenderedContext:
    """Render NAME's `%%dockerfile` and `%%dcs_file` cells with VARIABLES into CONTEXT_DIR.

    The same functions as the magics (dcs_magic.ops.context) do the work, so a notebook run in
    Jupyter and `dcs render` write the same bytes. A TemplateError (a missing variable, a
    bad construct) says which cell it came from.
    """
    from ..errors import TemplateError
    from .context import render_dockerfile, write_file

    cell = notebook.dockerfile(name)
    try:
        # Headless, a COPY source may come from a step between `dcs render` and `dcs build` (the
        # quickstart's `pip download` of wheels/): no copy-missing here; the build names what is missing.
        rendered = render_dockerfile(cell.template, variables, name=cell.name,
                                     context_dir=context_dir, base=cell.base, check_copies=False)
        files = []
        for item in notebook.files_for(cell.name):
            text = _render_file(item, variables)
            files.append(write_file(rendered.context_dir, item.path, text))
    except TemplateError as exc:
        where = _cell_of(exc, notebook, cell)
        exc.message = f"{notebook.path}, {where}: {exc.message}"
        exc.args = (exc.message,)
        if exc.name:
            exc.hint = (f"define {exc.name} in the parameters cell (tagged `parameters`), pass "
                        f"--var {exc.name}=VALUE, or set {VAR_PREFIX}{exc.name}; the dcs command "
                        "does not run other cells")
        raise
    return RenderedContext(cell.name, rendered.context_dir, rendered.text, rendered.sha256,
                           tuple(files), cell.base, rendered.findings)


def _render_file(item: FileCell, variables: Mapping[str, Any]) -> str:
    from ..model.template import render

    return render(item.template, variables, template_name=f"{item.name}/{item.path}")


def _cell_of(exc: Exception, notebook: Notebook, cell: DockerfileCell) -> str:
    template = getattr(exc, "template", "") or ""
    for item in notebook.files_for(cell.name):
        if template == f"{item.name}/{item.path}":
            return f"%%dcs_file cell {item.cell}"
    return f"%%dockerfile cell {cell.cell}"
