"""The build cells' grammar (dcs_magic/model/cells.py): what `%%dockerfile`, `%%dcs_file` and
`%%init_script` lines mean, for the magics and the `dcs` command alike."""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Callable

import pytest

from dcs_magic.errors import UsageError
from dcs_magic.model.cells import (
    CELL_MAGICS,
    DockerfileLine,
    FileLine,
    InitScriptLine,
    cell_parser,
    parse_dockerfile_line,
    parse_file_line,
    parse_init_script_line,
    split_cell_magic,
    split_line,
)


@pytest.mark.parametrize("line, expected", [
    ("", DockerfileLine("default")),
    ("app", DockerfileLine("app")),
    ("app --base python:3.11 --context ./ctx --quiet",
     DockerfileLine("app", base="python:3.11", context="./ctx", quiet=True)),
    ("--quiet --base=img:1 app", DockerfileLine("app", base="img:1", quiet=True)),
    ('app --context "my dir"', DockerfileLine("app", context="my dir")),
])
def test_dockerfile_line(line: str, expected: DockerfileLine) -> None:
    assert parse_dockerfile_line(line) == expected


def test_file_line_splits_like_a_shell() -> None:
    assert parse_file_line("app requirements.txt") == FileLine("app", "requirements.txt")
    assert parse_file_line("app 'my file.txt'") == FileLine("app", "my file.txt")
    assert parse_file_line('app "scripts/run me.sh"') == FileLine("app", "scripts/run me.sh")


@pytest.mark.parametrize("line, expected", [
    ("setup", InitScriptLine("setup")),
    ("setup --upload /Workspace/Shared/setup.sh",
     InitScriptLine("setup", upload="/Workspace/Shared/setup.sh")),
    ("setup --upload dbfs:/x.sh --profile dev", InitScriptLine("setup", upload="dbfs:/x.sh", profile="dev")),
    ("--local setup --upload /Volumes/a/b/c/x.sh",
     InitScriptLine("setup", upload="/Volumes/a/b/c/x.sh", local=True)),
])
def test_init_script_line(line: str, expected: InitScriptLine) -> None:
    assert parse_init_script_line(line) == expected


@pytest.mark.parametrize("parse, line, message", [
    (parse_dockerfile_line, "--nope", "unrecognized arguments: --nope"),
    (parse_dockerfile_line, "a b", "unrecognized arguments: b"),
    (parse_dockerfile_line, "--base", "argument --base: expected one argument"),
    (parse_dockerfile_line, "-h", "unrecognized arguments: -h"),  # no help option: `%%dockerfile?`
    (parse_file_line, "default", "the following arguments are required: path"),
    (parse_file_line, "", "the following arguments are required: name, path"),
    (parse_file_line, "a b c", "unrecognized arguments: c"),
    (parse_init_script_line, "", "the following arguments are required: name"),
    (parse_init_script_line, "x --upload", "argument --upload: expected one argument"),
    (parse_file_line, 'a "b', "cannot split 'a \"b': No closing quotation"),
])
def test_a_bad_line_is_a_usage_error_with_argparses_message(parse: Callable[[str], object], line: str,
                                                             message: str) -> None:
    with pytest.raises(UsageError) as info:
        parse(line)
    assert info.value.message == message
    assert isinstance(info.value, ValueError)  # UsageError is a ValueError too


def test_split_line() -> None:
    assert split_line("a 'b c' \"d\"") == ["a", "b c", "d"]
    with pytest.raises(UsageError, match="cannot split"):
        split_line("'")


@pytest.mark.parametrize("line, words", [
    ("-t app:1     # live progress; BuildResult", ["-t", "app:1"]),  # the README's lines
    ("app  # the app image", ["app"]),
    ("# only a comment", []),
    ("--label x=#1", ["--label", "x=#1"]),  # inside a word: a character, as in a shell
    ('--label "x=#1"  # a label', ["--label", "x=#1"]),
    ("--label 'a # b' #c", ["--label", "a # b"]),
    ("a\\ #b", ["a #b"]),  # an escaped space keeps the word going
    ("a \\#b", ["a", "#b"]),
    ('--p "x\\" #" # c', ["--p", 'x" #']),
    ("app # the team's image", ["app"]),  # a quote in the comment is no unbalanced quote
])
def test_a_trailing_comment_is_left_out_as_a_shell_does(line: str, words: list[str]) -> None:
    assert split_line(line) == words
    shell = f'words() {{ for w in "$@"; do printf "%s\\n" "$w"; done; }}; words {line}'
    assert subprocess.run(["bash", "-c", shell], capture_output=True, text=True,
                          check=True).stdout.splitlines() == words  # what bash makes of the line


def test_comments_on_build_cell_lines() -> None:
    assert parse_dockerfile_line("app --base img:1  # the app image") == DockerfileLine("app", base="img:1")
    assert parse_file_line('app "my file.txt"  # copied by the Dockerfile') == FileLine("app", "my file.txt")
    assert parse_init_script_line("setup --local  # runs first") == InitScriptLine("setup", local=True)


def test_cell_parser_names_the_magic_and_formats_help_with_any_formatter() -> None:
    for magic in CELL_MAGICS:
        parser = cell_parser(magic)
        assert parser.prog == magic
        assert parser is not cell_parser(magic)  # a new one each call: changing it harms no one
    text = cell_parser("dockerfile", description="Render the cell.",
                       formatter_class=argparse.RawDescriptionHelpFormatter).format_help()
    assert text.startswith("usage: dockerfile [--base BASE] [--context CONTEXT] [--quiet] [name]")
    assert "Render the cell." in text and "{{ base }}" in text
    # argparse %-formats help strings: the init script help names %%dcs_launch with one %.
    assert "referenced from %dcs_launch" in cell_parser("init_script").format_help()
    with pytest.raises(ValueError, match="'dcs_build' is not a build cell magic"):
        cell_parser("dcs_build")


@pytest.mark.parametrize("source, expected", [
    ("%%dockerfile app --base x\nFROM x\nRUN y\n", ("dockerfile", "app --base x", "FROM x\nRUN y\n")),
    ("\n  \n%%dcs_file app req.txt\nnumpy\n", ("dcs_file", "app req.txt", "numpy\n")),
    ("%%init_script setup   \n#!/bin/bash\n", ("init_script", "setup", "#!/bin/bash\n")),
    ("%%dockerfile", ("dockerfile", "", "")),
    ("%%bash\necho hi\n", None),
    ("%%dockerfiles\nFROM x\n", None),
    ("x = 1\n%%dockerfile\n", None),
    (" %%dockerfile\nFROM x\n", None),
    ("", None),
])
def test_split_cell_magic(source: str, expected: tuple[str, str, str] | None) -> None:
    assert split_cell_magic(source) == expected


def test_the_grammar_loads_no_ipython() -> None:
    """The `dcs` command parses notebook cells with it: no IPython, no widgets, no jinja2."""
    code = ("import sys\nfrom dcs_magic.model.cells import parse_dockerfile_line\n"
            "parse_dockerfile_line('app --base x')\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'IPython', 'ipywidgets', "
            "'anywidget', 'jinja2', 'traitlets'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"
