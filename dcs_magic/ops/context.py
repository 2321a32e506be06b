"""Build contexts on disk: the rendered Dockerfile and the `%%dcs_file` files next to it.

Writes are atomic (a temporary file in the same directory, then `os.replace`), so a render
that fails, or a crash half-way, leaves the previous file untouched. Paths handed to
`write_file` must stay inside the context: absolute paths, `..` and symlinks leading out
are refused. File bytes depend only on the inputs: UTF-8, a final newline added when
missing, mode 0644 (0755 for a script starting with `#!`, so `COPY` + `RUN ./script`
works), which keeps the build context, and so the image, reproducible.
"""

from __future__ import annotations

import hashlib
import html
import os
import re
import tempfile
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePath
from typing import Any

from ..errors import ContextError
from ..model.lint import Finding, lint, missing_copy_sources
from ..model.template import render

__all__ = ["ContextFile", "Rendered", "check_buildable", "context_files", "dockerfile_sha256", "highlight_css",
           "render_dockerfile", "validate_name", "write_context_file", "write_file"]

DOCKERFILE = "Dockerfile"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


@dataclass(frozen=True)
class Rendered:
    """A `%%dockerfile` written to its build context.

    `text` is the exact content of `path`, `sha256` its hex digest (see `dockerfile_sha256`),
    `findings` the lint warnings. In a notebook it shows as the syntax-highlighted
    Dockerfile followed by the warnings; `quiet()` gives a copy that shows only a summary
    line and the warnings.
    """

    name: str
    text: str
    path: Path
    sha256: str
    findings: tuple[Finding, ...] = ()
    base: str | None = None
    show_text: bool = field(default=True, compare=False, repr=False)
    pending: tuple[str, ...] = ()
    """COPY/ADD sources not in the context yet (a later %%dcs_file cell may write them)."""

    @property
    def context_dir(self) -> Path:
        return self.path.parent

    def quiet(self) -> Rendered:
        """The same result, displayed without the Dockerfile text."""
        return replace(self, show_text=False)

    def summary(self) -> str:
        """One line: context, Dockerfile sha256 (short), how many warnings (a COPY source still
        missing is one: `copy-missing`)."""
        warnings = len(self.findings)
        counted = f"{warnings} warning{'s' if warnings != 1 else ''}" if warnings else "no warnings"
        return f"{self.name}: context {self.context_dir}, Dockerfile sha256:{self.sha256[:12]}, {counted}"

    def __repr__(self) -> str:
        return f"Rendered({self.summary()})"

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        """HTML (summary line, Dockerfile highlighted, warnings below) plus a text twin."""
        warnings_text = "".join(f"\nWarning: {f}" for f in self.findings)
        body = self.text if self.show_text else ""
        parts = [f'<div class="dcs-summary" style="{_SUMMARY_STYLE}">{html.escape(self.summary())}</div>']
        if self.show_text:
            parts.append(_highlight(self.text))
        if self.findings:
            parts.append(_findings_html(self.findings))
        return {"text/plain": (body + self.summary() + warnings_text).rstrip("\n"), "text/html": "\n".join(parts)}


# Colours come only from JupyterLab's theme variables, so the output reads in light and dark
# themes alike (each pairing below measured at >= 4.5:1 in both, see tests/browser).
_SUMMARY_STYLE = "color:var(--jp-content-font-color1);font-family:var(--jp-code-font-family);margin:2px 0"
_HIGHLIGHT_CLASS = "dcs-highlight"
# Pygments token type -> the JupyterLab variable its colour comes from (the nearest ancestor
# listed wins). JupyterLab's own code editor colours tokens from the same variables.
_TOKEN_COLOURS = {
    "Keyword": "--jp-mirror-editor-keyword-color",
    "Name.Builtin": "--jp-mirror-editor-builtin-color",
    "Name.Variable": "--jp-mirror-editor-property-color",
    "Name.Attribute": "--jp-mirror-editor-attribute-color",
    "Name.Tag": "--jp-mirror-editor-attribute-color",
    "Name.Function": "--jp-mirror-editor-attribute-color",
    "Name.Constant": "--jp-mirror-editor-attribute-color",
    "Name.Label": "--jp-mirror-editor-attribute-color",
    "Literal.String": "--jp-mirror-editor-string-color",
    "Literal.Number": "--jp-mirror-editor-number-color",
    "Operator": "--jp-mirror-editor-operator-color",
    "Punctuation": "--jp-mirror-editor-punctuation-color",
    # The editor's comment colour is below 4.5:1 on the dark theme; the secondary text
    # colour is not, and italics keep comments apart.
    "Comment": "--jp-content-font-color2",
    "Generic": "--jp-content-font-color1",
}


