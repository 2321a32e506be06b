"""model/forensics.py: signatures as data, matched on structure, unknowns never invented."""

from __future__ import annotations

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


def test_certain_codes_and_literal_references_in_fixes() -> None:
    (only,) = diagnose(Evidence("IMAGE_PULL_PERMISSION_DENIED", "401 Unauthorized"))
    assert only.confidence == "certain" and "{{secrets/scope/key}}" in only.fix
    assert only.evidence[0].text == "IMAGE_PULL_PERMISSION_DENIED: 401 Unauthorized"


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
