"""Dockerfile parsing, with no I/O: instructions, stages, COPY sources, an appended LABEL.

The parser follows the rules of Docker's own (moby/buildkit) parser rather than ad-hoc
regexes: parser directives at the top (`# escape=`, `# syntax=`, `# check=`), comments,
line continuations with the active escape character (comment and blank lines inside a
continuation are skipped), leading `--flag[=value]` words, JSON (exec) form versus shell
form, and heredoc bodies (`RUN <<EOF`), which are kept so they do not read as instructions.

`stages()` resolves each FROM with the global ARGs; `final_base()` names the image a build
starts from. What the parsed file means on Databricks is model/lint.py's concern.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = [
    "INSTRUCTIONS",
    "Dockerfile",
    "Instruction",
    "Stage",
    "copy_sources",
    "final_base",
    "parse",
    "shell_words",
    "stages",
    "with_label_instruction",
]


INSTRUCTIONS = frozenset({
    "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK",
    "LABEL", "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR",
})
# Instructions whose arguments may be a JSON array (exec form).
_JSON_FORM = frozenset({"ADD", "CMD", "COPY", "ENTRYPOINT", "RUN", "SHELL", "VOLUME"})
_DIRECTIVE_NAMES = frozenset({"syntax", "escape", "check"})
_DIRECTIVE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")
# `<<EOF`, `<<-EOF`, `<<"EOF"` but not the here-string `<<<`.
_HEREDOC = re.compile(r"(?<!<)<<(-?)([\"']?)([A-Za-z_][A-Za-z0-9_]*)\2")
_HEREDOC_INSTRUCTIONS = frozenset({"RUN", "COPY", "ADD"})


# -- data -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction.

    `keyword` is upper-case; `args` is the text after the flags with continuation lines
    joined the way Docker joins them; `flags` are the leading `--name[=value]` words as
    `(name, value)` pairs in order (value None for a bare `--name`); `raw` is the source
    lines as written; `lineno`/`end_lineno` are 1-based; `heredocs` holds heredoc bodies.
    """

    lineno: int
    keyword: str
    args: str
    flags: tuple[tuple[str, str | None], ...] = ()
    raw: str = ""
    end_lineno: int = 0
    heredocs: tuple[str, ...] = ()

    def flag(self, name: str) -> str | None:
        """The value of the last `--name=value` flag (None when absent or bare)."""
        values = [v for k, v in self.flags if k == name]
        return values[-1] if values else None

    def has_flag(self, name: str) -> bool:
        return any(k == name for k, _ in self.flags)

    @property
    def exec_form(self) -> list[str] | None:
        """The JSON array of an exec-form instruction, None for shell form.

        Like Docker, text that starts with `[` but is not a JSON array of strings is
        shell form.
        """
        if self.keyword not in _JSON_FORM or not self.args.lstrip().startswith("["):
            return None
        try:
            value = json.loads(self.args)
        except ValueError:
            return None
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
        return None


@dataclass(frozen=True)
class Dockerfile:
    """A parsed Dockerfile: directives (lower-case names), the escape char, instructions."""

    directives: tuple[tuple[str, str], ...]
    escape: str
    instructions: tuple[Instruction, ...]
    problems: tuple[tuple[int, str], ...] = ()


@dataclass(frozen=True)
class Stage:
    """One build stage. `base` is the FROM image after ARG substitution (None when an ARG
    has no value), `parent` the index of the earlier stage it builds on, if any."""

    index: int
    name: str | None
    base: str | None
    platform: str | None
    from_instruction: Instruction
    instructions: tuple[Instruction, ...]
    parent: int | None = None

# -- parser -----------------------------------------------------------------------------


def parse(text: str) -> Dockerfile:
    """Parse Dockerfile text into instructions, the way Docker's parser reads it."""
    lines = text.removeprefix("\ufeff").splitlines()
    directives, escape, problems = _parse_directives(lines)
    instructions: list[Instruction] = []
    i = 0
    while i < len(lines):
        instruction, i = _read_instruction(lines, i, escape)
        if instruction is not None:
            instructions.append(instruction)
    return Dockerfile(tuple(directives), escape, tuple(instructions), tuple(problems))


def _parse_directives(lines: list[str]) -> tuple[list[tuple[str, str]], str, list[tuple[int, str]]]:
    """Leading `# name=value` lines; the first line that is not one ends them (as in Docker)."""
    directives: list[tuple[str, str]] = []
    problems: list[tuple[int, str]] = []
    escape = "\\"
    for lineno, line in enumerate(lines, 1):
        match = _DIRECTIVE.match(line)
        if not match or match[1].lower() not in _DIRECTIVE_NAMES:
            break
        name, value = match[1].lower(), match[2]
        if any(name == seen for seen, _ in directives):
            problems.append((lineno, f"only one {name} parser directive can be used"))
            break
        if name == "escape":
            if value not in ("\\", "`"):
                problems.append((lineno, f"invalid escape directive {value!r}: it must be \\ or `"))
                continue
            escape = value
        directives.append((name, value))
    return directives, escape, problems


