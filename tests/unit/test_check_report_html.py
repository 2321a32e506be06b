"""CheckReport's notebook table: theme colours only, the status said in words (issue 11.4)."""

from __future__ import annotations

import re

from dcs_magic import CheckItem, CheckReport


def _report() -> CheckReport:
    return CheckReport("img", [CheckItem("bash", True, "bash 5.1"),
                               CheckItem("java", False, "no java", fix="apt-get install -y openjdk-17-jdk"),
                               CheckItem("size", False, "big", severity="warning")])


def test_every_colour_is_a_theme_variable():
    page = _report()._repr_html_()
    colours = re.findall(r"(?:color|background|border[a-z-]*)\s*:\s*([^;\"]+)", page)
    assert len(colours) >= 3 * 4 + 5
    assert [c for c in colours if "var(--jp-" not in c or re.search(r"#[0-9a-fA-F]{3,8}\b|rgb", c)] == []


def test_status_is_in_words_and_the_text_keeps_the_theme_text_colour():
    page = _report()._repr_html_()
    marks = re.findall(r'<td class="dcs-mark" style="([^"]*)">([^<]*)</td>', page)
    assert [text.split()[-1] for _, text in marks] == ["FAIL", "WARN", "ok"]  # failures first (issue 24.1)
    for style, _ in marks:
        assert "color:var(--jp-content-font-color0)" in style
    assert [re.search(r"border-left:4px solid var\((--jp-[a-z]+-color\d)\)", s)[1] for s, _ in marks] == [
        "--jp-error-color1", "--jp-warn-color0", "--jp-success-color1"]


def test_failures_come_first_and_the_passed_checks_fold_into_one_line():
    checks = [CheckItem(f"ok{i}", True, "fine") for i in range(12)]
    checks.insert(5, CheckItem("java", False, "no java", fix="apt-get install -y openjdk-17-jdk"))
    report = CheckReport("img", checks)
    page = report._repr_html_()
    open_part, folded = page.split('<details class="dcs-check-passed">')
    assert "java" in open_part and "ok0" not in open_part
    assert folded.startswith('<summary style="cursor:pointer">12 checks passed</summary>')
    assert folded.count("dcs-check-ok") == 12
    text = repr(report).splitlines()
    assert text == ["CheckReport(img: FAILED)", "  [FAIL] java: no java", "      fix: apt-get install -y openjdk-17-jdk",
                    "  12 checks passed: " + ", ".join(f"ok{i}" for i in range(12))]
    clean = CheckReport("img", [CheckItem("bash", True, "bash 5")])
    assert "<table>" not in clean._repr_html_().split("<details")[0]  # nothing to look at: one line
    assert repr(clean).splitlines()[1] == "  1 check passed: bash"
