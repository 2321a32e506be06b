"""%%dockerfile and %%dcs_file through a real InteractiveShell (run_cell_magic / run_cell)."""

from __future__ import annotations

import hashlib
import html as html_module
import os
import re
import stat
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError

from dcs_magic.errors import ContextError, TemplateError
from dcs_magic.ops.context import ContextFile, Rendered, dockerfile_sha256

DIGEST = "sha256:" + "0123456789abcdef" * 4
BASE = f"databricksruntime/standard:17.3-LTS@{DIGEST}"

CELL = """\
FROM {{ base }}
RUN {{ pip }} install {{ packages|join(' ') }}
ENV GREETING="{{ greeting }}"
"""


def dockerfile(shell: Any, line: str, cell: str) -> Any:
    return shell.run_cell_magic("dockerfile", line, cell)


def formatted(shell: Any, value: Any) -> dict[str, str]:
    """What the notebook front-end receives for a cell's result."""
    data, _ = shell.display_formatter.format(value)
    return data


# -- %%dockerfile ------------------------------------------------------------------------


def test_renders_notebook_variables_into_the_default_context(shell: Any, dcs_magics: Any,
                                                             tmp_path: Path) -> None:
    shell.run_cell("packages = ['pandas==2.2.2', 'pyarrow']\ngreeting = 'hi'")
    rendered = dockerfile(shell, f"--base {BASE}", CELL)
    expected = (f"FROM {BASE}\nRUN /databricks/python3/bin/pip install pandas==2.2.2 pyarrow\n"
                'ENV GREETING="hi"\n')
    path = tmp_path / "dcs-build" / "default" / "Dockerfile"
    assert path.read_text() == expected
    assert isinstance(rendered, Rendered)
    assert (rendered.name, rendered.text, rendered.path) == ("default", expected, path)
    assert rendered.sha256 == dockerfile_sha256(expected) == dockerfile_sha256(path.read_bytes())
    assert rendered.findings == ()
    assert dcs_magics.contexts["default"] == path.parent


def test_name_and_context_option(shell: Any, dcs_magics: Any, tmp_path: Path) -> None:
    rendered = dockerfile(shell, "trainer --context ctx/train --quiet", "FROM ubuntu:22.04\n")
    assert rendered.path == tmp_path / "ctx" / "train" / "Dockerfile"
    assert dcs_magics.contexts["trainer"] == tmp_path / "ctx" / "train"
    # Later cells for the same NAME reuse its context, even after a change of directory.
    os.chdir(tmp_path / "ctx")
    again = dockerfile(shell, "trainer", "FROM ubuntu:24.04\n")
    assert again.path == tmp_path / "ctx" / "train" / "Dockerfile"


def test_pip_helper_follows_an_old_runtime_line(shell: Any) -> None:
    rendered = dockerfile(shell, "--base databricksruntime/standard:8.x",
                          "FROM {{ base }}\nRUN {{ pip }} install x")
    assert "RUN /databricks/conda/envs/dcs-minimal/bin/pip install x\n" in rendered.text
    # The conda pip is the right one for 8.x (no pip-mismatch); the line itself is long dead.
    assert [f.rule for f in rendered.findings] == ["base-unsupported"]


def test_shows_the_dockerfile_highlighted_with_a_text_fallback(shell: Any) -> None:
    rendered = dockerfile(shell, "", "FROM ubuntu:22.04\nRUN echo hello\n")
    data = formatted(shell, rendered)
    summary = f"default: context {rendered.context_dir}, Dockerfile sha256:{rendered.sha256[:12]}, no warnings"
    assert data["text/plain"] == f"FROM ubuntu:22.04\nRUN echo hello\n{summary}"
    html = data["text/html"]
    assert '<span class="k">FROM</span>' in html and "hello" in html  # pygments' token classes
    assert 'class="dcs-summary"' in html and html_module.escape(summary) in html
    assert "warning" not in html.lower().replace("no warnings", "")