def highlight_css() -> str:
    """The stylesheet for highlighted Dockerfiles: one rule per pygments token class."""
    from pygments.token import STANDARD_TYPES

    rules = [(f".{_HIGHLIGHT_CLASS} pre{{background:transparent;color:var(--jp-content-font-color1);"
              "line-height:1.4;margin:2px 0}")]
    for token, short in sorted(STANDARD_TYPES.items(), key=lambda item: item[1]):
        if not short:
            continue
        name, variable = str(token).removeprefix("Token."), None
        while name and variable is None:
            variable = _TOKEN_COLOURS.get(name)
            name = name.rpartition(".")[0]
        extra = ";font-style:italic" if str(token).startswith("Token.Comment") else ""
        if str(token) in ("Token.Error", "Token.Generic.Error"):
            rules.append(f".{_HIGHLIGHT_CLASS} .{short}{{color:var(--jp-content-font-color0);"
                         "text-decoration:underline wavy var(--jp-error-color1)}")
        elif variable:
            rules.append(f".{_HIGHLIGHT_CLASS} .{short}{{color:var({variable}){extra}}}")
    return "\n".join(rules)


def _highlight(text: str) -> str:
    # Imported here: pygments is only needed when a notebook displays the result.
    from pygments import highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import DockerLexer

    # Classes plus a stylesheet of theme variables (no fixed colours). Where a renderer drops
    # <style> (an untrusted notebook), the Dockerfile stays readable as plain text.
    body = highlight(text, DockerLexer(), HtmlFormatter(cssclass=f"highlight {_HIGHLIGHT_CLASS}"))
    return f"<style>{highlight_css()}</style>\n{body}"


def _findings_html(findings: tuple[Finding, ...]) -> str:
    items = "".join(
        f"<li><b>line {f.lineno}</b>: {html.escape(f.message)} <code>[{html.escape(f.rule)}]</code>"
        + (f"<br><i>fix:</i> {html.escape(f.fix)}" if f.fix else "") + "</li>"
        for f in findings
    )
    return (
        '<div class="dcs-lint" role="note" style="border-left:4px solid var(--jp-warn-color0);'
        "background:var(--jp-layout-color2);color:var(--jp-content-font-color1);"
        'padding:4px 10px;margin-top:4px">'
        f"<b>&#9888; {len(findings)} Dockerfile warning{'s' if len(findings) != 1 else ''}"
        f"</b><ul style=\"margin:4px 0\">{items}</ul></div>"
    )


@dataclass(frozen=True)
class ContextFile:
    """A file `%%dcs_file` wrote into a build context: where, how big, its sha256.

    `os.fspath(result)` and `result.path` give the absolute path, so it can be used where
    the bare path used to be returned.
    """

    name: str
    relpath: str
    path: Path
    size: int
    sha256: str

    def __fspath__(self) -> str:
        return str(self.path)

    def summary(self) -> str:
        return (f"{self.name}: wrote {self.relpath} ({self.size} bytes, sha256:{self.sha256[:12]}) "
                f"to {self.path.parent}")

    def __repr__(self) -> str:
        return f"ContextFile({self.summary()})"

    def _repr_html_(self) -> str:
        return f'<div class="dcs-summary" style="{_SUMMARY_STYLE}">{html.escape(self.summary())}</div>'


def dockerfile_sha256(text: str | bytes) -> str:
    """Hex sha256 of a rendered Dockerfile's bytes (UTF-8), as written to disk.

    Used for the `dcs_magic.dockerfile.sha256` image label and the lock file.
    """
    data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
    return hashlib.sha256(data).hexdigest()


