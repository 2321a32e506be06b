"""check(parity=True) on the real engine: two images built FROM the local DCS base (Python 3.11,
the 15.4 line), one matching 15.4's official pins for a handful of packages, one with pandas
and pyarrow a major off; the parity rows rank and fix them. And `dcs check IMG --runtime 18`
judges the Python 3.11 image as not fitting 18 LTS.

PyPI is not reachable from containers: the wheels are `pip download`ed on the host into a
cache directory and installed with `--no-index --no-deps` (as scripts/make-base-image.sh
does for pyarrow).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from support.cleanup import DockerCleanup

from dcs_magic import check
from dcs_magic.cli.commands import main
from dcs_magic.model.parity import ParityItem

pytestmark = [pytest.mark.docker, pytest.mark.slow]

WHEEL_CACHE = Path(tempfile.gettempdir()) / "dcs-magic-test-wheels"
# 15.4 LTS pins (dcs_magic/data/python-pins.tsv); pandas 1.5.3 is already Debian's in the base.
MATCHING = ["pyarrow==14.0.1", "ipykernel==6.25.1", "ipython==8.15.0", "comm==0.1.2"]
# pandas 2 against 15.4's 1.5.3; the base's pyarrow 17.0.0 stays, against 15.4's 14.0.1.
OFF = ["pandas==2.2.3"]


def wheels(specs: list[str]) -> list[Path]:
    """The wheels for `specs` (cp311 manylinux or pure), downloaded once into WHEEL_CACHE."""
    WHEEL_CACHE.mkdir(exist_ok=True)
    found = []
    for spec in specs:
        name, version = spec.split("==")
        pattern = f"{name.replace('-', '_')}-{version}-*.whl"
        if not list(WHEEL_CACHE.glob(pattern)):
            proc = subprocess.run(
                [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                 "--implementation", "cp", "--python-version", "3.11", "--abi", "cp311", "--abi", "none",
                 "--platform", "manylinux_2_17_x86_64", "--platform", "manylinux2014_x86_64",
                 "--platform", "any", "--dest", str(WHEEL_CACHE), spec],
                check=False, capture_output=True, text=True, timeout=600)
            if proc.returncode != 0:
                pytest.fail(f"pip download {spec} failed on the host: {proc.stderr[-800:]}", pytrace=False)
        found += sorted(WHEEL_CACHE.glob(pattern))[:1]
    return found


def build_from_base(client: Any, base: str, tag: str, specs: list[str], context: Path) -> str:
    context.mkdir(parents=True)
    names = []
    for wheel in wheels(specs):
        shutil.copy(wheel, context / wheel.name)
        names.append(wheel.name)
    (context / "Dockerfile").write_text(
        f"FROM {base}\n"
        f"COPY {' '.join(names)} /tmp/wheels/\n"
        "RUN /databricks/python3/bin/pip install --no-index --no-deps --no-cache-dir /tmp/wheels/*.whl "
        "&& rm -rf /tmp/wheels\n")
    events = list(client.api.build(path=str(context), tag=tag, decode=True, rm=True, forcerm=True))
    errors = [e for e in events if "error" in e]
    assert not errors, errors
    return tag


def parity_rows(report: Any) -> list[ParityItem]:
    return [item for item in report.checks if isinstance(item, ParityItem)]


def test_parity_ranks_and_fixes_pandas_and_pyarrow_majors(dcs_base_image: str, docker_client: Any,
                                                           docker_cleanup: DockerCleanup,
                                                           tmp_path: Path) -> None:
    matching = build_from_base(docker_client, dcs_base_image,
                               docker_cleanup.add(f"{docker_cleanup.unique('parity-match')}:1"),
                               MATCHING, tmp_path / "match")
    off = build_from_base(docker_client, dcs_base_image,
                          docker_cleanup.add(f"{docker_cleanup.unique('parity-off')}:1"),
                          OFF, tmp_path / "off")

    good = check(matching, runtime="15.4", parity=True)
    rows = parity_rows(good)
    assert rows and {row.runtime for row in rows} == {"15.4"}
    same = next(row for row in rows if row.name == "parity same").detail
    for pin in ("pyarrow 14.0.1", "ipykernel 6.25.1", "ipython 8.15.0", "pandas 1.5.3"):
        assert pin in same
    assert [row for row in rows if row.severity == "error" and not row.ok] == []
    assert good.ok, good  # what differs only changes behaviour: warnings

    bad = check(off, runtime="15.4.x-scala2.12", parity=True)
    rows = parity_rows(bad)
    breaking = [row for row in rows if not row.ok and row.severity == "error"]
    assert [(r.package, r.image_version, r.runtime_version, r.status) for r in breaking] == [
        ("pandas", "2.2.3", "1.5.3", "newer-major"),
        ("pyarrow", "17.0.0", "14.0.1", "newer-major"),
    ]
    assert rows[:2] == breaking  # ranked first
    assert [r.fix for r in breaking] == [
        "RUN /databricks/python3/bin/pip install --no-deps pandas==1.5.3",
        "RUN /databricks/python3/bin/pip install --no-deps pyarrow==14.0.1",
    ]
    assert not bad.ok
    # The rest (numpy 1.24.2 against 1.23.5, ...) is a warning that only changes behaviour.
    numpy = next(row for row in rows if row.package == "numpy")
    assert (numpy.severity, numpy.status) == ("warning", "newer-minor") and "behaviour" in numpy.detail

    # Without --parity none of this runs (the plain check stays as it was).
    assert parity_rows(check(off, runtime="15.4")) == []


def test_dcs_check_runtime_18_rejects_a_python_311_image(dcs_base_image: str,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", dcs_base_image, "--runtime", "18"]) == 1
    out = capsys.readouterr().out
    assert "[FAIL] python: Python 3.11.2, but runtime 18 LTS runs Python 3.12 (fits runtime 15.4)" in out
    assert "18 LTS" in out and "not in the known table" not in out


def test_image_without_pip_fails_parity_with_the_reason(dcs_base_image: str, docker_client: Any,
                                                        docker_cleanup: DockerCleanup, tmp_path: Path) -> None:
    tag = docker_cleanup.add(f"{docker_cleanup.unique('parity-nopip')}:1")
    (tmp_path / "Dockerfile").write_text(
        f"FROM {dcs_base_image}\n"
        "RUN rm -rf /databricks/python3/lib/python3.11/site-packages/pip* /databricks/python3/bin/pip*\n")
    events = list(docker_client.api.build(path=str(tmp_path), tag=tag, decode=True, rm=True, forcerm=True))
    assert not [e for e in events if "error" in e], events
    report = check(tag, runtime="15.4", parity=True)
    pip = report["parity pip"]
    assert (pip.ok, pip.severity) == (False, "error")
    assert "no pip in /databricks/python3" in pip.detail and "No module named pip" in pip.detail
    assert "ensurepip" in pip.fix
    assert report["python"].ok  # the interpreter itself still runs
