"""Template resource bombs (issue 23, item 12): rendering is bounded in output size, computed
size, loop steps, calls and time (dcs_magic/model/sandbox.py).

Table-driven, pure (no engine): each bomb row renders one template through the real
`render` and asserts the `TemplateError` that names what was too big (and the limit), the
template line and a hint, and that it came quickly and cheaply: the wall-clock time of the
row and the growth of the process's peak resident memory (Linux resets the peak through
/proc/self/clear_refs; elsewhere tracemalloc's peak of Python allocations). The rows that
must still render are compared with what plain Jinja's sandbox renders from the same
template. One bomb goes through `python -m dcs_magic.cli render`, one through `%%dockerfile`.
"""

from __future__ import annotations

import re
import resource
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
import pytest
from jinja2 import StrictUndefined
from jinja2.sandbox import ImmutableSandboxedEnvironment
from nbformat.v4 import new_code_cell, new_notebook

from dcs_magic.errors import TemplateError
from dcs_magic.model import sandbox
from dcs_magic.model.template import render, template_variables

MB = 1024 * 1024
# A hang guard, not a speed target (those are benchmarks): a bomb that was evaluated instead of
# refused runs for minutes to hours. Which bound refused it is asserted by the error's words
# (a refusal by the render deadline says so), so a loaded CI machine cannot fail this.
QUICK_S = 30.0

