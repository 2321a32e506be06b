"""The README pastes as written: its notebook cells run in order, its `dcs` lines parse.

Which block is what, by its fence (and its section):

- Notebook cells: the ```` ```python ```` and ```` ```ipython ```` blocks of the sections in
  NOTEBOOK_SECTIONS ("Quickstart (in a notebook)"). `ipython` marks a cell that is not plain
  Python (`%%dockerfile`, `%%dcs_file`); `python` cells may hold line magics too, as notebook
  cells do. They run in README order in one IPython shell, the extension loaded by the
  README's own `%load_ext dcs_magic` cell, each cell as `run_cell` runs it (IPython's
  transformers included: `build = %dcs_build ...  # comment` is exactly what a user pastes).
- Python outside those sections (```` ```python ```` under "Command line": steps "from Python,
  without the command line") is a script, not cells: it must compile and import only names
  that exist. An ```` ```ipython ```` block outside NOTEBOOK_SECTIONS is refused, so a new
  notebook section cannot go untested unnoticed.
- Shell: ```` ```bash ```` blocks, and the `$ dcs ...` lines of unlabelled blocks (a command
  followed by its output). Each `dcs` line is parsed with the real argparse parser
  (`dcs_magic.cli.commands.make_parser`), not executed: a line with `[...]` is a synopsis,
  whose every `--option` must exist on its command; any other line must parse as written (a
  trailing `# comment` and a `> file` redirection left out).
- Unlabelled blocks otherwise are output (`dcs runtimes`' table, `dcs check`'s report) and
  are not run.

The quickstart needs what a user has: a Docker engine, a registry and a base image. What this
machine cannot reach is replaced by a stand-in, listed in STAND_INS with the reason; each
replaced text must still be in the README (the list cannot rot silently). Nothing else in a
cell is changed.
"""

from __future__ import annotations

import ast
import importlib
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from integration.conftest import dcs_base_image  # noqa: F401 - the session fixture, shared

from dcs_magic import BuildResult, CheckReport, PushResult
from dcs_magic.cli.commands import make_parser
from dcs_magic.jupyter.launch import LaunchWidget
from dcs_magic.model.cells import strip_comment

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
NOTEBOOK_SECTIONS = ("Quickstart (in a notebook)",)
CELL_LANGUAGES = ("python", "ipython")

# (text in a README cell, its stand-in, why): what this machine cannot reach.
STAND_INS = (
    ("databricksruntime/standard:17.3-LTS", "{base}",
     "Docker Hub is not reachable here: the from-scratch DCS base (scripts/make-base-image.sh) stands in"),
    ('["pandas==2.2.2", "scikit-learn==1.5.1"]', '["pandas", "numpy"]',
     "a build cannot reach PyPI here: two packages the base already has, which pip accepts without an index"),
    ("myregistry.azurecr.io/team/app", "{registry}/{repo}/app",
     "no Azure registry: the session's htpasswd-protected registry on 127.0.0.1"),
    ("--username SP_ID", "--username {username}",
     "that registry's user; its password is in ACR_PASSWORD, the variable the cell names"),
)



@dataclass(frozen=True)
class Block:
    section: str  # the `## ` heading above it
    language: str  # the fence's word ("" for none)
    code: str  # dedented to the fence
    line: int  # of the opening fence, from 1

    def __str__(self) -> str:
        return f"README.md:{self.line} ({self.section}, ```{self.language})"


_FENCE = re.compile(r"^(?P<indent> *)```(?P<language>[\w+-]*)\s*$")


def readme_blocks(text: str) -> list[Block]:
    """The fenced blocks of TEXT (indented ones, inside list items, too), in order."""
    blocks: list[Block] = []
    section, opened, body = "", None, []
    for number, line in enumerate(text.splitlines(), start=1):
        if opened is None:
            if line.startswith("## "):
                section = line[3:].strip()
            found = _FENCE.match(line)
            if found:
                opened, body = (found["indent"], found["language"], number), []
            continue
        indent, language, start = opened
        if line.strip() == "```" and line.startswith(indent):
            code = "".join(f"{item[len(indent):] if item.startswith(indent) else item.lstrip()}\n" for item in body)
            blocks.append(Block(section, language, code, start))
            opened = None
        else:
            body.append(line)
    assert opened is None, f"README.md:{opened[2]}: a fence that is never closed"
    return blocks


def notebook_cells(blocks: list[Block]) -> list[Block]:
    return [b for b in blocks if b.section in NOTEBOOK_SECTIONS and b.language in CELL_LANGUAGES]


@pytest.fixture(scope="module")
def blocks() -> list[Block]:
    return readme_blocks(README.read_text(encoding="utf-8"))


# -- which block is what -------------------------------------------------------------------------


def test_notebook_cells_are_where_the_readme_says(blocks: list[Block]) -> None:
    cells = notebook_cells(blocks)
    assert {b.section for b in blocks} >= set(NOTEBOOK_SECTIONS), "a notebook section was renamed"
    assert cells and cells[0].code == "%load_ext dcs_magic\n", cells[:1]
    assert [b.code.split()[0] for b in cells if b.language == "ipython"] == ["%%dockerfile", "%%dcs_file"]
    stray = [str(b) for b in blocks if b.language == "ipython" and b.section not in NOTEBOOK_SECTIONS]
    assert not stray, f"notebook cells outside {NOTEBOOK_SECTIONS}: add the section or fence them otherwise"
    text = "".join(b.code for b in cells)
    for replaced, _, why in STAND_INS:
        assert replaced in text, f"stand-in for {replaced!r} ({why}) no longer matches the README"


