"""runtime.py against its data: every key, tag and plain form, the facts per line, the pins."""

from __future__ import annotations

import json
from datetime import date

import pytest

from dcs_magic.cli.commands import main
from dcs_magic.model import runtime
from dcs_magic.model.runtime import Version

TODAY = date(2026, 12, 1)


@pytest.mark.parametrize("text, line", [
    # runtime keys
    ("15.4.x-scala2.12", "15.4"),
    ("17.3.x-scala2.13", "17.3"),
    ("18.x-scala2.13", "18"),
    ("18.0.x-scala2.13", "18"), ("18.1.x-scala2.13", "18"), ("18.3.x-scala2.13", "18"),
    ("18.3.x-photon-scala2.13", "18"), ("19.1.x-scala2.13", "19"),
    ("16.4.x-photon-scala2.12", "16.4"),
    ("16.4.x-scala2.13", "16.4"),
    ("15.4.x-cpu-ml-scala2.12", "15.4"),
    ("15.4.x-gpu-ml-scala2.12", "15.4"),
    ("15.4.x-aarch64-scala2.12", "15.4"),
    ("15.4.x-aarch64-photon-scala2.12", "15.4"),
    ("19.x-scala2.13", "19"),
    # plain versions
    ("18.0", "18"), ("18", "18"), ("18 LTS", "18"), ("15.4 LTS", "15.4"), ("15.4", "15.4"),
    ("9.1", "9.1"), ("9.x", "9.1"), ("10.4", "10.4"), ("11.3", "11.3"), ("12.2", "12.2"),
    ("13.3", "13.3"), ("14.3", "14.3"), ("16.4", "16.4"), ("17.3", "17.3"), ("19", "19"),
    # base image tags read as plain versions
    ("15.4-LTS", "15.4"), ("9.1-LTS", "9.1"), ("18.3-LTS", "18"), ("18.3 LTS", "18"), ("18.3", "18"),
    ("19.2", "19"),
])
def test_line_of_every_form(text: str, line: str) -> None:
    found = runtime.line_of(text)
    assert found is not None and found.line == line


@pytest.mark.parametrize("text", ["latest", "newest", "", "3.11", "python", "15.4.x"[:-2] + "y"])
def test_what_names_no_line(text: str) -> None:
    assert runtime.line_of(text) is None


@pytest.mark.parametrize("text", ["15.3", "15.3-LTS", "15.3.x-scala2.12", "16.2.x-scala2.12", "17.0", "13.2-LTS",
                                  "20.1", "20.x-scala2.13"])
def test_an_unknown_minor_of_a_major_minor_line_stays_unknown(text: str) -> None:
    """Only a line named by its major alone (18, 19) takes every minor: 15.3 is not 15.4."""
    assert runtime.line_of(text) is None
    with pytest.raises(ValueError, match="not a line dcs-magic knows; the closest known lines are"):
        runtime.resolve(text)


@pytest.mark.parametrize("text", ["18.3-LTS", "18.3.x-scala2.13", "18.1.x-scala2.13", "18.0.x-scala2.13",
                                  "databricksruntime/python:18.3-LTS"])
def test_point_releases_of_18_resolve_to_line_18(text: str) -> None:
    """databricks/containers released 18 images as `18.3-LTS`; the line is named `18`."""
    version = runtime.line_of_image(text) if "/" in text else runtime.parse_version(text)
    assert version is not None and version.major == 18
    assert runtime.line_of(version) is runtime.by_name("18")
    if "/" not in text:
        assert runtime.resolve(text, supported=True, today=TODAY).line == "18"
        assert runtime.line_of_tag(text) == version


@pytest.mark.parametrize("tag, repository, expected", [
    ("15.4-LTS", None, Version(15, 4)),
    ("9.x", None, Version(9, None)),
    ("8.x", None, Version(8, None)),
    ("13.3-LTS-ubuntu", None, Version(13, 3)),
    ("18.3-LTS", None, Version(18, 3)),
    ("18.3-LTS", "databricksruntime/python", Version(18, 3)),
    ("cuda11.8", "databricksruntime/gpu-pytorch", Version(14, 3)),
    ("latest", None, None),
    ("experimental", None, None),
    (None, None, None),
])
def test_line_of_tag(tag: str | None, repository: str | None, expected: Version | None) -> None:
    assert runtime.line_of_tag(tag, repository) == expected