# id, template line 2 (after `FROM busybox`), notebook variables, words of the error, peak growth in MB
BOMBS: list[tuple[str, str, dict[str, Any], str, int]] = [
    # loops: nested range(99999), with and without output
    ("nested-range-loops", "{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}", {},
     "more than 5,000,000 steps", 16),
    ("nested-loops-output", "{% for i in range(99999) %}{% for j in range(99999) %}x{% endfor %}{% endfor %}", {},
     "more than 5,000,000 steps", 32),
    ("range-too-long", "{{ range(10**9)|length }}", {}, "range() of 1,000,000,000 numbers", 16),
    ("slice-into-a-billion", "{{ [1]|slice(10**9)|list|length }}", {}, "more than 5,000,000 steps", 16),
    ("recursive-macro", "{% macro f(n) %}{% if n %}{{ f(n-1) }}{{ f(n-1) }}{% endif %}{% endmacro %}{{ f(60) }}",
     {}, "more than 100,000 calls", 16),
    # printf `%` and |format
    ("percent-width", "{{ '%0999999999d' % 1 }}", {}, "'%' formatting would make 1,000,000,011 characters", 16),
    ("percent-precision", "{{ '%.999999999f' % 1.0 }}", {}, "'%' formatting would make", 16),
    ("percent-star-width", "{{ '%*d' % (999999999, 1) }}", {}, "'%' formatting would make", 16),
    ("format-filter", "{{ '%0999999999d'|format(1) }}", {}, "|format would make", 16),
    # str.format / format_map
    ("str-format-width", "{{ '{:>999999999}'.format(1) }}", {}, "str.format() with {:>999999999} would make", 16),
    ("str-format-nested-width", "{{ '{:>{w}}'.format(1, w=999999999) }}", {}, "str.format() with {:>999999999}", 16),
    ("format-map-width", "{{ '{x:>999999999}'.format_map({'x': 1}) }}", {}, "str.format() with {:>999999999}", 16),
    # str methods
    ("ljust", "{{ 'x'.ljust(10**9) }}", {}, "str.ljust() would make 1,000,000,000 characters", 16),
    ("rjust", "{{ 'x'.rjust(10**9) }}", {}, "str.rjust() would make", 16),
    ("center-method", "{{ 'x'.center(10**9) }}", {}, "str.center() would make", 16),
    ("zfill", "{{ '1'.zfill(10**9) }}", {}, "str.zfill() would make", 16),
    ("expandtabs", "{{ ('\\t' * 1000).expandtabs(10**6) }}", {}, "str.expandtabs() would make", 16),
    ("replace-method", "{{ ('x' * 1000).replace('x', 'x' * 100000) }}", {}, "str.replace() would make", 16),
    ("join-method", "{{ ('x' * 99999).join(['a'] * 99999) }}", {}, "str.join() would make", 16),
    ("translate", "{{ ('x' * 100000).translate({120: 'y' * 100000}) }}", {}, "str.translate() would make", 16),
    # filters
    ("center-filter", "{{ 'x'|center(10**9) }}", {}, "|center would make 1,000,000,000 characters", 16),
    ("indent-many-lines", "{{ ('x\\n' * 100000)|indent(100000) }}", {}, "|indent would make", 16),
    ("indent-huge-width", "{{ 'a\\nb'|indent(10**9) }}", {}, "|indent would make", 16),
    ("join-separator", "{{ range(99999)|join('x' * 99999) }}", {}, "|join would make", 16),
    ("join-big-items", "{% set s = 'x' * 10**7 %}{{ [s, s, s, s, s, s, s, s]|join }}", {}, "|join would make", 32),
    ("replace-filter", "{{ ('x' * 1000)|replace('x', 'x' * 100000) }}", {}, "|replace would make", 16),
    ("replace-empty", "{{ ('x' * 100000)|replace('', 'y' * 1000) }}", {}, "|replace would make", 16),
    ("wordwrap", "{{ ('a ' * 100000)|wordwrap(1, wrapstring='x' * 10000) }}", {}, "|wordwrap would make", 16),
    ("tojson-indent", "{{ {'a': [1]}|tojson(10**9) }}", {}, "|tojson would make", 16),
    ("batch-fill", "{{ [1]|batch(10**9, 'x')|list|length }}", {}, "|batch would make", 16),
    ("sum-of-lists", "{{ ([[0] * 10**6] * 20)|sum(start=[])|length }}", {}, "|sum would make a list of 20,000,000", 32),
    ("list-of-a-big-string", "{% set s = 'x' * 10**7 %}{{ ([s] * 100)|map('list')|list|length }}", {},
     "|list would make", 32),
    ("lipsum", "{{ lipsum(10**7) }}", {}, "lipsum(10000000) would make", 16),
    ("repeat", "{{ 'x' * 10**10 }}", {}, "too large (more than 10,000,000 items)", 16),
    # many values, each allowed: the per-render budget
    ("map-center", "{{ range(1000)|map('center', 10**7)|list|length }}", {},
     "more than 134,217,728 bytes (128 MiB)", 160),
    ("concat-doubling", "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}"
     "{% endfor %}{{ ns.s|length }}", {}, "'~' would make 134,217,728 characters", 128),
    ("plus-doubling", "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}"
     "{% endfor %}{{ ns.s|length }}", {}, "'+' would make 134,217,728 characters", 128),
    # one list shared a thousand times, three levels deep: 10**9 items written as text
    ("shared-lists-as-text", "{% set a = ['xxxxxxxxxx'] * 1000 %}{% set b = [a] * 1000 %}{% set c = [b] * 1000 %}"
     "{{ c }}", {}, "writing this list as text would make", 16),
    ("shared-lists-string", "{% set a = ['xxxxxxxxxx'] * 1000 %}{% set b = [a] * 1000 %}{{ ([b] * 1000)|string }}",
     {}, "|string would make", 16),
    ("shared-lists-tojson", "{% set a = ['xxxxxxxxxx'] * 1000 %}{% set b = [a] * 1000 %}{{ ([b] * 1000)|tojson }}",
     {}, "|tojson would make", 16),
    ("shared-lists-concat", "{% set a = ['xxxxxxxxxx'] * 1000 %}{% set b = [a] * 1000 %}{{ 'c=' ~ [b] * 1000 }}",
     {}, "would make", 16),
    ("shared-lists-percent", "{% set a = ['xxxxxxxxxx'] * 1000 %}{% set b = [a] * 1000 %}{{ '%s' % ([b] * 1000,) }}",
     {}, "'%' formatting would make", 16),
    ("doubling-nest", "{% set ns = namespace(x='x') %}{% for i in range(300) %}{% set ns.x = [ns.x, ns.x] %}"
     "{% endfor %}{{ ns.x }}", {}, "nested more than 200 levels deep", 16),
    ("a-notebook-list-of-shared-lists", "{{ big }}", {"big": [[["x" * 10] * 1000] * 1000] * 1000},
     "writing this list as text would make", 16),
    # the output itself
    ("output-size", "{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}", {},
     "the rendered Dockerfile is larger than 67,108,864 characters", 100),
]