def test_html_output_takes_every_colour_from_the_theme(shell: Any) -> None:
    """No fixed colour in the HTML: each colour is a JupyterLab --jp-* variable (issue 11.4)."""
    rendered = dockerfile(shell, "", 'FROM ubuntu\n# note\nRUN pip install "a==1" && echo $HOME 3\nCMD ["x"]\n')
    page = formatted(shell, rendered)["text/html"]
    assert rendered.findings  # the lint box is part of what is checked
    colours = re.findall(r"(?:color|background|border[a-z-]*)\s*:\s*([^;}\"]+)", page)
    assert len(colours) > 40
    fixed = [c for c in colours if re.search(r"#[0-9a-fA-F]{3,8}\b|rgb|hsl", c)
             or not (c.strip() == "transparent" or "var(--jp-" in c)]
    assert fixed == []
    assert ".dcs-highlight .k{color:var(--jp-mirror-editor-keyword-color)}" in page
    assert ".dcs-highlight .c1{color:var(--jp-content-font-color2);font-style:italic}" in page


def test_lint_findings_are_visible_warnings_not_errors(shell: Any) -> None:
    rendered = dockerfile(shell, "", 'FROM ubuntu\nRUN pip install pandas\nCMD ["python"]\n')
    assert [(f.rule, f.lineno) for f in rendered.findings] == [
        ("mutable-base", 1), ("pip-mismatch", 2), ("cmd-ignored", 3)]
    data = formatted(shell, rendered)
    assert "3 Dockerfile warnings" in data["text/html"]
    assert "[pip-mismatch]" in data["text/html"] and "/databricks/python3/bin/pip" in data["text/html"]
    assert "Warning: line 3: CMD is ignored" in data["text/plain"]


def test_quiet_hides_the_dockerfile_but_not_the_warnings(shell: Any, tmp_path: Path) -> None:
    rendered = dockerfile(shell, "--quiet", "FROM ubuntu\nRUN echo secret-sauce\n")
    assert (tmp_path / "dcs-build/default/Dockerfile").read_text() == rendered.text
    data = formatted(shell, rendered)
    assert "secret-sauce" not in data["text/html"] and "secret-sauce" not in data["text/plain"]
    assert "mutable-base" in data["text/html"] and "mutable-base" in data["text/plain"]
    assert f"Dockerfile sha256:{rendered.sha256[:12]}, 1 warning" in data["text/plain"]


def test_rendering_is_deterministic(shell: Any, tmp_path: Path) -> None:
    shell.run_cell("packages = {f'pkg{i}' for i in range(30)}\ngreeting = 'hi'")
    first = dockerfile(shell, f"--base {BASE} --quiet", CELL)
    first_bytes = first.path.read_bytes()
    shell.run_cell("packages = set(sorted(packages, reverse=True))")
    second = dockerfile(shell, f"--base {BASE} --quiet", CELL)
    assert second.path.read_bytes() == first_bytes
    assert second.sha256 == first.sha256
    assert stat.S_IMODE(second.path.stat().st_mode) == 0o644


def test_trailing_newline_is_added_once(shell: Any) -> None:
    assert dockerfile(shell, "", "FROM ubuntu:22.04").text == "FROM ubuntu:22.04\n"
    assert dockerfile(shell, "", "FROM ubuntu:22.04\n").text == "FROM ubuntu:22.04\n"


def test_private_and_ipython_names_are_not_template_variables(shell: Any) -> None:
    shell.run_cell("_hidden = 'x'")
    with pytest.raises(TemplateError) as info:
        dockerfile(shell, "", "FROM a\nRUN {{ _hidden }}\n")
    assert info.value.name == "_hidden"
    with pytest.raises(TemplateError):
        dockerfile(shell, "", "FROM a\nRUN {{ In }}\n")


# -- errors ------------------------------------------------------------------------------


def test_undefined_variable_names_the_variable_and_line(shell: Any) -> None:
    with pytest.raises(TemplateError) as info:
        dockerfile(shell, "", "FROM ubuntu:22.04\nRUN echo ok\nRUN echo {{ not_defined_yet }}\n")
    assert (info.value.name, info.value.lineno) == ("not_defined_yet", 3)
    assert "not_defined_yet" in str(info.value) and "default/Dockerfile, line 3" in str(info.value)


def test_base_used_without_the_option(shell: Any) -> None:
    with pytest.raises(TemplateError, match="--base"):
        dockerfile(shell, "", "FROM {{ base }}\n")