@pytest.mark.parametrize("image, expected", [
    ("databricksruntime/standard:15.4-LTS", "15.4"),
    ("databricksruntime/python:9.x", "9.x"),
    ("databricksruntime/gpu-tensorflow:cuda11.8", "14.3"),
    ("registry.example.com/team/base:13.3-LTS", "13.3"),   # Databricks-style tag
    ("databricksruntime/python:18.3-LTS", "18.3"),
    ("databricksruntime/standard:18.3-LTS@sha256:" + "a" * 64, "18.3"),
    ("registry.example.com/team/base:18.3-LTS", "18.3"),
    ("python:3.11", None),                                  # not a runtime 3.x
    ("team/app:2.0", None),
    ("databricksruntime/standard:latest", None),
    ("databricksruntime/standard", None),
    (None, None),
])
def test_line_of_image(image: str | None, expected: str | None) -> None:
    version = runtime.line_of_image(image)
    assert (str(version) if version else None) == expected


def test_pip_paths_follow_the_line() -> None:
    assert runtime.pip_path(Version(8, None)) == "/databricks/conda/envs/dcs-minimal/bin/pip"
    assert runtime.python_path(Version(8, None)) == "/databricks/conda/envs/dcs-minimal/bin/python"
    assert runtime.pip_path(Version(9, 1)) == "/databricks/python3/bin/pip"
    assert runtime.pip_path(None) == "/databricks/python3/bin/pip"
    assert runtime.python_path(runtime.by_name("18")) == "/databricks/python3/bin/python3"


def test_facts_per_line_match_dcs_facts() -> None:
    expected = {  # line: (ubuntu, python, default JDK, installed JDKs)
        "9.1": ("18.04", "3.8", 8, (8,)), "10.4": ("20.04", "3.8", 8, (8,)),
        "11.3": ("20.04", "3.9", 8, (8,)), "12.2": ("20.04", "3.9", 8, (8,)),
        "13.3": ("22.04", "3.10", 8, (8,)), "14.3": ("22.04", "3.10", 8, (8,)),
        "15.4": ("22.04", "3.11", 8, (8, 17)), "16.4": ("24.04", "3.12", 17, (8, 17)),
        "17.3": ("24.04", "3.12", 17, (8, 17)), "18": ("24.04", "3.12", 21, (17, 21)),
        "19": ("24.04", "3.12", 21, (17, 21)),
    }
    got = {line.line: (line.ubuntu, line.python, line.java, line.java_installed) for line in runtime.lines()}
    assert got == expected
    line18 = runtime.by_name("18")
    assert line18 is not None and line18.lts and line18.spark.startswith("4.1") and line18.scala == ("2.13",)
    assert line18.key == "18.x-scala2.13" and 8 not in line18.java_installed
    # DBR 18.0 release notes: JDK 21 is the default, JDK 17 still installed
    assert line18.java == 21 and 17 in line18.java_installed
    assert line18.image_tag == "18.3-LTS" and line18.base_image == "databricksruntime/python:18.3-LTS"
    assert (line18.released, line18.end_of_support) == (date(2026, 6, 10), date(2029, 6, 10))
    line19 = runtime.by_name("19")
    assert line19 is not None and line19.beta and not line19.lts and line19.end_of_support is None
    assert line19.java == 21 and line19.java_installed == (17, 21) and line19.released == date(2026, 6, 15)
    assert line19.image_tag is None and line19.base_image is None
    line154 = runtime.by_name("15.4")
    assert line154 is not None and line154.python_patch == "3.11.11" and line154.pip == "23.2.1"
    assert line154.virtualenv == "20.24.2" and line154.base_image == "databricksruntime/python:15.4-LTS"
    assert runtime.by_name("16.4").scala == ("2.12", "2.13")  # type: ignore[union-attr]


def test_end_of_support_dates() -> None:
    eos = {line.line: line.end_of_support.isoformat() for line in runtime.lines() if line.end_of_support}
    assert eos["12.2"] == "2026-03-01" and eos["13.3"] == "2026-08-22" and eos["14.3"] == "2027-02-01"
    assert eos["15.4"] == "2027-08-19" and eos["16.4"] == "2028-05-09" and eos["17.3"] == "2028-10-22"
    assert eos["18"] == "2029-06-10" and "19" not in eos
    # LTS: three years of support from the release (dcs-facts.md), so each release date follows
    for line in runtime.lts_lines():
        assert line.end_of_support == line.released.replace(year=line.released.year + 3), line.line
    assert not runtime.by_name("13.3").supported(TODAY)  # type: ignore[union-attr]
    assert runtime.by_name("13.3").supported(date(2026, 8, 21))  # type: ignore[union-attr]
    assert runtime.by_name("19").supported(TODAY)  # type: ignore[union-attr]