def _hwm_reset() -> Callable[[], float] | None:
    """Reset the process's peak RSS (Linux); returns a reader of the growth since, in MB."""
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")
        start = _status_kb("VmRSS")
    except OSError:
        return None
    return lambda: (_status_kb("VmHWM") - start) / 1024


def _status_kb(key: str) -> int:
    found = re.search(rf"^{key}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M)
    assert found is not None
    return int(found.group(1))


def measured(fn: Callable[[], Any]) -> tuple[BaseException | None, float, float]:
    """Run fn: (what it raised, seconds, peak memory growth in MB)."""
    growth = _hwm_reset()
    if growth is None:
        tracemalloc.start()
    started = time.monotonic()
    raised: BaseException | None = None
    try:
        fn()
    except BaseException as exc:  # noqa: BLE001 - a MemoryError or a KeyboardInterrupt is a failed row too
        raised = exc
    elapsed = time.monotonic() - started
    if growth is None:
        peak = tracemalloc.get_traced_memory()[1] / MB
        tracemalloc.stop()
    else:
        peak = growth()
    return raised, elapsed, peak


@pytest.mark.parametrize(("line", "variables", "words", "max_mb"), [row[1:] for row in BOMBS],
                         ids=[row[0] for row in BOMBS])
def test_a_bomb_is_refused_quickly_naming_the_bound(line: str, variables: dict[str, Any], words: str,
                                                    max_mb: int) -> None:
    raised, elapsed, peak_mb = measured(lambda: render(f"FROM busybox\nRUN echo {line}\n", variables))
    assert isinstance(raised, TemplateError), repr(raised)
    assert words in raised.message, raised.message
    assert raised.lineno == 2 and "(Dockerfile, line 2)" in str(raised)
    assert raised.hint and ("code cell" in raised.hint or "fewer" in raised.hint)
    assert elapsed < QUICK_S, f"refused after {elapsed:.1f} s"
    assert peak_mb < max_mb, f"peak memory grew {peak_mb:.0f} MB"


def test_a_template_that_only_loops_stops_at_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox, "MAX_STEPS", 10**12)  # the clock, not the step budget
    monkeypatch.setattr(sandbox, "MAX_RENDER_SECONDS", 0.3)
    body = "FROM busybox\n{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}\n"
    raised, elapsed, _ = measured(lambda: render(body, {}))
    assert isinstance(raised, TemplateError), repr(raised)
    assert raised.message.startswith("rendering took more than 0.3 s") and raised.lineno == 2
    assert "code cell" in raised.hint
    assert elapsed < 0.3 + 2.0


def test_the_output_deadline_names_the_line_being_written(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox, "MAX_STEPS", 10**12)
    monkeypatch.setattr(sandbox, "MAX_RENDER_SECONDS", 0.3)
    body = "FROM busybox\n\n{% for i in range(99999) %}{% for j in range(99999) %}x{% endfor %}{% endfor %}\n"
    with pytest.raises(TemplateError, match=r"more than 0\.3 s \(Dockerfile, line 3\)"):
        render(body, {})


# -- what must keep rendering ----------------------------------------------------------------

