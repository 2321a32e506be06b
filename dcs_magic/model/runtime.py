"""Databricks Runtime lines: the one owner of every fact about them, with no I/O.

Everything else (templates, lint, checks, spec validation, the launch form, the local
preflight workspace) asks this module; no other file keeps a table of runtimes. The facts
are one edit of `FACTS` below; the package pins are data (`data/runtime-pins.json`, see
model/pins.py), refreshed by `dcs runtimes --update` with no code change, and a line only
that data knows (newer than FACTS) is a line here too, its other facts inferred.

    parse_version(text)   `15.4.x-scala2.12`, `16.4.x-photon-scala2.12`, `18.x-scala2.13`,
                          `15.4-LTS`, `9.x`, `18.0`, `18`, `15.4 LTS` -> Version(major, minor)
    line_of(text)         the same forms -> the known `RuntimeLine`, or None; a line named by
                          its major alone (`18`) is every `18.N` (`18.3-LTS`, `18.1.x-scala2.13`),
                          a line named major.minor (`15.4`) only itself (`15.3` is unknown)
    resolve(text)         like line_of, but a clear ValueError (closest known lines, or since
                          when a line is out of support when `supported=True`)
    line_of_tag(tag, repository)  a base image tag -> Version (`latest` -> None)
    line_of_image(ref)    a base image reference -> Version when it is a Databricks image
    pip_path / python_path(version)  the notebook interpreter of a line (conda for 8.x)
    key_refusal(key)      why DCS cannot run a key (ML, GPU ML, aarch64), or None
    fits(python, line)    (bool, reason): does an image's Python fit a line
    default_runtime_for(python)  the newest supported LTS line whose Python it is
    spark_versions()      `{"key", "name"}` items for the supported lines (spark-versions)
    pins(line) / pins_for(key)  the runtime's /databricks/python3 pins (data file)

Sources: ../shared/dcs-facts.md, Databricks' release notes (versions and compatibility,
support lifecycles) and the `databricks/containers` release branches.
"""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

from ..settings import runtime_pins_file
from .imageref import ImageRef, parse_or_none
from .pins import PinData, PinSet, age_days

__all__ = [
    "CONDA_BIN",
    "LINES",
    "PYTHON3_BIN",
    "RuntimeLine",
    "Version",
    "by_name",
    "closest_lines",
    "default_runtime_for",
    "fits",
    "fitting_lines",
    "key_refusal",
    "line_of",
    "line_of_image",
    "line_of_tag",
    "lines",
    "lts_lines",
    "new_lines",
    "parse_version",
    "pins",
    "pins_origin",
    "pip_path",
    "python_path",
    "resolve",
    "spark_versions",
    "table",
]

PYTHON3_BIN = "/databricks/python3/bin"
"""The notebook virtualenv of 9.x and later runtimes."""
CONDA_BIN = "/databricks/conda/envs/dcs-minimal/bin"
"""Where 8.x and earlier images keep notebook Python."""


@dataclass(frozen=True, order=True)
class Version:
    """A runtime version as written: `15.4` (major, minor) or `9.x` / `18` (minor None)."""

    major: int
    minor: int | None = None

    @property
    def legacy_conda(self) -> bool:
        """8.x and earlier images keep pip in the dcs-minimal conda env."""
        return self.major <= 8

    def __str__(self) -> str:
        return f"{self.major}.{'x' if self.minor is None else self.minor}"