def test_resolve_names_the_closest_lines_for_unknown_versions() -> None:
    with pytest.raises(ValueError, match=r"16\.2 is not a line dcs-magic knows; the closest known lines are "
                                         r"16\.4 LTS, 15\.4 LTS"):
        runtime.resolve("16.2.x-scala2.12")
    with pytest.raises(ValueError, match=r"closest known lines are 19 Beta, 18 LTS"):
        runtime.resolve("21.x-scala2.13")
    with pytest.raises(ValueError, match="not a Databricks Runtime line"):
        runtime.resolve("latest")


def test_resolve_refuses_out_of_support_lines_with_the_date() -> None:
    with pytest.raises(ValueError, match=r"12\.2 LTS is out of support since 2026-03-01; pick a supported "
                                         r"line such as 18 LTS, 17\.3 LTS"):
        runtime.resolve("12.2.x-scala2.12", supported=True, today=TODAY)
    assert runtime.resolve("12.2.x-scala2.12").line == "12.2"  # only facts asked: no refusal


@pytest.mark.parametrize("key, word", [
    ("15.4.x-cpu-ml-scala2.12", "for ML"), ("15.4.x-gpu-ml-scala2.12", "ML (GPU)"),
    ("15.4.x-aarch64-scala2.12", "aarch64"), ("15.4.x-aarch64-photon-scala2.12", "aarch64"),
])
def test_key_refusal(key: str, word: str) -> None:
    reason = runtime.key_refusal(key)
    assert reason is not None and word in reason


@pytest.mark.parametrize("key", ["15.4.x-scala2.12", "16.4.x-photon-scala2.12", "18.x-scala2.13", None])
def test_key_refusal_allows_standard_keys(key: str | None) -> None:
    assert runtime.key_refusal(key) is None


def test_fits_and_default_runtime() -> None:
    ok, why = runtime.fits("3.11.2", "18")
    assert not ok and "does not fit 18 LTS, which runs Python 3.12; it fits 15.4 LTS" in why
    ok, why = runtime.fits("3.11.2", "15.4.x-scala2.12")
    assert ok and "fits 15.4 LTS" in why
    assert runtime.default_runtime_for("3.12.3", TODAY).line == "18"  # type: ignore[union-attr]
    assert runtime.default_runtime_for("3.11", TODAY).line == "15.4"  # type: ignore[union-attr]
    assert runtime.default_runtime_for("3.10", TODAY).line == "14.3"  # type: ignore[union-attr]
    assert runtime.default_runtime_for("3.9", TODAY) is None  # 11.3 and 12.2 are out of support
    assert runtime.default_runtime_for("3.7", TODAY) is None


def test_spark_versions_lists_supported_lines_newest_first() -> None:
    keys = [v["key"] for v in runtime.spark_versions(TODAY)]
    assert keys == ["19.x-scala2.13", "18.x-scala2.13", "17.3.x-scala2.13", "16.4.x-scala2.12",
                    "16.4.x-scala2.13", "15.4.x-scala2.12", "14.3.x-scala2.12"]
    names = {v["key"]: v["name"] for v in runtime.spark_versions(TODAY)}
    assert names["18.x-scala2.13"].startswith("18 LTS (includes Apache Spark 4.1.0")
    assert all(runtime.line_of(key) is not None for key in keys)


def test_pins_come_from_the_data_file_with_their_origin() -> None:
    pins154 = runtime.pins("15.4")
    assert pins154["numpy"] == "1.23.5" and pins154["pandas"] == "1.5.3" and pins154["pyarrow"] == "14.0.1"
    assert runtime.pins("17.3")["ipykernel"] == "6.29.5"
    # 18 LTS and 19, published by Databricks in databricks/environments (issue 21's figures).
    pins18, pins19 = runtime.pins_for("18"), runtime.pins_for("19")
    assert pins18 is not None and pins19 is not None
    assert (pins18.key, pins18.python) == ("18.x-scala2.13", "3.12")
    assert {n: pins18.pins[n] for n in ("pyarrow", "numpy", "pandas", "ipykernel", "ipython", "virtualenv")} == {
        "pyarrow": "21.0.0", "numpy": "2.1.3", "pandas": "2.2.3", "ipykernel": "6.29.5", "ipython": "8.30.0",
        "virtualenv": "20.29.3"}
    assert {n: pins19.pins[n] for n in ("ipython", "numpy", "pandas")} == {
        "ipython": "9.7.0", "numpy": "2.3.4", "pandas": "2.3.3"}
    assert pins18.origin.startswith("databricks/environments@") and pins18.origin.endswith(
        "python/dbr/18.x-scala2.13/constraints.txt")
    # ML variants and point releases are keys of their own.
    assert runtime.pins_for("17.3.x-gpu-ml-scala2.13").key == "17.3.x-gpu-ml-scala2.13"
    assert runtime.pins_for("18.1.x-scala2.13").key == "18.1.x-scala2.13"
    # 9.1-11.3 are not in databricks/environments: their databricks/containers pins stay.
    assert {line: len(runtime.pins(line)) for line in ("9.1", "10.4", "11.3")} == {"9.1": 25, "10.4": 25, "11.3": 37}
    assert "release-9.1-LTS" in runtime.pins_for("9.1").origin
    assert "github.com/databricks/environments" in runtime.pins_origin()


