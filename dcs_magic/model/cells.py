"""The grammar of the build cells: `%%dockerfile`, `%%dcs_file` and `%%init_script` (pure).

A build cell is a first line `%%magic ARGS` and a body. Two readers need the grammar: the
magics (jupyter/magics.py), which IPython hands the line and the body, and the `dcs` command
(ops/notebook.py), which finds the cells in a notebook file without running anything. Both
parse with the functions here, so Jupyter and the command line can never disagree on what a
line means; the `%%magic?` help is formatted from the same parsers (`cell_parser`).

    split_cell_magic(source) -> (magic, line, body) | None   a cell's source, split as IPython does
    parse_dockerfile_line(line) -> DockerfileLine     %%dockerfile [NAME] [--base IMAGE] [--context DIR] [--quiet]
    parse_file_line(line) -> FileLine                 %%dcs_file NAME PATH
    parse_init_script_line(line) -> InitScriptLine    %%init_script NAME [--upload DEST] [--profile P] [--local]

A line is split like a shell line (`%%dcs_file x "my file.txt"` names `my file.txt`), and a
trailing `# comment` is left out as a shell leaves it (`%%dockerfile app  # the app image`;
`#` inside a word or quotes is kept: `--label "x=#1"`). A bad
line raises `dcs_magic.errors.UsageError` with argparse's own message (`unrecognized
arguments: --bogus`, `the following arguments are required: path`), never SystemExit.
"""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from typing import NoReturn

from ..errors import UsageError
from ..settings import BUILD_ROOT

__all__ = [
    "CELL_MAGICS",
    "DockerfileLine",
    "FileLine",
    "InitScriptLine",
    "cell_parser",
    "parse_dockerfile_line",
    "parse_file_line",
    "parse_init_script_line",
    "split_cell_magic",
    "split_line",
    "strip_comment",
]

CELL_MAGICS = ("dockerfile", "dcs_file", "init_script")
"""The cell magics whose cells say what to build (and which init scripts go with it)."""

DEFAULT_NAME = "default"


@dataclass(frozen=True)
class DockerfileLine:
    """`%%dockerfile [NAME] [--base IMAGE] [--context DIR] [--quiet]`."""

    name: str = DEFAULT_NAME
    base: str | None = None
    context: str | None = None
    quiet: bool = False


@dataclass(frozen=True)
class FileLine:
    """`%%dcs_file NAME PATH`: PATH inside NAME's build context."""

    name: str
    path: str


@dataclass(frozen=True)
class InitScriptLine:
    """`%%init_script NAME [--upload DEST] [--profile PROFILE] [--local]`."""

    name: str
    upload: str | None = None
    profile: str | None = None
    local: bool = False


