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
    assert [text.split()[-1] for _, text in marks] == ["ok", "FAIL", "WARN"]
    for style, _ in marks:
        assert "color:var(--jp-content-font-color0)" in style
    assert [re.search(r"border-left:4px solid var\((--jp-[a-z]+-color\d)\)", s)[1] for s, _ in marks] == [
        "--jp-success-color1", "--jp-error-color1", "--jp-warn-color0"]