@dataclass(frozen=True)
class RuntimeLine:
    """Facts about one Databricks Runtime line and its official `databricksruntime` images.

    `python_patch` is the full Python version of the official `python` image where known
    (None otherwise); `java` is the default JDK, `java_installed` every JDK in the image;
    `pip` / `virtualenv` / `setuptools` / `wheel` are the versions the official image pins.
    `end_of_support` None means not announced yet (a beta line).
    """

    line: str
    lts: bool
    spark: str
    scala: tuple[str, ...]
    ubuntu: str
    python: str
    java: int
    java_installed: tuple[int, ...]
    released: _dt.date
    end_of_support: _dt.date | None
    python_patch: str | None = None
    pip: str | None = None
    virtualenv: str | None = None
    setuptools: str | None = None
    wheel: str | None = None
    beta: bool = False
    dcs: bool = True
    image_tag: str | None = None
    locale: str | None = None
    notes: str = ""
    aliases: tuple[str, ...] = field(default=())
    inferred_from: str | None = None
    """For a line only the pin data knows: the known line its other facts are assumed from."""

    @property
    def version(self) -> Version:
        major, _, minor = self.line.partition(".")
        return Version(int(major), int(minor) if minor else None)

    @property
    def name(self) -> str:
        """`15.4 LTS`, `19 Beta`: how Databricks names the line."""
        return f"{self.line} LTS" if self.lts else f"{self.line} Beta" if self.beta else self.line

    @property
    def key(self) -> str:
        """The runtime key of the standard variant (`15.4.x-scala2.12`, `18.x-scala2.13`)."""
        return f"{self.line}.x-scala{self.scala[0]}"

    @property
    def pip_path(self) -> str:
        return pip_path(self.version)

    @property
    def python_path(self) -> str:
        return python_path(self.version)

    @property
    def base_image(self) -> str | None:
        """The official image to start from (`databricksruntime/python:15.4-LTS`), if any."""
        return f"databricksruntime/python:{self.image_tag}" if self.image_tag else None

    def supported(self, today: _dt.date | None = None) -> bool:
        """Whether Databricks still supports the line on `today` (default: the current date)."""
        today = today or _dt.date.today()
        return self.end_of_support is None or today < self.end_of_support

    def to_dict(self, today: _dt.date | None = None) -> dict[str, Any]:
        """Plain JSON-able facts (what `dcs runtimes --json` prints)."""
        return {
            "line": self.line, "name": self.name, "key": self.key, "lts": self.lts, "beta": self.beta,
            "python": self.python, "python_patch": self.python_patch, "java": self.java,
            "java_installed": list(self.java_installed), "ubuntu": self.ubuntu,
            "spark": self.spark, "scala": list(self.scala), "dcs": self.dcs,
            "supported": self.supported(today), "released": self.released.isoformat(),
            "end_of_support": self.end_of_support.isoformat() if self.end_of_support else None,
            "pip": self.pip, "virtualenv": self.virtualenv, "pip_path": self.pip_path,
            "base_image": self.base_image, "locale": self.locale, "pins": len(pins(self.line)),
            "inferred_from": self.inferred_from, "notes": self.notes,
        }

    def __str__(self) -> str:
        return self.line


def _d(text: str) -> _dt.date:
    return _dt.date.fromisoformat(text)


