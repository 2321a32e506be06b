"""template.render: sandboxed, strict Jinja2 with the base/pip/python helpers."""

from __future__ import annotations

import os

import pytest

from dcs_magic.errors import TemplateError
from dcs_magic.model.template import render, template_context

PY3_PIP = "/databricks/python3/bin/pip"
PY3_PYTHON = "/databricks/python3/bin/python3"
CONDA_PIP = "/databricks/conda/envs/dcs-minimal/bin/pip"
CONDA_PYTHON = "/databricks/conda/envs/dcs-minimal/bin/python"
DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("base", "pip", "python"),
    [
        ("databricksruntime/standard:13.3-LTS", PY3_PIP, PY3_PYTHON),
        ("databricksruntime/standard:17.3-LTS", PY3_PIP, PY3_PYTHON),
        ("databricksruntime/python:9.x", PY3_PIP, PY3_PYTHON),
        ("databricksruntime/standard:8.x", CONDA_PIP, CONDA_PYTHON),
        ("databricksruntime/standard:7.3-LTS", CONDA_PIP, CONDA_PYTHON),
        ("databricksruntime/standard:latest", PY3_PIP, PY3_PYTHON),
        ("databricksruntime/standard", PY3_PIP, PY3_PYTHON),
        (f"databricksruntime/standard:8.x@{DIGEST}", CONDA_PIP, CONDA_PYTHON),
        (f"databricksruntime/standard:13.3-LTS@{DIGEST}", PY3_PIP, PY3_PYTHON),
        (f"databricksruntime/standard@{DIGEST}", PY3_PIP, PY3_PYTHON),
        ("myregistry.azurecr.io/team/img:2.0", PY3_PIP, PY3_PYTHON),
        ("python:3.11-slim", PY3_PIP, PY3_PYTHON),  # a Python version, not a runtime line
        ("myregistry.azurecr.io/databricksruntime/standard:7.3", CONDA_PIP, CONDA_PYTHON),
        (None, PY3_PIP, PY3_PYTHON),
    ],
)
def test_pip_and_python_follow_the_runtime_line_of_base(base: str | None, pip: str, python: str) -> None:
    assert render("{{ pip }} {{ python }}", {}, base=base) == f"{pip} {python}"


def test_base_helper_is_the_base_option() -> None:
    text = "FROM {{ base }}\nRUN {{ pip }} install numpy\n"
    assert render(text, {}, base="databricksruntime/standard:8.x") == (
        f"FROM databricksruntime/standard:8.x\nRUN {CONDA_PIP} install numpy\n"
    )


def test_base_without_option_asks_for_base() -> None:
    with pytest.raises(TemplateError) as info:
        render("# hello\nFROM {{ base }}\n", {})
    assert info.value.name == "base"
    assert info.value.lineno == 2
    assert "--base" in str(info.value)


def test_notebook_variables_are_visible() -> None:
    text = "FROM {{ image }}:{{ tag }}\n{% for p in packages %}RUN pip install {{ p }}\n{% endfor %}"
    out = render(text, {"image": "ubuntu", "tag": "22.04", "packages": ["a", "b"]})
    assert out == "FROM ubuntu:22.04\nRUN pip install a\nRUN pip install b\n"


def test_user_variables_beat_helpers_and_base_option_beats_user_base() -> None:
    ns = {"python": "3.11", "base": "ubuntu:22.04"}
    assert render("{{ python }} {{ base }}", ns) == "3.11 ubuntu:22.04"
    assert render("{{ base }}", ns, base="databricksruntime/standard:13.3-LTS") == \
        "databricksruntime/standard:13.3-LTS"


def test_notebook_base_string_decides_pip_when_no_option() -> None:
    assert render("{{ pip }}", {"base": "databricksruntime/standard:8.x"}) == CONDA_PIP
    assert render("{{ pip }}", {"base": "databricksruntime/standard:8.x"},
                  base="databricksruntime/standard:13.3-LTS") == PY3_PIP


def test_undefined_variable_names_it_and_its_line() -> None:
    with pytest.raises(TemplateError) as info:
        render("FROM ubuntu:22.04\n\nRUN echo {{ missing_thing }}\n", {}, template_name="x/Dockerfile")
    err = info.value
    assert (err.name, err.lineno, err.template) == ("missing_thing", 3, "x/Dockerfile")
    assert "missing_thing" in str(err) and "line 3" in str(err)


