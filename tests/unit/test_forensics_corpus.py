"""The forensics corpus (benchmarks/forensics/cases) as a regression test of the signatures table:
every case is diagnosed as its expected.json says, and no wrong cause is ever stated as certain."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from dcs_magic.ops.why import why_from

CASES = Path(__file__).resolve().parents[2] / "benchmarks" / "forensics" / "cases"
CASE_DIRS = sorted(p for p in CASES.iterdir() if (p / "expected.json").is_file()) if CASES.is_dir() else []


def test_the_corpus_is_large_enough_and_has_unknown_and_running_cases() -> None:
    expected = [json.loads((case / "expected.json").read_text()) for case in CASE_DIRS]
    assert len(CASE_DIRS) >= 30
    assert sum(e["signature"] is None for e in expected) >= 3  # two unknown failures, one running cluster
    assert all(e.get("source") and e.get("note") for e in expected)


@pytest.mark.parametrize("case", CASE_DIRS, ids=lambda p: p.name)
def test_case_is_diagnosed_as_expected(case: Path, tmp_path: Path) -> None:
    expected = json.loads((case / "expected.json").read_text())["signature"]
    copy = tmp_path / case.name  # without expected.json, which why_from would read as a log
    shutil.copytree(case, copy, ignore=lambda _dir, names: [n for n in names if n == "expected.json"])
    why = why_from(copy)
    first = why.causes[0].signature if why.causes else None
    assert first == expected, [(d.signature, d.confidence) for d in why.causes]
    assert not [d.signature for d in why.causes if d.confidence == "certain" and d.signature != expected]
    if expected is None:
        assert why.confidence == "unknown"
        assert why.lines()[0].startswith("Cause: unknown" if why.failed else "Nothing failed")
    else:
        for diagnosis in why.causes:  # every placeholder filled, {{secrets/...}} stays literal
            text = diagnosis.cause + diagnosis.fix + diagnosis.check
            assert "{" not in text.replace("{{secrets", ""), diagnosis
