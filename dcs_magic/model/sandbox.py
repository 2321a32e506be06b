"""The bounded Jinja sandbox `%%dockerfile` / `%%dcs_file` templates render in (template.py).

Jinja's immutable sandbox keeps a template from changing notebook objects or reaching code;
this adds bounds, so a template cannot hang the kernel or take gigabytes either.

Each bound is a `Refused` (template.py makes it a `TemplateError` with the line and a hint),
raised before the big value is allocated:

- output: at most MAX_OUTPUT_CHARS (64 Mi characters); no single string a template computes
  may be longer either;
- computed values: padding, widths and precisions (`%`, `str.format`, `|format`, `ljust`,
  `|center`, ...), repetition, `|replace`, `|join`, `|indent`, `|wordwrap`, writing a list or
  dict as text, copying a sequence (`|list`, `|sort`, ...) are charged by the size of their
  result (a character a byte, a list item 8) to MAX_COMPUTED_BYTES (128 MiB) per render;
- steps: for-loop iterations and numbers made by `range()` share MAX_STEPS (5 million) per
  render, one `range()` holds at most MAX_RANGE numbers; calls (macros, methods) are at most
  MAX_CALLS (100,000);
- time: MAX_RENDER_SECONDS (10 s) per render, checked at each step and output chunk.

A Dockerfile is a few hundred lines; these limits are orders of magnitude above any real
template and far below what would hurt a notebook.
"""

from __future__ import annotations

import functools
import itertools
import re
import time
import types
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, MappingView
from typing import Any, cast

from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame, optimizeconst
from jinja2.filters import make_attrgetter
from jinja2.filters import sync_do_join as _JOIN
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedEscapeFormatter, SandboxedFormatter
from jinja2.utils import Namespace, _PassArg, generate_lorem_ipsum, pass_context
from markupsafe import Markup

__all__ = ["HINT_SIZE", "HINT_TIME", "MAX_NESTING", "Refused", "Sandbox"]

MAX_RESULT_BITS = 100_000  # a 30,000-digit number; no Dockerfile needs more
MAX_SEQUENCE_LENGTH = 10_000_000  # `*` on strings/lists: 10 M items
MAX_NESTING = 40  # nested blocks / brackets: Jinja recurses per level, Python allows 100 indents
# A Dockerfile or a COPY'd file cell larger than 64 Mi characters is surely a mistake (files that
# big belong in the build context, not in a notebook cell); it is also the most any one string a
# template computes may hold.
MAX_OUTPUT_CHARS = 64 * 1024 * 1024
# Everything a render computes (strings a character a byte, list items 8 bytes): twice the output,
# so a large file can still be transformed once (`{{ data|indent(2) }}`), but a filter mapped over
# a thousand items (`range(1000)|map('center', 10**7)|list`) is refused, not 10 GB.
MAX_COMPUTED_BYTES = 128 * 1024 * 1024
# Loop iterations + range() numbers: a 3,000-line Dockerfile takes ~10,000; 5 million take about
# 1 s of pure Jinja, so nested `range(99999)` loops stop within a second or two.
MAX_STEPS = 5_000_000
# Calls (macros, methods, range(), loop(...)): a macro call costs Jinja 5-10 microseconds, so a
# recursive macro that calls itself twice per level (2**60 calls) stops within a second; a
# Dockerfile calls a macro per line at most.
MAX_CALLS = 100_000
MAX_RANGE = 100_000  # one range(), as Jinja's sandbox
MAX_RENDER_SECONDS = 10.0  # wall clock, compiling included
MAX_TEXT_DEPTH = 200  # a list nested deeper is not written as text (it would be measured by recursion)

HINT_SIZE = ("compute big values in a code cell and use the variable; a file this large in a template is "
              "probably a mistake (a width, a repetition or a loop that multiplies text)")
