"""Dockerfile parsing and the Databricks-aware linter, with no I/O.

The parser follows the rules of Docker's own (moby/buildkit) parser rather than ad-hoc
regexes: parser directives at the top (`# escape=`, `# syntax=`, `# check=`), comments,
line continuations with the active escape character (comment and blank lines inside a
continuation are skipped), leading `--flag[=value]` words, JSON (exec) form versus shell
form, and heredoc bodies (`RUN <<EOF`), which are kept so they do not read as instructions.

`lint(text)` runs on every `%%dockerfile` render. Its findings are warnings about what will
hurt on Databricks Container Services; none of them stops a render.

    rule                 when
    no-from              no FROM, or an instruction other than ARG before the first FROM
    invalid-base         a FROM image that is not a valid image reference
    mutable-base         a FROM image with no tag or `latest` and no digest (every stage)
    pip-mismatch         a pip other than the one of the base image's runtime line
    ml-base              a Databricks Runtime for ML image as the final base
    arm64-base           an arm64/aarch64 final base (tag, name or --platform)
    cmd-ignored          CMD / ENTRYPOINT in the final image (Databricks ignores them)
    buildkit-only        RUN --mount and other BuildKit-only syntax (docker-py uses the classic builder)
    unknown-instruction  a keyword Docker does not know (the engine rejects the file)
    parse-error          an invalid parser directive
    base-unsupported     a Databricks base whose runtime line is out of support (says since when)
    base-unknown-line    a Databricks base whose runtime line dcs-magic does not know (names the closest)
    jdk8-runtime         JDK 8 installed or selected while the line (base or `runtime=`) is 18 or later
    jars-shadow          files copied into /databricks/jars (they shadow the runtime's own classes)
    r-base-nfs           an R base (rbase / r): the cluster needs spark.databricks.driverNfs.enabled false
    copy-missing         a COPY/ADD source that is not in the build context (only when the
                         context's file list is given: `lint(text, context_files=...)`)

Only the final stage (and the stages it is built `FROM`) matters for the runtime rules;
every stage counts for `mutable-base` and `buildkit-only`.
"""

from __future__ import annotations

import fnmatch
import json
import posixpath
import re
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date

from . import runtime
from .imageref import ImageRef, parse_reference
from .runtime import Version