def test_undefined_inside_a_loop_reports_the_inner_line() -> None:
    text = "FROM a\n{% for x in xs %}\nRUN {{ x }}\nRUN {{ y }}\n{% endfor %}\n"
    with pytest.raises(TemplateError) as info:
        render(text, {"xs": [1]})
    assert (info.value.name, info.value.lineno) == ("y", 4)


def test_undefined_attribute_is_an_error() -> None:
    with pytest.raises(TemplateError) as info:
        render("FROM a\nRUN {{ cfg.nope }}\n", {"cfg": {"yes": 1}})
    assert info.value.lineno == 2
    assert info.value.name == "nope"


def test_strict_undefined_also_in_conditions() -> None:
    with pytest.raises(TemplateError) as info:
        render("{% if flag %}x{% endif %}", {})
    assert info.value.name == "flag"
    assert render("{% if flag is defined %}x{% else %}y{% endif %}", {}) == "y"


def test_syntax_error_reports_its_line() -> None:
    with pytest.raises(TemplateError) as info:
        render("FROM a\nRUN echo\nRUN {{ x \n", {"x": 1})
    assert info.value.lineno == 3
    assert "syntax" in str(info.value).lower()


def test_unclosed_block_is_a_syntax_error() -> None:
    with pytest.raises(TemplateError) as info:
        render("FROM a\n{% for p in ps %}\nRUN x\n", {"ps": []})
    assert "endfor" in str(info.value)


@pytest.mark.parametrize(
    ("text", "namespace"),
    [
        ("{{ ''.__class__.__mro__ }}", {}),
        ("{{ os.system('true') }}", {"os": os}),
        ("{{ os.environ }}", {"os": os}),
        ("{{ items.append(1) }}", {"items": []}),
        ("{{ d.update({'a': 1}) }}", {"d": {}}),
    ],
)
def test_sandbox_violations_say_not_allowed(text: str, namespace: dict) -> None:
    with pytest.raises(TemplateError) as info:
        render("FROM a\n" + text, namespace)
    assert "not allowed in the sandbox" in str(info.value)
    assert info.value.lineno == 2


def test_rendering_does_not_change_notebook_objects() -> None:
    items = ["a"]
    with pytest.raises(TemplateError):
        render("{{ items.append('b') }}", {"items": items})
    assert items == ["a"]


@pytest.mark.parametrize("text", ["", "   ", "\n\n  \t\n"])
def test_empty_template_is_an_error(text: str) -> None:
    with pytest.raises(TemplateError) as info:
        render(text, {}, template_name="default/Dockerfile")
    assert "empty" in str(info.value)


def test_include_is_not_available() -> None:
    with pytest.raises(TemplateError) as info:
        render("FROM a\n{% include 'other' %}\n", {})
    assert "include" in str(info.value) and info.value.lineno == 2


def test_runtime_error_in_expression_is_a_template_error_with_line() -> None:
    with pytest.raises(TemplateError) as info:
        render("FROM a\n\n{{ 1 // zero }}\n", {"zero": 0})
    assert "ZeroDivisionError" in str(info.value) and info.value.lineno == 3


def test_no_autoescape_and_trailing_newline_kept() -> None:
    text = 'RUN echo "{{ s }}" > /tmp/x && test 1 -lt 2\n'
    assert render(text, {"s": "<a & 'b'>"}) == 'RUN echo "<a & \'b\'>" > /tmp/x && test 1 -lt 2\n'
    assert render("FROM a", {}) == "FROM a"


def test_rendering_is_deterministic_and_sets_iterate_sorted() -> None:
    names = {f"pkg{i}" for i in range(40)}
    assert list(names) != sorted(names)  # otherwise this test proves nothing
    text = "RUN pip install {{ names|join(' ') }}\n{% for n in names %}{{ n }};{% endfor %}"
    first = render(text, {"names": names})
    assert first == render(text, {"names": set(sorted(names, reverse=True))})  # noqa: C414 - another insertion order
    assert first.splitlines()[0] == "RUN pip install " + " ".join(sorted(names))


def test_template_context_puts_helpers_under_notebook_variables() -> None:
    context = template_context({"pip": "mine", "x": 1}, base="databricksruntime/standard:8.x")
    assert context["pip"] == "mine"
    assert context["python"] == CONDA_PYTHON
    assert context["base"] == "databricksruntime/standard:8.x"
    assert "base" not in template_context({})
