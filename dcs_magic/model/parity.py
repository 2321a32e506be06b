"""Parity of an image's /databricks/python3 with the runtime line's official image (pure).

`compare(facts, line)` reads what the probe gathered with `--parity` (`pip list --format=json`
of /databricks/python3, the full Python version, `java -version`, LANG / LC_ALL,
PYSPARK_PYTHON) and the line's facts and pins (runtime.py), and returns `ParityItem`s for
the same `CheckReport`, ranked:

    0  breaks a cluster start or the notebook REPL (error): Python minor, ipykernel / ipython
       major, pyarrow / pandas / numpy major, missing virtualenv, no pip to list packages
    1  changes behaviour (warning): other major / minor differences, missing packages
    2  patch differences, Python patch, Java, locale, PYSPARK_PYTHON (warning)
    3  one ok row for the packages that are the same, one for the image's extra packages

Every failing row names the package, the image's and the runtime's version, and a fix:
the pin to install, or the base image to start from.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
from dataclasses import dataclass
from typing import Any

from . import runtime
from .pins import STALE_DAYS, PinSet, age_days, normalise
from .probe import java_version  # the one `java -version` parser
from .results import CheckItem
from .runtime import RuntimeLine

__all__ = ["BREAKING_MAJOR", "ParityItem", "compare", "compare_versions", "parse_pip_list"]

PIP = "/databricks/python3/bin/pip"
PYSPARK_PYTHON = "/databricks/python3/bin/python3"

# Packages whose major version the Python REPL and Spark's Arrow path depend on: a different
# major fails the notebook REPL (ipykernel/ipython) or Arrow conversions (pyarrow/pandas/numpy).
BREAKING_MAJOR = ("ipykernel", "ipython", "pyarrow", "pandas", "numpy")
# Packages whose absence breaks a cluster start (DBR 11+ builds notebook envs with virtualenv).
BREAKING_MISSING = (*BREAKING_MAJOR, "virtualenv")


@dataclass(repr=False)
class ParityItem(CheckItem):
    """One parity row: `status` is same / newer-major|minor|patch / older-... / missing /
    extra / different; `rank` orders the report (0 breaks ... 3 informational)."""

    package: str = ""
    image_version: str | None = None
    runtime_version: str | None = None
    status: str = ""
    rank: int = 1
    runtime: str = ""

    def __repr__(self) -> str:
        return CheckItem.__repr__(self)


def _numbers(version: str) -> tuple[int, ...]:
    match = re.match(r"\s*v?(\d+(?:\.\d+)*)", version or "")
    return tuple(int(n) for n in match[1].split(".")) if match else ()


def compare_versions(image: str, official: str) -> str:
    """`same`, `newer-major`, `older-minor`, `newer-patch`, ... or `different` (not numeric)."""
    if image == official:
        return "same"
    a, b = _numbers(image), _numbers(official)
    if not a or not b:
        return "different"
    a3, b3 = (a + (0, 0, 0))[:3], (b + (0, 0, 0))[:3]
    for part, x, y in zip(("major", "minor", "patch"), a3, b3):
        if x != y:
            return f"{'newer' if x > y else 'older'}-{part}"
    # Same major.minor.patch, different suffix (1.5.3 vs 1.5.3.post1, 3.11.0rc1 vs 3.11.0).
    return "newer-patch" if a > b or len(image) > len(official) else "older-patch"


def parse_pip_list(text: str) -> dict[str, str]:
    """`pip list --format=json` output -> {normalised name: version}; ValueError when not JSON."""
    data = json.loads(text)
    if not isinstance(data, list):
        raise TypeError("pip list did not print a JSON list")
    return {normalise(str(p["name"])): str(p["version"]) for p in data
            if isinstance(p, dict) and "name" in p and "version" in p}


def _install(name: str, version: str) -> str:
    return f"RUN {PIP} install --no-deps {name}=={version}"


def _base_fix(line: RuntimeLine) -> str:
    if line.base_image:
        return f"start FROM {line.base_image} (pinned by digest), which has the runtime's set"
    return f"use a base with Python {line.python} (no official image exists for {line.name} yet)"


def compare(facts: dict[str, str], line: RuntimeLine, *, key: str | None = None,
            today: _dt.date | None = None) -> list[CheckItem]:
    """Parity rows for one image (probe facts) against `line`, ranked (see module docstring).

    `key` (`18.1.x-scala2.13`, `17.3.x-gpu-ml-scala2.13`): compare with that key's published
    pins when there are any, else with the line's standard ones. A first row says where the
    pins come from, and warns when they are older than STALE_DAYS on `today` (default: now)."""
    pinset = runtime.pins_for(key or line.line)
    items: list[ParityItem] = []
    if pinset is not None:
        items.append(_data_row(line, pinset, age_days(runtime.pin_data(), today or _dt.date.today())))
    items += _python_rows(facts, line)
    items += _environment_rows(facts, line)
    items += _package_rows(facts, line, pinset)
    # Within a rank the interpreter and pip come first (every package row depends on them),
    # then what Spark and the notebook REPL need (pyarrow, pandas, numpy, ipykernel, virtualenv).
    items.sort(key=lambda item: (item.rank, item.package not in ("python", "pip"),
                                 item.package not in BREAKING_MISSING, item.package))
    return list(items)


def _row(line: RuntimeLine, package: str, ok: bool, detail: str, fix: str = "", *, status: str,
         rank: int, image: str | None = None, official: str | None = None,
         name: str | None = None) -> ParityItem:
    severity = "error" if rank == 0 else "warning"
    return ParityItem(name=name or f"parity {package}", ok=ok, detail=detail, fix=fix, severity=severity,
                      package=package, image_version=image, runtime_version=official, status=status,
                      rank=rank if not ok else 3, runtime=line.line)


def _python_rows(facts: dict[str, str], line: RuntimeLine) -> list[ParityItem]:
    version = facts.get("python.version")
    if not version:
        return [_row(line, "python", False, f"{PYSPARK_PYTHON} does not run, so parity cannot be "
                     "checked", _base_fix(line), status="missing", rank=0, official=line.python)]
    minor = ".".join(version.split(".")[:2])
    if minor != line.python:
        _, why = runtime.fits(version, line)
        return [_row(line, "python", False, f"{why} (REPL and Spark's Python workers need the "
                     "runtime's Python minor)", _base_fix(line), status=compare_versions(minor, line.python),
                     rank=0, image=version, official=line.python_patch or line.python)]
    if line.python_patch and version != line.python_patch:
        return [_row(line, "python", False, f"Python {version}; the official {line.name} image has "
                     f"{line.python_patch} (same minor: only behaviour of fixed bugs differs)",
                     f"{_base_fix(line)}, or install Python {line.python_patch}",
                     status=compare_versions(version, line.python_patch), rank=2, image=version,
                     official=line.python_patch)]
    return [_row(line, "python", True, f"Python {version} (the runtime's {line.python_patch or line.python})",
                 status="same", rank=3, image=version, official=line.python_patch or line.python)]


def _environment_rows(facts: dict[str, str], line: RuntimeLine) -> list[ParityItem]:
    rows = []
    java = java_version(facts.get("version.java", ""))
    if java is not None and java[0] != line.java:
        installed = "/".join(map(str, line.java_installed))
        rows.append(_row(line, "java", False, f"the default java is JDK {java[0]}; {line.name} runs on "
                         f"JDK {line.java} (its image has {installed})",
                         f"make JDK {line.java} the default java (update-alternatives / JAVA_HOME)",
                         status=compare_versions(str(java[0]), str(line.java)), rank=2,
                         image=str(java[0]), official=str(line.java)))
    if line.locale:
        for var in ("LANG", "LC_ALL"):
            value = facts.get(f"env.{var}", "")
            if "utf-8" not in value.lower() and "utf8" not in value.lower():
                rows.append(_row(line, var, False, f"{var}={value or '(unset)'}; the official {line.name} "
                                 f"image sets {var}={line.locale} (Unity Catalog paths with non-ASCII "
                                 "names need UTF-8)", f"ENV {var}={line.locale}", status="different",
                                 rank=2, image=value or None, official=line.locale))
    pyspark = facts.get("env.PYSPARK_PYTHON", "")
    if pyspark != PYSPARK_PYTHON:
        rows.append(_row(line, "PYSPARK_PYTHON", False, f"PYSPARK_PYTHON={pyspark or '(unset)'}; the "
                         f"official image sets {PYSPARK_PYTHON}", f"ENV PYSPARK_PYTHON={PYSPARK_PYTHON}",
                         status="different", rank=2, image=pyspark or None, official=PYSPARK_PYTHON))
    return rows


def _data_row(line: RuntimeLine, pinset: PinSet, age: int | None) -> ParityItem:
    stale = age is not None and age > STALE_DAYS
    return _row(line, "data", not stale, f"pins of {pinset.key} from {pinset.origin}"
                + (f"; the data is {age} days old" if stale else ""),
                "dcs runtimes --update" if stale else "", status="stale" if stale else "same", rank=2,
                name="parity data")


def _constraints_fix(pinset: PinSet) -> str:
    """The whole-set fix: the runtime's constraints file into the image, pip constrained by it."""
    return (f"dcs runtimes --constraints {pinset.key} > constraints.txt (or a %%dcs_file), COPY it into the "
            f"image and RUN {PIP} install -c constraints.txt <packages> (-r constraints.txt installs the "
            "runtime's whole set)")