__all__ = [
    "Dockerfile",
    "Finding",
    "Instruction",
    "RuntimePaths",
    "Stage",
    "copy_sources",
    "databricks_runtime_line",
    "final_base",
    "injected_instructions",
    "lint",
    "missing_copy_sources",
    "looks_like_secret",
    "parse",
    "runtime_paths",
    "secret_build_arg_warnings",
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

PYTHON3_ENV = runtime.PYTHON3_BIN
CONDA_ENV = runtime.CONDA_BIN


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

    def directive(self, name: str) -> str | None:
        return dict(self.directives).get(name)


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


@dataclass(frozen=True)
class Finding:
    """A lint warning: `rule` id, 1-based `lineno`, what is wrong, and how to `fix` it."""

    rule: str
    lineno: int
    message: str
    fix: str = ""

    def __str__(self) -> str:
        text = f"line {self.lineno}: {self.message} [{self.rule}]"
        return f"{text}\n  fix: {self.fix}" if self.fix else text


@dataclass(frozen=True)
class RuntimePaths:
    """The pip and python a Dockerfile should use for a base image's runtime line."""

    pip: str
    python: str
    line: Version | None = field(default=None, compare=False)

    @property
    def bin_dir(self) -> str:
        return posixpath.dirname(self.pip)

    def describe(self) -> str:
        line = f"Databricks Runtime {self.line}" if self.line else "a current (9.x or later) runtime"
        return f"{line} keeps notebook Python in {self.bin_dir}"


def databricks_runtime_line(base: str | ImageRef | None) -> Version | None:
    """The Databricks Runtime version of a base image (see `runtime.line_of_image`)."""
    return runtime.line_of_image(base)


def _parse_or_none(text: str) -> ImageRef | None:
    try:
        return parse_reference(text)
    except ValueError:
        return None


def runtime_paths(base: str | ImageRef | None) -> RuntimePaths:
    """pip/python for the base image, as `runtime.pip_path` / `python_path` say for its line.

    Unknown tags (`latest`, digest-only, non-Databricks images, no base) get the current
    layout, as Databricks documents for 9.x and later.
    """
    line = runtime.line_of_image(base)
    return RuntimePaths(runtime.pip_path(line), runtime.python_path(line), line)


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
        for word in _shell_words(instruction.args):
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


def _shell_words(text: str) -> list[str]:
    try:
        return shlex.split(text, comments=False, posix=True)
    except ValueError:  # unbalanced quotes: Docker would reject it; lint what we can
        return text.split()


def _final_chain(all_stages: list[Stage]) -> list[Stage]:
    """The final stage and the stages it is built FROM, root first."""
    chain: list[Stage] = []
    stage: Stage | None = all_stages[-1] if all_stages else None
    while stage is not None and stage not in chain:
        chain.append(stage)
        stage = all_stages[stage.parent] if stage.parent is not None else None
    return chain[::-1]


# -- lint -------------------------------------------------------------------------------


def lint(text: str, *, build_args: Mapping[str, str] | None = None, runtime: str | None = None,
         today: date | None = None, context_files: Iterable[str] | None = None) -> list[Finding]:
    """Warnings about what will hurt on Databricks, sorted by line. Never raises on bad input.

    `runtime` is the runtime key or line the image targets when known (the base tag's line
    is used otherwise); `today` decides what is out of support (default: the current date).
    `context_files` (relative POSIX paths of the build context's files) adds `copy-missing`
    for COPY/ADD sources that are not among them.
    """
    dockerfile = parse(text)
    all_stages = stages(dockerfile, build_args)
    chain = _final_chain(all_stages)
    root = _image_ref(chain[0]) if chain else None
    findings = [Finding("parse-error", lineno, message, "fix or remove the parser directive")
                for lineno, message in dockerfile.problems]
    findings += _check_from(dockerfile)
    findings += _check_instructions(dockerfile)
    findings += _check_secret_names(dockerfile)
    findings += _check_bases(all_stages)
    findings += _check_runtime_base(chain, root)
    findings += _check_final_image(chain, runtime_paths(root))
    findings += _check_runtime_line(chain, root, runtime, today)
    if context_files is not None:
        findings += [Finding("copy-missing", lineno,
                             f"COPY/ADD source {source!r} is not in the build context, so the build fails",
                             f"write it with %%dcs_file NAME {source}, or put it in the context directory")
                     for lineno, source in missing_copy_sources(dockerfile, context_files)]
    return sorted(findings, key=lambda f: (f.lineno, f.rule, f.message))


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
        words = instruction.exec_form or _shell_words(instruction.args)
        for source in words[:-1]:
            if source and not _URL.match(source) and "$" not in source:
                found.append((instruction.lineno, source))
    return found


def missing_copy_sources(dockerfile: Dockerfile | str, context_files: Iterable[str]) -> list[tuple[int, str]]:
    """The COPY/ADD sources (see `copy_sources`) that match no file or directory of the context."""
    files = {posixpath.normpath(f.lstrip("/")) for f in context_files}
    present = set(files) | {"."}
    for name in files:  # every parent directory counts as present
        parts = name.split("/")
        present.update("/".join(parts[:i]) for i in range(1, len(parts)))
    missing = []
    for lineno, source in copy_sources(dockerfile):
        path = posixpath.normpath(source.lstrip("/")) if source.strip("/") else "."
        if any(ch in path for ch in "*?["):
            if not any(fnmatch.fnmatchcase(name, path) for name in present):
                missing.append((lineno, source))
        elif path not in present:
            missing.append((lineno, source))
    return missing


def _pulls_image(stage: Stage) -> bool:
    """Whether the stage's FROM names an image to pull (not a stage, scratch or unresolved)."""
    return stage.parent is None and bool(stage.base) and (stage.base or "").lower() != "scratch"


def _image_ref(stage: Stage) -> ImageRef | None:
    """The stage's base as an image reference (None for stage names, scratch, unresolved, invalid)."""
    return _parse_or_none(stage.base) if _pulls_image(stage) and stage.base else None


def _check_from(dockerfile: Dockerfile) -> list[Finding]:
    keywords = [i.keyword for i in dockerfile.instructions]
    if "FROM" not in keywords:
        return [Finding(
            "no-from", dockerfile.instructions[0].lineno if dockerfile.instructions else 1,
            "the Dockerfile has no FROM instruction, so there is no base image to build on",
            "start with FROM databricksruntime/standard:<runtime>-LTS (pinned by digest)",
        )]
    findings = []
    for instruction in dockerfile.instructions:
        if instruction.keyword == "FROM":
            break
        if instruction.keyword != "ARG":
            findings.append(Finding(
                "no-from", instruction.lineno,
                f"{instruction.keyword} comes before the first FROM; only ARG may precede FROM",
                "move it after the FROM line",
            ))
    return findings


def _check_instructions(dockerfile: Dockerfile) -> list[Finding]:
    """Unknown keywords and BuildKit-only syntax, in every stage."""
    findings = []
    for instruction in dockerfile.instructions:
        if instruction.keyword not in INSTRUCTIONS:
            findings.append(Finding(
                "unknown-instruction", instruction.lineno,
                f"unknown instruction {instruction.keyword}: the Docker engine rejects the Dockerfile",
                "check the spelling, or add a line continuation to the line before",
            ))
        feature = _buildkit_feature(instruction)
        if feature:
            findings.append(Finding(
                "buildkit-only", instruction.lineno,
                f"{feature} needs BuildKit, but %dcs_build drives the Docker SDK's classic "
                "builder, where it fails",
                _BUILDKIT_FIXES.get(feature.split()[-1], "rewrite it without BuildKit-only syntax"),
            ))
    return findings


# BuildKit's SecretsUsedInArgOrEnv check (frontend/dockerfile/linter): a name with one of these
# words, delimited by `_` or the ends, looks like a secret unless it also has the word PUBLIC.
_SECRET_NAME = re.compile(
    r"(?i)(?:_|^)(?:apikey|auth|credential|credentials|key|password|pass|pword|passwd|secret|token)(?:_|$)")
_PUBLIC_NAME = re.compile(r"(?i)(?:_|^)public(?:_|$)")
SECRET_ARG_FIX = ("an ARG or ENV value is kept in the image history (`docker history`) and in the image "
                  "config: pass it only to a build stage the final image does not copy from (a multi-stage "
                  "build), or fetch it at run time; BuildKit secrets (RUN --mount=type=secret) are planned")


def looks_like_secret(name: str) -> bool:
    """True when NAME (a build arg, ARG or ENV name) looks like a secret, as BuildKit's
    SecretsUsedInArgOrEnv check decides: NPM_TOKEN, DB_PASSWORD, API_KEY, AWS_ACCESS_KEY_ID."""
    return bool(_SECRET_NAME.search(name)) and not _PUBLIC_NAME.search(name)


def secret_build_arg_warnings(build_args: Mapping[str, str] | None) -> list[str]:
    """A warning per --build-arg whose name looks like a secret (see `looks_like_secret`)."""
    return [f"--build-arg {name} looks like a secret: {SECRET_ARG_FIX}"
            for name in sorted(build_args or {}) if looks_like_secret(name)]


def _declared_names(instruction: Instruction) -> list[str]:
    """The names an ARG or ENV instruction declares (`ARG A=1 B`, `ENV A=1 B=2`, `ENV A 1`)."""
    words = _shell_words(instruction.args) if instruction.args.strip() else []
    if instruction.keyword == "ENV" and words and "=" not in words[0]:
        return words[:1]  # legacy `ENV NAME value`
    return [word.split("=", 1)[0] for word in words if word]


def _check_secret_names(dockerfile: Dockerfile) -> list[Finding]:
    """ARG/ENV names that look like secrets (BuildKit's SecretsUsedInArgOrEnv)."""
    findings = []
    for instruction in dockerfile.instructions:
        if instruction.keyword not in ("ARG", "ENV"):
            continue
        for name in _declared_names(instruction):
            if looks_like_secret(name):
                findings.append(Finding(
                    "secret-in-arg-or-env", instruction.lineno,
                    f"{instruction.keyword} {name} looks like a secret; its value ends up in the image",
                    SECRET_ARG_FIX))
    return findings


def injected_instructions(text: str, values: Iterable[object]) -> list[Finding]:
    """Instructions of the rendered Dockerfile TEXT that start on a line a variable's newline
    made: for each string in VALUES with a newline, an instruction whose first line is one of
    the value's later lines was pasted in by the value, not written in the template."""
    pasted: set[str] = set()
    for value in values:
        if isinstance(value, str) and ("\n" in value or "\r" in value):
            pasted.update(line.strip() for line in value.splitlines()[1:] if line.strip())
    if not pasted:
        return []
    lines = text.splitlines()
    findings = []
    for instruction in parse(text).instructions:
        first = lines[instruction.lineno - 1].strip() if 0 < instruction.lineno <= len(lines) else ""
        if first in pasted:
            findings.append(Finding(
                "newline-in-variable", instruction.lineno,
                f"{instruction.keyword} on this line comes from a template variable's newline, not from "
                "the template",
                "give the variable a single-line value (a newline in a value adds Dockerfile instructions)"))
    return findings


_BUILDKIT_FLAGS = {"RUN": ("mount", "network", "security"),
                   "COPY": ("link", "chmod", "parents", "exclude"),
                   "ADD": ("link", "chmod", "checksum", "keep-git-dir", "parents", "exclude")}
_BUILDKIT_FIXES = {
    "--mount": "drop --mount: COPY the files in (and remove them in the same RUN), or download "
               "inside the RUN step",
    "heredoc": "write the script with %%dcs_file NAME script.sh and COPY it, or use && chains",
}


def _buildkit_feature(instruction: Instruction) -> str | None:
    for flag in _BUILDKIT_FLAGS.get(instruction.keyword, ()):
        if instruction.has_flag(flag):
            return f"{instruction.keyword} --{flag}"
    if instruction.heredocs:
        return f"{instruction.keyword} with a heredoc"
    return None


def _check_bases(all_stages: list[Stage]) -> list[Finding]:
    """Invalid or mutable FROM images, in every stage."""
    findings = []
    for stage in filter(_pulls_image, all_stages):
        lineno = stage.from_instruction.lineno
        try:
            ref = parse_reference(stage.base or "")
        except ValueError as exc:
            findings.append(Finding("invalid-base", lineno, f"FROM {stage.base}: {exc}",
                                    "write the base as registry/name:tag@sha256:digest"))
            continue
        if ref.digest is None and ref.tag in (None, "latest"):
            what = "has no tag (so it means :latest)" if ref.tag is None else "uses the :latest tag"
            findings.append(Finding(
                "mutable-base", lineno,
                f"base image {ref} {what}, which can point to a different image on every build",
                f"pin it by digest: FROM {ref.repository}:<tag>@sha256:<digest> (after docker "
                f"pull, docker inspect --format '{{{{index .RepoDigests 0}}}}' {ref} prints it)",
            ))
    return findings


def _check_runtime_base(chain: list[Stage], root: ImageRef | None) -> list[Finding]:
    """ML-runtime and arm64 bases: only the final image runs on Databricks."""
    if not chain:
        return []
    findings = []
    lineno = chain[-1].from_instruction.lineno
    if root is not None and _has_token(root, {"ml"}):
        findings.append(Finding(
            "ml-base", lineno,
            f"base image {root} looks like a Databricks Runtime for ML image; Container "
            "Services does not run on ML runtimes",
            "start from databricksruntime/standard (or python/minimal) and install ML libraries yourself",
        ))
    platforms = [s.platform for s in chain if s.platform]
    arm = [p for p in platforms if re.search(r"arm64|aarch64", p, re.IGNORECASE)]
    if arm or (root is not None and _has_token(root, {"arm64", "aarch64", "arm64v8"})):
        what = f"--platform={arm[-1]}" if arm else f"base image {root}"
        findings.append(Finding(
            "arm64-base", lineno,
            f"{what} is arm64; Container Services runs linux/amd64 only (no Graviton)",
            "use an amd64 base and build with --platform linux/amd64 (the %dcs_build default)",
        ))
    return findings


def _has_token(ref: ImageRef, tokens: set[str]) -> bool:
    """Whether the tag or the repository path contains one of `tokens` as a whole word."""
    words = re.split(r"[-_./]", f"{ref.path}/{ref.tag or ''}".lower())
    return any(word in tokens for word in words)


def _check_final_image(chain: list[Stage], paths: RuntimePaths) -> list[Finding]:
    """CMD/ENTRYPOINT and pip use in the stages that make up the final image."""
    findings = []
    for instruction in (i for stage in chain for i in stage.instructions):
        if instruction.keyword in ("CMD", "ENTRYPOINT"):
            findings.append(Finding(
                "cmd-ignored", instruction.lineno,
                f"{instruction.keyword} is ignored by Databricks, which starts its own processes "
                "in the container",
                "move start-up work into a cluster init script (%%init_script)",
            ))
        if instruction.keyword == "RUN":
            findings += _check_pip(instruction, paths)
    return findings


def _check_pip(instruction: Instruction, paths: RuntimePaths) -> list[Finding]:
    findings = []
    scripts = [instruction.args, *instruction.heredocs]
    argv = instruction.exec_form
    commands = [argv] if argv is not None else [c for s in scripts for c in _commands(s)]
    seen: set[str] = set()
    for command in commands:
        used = _pip_used(command)
        if used is None or used in seen or _fits(used, paths):
            continue
        seen.add(used)
        findings.append(Finding(
            "pip-mismatch", instruction.lineno,
            f"`{used}` is not the pip of the image's notebook Python: {paths.describe()}, so "
            "packages installed this way are not visible to notebooks",
            f"use {paths.pip} (in a %%dockerfile template: {{{{ pip }}}})",
        ))
    return findings


_OPERATORS = frozenset({";", "&&", "||", "|", "&", "(", ")", ";;", "|&"})
_WRAPPERS = frozenset({"sudo", "env", "exec", "time", "nohup", "command", "nice"})
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=.*", re.DOTALL)
_SHELLS = frozenset({"sh", "bash", "dash", "zsh", "/bin/sh", "/bin/bash", "/usr/bin/bash"})


def _commands(script: str) -> list[list[str]]:
    """Simple commands of a shell script: words split at ; && || | & ( )."""
    lexer = shlex.shlex(script, posix=True, punctuation_chars=";&|()")
    lexer.whitespace_split = True
    lexer.commenters = ""
    try:
        tokens = list(lexer)
    except ValueError:  # unbalanced quotes
        tokens = script.split()
    commands: list[list[str]] = [[]]
    for token in tokens:
        if token in _OPERATORS:
            commands.append([])
        else:
            commands[-1].append(token)
    return [c for c in commands if c]


def _pip_used(command: list[str]) -> str | None:
    """The pip executable (or `python -m pip` interpreter) an install/uninstall runs with."""
    words = _strip_wrappers(command)
    if not words:
        return None
    if words[0] in _SHELLS and "-c" in words[1:-1]:
        script = words[words.index("-c", 1) + 1]
        return next((p for c in _commands(script) if (p := _pip_used(c))), None)
    name = posixpath.basename(words[0])
    rest = words[1:]
    if re.fullmatch(r"python[0-9.]*", name) and "-m" in rest[:-1] and rest[rest.index("-m") + 1] == "pip":
        rest = rest[rest.index("-m") + 2:]
    elif not re.fullmatch(r"pip[0-9.]*", name):
        return None
    subcommand = next((w for w in rest if not w.startswith("-")), None)
    return words[0] if subcommand in ("install", "uninstall") else None


def _strip_wrappers(words: list[str]) -> list[str]:
    """Drop leading VAR=value assignments and sudo/env/exec/... with their options."""
    i = 0
    while i < len(words):
        if _ASSIGNMENT.fullmatch(words[i]):
            i += 1
        elif words[i] in _WRAPPERS:
            i += 1
            while i < len(words) and words[i].startswith("-"):
                i += 2 if words[i] in ("-u", "-g", "-n") else 1  # options that take a value
        else:
            break
    return words[i:]


def _fits(executable: str, paths: RuntimePaths) -> bool:
    """Whether a pip/python executable lives in the base image's notebook environment."""
    return posixpath.dirname(executable) == paths.bin_dir


# -- runtime-line guardrails (facts from runtime.py) --------------------------------------------


def _check_runtime_line(chain: list[Stage], root: ImageRef | None, target: str | None,
                        today: date | None) -> list[Finding]:
    """Out-of-support or unknown base lines, JDK 8 on 18+, /databricks/jars, R bases."""
    if not chain:
        return []
    lineno = chain[-1].from_instruction.lineno
    findings = []
    version = runtime.line_of_image(root) if root is not None else None
    line = runtime.line_of(version) if version is not None else None
    if version is not None and line is None:
        findings.append(_unknown_line_finding(lineno, root, version))
    elif line is not None and not line.supported(today):
        newer = [x for x in runtime.lts_lines() if x.supported(today) and x.image_tag][-1:]
        findings.append(Finding(
            "base-unsupported", lineno,
            f"base image {root} is for Databricks Runtime {line.name}, out of support since "
            f"{line.end_of_support}",
            f"move to a supported LTS line, e.g. FROM databricksruntime/standard:{newer[0].image_tag}"
            if newer else "move to a supported LTS line (dcs runtimes lists them)",
        ))
    target_line = _target_line(target) or line
    instructions = [i for stage in chain for i in stage.instructions]
    if target_line is not None and target_line.version.major >= 18:
        findings += _check_jdk8(chain, instructions, target_line)
    findings += _check_jars(instructions)
    if root is not None and runtime.is_databricks_image(root) and root.path.split("/")[-1] in ("rbase", "r"):
        findings.append(Finding(
            "r-base-nfs", lineno,
            f"base image {root} is an R image: Databricks' R images have no virtualenv package, so "
            "the cluster fails at start unless spark.databricks.driverNfs.enabled is false",
            'set it in the cluster spec: spark_conf={"spark.databricks.driverNfs.enabled": "false"}',
        ))
    return findings


def _target_line(target: str | None) -> runtime.RuntimeLine | None:
    return runtime.line_of(target) if target else None


def _unknown_line_finding(lineno: int, root: ImageRef | None, version: Version) -> Finding:
    oldest = runtime.lines()[0]
    if version.major < oldest.version.major:
        return Finding(
            "base-unsupported", lineno,
            f"base image {root} is for Databricks Runtime {version}, older than {oldest.name} "
            f"(itself out of support since {oldest.end_of_support})",
            "move to a supported LTS line (dcs runtimes lists them)",
        )
    closest = ", ".join(line.name for line in runtime.closest_lines(version))
    return Finding(
        "base-unknown-line", lineno,
        f"base image {root} names Databricks Runtime {version}, which is not a line dcs-magic knows "
        f"(closest: {closest})",
        "use a tag of a known line (dcs runtimes lists them), pinned by digest",
    )


_JDK8 = re.compile(r"(?:openjdk-?8|zulu-?8|temurin-?8|corretto-?8|java-1\.8|jdk-?1\.8|java-8-|jdk8u)",
                   re.IGNORECASE)


def _check_jdk8(chain: list[Stage], instructions: list[Instruction], line: runtime.RuntimeLine) -> list[Finding]:
    findings = []
    fix = (f"install JDK {line.java} instead (e.g. openjdk-{line.java}-jdk-headless); Databricks Runtime "
           f"{line.name} runs on JDK {'/'.join(map(str, line.java_installed))}")
    for stage in chain:
        if stage.parent is None and stage.base and (_JDK8.search(stage.base) or _jdk8_image(stage.base)):
            findings.append(Finding("jdk8-runtime", stage.from_instruction.lineno,
                                    f"base image {stage.base} carries JDK 8, which Databricks Runtime "
                                    f"{line.name} no longer ships", fix))
    for instruction in instructions:
        if instruction.keyword in ("RUN", "ENV") and _JDK8.search(" ".join([instruction.args, *instruction.heredocs])):
            findings.append(Finding("jdk8-runtime", instruction.lineno,
                                    f"{instruction.keyword} installs or selects JDK 8, which Databricks "
                                    f"Runtime {line.name} removed", fix))
    return findings


_JAVA_IMAGES = ("openjdk", "eclipse-temurin", "amazoncorretto", "zulu-openjdk", "sapmachine", "ibm-semeru-runtimes")


def _jdk8_image(base: str) -> bool:
    """A Java image (eclipse-temurin:8-jdk, openjdk:8u342, amazoncorretto:8) tagged for JDK 8."""
    ref = _parse_or_none(base)
    return (ref is not None and ref.path.split("/")[-1] in _JAVA_IMAGES and bool(ref.tag)
            and re.match(r"^(?:8|1\.8)(?:$|[u._-])", ref.tag or "") is not None)


_JARS = "/databricks/jars"


def _check_jars(instructions: list[Instruction]) -> list[Finding]:
    findings = []
    for instruction in instructions:
        target = ""
        if instruction.keyword in ("COPY", "ADD"):
            words = instruction.exec_form or _shell_words(instruction.args)
            target = words[-1] if len(words) >= 2 else ""
        elif instruction.keyword == "RUN":
            target = " ".join([instruction.args, *instruction.heredocs])
        if _JARS in (posixpath.normpath(target) if instruction.keyword != "RUN" else target):
            findings.append(Finding(
                "jars-shadow", instruction.lineno,
                f"{instruction.keyword} puts files into {_JARS}: jars there shadow the runtime's own "
                "classes (NoSuchMethodError / ClassNotFoundException at cluster start)",
                "install JVM libraries as cluster libraries (spec libraries or the UI) instead, or "
                "shade the jar's dependencies",
            ))
    return findings


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