def test_syntax_error_names_the_line(shell: Any) -> None:
    with pytest.raises(TemplateError) as info:
        dockerfile(shell, "", "FROM a\n{% if x %}\nRUN b\n{% endfr %}\n")
    assert info.value.lineno == 4


def test_sandbox_violation_is_not_allowed(shell: Any) -> None:
    shell.run_cell("import os")
    with pytest.raises(TemplateError, match="not allowed in the sandbox") as info:
        dockerfile(shell, "", "FROM a\nRUN echo {{ os.getcwd() }}\n")
    assert info.value.lineno == 2


def test_empty_cell(shell: Any) -> None:
    with pytest.raises(TemplateError, match="empty"):
        dockerfile(shell, "", "  \n\n")
    with pytest.raises(UsageError, match="empty"):  # IPython's own check, before the magic
        dockerfile(shell, "", "")


def test_unknown_option_is_a_usage_error(shell: Any) -> None:
    with pytest.raises(UsageError):
        dockerfile(shell, "--nope", "FROM a\n")
    with pytest.raises(UsageError):
        dockerfile(shell, "a b", "FROM a\n")


def test_a_trailing_comment_on_a_magic_line_is_left_out(shell: Any, dcs_magics: Any, tmp_path: Path) -> None:
    """As typed in a notebook (IPython's transformers hand the magic the whole rest of the line)."""
    from dcs_magic.jupyter.magics import parse_magic_line

    ran = shell.run_cell("%%dockerfile app --quiet  # the app's image\nFROM a:1\n")
    assert ran.success, ran.error_in_exec
    assert dcs_magics.contexts["app"] == tmp_path / "dcs-build" / "app"
    ran = shell.run_cell("%%dcs_file app 'my #1.txt'  # copied by the Dockerfile\nhello\n")
    assert ran.success and (tmp_path / "dcs-build" / "app" / "my #1.txt").read_text() == "hello\n"
    # a line magic: the comment is no argument ("unrecognized arguments: ..."); the magic runs
    ran = shell.run_cell("build = %dcs_build nope -t dcs-test-x:1     # live progress; BuildResult")
    assert isinstance(ran.error_in_exec, ContextError), ran.error_in_exec
    args = parse_magic_line(dcs_magics.dcs_build, "app -t a:1 --label x=#1 --label 'y=#2'  # two labels")
    assert (args.name, args.tags, args.labels) == ("app", ["a:1"], ["x=#1", "y=#2"])


def test_invalid_name(shell: Any, tmp_path: Path) -> None:
    with pytest.raises(ContextError, match="invalid build context name"):
        dockerfile(shell, "../outside", "FROM a\n")
    assert not (tmp_path.parent / "outside").exists()


def test_failed_render_keeps_the_previous_dockerfile(shell: Any, tmp_path: Path) -> None:
    good = dockerfile(shell, "", "FROM ubuntu:22.04\n")
    before = (good.path.read_bytes(), good.path.stat().st_mtime_ns)
    for bad in ("FROM ubuntu:22.04\nRUN {{ nope }}\n", "FROM {% if %}\n", "   "):
        with pytest.raises(TemplateError):
            dockerfile(shell, "", bad)
    assert (good.path.read_bytes(), good.path.stat().st_mtime_ns) == before
    assert sorted(p.name for p in good.path.parent.iterdir()) == ["Dockerfile"]  # no temp files


def test_context_path_that_is_a_file(shell: Any, tmp_path: Path) -> None:
    # Tests run as root, which ignores permission bits; a path under a regular file is
    # unwritable for everyone.
    (tmp_path / "not-a-dir").write_text("x")
    with pytest.raises(ContextError) as info:
        dockerfile(shell, "--context not-a-dir/ctx", "FROM ubuntu:22.04\n")
    assert str(tmp_path / "not-a-dir") in str(info.value)
    assert "--context" in info.value.hint
    with pytest.raises(ContextError, match="not a directory"):
        dockerfile(shell, "--context not-a-dir", "FROM ubuntu:22.04\n")


def test_context_where_even_root_cannot_create_a_directory(shell: Any) -> None:
    # procfs refuses new directories whoever asks.
    with pytest.raises(ContextError) as info:
        dockerfile(shell, "--context /proc/self/dcs-ctx", "FROM ubuntu:22.04\n")
    assert "/proc/self/dcs-ctx" in str(info.value)