PACKAGES = [f"pkg{i}==1.{i}" for i in range(3000)]
NORMAL: list[tuple[str, str, dict[str, Any]]] = [
    ("loop-over-3000", "FROM {{ base }}\n{% for p in packages %}RUN pip install {{ p }} "
     "{{ '%s-%d' % (p, loop.index) }} {{ '{:>8}'.format(loop.index) }}{% if not loop.last %} \\{% endif %}\n"
     "{% endfor %}", {"base": "ubuntu:22.04", "packages": PACKAGES}),
    ("percent", "{{ '%s-%d' % (a, b) }} {{ '%-10s|' % a }} {{ '%05.2f' % 3.14159 }} {{ '%(n)s=%(v)r' % d }} "
     "{{ '100%%' % () }} {{ '%x %o %e %c' % (255, 8, 1.5, 65) }} {{ '%*d|%.*f' % (6, 42, 2, 2.5) }} {{ 7 % 3 }}",
     {"a": "app", "b": 3, "d": {"n": "k", "v": "v"}}),
    ("str-format", "{{ '{:>8}'.format(x) }} {{ '{0}-{1}'.format(a, b) }} {{ '{n}'.format_map(d) }} "
     "{{ '{:,}'.format(1234567) }} {{ '{:.3}'.format('abcdef') }} {{ '{:08.3f}'.format(3.14159) }} "
     "{{ '{0[0]}'.format(l) }} {{ '{:%Y}'.format(day) }}",
     {"x": 42, "a": "a", "b": "b", "d": {"n": "name"}, "l": [1], "day": __import__("datetime").date(2024, 5, 1)}),
    ("str-methods", "{{ 'ab'.ljust(5) }}|{{ 'ab'.rjust(5, '.') }}|{{ 'ab'.center(6, '*') }}|{{ '7'.zfill(3) }}|"
     "{{ 'a\\tb'.expandtabs(4) }}|{{ 'a-b'.replace('-', '--') }}|{{ ', '.join(['x', 'y']) }}|"
     "{{ 'abc'.translate({97: 'AA'}) }}|{{ 'a b'.split() }}|{{ 'abc'.upper() }}", {}),
    ("filters", "{{ 'x'|center(9) }}|{{ 'a\\nb'|indent(4) }}|{{ 'a\\nb'|indent('> ', first=true) }}|"
     "{{ text|wordwrap(20) }}|{{ text|truncate(9) }}|{{ ('x' * 100)|truncate(10**9) }}|"
     "{{ 'a-b'|replace('-', '+') }}|{{ items|join(', ') }}|{{ users|join(',', attribute='n') }}|"
     "{{ '%s=%s'|format('k', 'v') }}|{{ items|upper }}|{{ items|list }}|{{ items|sort|reverse|list }}",
     {"text": "the quick brown fox jumps over the lazy dog " * 3, "items": ["b", "a", "c"],
      "users": [{"n": "u1"}, {"n": "u2"}]}),
    ("json-and-lists", "{{ d|tojson }} {{ d|tojson(2) }} {{ d|pprint }} {{ [[1, 2], [3]]|sum(start=[]) }} "
     "{{ [1, 2, 3]|sum }} {{ range(7)|batch(3, '-')|list }} {{ range(7)|slice(2)|list }} {{ range(10)|list }} "
     "{{ [1] + [2] }} {{ '-' * 40 }} {{ [0] * 3 }} {{ 'a' ~ 1 ~ [1, 2] ~ {'k': 'v'} }} {{ [[1, 2], [3]] }}",
     {"d": {"b": [1, "<x>"], "a": {"c": None}}}),
    ("macros-loops-namespaces", "{% macro pkg(p) %}RUN pip install {{ p }}{% endmacro %}"
     "{% for p in packages[:1000] %}{{ pkg(p) }}\n{% endfor %}"
     "{% set ns = namespace(n=0, s='') %}{% for p in packages[:500] %}{% set ns.n = ns.n + 1 %}"
     "{% set ns.s = ns.s ~ p[:3] %}{% endfor %}{{ ns.n }} {{ ns.s|length }}\n"
     "{% for k, v in env|dictsort %}ENV {{ k }}={{ v }}\n{% endfor %}"
     "{% for node in tree recursive %}{{ node.name }}({{ loop(node.children) }}){% endfor %}",
     {"packages": PACKAGES, "env": {"B": "2", "A": "1"},
      "tree": [{"name": "a", "children": [{"name": "b", "children": []}]}]}),
    ("a-large-notebook-value", "{{ data|indent(2) }}", {"data": "line of text\n" * 80_000}),  # ~1 MiB
    ("tens-of-thousands-of-lines", "{% for i in range(50000) %}{{ i }}\n{% endfor %}", {}),
]