def test_table_is_lts_first_newest_first() -> None:
    rows = runtime.table(TODAY)
    assert [r["line"] for r in rows] == ["18", "17.3", "16.4", "15.4", "14.3", "13.3", "12.2", "11.3",
                                         "10.4", "9.1", "19"]
    assert {"line", "lts", "python", "java", "dcs", "end_of_support"} <= set(rows[0])


def test_dcs_runtimes_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["runtimes", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    first = rows[0]
    assert first["line"] == "18" and first["lts"] is True and first["python"] == "3.12"
    assert first["java"] == 21 and first["java_installed"] == [17, 21] and first["dcs"] is True
    assert first["end_of_support"] == "2029-06-10" and first["released"] == "2026-06-10"
    assert first["base_image"] == "databricksruntime/python:18.3-LTS"
    assert rows[-1]["line"] == "19" and rows[-1]["end_of_support"] is None


def test_dcs_runtimes_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["runtimes"]) == 0
    out = capsys.readouterr().out
    lines, _, pins = out.partition("\n\n")
    lines = lines.splitlines()
    assert pins.startswith("Package pins: https://github.com/databricks/environments")
    assert lines[0].split()[:4] == ["line", "lts", "python", "java"]
    assert lines[1].startswith("18 LTS") and "2029-06-10" in lines[1] and "17/21 (default 21)" in lines[1]
    assert lines[-1].startswith("19 Beta") and "17/21 (default 21)" in lines[-1]
    assert any(line.startswith("15.4 LTS") and "3.11.11" in line for line in lines)


def test_no_other_module_keeps_a_runtime_table() -> None:
    """The Python-per-line facts live in runtime.py only: no other module spells them."""
    import pathlib
    import re

    package = pathlib.Path(runtime.__file__).parent
    offenders = []
    for path in package.glob("*.py"):
        if path.name == "runtime.py":
            continue
        text = path.read_text()
        if re.search(r"""["']3\.1[0-2]["']\s*[,:}]""", text) or re.search(r"""LTS_LINES|PYTHON_BY_RUNTIME""", text):
            offenders.append(path.name)
    assert offenders == []


@pytest.mark.parametrize("key", ["18.x-scala2.13", "15.4.x-scala2.12", "16.4.x-photon-scala2.12"])
def test_policy_export_reads_keys_through_runtime(key: str) -> None:
    """exports' runtime regex comes from runtime.parse_version: an `18.x` key keeps its policy."""
    from dcs_magic.model import exports
    from dcs_magic.model.spec import ClusterSpec

    spec = ClusterSpec(spark_version=key, num_workers=0,
                       docker_image={"url": "r.example.com/a/b@sha256:" + "0" * 64})
    policy = json.loads(exports.to_policy(spec))
    assert policy["spark_version"]["type"] == "regex"
    import re
    assert re.match(policy["spark_version"]["pattern"], key)
    assert not re.match(policy["spark_version"]["pattern"], key.replace("-scala", "-cpu-ml-scala"))


def test_a_line_newer_than_the_data_names_the_update() -> None:
    from dcs_magic import ClusterSpec
    from dcs_magic.model.lint import lint

    with pytest.raises(ValueError, match=r"dcs runtimes --update"):
        runtime.resolve("20")
    spec = ClusterSpec(spark_version="20.x-scala2.13", num_workers=0)
    assert any("dcs runtimes --update" in str(error) for error in spec.errors())
    (finding,) = [f for f in lint("FROM databricksruntime/standard:20.1-LTS\n") if f.rule == "base-unknown-line"]
    assert "dcs runtimes --update" in finding.fix
    # An unknown line older than the newest is not a matter of fresh data.
    with pytest.raises(ValueError) as info:
        runtime.resolve("16.2")
    assert "--update" not in str(info.value)