def _read_instruction(lines: list[str], i: int, escape: str) -> tuple[Instruction | None, int]:
    """Read the logical line starting at index i; returns (instruction or None, next index)."""
    start = i
    first = lines[i].lstrip()
    i += 1
    if not first or first.startswith("#"):
        return None, i
    text, more = _trim_continuation(first, escape)
    parts = [text]
    while more and i < len(lines):
        line = lines[i]
        i += 1
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue  # Docker skips comment and empty lines inside a continuation
        text, more = _trim_continuation(line, escape)
        parts.append(text)
    logical = "".join(parts).strip()
    if not logical:
        return None, i
    match = re.match(r"(\S+)\s*(.*)", logical, re.DOTALL)
    assert match is not None  # logical is non-empty and stripped
    keyword, rest = match[1].upper(), match[2]
    args, flags = _extract_flags(rest)
    heredocs: tuple[str, ...] = ()
    if keyword in _HEREDOC_INSTRUCTIONS:
        heredocs, i = _read_heredocs(lines, i, args)
    instruction = Instruction(
        lineno=start + 1, keyword=keyword, args=args, flags=flags,
        raw="\n".join(lines[start:i]), end_lineno=i, heredocs=heredocs,
    )
    return instruction, i


def _trim_continuation(line: str, escape: str) -> tuple[str, bool]:
    """Strip a trailing escape char (plus blanks); True when the line continues."""
    match = re.search(re.escape(escape) + r"[ \t]*$", line)
    if match:
        return line[: match.start()], True
    return line, False


def _extract_flags(rest: str) -> tuple[str, tuple[tuple[str, str | None], ...]]:
    """Split leading `--name[=value]` words off the arguments (Docker's extractBuilderFlags).

    Quotes inside a flag word are removed; a lone `--` ends the flags.
    """
    flags: list[tuple[str, str | None]] = []
    pos = 0
    while True:
        while pos < len(rest) and rest[pos].isspace():
            pos += 1
        if not rest.startswith("--", pos):
            return rest[pos:], tuple(flags)
        word, pos = _flag_word(rest, pos)
        if word == "--":
            return rest[pos:].lstrip(), tuple(flags)
        name, eq, value = word[2:].partition("=")
        flags.append((name, value if eq else None))


def _flag_word(text: str, pos: int) -> tuple[str, int]:
    """One whitespace-delimited word from pos with quotes removed; returns (word, end)."""
    word: list[str] = []
    quote = ""
    while pos < len(text):
        ch = text[pos]
        if not quote and ch.isspace():
            break
        if ch in "'\"" and (not quote or quote == ch):
            quote = "" if quote else ch
        elif ch == "\\" and pos + 1 < len(text):
            pos += 1
            word.append(text[pos])
        else:
            word.append(ch)
        pos += 1
    return "".join(word), pos


def _read_heredocs(lines: list[str], i: int, args: str) -> tuple[tuple[str, ...], int]:
    """Consume the bodies of the heredocs `args` opens (in order) from lines[i:]."""
    bodies: list[str] = []
    for match in _HEREDOC.finditer(args):
        strip_tabs, delimiter = match[1] == "-", match[3]
        body: list[str] = []
        while i < len(lines):
            line = lines[i]
            i += 1
            if (line.lstrip("\t") if strip_tabs else line) == delimiter:
                break
            body.append(line)
        bodies.append("\n".join(body))
    return tuple(bodies), i


# -- stages and ARG substitution --------------------------------------------------------


def final_base(text: str, build_args: Mapping[str, str] | None = None,
               target: str | None = None) -> str | None:
    """The image the built stage (`target`, else the last) starts FROM, following `FROM stage`
    chains; None for `scratch`, an unresolved ARG, or no FROM at all."""
    chain = stages(parse(text), build_args)
    stage = next((s for s in chain if target and s.name == target.lower()), chain[-1] if chain else None)
    while stage is not None and stage.parent is not None:
        stage = chain[stage.parent]
    if stage is None or not stage.base or stage.base.lower() == "scratch":
        return None
    return stage.base