HINT_STEPS = ("loop over fewer items: prepare the list in a code cell and loop over it "
               "(a Dockerfile needs hundreds of lines, not millions)")
HINT_TIME = "the template does too much work: compute the values in a code cell and use the variables"


class Refused(Exception):
    """A render bound was reached; `render` turns it into a TemplateError with the line."""

    def __init__(self, message: str, hint: str, lineno: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.lineno = lineno


_COUNTED = "dcs_counted"


class _CodeGenerator(CodeGenerator):
    """Jinja's code generator, with every for-loop's iterable wrapped in `environment.dcs_counted(...)`
    (steps and the deadline) and every `~` through `environment.dcs_concat(...)` (result size)."""

    def visit_For(self, node: nodes.For, frame: Frame) -> None:
        original = node.iter  # Jinja allows no new node types: the wrapper is a Call marked by its callee
        node.iter = nodes.Call(nodes.EnvironmentAttribute(_COUNTED), [original], [], None, None,
                               lineno=original.lineno)
        try:
            super().visit_For(node, frame)
        finally:
            node.iter = original

    def visit_Call(self, node: nodes.Call, frame: Frame, forward_caller: bool = False) -> None:
        if isinstance(node.node, nodes.EnvironmentAttribute) and node.node.name == _COUNTED:
            self.write(f"environment.{_COUNTED}(")
            self.visit(node.args[0], frame)
            self.write(")")
        else:
            super().visit_Call(node, frame, forward_caller=forward_caller)

    @optimizeconst
    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        if frame.eval_ctx.volatile:
            join = "(markup_join if context.eval_ctx.volatile else str_join)"
        elif frame.eval_ctx.autoescape:
            join = "markup_join"
        else:
            join = "str_join"
        self.write(f"environment.dcs_concat({join}, (")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class Sandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, and no attribute access on modules: a template sees values,
    not code (compute `os.environ[...]` in a code cell and use the variable).

    One environment per render: it carries that render's budgets (steps, computed bytes,
    deadline). The bounds are read from the module constants when it is made."""

    # `**` and `*` go through call_binop, so a template cannot make a number or a string so
    # large that rendering hangs or exhausts memory (`{{ 10 ** 10 ** 8 }}`, `{{ 'x' * 10**10 }}`);
    # `%` is printf formatting on strings (`"%0999999999d" % 1`), `+` concatenation.
    intercepted_binops = frozenset({"**", "*", "%", "+"})
    code_generator_class = _CodeGenerator

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.steps_left = MAX_STEPS
        self.calls_left = MAX_CALLS
        self.computed = 0
        self.deadline = time.monotonic() + MAX_RENDER_SECONDS
        self.finalize = self._finalize
        self.globals["range"] = self._range
        self.globals["lipsum"] = self._lipsum
        self.filters.update(_bounded_filters(self.filters))

    # -- budgets ---------------------------------------------------------------------------

    def spend_steps(self, count: int) -> None:
        self.steps_left -= count
        if self.steps_left < 0:
            raise Refused(f"the template takes more than {MAX_STEPS:,} steps (loop iterations and "
                           "numbers made by range())", HINT_STEPS)
        self.check_time()

    def check_time(self, lineno: int | None = None) -> None:
        if time.monotonic() > self.deadline:
            raise Refused(f"rendering took more than {MAX_RENDER_SECONDS:g} s", HINT_TIME, lineno)

    def charge(self, size: int, what: str, unit: str = "characters") -> None:
        """Account for a value of `size` bytes about to be made by `what`; refuse it first if too big."""
        self.computed += size
        if size > MAX_OUTPUT_CHARS or self.computed > MAX_COMPUTED_BYTES or time.monotonic() > self.deadline:
            self.computed -= size
            self._refuse(size, what, unit)

    def _refuse(self, size: int, what: str, unit: str) -> None:
        if size > MAX_OUTPUT_CHARS:
            raise Refused(f"{what} would make {size:,} {unit}, more than the {MAX_OUTPUT_CHARS:,} "
                           f"(64 Mi) a rendered file may hold", HINT_SIZE)
        if self.computed + size > MAX_COMPUTED_BYTES:
            raise Refused(f"{what} would bring what the template computes to more than "
                           f"{MAX_COMPUTED_BYTES:,} bytes (128 MiB)", HINT_SIZE)
        self.check_time()

    def dcs_counted(self, iterable: Iterable[Any]) -> Iterator[Any]:
        """A for-loop's iterable: each item is a step."""
        for item in iterable:
            self.steps_left -= 1
            if self.steps_left < 0 or time.monotonic() > self.deadline:
                self.spend_steps(0)
            yield item

    def dcs_concat(self, join: Callable[[Iterable[Any]], str], parts: tuple[Any, ...]) -> str:
        """`a ~ b ~ ...`: refused when the result would pass MAX_OUTPUT_CHARS."""
        size = 0
        for part in parts:
            if isinstance(part, str):
                size += len(part)
            else:
                part_size = _text_len(part)
                size += part_size
                if _is_container(part):
                    self.charge(part_size, "writing a list or dict as text")
        if size > MAX_OUTPUT_CHARS:
            self.charge(size, "'~'")
        return join(parts)

    def _finalize(self, value: Any) -> Any:
        """Every `{{ ... }}`: a list or dict is measured before it is written as text."""
        if type(value) not in _SCALARS and _is_container(value):
            size = _text_size(value)
            if size > MAX_OUTPUT_CHARS:
                self.charge(size, f"writing this {type(value).__name__} as text")
        return value

    # -- globals -------------------------------------------------------------------------

    def _range(self, *args: Any) -> range:
        numbers = range(*args)
        try:
            count = len(numbers)
        except OverflowError:
            count = MAX_RANGE + 1
        if count > MAX_RANGE:
            raise Refused(f"range() of {count:,} numbers is more than the {MAX_RANGE:,} one range may have",
                           HINT_STEPS)
        self.spend_steps(count)
        return numbers

    def _lipsum(self, n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:  # noqa: A002
        if _is_int(n) and _is_int(max):
            self.charge(abs(n) * abs(max) * 12, f"lipsum({n})")
            self.spend_steps(abs(n))
        return generate_lorem_ipsum(n, html, min, max)

    # -- the sandbox's hooks ---------------------------------------------------------------

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if isinstance(obj, types.ModuleType):
            return False
        return super().is_safe_attribute(obj, attr, value)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "%":
            if isinstance(left, str):
                self.charge(_percent_size(left, right), "'%' formatting")
            return left % right
        if operator == "+":
            if isinstance(left, str) and isinstance(right, str) and len(left) + len(right) > MAX_OUTPUT_CHARS:
                self.charge(len(left) + len(right), "'+'")
            if (isinstance(left, (list, tuple)) and isinstance(right, (list, tuple))
                    and len(left) + len(right) > MAX_SEQUENCE_LENGTH):
                raise Refused(f"joining lists of {len(left):,} and {len(right):,} items is too large "
                               f"(more than {MAX_SEQUENCE_LENGTH:,} items)", HINT_SIZE)
            return left + right
        if operator == "*":
            for seq, count in ((left, right), (right, left)):
                if isinstance(seq, (str, bytes, list, tuple)) and _is_int(count):
                    if len(seq) * count > MAX_SEQUENCE_LENGTH:
                        raise Refused(f"repeating a sequence of length {len(seq):,} {count:,} times "
                                       f"is too large (more than {MAX_SEQUENCE_LENGTH:,} items)", HINT_SIZE)
                    if isinstance(seq, (str, bytes)):
                        self.charge(len(seq) * max(count, 0), "'*'")
                    else:
                        self.charge(8 * len(seq) * max(count, 0), "'*'", "bytes of list")
                    break
            return left * right
        if (operator == "**" and _is_int(left) and _is_int(right) and abs(left) > 1 and right > 0
                and right * max(abs(left).bit_length() - 1, 1) > MAX_RESULT_BITS):
            raise Refused(f"{left} ** {right} is too large (more than {MAX_RESULT_BITS:,} bits)",
                           "compute large numbers in a code cell and pass them as strings")
        return super().call_binop(context, operator, left, right)

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        """Every call in a template is counted; str methods that pad or multiply are measured first."""
        self.calls_left -= 1
        if self.calls_left < 0:
            raise Refused(f"the template makes more than {MAX_CALLS:,} calls (macros, methods, range(), ...)",
                           "call macros fewer times (a recursive macro doubles its calls at each level), or "
                           "compute the values in a code cell")
        self.check_time()
        if isinstance(obj, (types.BuiltinMethodType, types.MethodType)):
            wrapped = self.wrap_str_format(obj)  # a `str.format` that reached here unwrapped (older Jinja's |attr)
            if wrapped is not None:
                return super().call(context, wrapped, *args, **kwargs)
            owner = obj.__self__
            size = _STR_METHOD_SIZES.get(obj.__name__) if isinstance(owner, (str, bytes)) else None
            if size is not None:
                if obj.__name__ == "join" and args and not isinstance(args[0], (str, bytes)):
                    args = (_materialized(args[0]), *args[1:])
                try:
                    result_size = size(owner, *args, **kwargs)
                except (TypeError, ValueError, OverflowError, AttributeError):
                    result_size = 0  # bad arguments: the method itself says what is wrong
                self.charge(result_size, f"str.{obj.__name__}()")
        return super().call(context, obj, *args, **kwargs)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """The sandbox's `str.format` / `format_map` wrapper, with a formatter that measures each
        field (width, precision, the value's text) before formatting it."""
        if not isinstance(value, (types.MethodType, types.BuiltinMethodType)) or value.__name__ not in (
                "format", "format_map"):
            return None
        f_self: Any = value.__self__
        if not isinstance(f_self, str):
            return None
        str_type: type[str] = type(f_self)
        is_format_map = value.__name__ == "format_map"
        formatter: SandboxedFormatter
        if isinstance(f_self, Markup):
            formatter = _BoundedEscapeFormatter(self, escape=f_self.escape)
        else:
            formatter = _BoundedFormatter(self)

        def wrapper(*args: Any, **kwargs: Any) -> str:
            if is_format_map:
                if kwargs:
                    raise TypeError("format_map() takes no keyword arguments")
                if len(args) != 1:
                    raise TypeError(f"format_map() takes exactly one argument ({len(args)} given)")
                kwargs = args[0]
                args = ()
            return str_type(formatter.vformat(f_self, args, kwargs))

        return functools.update_wrapper(wrapper, value)


class _BoundedFormatter(SandboxedFormatter):
    _env: Sandbox

    def format_field(self, value: Any, format_spec: str) -> Any:
        size = _format_spec_size(value, format_spec)
        self._env.charge(size, f"str.format() with {{:{format_spec[:20]}}}" if size > 4096 else "str.format()")
        return super().format_field(value, format_spec)


class _BoundedEscapeFormatter(_BoundedFormatter, SandboxedEscapeFormatter):
    pass


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# -- measuring results before they are made ----------------------------------------------------

_SEQUENCES = (list, tuple, set, frozenset, deque, MappingView)


_SCALARS = frozenset({str, int, float, bool, type(None), Markup})
_CONTAINERS = frozenset({list, tuple, dict, set, frozenset})


def _is_container(value: Any) -> bool:
    kind = type(value)
    if kind in _CONTAINERS:
        return True
    return kind not in _SCALARS and isinstance(value, (*_SEQUENCES, Mapping, Namespace))


def _text_size(value: Any, indent: int = 0) -> int:
    """About len(str(value)), found without making it: a list holding the same list a thousand
    times, itself held a thousand times, is measured in a few steps, not written out. Stops
    counting past MAX_OUTPUT_CHARS. `indent`: the characters each nesting level adds to each
    item's line (`|tojson(indent)`, `|pprint`)."""
    if isinstance(value, str):
        return len(value)
    seen: dict[int, int] = {}

    def size(item: Any, depth: int) -> int:
        if isinstance(item, str):
            return len(item) + 2
        if isinstance(item, (bytes, bytearray)):
            return 4 * len(item) + 3
        if _is_int(item):
            return _digits(item)
        if isinstance(item, Namespace):
            item = getattr(item, "_Namespace__attrs", {})
        if not isinstance(item, (*_SEQUENCES, Mapping)):
            return 24  # a float, None, an object: short text
        key = id(item)
        if key in seen:
            return seen[key]
        if depth > MAX_TEXT_DEPTH:
            raise Refused(f"a value nested more than {MAX_TEXT_DEPTH} levels deep cannot be written as text",
                           HINT_SIZE)
        seen[key] = 5  # a list inside itself is written `[...]`
        total = 2
        per_item = 2 + indent * (depth + 1)
        if isinstance(item, Mapping):
            for name, entry in item.items():
                total += size(name, depth + 1) + size(entry, depth + 1) + per_item + 2
                if total > MAX_OUTPUT_CHARS:
                    break
        else:
            for entry in cast(Iterable[Any], item):
                total += size(entry, depth + 1) + per_item
                if total > MAX_OUTPUT_CHARS:
                    break
        seen[key] = total
        return total

    return size(value, 0)


def _digits(number: int) -> int:
    return number.bit_length() * 30103 // 100_000 + 2  # log10(2) digits a bit, a sign and one more


def _text_len(value: Any) -> int:
    if isinstance(value, str):
        return len(value)
    if _is_int(value):
        return _digits(value)
    if isinstance(value, float):
        return 24
    return _text_size(value)


def _count(digits: str | None) -> int:
    """A width or precision written in a format string (digits only; absurdly long means huge)."""
    if not digits:
        return 0
    return int(digits) if len(digits) <= 18 else 10**18


def _field_size(value: Any, width: int, precision: int | None, kind: str) -> int:
    """The length of one formatted field: the value's text, padded to `width`; a precision
    truncates text (`%.3s`, `{:.3}`) and adds digits to numbers (`%.999f`)."""
    text = _text_len(value)
    if kind in ("s", "r", "a") or (kind == "" and isinstance(value, str)):
        body = text if precision is None else min(text, precision)
    else:
        body = text + (precision or 0)
    return max(abs(width), body)


# key, width, "." and precision, conversion
_PERCENT = re.compile(r"%(?:\(([^)]*)\))?[-#0 +]*(\*|\d*)(\.\*|\.\d*)?[hlL]?(.?)", re.S)


_STAR = -1


@functools.lru_cache(maxsize=256)
def _directives(fmt: str) -> tuple[tuple[str, int, int | None, str], ...]:
    """`fmt`'s conversions as (mapping key, width, precision, type); `*` is _STAR, `%%` left out."""
    parsed = []
    for key, width, precision, kind in _PERCENT.findall(fmt):
        if kind != "%":
            parsed.append((key, _STAR if width == "*" else _count(width),
                           None if not precision else _STAR if precision == ".*" else _count(precision[1:]), kind))
    return tuple(parsed)


def _percent_size(fmt: str, values: Any) -> int:
    """The length `fmt % values` would have (printf-style), from its conversions' widths and precisions."""
    if type(values) is tuple:
        args: tuple[Any, ...] = values
        mapping = None
    else:
        args = (values,)
        mapping = values if type(values) is dict or (type(values) not in _SCALARS and isinstance(values, Mapping)) \
            else None
    position = 0
    size = len(fmt)
    for key, width, precision, kind in _directives(fmt):
        if width == _STAR:
            width = args[position] if position < len(args) and _is_int(args[position]) else 0
            position += 1
        if precision == _STAR:
            precision = args[position] if position < len(args) and _is_int(args[position]) else 0
            position += 1
        if key and mapping is not None:
            value = mapping.get(key)
        else:
            value = args[position] if position < len(args) else None
            position += 1
        if width == 0 and precision is None:
            size += len(value) if type(value) is str else _text_len(value)
        else:
            size += _field_size(value, width, precision, kind)
    return size


_SPEC = re.compile(r"(?:.?[<>=^])?[-+ ]?z?#?0?(?P<width>\d*)[,_]?(?:\.(?P<precision>\d+))?(?P<kind>[a-zA-Z%]?)", re.S)


def _format_spec_size(value: Any, spec: str) -> int:
    """The length of `format(value, spec)` (str.format's mini-language)."""
    if not spec:
        return _text_len(value)
    parsed = _spec(spec)
    if parsed is None:  # an object's own mini-language (dates): a few characters per spec character
        return _text_len(value) + 16 * len(spec)
    return _field_size(value, *parsed)


@functools.lru_cache(maxsize=256)
def _spec(spec: str) -> tuple[int, int | None, str] | None:
    match = _SPEC.fullmatch(spec)
    if match is None:
        return None
    return _count(match["width"]), None if match["precision"] is None else _count(match["precision"]), match["kind"]


def _replace_size(text: str | bytes, old: Any, new: Any, count: Any = -1) -> int:
    if not (isinstance(old, type(text)) and isinstance(new, type(text))):
        return len(text)
    found = len(text) + 1 if not old else text.count(old)  # type: ignore[arg-type]
    if _is_int(count) and count >= 0:
        found = min(found, count)
    return len(text) + found * max(len(new) - len(old), 0)


def _join_size(separator: str | bytes, items: list[Any]) -> int:
    size = max(len(items) - 1, 0) * len(separator)
    if set(map(type, items)) <= {str}:
        return size + sum(map(len, items))
    return size + sum(map(_text_len, items))


def _translate_size(text: str | bytes, table: Any) -> int:
    entries = table.values() if isinstance(table, Mapping) else table if isinstance(table, (list, tuple)) else ()
    longest = max((len(entry) for entry in entries if isinstance(entry, (str, bytes))), default=1)
    return len(text) * max(longest, 1)


def _materialized(iterable: Any) -> Any:
    try:
        return list(iterable)
    except TypeError:
        return iterable  # not iterable: the callee says so


def _pad(text: str | bytes, width: Any, *_: Any) -> int:
    return max(len(text), width) if _is_int(width) else len(text)


_STR_METHOD_SIZES: dict[str, Callable[..., int]] = {
    "ljust": _pad, "rjust": _pad, "center": _pad, "zfill": _pad,
    "expandtabs": lambda text, tabsize=8: len(text) + text.count("\t" if isinstance(text, str) else b"\t")
    * max(tabsize, 0),
    "replace": _replace_size,
    "join": lambda separator, items: _join_size(separator, items),
    "translate": _translate_size,
}


# -- filters: each measures its result first, then runs Jinja's own --------------------------

_Size = Callable[..., "tuple[int, Any]"]


_FIRST_ARGUMENT: dict[_PassArg | None, Callable[[Context], tuple[Any, ...]]] = {
    _PassArg.context: lambda context: (context,),
    _PassArg.eval_context: lambda context: (context.eval_ctx,),
    _PassArg.environment: lambda context: (context.environment,),
    None: lambda context: (),
}


def _bounded(name: str, original: Callable[..., Any], size: _Size) -> Callable[..., Any]:
    first = _FIRST_ARGUMENT[_PassArg.from_obj(original)]  # what Jinja would pass the filter first
    label = f"|{name}"

    @pass_context  # never folded at compile time: measured (and refused) while rendering, with the line
    def bounded(context: Context, value: Any, *args: Any, **kwargs: Any) -> Any:
        env: Sandbox = context.environment  # type: ignore[assignment]
        try:
            result_size, value = size(env, value, *args, **kwargs)
        except (TypeError, ValueError, OverflowError, AttributeError):
            result_size = 0  # bad arguments: Jinja's filter says what is wrong
        env.charge(result_size, label)
        return original(*first(context), value, *args, **kwargs)

    bounded.__name__ = bounded.__qualname__ = f"bounded_{name}"
    bounded.__doc__ = original.__doc__
    return bounded


def _text(env: Sandbox, value: Any, *_: Any, **__: Any) -> tuple[int, Any]:
    return _text_len(value), value


def _copy(env: Sandbox, value: Any, *_: Any, **__: Any) -> tuple[int, Any]:
    if isinstance(value, str):
        return 8 * len(value), value
    return (8 * len(value) if isinstance(value, (*_SEQUENCES, Mapping)) else 0), value


def _center(env: Sandbox, value: Any, width: Any = 80, *_: Any) -> tuple[int, Any]:
    return max(_text_len(value), width if _is_int(width) else 0), value


def _indent(env: Sandbox, value: Any, width: Any = 4, *_: Any, **__: Any) -> tuple[int, Any]:
    prefix = len(width) if isinstance(width, str) else width if _is_int(width) else 0
    text = _text_len(value)
    lines = value.count("\n") + 1 if isinstance(value, str) else 1
    return text + 1 + lines * max(prefix, 0), value


def _format(env: Sandbox, value: Any, *args: Any, **kwargs: Any) -> tuple[int, Any]:
    if _is_container(value):
        return _text_size(value), value
    return _percent_size(str(value), kwargs or args), value


def _replace(env: Sandbox, value: Any, old: Any, new: Any, count: Any = None, **_: Any) -> tuple[int, Any]:
    if _is_container(value):
        return _text_size(value), value
    return _replace_size(str(value), str(old), str(new), -1 if count is None else count), value


def _batch(env: Sandbox, value: Any, linecount: Any = 1, fill_with: Any = None) -> tuple[int, Any]:
    items = list(value)
    count = linecount if _is_int(linecount) and linecount > 0 else 1
    padding = count if fill_with is not None else 0
    return 8 * (len(items) + padding) + 64 * (len(items) // count + 1), items


def _slice(env: Sandbox, value: Any, slices: Any = 1, *_: Any) -> tuple[int, Any]:
    items = list(value)
    if _is_int(slices):
        env.spend_steps(max(slices, 0))
        return 8 * len(items) + 64 * max(slices, 0), items
    return 0, items


def _tojson(env: Sandbox, value: Any, indent: Any = None) -> tuple[int, Any]:
    width = len(indent) if isinstance(indent, str) else indent if _is_int(indent) and indent > 0 else 0
    env.charge(width, "|tojson")  # json makes the indentation string first
    size = _text_size(value, width + 1 if width else 0)
    if isinstance(value, str):  # `<>&'` are written as 6-character escapes
        size += 5 * sum(map(value.count, "<>&'"))
    return size, value


def _pprint(env: Sandbox, value: Any, *_: Any) -> tuple[int, Any]:
    return _text_size(value, 1), value


_FILTER_SIZES: dict[str, _Size] = {
    **dict.fromkeys(("capitalize", "lower", "upper", "title", "trim", "striptags", "urlize", "wordcount", "e",
                     "escape", "forceescape", "urlencode", "xmlattr"), _text),
    "pprint": _pprint,
    "string": lambda env, value: (0 if isinstance(value, str) else _text_len(value), value),
    **dict.fromkeys(("list", "sort", "reverse", "unique", "dictsort", "items", "groupby"), _copy),
    "center": _center,
    "indent": _indent,
    "format": _format,
    "replace": _replace,
    "batch": _batch,
    "slice": _slice,
    "tojson": _tojson,
}


@pass_context
def _bounded_sum(context: Context, iterable: Any, attribute: Any = None, start: Any = 0) -> Any:
    """Returns the sum of a sequence of numbers plus the value of parameter 'start' (which
    defaults to 0). Lists (`|sum(start=[])`) are joined in one pass, measured first, where
    Python's sum would copy the growing list at every item."""
    env: Sandbox = context.environment  # type: ignore[assignment]
    items: Iterable[Any] = iterable
    if attribute is not None:
        items = map(make_attrgetter(env, attribute), iterable)
    if not isinstance(start, (list, tuple)):
        return sum(items, start)
    parts = [start, *items]
    if any(type(part) is not type(start) for part in parts):
        return sum(parts[1:], start)  # Python's own TypeError (or a subclass's own `+`)
    length = sum(map(len, parts))
    if length > MAX_SEQUENCE_LENGTH:
        raise Refused(f"|sum would make a list of {length:,} items, more than {MAX_SEQUENCE_LENGTH:,}", HINT_SIZE)
    env.charge(8 * length, "|sum", "bytes of list")
    return type(start)(itertools.chain.from_iterable(parts))


@pass_context
def _bounded_join(context: Context, value: Iterable[Any], d: Any = "", attribute: Any = None) -> str:
    """Return a string which is the concatenation of the strings in the sequence, separated by
    `d` (Jinja's |join); the result is measured before it is made."""
    env: Sandbox = context.environment  # type: ignore[assignment]
    if attribute is not None:
        value = map(make_attrgetter(env, attribute), value)
    items = list(value)
    separator = str(d)
    env.charge(_join_size(separator, items), "|join")
    if context.eval_ctx.autoescape:  # `{% autoescape true %}`: Jinja's own, for its Markup handling
        return _JOIN(context.eval_ctx, items, d)
    return separator.join(map(str, items))


@pass_context
def _bounded_wordwrap(context: Context, s: str, width: int = 79, break_long_words: bool = True,
                      wrapstring: str | None = None, break_on_hyphens: bool = True) -> str:
    """Wrap a string to the given width (Jinja's |wordwrap). The result is measured before the
    lines are joined with `wrapstring`; the deadline is checked between paragraphs."""
    import textwrap

    env: Sandbox = context.environment  # type: ignore[assignment]
    if wrapstring is None:
        wrapstring = env.newline_sequence
    if isinstance(s, str) and isinstance(wrapstring, str) and _is_int(width) and width > 0:
        # at most a line per `width` characters, per space and per hyphen
        lines = len(s) // width + s.count(" ") + s.count("-") + s.count("\n") + 1
        if len(s) + lines * len(wrapstring) > MAX_OUTPUT_CHARS:
            env.charge(len(s) + lines * len(wrapstring), "|wordwrap")
    paragraphs = []
    for line in s.splitlines():
        env.check_time()
        paragraphs.append(textwrap.wrap(line, width=width, expand_tabs=False, replace_whitespace=False,
                                        break_long_words=break_long_words, break_on_hyphens=break_on_hyphens))
    lines = sum(len(paragraph) for paragraph in paragraphs)
    env.charge(sum(len(line) for paragraph in paragraphs for line in paragraph)
               + max(lines - 1, 0) * len(wrapstring), "|wordwrap")
    return wrapstring.join([wrapstring.join(paragraph) for paragraph in paragraphs])


def _bounded_filters(filters: Mapping[str, Callable[..., Any]]) -> dict[str, Callable[..., Any]]:
    bounded = {name: _bounded(name, filters[name], size) for name, size in _FILTER_SIZES.items() if name in filters}
    return {**bounded, "join": _bounded_join, "sum": _bounded_sum, "wordwrap": _bounded_wordwrap}