# -- the data: one entry per line, oldest first --------------------------------------------
# Release / end-of-support dates and Spark versions: Databricks' "release notes versions and
# compatibility" page. Ubuntu, JDKs, pip/setuptools/wheel/virtualenv: the release-N-LTS
# branches of github.com/databricks/containers (ubuntu/minimal and ubuntu/python
# Dockerfiles). Python patch: 15.4 from the .debs its python image installs (3.11.11);
# 13.3/14.3 and 16.4/17.3 from Ubuntu 22.04's / 24.04's python3.X package; else unknown.
FACTS: tuple[RuntimeLine, ...] = (
    RuntimeLine("9.1", True, "3.1.2", ("2.12",), "18.04", "3.8", 8, (8,), _d("2021-09-23"),
                _d("2024-09-23"), None, "21.0.1", "20.4.1", "52.0.0", "0.36.2", image_tag="9.1-LTS"),
    RuntimeLine("10.4", True, "3.2.1", ("2.12",), "20.04", "3.8", 8, (8,), _d("2022-03-18"),
                _d("2025-03-18"), "3.8.10", "21.0.1", "20.4.1", "52.0.0", "0.36.2", image_tag="10.4-LTS"),
    RuntimeLine("11.3", True, "3.3.0", ("2.12",), "20.04", "3.9", 8, (8,), _d("2022-10-19"),
                _d("2025-10-19"), "3.9.5", "21.2.4", "20.8.0", "58.0.4", "0.37.0", image_tag="11.3-LTS"),
    RuntimeLine("12.2", True, "3.3.2", ("2.12",), "20.04", "3.9", 8, (8,), _d("2023-03-01"),
                _d("2026-03-01"), "3.9.5", "21.2.4", "20.8.0", "58.0.4", "0.37.0", image_tag="12.2-LTS"),
    RuntimeLine("13.3", True, "3.4.1", ("2.12",), "22.04", "3.10", 8, (8,), _d("2023-08-22"),
                _d("2026-08-22"), "3.10.12", "22.2.2", "20.16.3", "58.0.4", "0.37.0", image_tag="13.3-LTS"),
    RuntimeLine("14.3", True, "3.5.0", ("2.12",), "22.04", "3.10", 8, (8,), _d("2024-02-01"),
                _d("2027-02-01"), "3.10.12", "22.3.1", "20.16.7", "65.6.3", "0.38.4", image_tag="14.3-LTS"),
    RuntimeLine("15.4", True, "3.5.0", ("2.12",), "22.04", "3.11", 8, (8, 17), _d("2024-08-19"),
                _d("2027-08-19"), "3.11.11", "23.2.1", "20.24.2", "68.0.0", "0.38.4", image_tag="15.4-LTS", locale="C.UTF-8",
                notes="the 15.4-LTS tag once shipped Python 3.11.0rc1; pin the base by digest"),
    RuntimeLine("16.4", True, "3.5.2", ("2.12", "2.13"), "24.04", "3.12", 17, (8, 17), _d("2025-05-09"),
                _d("2028-05-09"), "3.12.3", "24.0", "20.26.2", "74.0.0", "0.38.4", image_tag="16.4-LTS", locale="C.UTF-8"),
    RuntimeLine("17.3", True, "4.0.0", ("2.13",), "24.04", "3.12", 17, (8, 17), _d("2025-10-22"),
                _d("2028-10-22"), "3.12.3", "25.0.1", "20.29.3", "74.0.0", "0.45.1", image_tag="17.3-LTS", locale="C.UTF-8"),
    # 18 and 19: JDK 21 is the default, 17 stays installed, 8 is gone (DBR 18.0 release notes:
    # "uses JDK 21 as the default ... Previously, the default was JDK 17"). Both are named by
    # their major alone, so every point release (`18.0.x`, `18.3-LTS`, `19.1`) is the line.
    RuntimeLine("18", True, "4.1.0", ("2.13",), "24.04", "3.12", 21, (17, 21), _d("2026-06-10"),
                _d("2029-06-10"), image_tag="18.3-LTS", locale="C.UTF-8",
                notes="JDK 8 removed; official images tagged 18.3-LTS (databricks/containers PR #259, "
                      "\"[AUTO] Prepare 18.3 LTS release\", merged); their Python patch and pip/virtualenv "
                      "pins not read yet", aliases=("18.0",)),
    RuntimeLine("19", False, "4.2.0", ("2.13",), "24.04", "3.12", 21, (17, 21), _d("2026-06-15"),
                None, beta=True, locale="C.UTF-8",
                notes="beta: no official image, end of support set when it becomes LTS", aliases=("19.0",)),
)


def lines() -> tuple[RuntimeLine, ...]:
    """Every known line, oldest first."""
    return LINES


def lts_lines() -> list[RuntimeLine]:
    return [line for line in LINES if line.lts]


def by_name(name: str) -> RuntimeLine | None:
    """The line called exactly `name` (`15.4`, `18`, or an alias such as `18.0`)."""
    return next((line for line in LINES if name == line.line or name in line.aliases), None)


def table(today: _dt.date | None = None) -> list[dict[str, Any]]:
    """Every line as plain data, LTS first, newest first (what `dcs runtimes` lists)."""
    ordered = sorted(LINES, key=lambda line: (not line.lts, [-n for n in _numbers(line)]))
    return [line.to_dict(today) for line in ordered]


def _numbers(line: RuntimeLine) -> tuple[int, int]:
    version = line.version
    return version.major, version.minor if version.minor is not None else 0


# -- parsing -------------------------------------------------------------------------------

