"""The copy-missing lint rule: COPY/ADD sources checked against the build context's files."""

from __future__ import annotations

from dcs_magic.model.dockerfile import copy_sources
from dcs_magic.model.lint import lint, missing_copy_sources

DOCKERFILE = """\
FROM ubuntu:22.04@sha256:""" + "a" * 64 + """
COPY requirements.txt /r/
COPY ./scripts/ /s/
COPY ["conf/a.ini", "conf/b.ini", "/etc/app/"]
COPY req*.lock /l/
COPY --from=builder /out /out
ADD https://example.com/x.tar.gz /x/
COPY $SRC /v/
COPY . /app/
COPY <<EOF /inline.txt
hello
EOF
"""


def test_copy_sources_leave_out_what_the_context_does_not_decide():
    assert copy_sources(DOCKERFILE) == [
        (2, "requirements.txt"), (3, "./scripts/"), (4, "conf/a.ini"), (4, "conf/b.ini"), (5, "req*.lock"),
        (9, ".")]


def test_missing_sources_against_the_file_list():
    files = ["requirements.txt", "scripts/setup.sh", "conf/a.ini", "Dockerfile"]
    assert missing_copy_sources(DOCKERFILE, files) == [(4, "conf/b.ini"), (5, "req*.lock")]
    assert missing_copy_sources(DOCKERFILE, files + ["conf/b.ini", "req-dev.lock"]) == []


def test_lint_reports_copy_missing_only_with_a_file_list():
    assert "copy-missing" not in {f.rule for f in lint(DOCKERFILE)}
    found = [f for f in lint(DOCKERFILE, context_files=["requirements.txt"]) if f.rule == "copy-missing"]
    assert [(f.lineno, f.message.split("'")[1]) for f in found] == [
        (3, "./scripts/"), (4, "conf/a.ini"), (4, "conf/b.ini"), (5, "req*.lock")]
    assert "%%dcs_file NAME conf/a.ini cell" in found[1].fix
