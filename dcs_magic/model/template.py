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

Rendering is bounded (sandbox.py): output size, computed values, loop steps, calls and
time, each a `TemplateError` with the line and a hint.
"""

from __future__ import annotations

import re
import time
import types
from collections.abc import Generator, Iterator, Mapping
from typing import Any, cast

from jinja2 import StrictUndefined, TemplateSyntaxError, UndefinedError
from jinja2 import TemplateError as JinjaTemplateError
from jinja2.environment import Template
from jinja2.exceptions import SecurityError

from ..errors import TemplateError
from . import runtime, sandbox
from .sandbox import HINT_SIZE, HINT_TIME, MAX_NESTING, Refused, Sandbox

__all__ = ["render", "template_context", "template_variables"]

_UNDEFINED_NAME = re.compile(r"^'(?P<name>.+)' is undefined$")
_MISSING_MEMBER = re.compile(r"^(?P<obj>.+) has no (?:attribute|element) (?P<name>.+)$")

_OPENERS = frozenset({"for", "if", "block", "macro", "call", "filter", "with", "autoescape", "set"})
_BRACKETS = {"lparen": 1, "lbracket": 1, "lbrace": 1, "rparen": -1, "rbracket": -1, "rbrace": -1}


def _nesting_error(env: Sandbox, text: str, template: str) -> TemplateError | None:
    """A TemplateError at the line where blocks or brackets nest deeper than MAX_NESTING.

    Jinja's parser and code generator recurse once per level, so 2000 nested `{% if %}`
    would end in a RecursionError from inside Jinja; this scan names the line instead.
    """
    blocks = brackets = 0
    tag: str | None = None  # the tag of the block being read, until its block_end
    assigns = False
    try:
        for lineno, kind, value in env.lexer.tokenize(text):
            if kind == "block_begin":
                tag, assigns = "", False
            elif kind == "name" and tag == "":
                tag = value
                if value.startswith("end"):
                    blocks -= 1
            elif kind == "assign" and tag == "set":
                assigns = True
            elif kind == "block_end":
                if tag in _OPENERS and not (tag == "set" and assigns):
                    blocks += 1
                tag = None
            brackets += _BRACKETS.get(kind, 0)
            if blocks > MAX_NESTING or brackets > MAX_NESTING:
                return TemplateError(
                    f"blocks or brackets nest more than {MAX_NESTING} levels deep", template=template,
                    lineno=lineno, hint="flatten the template: compute nested values in a code cell")
    except TemplateSyntaxError:
        return None  # compiling reports it with its line
    return None


def _environment() -> Sandbox:
    return Sandbox(
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )


class _SortedSet(frozenset[Any]):
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
    too_deep = _nesting_error(env, text, template_name)
    if too_deep is not None:
        raise too_deep
    try:
        code = env.compile(text, name=template_name, filename=filename)
        template = env.template_class.from_code(env, code, env.make_globals(None), None)
    except TemplateSyntaxError as exc:
        raise TemplateError(
            f"Jinja syntax error: {exc.message}", template=template_name, lineno=exc.lineno,
            hint="check the {{ ... }} / {% ... %} markup on that line",
        ) from exc
    except Refused as exc:  # a constant Jinja folds while compiling
        raise TemplateError(exc.message, template=template_name, hint=exc.hint) from None
    except (RecursionError, SyntaxError, MemoryError) as exc:  # nesting the scan above missed
        raise TemplateError("the template nests too deeply to compile", template=template_name,
                            hint="flatten the template: compute nested values in a code cell") from exc
    except ValueError as exc:  # Jinja folds constants: `{{ 10 ** 5000 }}` is written as a number here
        raise TemplateError(f"the template cannot be compiled: {_value_error_text(exc)}", template=template_name,
                            lineno=None,
                            hint="compute large numbers in a code cell and keep them under 4300 digits, "
                                 "or pass them as strings") from None
    context = template_context(namespace, base)
    try:
        result = _generate(env, template, context, template_name)
    except Exception as exc:  # every render failure becomes a TemplateError with its line
        lineno = exc.lineno if isinstance(exc, Refused) and exc.lineno else _template_lineno(exc, filename)
        raise _render_error(exc, template_name, lineno, base) from exc
    _check_text(result, context, template_name)
    return result


def _generate(env: Sandbox, template: Template, context: dict[str, Any], template_name: str) -> str:
    """The template's output, a chunk at a time: stopped once it passes sandbox.MAX_OUTPUT_CHARS or the
    deadline (naming the template line being written), not after the whole text is built."""
    chunks = cast(Generator[str, None, None], template.root_render_func(template.new_context(context)))
    parts: list[str] = []
    size = 0
    refused: Refused | None = None
    try:
        for chunk in chunks:
            size += len(chunk)
            if size > sandbox.MAX_OUTPUT_CHARS:
                refused = Refused(f"the rendered {template_name} is larger than {sandbox.MAX_OUTPUT_CHARS:,} characters "
                                   "(64 Mi)", HINT_SIZE + "; ship big files with COPY from the build context",
                                   _suspended_line(template, chunks))
                break
            if time.monotonic() > env.deadline:
                refused = Refused(f"rendering took more than {sandbox.MAX_RENDER_SECONDS:g} s", HINT_TIME,
                                   _suspended_line(template, chunks))
                break
            parts.append(chunk)
    except Exception:  # noqa: BLE001 - handle_exception re-raises it, with template frames (and lines)
        env.handle_exception()
    finally:
        chunks.close()
    if refused is not None:
        raise refused
    return "".join(parts)


def _suspended_line(template: Template, chunks: Iterator[str]) -> int | None:
    """The template line the innermost of the render generators stopped at."""
    lineno = None
    generator: Any = chunks
    while isinstance(generator, types.GeneratorType) and generator.gi_frame is not None:
        if generator.gi_frame.f_code.co_filename == template.filename:
            lineno = template.get_corresponding_lineno(generator.gi_frame.f_lineno)
        generator = generator.gi_yieldfrom
    return lineno


def template_variables(text: str) -> set[str] | None:
    """The variables TEXT reads; None when it does not parse (then every name counts).

    Parsed by the bounded sandbox, as `render` does: finding the names makes Jinja's code
    generator fold constant expressions, and a plain Environment would make
    `{{ '%0999999999d' % 1 }}` (a gigabyte) while only looking for names."""
    from jinja2 import meta

    try:
        return set(meta.find_undeclared_variables(_environment().parse(text)))
    except (TemplateSyntaxError, RecursionError, ValueError, MemoryError, Refused):
        # ValueError: a folded constant that cannot be written as text (a number of more than
        # 4300 digits); render() says so as a TemplateError.
        return None


def _value_error_text(exc: ValueError) -> str:
    if "integer string conversion" in str(exc):
        return "a number in the template has more than 4300 digits, too many to write as text"
    return str(exc)


def _check_text(result: str, context: Mapping[str, Any], template: str) -> None:
    """Refuse output that cannot be written as UTF-8 text, or a Dockerfile with NUL bytes."""
    try:
        result.encode("utf-8")
    except UnicodeEncodeError as exc:
        names = sorted(name for name, value in context.items()
                       if isinstance(value, str) and _has_surrogate(value))
        source = f" (from variable {', '.join(names)})" if names else ""
        raise TemplateError(
            f"the rendered text has a lone surrogate {result[exc.start]!r} on rendered line "
            f"{result.count(chr(10), 0, exc.start) + 1}{source}: it is not valid Unicode",
            template=template, name=names[0] if names else None,
            hint="decode bytes with .decode('utf-8', 'replace') or fix the value in a code cell") from None
    if template.rsplit("/", 1)[-1] == "Dockerfile" and "\0" in result:
        at = result.index("\0")
        raise TemplateError(
            f"the rendered Dockerfile has a NUL byte on line {result.count(chr(10), 0, at) + 1}: "
            "the Docker engine's parser cuts or refuses the instruction", template=template,
            lineno=result.count(chr(10), 0, at) + 1,
            hint="remove the \\x00 character from the cell or from the variable that holds it")


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


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
    if isinstance(exc, Refused):
        return TemplateError(exc.message, template=template, lineno=lineno, hint=exc.hint)
    if isinstance(exc, RecursionError):
        return TemplateError("macros, blocks or recursive loops call themselves too deeply", template=template,
                             lineno=lineno, hint="stop the recursion earlier, or compute the value in a code cell")
    if isinstance(exc, MemoryError):
        return TemplateError("rendering ran out of memory", template=template, lineno=lineno, hint=HINT_SIZE)
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
    if isinstance(exc, ValueError) and "integer string conversion" in message:
        return TemplateError(
            _value_error_text(exc),
            template=template, lineno=lineno,
            hint="compute large numbers in a code cell and keep them under 4300 digits, or pass them as strings")
    kind = "template error" if isinstance(exc, JinjaTemplateError) else type(exc).__name__
    return TemplateError(f"{kind}: {message}", template=template, lineno=lineno)


def _example_tag() -> str:
    """The newest LTS line with an official image (`18.3-LTS`), for hints."""
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