# A runtime key: `15.4.x-scala2.12`, `15.4.x-photon-scala2.12`, `15.4.x-cpu-ml-scala2.12`,
# `18.x-scala2.13`, `15.4.x-aarch64-scala2.12`; also a bare `18.x`.
_KEY = re.compile(r"^(?P<major>\d{1,2})(?:\.(?P<minor>\d{1,2}))?\.x(?:-(?P<rest>[a-z0-9.-]*))?$", re.IGNORECASE)
# Plain versions: `15.4`, `18.0`, `18`, `15.4 LTS`, `15.4-LTS`, `9.x`.
_PLAIN = re.compile(r"^(?P<major>\d{1,2})(?:\.(?P<minor>\d{1,2}|x))?(?:[ _-]?(?:LTS|beta))?$", re.IGNORECASE)
# Base image tags start with the line: `15.4-LTS`, `9.x`, `13.3-LTS-ubuntu22`.
_TAG = re.compile(r"^(?P<major>\d{1,2})\.(?P<minor>\d{1,2}|x)(?:$|[-_.])", re.IGNORECASE)
# GPU images are tagged by CUDA version; cuda11.8 images are built for the 14.x line.
_CUDA_TAGS = {"cuda11.8": Version(14, 3)}


def parse_version(text: str | None) -> Version | None:
    """The version a runtime key, tag or plain version names; None when it names none."""
    if text is None:
        return None
    token = str(text).strip()
    for pattern in (_KEY, _PLAIN):
        match = pattern.match(token)
        if match:
            minor = match["minor"]
            return Version(int(match["major"]), None if minor in (None, "x", "X") else int(minor))
    return None


def line_of(text: str | Version | None) -> RuntimeLine | None:
    """The known line a key / tag / plain version names (`9.x` -> 9.1, `18.0` / `18.3-LTS` ->
    18), or None (`15.3`: 15 has only the line 15.4)."""
    version = text if isinstance(text, Version) else parse_version(text)
    if version is None:
        return None
    exact = by_name(str(version)) if version.minor is not None else None
    if exact is not None:
        return exact
    same_major = [line for line in LINES if line.version.major == version.major]
    if version.minor is None:
        # `9.x` / `18`: the LTS line of that major (the one Databricks publishes images for).
        return next((line for line in reversed(same_major) if line.lts), same_major[-1] if same_major else None)
    # `18.x` keys cover the whole major: a line named by its major alone matches any minor.
    return next((line for line in same_major if line.version.minor is None), None)


def closest_lines(version: Version | str | None, count: int = 2) -> list[RuntimeLine]:
    """The `count` known lines nearest to a version (by major.minor), nearest first."""
    if isinstance(version, str):
        version = parse_version(version)
    if version is None:
        return [line for line in LINES if line.lts and line.supported()][-count:][::-1]
    target = version.major * 100 + (version.minor or 0)
    return sorted(LINES, key=lambda line: (abs(line.version.major * 100 + (line.version.minor or 0) - target),
                                           -line.version.major))[:count]


def _names(found: list[RuntimeLine]) -> str:
    return ", ".join(line.name for line in found)


def resolve(text: str, *, supported: bool = False, today: _dt.date | None = None) -> RuntimeLine:
    """The known line of a key / tag / plain version, or a ValueError saying why not.

    The message names the closest known lines for an unknown version; with `supported`,
    a line past its end of support is refused with the date.
    """
    version = parse_version(text)
    if version is None:
        raise ValueError(f"{text!r} is not a Databricks Runtime line; write it like 15.4, "
                         f"15.4.x-scala2.12 or 18.x-scala2.13 (known lines: {_names(lts_lines()[-4:])})")
    line = line_of(version)
    if line is None:
        newest = max(line.version.major for line in LINES)
        later = (f"; if Databricks published it after this data ({pins_origin()}), `dcs runtimes --update` "
                 "adds it" if version.major > newest else "")
        raise ValueError(f"{text!r}: Databricks Runtime {version} is not a line dcs-magic knows; the "
                         f"closest known lines are {_names(closest_lines(version))} (`dcs runtimes` "
                         f"lists them all{later})")
    if supported and not line.supported(today):
        assert line.end_of_support is not None
        raise ValueError(f"{text!r}: Databricks Runtime {line.name} is out of support since "
                         f"{line.end_of_support.isoformat()}; pick a supported line such as "
                         f"{_names(_newest_supported_lts(today, 2))}")
    return line


def _newest_supported_lts(today: _dt.date | None, count: int) -> list[RuntimeLine]:
    return [line for line in lts_lines() if line.supported(today)][::-1][:count]


