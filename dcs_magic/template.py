"""Render `%%dockerfile` / `%%dcs_file` cells: a sandboxed, strict Jinja2 template.

The context is the notebook's variables plus three helpers:

- `base`: the `--base` value,
- `pip` / `python`: the interpreter paths of the base image's runtime line (runtime.py)
  (`/databricks/python3/bin/...` for 9.x and later and unknown tags,
  `/databricks/conda/envs/dcs-minimal/bin/...` for 8.x and earlier).

Precedence, from strongest: the `--base` option, then notebook variables, then the
computed helpers. An option written on the magic line is the most explicit choice, so it
beats a notebook variable called `base`; a notebook variable the user defined (say
`python = "3.11"`) is never silently shadowed by a helper. Without `--base`, a notebook
string variable `base` also decides the `pip`/`python` helpers.

Rendering never changes notebook state: the environment is Jinja's immutable sandbox
(no `list.append`, `dict.update`, ... on notebook objects) and module attributes are not
reachable (`{{ os.system(...) }}`). The same template and values give the same bytes,
across kernel restarts too: set variables iterate in sorted order (string hashing is
randomised per process). Every failure is a `TemplateError` naming the variable or construct and the line
of the template (line 1 is the first line after the magic line).
"""

from __future__ import annotations

import re
import types
from collections.abc import Iterator, Mapping
from typing import Any

from jinja2 import StrictUndefined, TemplateError as JinjaTemplateError, TemplateSyntaxError, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from . import runtime
from .errors import TemplateError

__all__ = ["render", "template_context"]

_UNDEFINED_NAME = re.compile(r"^'(?P<name>.+)' is undefined$")
_MISSING_MEMBER = re.compile(r"^(?P<obj>.+) has no (?:attribute|element) (?P<name>.+)$")


class _Environment(ImmutableSandboxedEnvironment):
    """The immutable sandbox, and no attribute access on modules: a template sees values,
    not code (compute `os.environ[...]` in a code cell and use the variable)."""

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if isinstance(obj, types.ModuleType):
            return False
        return super().is_safe_attribute(obj, attr, value)


def _environment() -> _Environment:
    return _Environment(
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )


class _SortedSet(frozenset):
    """A set that iterates and prints in sorted order.

    String hashes are randomised per process, so `{{ packages|join(' ') }}` over a plain set
    would give a different Dockerfile (and a cache miss) after every kernel restart.
    """

    def __iter__(self) -> Iterator[Any]:
        return iter(sorted(super().__iter__()))

    def __repr__(self) -> str:
        return "{" + ", ".join(map(repr, self)) + "}" if self else "set()"


def _stable(value: Any) -> Any:
    """Top-level set values in sorted order (left alone when their items do not sort)."""
    if isinstance(value, (set, frozenset)) and not isinstance(value, _SortedSet):
        try:
            sorted(value)
        except TypeError:
            return value
        return _SortedSet(value)
    return value


def template_context(namespace: Mapping[str, Any], base: str | None = None) -> dict[str, Any]:
    """The variables a template sees: helpers, overridden by notebook variables, then `--base`."""
    effective_base = base if base is not None else namespace.get("base")
    line = runtime.line_of_image(effective_base if isinstance(effective_base, str) else None)
    context: dict[str, Any] = {"pip": runtime.pip_path(line), "python": runtime.python_path(line)}
    context.update((name, _stable(value)) for name, value in namespace.items())
    if base is not None:
        context["base"] = base
    return context


def render(text: str, namespace: Mapping[str, Any], *, template_name: str = "Dockerfile",
           base: str | None = None) -> str:
    """Render `text` with the notebook `namespace` and the helpers; raise TemplateError on failure."""
    if not text.strip():
        raise TemplateError(
            f"the {template_name} cell is empty", template=template_name,
            hint="write the file's content in the cell below the magic line",
        )
    env = _environment()
    filename = f"<{template_name}>"
    try:
        code = env.compile(text, name=template_name, filename=filename)
        template = env.template_class.from_code(env, code, env.make_globals(None), None)
    except TemplateSyntaxError as exc:
        raise TemplateError(
            f"Jinja syntax error: {exc.message}", template=template_name, lineno=exc.lineno,
            hint="check the {{ ... }} / {% ... %} markup on that line",
        ) from exc
    try:
        return template.render(template_context(namespace, base))
    except Exception as exc:  # every render failure becomes a TemplateError with its line
        raise _render_error(exc, template_name, _template_lineno(exc, filename), base) from exc


def _template_lineno(exc: BaseException, filename: str) -> int | None:
    """The template line of the innermost template frame in the (rewritten) traceback."""
    lineno = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == filename:
            lineno = tb.tb_lineno
        tb = tb.tb_next
    return lineno


def _render_error(exc: Exception, template: str, lineno: int | None, base: str | None) -> TemplateError:
    message = str(exc)
    if isinstance(exc, SecurityError):
        return TemplateError(
            f"not allowed in the sandbox: {message}", template=template, lineno=lineno,
            hint="templates may read variables but not private attributes, modules or methods "
                 "that change data; compute the value in a code cell and use the variable",
        )
    if isinstance(exc, UndefinedError):
        return _undefined_error(message, template, lineno, base)
    if isinstance(exc, TypeError) and "no loader" in message:
        return TemplateError(
            "{% include %}, {% import %} and {% extends %} are not available in a cell template",
            template=template, lineno=lineno,
            hint="put shared text in a notebook variable and use {{ variable }}",
        )
    kind = "template error" if isinstance(exc, JinjaTemplateError) else type(exc).__name__
    return TemplateError(f"{kind}: {message}", template=template, lineno=lineno)


def _example_tag() -> str:
    """The newest LTS line with an official image (`17.3-LTS`), for hints."""
    return next(line.image_tag for line in reversed(runtime.lts_lines()) if line.image_tag)


def _undefined_error(message: str, template: str, lineno: int | None, base: str | None) -> TemplateError:
    match = _UNDEFINED_NAME.match(message)
    if match and match["name"] == "base" and base is None:
        return TemplateError(
            "undefined variable 'base': the template uses {{ base }} but no --base was given",
            template=template, lineno=lineno, name="base",
            hint="pass --base IMAGE on the magic line, e.g. %%dockerfile --base "
                 f"databricksruntime/standard:{_example_tag()}",
        )
    if match:
        name = match["name"]
        return TemplateError(
            f"undefined variable '{name}'", template=template, lineno=lineno, name=name,
            hint=f"define {name} in a code cell before this one, or test it with "
                 f"{{% if {name} is defined %}}",
        )
    member = _MISSING_MEMBER.match(message)
    name = member["name"].strip("'\"") if member else None
    return TemplateError(
        f"undefined value: {message}", template=template, lineno=lineno, name=name,
        hint="check the attribute or key name, or give it a default with |default(...)",
    )
