"""The Databricks-aware Dockerfile linter, with no I/O: `lint(text)` -> `Finding`s.

It reads the file through model/dockerfile.py's parser. `lint(text)` runs on every
`%%dockerfile` render. Its findings are warnings about what will hurt on Databricks
Container Services; none of them stops a render.

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
    secret-in-arg-or-env an ARG or ENV name that looks like a secret (BuildKit's SecretsUsedInArgOrEnv)
    base-unsupported     a Databricks base whose runtime line is out of support (says since when)
    base-unknown-line    a Databricks base whose runtime line dcs-magic does not know (names the closest)
    jdk8-runtime         JDK 8 installed or selected while the line (base or `runtime=`) is 18 or later
    jars-shadow          files copied into /databricks/jars (they shadow the runtime's own classes)
    r-base-nfs           an R base (rbase / r): the cluster needs spark.databricks.driverNfs.enabled false
    copy-missing         a COPY/ADD source that is not in the build context (only when the
                         context's file list is given: `lint(text, context_files=...)`)

Only the final stage (and the stages it is built `FROM`) matters for the runtime rules;
every stage counts for `mutable-base` and `buildkit-only`. Beside `lint`:
`secret_build_arg_warnings` (the same secret rule for `--build-arg`s, a BuildResult warning)
and `injected_instructions` (`newline-in-variable`: instructions a template variable's
newline made, for the renderers).
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date

from . import runtime
from .dockerfile import INSTRUCTIONS, Dockerfile, Instruction, Stage, copy_sources, parse, shell_words, stages
from .imageref import ImageRef, parse_or_none, parse_reference
from .runtime import Version
from .secrets import is_secret_key, secret_kind

__all__ = [
    "Finding",
    "copy_missing",
    "RuntimePaths",
    "databricks_runtime_line",
    "injected_instructions",
    "lint",
    "looks_like_secret",
    "missing_copy_sources",
    "runtime_paths",
    "secret_build_arg_warnings",
]


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


def runtime_paths(base: str | ImageRef | None) -> RuntimePaths:
    """pip/python for the base image, as `runtime.pip_path` / `python_path` say for its line.

    Unknown tags (`latest`, digest-only, non-Databricks images, no base) get the current
    layout, as Databricks documents for 9.x and later.
    """
    line = runtime.line_of_image(base)
    return RuntimePaths(runtime.pip_path(line), runtime.python_path(line), line)


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
         today: date | None = None, context_files: Iterable[str] | None = None,
         context_name: str = "NAME") -> list[Finding]:
    """Warnings about what will hurt on Databricks, sorted by line. Never raises on bad input.

    `runtime` is the runtime key or line the image targets when known (the base tag's line
    is used otherwise); `today` decides what is out of support (default: the current date).
    `context_files` (relative POSIX paths of the build context's files) adds `copy-missing`
    for COPY/ADD sources that are not among them (its fix names the `%%dcs_file CONTEXT_NAME`
    cell that would write one).
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
        findings += copy_missing(dockerfile, context_files, context_name)
    return sorted(findings, key=lambda f: (f.lineno, f.rule, f.message))


def copy_missing(dockerfile: Dockerfile | str, context_files: Iterable[str], context_name: str = "NAME"
                 ) -> list[Finding]:
    """`copy-missing` findings: the COPY/ADD sources that are not among CONTEXT_FILES."""
    return [Finding("copy-missing", lineno,
                    f"COPY/ADD source {source!r} is not in the build context yet; the build fails without it",
                    f"write it with a %%dcs_file {context_name} {source} cell (it may come later in the "
                    "notebook), or put it in the context directory")
            for lineno, source in missing_copy_sources(dockerfile, context_files)]


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
    return parse_or_none(stage.base) if _pulls_image(stage) and stage.base else None


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
                f"{feature} needs BuildKit: %dcs_build builds it with BuildKit through a "
                "BuildKit-capable docker CLI (--builder auto), and fails with the classic builder",
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
                  "build), or fetch it at run time; or pass it as a BuildKit build secret: `--secret "
                  "id=NAME,env=VAR` on %dcs_build / dcs build, read in `RUN --mount=type=secret,id=NAME` "
                  "from /run/secrets/NAME (never in the image, its history or the lock)")


def looks_like_secret(name: str) -> bool:
    """True when NAME (a build arg, ARG or ENV name) looks like a secret: BuildKit's
    SecretsUsedInArgOrEnv rule (NPM_TOKEN, DB_PASSWORD, API_KEY, AWS_ACCESS_KEY_ID) or the
    key rule the masking uses (`secrets.is_secret_key`: camelCase and substrings too, so
    `npmToken`, `GH_PAT`, `dbPassword`), unless the name has the word PUBLIC."""
    if _PUBLIC_NAME.search(name) or any(word.lower() == "public" for word in _CAMEL_WORD.findall(name)):
        return False
    return bool(_SECRET_NAME.search(name)) or is_secret_key(name)


_CAMEL_WORD = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")


def secret_build_arg_warnings(build_args: Mapping[str, str] | None) -> list[str]:
    """A warning per --build-arg whose name looks like a secret (`looks_like_secret`) or whose
    value does (`secrets.secret_kind`: a URL with a password, a `ghp_...` token, a long random
    string). The warning names the argument and what it looks like, never the value."""
    warnings = []
    for name in sorted(build_args or {}):
        value = (build_args or {})[name]
        if looks_like_secret(name):
            warnings.append(f"--build-arg {name} looks like a secret: {SECRET_ARG_FIX}")
        elif (kind := secret_kind(value)) is not None:
            warnings.append(f"--build-arg {name} holds what looks like {kind}: {SECRET_ARG_FIX}")
    return warnings


def _declared_names(instruction: Instruction) -> list[str]:
    """The names an ARG or ENV instruction declares (`ARG A=1 B`, `ENV A=1 B=2`, `ENV A 1`)."""
    words = shell_words(instruction.args) if instruction.args.strip() else []
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
    "--mount": "keep it where a BuildKit-capable docker CLI is installed (docker buildx, or Debian's "
               "docker.io client; --builder auto uses it); for the classic builder drop --mount: COPY "
               "the files in (and remove them in the same RUN), or download inside the RUN step",
    "heredoc": "keep it where a BuildKit-capable docker CLI is installed (--builder auto uses it); for "
               "the classic builder write the script with %%dcs_file NAME script.sh and COPY it, or use "
               "&& chains",
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
    newer = version.major > max(line.version.major for line in runtime.lines())
    return Finding(
        "base-unknown-line", lineno,
        f"base image {root} names Databricks Runtime {version}, which is not a line dcs-magic knows "
        f"(closest: {closest})",
        ("if Databricks published it after dcs-magic's runtime data, `dcs runtimes --update` adds it; "
         "else use a tag of a known line (dcs runtimes lists them), pinned by digest") if newer else
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
    ref = parse_or_none(base)
    return (ref is not None and ref.path.split("/")[-1] in _JAVA_IMAGES and bool(ref.tag)
            and re.match(r"^(?:8|1\.8)(?:$|[u._-])", ref.tag or "") is not None)


_JARS = "/databricks/jars"


def _check_jars(instructions: list[Instruction]) -> list[Finding]:
    findings = []
    for instruction in instructions:
        target = ""
        if instruction.keyword in ("COPY", "ADD"):
            words = instruction.exec_form or shell_words(instruction.args)
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
