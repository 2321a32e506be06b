"""model/forensics.py: signatures as data, matched on structure, unknowns never invented."""

from __future__ import annotations

import re

import pytest

from dcs_magic.model.forensics import Evidence, Line, diagnose, parse_signatures, relevant_lines, signatures


def test_every_shipped_row_parses_and_names_its_source() -> None:
    rows = signatures()
    assert len(rows) >= 16 and all(row.source and row.fix and row.check for row in rows)
    assert len({row.id for row in rows}) == len(rows)


def test_a_variant_of_a_known_failure_is_recognised() -> None:
    # The public report names 'google'; another module is the same failure.
    evidence = Evidence("CONTAINER_LAUNCH_FAILURE", "", [
        Line("driver/stderr", 41, "Traceback (most recent call last):"),
        Line("driver/stderr", 57, "ModuleNotFoundError: No module named 'azure.storage'")])
    first, *rest = diagnose(evidence)
    assert first.signature == "module-missing" and "azure.storage" in first.cause and "azure.storage" in first.fix
    assert first.evidence == (Line("driver/stderr", 57, "ModuleNotFoundError: No module named 'azure.storage'"),)
    assert [d.signature for d in rest] == ["container-launch"]


def test_codes_and_literal_references_in_fixes() -> None:
    # ACR answers 401 for a tag that does not exist too (Azure/acr#359): the code is likely only.
    (only,) = diagnose(Evidence("IMAGE_PULL_PERMISSION_DENIED", "401 Unauthorized"))
    assert only.confidence == "likely" and "{{secrets/scope/key}}" in only.fix
    assert only.evidence[0].text == "IMAGE_PULL_PERMISSION_DENIED: 401 Unauthorized"
    (arm,) = diagnose(Evidence("DOCKER_INVALID_OS_EXCEPTION", ""))
    assert arm.signature == "wrong-os" and arm.confidence == "certain"


def test_pkg_resources_is_named_before_the_general_missing_module() -> None:
    found = diagnose(Evidence(None, "", [Line("build", 3, "ModuleNotFoundError: No module named 'pkg_resources'")]))
    assert [d.signature for d in found] == ["pkg-resources", "module-missing"]


def test_an_unknown_failure_gets_no_cause_but_its_relevant_lines() -> None:
    lines = [Line("driver/stderr", n, f"starting step {n}") for n in range(1, 40)]
    lines.insert(10, Line("driver/stderr", 99, "java.lang.IllegalStateException: weird thing"))
    assert diagnose(Evidence("UNKNOWN_CODE_XYZ", "", lines)) == []
    shown = relevant_lines(lines, count=5)
    assert shown[0].text.startswith("java.lang.IllegalStateException") and shown[-1].text == "starting step 39"


def test_a_bad_table_row_is_refused_with_its_line() -> None:
    with pytest.raises(ValueError, match="line 2"):
        parse_signatures("id\tkind\n" + "x\tlog\tpattern\n")


def test_every_row_has_a_source_that_is_a_thread_a_document_or_the_facts() -> None:
    for row in signatures():
        for part in row.source.split("; "):
            assert part.startswith(("github.com/", "docs.databricks.com/", "kb.databricks.com/", "dcs-facts.md",
                                    "dcs_magic/preflight/", "databricks/containers ")), (row.id, part)


def test_the_codes_of_image_and_container_failures_all_have_a_row() -> None:
    codes = {row.pattern.pattern.strip("^$").replace("\\", "") for row in signatures() if row.kind == "code"}
    assert {"DOCKER_IMAGE_PULL_FAILURE", "IMAGE_PULL_PERMISSION_DENIED", "DOCKER_INVALID_OS_EXCEPTION",
            "DOCKER_CONTAINER_CREATION_EXCEPTION", "DOCKER_IMAGE_TOO_LARGE_FOR_INSTANCE_EXCEPTION",
            "CONTAINER_LAUNCH_FAILURE", "SLOW_IMAGE_DOWNLOAD", "INIT_SCRIPT_FAILURE", "GLOBAL_INIT_SCRIPT_FAILURE",
            "SPARK_STARTUP_FAILURE", "SPARK_ERROR", "DRIVER_UNREACHABLE", "DRIVER_UNRESPONSIVE",
            "DRIVER_LAUNCH_TIMEOUT", "BOOTSTRAP_TIMEOUT", "SECRET_RESOLUTION_ERROR", "UNEXPECTED_LAUNCH_FAILURE",
            "INSTANCE_UNREACHABLE"} <= codes