def test_errors_show_short_in_the_notebook(shell: Any, capsys: pytest.CaptureFixture[str]) -> None:
    result = shell.run_cell("%%dockerfile\nFROM ubuntu:22.04\nRUN {{ missing }}\n")
    assert isinstance(result.error_in_exec, TemplateError)
    shown = "".join(capsys.readouterr())
    assert "TemplateError: undefined variable 'missing' (default/Dockerfile, line 2)" in shown
    assert "Traceback" not in shown and "jinja2" not in shown


def test_full_traceback_when_short_errors_is_off(shell: Any, capsys: pytest.CaptureFixture[str]) -> None:
    shell.run_line_magic("config", "DcsMagics.short_errors = False")
    result = shell.run_cell("%%dockerfile\nFROM ubuntu:22.04\nRUN {{ missing }}\n")
    assert isinstance(result.error_in_exec, TemplateError)
    shown = "".join(capsys.readouterr())
    assert "Traceback" in shown and "undefined variable 'missing'" in shown


# -- %%dcs_file ---------------------------------------------------------------------------


def test_dcs_file_writes_into_the_context_of_name(shell: Any, tmp_path: Path) -> None:
    dockerfile(shell, "trainer --context ctx --quiet", "FROM ubuntu:22.04\nCOPY requirements.txt /r\n")
    shell.run_cell("pins = {'pandas': '2.2.2', 'numpy': '1.26.4'}")
    written = shell.run_cell_magic("dcs_file", "trainer requirements.txt",
                                   "{% for k, v in pins|dictsort %}{{ k }}=={{ v }}\n{% endfor %}")
    assert isinstance(written, ContextFile)
    path = written.path
    assert path == tmp_path / "ctx" / "requirements.txt" and os.fspath(written) == str(path)
    assert path.read_text() == "numpy==1.26.4\npandas==2.2.2\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    content = path.read_bytes()
    assert (written.relpath, written.size) == ("requirements.txt", len(content))
    assert written.sha256 == hashlib.sha256(content).hexdigest()
    shown = formatted(shell, written)
    for view in (shown["text/plain"], shown["text/html"]):
        assert f"trainer: wrote requirements.txt ({len(content)} bytes, sha256:{written.sha256[:12]})" in view
        assert str(tmp_path / "ctx") in view
    assert "PosixPath" not in shown["text/plain"]


def test_dcs_file_before_any_dockerfile_uses_build_root(shell: Any, tmp_path: Path) -> None:
    path = shell.run_cell_magic("dcs_file", "default scripts/setup.sh", "#!/bin/sh\necho {{ pip }}").path
    assert path == tmp_path / "dcs-build" / "default" / "scripts" / "setup.sh"
    assert path.read_text() == "#!/bin/sh\necho /databricks/python3/bin/pip\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o755  # a script COPYed into the image runs


@pytest.mark.parametrize("relpath", ["../escape.txt", "a/../../escape.txt", "/tmp/escape.txt", "~/x"])
def test_dcs_file_refuses_paths_outside_the_context(shell: Any, tmp_path: Path, relpath: str) -> None:
    with pytest.raises(ContextError) as info:
        shell.run_cell_magic("dcs_file", f"default {relpath}", "x")
    assert "build context" in str(info.value)
    assert not (tmp_path / "dcs-build" / "escape.txt").exists()


