"""model/pins.py: the runtime pins as Databricks publishes them, read and looked up (pure)."""

from __future__ import annotations

import datetime as dt

import pytest

from dcs_magic.model.pins import PinData, PinSet, age_days, from_tree, key_line, parse_constraints, parse_requires_python

CONSTRAINTS = """# constraints.txt file for Databricks Runtime 18.x-scala2.13

aiohttp~=3.11.10
Jinja2~=3.1.5
ruamel.yaml~=0.18.6
torch~=2.7.1 ; platform_machine == "x86_64"
-c other.txt
unpinned
requests[socks]==2.32.3
"""


def test_constraints_are_name_and_version_normalised() -> None:
    assert parse_constraints(CONSTRAINTS) == {"aiohttp": "3.11.10", "jinja2": "3.1.5", "ruamel-yaml": "0.18.6",
                                             "torch": "2.7.1", "requests": "2.32.3"}


@pytest.mark.parametrize("text, minor", [
    ('requires-python = "==3.12.*"', "3.12"),
    ("requires-python = '~=3.11.0'", "3.11"),
    ('requires-python = ">=3.10,<3.11"', "3.10"),
    ('requires-python = ">=3.9"', None),
    ('name = "x"', None),
])
def test_requires_python_gives_one_minor(text: str, minor: str | None) -> None:
    assert parse_requires_python(f"[project]\n{text}\n") == minor


def test_key_line() -> None:
    assert [key_line(k) for k in ("18.x-scala2.13", "18.1.x-scala2.13", "17.3.x-cpu-ml-scala2.13",
                                  "9.1.x-scala2.12", "15.4.x-photon-scala2.12", "nonsense")] == \
        ["18", "18.1", "17.3", "9.1", "15.4", None]


def data() -> PinData:
    def pin_set(key: str, python: str, **pins: str) -> PinSet:
        return PinSet(key, python, pins, f"test:{key}")

    sets = [pin_set("15.4.x-scala2.12", "3.11", numpy="1.23.5"),
            pin_set("16.4.x-scala2.12", "3.12", numpy="1.26.2"), pin_set("16.4.x-scala2.13", "3.12", numpy="1.26.4"),
            pin_set("18.x-scala2.13", "3.12", numpy="2.1.3"), pin_set("18.1.x-scala2.13", "3.12", numpy="2.1.3",
                                                                     virtualenv="20.29.4"),
            pin_set("17.3.x-gpu-ml-scala2.13", "3.12", torch="2.7.1"), pin_set("17.3.x-scala2.13", "3.12", numpy="2.1.3")]
    return PinData("test", "c" * 40, "2026-11-30", "2026-12-01", {s.key: s for s in sets})


@pytest.mark.parametrize("asked, found", [
    ("18.1.x-scala2.13", "18.1.x-scala2.13"),   # the point release has its own file
    ("18.3.x-scala2.13", "18.x-scala2.13"),     # it has none: the line's
    ("18", "18.x-scala2.13"),
    ("18.x-scala2.12", "18.x-scala2.13"),       # the same line, newest Scala
    ("16.4", "16.4.x-scala2.13"),
    ("15.4", "15.4.x-scala2.12"),
    ("15.4.x-photon-scala2.12", "15.4.x-scala2.12"),  # Photon runs the standard environment
    ("17.3.x-gpu-ml-scala2.13", "17.3.x-gpu-ml-scala2.13"),
    ("17.3.x-cpu-ml-scala2.13", None),          # no CPU ML set: never the GPU or standard one
    ("14.3", None),
    ("nonsense", None),
])
def test_find_most_specific_first(asked: str, found: str | None) -> None:
    result = data().find(asked)
    assert (result.key if result else None) == found


def test_the_data_file_round_trips_and_is_sorted() -> None:
    original = data()
    text = original.to_json()
    again = PinData.from_json(text)
    assert again == original or (again.sets.keys() == original.sets.keys()
                                 and all(dict(again.sets[k].pins) == dict(original.sets[k].pins) for k in again.sets))
    keys = list(__import__("json").loads(text)["keys"])
    assert keys == ["15.4.x-scala2.12", "16.4.x-scala2.12", "16.4.x-scala2.13", "17.3.x-gpu-ml-scala2.13",
                    "17.3.x-scala2.13", "18.x-scala2.13", "18.1.x-scala2.13"]
    assert again.lines() == ["15.4", "16.4", "17.3", "18", "18.1"]


def test_from_tree_reads_the_repository_layout() -> None:
    files = {"python/dbr/19.x-scala2.13/constraints.txt": "ipython~=9.7.0\nnumpy~=2.3.4\n",
             "python/dbr/19.x-scala2.13/pyproject.toml": '[project]\nrequires-python = "==3.12.*"\n',
             "python/serverless/serverless-v4/constraints.txt": "numpy~=1.0.0\n",
             "README.md": "# x\n"}
    result = from_tree(files, source="https://github.com/databricks/environments", commit="a" * 40,
                       date="2026-12-01", read="2026-12-07")
    (only,) = result.sets.values()
    assert (only.key, only.python, dict(only.pins)) == ("19.x-scala2.13", "3.12", {"ipython": "9.7.0", "numpy": "2.3.4"})
    assert only.origin == "databricks/environments@aaaaaaaaaaaa:python/dbr/19.x-scala2.13/constraints.txt"


def test_age_is_computed_from_the_given_day() -> None:
    assert age_days(data(), dt.date(2026, 12, 30)) == 30
    assert age_days(PinData("x", None, None, "2026-12-01", {}), dt.date(2027, 3, 1)) == 90
    assert age_days(PinData("x", None, None, None, {}), dt.date(2027, 3, 1)) is None