def line_of_tag(tag: str | None, repository: str | None = None) -> Version | None:
    """The version a base image tag names: `15.4-LTS` -> 15.4, `9.x` -> 9.x, `cuda11.8` (a
    `databricksruntime/gpu-*` tag) -> 14.3; `latest`, `experimental` or no tag -> None."""
    if not tag:
        return None
    if tag.lower() in _CUDA_TAGS and (repository is None or "gpu" in repository):
        return _CUDA_TAGS[tag.lower()]
    match = _TAG.match(tag)
    if not match:
        return None
    minor = match["minor"]
    return Version(int(match["major"]), None if minor.lower() == "x" else int(minor))


# Databricks-style tags: `13.3-LTS`, `9.x`; other `N.N` tags (python:3.11) name no runtime.
_DATABRICKS_TAG = re.compile(r"^\d{1,2}\.(?:x|\d{1,2}-LTS)(?:$|[-_.])", re.IGNORECASE)


def line_of_image(base: str | ImageRef | None) -> Version | None:
    """The runtime version of a base image, when the reference is a Databricks one.

    Tags count for images named `.../databricksruntime/...` or tags in Databricks' own style
    (`13.3-LTS`, `9.x`), so `python:3.11` or `team/app:2.0` are unknown, not a 3.x/2.x runtime.
    """
    ref = base if isinstance(base, ImageRef) or base is None else parse_or_none(base)
    if ref is None or not ref.tag:
        return None
    if "databricksruntime" in ref.path.split("/"):
        return line_of_tag(ref.tag, ref.path)
    return line_of_tag(ref.tag) if _DATABRICKS_TAG.match(ref.tag) else None


def is_databricks_image(base: str | ImageRef | None) -> bool:
    ref = base if isinstance(base, ImageRef) or base is None else parse_or_none(base)
    return ref is not None and "databricksruntime" in ref.path.split("/")


# -- facts derived from a version ----------------------------------------------------------


def pip_path(version: Version | RuntimeLine | None) -> str:
    """The pip a Dockerfile should use: the conda env for 8.x and earlier, else /databricks/python3.

    Unknown versions (None) get the current layout, as Databricks documents for 9.x and later.
    """
    version = version.version if isinstance(version, RuntimeLine) else version
    return f"{CONDA_BIN}/pip" if version is not None and version.legacy_conda else f"{PYTHON3_BIN}/pip"


def python_path(version: Version | RuntimeLine | None) -> str:
    version = version.version if isinstance(version, RuntimeLine) else version
    return f"{CONDA_BIN}/python" if version is not None and version.legacy_conda else f"{PYTHON3_BIN}/python3"


def key_refusal(key: str | None) -> str | None:
    """Why DCS cannot run a runtime key (`15.4.x-gpu-ml-scala2.12`), or None when it can."""
    if not key:
        return None
    words = re.split(r"[-.]", key.lower())
    if "ml" in words:
        kind = "ML (GPU)" if "gpu" in words else "ML"
        return f"{key} is a Databricks Runtime for {kind}, which does not support custom containers"
    if "aarch64" in words:
        return f"{key} is an aarch64 (Graviton) runtime; custom containers run on x86_64 only"
    return None


def _minor(python: str) -> str:
    return ".".join(str(python).strip().split(".")[:2])


def fitting_lines(python: str, *, lts_only: bool = True) -> list[RuntimeLine]:
    """Lines whose /databricks/python3 has this Python (`3.11` or `3.11.2`), oldest first."""
    minor = _minor(python)
    return [line for line in LINES if line.python == minor and (line.lts or not lts_only)]


def fits(image_python: str | None, line: RuntimeLine | str) -> tuple[bool, str]:
    """Whether an image whose /databricks/python3 runs `image_python` fits `line`, and why."""
    target = line if isinstance(line, RuntimeLine) else resolve(line)
    if not image_python:
        return False, f"the image's Python is unknown; {target.name} runs Python {target.python}"
    minor = _minor(image_python)
    if minor == target.python:
        return True, f"Python {image_python} fits {target.name} (Python {target.python})"
    others = fitting_lines(minor)
    where = f"it fits {_names(others)}" if others else "no LTS line runs it"
    return False, f"Python {image_python} does not fit {target.name}, which runs Python {target.python}; {where}"


def default_runtime_for(python: str | None, today: _dt.date | None = None) -> RuntimeLine | None:
    """The newest supported LTS line whose Python is `python`; None when none fits."""
    if not python:
        return None
    return next((line for line in reversed(fitting_lines(python)) if line.supported(today) and line.dcs), None)