def test_dcs_file_refuses_a_symlink_out_of_the_context(shell: Any, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    context = tmp_path / "dcs-build" / "default"
    context.mkdir(parents=True)
    (context / "link").symlink_to(outside)
    with pytest.raises(ContextError, match="symlink"):
        shell.run_cell_magic("dcs_file", "default link/evil.txt", "x")
    assert list(outside.iterdir()) == []


def test_dcs_file_refuses_the_dockerfile(shell: Any) -> None:
    with pytest.raises(ContextError, match="%%dockerfile"):
        shell.run_cell_magic("dcs_file", "default Dockerfile", "FROM x")


def test_dcs_file_template_errors_and_usage(shell: Any) -> None:
    with pytest.raises(TemplateError) as info:
        shell.run_cell_magic("dcs_file", "default req.txt", "a\n{{ nope }}")
    assert (info.value.lineno, info.value.template) == (2, "default/req.txt")
    with pytest.raises(TemplateError, match="empty"):
        shell.run_cell_magic("dcs_file", "default req.txt", " \n")
    with pytest.raises(UsageError):
        shell.run_cell_magic("dcs_file", "default", "x")
    with pytest.raises(UsageError):
        shell.run_cell_magic("dcs_file", "default a.txt --bogus", "x")



# -- the grammar the `dcs` command reads notebooks with --------------------------------------


@pytest.mark.parametrize("magic", ["dockerfile", "dcs_file", "init_script"])
def test_help_is_formatted_from_the_cells_grammar(shell: Any, magic: str) -> None:
    """`%%magic?` lists every argument of model/cells.py's parser, the one `dcs` reads notebooks with."""
    from dcs_magic.model.cells import cell_parser

    doc = shell.find_cell_magic(magic).__doc__
    assert doc.startswith(f"::\n\n  %{magic} ")
    for action in cell_parser(magic)._actions:
        assert (action.option_strings[-1] if action.option_strings else action.dest) in doc
        if action.help:
            assert action.help.replace("%%", "%").split(";")[0] in " ".join(doc.split())


def test_the_magic_and_the_notebook_reader_read_a_line_alike(shell: Any, tmp_path: Path) -> None:
    from dcs_magic.model.cells import parse_file_line

    line = 'default "my file.txt"'
    written = shell.run_cell_magic("dcs_file", line, "x\n")
    assert Path(written).name == parse_file_line(line).path == "my file.txt"
    with pytest.raises(UsageError, match=r"^cannot split 'default \"a': No closing quotation$"):
        shell.run_cell_magic("dcs_file", 'default "a', "x")

# -- COPY sources and %dcs_build before any widget ------------------------------------------


def test_copy_sources_not_yet_written_are_warnings_in_the_list(shell: Any, tmp_path: Path) -> None:
    cell = "FROM ubuntu:22.04\nCOPY requirements.txt /r/\nCOPY scripts/ /s/\nCOPY --from=x /a /b\n"
    rendered = dockerfile(shell, "app", cell)
    assert rendered.pending == ("requirements.txt", "scripts/")
    missing = [f for f in rendered.findings if f.rule == "copy-missing"]
    assert [(f.lineno, f.message.split("'")[1]) for f in missing] == [(2, "requirements.txt"), (3, "scripts/")]
    assert "%%dcs_file app requirements.txt cell" in missing[0].fix
    shown = formatted(shell, rendered)
    assert "no warnings" not in shown["text/plain"] and "Warning: line 2: COPY/ADD source" in shown["text/plain"]
    assert "copy-missing" in shown["text/html"]
    shell.run_cell_magic("dcs_file", "app requirements.txt", "pandas")
    shell.run_cell_magic("dcs_file", "app scripts/setup.sh", "#!/bin/sh")
    again = dockerfile(shell, "app", cell)
    assert again.pending == () and not [f for f in again.findings if f.rule == "copy-missing"]


def test_build_without_a_dockerfile_is_a_context_error_before_any_widget(
        shell: Any, dcs_magics: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import IPython.display

    from dcs_magic.jupyter.widgets import progress_sink

    shown: list[Any] = []
    monkeypatch.setattr(IPython.display, "display", lambda *a, **k: shown.append(a))
    shell.run_line_magic("config", "DcsMagics.progress = 'widget'")  # a widget would be drawn
    progress_sink("build", "widget").close()
    assert len(shown) == 1  # the probe sees a drawn widget (its record later takes its output's place)
    shown.clear()
    with pytest.raises(ContextError) as info:
        shell.run_line_magic("dcs_build", "nothing-here -t dcs-test/never:1")
    assert "Build context 'nothing-here' has no Dockerfile" in str(info.value)
    assert "Run a %%dockerfile nothing-here cell first" in info.value.hint
    dockerfile(shell, "needs --quiet", "FROM ubuntu:22.04\nCOPY missing.txt /m\n")
    with pytest.raises(ContextError) as info:
        shell.run_line_magic("dcs_build", "needs -t dcs-test/never:1")
    assert "'missing.txt' (line 2)" in str(info.value) and "%%dcs_file needs PATH" in info.value.hint
    assert shown == [] and dcs_magics.jobs == [] and dcs_magics.last_build is None
