"""The check's pure core (model/probe.py, model/requirements.py): the probe script, its parser
and the evaluation, without Docker.

The fixtures probe_*.txt / probe_*.inspect.json are what `run_probe` printed and what
`docker image inspect` said for the from-scratch DCS base and for busybox on the real engine.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from dcs_magic import CheckReport
from dcs_magic.errors import UsageError
from dcs_magic.model.probe import ProbeRun, facts_from_run, java_version, parse_probe, probe_script, python_version
from dcs_magic.model.requirements import IMAGE_SIZE_WARN_BYTES, evaluate, fitting_runtimes, parse_runtime
from dcs_magic.ops.check import check

FIXTURES = Path(__file__).parent / "fixtures"
REQUIRED = ["os", "architecture", "java", "bash", "iproute2", "coreutils", "procps", "sudo", "python",
            "ipython", "ipykernel", "numpy", "pandas", "pyarrow", "six", "virtualenv"]


def recorded(name: str) -> tuple[dict[str, str], dict]:
    facts = parse_probe((FIXTURES / f"probe_{name}.txt").read_text())
    attrs = json.loads((FIXTURES / f"probe_{name}.inspect.json").read_text())
    return facts, attrs


def items(facts: dict[str, str], attrs: dict, runtime: str | None = None) -> dict:
    return {item.name: item for item in evaluate(facts, attrs, runtime)}


@pytest.fixture
def base() -> tuple[dict[str, str], dict]:
    return recorded("dcs_base")


# -- the probe script --------------------------------------------------------------------


@pytest.mark.parametrize("shell", ["dash", "busybox"])
def test_probe_script_is_posix_sh(shell: str) -> None:
    """The script parses under dash and busybox ash (`sh -n`), not only bash."""
    binary = shutil.which(shell)
    if binary is None:
        pytest.fail(f"{shell} is not installed (bash scripts/dev-env.sh deps installs it)")
    argv = [binary, "sh", "-n"] if shell == "busybox" else [binary, "-n"]
    proc = subprocess.run(argv, input=probe_script(), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_probe_script_runs_with_nothing_but_a_shell(tmp_path: Path) -> None:
    """With an empty PATH every tool is missing: the probe still finishes and says so."""
    proc = subprocess.run([shutil.which("dash") or "/bin/sh", "-c", probe_script()], capture_output=True,
                          text=True, env={"PATH": str(tmp_path)})
    facts = parse_probe(proc.stdout)
    assert facts["probe.end"] == "1"
    assert not any(key.startswith("which.") for key in facts)


# -- parsing -----------------------------------------------------------------------------


def test_parse_probe_joins_repeated_keys_and_ignores_noise() -> None:
    facts = parse_probe("a=1\nnoise without equals\nversion.java=line 1\nversion.java=line 2\n"
                        "bad key=x\n=empty\nv=with=equals\r\n")
    assert facts == {"a": "1", "version.java": "line 1\nline 2", "v": "with=equals"}


def test_facts_from_run_says_why_the_probe_did_not_finish() -> None:
    assert facts_from_run(ProbeRun("", "", None, error="exec format error"))["probe.error"] == \
        "exec format error"
    assert facts_from_run(ProbeRun("probe.start=1\n", "", 2))["probe.error"] == "exit code 2"
    assert "probe.error" not in facts_from_run(ProbeRun("probe.end=1\n", "", 0))


@pytest.mark.parametrize("text, expected", [
    ('openjdk version "17.0.19" 2026-04-21', (17, 19)),
    ('java version "1.8.0_191"', (8, 191)),
    ('openjdk version "1.8.0_181"\nOpenJDK Runtime', (8, 181)),
    ('openjdk version "11.0.2" 2019-01-15', (11, 2)),
    ('openjdk version "21" 2023-09-19', (21, 0)),
    ("Error: could not find libjava.so", None),
])
def test_java_version(text: str, expected: tuple[int, int] | None) -> None:
    assert java_version(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("Python 3.11.2\n", "3.11.2"),
    ("\nPython 3.12.0rc1", "3.12.0rc1"),  # stdout + stderr joined: Python 2 says it on stderr
    ("Python 2.7.18", "2.7.18"),
    ("exec /databricks/python3/bin/python3: no such file or directory", None),
    ("", None),
])
def test_python_version(text: str, expected: str | None) -> None:
    assert python_version(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("15.4", "15.4"), ("15.4 LTS", "15.4"), ("15.4.x-scala2.12", "15.4"), ("16.4-LTS", "16.4"),
    ("9.x", "9.1"), ("18", "18"), ("18.0", "18"), ("18.x-scala2.13", "18"), (None, None), ("", None),
])
def test_parse_runtime(text: str | None, expected: str | None) -> None:
    line = parse_runtime(text)
    assert (str(line) if line else None) == expected


def test_parse_runtime_rejects_what_is_no_runtime() -> None:
    with pytest.raises(ValueError, match="not a Databricks Runtime line"):
        parse_runtime("latest")


def test_fitting_runtimes_follows_the_table() -> None:
    assert fitting_runtimes("3.11") == ["15.4"]
    assert fitting_runtimes("3.12") == ["16.4", "17.3", "18"]
    assert fitting_runtimes("3.10") == ["13.3", "14.3"]
    assert fitting_runtimes("3.7") == []


# -- evaluation --------------------------------------------------------------------------


def test_recorded_dcs_base_meets_every_requirement(base: tuple[dict, dict]) -> None:
    result = items(*base)
    assert [name for name in REQUIRED if not result[name].ok] == []
    assert "Java 17" in result["java"].detail
    assert result["python"].detail == "Python 3.11.2 (fits runtime 15.4)"
    assert result["sudo"].detail == "Sudo version 1.9.13p3"  # not the hostname warning before it
    assert result["entrypoint"].ok and result["size"].ok


def test_recorded_busybox_fails_with_a_fix_for_each(base: tuple[dict, dict]) -> None:
    result = items(*recorded("busybox"))
    for name in ("java", "bash", "iproute2", "coreutils", "procps", "sudo", "python", "python packages"):
        assert not result[name].ok and result[name].severity == "error", name
        assert result[name].fix, name
    assert "java is not on the PATH" in result["java"].detail
    assert "apt-get install -y openjdk-8" in result["java"].fix
    assert "busybox" in result["iproute2"].detail
    assert "python3 -m venv" in result["python"].fix
    assert result["os"].severity == "warning" and not result["os"].ok  # no /etc/os-release
    assert result["entrypoint"].severity == "warning"  # busybox is imported with CMD ["sh"]
    assert not CheckReport("busybox", list(result.values())).ok


@pytest.mark.parametrize("runtime, python_ok", [
    ("15.4.x-scala2.12", True), ("15.4", True), ("16.4", False), ("13.3", False), (None, True),
])
def test_python_against_the_runtime_line(base: tuple[dict, dict], runtime: str | None,
                                         python_ok: bool) -> None:
    item = items(*base, runtime)["python"]
    assert item.ok is python_ok
    if not python_ok:
        assert "runtime" in item.detail and "3.11.2" in item.detail and item.fix


def test_runtime_16_needs_jdk_17(base: tuple[dict, dict]) -> None:
    facts, attrs = base
    facts = {**facts, "version.java": 'openjdk version "1.8.0_392"'}
    assert items(facts, attrs, "15.4")["java"].ok
    java = items(facts, attrs, "16.4")["java"]
    assert not java.ok and "JDK 17" in java.detail and "openjdk-17" in java.fix


def test_old_jdk8_fails(base: tuple[dict, dict]) -> None:
    facts, attrs = base
    java = items({**facts, "version.java": 'java version "1.8.0_181"'}, attrs)["java"]
    assert not java.ok and "8u191" in java.detail


def test_missing_package_and_virtualenv(base: tuple[dict, dict]) -> None:
    facts, attrs = base
    facts = {**facts, "pkg.pyarrow": "!ModuleNotFoundError: No module named 'pyarrow'",
             "pkg.virtualenv": "!ModuleNotFoundError: No module named 'virtualenv'"}
    result = items(facts, attrs, "15.4")
    assert not result["pyarrow"].ok and "No module named 'pyarrow'" in result["pyarrow"].detail
    assert result["pyarrow"].fix == "RUN /databricks/python3/bin/pip install pyarrow"
    assert result["virtualenv"].severity == "error"
    assert "spark.databricks.driverNfs.enabled false" in result["virtualenv"].fix
    # Before DBR 11 a missing virtualenv only warns.
    assert items(facts, attrs, "10.4")["virtualenv"].severity == "warning"


def test_bash_must_be_at_bin_bash(base: tuple[dict, dict]) -> None:
    facts, attrs = base
    facts = {k: v for k, v in facts.items() if k != "file./bin/bash"}
    facts["which.bash"] = "/usr/local/bin/bash"
    bash = items(facts, attrs)["bash"]
    assert not bash.ok and bash.fix == "RUN ln -s /usr/local/bin/bash /bin/bash"


def test_python_broken_symlink(base: tuple[dict, dict]) -> None:
    facts, attrs = base
    facts = {k: v for k, v in facts.items() if not k.startswith(("python.", "pkg."))}
    facts["python.exists"] = "dangling"
    result = items(facts, attrs)
    assert "broken symlink" in result["python"].detail
    assert result["python packages"].detail.startswith("not checked")


@pytest.mark.parametrize("os_id, like, ok, severity", [
    ("ubuntu", "debian", True, "error"), ("alpine", "", True, "error"),
    ("linuxmint", "ubuntu debian", True, "error"), ("rhel", "fedora", False, "warning"),
])
def test_os_family(base: tuple[dict, dict], os_id: str, like: str, ok: bool, severity: str) -> None:
    facts, attrs = base
    facts = {**facts, "os.ID": os_id, "os.ID_LIKE": f'"{like}"', "os.PRETTY_NAME": f'"{os_id} x"'}
    item = items(facts, attrs)["os"]
    assert (item.ok, item.severity) == (ok, severity)


def test_windows_image_is_an_os_error(base: tuple[dict, dict]) -> None:
    facts, attrs = base
    item = items(facts, {**attrs, "Os": "windows"})["os"]
    assert not item.ok and item.severity == "error"


def test_arm64_image_whose_probe_cannot_run(base: tuple[dict, dict]) -> None:
    facts = {"probe.error": "exec /bin/sh: exec format error"}
    result = items(facts, {"Architecture": "arm64", "Variant": "v8", "Os": "linux", "Size": 10**8})
    assert not result["architecture"].ok and "arm64/v8" in result["architecture"].detail
    assert "--platform linux/amd64" in result["architecture"].fix
    assert "exec format error" in result["probe"].detail
    assert "java" not in result  # not checked: one row says so instead of ten


def test_image_without_a_shell() -> None:
    facts = {"probe.error": 'exec: "/bin/sh": stat /bin/sh: no such file or directory'}
    result = items(facts, {"Architecture": "amd64", "Os": "linux", "Size": 1000})
    assert not result["probe"].ok and "/bin/sh" in result["probe"].detail
    assert "not checked" in result["os"].detail


def test_size_and_entrypoint_warnings(base: tuple[dict, dict]) -> None:
    facts, attrs = base
    big = {**attrs, "Size": IMAGE_SIZE_WARN_BYTES + 1,
           "Config": {"Entrypoint": ["/entry.sh"], "Cmd": ["serve"]}}
    result = items(facts, big)
    assert (result["size"].ok, result["size"].severity) == (False, "warning")
    assert "timing out" in result["size"].detail
    assert (result["entrypoint"].ok, result["entrypoint"].severity) == (False, "warning")
    assert "init script" in result["entrypoint"].fix
    report = CheckReport("big", list(result.values()))
    assert report.ok  # warnings inform, they do not fail the report


def test_report_html_has_a_fix_column() -> None:
    report = CheckReport("<b>busybox</b>", evaluate(*recorded("busybox")))
    html = report._repr_html_()
    assert "<table>" in html and ">fix</th>" in html
    assert "does NOT meet" in html and "apt-get install -y bash" in html
    assert "&lt;b&gt;busybox&lt;/b&gt;" in html  # everything from the image is escaped
    assert html.count('<tr class="dcs-check-') == len(report.checks)  # every item, the passed ones folded


def test_check_rejects_bad_input_before_docker(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # No engine answers here: reaching it would be an EngineError, not the UsageError.
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    with pytest.raises(UsageError, match="No image given"):
        check("")
    with pytest.raises(UsageError, match="not a Databricks Runtime line") as info:
        check("busybox", runtime="newest")
    assert "15.4" in info.value.hint


# -- parity (recorded: probe_dcs_base_parity.txt is probe_script(parity=True) on the DCS base) --


@pytest.fixture
def parity_facts() -> dict[str, str]:
    return parse_probe((FIXTURES / "probe_dcs_base_parity.txt").read_text())


def parity_rows(facts: dict[str, str], runtime: str | None = "15.4") -> list:
    attrs = json.loads((FIXTURES / "probe_dcs_base.inspect.json").read_text())
    return [item for item in evaluate(facts, attrs, runtime, parity=True) if item.name.startswith("parity")]


def with_packages(facts: dict[str, str], **versions: str | None) -> dict[str, str]:
    """The recorded facts with some pip list versions changed (None removes the package)."""
    listed = {p["name"]: p["version"] for p in json.loads(facts["pip.list"])}
    for name, version in versions.items():
        if version is None:
            listed.pop(name, None)
        else:
            listed[name] = version
    return {**facts, "pip.list": json.dumps([{"name": n, "version": v} for n, v in listed.items()])}


def test_probe_gathers_parity_facts_only_when_asked() -> None:
    assert "pip list --format=json" in probe_script(parity=True)
    assert "pip list" not in probe_script() and "PYSPARK_PYTHON" not in probe_script()


@pytest.mark.parametrize("shell", ["dash", "busybox"])
def test_parity_probe_is_posix_sh(shell: str) -> None:
    binary = shutil.which(shell)
    assert binary is not None, f"{shell} is not installed"
    argv = [binary, "sh", "-n"] if shell == "busybox" else [binary, "-n"]
    proc = subprocess.run(argv, input=probe_script(parity=True), check=False, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_parity_is_not_evaluated_without_the_flag(parity_facts: dict[str, str]) -> None:
    attrs = json.loads((FIXTURES / "probe_dcs_base.inspect.json").read_text())
    assert not [i for i in evaluate(parity_facts, attrs, "15.4") if i.name.startswith("parity")]


def test_recorded_base_parity_ranks_pyarrow_major_first(parity_facts: dict[str, str]) -> None:
    from dcs_magic.model.parity import ParityItem

    rows = parity_rows(parity_facts)
    assert all(isinstance(row, ParityItem) for row in rows)
    first = rows[0]
    assert (first.package, first.image_version, first.runtime_version, first.status) == (
        "pyarrow", "17.0.0", "14.0.1", "newer-major")
    assert first.severity == "error" and not first.ok
    assert first.fix == "RUN /databricks/python3/bin/pip install --no-deps pyarrow==14.0.1"
    assert "breaks" in first.detail
    by_package = {row.package: row for row in rows}
    # Same major, other minor: behaviour only, a warning with the pin as fix.
    numpy = by_package["numpy"]
    assert (numpy.status, numpy.severity, numpy.image_version, numpy.runtime_version) == (
        "newer-minor", "warning", "1.24.2", "1.23.5")
    assert "may change behaviour" in numpy.detail and numpy.fix.endswith("numpy==1.23.5")
    assert "pandas" not in by_package  # same version: only in the "parity same" row
    assert "pandas 1.5.3" in next(r for r in rows if r.name == "parity same").detail
    assert by_package["python"].status == "older-patch"   # 3.11.2 against the official 3.11.11
    assert by_package["python"].severity == "warning"
    assert by_package["LC_ALL"].fix == "ENV LC_ALL=C.UTF-8" and "LANG" not in by_package
    assert by_package["java"].runtime_version == "8"      # 15.4's default JDK; the base runs 17
    missing = next(r for r in rows if r.name == "parity missing")
    assert missing.severity == "warning" and "scipy 1.11.1" in missing.detail
    # Ninety packages are one constraints file, not a ninety-package pip line.
    assert missing.fix.startswith("dcs runtimes --constraints 15.4.x-scala2.12 > constraints.txt")
    assert "pip install -c constraints.txt" in missing.fix
    extra = next(r for r in rows if r.name == "parity extra")
    assert extra.ok and "pydevd 2.9.5" in extra.detail
    ranks = [row.rank for row in rows]
    assert ranks == sorted(ranks)


def test_breaking_differences_come_first_with_their_fix(parity_facts: dict[str, str]) -> None:
    facts = with_packages(parity_facts, pandas="2.2.3", ipykernel="5.5.6", virtualenv=None, pyarrow="14.0.1")
    rows = parity_rows(facts)
    breaking = [(r.package, r.status) for r in rows if r.severity == "error" and not r.ok]
    assert breaking == [("ipykernel", "older-major"), ("pandas", "newer-major"), ("virtualenv", "missing")]
    assert [r.package for r in rows[:3]] == ["ipykernel", "pandas", "virtualenv"]
    pandas = next(r for r in rows if r.package == "pandas")
    assert pandas.fix == "RUN /databricks/python3/bin/pip install --no-deps pandas==1.5.3"
    assert not [r for r in rows if r.package == "pyarrow"]  # back at 14.0.1: counted with the same ones
    assert "pyarrow 14.0.1" in next(r for r in rows if r.name == "parity same").detail


def test_python_minor_mismatch_breaks_and_names_the_base(parity_facts: dict[str, str]) -> None:
    rows = parity_rows(parity_facts, "17.3")
    python = rows[0]
    assert (python.package, python.status, python.severity) == ("python", "older-minor", "error")
    assert "does not fit 17.3 LTS" in python.detail and "fits 15.4 LTS" in python.detail
    assert python.fix.startswith("start FROM databricksruntime/python:17.3-LTS")


def test_parity_without_runtime_picks_the_line_of_the_image_python(parity_facts: dict[str, str]) -> None:
    rows = parity_rows(parity_facts, None)
    assert {row.runtime for row in rows} == {"15.4"}


def test_parity_for_18_uses_the_pins_databricks_publishes(parity_facts: dict[str, str]) -> None:
    rows = {row.name: row for row in parity_rows({**parity_facts, "python.version": "3.12.3"}, "18")}
    data = rows["parity data"]
    assert data.ok and data.detail.startswith("pins of 18.x-scala2.13 from databricks/environments")
    assert "parity packages" not in rows  # no "no package data" row: 18 has pins now
    assert rows["parity pyarrow"].runtime_version == "21.0.0"


def test_image_without_pip_fails_parity_with_the_reason(parity_facts: dict[str, str]) -> None:
    facts = {k: v for k, v in parity_facts.items() if k != "pip.list"}
    facts["pip.error"] = "/databricks/python3/bin/python: No module named pip"
    rows = parity_rows(facts)
    pip = rows[0]
    assert (pip.package, pip.status, pip.severity, pip.ok) == ("pip", "missing", "error", False)
    assert "no pip in /databricks/python3" in pip.detail and "No module named pip" in pip.detail
    assert "ensurepip" in pip.fix


@pytest.mark.parametrize("image, official, status", [
    ("1.5.3", "1.5.3", "same"), ("2.2.3", "1.5.3", "newer-major"), ("1.4.0", "1.5.3", "older-minor"),
    ("1.5.4", "1.5.3", "newer-patch"), ("6.2", "6.3.2", "older-minor"), ("20.17.1+ds", "20.24.2", "older-minor"),
    ("1.5.3.post1", "1.5.3", "newer-patch"), ("git", "1.0", "different"),
])
def test_compare_versions(image: str, official: str, status: str) -> None:
    from dcs_magic.model.parity import compare_versions

    assert compare_versions(image, official) == status


def test_runtime_18_judges_python_311_and_jdk(base: tuple[dict, dict]) -> None:
    result = items(*base, "18")
    assert not result["python"].ok and "runtime 18 LTS runs Python 3.12" in result["python"].detail
    facts, attrs = base
    java = items({**facts, "version.java": 'openjdk version "1.8.0_392"'}, attrs, "18")["java"]
    assert not java.ok and "JDK 17/21 (JDK 8 is removed)" in java.detail
    assert "openjdk-21-jdk-headless" in java.fix  # 18's default JDK is 21 (DBR 18.0 release notes)
    assert result["java"].ok and "Java 17" in result["java"].detail  # JDK 17 is still installed on 18


def test_parity_on_18_names_jdk_21_as_the_default(parity_facts: dict[str, str]) -> None:
    rows = {row.name: row for row in parity_rows({**parity_facts, "python.version": "3.12.3"}, "18")}
    java = rows["parity java"]  # the recorded image's default java is JDK 17
    assert not java.ok and (java.image_version, java.runtime_version) == ("17", "21")
    assert "18 LTS runs on JDK 21 (its image has 17/21)" in java.detail
    assert "parity java" not in {row.name for row in parity_rows(parity_facts, "17.3")}  # 17.3's default is 17
    assert rows["parity python"].ok  # 3.12 on 18: no base to suggest
    python = parity_rows(parity_facts, "18")[0]  # 3.11: the fix names 18's official image
    assert python.fix.startswith("start FROM databricksruntime/python:18.3-LTS")


def test_out_of_support_target_line_warns(base: tuple[dict, dict]) -> None:
    from datetime import date

    facts, attrs = base
    result = {i.name: i for i in evaluate(facts, attrs, "13.3", today=date(2026, 12, 1))}
    assert (result["runtime"].ok, result["runtime"].severity) == (False, "warning")
    assert "13.3 LTS is out of support since 2026-08-22" in result["runtime"].detail
    assert "runtime" not in {i.name for i in evaluate(facts, attrs, "13.3", today=date(2026, 1, 1))}


def test_report_python_reads_the_checked_version(base: tuple[dict, dict]) -> None:
    from dcs_magic.model import runtime
    from dcs_magic.model.requirements import report_python

    facts, attrs = base
    report = CheckReport("img", evaluate(facts, attrs, "18"))  # a mismatch still names the version
    assert report_python(report) == "3.11.2"
    assert runtime.default_runtime_for(report_python(report)).line == "15.4"  # type: ignore[union-attr]
    busybox = CheckReport("busybox", evaluate(*recorded("busybox")))
    assert report_python(busybox) is None


def test_parity_data_row_says_when_the_pins_are_stale(parity_facts: dict[str, str]) -> None:
    import datetime as dt

    from dcs_magic.model import runtime as runtime_facts
    from dcs_magic.model.parity import compare

    line = runtime_facts.resolve("15.4")
    read = dt.date.fromisoformat(runtime_facts.pin_data().read or "2026-12-07")
    fresh = next(r for r in compare(parity_facts, line, today=read + dt.timedelta(days=60)) if r.name == "parity data")
    assert fresh.ok and "days old" not in fresh.detail
    stale = next(r for r in compare(parity_facts, line, today=read + dt.timedelta(days=61)) if r.name == "parity data")
    assert not stale.ok and stale.severity == "warning" and "61 days old" in stale.detail
    assert stale.fix == "dcs runtimes --update"