def spark_versions(today: _dt.date | None = None) -> list[dict[str, str]]:
    """`spark-versions` items (`{"key", "name"}`) of the supported lines, newest first."""
    items = []
    for line in sorted(LINES, key=_numbers, reverse=True):
        if not line.supported(today):
            continue
        scala = ", ".join(f"Scala {s}" for s in line.scala)
        for variant in line.scala:
            items.append({"key": f"{line.line}.x-scala{variant}",
                          "name": f"{line.name} (includes Apache Spark {line.spark}, {scala})"
                          if len(line.scala) == 1 else f"{line.name} (includes Apache Spark {line.spark}, Scala {variant})"})
    return items


# -- package pins (data/runtime-pins.json, read by model/pins.py) ----------------------------


@lru_cache(maxsize=1)
def pin_data() -> PinData:
    """The pins of every runtime key: the data shipped in the package, or the file
    `dcs runtimes --update` wrote (`settings.runtime_pins_file()`) when it was read later
    (or named by DCS_RUNTIME_PINS: then it is used whatever its age).

    Reading these two files is the one read this module does."""
    shipped = PinData.from_json(resources.files("dcs_magic").joinpath("data/runtime-pins.json")
                                .read_text(encoding="utf-8"))
    updated, explicit = runtime_pins_file()
    try:
        local = PinData.from_json(updated.read_text(encoding="utf-8")) if updated.is_file() else None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        local = None  # a damaged update: the shipped data still works (`dcs runtimes` says which is used)
    # Newer = read later: an update made after this package's data was gathered.
    if local is not None and (explicit or (local.read or "") >= (shipped.read or "")):
        return local
    return shipped


def pins_for(key: str) -> PinSet | None:
    """The pin set of a runtime key (`18.1.x-scala2.13`, `17.3.x-gpu-ml-scala2.13`) or line
    (`15.4`, `18`): the exact key when published, else its line's (PinData.find)."""
    return pin_data().find(key)


def pins(line: RuntimeLine | str) -> dict[str, str]:
    """Package -> version of the line's standard /databricks/python3 (empty when unknown)."""
    found = pins_for(line.line if isinstance(line, RuntimeLine) else str(line))
    return dict(found.pins) if found is not None else {}


def pins_origin() -> str:
    """Where the pins come from and when they were read."""
    return pin_data().describe()


def data_age_days(today: _dt.date | None = None) -> int | None:
    """How many days old the pin data is on `today` (default: the current date)."""
    return age_days(pin_data(), today or _dt.date.today())


def new_lines(data: PinData, known: tuple[RuntimeLine, ...]) -> list[str]:
    """The lines DATA publishes that are newer than every line in `known` (Databricks
    published them after this dcs-magic was released); a point release of such a line (20.1
    beside 20) is that line, an unknown older one (16.1) is not a new line."""
    newest_major = max(line.version.major for line in known)
    published = data.lines()
    return [name for name in published
            if int(name.split(".")[0]) > newest_major and not ("." in name and name.split(".")[0] in published)]


def _inferred_lines(known: tuple[RuntimeLine, ...]) -> tuple[RuntimeLine, ...]:
    """The `new_lines` of the pin data as lines: Python and pins from the data; JDK, Ubuntu,
    Spark and Scala assumed as in the newest known line, and the line says so (`inferred_from`)."""
    data = pin_data()
    newest = max(known, key=lambda line: (line.version.major, line.version.minor or 0))
    found = []
    for name in new_lines(data, known):
        item = data.find(name)
        if item is None:
            continue
        found.append(RuntimeLine(
            name, False, newest.spark, newest.scala, newest.ubuntu, item.python or newest.python, newest.java,
            newest.java_installed, _d((data.date or data.read or "1970-01-01")[:10]), None,
            beta=True, locale=newest.locale, inferred_from=newest.line,
            notes=f"not known to this dcs-magic: Python and pins from {item.origin}; JDK, Ubuntu, Spark and "
                  f"Scala assumed as in {newest.name} (update dcs-magic for its own facts)"))
    return tuple(found)


LINES: tuple[RuntimeLine, ...] = FACTS + _inferred_lines(FACTS)
"""Every line: the hand-kept FACTS, then lines only the pin data knows (newer ones)."""