def stages(dockerfile: Dockerfile, build_args: Mapping[str, str] | None = None) -> list[Stage]:
    """The build stages, FROM images resolved with the global ARGs (defaults, then build_args)."""
    args = _global_args(dockerfile.instructions, build_args or {})
    result: list[Stage] = []
    names: dict[str, int] = {}
    current: list[Instruction] = []
    from_instruction: Instruction | None = None
    for instruction in [*dockerfile.instructions, None]:
        if instruction is not None and instruction.keyword != "FROM":
            if from_instruction is not None:
                current.append(instruction)
            continue
        if from_instruction is not None:
            stage = _make_stage(len(result), from_instruction, current, args, names)
            if stage.name:
                names[stage.name] = stage.index
            result.append(stage)
        from_instruction, current = instruction, []
    return result


def _make_stage(index: int, instruction: Instruction, body: list[Instruction],
                args: Mapping[str, str], names: Mapping[str, int]) -> Stage:
    words = instruction.args.split()
    image = _substitute(words[0], args) if words else None
    name = words[2].lower() if len(words) >= 3 and words[1].lower() == "as" else None
    platform = instruction.flag("platform")
    platform = _substitute(platform, args) if platform else None
    parent = names.get(image.lower()) if image else None
    return Stage(index, name, image, platform, instruction, tuple(body), parent)


def _global_args(instructions: Iterable[Instruction], build_args: Mapping[str, str]) -> dict[str, str]:
    """ARG values declared before the first FROM: defaults, overridden by build args."""
    values: dict[str, str] = {}
    for instruction in instructions:
        if instruction.keyword == "FROM":
            break
        if instruction.keyword != "ARG":
            continue
        for word in shell_words(instruction.args):
            name, eq, default = word.partition("=")
            if name in build_args:
                values[name] = build_args[name]
            elif eq:
                values[name] = _substitute(default, values) or ""
    return values


_VARIABLE = re.compile(
    r"\$\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-+])(?P<word>[^}]*))?\}"
    r"|\$(?P<plain>[A-Za-z_][A-Za-z0-9_]*)"
)


def _substitute(text: str, values: Mapping[str, str]) -> str | None:
    """`$VAR`, `${VAR}`, `${VAR:-word}`, `${VAR:+word}` with values; None if a VAR is unset."""
    unresolved = False

    def replace(match: re.Match[str]) -> str:
        nonlocal unresolved
        name = match["braced"] or match["plain"]
        op, word = match["op"], match["word"] or ""
        value = values.get(name)
        is_set = value is not None and (value != "" or not (op or "").startswith(":"))
        if op and op.endswith("-"):
            return value if is_set and value is not None else word
        if op and op.endswith("+"):
            return word if is_set else ""
        if value is None:
            unresolved = True
            return ""
        return value

    result = _VARIABLE.sub(replace, text)
    return None if unresolved else result


def shell_words(text: str) -> list[str]:
    try:
        return shlex.split(text, comments=False, posix=True)
    except ValueError:  # unbalanced quotes: Docker would reject it; lint what we can
        return text.split()


_URL = re.compile(r"^[a-z][a-z0-9+.-]*://|^git@", re.IGNORECASE)


def copy_sources(dockerfile: Dockerfile | str) -> list[tuple[int, str]]:
    """(line, source) for each COPY/ADD source read from the build context.

    Left out: `--from` copies, heredocs, URLs and git sources of ADD, and sources with a
    variable (`$X`), whose value the context alone does not tell.
    """
    if isinstance(dockerfile, str):
        dockerfile = parse(dockerfile)
    found: list[tuple[int, str]] = []
    for instruction in dockerfile.instructions:
        if instruction.keyword not in ("COPY", "ADD") or instruction.has_flag("from") or instruction.heredocs:
            continue
        words = instruction.exec_form or shell_words(instruction.args)
        for source in words[:-1]:
            if source and not _URL.match(source) and "$" not in source:
                found.append((instruction.lineno, source))
    return found


_PLAIN_LABEL_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\Z")
_PLAIN_LABEL_VALUE = re.compile(r"[A-Za-z0-9._:/@+-]*\Z")


def with_label_instruction(text: str, labels: Mapping[str, str]) -> str | None:
    """TEXT with one `LABEL k="v" ...` instruction appended to its last stage, or None when
    that cannot be done safely (keys or values that would need quoting rules, or a last line
    that continues onto the next one).

    Why: the classic builder turns each label of the build API's `labels` option into a
    LABEL step of its own (a container commit each, about 0.1 s), while one instruction
    holding them all is one step.
    """
    if not labels or not all(_PLAIN_LABEL_KEY.match(k) and _PLAIN_LABEL_VALUE.match(v) for k, v in labels.items()):
        return None
    escape = parse(text).escape
    last = next((line.rstrip() for line in reversed(text.splitlines()) if line.strip()), "")
    if last.endswith(escape):  # the file ends inside a continuation: a line appended would join it
        return None
    body = text if text.endswith("\n") or not text else text + "\n"
    return body + "LABEL " + " ".join(f'{key}="{value}"' for key, value in labels.items()) + "\n"