class _LineParser(argparse.ArgumentParser):
    """An argparse parser for a magic line: a bad line is a UsageError, not an exit (as
    IPython's MagicArgumentParser, whose messages the magics have always shown)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        # Only reachable through an action that exits (help, version); the parsers have none.
        raise UsageError((message or "").strip() or f"{self.prog}: exited with status {status}")


def _dockerfile_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", nargs="?", default=DEFAULT_NAME,
                        help="Build context name (default: 'default').")
    parser.add_argument("--base", default=None, help="Base image; available in the template as {{ base }}.")
    parser.add_argument("--context", default=None, help=f"Build context directory (default: {BUILD_ROOT}/NAME).")
    parser.add_argument("--quiet", action="store_true", help="Do not show the rendered Dockerfile.")


def _file_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="Build context name the file belongs to.")
    parser.add_argument("path", help="Path inside the build context, e.g. requirements.txt.")


def _init_script_arguments(parser: argparse.ArgumentParser) -> None:
    # argparse %-formats help strings: `%%` shows as one `%`.
    parser.add_argument("name", help="Init script name, referenced from %%dcs_launch and ClusterSpec.")
    parser.add_argument("--upload", default=None, metavar="DEST",
                        help="Upload to /Workspace/..., /Volumes/... or dbfs:/... through the workspace API.")
    parser.add_argument("--profile", default=None, help="Databricks config profile used for --upload.")
    parser.add_argument("--local", action="store_true", help="Upload to the local preflight workspace.")


_ARGUMENTS: dict[str, Callable[[argparse.ArgumentParser], None]] = {
    "dockerfile": _dockerfile_arguments,
    "dcs_file": _file_arguments,
    "init_script": _init_script_arguments,
}


def cell_parser(magic: str, *, description: str | None = None,
                formatter_class: type[argparse.HelpFormatter] = argparse.HelpFormatter,
                ) -> argparse.ArgumentParser:
    """A new parser for MAGIC's line (one of CELL_MAGICS), named after it.

    `description` and `formatter_class` only change the help text: the magics format
    `%%dockerfile?` with IPython's help formatter and the magic's docstring. A new parser
    each call, so that a caller may change it without touching anyone else's.
    """
    try:
        add_arguments = _ARGUMENTS[magic]
    except KeyError:
        raise ValueError(f"{magic!r} is not a build cell magic ({', '.join(CELL_MAGICS)})") from None
    parser = _LineParser(prog=magic, description=description, formatter_class=formatter_class,
                         add_help=False)
    add_arguments(parser)
    return parser


_WHITESPACE = " \t\r\n"  # shlex's: where split_line's words end


def strip_comment(line: str) -> str:
    """LINE without a trailing `# comment`, as a shell reads it: `#` starts a comment at the
    start of a word (after whitespace, or first on the line) outside quotes; inside a word
    (`--label x=#1`), quoted (`"x=#1"`, `'#'`) or escaped (`\\#`) it is a character. The words
    before it are kept as written (quotes and escapes included, for `split_line`)."""
    quote = ""
    in_word = False
    index = 0
    while index < len(line):
        char = line[index]
        if quote == "'":
            quote = "" if char == "'" else quote
        elif quote == '"':
            if char == "\\":
                index += 1  # \" and \\ stay inside the quotes
            elif char == '"':
                quote = ""
        elif char == "\\":
            index += 1  # the next character is part of the word, whatever it is
            in_word = True
        elif char in "'\"":
            quote, in_word = char, True
        elif char in _WHITESPACE:
            in_word = False
        elif char == "#" and not in_word:
            return line[:index]
        else:
            in_word = True
        index += 1
    return line


def split_line(line: str) -> list[str]:
    """LINE's words, split like a shell line: a trailing `# comment` is left out (`strip_comment`:
    `%dcs_build -t app:1  # the nightly tag`), quotes group words; UsageError for an unbalanced
    quote."""
    try:
        words = shlex.split(strip_comment(line))
    except ValueError as exc:  # "No closing quotation"
        raise UsageError(f"cannot split {line!r}: {exc}") from None
    for word in words:
        if "\0" in word:  # no path, name or image holds one; the OS refuses it in a path
            raise UsageError(f"{word!r} holds a NUL byte (\\x00): no name, path or image can",
                             hint="remove the \\x00 character from the magic line")
    return words


def _parse(magic: str, line: str) -> argparse.Namespace:
    return cell_parser(magic).parse_args(split_line(line))


def parse_dockerfile_line(line: str) -> DockerfileLine:
    """The arguments of a `%%dockerfile` line (the text after `%%dockerfile`)."""
    args = _parse("dockerfile", line)
    return DockerfileLine(name=args.name, base=args.base, context=args.context, quiet=args.quiet)


def parse_file_line(line: str) -> FileLine:
    """The arguments of a `%%dcs_file` line (the text after `%%dcs_file`)."""
    args = _parse("dcs_file", line)
    return FileLine(name=args.name, path=args.path)


def parse_init_script_line(line: str) -> InitScriptLine:
    """The arguments of an `%%init_script` line (the text after `%%init_script`)."""
    args = _parse("init_script", line)
    return InitScriptLine(name=args.name, upload=args.upload, profile=args.profile, local=args.local)


def split_cell_magic(source: str) -> tuple[str, str, str] | None:
    """(magic, line, body) when a cell's SOURCE is one of CELL_MAGICS, the way IPython splits it.

    IPython drops leading blank lines, then takes `%%name rest-of-line` and the remaining
    lines verbatim as the body (inputtransformer2.cell_magic). None for any other cell.
    """
    lines = source.splitlines(keepends=True)
    while lines and lines[0].strip() == "":
        lines.pop(0)
    if not lines or not lines[0].startswith("%%"):
        return None
    magic, _, line = lines[0][2:].rstrip().partition(" ")
    if magic not in CELL_MAGICS:
        return None
    return magic, line, "".join(lines[1:])