def validate_name(name: str) -> str:
    """A build context NAME must be a plain file name (it becomes dcs-build/NAME)."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ContextError(
            f"invalid build context name {name!r}",
            hint="use letters, digits, '.', '_' or '-', starting with a letter or digit, "
                 "e.g. %%dockerfile trainer",
        )
    return name


def render_dockerfile(template_text: str, namespace: Mapping[str, Any], *, name: str,
                      context_dir: str | os.PathLike[str], base: str | None = None,
                      check_copies: bool = True) -> Rendered:
    """Render a `%%dockerfile` cell, lint it, then write `context_dir/Dockerfile` atomically.

    A TemplateError (or an unwritable context) leaves any previous Dockerfile untouched.
    `check_copies=False` skips the walk of the context for `copy-missing` (and `pending`).
    """
    validate_name(name)
    text = _final_newline(render(template_text, namespace, template_name=f"{name}/{DOCKERFILE}",
                                 base=base))
    root = _ensure_dir(Path(context_dir))
    path = _write_atomic(root / DOCKERFILE, text, mode=0o644)
    # A COPY source not written yet is a warning in the list (`copy-missing`), whose fix says the
    # %%dcs_file cell that writes it may come later; `pending` keeps them for the build's check.
    files = context_files(root) if check_copies else None
    findings = tuple(lint(text, context_files=files, context_name=name))
    pending = tuple(dict.fromkeys(src for _, src in missing_copy_sources(text, files))) if files is not None else ()
    return Rendered(name, text, path, dockerfile_sha256(text), findings, base, pending=pending)


def context_files(context_dir: str | os.PathLike[str]) -> list[str]:
    """Relative POSIX paths of the files in a build context (the private `.dcs/` left out)."""
    root = Path(context_dir)
    found: list[str] = []
    for folder, dirs, names in os.walk(root):
        here = Path(folder)
        dirs[:] = sorted(d for d in dirs if not (here == root and d == ".dcs"))
        found += [(here / n).relative_to(root).as_posix() for n in sorted(names)]
    return found


def check_buildable(context_dir: str | os.PathLike[str], name: str = "default") -> Path:
    """Before a build draws anything: the context has a Dockerfile, and every COPY/ADD source
    it reads is there. ContextError saying which cell to run otherwise; returns the Dockerfile."""
    root = Path(context_dir).expanduser()
    dockerfile = root / DOCKERFILE
    if not dockerfile.is_file():
        raise ContextError(f"Build context {name!r} has no Dockerfile ({dockerfile})",
                           hint=f"Run a %%dockerfile {name} cell first (or check the NAME).")
    try:
        text = dockerfile.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ContextError(f"cannot read {dockerfile}: {exc}", hint=f"run the %%dockerfile {name} cell again") from exc
    missing = missing_copy_sources(text, context_files(root))
    if missing:
        listed = ", ".join(f"{src!r} (line {lineno})" for lineno, src in missing)
        raise ContextError(f"the Dockerfile of {name!r} COPYs {listed}, which {'is' if len(missing) == 1 else 'are'} "
                           f"not in the build context {root}",
                           hint=f"write {'it' if len(missing) == 1 else 'each'} with a %%dcs_file {name} PATH cell "
                                "(and run it), or put the file in the context directory")
    return dockerfile


def write_context_file(context_dir: str | os.PathLike[str], relpath: str, text: str, *,
                       name: str = "default") -> ContextFile:
    """`write_file`, returning a ContextFile (path, size, sha256) that notebooks display."""
    path = write_file(context_dir, relpath, text)
    data = path.read_bytes()
    return ContextFile(name, _relative_path(relpath).as_posix(), path, len(data), hashlib.sha256(data).hexdigest())


def write_file(context_dir: str | os.PathLike[str], relpath: str, text: str) -> Path:
    """Write `text` to `relpath` inside the build context; returns the absolute path.

    Refuses absolute paths, `..`, paths through symlinks that lead out of the context,
    and `Dockerfile` itself (that one comes from %%dockerfile, rendered and linted).
    """
    rel = _relative_path(relpath)
    root = _ensure_dir(Path(context_dir))
    target = root / rel
    if not target.resolve().is_relative_to(root.resolve()):
        raise ContextError(
            f"{relpath!r} leads outside the build context {root} through a symlink",
            hint="write the file to a path inside the context that is not a symlink to elsewhere",
        )
    if target.parent != root:
        _ensure_dir(target.parent)
    mode = 0o755 if text.startswith("#!") else 0o644
    return _write_atomic(target, _final_newline(text), mode=mode)


def _relative_path(relpath: str) -> PurePath:
    path = PurePath(relpath.strip()) if isinstance(relpath, str) else PurePath()
    hint = "give a path relative to the build context, e.g. requirements.txt or scripts/setup.sh"
    if not path.parts or path.parts == (".",):
        raise ContextError("no file path given", hint=hint)
    if path.is_absolute() or relpath.strip().startswith("~"):
        raise ContextError(f"{relpath!r} is an absolute path; files must live inside the build "
                           "context", hint=hint)
    if ".." in path.parts:
        raise ContextError(f"{relpath!r} escapes the build context ('..' is not allowed)", hint=hint)
    if path.parts == (DOCKERFILE,):
        raise ContextError("the build context's Dockerfile is written by %%dockerfile",
                           hint="use %%dockerfile NAME for the Dockerfile itself")
    return path


def _final_newline(text: str) -> str:
    return text if text.endswith("\n") else text + "\n"


def _ensure_dir(directory: Path) -> Path:
    """Create the directory (and parents); an absolute path, or ContextError saying what to do."""
    directory = directory.expanduser().absolute()
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as exc:
        raise ContextError(
            f"cannot use {directory} as a build context: {exc.filename or directory} is a file, "
            "not a directory",
            hint="pick another directory with --context DIR, or move that file away",
        ) from exc
    except OSError as exc:
        raise _unwritable(directory, exc) from exc
    if not os.access(directory, os.W_OK):
        raise ContextError(f"the build context directory {directory} is not writable",
                           hint=f"fix its permissions (chmod u+w {directory}) or pick another "
                                "directory with --context DIR")
    return directory


def _unwritable(directory: Path, exc: OSError) -> ContextError:
    return ContextError(
        f"cannot write to the build context directory {directory}: {exc.strerror or exc}",
        hint=f"make sure {directory} can be created and written (permissions, read-only or full "
             "disk), or pick another directory with --context DIR",
    )


def _write_atomic(path: Path, text: str, *, mode: int) -> Path:
    """Write via a temporary file in the same directory and os.replace (never half a file)."""
    data = text.encode("utf-8")
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.chmod(tmp, mode)  # explicit, so the umask does not change the build context
            os.replace(tmp, path)
        except BaseException:
            with suppress(OSError):
                os.unlink(tmp)
            raise
    except IsADirectoryError as exc:
        raise ContextError(f"cannot write {path}: it is a directory",
                           hint="remove that directory or choose another file name") from exc
    except OSError as exc:
        raise _unwritable(path.parent, exc) from exc
    return path
