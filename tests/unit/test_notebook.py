"""notebook.py: reading build cells and parameters from real .ipynb files made with nbformat."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_raw_cell

from dcs_magic.errors import NotebookError, UsageError
from dcs_magic.ops.notebook import (
    parse_parameters,
    parse_var,
    parse_vars,
    read_notebook,
    resolve_variables,
)


def write_nb(tmp_path: Path, *cells, name: str = "nb.ipynb") -> Path:
    path = tmp_path / name
    nbformat.write(new_notebook(cells=list(cells)), path)
    return path


def params(source: str):
    return new_code_cell(source, metadata={"tags": ["parameters"]})


def test_reads_build_cells_and_parameters(tmp_path):
    path = write_nb(
        tmp_path,
        new_markdown_cell("# Build\n%%dockerfile in markdown is ignored"),
        params("base_image = 'dcs-magic/dcs-base:bookworm'  # the base\nretries: int = 3\n"),
        new_code_cell("x = compute()  # never run"),
        new_code_cell("\n\n%%dockerfile app --base img:1 --context ctx --quiet\nFROM {{ base }}\n"),
        new_code_cell("%%dcs_file app requirements.txt\nsix\n"),
        new_code_cell("%%init_script setup --upload /Workspace/Shared/setup.sh\necho hi\n"),
        new_raw_cell("%%dockerfile raw cells are not code"),
    )
    nb = read_notebook(path)
    assert nb.parameters == {"base_image": "dcs-magic/dcs-base:bookworm", "retries": 3}
    cell = nb.dockerfile()
    assert (cell.name, cell.base, cell.context, cell.quiet, cell.cell) == ("app", "img:1", "ctx", True, 4)
    assert cell.template == "FROM {{ base }}\n"
    assert [(f.name, f.path, f.template, f.cell) for f in nb.files_for("app")] == [
        ("app", "requirements.txt", "six\n", 5)]
    script = nb.init_scripts["setup"]
    assert (script.upload, script.text, script.cell) == ("/Workspace/Shared/setup.sh", "echo hi\n", 6)


def test_default_name_and_list_sources(tmp_path):
    cell = new_code_cell("")
    cell.source = ["%%dockerfile\n", "FROM busybox\n", "RUN true\n"]  # a list, as some tools save it
    nb = read_notebook(write_nb(tmp_path, cell))
    assert nb.dockerfile("default").template == "FROM busybox\nRUN true\n"


def test_several_parameters_cells_run_in_order(tmp_path):
    nb = read_notebook(write_nb(tmp_path, params("a = 1\nb = 'x'"), params("a = b = [1, {'k': None}]"),
                                new_code_cell("%%dockerfile\nFROM scratch\n")))
    assert nb.parameters == {"a": [1, {"k": None}], "b": [1, {"k": None}]}


def test_missing_file(tmp_path):
    with pytest.raises(NotebookError, match="does not exist"):
        read_notebook(tmp_path / "nope.ipynb")


def test_an_nbformat_3_notebook_is_converted(tmp_path):
    path = tmp_path / "old.ipynb"
    path.write_text(json.dumps({"nbformat": 3, "nbformat_minor": 0, "metadata": {"name": "old"}, "worksheets": [
        {"cells": [{"cell_type": "code", "input": "%%dockerfile old\nFROM busybox\n", "language": "python",
                    "outputs": [], "metadata": {}}], "metadata": {}}]}))
    notebook = read_notebook(path)
    assert notebook.dockerfiles["old"].template == "FROM busybox\n"


@pytest.mark.parametrize("text", ['{"cells": []}', '{"nbformat": "4", "cells": []}', '{"nbformat": 4, "cells": [1]}'])
def test_json_that_is_not_a_notebook(tmp_path, text):
    path = tmp_path / "nb.ipynb"
    path.write_text(text)
    with pytest.raises(NotebookError, match="is not a Jupyter notebook"):
        read_notebook(path)


def test_directory_is_not_a_notebook(tmp_path):
    with pytest.raises(NotebookError, match="not a file"):
        read_notebook(tmp_path)


@pytest.mark.parametrize("text", ["print('hello')\n", '{"cells": 3}', '{"nbformat": 4}', "\x00\x01"])
def test_not_a_notebook(tmp_path, text):
    path = tmp_path / "script.ipynb"
    path.write_text(text)
    with pytest.raises(NotebookError, match="not a Jupyter notebook"):
        read_notebook(path)


def test_no_dockerfile_cell(tmp_path):
    path = write_nb(tmp_path, new_code_cell("%%dcs_file default a.txt\nx\n"), new_code_cell("%%dockerfilex\n"))
    with pytest.raises(NotebookError, match="no %%dockerfile cell"):
        read_notebook(path)


def test_duplicate_name_names_both_cells(tmp_path):
    path = write_nb(tmp_path, new_code_cell("%%dockerfile app\nFROM a\n"), new_markdown_cell("x"),
                    new_code_cell("%%dockerfile other\nFROM b\n"), new_code_cell("%%dockerfile app\nFROM c\n"))
    with pytest.raises(NotebookError) as info:
        read_notebook(path)
    assert "'app'" in str(info.value) and "cell 1" in str(info.value) and "cell 4" in str(info.value)


def test_default_name_duplicates_too(tmp_path):
    path = write_nb(tmp_path, new_code_cell("%%dockerfile\nFROM a\n"), new_code_cell("%%dockerfile default\nFROM b\n"))
    with pytest.raises(NotebookError, match="'default': cell 1 and cell 2"):
        read_notebook(path)


def test_magic_line_parsed_with_magic_parser(tmp_path):
    path = write_nb(tmp_path, new_code_cell("%%dockerfile app --bogus\nFROM a\n"))
    with pytest.raises(NotebookError, match=r"cell 1: `%%dockerfile app --bogus` is not a valid magic line"):
        read_notebook(path)
    path = write_nb(tmp_path, new_code_cell("%%dockerfile\nFROM a\n"), new_code_cell("%%dcs_file only_name\nx\n"))
    with pytest.raises(NotebookError, match="cell 2"):
        read_notebook(path)


def test_unknown_name_and_ambiguous_name(tmp_path):
    nb = read_notebook(write_nb(tmp_path, new_code_cell("%%dockerfile a\nFROM x\n"),
                                new_code_cell("%%dockerfile b\nFROM y\n")))
    with pytest.raises(NotebookError, match="several %%dockerfile cells"):
        nb.dockerfile()
    with pytest.raises(NotebookError, match="no %%dockerfile cell named 'c' \\(it has: a, b\\)"):
        nb.dockerfile("c")


@pytest.mark.parametrize("source, line", [
    ("a = 1\nb = compute()\n", 2),
    ("a = 1\n\nimport os\n", 3),
    ("x, y = 1, 2\n", 1),
    ("a = [1, foo]\n", 1),
    ("a = 1\nfor i in []: pass\n", 2),
    ("a = 1\nb = f'{a}'\n", 2),
])
def test_parameters_only_literals(source, line):
    with pytest.raises(NotebookError, match=rf"parameters cell, line {line}: `.*`"):
        parse_parameters(source)


def test_parameters_syntax_error_names_line():
    with pytest.raises(NotebookError, match="line 2: not plain Python"):
        parse_parameters("a = 1\n%env X=1\n")


def test_bad_parameters_cell_names_the_cell(tmp_path):
    path = write_nb(tmp_path, new_markdown_cell("m"), params("a = open('x')"), new_code_cell("%%dockerfile\nFROM a\n"))
    with pytest.raises(NotebookError, match=r"parameters cell 2, line 1: `a = open\('x'\)`"):
        read_notebook(path)


def test_parameters_allow_docstrings_comments_annotations():
    assert parse_parameters('"""Parameters."""\n# comment\nn: int = 2\ns = "x"\nt = (1, 2)\n') == {
        "n": 2, "s": "x", "t": (1, 2)}


def test_parse_var():
    assert parse_var("a=b=c") == ("a", "b=c")
    assert parse_var("empty=") == ("empty", "")
    assert parse_vars(["a=1", "a=2"]) == {"a": "2"}
    for bad in ("novalue", "=x", "1a=2", "a-b=1"):
        with pytest.raises(UsageError, match="NAME=VALUE"):  # `dcs`: exit 2
            parse_var(bad)


def test_precedence_var_over_env_over_parameters():
    parameters = {"base": "p", "registry": "p", "only_param": "p"}
    env = {"DCS_VAR_base": "env", "DCS_VAR_registry": "env", "base": "plain env is ignored",
           "DCS_VAR_new": "env-only"}
    got = resolve_variables(parameters, {"base": "cli"}, env)
    assert got == {"base": "cli", "registry": "env", "only_param": "p", "new": "env-only"}


def test_plain_environment_is_not_visible():
    assert resolve_variables({}, {}, {"HOME": "/root", "DATABRICKS_TOKEN": "x"}) == {}


def test_values_take_the_parameters_type():
    parameters = {"n": 1, "gpu": False, "pkgs": ["a"], "s": "text", "nothing": None}
    got = resolve_variables(parameters, {"n": "3", "gpu": "true", "pkgs": "['a', 'b']", "s": "4",
                                         "nothing": "5"}, {})
    assert got == {"n": 3, "gpu": True, "pkgs": ["a", "b"], "s": "4", "nothing": "5"}
    with pytest.raises(NotebookError, match=r"--var n: 'three' is not a Python literal.*int"):
        resolve_variables(parameters, {"n": "three"}, {})
    with pytest.raises(NotebookError, match="environment variable DCS_VAR_gpu"):
        resolve_variables(parameters, {}, {"DCS_VAR_gpu": "yes please"})