def _package_rows(facts: dict[str, str], line: RuntimeLine, pinset: PinSet | None) -> list[ParityItem]:
    if not facts.get("python.version"):
        return []  # the python row already says why
    listed = facts.get("pip.list")
    if not listed:
        reason = (facts.get("pip.error") or "no output").splitlines()[0]
        return [_row(line, "pip", False, f"no pip in /databricks/python3 to list its packages ({reason}); "
                     "Databricks installs notebook-scoped libraries with it",
                     "RUN /databricks/python3/bin/python -m ensurepip --upgrade (or "
                     + _base_fix(line) + ")", status="missing", rank=0, official=line.pip)]
    try:
        image = parse_pip_list(listed)
    except (ValueError, KeyError, TypeError) as exc:
        return [_row(line, "pip", False, f"pip list printed something that is not its JSON ({exc})",
                     "check that /databricks/python3/bin/python -m pip list --format=json works",
                     status="different", rank=0)]
    if pinset is None or not pinset.pins:
        return [_row(line, "packages", False, f"no package pins for {line.name}: Databricks has published "
                     "none that this dcs-magic has; only Python, Java and the environment were compared "
                     f"({len(image)} packages in the image)",
                     "refresh the pins: dcs runtimes --update (reads github.com/databricks/environments)",
                     status="unknown", rank=1, name="parity packages")]
    official = dict(pinset.pins)
    constraints = _constraints_fix(pinset)
    where = f"{line.name} ({pinset.key})"
    rows: list[ParityItem] = []
    same: list[str] = []
    missing: list[str] = []
    for name in sorted(official):
        want, have = official[name], image.get(name)
        if have is None and name in BREAKING_MISSING:
            rows.append(_row(line, name, False, f"{name} is missing; {where} has {want} (the notebook "
                             "REPL / cluster start needs it)", _install(name, want), status="missing",
                             rank=0, official=want))
            continue
        if have is None:
            missing.append(name)
            continue
        status = compare_versions(have, want)
        if status == "same":
            same.append(f"{name} {have}")
            continue
        part = status.partition("-")[2]
        breaks = part == "major" and name in BREAKING_MAJOR
        rank = 0 if breaks else 2 if part == "patch" else 1
        effect = ("breaks the notebook REPL / Arrow conversions" if breaks else
                  "may change behaviour" if rank == 1 else "bug-fix difference only")
        rows.append(_row(line, name, False, f"{name} {have} is {status.replace('-', ' (')}) than {where}'s "
                         f"{want}: {effect}", _install(name, want), status=status, rank=rank,
                         image=have, official=want))
    if missing:
        # One row for the ordinary missing packages: a hundred rows would bury the ones above,
        # and the fix is one install line anyway.
        rows.append(_row(line, f"{len(missing)} packages", False, f"{len(missing)} packages of {where} "
                         f"are missing (code that imports them fails; nothing else changes): "
                         + ", ".join(f"{n} {official[n]}" for n in missing),
                         constraints, status="missing", rank=1, name="parity missing"))
    extra = sorted(set(image) - set(official))
    rows.append(_row(line, "same", True, f"{len(same)} of {len(official)} packages as in {where}: "
                     + (", ".join(same) if same else "none"), status="same", rank=3,
                     name="parity same"))
    if extra:
        rows.append(_row(line, "extra", True, f"{len(extra)} packages not in {where}: "
                         + ", ".join(f"{n} {image[n]}" for n in extra), status="extra", rank=3,
                         name="parity extra"))
    return rows


def summary(items: list[Any]) -> dict[str, int]:
    """Counts by status (for tests and the README's excerpt)."""
    counts: dict[str, int] = {}
    for item in items:
        if isinstance(item, ParityItem):
            counts[item.status] = counts.get(item.status, 0) + 1
    return counts