# -- the quickstart, run ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def readme_base(dcs_base_image: str) -> str:  # noqa: F811
    """The from-scratch DCS base (tests/integration/conftest.py's session fixture)."""
    return dcs_base_image


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_quickstart_runs_cell_by_cell_as_written(
        blocks: list[Block], shell: Any, readme_base: str, auth_registry: Any, docker_cleanup: Any,
        no_databricks_config: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    repo = docker_cleanup.unique("readme")
    values = {"base": readme_base, "registry": auth_registry.host, "repo": repo, "username": auth_registry.username}
    monkeypatch.setenv("ACR_PASSWORD", auth_registry.password)  # what the README's %dcs_push cell reads
    reference = docker_cleanup.add(f"{auth_registry.host}/{repo}/app:1")
    shell.extension_manager.unload_extension("dcs_magic")  # the README's first cell loads it
    results = []
    for cell in notebook_cells(blocks):
        source = cell.code
        for replaced, stand_in, _ in STAND_INS:
            source = source.replace(replaced, stand_in.format(**values))
        ran = shell.run_cell(source)
        assert ran.success, f"{cell} failed: {ran.error_before_exec or ran.error_in_exec!r}\n{source}"
        results.append(ran.result)

    user = shell.user_ns
    assert "dcs_magic" in shell.extension_manager.loaded
    assert (tmp_path / "dcs-build" / "default" / "Dockerfile").read_text() == (
        f"FROM {readme_base}\nRUN /databricks/python3/bin/pip install pandas numpy\n")
    assert (tmp_path / "dcs-build" / "default" / "requirements.txt").read_text() == "pandas\nnumpy\n"
    build, push, report = user["build"], user["push"], user["report"]
    assert isinstance(build, BuildResult) and build.tags == [reference]
    assert isinstance(push, PushResult) and push.reference == reference
    assert push.pinned == f"{auth_registry.host}/{repo}/app@{push.digest}"
    assert push.secret_ref == "{{secrets/ci/acr-password}}"
    assert isinstance(report, CheckReport) and report.image == reference
    widget = results[-1]  # `%dcs_launch --local`, the last cell's value, shown by the notebook
    assert isinstance(widget, LaunchWidget) and widget.local
    assert widget.controls["image"].value == push.pinned  # the last push, pinned by digest
    widget.close()


# -- the shell lines, parsed ------------------------------------------------------------------------


def dcs_lines(blocks: list[Block]) -> list[tuple[Block, str]]:
    """Every `dcs ...` command line: of ```bash blocks, and `$ dcs ...` in unlabelled ones."""
    found = []
    for block in blocks:
        for line in block.code.splitlines():
            line = line.strip()
            if block.language == "bash" and line.startswith("dcs "):
                found.append((block, line))
            elif block.language == "" and line.startswith("$ dcs "):
                found.append((block, line[2:]))
    return found


def _options(parser: Any) -> dict[str, set[str]]:
    commands = next(a for a in parser._actions if a.dest == "command")  # noqa: SLF001 - argparse has no API for it
    return {name: {s for a in sub._actions for s in a.option_strings}  # noqa: SLF001
            for name, sub in commands.choices.items()}


def test_every_dcs_line_of_the_readme_parses(blocks: list[Block]) -> None:
    lines = dcs_lines(blocks)
    assert len(lines) >= 15, lines  # the command-line and jobs sections, the example outputs
    options = _options(make_parser())
    for block, line in lines:
        words = shlex.split(strip_comment(line))
        if ">" in words:  # `dcs export bundle --spec cluster.json > resources/dcs.yml`
            words = words[:words.index(">")]
        command = words[1]
        assert command in options, f"{block}: `{line}`: no command {command!r}"
        if "[" in line:  # a synopsis: `dcs render NOTEBOOK [--var K=V]`
            named = {w.strip("[]|").split("=")[0] for w in words if w.strip("[]|").startswith("-")}
            assert named <= options[command], f"{block}: `{line}`: {named - options[command]} unknown"
            continue
        try:
            args = make_parser().parse_args(words[1:])
        except SystemExit as exc:
            pytest.fail(f"{block}: `{line}` is refused by dcs (exit {exc.code})")
        if command == "run":  # `--parameters` takes the rest of the line: no dcs option after it
            assert not set(args.parameters) & options["run"], f"{block}: `{line}`: an option after --parameters"


def test_python_outside_the_notebook_sections_imports_what_exists(blocks: list[Block]) -> None:
    scripts = [b for b in blocks if b.language == "python" and b.section not in NOTEBOOK_SECTIONS]
    assert scripts
    for block in scripts:
        tree = ast.parse(block.code, filename=str(block))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                module = importlib.import_module(node.module)
                missing = [a.name for a in node.names if not hasattr(module, a.name)]
                assert not missing, f"{block}: {node.module} has no {missing}"
