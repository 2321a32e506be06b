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

from .dockerfile import Finding, lint
from .errors import ContextError
from .template import render

__all__ = ["Rendered", "dockerfile_sha256", "render_dockerfile", "validate_name", "write_file"]

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

    @property
    def context_dir(self) -> Path:
        return self.path.parent

    def quiet(self) -> Rendered:
        """The same result, displayed without the Dockerfile text."""
        return replace(self, show_text=False)

    def summary(self) -> str:
        warnings = len(self.findings)
        counted = f"{warnings} warning{'s' if warnings != 1 else ''}" if warnings else "no warnings"
        return f"{self.name}: wrote {self.path} (sha256 {self.sha256[:12]}, {counted})"

    def __repr__(self) -> str:
        return f"Rendered({self.summary()})"

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        """HTML (Dockerfile highlighted with pygments, warnings below) plus a text fallback."""
        warnings_text = "".join(f"\nWarning: {f}" for f in self.findings)
        body = self.text if self.show_text else self.summary() + "\n"
        parts = [_highlight(self.text) if self.show_text else f"<pre>{html.escape(self.summary())}</pre>"]
        if self.findings:
            parts.append(_findings_html(self.findings))
        return {"text/plain": (body + warnings_text).rstrip("\n"), "text/html": "\n".join(parts)}


def _highlight(text: str) -> str:
    # Imported here: pygments is only needed when a notebook displays the result.
    from pygments import highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import DockerLexer

    # Inline styles, so the colours survive without a stylesheet (nbconvert, GitHub).
    return highlight(text, DockerLexer(), HtmlFormatter(noclasses=True))


def _findings_html(findings: tuple[Finding, ...]) -> str:
    items = "".join(
        f"<li><b>line {f.lineno}</b>: {html.escape(f.message)} <code>[{html.escape(f.rule)}]</code>"
        + (f"<br><i>fix:</i> {html.escape(f.fix)}" if f.fix else "") + "</li>"
        for f in findings
    )
    return (
        '<div class="dcs-lint" style="border-left:4px solid #e0a800;background:#fff8e1;'
        'color:#3d3200;padding:4px 10px;margin-top:4px">'
        f"<b>&#9888; {len(findings)} Dockerfile warning{'s' if len(findings) != 1 else ''}"
        f"</b><ul style=\"margin:4px 0\">{items}</ul></div>"
    )


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
                      context_dir: str | os.PathLike[str], base: str | None = None) -> Rendered:
    """Render a `%%dockerfile` cell, lint it, then write `context_dir/Dockerfile` atomically.

    A TemplateError (or an unwritable context) leaves any previous Dockerfile untouched.
    """
    validate_name(name)
    text = _final_newline(render(template_text, namespace, template_name=f"{name}/{DOCKERFILE}",
                                 base=base))
    findings = tuple(lint(text))
    root = _ensure_dir(Path(context_dir))
    path = _write_atomic(root / DOCKERFILE, text, mode=0o644)
    return Rendered(name, text, path, dockerfile_sha256(text), findings, base)


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