def _reference(body: str, variables: dict[str, Any]) -> str:
    """What Jinja's own immutable sandbox renders (the pip/python helpers are not used here)."""
    env = ImmutableSandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=True)
    return env.from_string(body).render(variables)


@pytest.mark.parametrize(("body", "variables"), [row[1:] for row in NORMAL], ids=[row[0] for row in NORMAL])
def test_normal_templates_render_as_jinja_renders_them(body: str, variables: dict[str, Any]) -> None:
    assert render(body, variables) == _reference(body, variables)


def test_finding_a_templates_names_folds_no_bomb() -> None:
    # `dcs render` looks for the variables a template reads before rendering it (multi-line
    # --var values); Jinja's code generator folds constants while it looks.
    body = "FROM busybox\nRUN echo {{ '%0999999999d' % 1 }} {{ 'x'|center(10**9) }} {{ 'x' * 10**10 }} {{ tag }}\n"
    raised, elapsed, peak_mb = measured(lambda: template_variables(body))
    assert raised is None and template_variables(body) == {"tag"}
    assert elapsed < QUICK_S and peak_mb < 16


def test_lipsum_and_undefined_still_work() -> None:
    assert len(render("{{ lipsum(2, html=false) }}", {}).split("\n\n")) == 2
    with pytest.raises(TemplateError, match="undefined variable 'missing'") as info:
        render("FROM x\nRUN {{ 'a' ~ missing }}\n", {})
    assert info.value.lineno == 2


# -- through the `dcs` command and the magic -----------------------------------------------------


def test_dcs_render_of_a_bomb_exits_1_with_one_paragraph(tmp_path: Path) -> None:
    notebook = tmp_path / "n.ipynb"
    cells = [new_code_cell("%%dockerfile app\nFROM busybox\nRUN echo {{ '%0999999999d' % 1 }}\n")]
    nbformat.write(new_notebook(cells=cells), notebook)
    children_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB, the largest child so far
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "dcs_magic.cli", "render", str(notebook)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120, check=False)
    elapsed = time.monotonic() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    assert peak == children_peak or peak < 400 * 1024, f"dcs render peaked at {peak // 1024} MB"
    assert (done.returncode, done.stdout) == (1, ""), done.stderr
    error = done.stderr.strip()
    assert "Traceback" not in error and "jinja2" not in error and "\n\n" not in error
    assert error.startswith(f"dcs: TemplateError: {notebook}, %%dockerfile cell 1: '%' formatting would make "
                            "1,000,000,011 characters, more than the 67,108,864 (64 Mi) a rendered file may hold "
                            "(app/Dockerfile, line 2)\nHint: compute big values in a code cell"), error
    assert error.count("\n") == 1  # the message and its hint
    assert not (tmp_path / "dcs-build").exists()
    assert elapsed < 60


def test_the_dockerfile_magic_keeps_the_last_good_dockerfile(shell: Any, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    good = "FROM busybox\nRUN echo ok\n"
    shell.run_cell_magic("dockerfile", "app", good)
    dockerfile = tmp_path / "dcs-build" / "app" / "Dockerfile"
    before = (dockerfile.read_bytes(), dockerfile.stat().st_mtime_ns)
    capsys.readouterr()

    result = shell.run_cell("%%dockerfile app\nFROM busybox\nRUN echo {{ 'x'.ljust(10**9) }}\n")

    assert isinstance(result.error_in_exec, TemplateError)
    shown = "".join(capsys.readouterr())
    assert "TemplateError: str.ljust() would make 1,000,000,000 characters" in shown
    assert "(app/Dockerfile, line 2)" in shown and "Traceback" not in shown
    assert (dockerfile.read_bytes(), dockerfile.stat().st_mtime_ns) == before
    assert sorted(p.name for p in dockerfile.parent.iterdir()) == ["Dockerfile"]