@pytest.mark.parametrize("line, signature, words", [
    # Variants of the reported lines: another module, jar, registry, library, package, host.
    ("manifest for ghcr.io/acme/etl:9.9 not found: manifest unknown", "manifest-unknown", "ghcr.io/acme/etl:9.9"),
    ("java.lang.ClassNotFoundException: org.postgresql.Driver", "class-not-found", "org.postgresql.Driver"),
    ("java.lang.NoSuchMethodError: 'scala.collection.Seq org.apache.spark.sql.Dataset.toDF()'", "jar-shadowing",
     "org.apache.spark"),
    ("tool: /lib/x86_64-linux-gnu/libc.so.6: version `GLIBC_2.38' not found (required by /opt/tool)",
     "glibc-version", "GLIBC_2.38"),
    ("ERROR: No matching distribution found for torch==9.0.0", "pip-no-distribution", "torch==9.0.0"),
    ("E: Unable to locate package libgdal-dev", "apt-no-package", "libgdal-dev"),
    ("curl: (6) Could not resolve host: files.pythonhosted.org", "dns-failure", "files.pythonhosted.org"),
    ("Get https://acme.azurecr.io/v2/x/manifests/1: unauthorized: authentication required",
     "registry-unauthorized", "acme.azurecr.io"),
    ("ImportError: cannot import name 'Markup' from 'jinja2'", "import-name", "jinja2"),
    ("ModuleNotFoundError: No module named 'sklearn'", "module-missing", "sklearn"),
])
def test_variants_not_in_the_table_verbatim_are_recognised(line: str, signature: str, words: str) -> None:
    assert all(line not in row.pattern.pattern for row in signatures())  # not in the table verbatim
    first = diagnose(Evidence(None, "", [Line("driver/stderr", 7, line)]))[0]
    assert first.signature == signature and words in first.cause + first.fix
    assert "{" not in first.cause.replace("{{secrets", "")


def test_an_optional_group_that_did_not_match_gives_the_fallback_words() -> None:
    first = diagnose(Evidence(None, "", [Line("init", 1, "curl: Temporary failure in name resolution")]))[0]
    assert first.signature == "dns-failure" and "a host name" in first.cause and "{host" not in first.cause
    (unknown,) = diagnose(Evidence("DOCKER_IMAGE_PULL_FAILURE", "the registry answered: MANIFEST_UNKNOWN"))[:1]
    assert unknown.signature == "manifest-unknown" and "under that name" in unknown.cause


def test_a_certain_line_makes_a_certain_code_likely() -> None:
    # Two different causes are never both certain: the line's is, the code's becomes likely.
    message = ("The registry password {{secrets/s/k}} cannot be resolved: the local preflight workspace reads "
               "secret references from the environment variable DCS_SECRET_S_K, which is not set")
    first, second = diagnose(Evidence("SECRET_RESOLUTION_ERROR", message))
    assert (first.signature, first.confidence) == ("local-secret-env", "certain")
    assert (second.signature, second.confidence) == ("secret-unresolved", "likely")
    assert "DCS_SECRET_S_K" in first.fix and "{{secrets/s/k}}" in first.cause
    (alone,) = diagnose(Evidence("SECRET_RESOLUTION_ERROR", "Failed to fetch secrets referred to in Spark Conf"))
    assert alone.confidence == "certain"


def test_the_local_preflight_messages_are_named_specifically() -> None:
    message = ("The image does not meet the Databricks Container Services requirements (missing or wrong: python): "
               "python: Python 3.11.2, but runtime 17.3 LTS runs Python 3.12 (fits runtime 15.4)")
    first = diagnose(Evidence("CONTAINER_LAUNCH_FAILURE", message))[0]
    assert (first.signature, first.confidence) == ("local-python-mismatch", "certain")
    assert "3.11" in first.cause and "3.12" in first.cause and "--runtime 17.3" in first.check
    message = "(missing or wrong: virtualenv): virtualenv: not importable by /databricks/python3/bin/python3: x"
    assert [d.signature for d in diagnose(Evidence("CONTAINER_LAUNCH_FAILURE", message))] == [
        "virtualenv-missing", "container-launch"]


def test_the_fast_search_answers_as_a_search_of_each_line_alone() -> None:
    from dcs_magic.model.forensics import _needles, _Text

    lines = [Line("a", n, text) for n, text in enumerate([
        "manifest for x/y:1 not found", ": manifest unknown",  # split over two lines: no match
        "ok ModuleNotFoundError: No module named 'a.b' and No module named 'c'",
        "curl: (6) Could not resolve host: example.org", "java: not found", "",
        "python: Python 3.12.1, but runtime 15.4 runs Python 3.11", "bash: bash is not installed; more",
        "multi\nline message with E: Unable to locate package foo\nand more",
    ] * 3, 1)]
    text = _Text(lines)
    for row in signatures():
        if row.kind == "code":
            continue
        alone = [(line, m.group(0)) for line in lines for m in [row.pattern.search(line.text)] if m][:5]
        assert [(line, m.group(0)) for line, m in text.search(row.pattern, 5)] == alone, row.id
        assert _needles(row.pattern) is not None, row.id  # every shipped pattern has a literal to find
    for raw in (r"\w+ing", r"(?i)MANIFEST unknown", r"y[^;]*m", r"\d"):  # no needle: the whole-text search
        pattern = re.compile(raw)
        alone = [(line, m.group(0)) for line in lines for m in [pattern.search(line.text)] if m][:5]
        assert [(line, m.group(0)) for line, m in text.search(pattern, 5)] == alone, raw
