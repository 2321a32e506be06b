"""%dcs_check through a real InteractiveShell and the real engine."""

from __future__ import annotations

from typing import Any

import pytest
from IPython.core.error import UsageError

from dcs_magic import CheckReport, DcsError, EngineError

pytestmark = pytest.mark.docker


def test_check_returns_the_report_and_keeps_it(shell: Any, dcs_magics: Any, busybox_image: str,
                                               docker_client: Any) -> None:
    report = shell.run_line_magic("dcs_check", f"{busybox_image} --runtime 15.4")
    assert isinstance(report, CheckReport) and dcs_magics.last_check is report
    assert report.image == busybox_image
    assert not report.ok and not report["java"].ok  # a failing image is a result, not an error
    data, _ = shell.display_formatter.format(report)
    assert "<table>" in data["text/html"] and "apt-get install -y bash" in data["text/html"]
    assert "[FAIL] java" in data["text/plain"]
    assert docker_client.api.containers(all=True, filters={"label": "dcs_magic.check"}) == []


def test_missing_image_raises_a_short_error(shell: Any, dcs_magics: Any, docker_client: Any) -> None:
    with pytest.raises(EngineError, match="not in the local Docker engine"):
        shell.run_line_magic("dcs_check", "dcs-test/never-built:1")
    assert dcs_magics.last_check is None


def test_bad_arguments(shell: Any) -> None:
    with pytest.raises(UsageError):
        shell.run_line_magic("dcs_check", "")
    with pytest.raises(DcsError, match="not a Databricks Runtime line"):
        shell.run_line_magic("dcs_check", "busybox --runtime newest")


def test_parity_flag_adds_parity_rows(shell: Any, busybox_image: str) -> None:
    plain = shell.run_line_magic("dcs_check", f"{busybox_image} --runtime 15.4")
    assert not [c for c in plain.checks if c.name.startswith("parity")]
    report = shell.run_line_magic("dcs_check", f"{busybox_image} --runtime 15.4 --parity")
    python = report["parity python"]
    assert not python.ok and "does not run, so parity cannot be checked" in python.detail
    assert python.fix.startswith("start FROM databricksruntime/python:15.4-LTS")
